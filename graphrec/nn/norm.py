r"""Symmetric normalisation of a graph's adjacency: ``A_hat = D^-1/2 A D^-1/2`` as a scipy CSR.

Rows are targets: ``(A_hat @ x)[i]`` gathers from ``i``'s in-neighbours. The CSR is what the
propagation op (:class:`graphrec.nn.NormalizedAdjacency`) multiplies by, on CPU with graphrec's
numba kernels, on accelerators with torch's sparse kernels.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def gcn_norm(edge_index: torch.Tensor, num_nodes: int, add_self_loops: bool = True) -> sp.csr_matrix:
    r"""GCN's ``D^-1/2 (A + I) D^-1/2`` (``add_self_loops``) or ``D^-1/2 A D^-1/2``, float32 CSR.

    ``edge_index[:, e] = (j, i)`` is an edge from ``j`` to ``i`` (PyG's source-to-target
    convention): ``A[i, j] = 1``. Self-loops already present are kept once (weight 1), not
    doubled; degrees are in-degrees of ``A (+ I)``; repeated edges add up. The weights are PyG's
    :func:`torch_geometric.nn.conv.gcn_conv.gcn_norm`, so a model on this matrix is a ``GCNConv``.
    """
    from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm

    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    edge_index, weight = pyg_gcn_norm(edge_index.detach().cpu(), None, num_nodes, add_self_loops=add_self_loops,
                                      dtype=torch.float32)
    source, target = edge_index.numpy()
    return sp.csr_matrix((weight.numpy(), (target, source)), shape=(num_nodes, num_nodes), dtype=np.float32)


def bipartite_norm(train: sp.spmatrix, self_loops: bool = False) -> sp.csr_matrix:
    r"""``D^-1/2 A D^-1/2`` of the user-item graph of a users x items interaction matrix, float32 CSR.

    Nodes are users ``0..U-1`` then items ``U..U+I-1``; every interaction is an undirected edge of
    weight 1 (repeats and stored values ignored), so ``A_hat`` is symmetric. Isolated nodes get zero
    rows (the LightGCN official code's ``inf -> 0`` convention); ``self_loops`` adds ``I`` before
    computing the degrees.
    """
    ones = sp.csr_matrix(train, dtype=np.float32, copy=True)
    ones.data[:] = 1.0
    adjacency = sp.bmat([[None, ones], [ones.T, None]], format="csr")
    if self_loops:
        adjacency = adjacency + sp.eye(adjacency.shape[0], dtype=np.float32, format="csr")
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, degree ** -0.5, 0.0).astype(np.float32)
    scale = sp.diags(inv_sqrt)
    return (scale @ adjacency @ scale).tocsr()
