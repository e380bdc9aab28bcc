"""Checkpoints: written atomically, read with ``weights_only=True``.

One format for every writer. A checkpoint is a dict with ``run_config`` (``RunConfig.to_dict()``:
model, data, settings) and ``model_state``; a run's ``last.pt`` adds the optimizer and loop state,
``best.pt`` the selected epoch and its metrics, and a ``Recommender.save`` file the interactions it
was fitted on (``interactions``: ``InteractionGraph.state_dict()``, with the users' own ids), so
``graphrec eval``/``recommend`` and ``Recommender.load`` read any of them.
"""
from __future__ import annotations

import errno
import io
import numbers
import os
import pickle
import shutil
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
    renamed over the target (``os.replace`` is atomic on POSIX and Windows). A full disk raises
    an ``OSError`` (ENOSPC) that says "disk full" and names the file; the target is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    # Serialised in memory first: torch.save writing to a full disk fails with an opaque
    # inline_container.cc message, a plain write fails with the operating system's errno.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(buffer.getbuffer())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free
            raise OSError(error.errno, f"disk full: could not write checkpoint {path} ({buffer.tell():,} bytes; "
                                       f"{free:,} bytes free there; the previous {path.name} is kept). Free "
                                       "space or use another --run-dir, then resume", str(path)) from None
        raise
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
    except pickle.UnpicklingError as error:
        if "weights only load failed" in str(error).lower() or "unsupported global" in str(error).lower():
            # a well-formed file holding code objects: refused on purpose, not damaged
            raise CheckpointError(
                f"checkpoint {path} was refused: it holds Python objects other than tensors and plain data, "
                "which graphrec never writes, and loading them could run code. Only use checkpoints written "
                "by graphrec from a source you trust.") from None
        raise _damaged(path, error) from None
    except Exception as error:  # noqa: BLE001 - any failure to parse means a damaged file
        # torch's safe unpickler surfaces damage as many types (RuntimeError, KeyError, EOFError,
        # BadZipFile...): all mean the same thing to the user.
        raise _damaged(path, error) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a graphrec checkpoint")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer graphrec (format {state['version']}); upgrade graphrec")
    if state.get("kind") == "recommender":
        state = _from_recommender_layout(state)
    return state


def _damaged(path: Path, error: Exception) -> CheckpointError:
    detail = str(error).splitlines()[0][:160] if str(error) else ""
    if "weights_only" in detail:   # torch's advice to load unsafely is never passed on
        detail = ""
    return CheckpointError(
        f"checkpoint {path} is corrupted or truncated ({type(error).__name__}{': ' + detail if detail else ''}). "
        "Use another checkpoint of the run (best.pt or last.pt) or train again.")


def load_model_state(model: torch.nn.Module, state: dict[str, Any], model_name: str | None = None,
                     sizes: dict[str, int] | None = None) -> None:
    """``model.load_state_dict(state["model_state"])`` with errors a user can act on.

    ``model_name``: the model ``model`` is (a checkpoint of another model is refused by name);
    ``sizes``: counts of the data the model was built on (e.g. ``{"users": 29858, "items": 40981}``),
    named when a parameter's shape differs from the checkpoint's (the dataset files changed).
    """
    saved_name = (state.get("run_config") or {}).get("model")
    if model_name is not None and saved_name is not None and saved_name != model_name:
        raise CheckpointError(f"checkpoint is for {saved_name}, not {model_name}: use a {model_name} checkpoint "
                              f"or build a {saved_name} model")
    weights = state["model_state"]
    own = model.state_dict()
    for key, tensor in weights.items():
        if key in own and tuple(own[key].shape) != tuple(tensor.shape):
            saved, now = tuple(tensor.shape), tuple(own[key].shape)
            for label, count in (sizes or {}).items():
                if now and now[0] == count and saved[0] != count:
                    raise CheckpointError(f"{label}: {saved[0]} in the checkpoint, {count} in the data: the dataset "
                                          "files changed since the checkpoint was written (check them with "
                                          "`graphrec datasets --verify`) or the checkpoint is for other data")
            raise CheckpointError(f"checkpoint parameter {key} has shape {list(saved)}, the model built from this "
                                  f"config and data has {list(now)}: the checkpoint is for other data or settings")
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint{' (' + saved_name + ')' if saved_name else ''} does not fit the model"
                              f"{' ' + model_name if model_name else ''}: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}")
    model.load_state_dict(weights)


def task_sizes(task) -> dict[str, int]:
    """The counts that fix a model's shapes (users, items, nodes, features, classes), from ``task.describe()``."""
    data = task.describe().get("data") or {}
    sizes = {key: int(data[key]) for key in ("users", "items", "nodes", "features", "classes")
             if isinstance(data.get(key), numbers.Integral)}   # heterogeneous graphs count per type: not a size here
    if "users" in sizes and "items" in sizes:   # one embedding table of users then items (LightGCN)
        sizes["users + items"] = sizes["users"] + sizes["items"]
    return sizes


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
