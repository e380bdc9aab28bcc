"""Differentiable ``A_hat @ x`` on a whole graph: numba CSR kernels on CPU, torch sparse on accelerators."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.kernels.spmm import csr_spmm, csr_spmm_rows, csr_spmm_rows_transpose
from graphrec.nn.norm import bipartite_norm, gcn_norm


class NormalizedAdjacency:
    """A normalised adjacency ``A_hat`` (rows are targets) as a CSR, and products with it.

    Build it with :meth:`from_edge_index` (GCN's ``D^-1/2 (A + I) D^-1/2``) or
    :meth:`from_interactions` (LightGCN's user-item ``D^-1/2 A D^-1/2``). :meth:`propagate`
    is ``A_hat @ x`` with autograd: float32 on CPU runs graphrec's numba kernels
    (:mod:`graphrec.kernels.spmm`); other devices and dtypes use torch's sparse kernels on a
    per-(device, dtype) copy. The backward multiplies by ``A_hat^T``, which is ``A_hat`` itself for
    undirected graphs (checked once, on the first backward, when not known from construction).
    """

    def __init__(self, matrix: sp.spmatrix, num_users: int | None = None, symmetric: bool | None = None):
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        matrix.sum_duplicates()
        matrix.sort_indices()
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"an adjacency is square, got {matrix.shape}")
        self.num_users = num_users
        self.num_nodes = matrix.shape[0]
        self.indptr = matrix.indptr.astype(np.int64)
        self.indices = matrix.indices.astype(np.int64)
        self.values = matrix.data.astype(np.float32)
        self.symmetric = symmetric
        self._transpose: NormalizedAdjacency | None = None
        self._device_copies: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self.workspace = _Workspace()

    @classmethod
    def from_interactions(cls, train: sp.spmatrix, self_loops: bool = False) -> "NormalizedAdjacency":
        """The user-item graph of a users x items matrix (:func:`graphrec.nn.norm.bipartite_norm`)."""
        return cls(bipartite_norm(train, self_loops), num_users=train.shape[0], symmetric=True)

    @classmethod
    def from_edge_index(cls, edge_index: torch.Tensor, num_nodes: int,
                        add_self_loops: bool = True) -> "NormalizedAdjacency":
        """GCN's normalisation of ``edge_index`` (:func:`graphrec.nn.norm.gcn_norm`)."""
        return cls(gcn_norm(edge_index, num_nodes, add_self_loops))

    @classmethod
    def from_torch_sparse(cls, matrix: torch.Tensor) -> "NormalizedAdjacency":
        """An ``A_hat`` already normalised, as a torch sparse (COO or CSR) ``[N, N]`` tensor."""
        coo = matrix.detach().cpu().to_sparse_coo().coalesce()
        row, col = coo.indices().numpy()
        return cls(sp.csr_matrix((coo.values().float().numpy(), (row, col)), shape=tuple(coo.shape)))

    def to_scipy(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.values, self.indices, self.indptr), shape=(self.num_nodes, self.num_nodes))

    def to_torch_sparse(self) -> torch.Tensor:
        return torch.sparse_csr_tensor(
            torch.from_numpy(self.indptr), torch.from_numpy(self.indices), torch.from_numpy(self.values),
            size=(self.num_nodes, self.num_nodes),
        )

    def to_dense(self) -> torch.Tensor:
        return torch.from_numpy(self.to_scipy().toarray())

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_nodes, self.num_nodes)

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    def transpose(self) -> "NormalizedAdjacency":
        """``A_hat^T`` (``self`` when symmetric)."""
        if self.symmetric is None:
            transposed = self.to_scipy().T.tocsr()
            transposed.sort_indices()
            self.symmetric = (np.array_equal(transposed.indptr, self.indptr)
                              and np.array_equal(transposed.indices, self.indices)
                              and np.array_equal(transposed.data, self.values))
            if not self.symmetric:
                self._transpose = NormalizedAdjacency(transposed, self.num_users, symmetric=False)
                self._transpose._transpose = self
        return self if self.symmetric else self._transpose

    def propagate(self, x: torch.Tensor) -> torch.Tensor:
        """``A_hat @ x`` for all nodes (differentiable)."""
        if x.shape[0] != self.num_nodes:
            raise ValueError(f"x has {x.shape[0]} rows, the adjacency {self.num_nodes} nodes")
        if x.dtype != torch.float32:
            return self._torch_sparse(x.device, x.dtype) @ x  # e.g. float64 references: torch's autograd
        return _Propagate.apply(x, self)

    def propagate_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``(A_hat @ x)[rows]`` computed for those rows only (differentiable in x)."""
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return self.propagate(x)[rows]
        return _PropagateRows.apply(x, rows, self)

    def _torch_sparse(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        cached = self._device_copies.get((device, dtype))
        if cached is None:
            cached = self._device_copies[(device, dtype)] = self.to_torch_sparse().to(device=device, dtype=dtype)
        return cached

    def _spmm(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_f32_contiguous(x)
        if x.device.type != "cpu":
            return self._torch_sparse(x.device, x.dtype) @ x  # cuSPARSE
        out = torch.empty_like(x)
        csr_spmm(self.indptr, self.indices, self.values, x.numpy(), out.numpy())
        return out


def _as_f32_contiguous(x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.float32:
        raise TypeError(f"propagation works in float32, got {x.dtype}")
    return x.detach().contiguous()


class _Propagate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, adjacency: NormalizedAdjacency):
        ctx.adjacency = adjacency
        return adjacency._spmm(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.adjacency.transpose()._spmm(grad), None


class _PropagateRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rows, adjacency: NormalizedAdjacency):
        rows_np = rows.detach().cpu().numpy().astype(np.int64)
        ctx.adjacency, ctx.rows, ctx.shape = adjacency, rows_np, x.shape
        x = _as_f32_contiguous(x)
        out = torch.empty((rows_np.shape[0], x.shape[1]), dtype=x.dtype)
        csr_spmm_rows(adjacency.indptr, adjacency.indices, adjacency.values, rows_np, x.numpy(), out.numpy())
        return out

    @staticmethod
    def backward(ctx, grad):
        adjacency = ctx.adjacency
        out = torch.zeros(ctx.shape, dtype=grad.dtype)
        csr_spmm_rows_transpose(adjacency.indptr, adjacency.indices, adjacency.values, ctx.rows,
                                _as_f32_contiguous(grad).numpy(), out.numpy())
        return out, None, None


class GCNPropagation:
    """``A_hat @ x`` from an ``edge_index``, with PyG ``GCNConv``'s switches.

    ``cached``: keep ``A_hat`` of the last graph seen, keyed by the ``edge_index`` tensor itself (the
    same object, not modified in place since, same node count), so full-batch training normalises
    once. ``normalize``: ``D^-1/2 (A [+ I]) D^-1/2`` (GCN); off, ``A (+ I)`` with unit weights.
    An ``edge_index`` that already is an adjacency (a :class:`NormalizedAdjacency`, or a torch sparse
    ``[N, N]`` tensor, converted once per tensor object) is used as it is.
    """

    def __init__(self, cached: bool = True, normalize: bool = True, add_self_loops: bool = True):
        self.cached, self.normalize, self.add_self_loops = cached, normalize, add_self_loops
        self._key: tuple | None = None
        self._value: NormalizedAdjacency | None = None

    def adjacency(self, edge_index, num_nodes: int) -> NormalizedAdjacency:
        if isinstance(edge_index, NormalizedAdjacency):
            _check_nodes(edge_index.shape, num_nodes)
            return edge_index
        key = (edge_index, edge_index._version, num_nodes)
        if self.cached and self._key is not None and self._key[0] is edge_index and self._key[1:] == key[1:]:
            return self._value
        if edge_index.layout != torch.strided:
            _check_nodes(tuple(edge_index.shape), num_nodes)
            value = NormalizedAdjacency.from_torch_sparse(edge_index)
        elif self.normalize:
            value = NormalizedAdjacency.from_edge_index(edge_index, num_nodes, self.add_self_loops)
        else:
            source, target = edge_index.detach().cpu().numpy()
            ones = np.ones(source.shape[0], dtype=np.float32)
            matrix = sp.csr_matrix((ones, (target, source)), shape=(num_nodes, num_nodes))
            if self.add_self_loops:
                matrix = matrix + sp.eye(num_nodes, dtype=np.float32, format="csr")
            value = NormalizedAdjacency(matrix)
        if self.cached:
            self._key, self._value = key, value
        return value

    def __call__(self, x: torch.Tensor, edge_index, num_hops: int = 1) -> torch.Tensor:
        """``A_hat^num_hops @ x``."""
        adjacency = self.adjacency(edge_index, x.shape[0])
        for _ in range(num_hops):
            x = adjacency.propagate(x)
        return x


def _check_nodes(shape: tuple, num_nodes: int) -> None:
    if tuple(shape) != (num_nodes, num_nodes):
        raise ValueError(f"adjacency has shape {tuple(shape)}, expected {(num_nodes, num_nodes)}")


def layer_mean_rows(adjacency: NormalizedAdjacency, x0: torch.Tensor, rows: torch.Tensor,
                    num_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LightGCN's layer mean ``(1/(K+1)) sum_k (A_hat^k x0)[rows]``, and ``x0[rows]``, in one fused op.

    Equal to propagating every layer for every node and indexing, but:

    - the last layer is computed for ``rows`` only;
    - the backward needs no saved activations (propagation is linear): with
      ``S`` the batch gradient scattered to ``rows``, ``h = A_rows^T g + S`` then
      ``h = S + A_hat h`` K-1 times gives the gradient of ``x0`` (``A_hat`` must be symmetric);
    - intermediate layers live in buffers reused across steps, so a training step
      allocates (and zero-fills) one node-sized matrix instead of one per op.
    """
    if x0.device.type != "cpu" or x0.dtype != torch.float32:
        x, total = x0, x0[rows]
        for _ in range(num_layers):
            x = adjacency.propagate(x)
            total = total + x[rows]
        return total / (num_layers + 1), x0[rows]
    if adjacency.transpose() is not adjacency:
        raise ValueError("layer_mean_rows needs a symmetric adjacency (its backward multiplies by A_hat)")
    return _LayerMeanRows.apply(x0, rows, adjacency, num_layers)


