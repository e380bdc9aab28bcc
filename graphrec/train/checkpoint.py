"""Checkpoints: written atomically, read with ``weights_only=True``.

One format for every writer. A checkpoint is a dict with ``run_config`` (``RunConfig.to_dict()``:
model, data, settings) and ``model_state``; a run's ``last.pt`` adds the optimizer and loop state,
``best.pt`` the selected epoch and its metrics, and a ``Recommender.save`` file the interactions it
was fitted on (``interactions``: ``InteractionGraph.state_dict()``, with the users' own ids), so
``graphrec eval``/``recommend`` and ``Recommender.load`` read any of them.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "graphrec-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted or not a graphrec checkpoint."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` so that a crash never leaves a half-written file.

    The data goes to a temporary file in the same folder, is flushed to disk, then
    renamed over the target (``os.replace`` is atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(payload, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint safely (no arbitrary code: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to parse means a damaged file
        # torch's safe unpickler surfaces damage as many types (UnpicklingError, RuntimeError,
        # KeyError, EOFError, BadZipFile...): all mean the same thing to the user.
        raise CheckpointError(
            f"checkpoint {path} is corrupted or truncated ({type(error).__name__}: {str(error)[:200]}). "
            "Use another checkpoint of the run (best.pt or last.pt) or train again."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a graphrec checkpoint")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer graphrec (format {state['version']}); upgrade graphrec")
    if state.get("kind") == "recommender":
        state = _from_recommender_layout(state)
    return state


def _from_recommender_layout(state: dict[str, Any]) -> dict[str, Any]:
    """A file of the former ``Recommender.save`` layout (``"kind": "recommender"``) in today's.

    It held train and seen (train + validation) interactions: validation is their difference.
    """
    shape = (len(state["user_ids"]), len(state["item_ids"]))

    def pairs(parts):
        rows = torch.repeat_interleave(torch.arange(shape[0]), parts["indptr"].diff())
        return rows * shape[1] + parts["indices"]

    train, seen = pairs(state["train"]), pairs(state["seen"])
    valid = seen[~torch.isin(seen, train)]   # row-major keys of sorted rows stay sorted
    counts = torch.bincount(valid // shape[1], minlength=shape[0])
    return {
        "format": state["format"], "version": state["version"],
        "run_config": {"model": state["model"], "data": "dataframe", "data_dir": None,
                       "model_config": state["model_config"], "train": state["train_config"]},
        "model_state": state["model_state"],
        "interactions": {"name": "dataframe", "num_users": shape[0], "num_items": shape[1],
                         "train": state["train"], "test": None,
                         "valid": {"indptr": torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
                                   "indices": valid % shape[1]},
                         "user_ids": state["user_ids"], "item_ids": state["item_ids"]},
    }
