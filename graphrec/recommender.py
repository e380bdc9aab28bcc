"""Fit-and-recommend from a pandas DataFrame, with the users' own ids.

>>> rec = Recommender("lightgcn", epochs=50).fit(df, user="user_id", item="song_id")
>>> rec.recommend(["alice", "bob"], k=10)          # DataFrame: user, rank, item, score
>>> rec.save("model.pt"); rec = Recommender.load("model.pt")
>>> Recommender.load("runs/<run>/best.pt")              # a `graphrec fit` run of a recommender

``save`` writes the run checkpoint format (``graphrec.train.checkpoint``), so ``graphrec eval
--checkpoint model.pt`` and ``graphrec recommend`` read it too.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from graphrec.config import ConfigError, RunConfig, build_run_config
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import InteractionGraph
from graphrec.metrics.ranking import top_k_items
from graphrec.models import get_model_entry
from graphrec.train import load_checkpoint, save_checkpoint


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
        self.graph: InteractionGraph | None = None
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
        from graphrec import runs

        train = dataclasses.replace(self.train_config, protocol="validation")
        config = RunConfig(model=self.model_name, data=graph.name, model_config=self.model_config, train=train,
                           sampling=self.sampling_config)
        trainer, summary = runs.fit(config, run_dir, data=graph)  # the same path as `graphrec fit`
        self.model = trainer.model
        self.history = trainer.history
        self.summary = summary
        self._use_graph(graph)
        return self

    # ----------------------------------------------------------------- inference
    def recommend(self, users: Iterable | Any, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k items per user, best first, as a DataFrame (user, rank, item, score)."""
        self._check_fitted()
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a whole number >= 1, got {k!r}")
        if k > self.graph.num_items:
            warnings.warn(f"k={k} is more than the {self.graph.num_items} items: returning at most "
                          f"{self.graph.num_items} per user", stacklevel=2)
            k = self.graph.num_items
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
        """Write a run checkpoint (``run_config``, ``model_state``) that also carries the fitted
        interactions and ids: ``Recommender.load`` and ``graphrec eval``/``recommend`` read it."""
        self._check_fitted()
        config = RunConfig(model=self.model_name, data=self.graph.name, model_config=self.model_config,
                           train=self.train_config, sampling=self.sampling_config)
        summary = getattr(self, "summary", None) or {}
        return save_checkpoint({
            "run_config": config.to_dict(), "model_state": self.model.state_dict(),
            "epoch": summary.get("best_epoch"),
            "metrics": summary.get("results", {}).get("valid", {}),
            "interactions": self.graph.state_dict(),
        }, path)

    @classmethod
    def load(cls, path: str | Path, data_dir: str | None = None) -> "Recommender":
        """A fitted Recommender from ``Recommender.save``'s file or a recommendation run's ``best.pt``
        (``last.pt``); a run's dataset is read again (from ``data_dir`` when given)."""
        from graphrec import runs

        state = load_checkpoint(path)
        config = state.get("run_config") or {}
        if "model" not in config:
            raise ValueError(f"{path} names no model: not a run or Recommender checkpoint")
        rec = cls(config["model"])   # refuses models of other tasks
        model, task, run_config = runs.load_trained(state, data_dir)
        rec.train_config, rec.sampling_config = run_config.train, run_config.sampling
        rec.model_config = run_config.model_config
        rec.model = model
        rec._use_graph(task.graph)
        return rec

    def _use_graph(self, graph: InteractionGraph) -> None:
        """Recommend over ``graph``: its id maps (indices when it has none) and its seen items."""
        self.graph = graph
        self.user_map = IdMap(np.arange(graph.num_users)) if graph.user_map is None else graph.user_map
        self.item_map = IdMap(np.arange(graph.num_items)) if graph.item_map is None else graph.item_map
        self.seen = graph.known_interactions("train", "valid")
        self._train = graph.train
        self._embeddings = None

    def _check_fitted(self):
        if self.model is None:
            raise RuntimeError("call fit(...) or Recommender.load(path) first")


