"""Scores of many sampled (row, item) pairs, ``out[b, n] = users[b] . items[pairs[b, n]]``, and their gradients.

UltraGCN's faithful sampling scores 1,500 negatives per positive: a (512, 1500) block of inner
products per batch over a 41k-item table. The torch ways to get it both waste most of
their work: gathering the (B, N, d) negative rows moves 197 MB per batch (and as much again
for the scatter-add backward), and scoring every item with one matmul then picking N of them
computes 27x more inner products than needed (B x 41k instead of B x 1.5k) and writes a
dense (B, items) gradient. Here each score is one 64-wide dot product against a table row
read in place (the table is ~10 MB, so rows mostly come from cache), and the backward forms
the user gradient the same way and adds the item gradient straight into its rows.

Why hand-written: no library op computes a batched "gathered dot product" without
materialising the gathered rows (``torch_scatter``/``torch_sparse`` offer sampled dense-dense
matmul only for sparse patterns on CSR, which would need the pairs sorted and a CSR built
per batch). The timings against both torch ways are in benchmarks/results/README.md
("Kernel design measurements").

The item-gradient scatter runs in parallel without atomics: each thread owns a contiguous
range of item rows and scans all pairs, adding only those that fall in its range (a scan of
B x N integers per thread is cheap next to the d-wide adds). Results are the same, bit for
bit, whatever the thread count: every row's additions happen in pair order.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_OPTS = dict(nogil=True, cache=True, fastmath=True)


@nb.njit(parallel=True, **_OPTS)
def pair_scores(users, items, pairs):
    """``out[b, n] = users[b] . items[pairs[b, n]]`` for ``users`` (B, d), ``items`` (I, d), ``pairs`` (B, N)."""
    rows, count = pairs.shape
    dim = users.shape[1]
    out = np.empty((rows, count), users.dtype)
    for b in nb.prange(rows):
        for n in range(count):
            item = pairs[b, n]
            acc = users[b, 0] * 0
            for k in range(dim):
                acc += users[b, k] * items[item, k]
            out[b, n] = acc
    return out


@nb.njit(parallel=True, **_OPTS)
def pair_scores_user_grad(grad, items, pairs):
    """``d out / d users``: ``g_users[b] = sum_n grad[b, n] * items[pairs[b, n]]``."""
    rows, count = pairs.shape
    dim = items.shape[1]
    out = np.zeros((rows, dim), items.dtype)
    for b in nb.prange(rows):
        for n in range(count):
            g = grad[b, n]
            item = pairs[b, n]
            for k in range(dim):
                out[b, k] += g * items[item, k]
    return out


@nb.njit(parallel=True, **_OPTS)
def pair_scores_item_grad(grad, users, pairs, num_items, parts):
    """``d out / d items`` as a dense (I, d) array: ``g_items[pairs[b, n]] += grad[b, n] * users[b]``.

    ``parts`` threads each own ``num_items / parts`` item rows (see the module notes).
    """
    rows, count = pairs.shape
    dim = users.shape[1]
    out = np.zeros((num_items, dim), users.dtype)
    step = (num_items + parts - 1) // parts
    for part in nb.prange(parts):
        low = part * step
        high = min(num_items, low + step)
        for b in range(rows):
            for n in range(count):
                item = pairs[b, n]
                if low <= item < high:
                    g = grad[b, n]
                    for k in range(dim):
                        out[item, k] += g * users[b, k]
    return out
