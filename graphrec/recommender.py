"""Fit-and-recommend from a pandas DataFrame, with the users' own ids.

>>> rec = Recommender("lightgcn", epochs=50).fit(df, user="user_id", item="song_id")
>>> rec.recommend(["alice", "bob"], k=10)          # DataFrame: user, rank, item, score
>>> rec.save("model.pt"); rec = Recommender.load("model.pt")
>>> Recommender.load("runs/<run>/best.pt")              # a `graphrec fit` run of a recommender

``save`` writes the run checkpoint format (``graphrec.train.checkpoint``), so ``graphrec eval
--checkpoint model.pt`` and ``graphrec recommend`` read it too.

Held-out evaluation in the users' own ids (docs/recommender.md):

>>> train_df, test_df = split_by_time(df, user="user_id", time="ts", last_n=1)   # graphrec.data
>>> rec = Recommender("lightgcn").fit(train_df, user="user_id", item="song_id")
>>> rec.evaluate(test_df, user="user_id", item="song_id", ks=(10, 20), baseline=True)
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
from graphrec.metrics.ranking import RankingEvaluator, top_k_items
from graphrec.models import get_model_entry
from graphrec.train import load_checkpoint, save_checkpoint


class Recommender:
    """A registered recommendation model wrapped for DataFrame in, ids out.

    Args:
        model: registered model name (``graphrec models``); ``"pop"`` is the most-popular baseline.
        train: ``train`` section overrides (e.g. ``{"lr": 1e-3}``); the model's recipe for new
            data applies otherwise (:mod:`graphrec.recipes`: fast settings that beat popularity,
            not the paper's). ``epochs`` may also be given directly.
        sampling: ``sampling`` section overrides (e.g. ``{"num_negatives": 4}``).
        **model_params: model hyper-parameters (e.g. ``embedding_dim=32``).

    ``fit`` holds out a seeded per-user validation split (``valid_fraction``) to pick
    the best epoch, then recommends from the selected model; every interaction in the
    DataFrame (train and validation) counts as seen and is never recommended. It prints the
    Trainer's start block, progress and one line per evaluation (``verbose=False``: nothing).

    Ctrl-C during ``fit`` puts the best weights so far back (the selected epoch's, never the
    last ones) and raises ``KeyboardInterrupt``: a script never continues silently. The
    Recommender then holds that best model (``recommend``/``save`` work) unless no evaluation
    had run yet, in which case it stays unfitted.
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
        try:   # the paper recipe, its new-data recipe (a DataFrame is no paper dataset), then these
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
        self.summary: dict[str, Any] = {}
        self._embeddings = None

    # ----------------------------------------------------------------- fitting
    def fit(self, interactions: pd.DataFrame, user: str = "user", item: str = "item",
            time: str | None = None, valid_fraction: float = 0.1, run_dir: str | Path | None = None,
            verbose: bool = True) -> "Recommender":
        graph = InteractionGraph.from_dataframe(
            interactions, user=user, item=item, time=time, valid_fraction=valid_fraction,
            test_fraction=0.0, seed=self.train_config.seed, name="dataframe")
        if graph.valid is None or graph.valid.nnz == 0:
            raise ValueError("no validation interactions: users need at least 2 interactions "
                             "(or pass valid_fraction > 0)")
        train = dataclasses.replace(self.train_config, protocol="validation")
        config = RunConfig(model=self.model_name, data=graph.name, model_config=self.model_config, train=train,
                           sampling=self.sampling_config)
        from graphrec import runs

        # the same path as `graphrec fit`; verbose: the Trainer's start block, progress and evaluation lines
        trainer, summary = runs.fit(config, run_dir, data=graph, verbose=verbose)
        if summary["status"] == "interrupted":
            if trainer.best_epoch is None:
                raise KeyboardInterrupt(f"fit interrupted at epoch {trainer.epoch + 1} before any evaluation: "
                                        "nothing was selected and the Recommender stays unfitted")
            trainer.strategy.restore_best(trainer.best_path)   # the selected weights, not the last ones
        self.model = trainer.model
        self.history = trainer.history
        self.summary = summary
        self._use_graph(graph)
        if summary["status"] == "interrupted":
            raise KeyboardInterrupt(
                f"fit interrupted after epoch {trainer.epoch}; the Recommender holds the best weights so far "
                f"(epoch {trainer.best_epoch}, valid {train.monitor} {trainer.best_value:.4f})")
        return self

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, interactions: pd.DataFrame, k: int | None = None, ks: Iterable[int] | None = None,
                 user: str = "user", item: str = "item", baseline: bool = False):
        """Recall, ndcg, precision and hit @k of the fitted model on held-out ``interactions``.

        Every user with targets ranks all items except the ones it was fitted on (train and
        validation); the targets are its rows in ``interactions``, in the users' own ids. Rows
        whose user or item the model never saw cannot be ranked, and rows it was fitted on
        cannot be recommended: both are left out and counted in a warning.

        Args:
            k / ks: one cut-off or several (default 20).
            baseline: also evaluate ``pop`` (items ranked by train popularity) on the same
                targets and return a DataFrame with one row per model and a ``lift`` row
                (model / pop); without it, a dict ``{"recall@20": ..., ...}``.
        """
        self._check_fitted()
        if k is not None and ks is not None:
            raise ValueError("give k or ks, not both")
        cutoffs = (20,) if k is None and ks is None else (k,) if k is not None else tuple(ks)
        if not cutoffs or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1 for c in cutoffs):
            raise ValueError(f"k must be a whole number >= 1, got {k if k is not None else ks!r}")
        missing = [c for c in (user, item) if c not in interactions.columns]
        if missing:
            raise KeyError(f"columns {missing} not in the DataFrame (it has {list(interactions.columns)})")
        users = _positions(self.user_map, interactions[user])
        items = _positions(self.item_map, interactions[item])
        known = (users >= 0) & (items >= 0)
        targets = sp.csr_matrix((np.ones(int(known.sum()), np.float32), (users[known], items[known])),
                                shape=self.seen.shape)
        targets.sum_duplicates()
        targets.data[:] = 1.0
        already_seen = targets.multiply(self.seen)
        targets = (targets - already_seen).tocsr()
        targets.eliminate_zeros()
        left_out = {"rows with a user the model was not fitted on": int((users < 0).sum()),
                    "rows with an item the model was not fitted on": int(((users >= 0) & (items < 0)).sum()),
                    "pairs the model was fitted on (never recommended)": int(already_seen.nnz)}
        if any(left_out.values()):
            warnings.warn("evaluate left out " + ", ".join(f"{n} {what}" for what, n in left_out.items() if n)
                          + f" of {len(interactions)} rows", stacklevel=2)
        if targets.nnz == 0:
            raise ValueError("no interaction left to evaluate: every row has an unknown user or item, "
                             "or was among the fitted interactions")
        evaluator = RankingEvaluator(self.seen, targets, ks=cutoffs)
        if self._embeddings is None:
            self._embeddings = self.model.embeddings()
        metrics = evaluator.evaluate(*self._embeddings)
        if not baseline:
            return metrics
        from graphrec.models.pop import Popularity

        pop = Popularity(self.graph.num_users, self.graph.num_items)
        pop.prepare(self.graph.train)   # ranked as Recommender("pop") ranks: by train popularity
        pop_metrics = evaluator.evaluate(*pop.embeddings())
        lift = {name: value / pop_metrics[name] if pop_metrics[name] else float("nan")
                for name, value in metrics.items()}
        return pd.DataFrame([metrics, pop_metrics, lift], index=[self.model_name, "pop", "lift"])

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

    def recommend_all(self, path: str | Path, k: int = 10, exclude_seen: bool = True,
                      max_memory_mb: float = 512.0, progress: bool = True):
        """Every user's top-k items, in their own ids, streamed to the Parquet file ``path`` (columns user,
        rank, item, score; :mod:`graphrec.recommend_all`), memory bounded by ``max_memory_mb``. Returns the
        report (users, rows, seconds, throughput)."""
        from graphrec.recommend_all import write_recommendations

        self._check_fitted()
        if self._embeddings is None:
            self._embeddings = self.model.embeddings()
        user_emb, item_emb = self._embeddings
        return write_recommendations(path, user_emb, item_emb, k, self.seen if exclude_seen else None,
                                     user_ids=self.user_map, item_ids=self.item_map, max_memory_mb=max_memory_mb,
                                     progress=progress)

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write a run checkpoint (``run_config``, ``model_state``) that also carries the fitted
        interactions and ids: ``Recommender.load`` and ``graphrec eval``/``recommend`` read it."""
        self._check_fitted()
        config = RunConfig(model=self.model_name, data=self.graph.name, model_config=self.model_config,
                           train=self.train_config, sampling=self.sampling_config)
        summary = self.summary
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


def _positions(id_map: IdMap, values: pd.Series) -> np.ndarray:
    """Each value's index in ``id_map``, -1 for ids it does not hold."""
    ids = np.empty(len(values), dtype=object)   # an object array keeps each id's own type
    ids[:] = list(values)
    return pd.Index(id_map.ids, dtype=object).get_indexer(pd.Index(ids, dtype=object)).astype(np.int64)
