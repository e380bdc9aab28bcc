"""Full-ranking evaluation for top-k recommendation.

Protocol (LightGCN/NGCF's): for every user with at least one target item, score all
items, remove the user's known interactions (train, and valid when testing), take the
top k and compare with the targets. Binary relevance. Per user:

- recall@k = hits / |targets|
- precision@k = hits / k
- ndcg@k = DCG / IDCG, DCG = sum_{p<k} rel_p / log2(p + 2), IDCG over min(|targets|, k) positions
- hit@k = 1 if hits > 0

Each is averaged over users with targets.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.kernels.ranking import topk_finalize, topk_hits, topk_tile_update


def _csr_parts(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sub = matrix[rows]
    sub.sort_indices()
    return sub.indptr.astype(np.int64), sub.indices.astype(np.int64)


def item_tiles(item_emb: torch.Tensor, item_tile: int = 8192) -> list[tuple[int, torch.Tensor]]:
    """``(first item, dim x item_tile block)`` pairs of the transposed item table, each contiguous on the
    CPU: what :func:`top_k_items` scores against. A caller scoring the same items batch after batch
    builds them once: re-tiling a 1M-item table for every 134-user batch made recommend-all 2.3x
    slower (docs/scaling.md, "Recommending for every user")."""
    item_t = item_emb.detach().float().t().contiguous()
    return [(start, item_t[:, start: start + item_tile].cpu().contiguous())
            for start in range(0, item_emb.shape[0], item_tile)]


def top_k_items(user_emb: torch.Tensor, item_emb: torch.Tensor, k: int,
                exclude: sp.csr_matrix | None = None, users: np.ndarray | None = None,
                chunk_size: int = 256, item_tile: int = 8192,
                tiles: list[tuple[int, torch.Tensor]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best-first top-k item indices (and scores) per user by inner product, skipping ``exclude``.

    Ties go to the lower item index. Rows with fewer than k candidates are padded with -1
    (score -inf). Scores are computed ``chunk_size`` users x ``item_tile`` items at a time
    and consumed by the streaming top-k kernel while in cache. ``tiles``: :func:`item_tiles` of
    ``item_emb``, when the caller already has them.
    """
    users = np.arange(user_emb.shape[0]) if users is None else np.asarray(users, dtype=np.int64)
    if user_emb.device.type != "cpu":
        return top_k_items_on_device(user_emb, item_emb, k, exclude, users)
    items = np.empty((users.shape[0], k), dtype=np.int64)
    scores = np.empty((users.shape[0], k), dtype=np.float32)
    if tiles is None:
        tiles = item_tiles(item_emb, item_tile)
    buffers = {tile.shape[1]: torch.empty(chunk_size, tile.shape[1]) for _, tile in tiles}
    heap_s = np.empty((chunk_size, k), dtype=np.float32)
    heap_i = np.empty((chunk_size, k), dtype=np.int64)
    for start in range(0, users.shape[0], chunk_size):
        rows = users[start: start + chunk_size]
        n = rows.shape[0]
        chunk = user_emb[torch.from_numpy(rows)].detach().float()
        if exclude is not None:
            indptr, indices = _csr_parts(exclude, rows)
        else:
            indptr, indices = np.zeros(n + 1, np.int64), np.zeros(0, np.int64)
        mask_pos = indptr[:-1].copy()
        heap_size = np.zeros(n, dtype=np.int64)
        for offset, tile in tiles:
            block = buffers[tile.shape[1]][:n]
            if chunk.device.type == "cpu":
                torch.mm(chunk, tile, out=block)
            else:
                block.copy_(chunk @ tile.to(chunk.device))
            topk_tile_update(block.numpy(), offset, indptr, indices, mask_pos, heap_s[:n], heap_i[:n], heap_size)
        topk_finalize(heap_s[:n], heap_i[:n], heap_size, items[start: start + n], scores[start: start + n])
    return items, scores