class _Workspace:
    """Two node-sized float32 buffers kept between steps (ping-pong)."""

    def __init__(self):
        self.buffers: list[np.ndarray] = []

    def get(self, shape) -> tuple[np.ndarray, np.ndarray]:
        if not self.buffers or self.buffers[0].shape != shape:
            self.buffers = [np.empty(shape, np.float32), np.empty(shape, np.float32)]
        return self.buffers[0], self.buffers[1]
class _LayerMeanRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x0, rows, adjacency: NormalizedAdjacency, num_layers: int):
        x0_np = _as_f32_contiguous(x0).numpy()
        rows_np = rows.detach().cpu().numpy().astype(np.int64)
        ctx.adjacency, ctx.rows, ctx.num_layers, ctx.shape = adjacency, rows_np, num_layers, x0.shape
        a, ind, val = adjacency.indptr, adjacency.indices, adjacency.values
        total = x0_np[rows_np].copy()
        current = x0_np
        ping, pong = adjacency.workspace.get(x0_np.shape)
        for layer in range(num_layers):
            if layer == num_layers - 1:
                last = np.empty_like(total)
                csr_spmm_rows(a, ind, val, rows_np, current, last)
                total += last
            else:
                target = ping if layer % 2 == 0 else pong
                csr_spmm(a, ind, val, current, target)
                total += target[rows_np]
                current = target
        total /= num_layers + 1
        return torch.from_numpy(total), torch.from_numpy(x0_np[rows_np])

    @staticmethod
    def backward(ctx, grad_mean, grad_rows0):
        adjacency, rows, num_layers = ctx.adjacency, ctx.rows, ctx.num_layers
        a, ind, val = adjacency.indptr, adjacency.indices, adjacency.values
        g = torch.from_numpy(_as_f32_contiguous(grad_mean).numpy() / np.float32(num_layers + 1))
        rows_t = torch.from_numpy(rows)
        result = torch.empty(ctx.shape, dtype=torch.float32)
        buffers = [result.numpy(), adjacency.workspace.get(tuple(ctx.shape))[0]]
        # Ping-pong so that the last product lands in ``result`` (no final copy).
        index = 0 if max(num_layers - 1, 0) % 2 == 0 else 1
        current = buffers[index]
        current.fill(0.0)
        if num_layers > 0:
            csr_spmm_rows_transpose(a, ind, val, rows, g.numpy(), current)
        torch.from_numpy(current).index_add_(0, rows_t, g)
        for _ in range(num_layers - 1):
            index = 1 - index
            csr_spmm(a, ind, val, current, buffers[index])
            current = buffers[index]
            torch.from_numpy(current).index_add_(0, rows_t, g)
        if grad_rows0 is not None:
            result.index_add_(0, rows_t, grad_rows0.contiguous())
        return result, None, None, None
