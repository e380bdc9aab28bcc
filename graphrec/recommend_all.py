"""Top-k recommendations for every user, streamed to a Parquet file in bounded memory.

Schema (long format, one row per recommendation, the same columns as ``Recommender.recommend``'s
DataFrame):

=======  ===========================  =============================================================
column   type                         meaning
=======  ===========================  =============================================================
user     the user ids' Arrow type     the user's own id (its row index when no ids are given: int64)
rank     int32                        1 = best; ranks 1..n for a user with n <= k recommendations
item     the item ids' Arrow type     the item's own id (its column index when no ids are given: int64)
score    float32                      the inner product of the user's and the item's embedding
=======  ===========================  =============================================================

Rows come user by user in the order of ``users``, best first within a user (ties to the lower item
index, as :func:`~graphrec.metrics.ranking.top_k_items` orders them). A user with fewer than ``k``
unseen items gets fewer rows (never a padding row); a user with none gets no row. Each batch of
users is one row group, so readers can stream the file back a batch at a time.

Memory: the user batch is sized from ``max_memory_mb`` so that the batch's scores block
(``batch x items x 4`` bytes, what the device path materialises; the CPU path scores smaller tiles)
plus its result rows fit: see :func:`user_batch_size`. Embeddings, the seen-items CSR and the id
arrays come on top.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from graphrec.data.idmap import IdMap
from graphrec.metrics.ranking import item_tiles, top_k_items

#: Bytes one recommendation takes on its way out: top_k_items' int64 item + float32 score, then the
#: Arrow columns (user and item ids up to 8 bytes, int32 rank, float32 score).
RESULT_BYTES_PER_ROW = 12 + 24


def user_batch_size(num_items: int, k: int, max_memory_mb: float) -> int:
    """Users per batch: ``floor(max_memory_mb MiB / (num_items x 4 + k x RESULT_BYTES_PER_ROW))``, at least 1.

    One user's row of scores is the floor: below it the batch is one user and the setting is exceeded.
    """
    per_user = 4 * int(num_items) + RESULT_BYTES_PER_ROW * int(k)
    return max(1, int(max_memory_mb * (1 << 20)) // per_user)


@dataclass(frozen=True)
class RecommendAllReport:
    """What :func:`write_recommendations` wrote and how fast: ``items_per_s`` counts scored (user, item) pairs."""

    path: Path
    users: int
    rows: int
    batch_size: int
    seconds: float

    @property
    def users_per_s(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else 0.0

    def items_per_s(self, num_items: int) -> float:
        return self.users * num_items / self.seconds if self.seconds > 0 else 0.0


def write_recommendations(
    path: str | Path,
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    k: int = 20,
    exclude: sp.csr_matrix | None = None,
    users: np.ndarray | None = None,
    user_ids: np.ndarray | IdMap | None = None,
    item_ids: np.ndarray | IdMap | None = None,
    max_memory_mb: float = 512.0,
    progress: bool = True,
    compression: str = "snappy",
) -> RecommendAllReport:
    """Write the top ``k`` items of every user in ``users`` (default: all) to ``path`` (Parquet).

    Args:
        user_emb, item_emb: (users, dim) and (items, dim) embeddings (CPU or CUDA; scores are inner
            products, computed where the embeddings live).
        exclude: users x items CSR of seen items, never recommended (``None``: recommend anything).
        users: row indices of the users to recommend for.
        user_ids, item_ids: the users' and items' own ids, indexed by row / column index (an array or an
            :class:`~graphrec.data.idmap.IdMap`); ``None`` writes the indices.
        max_memory_mb: bound on the batch's scores and results (see :func:`user_batch_size`).
        progress: show a tqdm bar in users/s.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    num_users, num_items = user_emb.shape[0], item_emb.shape[0]
    if exclude is not None and exclude.shape != (num_users, num_items):
        raise ValueError(f"exclude has shape {exclude.shape}, the embeddings give ({num_users}, {num_items})")
    users = np.arange(num_users, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
    user_ids, item_ids = _id_array(user_ids, num_users, "user"), _id_array(item_ids, num_items, "item")
    schema = pa.schema([("user", user_ids.type), ("rank", pa.int32()), ("item", item_ids.type),
                        ("score", pa.float32())])
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
    batch = user_batch_size(num_items, k, max_memory_mb)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    started = time.perf_counter()
    tiles = item_tiles(item_emb) if user_emb.device.type == "cpu" else None  # once, not per batch
    with pq.ParquetWriter(path, schema, compression=compression) as writer, \
            tqdm(total=users.shape[0], unit=" users", unit_scale=True, disable=not progress,
                 desc="recommend") as bar:
        for start in range(0, users.shape[0], batch):
            rows_of_batch = users[start: start + batch]
            top_items, top_scores = top_k_items(user_emb, item_emb, k, exclude, rows_of_batch, tiles=tiles,
                                                chunk_size=min(batch, 256))
            table = _long_table(rows_of_batch, top_items, top_scores, user_ids, item_ids, schema)
            if table.num_rows:
                writer.write_table(table, row_group_size=table.num_rows)
                rows += table.num_rows
            bar.update(rows_of_batch.shape[0])
    return RecommendAllReport(path, int(users.shape[0]), rows, batch, time.perf_counter() - started)


def _id_array(ids, count: int, what: str) -> pa.Array:
    if ids is None:
        return pa.array(np.arange(count, dtype=np.int64))
    values = ids.ids if isinstance(ids, IdMap) else np.asarray(ids)
    if values.shape[0] != count:
        raise ValueError(f"{what} ids hold {values.shape[0]} ids for {count} {what}s")
    return pa.array(values)


def _long_table(users, top_items, top_scores, user_ids: pa.Array, item_ids: pa.Array, schema) -> pa.Table:
    """(users, k) results as long rows; top_k_items pads short rows with -1 at the end, dropped here."""
    valid = top_items >= 0
    per_user = valid.sum(1)
    ranks = np.broadcast_to(np.arange(1, top_items.shape[1] + 1, dtype=np.int32), top_items.shape)[valid]
    return pa.table({
        "user": user_ids.take(pa.array(np.repeat(users, per_user))),
        "rank": pa.array(ranks),
        "item": item_ids.take(pa.array(top_items[valid])),
        "score": pa.array(top_scores[valid].astype(np.float32, copy=False)),
    }, schema=schema)