def top_k_items_on_device(user_emb: torch.Tensor, item_emb: torch.Tensor, k: int,
                          exclude: sp.csr_matrix | None = None, users: np.ndarray | None = None,
                          chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k_items` computed where the embeddings live (the GPU path; runs on CPU tensors too).

    Scores, masking and ``topk`` stay on the device and only the (users, k) result comes back: with
    CUDA embeddings the numba path would copy every score block to the host. The order is the
    numba path's exactly: higher score first, ties to the lower item index, short rows padded with
    -1 / -inf.
    """
    device = user_emb.device
    users = np.arange(user_emb.shape[0]) if users is None else np.asarray(users, dtype=np.int64)
    n_items = item_emb.shape[0]
    if chunk_size is None:  # score blocks of about 1 GiB: the GPU wants large matmuls
        chunk_size = max(256, min(16384, (1 << 28) // max(n_items, 1)))
    item_t = item_emb.detach().float().t().contiguous()
    kept = min(k, n_items)
    items = np.full((users.shape[0], k), -1, dtype=np.int64)
    scores = np.full((users.shape[0], k), -np.inf, dtype=np.float32)
    for start in range(0, users.shape[0], chunk_size):
        rows = users[start: start + chunk_size]
        block = user_emb[torch.from_numpy(rows).to(device)].detach().float() @ item_t
        if exclude is not None:
            known = exclude[rows].tocoo()
            block[torch.from_numpy(known.row.astype(np.int64)).to(device),
                  torch.from_numpy(known.col.astype(np.int64)).to(device)] = -torch.inf
        top_s, top_i = _exact_topk(block, kept)
        top_i[top_s == -torch.inf] = -1
        items[start: start + rows.shape[0], :kept] = top_i.cpu().numpy()
        scores[start: start + rows.shape[0], :kept] = top_s.cpu().numpy()
    return items, scores


def _exact_topk(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise top k of ``block`` ordered by (score desc, index asc), as the numba kernels order it.

    ``torch.topk`` leaves the order of equal scores unspecified, so the k winners are re-sorted, and
    rows whose k-th score is shared with items outside the winners (rare with float scores; always
    for rows with fewer than k unmasked items) are re-ranked with a stable full-row sort.
    """
    values, index = torch.topk(block, k, dim=1)
    by_index = torch.argsort(index, dim=1)
    values, index = values.gather(1, by_index), index.gather(1, by_index)
    by_score = torch.sort(values, dim=1, descending=True, stable=True).indices
    values, index = values.gather(1, by_score), index.gather(1, by_score)
    kth = values[:, -1:]
    boundary = ((block == kth).sum(1) != (values == kth).sum(1)).nonzero().flatten()
    if boundary.numel():
        full_values, full_index = torch.sort(block[boundary], dim=1, descending=True, stable=True)
        values[boundary], index[boundary] = full_values[:, :k], full_index[:, :k]
    return values, index


def ranking_metrics_from_hits(hits: np.ndarray, num_targets: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Metrics from a (users, max_k) 0/1 hit matrix (best first) and each user's target count."""
    hits = np.asarray(hits, dtype=np.float64)
    num_targets = np.asarray(num_targets, dtype=np.float64)
    if hits.shape[0] == 0:
        return {f"{name}@{k}": 0.0 for k in ks for name in ("recall", "precision", "ndcg", "hit")}
    discounts = 1.0 / np.log2(np.arange(hits.shape[1]) + 2.0)
    out: dict[str, float] = {}
    for k in ks:
        top = hits[:, :k]
        num_hits = top.sum(1)
        dcg = (top * discounts[:k]).sum(1)
        ideal_len = np.minimum(num_targets, k).astype(np.int64)
        idcg = np.concatenate([[0.0], np.cumsum(discounts[:k])])[ideal_len]
        out[f"recall@{k}"] = float(np.mean(num_hits / num_targets))
        out[f"precision@{k}"] = float(np.mean(num_hits / k))
        out[f"ndcg@{k}"] = float(np.mean(dcg / idcg))
        out[f"hit@{k}"] = float(np.mean(num_hits > 0))
    return out


class RankingEvaluator:
    """Full-ranking recall / precision / ndcg / hit @ k, chunked over users.

    Args:
        exclude: users x items CSR of interactions to mask (e.g. train, or train+valid).
        targets: users x items CSR of held-out interactions to find.
        ks: cut-offs (metrics for all are computed from one top-max(k) pass).
        chunk_size: users scored at once; memory is ``chunk_size x num_items`` floats.
    """

    def __init__(self, exclude: sp.csr_matrix, targets: sp.csr_matrix, ks: Sequence[int] = (20,),
                 chunk_size: int = 256):
        if exclude.shape != targets.shape:
            raise ValueError(f"exclude {exclude.shape} and targets {targets.shape} differ in shape")
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be positive cut-offs, got {ks}")
        self.ks = tuple(sorted(set(int(k) for k in ks)))
        self.chunk_size = chunk_size
        targets = sp.csr_matrix(targets)
        targets.sort_indices()
        self.users = np.flatnonzero(np.diff(targets.indptr) > 0)
        self.exclude = sp.csr_matrix(exclude)
        self.targets = targets

    def evaluate(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> dict[str, float]:
        max_k = self.ks[-1]
        hits = np.empty((self.users.shape[0], max_k), dtype=np.int8)
        items, _ = top_k_items(user_emb, item_emb, max_k, self.exclude, self.users, self.chunk_size)
        for start in range(0, self.users.shape[0], self.chunk_size):
            rows = self.users[start: start + self.chunk_size]
            indptr, indices = _csr_parts(self.targets, rows)
            topk_hits(items[start: start + rows.shape[0]], indptr, indices, hits[start: start + rows.shape[0]])
        num_targets = np.diff(self.targets.indptr)[self.users]
        return ranking_metrics_from_hits(hits, num_targets, self.ks)
