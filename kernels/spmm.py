"""Sparse (CSR) x dense products for message passing on CPU.

Why hand-written: LightGCN's training step is a handful of CSR x (N, 64) products.
``torch.sparse.mm`` on CPU spends most of its time outside the inner loop (format
checks, a generic kernel, a dense zero-fill of the gradient), and it cannot compute
only the rows a minibatch needs. These kernels do exactly the arithmetic, parallel over
output rows, in float32, writing into caller-owned buffers.
"""
from __future__ import annotations

import numba as nb

_OPTS = dict(nogil=True, cache=True, fastmath=True)


@nb.njit(inline="always")
def _row_product(indptr, indices, values, r, x, out_row):
    # out_row = A[r] @ x, accumulated in place (the row is hot in L1 while it is summed).
    for d in range(x.shape[1]):
        out_row[d] = 0.0
    for p in range(indptr[r], indptr[r + 1]):
        j = indices[p]
        v = values[p]
        for d in range(x.shape[1]):
            out_row[d] += v * x[j, d]


@nb.njit(parallel=True, **_OPTS)
def csr_spmm(indptr, indices, values, x, out):
    """out[r] = sum_j A[r, j] * x[j] for every row r of A (out is overwritten)."""
    for r in nb.prange(indptr.shape[0] - 1):
        _row_product(indptr, indices, values, r, x, out[r])


@nb.njit(parallel=True, **_OPTS)
def csr_spmm_rows(indptr, indices, values, rows, x, out):
    """out[k] = sum_j A[rows[k], j] * x[j]: the product restricted to some rows."""
    for k in nb.prange(rows.shape[0]):
        _row_product(indptr, indices, values, rows[k], x, out[k])


@nb.njit(**_OPTS)
def csr_spmm_rows_transpose(indptr, indices, values, rows, grad, out):
    """out += A[rows]^T grad, i.e. out[j] += A[rows[k], j] * grad[k].

    The backward of :func:`csr_spmm_rows`. A scatter: serial on purpose, since the
    rows of one minibatch touch a few hundred thousand entries at most and a parallel
    scatter would need atomics or per-thread copies of ``out``.
    """
    dim = grad.shape[1]
    for k in range(rows.shape[0]):
        r = rows[k]
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            v = values[p]
            for d in range(dim):
                out[j, d] += v * grad[k, d]
