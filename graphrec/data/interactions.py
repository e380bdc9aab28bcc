"""The user-item interaction graph every recommender trains on."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from graphrec.data.idmap import IdMap
from graphrec.data.splits import per_user_split


def interaction_matrix(users, items, num_users: int, num_items: int) -> sp.csr_matrix:
    """Binary users x items CSR with sorted, de-duplicated rows (float32 ones)."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    matrix = sp.csr_matrix(
        (np.ones(users.shape[0], dtype=np.float32), (users, items)), shape=(num_users, num_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


@dataclass(frozen=True)
class InteractionGraph:
    """Implicit-feedback interactions split into train / valid / test.

    Each split is a binary users x items ``scipy.sparse.csr_matrix`` with sorted rows.
    ``user_map``/``item_map`` translate between the users' own ids and row/column
    indices (``None`` for datasets that come with contiguous ids).
    """

    num_users: int
    num_items: int
    train: sp.csr_matrix
    valid: sp.csr_matrix | None = None
    test: sp.csr_matrix | None = None
    user_map: IdMap | None = None
    item_map: IdMap | None = None
    name: str = "interactions"

    def __post_init__(self):
        for split in ("train", "valid", "test"):
            matrix = getattr(self, split)
            if matrix is not None and matrix.shape != (self.num_users, self.num_items):
                raise ValueError(
                    f"{split} matrix has shape {matrix.shape}, expected ({self.num_users}, {self.num_items})"
                )

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        user: str = "user",
        item: str = "item",
        time: str | None = None,
        valid_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        name: str = "dataframe",
    ) -> "InteractionGraph":
        """Build from a DataFrame of (user, item[, time]) rows with any hashable ids.

        Split per user: by time when ``time`` is given (latest go to test), else a
        seeded shuffle. Set a fraction to 0 to skip that split.
        """
        if len(frame) == 0:
            raise ValueError("the DataFrame is empty: pass one row per interaction (user, item[, time])")
        missing = [c for c in (user, item, time) if c is not None and c not in frame.columns]
        if missing:
            raise KeyError(f"columns {missing} not in the DataFrame (it has {list(frame.columns)})")
        for column in (user, item):
            blank = int(frame[column].isna().sum())
            if blank:
                raise ValueError(f"{blank} of {len(frame)} rows have no {column} id (NaN in column {column!r}): "
                                 "drop them first (df.dropna(subset=[...]))")
        user_map, user_index = IdMap.from_values(frame[user].to_numpy())
        item_map, item_index = IdMap.from_values(frame[item].to_numpy())
        timestamps = None
        if time is not None:
            try:
                timestamps = pd.to_numeric(frame[time]).to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                timestamps = pd.to_datetime(frame[time]).to_numpy(dtype="datetime64[ns]").astype(np.float64)
                timestamps[pd.isna(frame[time]).to_numpy()] = np.nan
            # NaN would sort as the latest time and push those rows into test
            blank = int(np.isnan(timestamps).sum())
            if blank:
                raise ValueError(f"{blank} of {len(frame)} rows have no timestamp (NaN in column {time!r}): drop "
                                 f"or fill them (df.dropna(subset=[{time!r}])), or pass time=None")
        return cls._from_indices(
            user_index, item_index, len(user_map), len(item_map), valid_fraction, test_fraction,
            seed, timestamps, user_map, item_map, name,
        )

    @classmethod
    def from_scipy(
        cls, matrix, valid_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
        name: str = "matrix",
    ) -> "InteractionGraph":
        """Build from a users x items sparse matrix (any non-zero is an interaction)."""
        coo = sp.coo_matrix(matrix)
        keep = coo.data != 0
        return cls._from_indices(
            coo.row[keep], coo.col[keep], coo.shape[0], coo.shape[1], valid_fraction, test_fraction,
            seed, None, None, None, name,
        )

    @classmethod
    def _from_indices(cls, users, items, num_users, num_items, valid_fraction, test_fraction,
                      seed, timestamps, user_map, item_map, name):
        # Collapse repeated (user, item) pairs before splitting, so that copies of one pair
        # can never land in two splits; with timestamps the earliest occurrence is kept.
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        order = np.argsort(timestamps, kind="stable") if timestamps is not None else np.arange(users.shape[0])
        _, first = np.unique(users[order] * num_items + items[order], return_index=True)
        keep = np.sort(order[first])
        users, items = users[keep], items[keep]
        timestamps = None if timestamps is None else np.asarray(timestamps)[keep]
        part = per_user_split(users, (valid_fraction, test_fraction), seed=seed, timestamps=timestamps)

        def split(p):
            return interaction_matrix(users[part == p], items[part == p], num_users, num_items)

        graph = cls(
            num_users, num_items, split(0),
            split(1) if valid_fraction > 0 else None,
            split(2) if test_fraction > 0 else None,
            user_map, item_map, name,
        )
        graph.warn_unseen_items()
        return graph

    def warn_unseen_items(self) -> None:
        """Warn with counts when test (or validation) items never occur in train: no model learns them."""
        in_train = np.zeros(self.num_items, dtype=bool)
        in_train[self.train.indices] = True
        for split in ("test", "valid"):
            matrix = getattr(self, split)
            if matrix is None or matrix.nnz == 0:
                continue
            unseen = ~in_train[matrix.indices]
            if unseen.any():
                warnings.warn(
                    f"{self.name}: {int(unseen.sum())} of {matrix.nnz} {split} interactions "
                    f"({np.unique(matrix.indices[unseen]).size} items) have items never seen in train; "
                    "no model can learn them, so they count as misses in the metrics", stacklevel=3)

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Splits as CSR index tensors and id maps as plain lists: what a checkpoint carries to
        rebuild this graph without the source data (``torch.load(..., weights_only=True)`` reads it)."""
        def ids(id_map):
            return None if id_map is None else id_map.ids.tolist()

        return {"name": self.name, "num_users": self.num_users, "num_items": self.num_items,
                **{split: _csr_to_tensors(getattr(self, split)) for split in ("train", "valid", "test")},
                "user_ids": ids(self.user_map), "item_ids": ids(self.item_map)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "InteractionGraph":
        shape = (int(state["num_users"]), int(state["num_items"]))
        return cls(*shape, *(_csr_from_tensors(state.get(split), shape) for split in ("train", "valid", "test")),
                   user_map=None if state.get("user_ids") is None else IdMap(state["user_ids"]),
                   item_map=None if state.get("item_ids") is None else IdMap(state["item_ids"]),
                   name=state.get("name", "interactions"))

    # ----------------------------------------------------------------- derived graphs
    def with_validation(self, fraction: float = 0.1, seed: int = 0) -> "InteractionGraph":
        """Carve a seeded per-user validation split out of train (for model selection)."""
        if self.valid is not None:
            raise ValueError(f"{self.name} already has a validation split")
        coo = self.train.tocoo()
        part = per_user_split(coo.row, (fraction,), seed=seed)
        return replace(
            self,
            train=interaction_matrix(coo.row[part == 0], coo.col[part == 0], self.num_users, self.num_items),
            valid=interaction_matrix(coo.row[part == 1], coo.col[part == 1], self.num_users, self.num_items),
        )

    def known_interactions(self, *splits: str) -> sp.csr_matrix:
        """Union of the named splits: the items to exclude when ranking for another split."""
        total = sp.csr_matrix((self.num_users, self.num_items), dtype=np.float32)
        for split in splits:
            matrix = getattr(self, split)
            if matrix is not None:
                total = total + matrix
        return interaction_matrix(*total.nonzero(), self.num_users, self.num_items)

    def split(self, name: str) -> sp.csr_matrix:
        matrix = getattr(self, name, None) if name in ("train", "valid", "test") else None
        if matrix is None:
            raise ValueError(f"{self.name} has no '{name}' split")
        return matrix

    @property
    def num_train(self) -> int:
        return int(self.train.nnz)

    def summary(self) -> dict:
        out = {"name": self.name, "users": self.num_users, "items": self.num_items}
        for split in ("train", "valid", "test"):
            matrix = getattr(self, split)
            if matrix is not None:
                out[split] = int(matrix.nnz)
        return out

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in self.summary().items())
        return f"InteractionGraph({parts})"


def _csr_to_tensors(matrix: sp.csr_matrix | None) -> dict[str, torch.Tensor] | None:
    if matrix is None:
        return None
    return {"indptr": torch.from_numpy(matrix.indptr.astype(np.int64)),
            "indices": torch.from_numpy(matrix.indices.astype(np.int64))}


def _csr_from_tensors(parts: dict[str, torch.Tensor] | None, shape) -> sp.csr_matrix | None:
    if parts is None:
        return None
    indices = parts["indices"].numpy()
    return sp.csr_matrix((np.ones(indices.shape[0], np.float32), indices, parts["indptr"].numpy()), shape=shape)
