"""Fit-and-recommend from a pandas DataFrame, with the users' own ids.

>>> rec = Recommender("lightgcn", epochs=50).fit(df, user="user_id", item="song_id")
>>> rec.recommend(["alice", "bob"], k=10)          # DataFrame: user, rank, item, score
>>> rec.save("model.pt"); rec = Recommender.load("model.pt")
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from graphrec.config import MOVED_KEYS, ConfigError, build_run_config
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import InteractionGraph
from graphrec.metrics.ranking import top_k_items
from graphrec.models import get_model_entry
from graphrec.train import RecommendationTask, Trainer, load_checkpoint, save_checkpoint


class Recommender:
    """A registered recommendation model wrapped for DataFrame in, ids out.

    Args:
        model: registered model name (``graphrec models``).
        train: ``train`` section overrides (e.g. ``{"lr": 1e-3}``); the model's paper
            recipe applies otherwise. ``epochs`` may also be given directly.
        sampling: ``sampling`` section overrides (e.g. ``{"num_negatives": 4}``).
        **model_params: model hyper-parameters (e.g. ``embedding_dim=32``).

    ``fit`` holds out a seeded per-user validation split (``valid_fraction``) to pick
    the best epoch, then recommends from the selected model; every interaction in the
    DataFrame (train and validation) counts as seen and is never recommended.
    """

    def __init__(self, model: str = "lightgcn", epochs: int | None = None,
                 train: dict[str, Any] | None = None, sampling: dict[str, Any] | None = None, **model_params):
        self.entry = get_model_entry(model)
        if self.entry.task != "recommendation":
            raise ValueError(f"'{model}' is a {self.entry.task} model, not a recommender")
        self.model_name = model
        overrides = {f"{section}.{k}": v for section, values in
                     (("train", train), ("sampling", sampling), ("model", model_params)) for k, v in (values or {}).items()}
        if epochs is not None:
            overrides["train.epochs"] = epochs
        try:   # the paper recipe, then these (a DataFrame is no registered dataset: no dataset recipe)
            config = build_run_config(model, "dataframe", overrides=overrides)
        except ConfigError as error:   # a keyword the sections do not have, or a value of the wrong type
            raise TypeError(str(error)) from None
        self.train_config, self.sampling_config, self.model_config = config.train, config.sampling, config.model_config
        self.model = None
        self.user_map: IdMap | None = None
        self.item_map: IdMap | None = None
        self.seen: sp.csr_matrix | None = None
        self.history: list[dict] = []
        self._embeddings = None

    # ----------------------------------------------------------------- fitting
    def fit(self, interactions: pd.DataFrame, user: str = "user", item: str = "item",
            time: str | None = None, valid_fraction: float = 0.1, run_dir: str | Path | None = None,
            ) -> "Recommender":
        graph = InteractionGraph.from_dataframe(
            interactions, user=user, item=item, time=time, valid_fraction=valid_fraction,
            test_fraction=0.0, seed=self.train_config.seed, name="dataframe")
        if graph.valid is None or graph.valid.nnz == 0:
            raise ValueError("no validation interactions: users need at least 2 interactions "
                             "(or pass valid_fraction > 0)")
        torch.manual_seed(self.train_config.seed)
        config = dataclasses.replace(self.train_config, protocol="validation")
        task = RecommendationTask(graph, config, self.sampling_config)
        self.model = task.build_model(self.entry, self.model_config)
        trainer = Trainer(self.model, task, config, run_dir=run_dir)
        summary = trainer.fit()
        self.history = trainer.history
        self.summary = summary
        self.user_map, self.item_map = graph.user_map, graph.item_map
        self.seen = graph.known_interactions("train", "valid")
        self._train = graph.train
        self._embeddings = None
        return self

    # ----------------------------------------------------------------- inference
    def recommend(self, users: Iterable | Any, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k items per user, best first, as a DataFrame (user, rank, item, score)."""
        self._check_fitted()
        users = [users] if np.isscalar(users) else list(users)
        index = self.user_map.to_index(users)
        if self._embeddings is None:
            self._embeddings = self.model.embeddings()
        user_emb, item_emb = self._embeddings
        items, scores = top_k_items(user_emb, item_emb, k, self.seen if exclude_seen else None, index)
        rows = []
        for user_id, row_items, row_scores in zip(users, items, scores):
            valid = row_items >= 0
            item_ids = self.item_map.to_ids(row_items[valid])
            for rank, (item_id, score) in enumerate(zip(item_ids, row_scores[valid]), start=1):
                rows.append((user_id, rank, item_id, float(score)))
        return pd.DataFrame(rows, columns=["user", "rank", "item", "score"])

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        return save_checkpoint({
            "kind": "recommender", "model": self.model_name,
            "model_config": dataclasses.asdict(self.model_config),
            "train_config": {k: (list(v) if isinstance(v, tuple) else v)
                             for k, v in dataclasses.asdict(self.train_config).items()},
            "sampling_config": {k: (list(v) if isinstance(v, tuple) else v)
                                for k, v in dataclasses.asdict(self.sampling_config).items()},
            "model_state": self.model.state_dict(),
            "user_ids": self.user_map.ids.tolist(), "item_ids": self.item_map.ids.tolist(),
            "train": _csr_to_tensors(self._train), "seen": _csr_to_tensors(self.seen),
        }, path)

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        state = load_checkpoint(path)
        if state.get("kind") != "recommender":
            raise ValueError(f"{path} is a training checkpoint, not a saved Recommender; "
                             "use `graphrec eval`/`graphrec recommend` for run checkpoints")
        train = dict(state["train_config"])
        # files saved before the sampling section kept its keys with train's
        sampling = {MOVED_KEYS[f"train.{k}"].split(".", 1)[1]: train.pop(k) for k in list(train)
                    if f"train.{k}" in MOVED_KEYS}
        sampling.update(state.get("sampling_config", {}))
        rec = cls(state["model"], train=train, sampling=sampling, **state["model_config"])
        rec.user_map, rec.item_map = IdMap(state["user_ids"]), IdMap(state["item_ids"])
        shape = (len(rec.user_map), len(rec.item_map))
        rec._train = _csr_from_tensors(state["train"], shape)
        rec.seen = _csr_from_tensors(state["seen"], shape)
        rec.model = rec.entry.build(rec.model_config, num_users=shape[0], num_items=shape[1])
        rec.model.prepare(rec._train)
        rec.model.load_state_dict(state["model_state"])
        rec.model.eval()
        return rec

    def _check_fitted(self):
        if self.model is None:
            raise RuntimeError("call fit(...) or Recommender.load(path) first")


def _csr_to_tensors(matrix: sp.csr_matrix) -> dict[str, torch.Tensor]:
    return {"indptr": torch.from_numpy(matrix.indptr.astype(np.int64)),
            "indices": torch.from_numpy(matrix.indices.astype(np.int64))}


def _csr_from_tensors(parts: dict[str, torch.Tensor], shape) -> sp.csr_matrix:
    indices = parts["indices"].numpy()
    return sp.csr_matrix((np.ones(indices.shape[0], np.float32), indices, parts["indptr"].numpy()), shape=shape)
