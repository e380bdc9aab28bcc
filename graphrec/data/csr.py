"""Compressed sparse row adjacencies: the layout the samplers and DGL converters read graphs in."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


@dataclass
class CSRGraph:
    """A CSR adjacency for sampling: row ``v`` holds the sources of ``v``'s in-edges.

    ``edge_ids`` maps a CSR position to the caller's edge id (``None``: the position is
    the id). ``num_sources`` is the number of nodes the indices point into (differs from
    the row count for bipartite relations).
    """

    indptr: np.ndarray
    indices: np.ndarray
    num_sources: int
    edge_ids: np.ndarray | None = None

    @property
    def num_targets(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @classmethod
    def from_scipy(cls, matrix) -> "CSRGraph":
        """Row ``v`` of ``matrix`` lists ``v``'s neighbours (any non-zero is an edge)."""
        matrix = sp.csr_matrix(matrix)
        return cls(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64), int(matrix.shape[1]))

    @classmethod
    def from_edge_index(cls, edge_index, num_sources: int, num_targets: int | None = None) -> "CSRGraph":
        """From a (2, E) source -> target ``edge_index``; ``e_id`` refers to its columns."""
        edge_index = torch.as_tensor(edge_index).cpu().numpy().astype(np.int64, copy=False)
        num_targets = num_sources if num_targets is None else num_targets
        src, dst = edge_index
        order = np.argsort(dst, kind="stable")
        indptr = np.zeros(num_targets + 1, dtype=np.int64)
        np.cumsum(np.bincount(dst, minlength=num_targets), out=indptr[1:])
        return cls(indptr, np.ascontiguousarray(src[order]), num_sources, order.astype(np.int64))

    def edge_id(self, positions: np.ndarray) -> np.ndarray:
        return positions if self.edge_ids is None else self.edge_ids[positions]


def bipartite_adjacency(train) -> CSRGraph:
    """The symmetric user-item graph of a users x items matrix as one homogeneous CSR.

    Users are nodes ``0..U-1`` and items ``U..U+I-1`` (LightGCN's layout).
    """
    train = sp.csr_matrix(train)
    num_users, num_items = train.shape
    adjacency = sp.bmat([[None, train], [train.T, None]], format="csr")
    adjacency.sort_indices()
    return CSRGraph.from_scipy(adjacency) if adjacency.shape[0] else CSRGraph(
        np.zeros(1, np.int64), np.zeros(0, np.int64), num_users + num_items)
