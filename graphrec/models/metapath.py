"""Meta-paths on PyG heterogeneous graphs: composing relations into t-order relations.

A meta-path is a tuple of PyG edge types chained source to target,
``((s, r1, m), (m, r2, d))``: messages flow ``s -> m -> d`` and the ``d`` nodes aggregate from
the ``s`` nodes that reach them. Its adjacency is the boolean product of the relations'
adjacencies, ``A_{d<-s} = [A_{d<-m} A_{m<-s} > 0]``, returned as a PyG ``edge_index``
(row = source ``s``, col = target ``d``, sorted by target, no duplicates). Paths that pass
through a node and come back (paper -> author -> same paper) are kept, as sparse matrix
products (and LATTE's and HAN's meta-path graphs) keep them.

Names read from the aggregating type outward, as in LATTE and HAN: the path above, with
``s = paper, m = author, d = paper``, is ``paper-author-paper``.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import scipy.sparse as sp
import torch

EdgeType = tuple[str, str, str]
MetaPath = tuple[EdgeType, ...]


def source_type(path: MetaPath) -> str:
    return path[0][0]


def target_type(path: MetaPath) -> str:
    return path[-1][2]


def metapath_name(path: MetaPath) -> str:
    """``paper-author-paper``: node types from the aggregating (target) type to the source.
    Relation names other than the generic ``to`` are kept: ``paper-[cites]-paper``."""
    parts = [path[-1][2]]
    for src, rel, _ in reversed(path):
        parts.append(f"[{rel}]-{src}" if rel not in ("to", "rev_to") else src)
    return "-".join(parts)


def extend_metapaths(previous: Iterable[MetaPath], base: Iterable[EdgeType]) -> list[MetaPath]:
    """The (t+1)-order meta-paths: a base relation ``(s, r, m)`` prepended to every t-order
    path that starts at ``m`` (LATTE's composition: the previous layer's relations, seen from
    their aggregating type, continued by one base relation at the far end)."""
    base = [tuple(et) for et in base]
    return [(et,) + tuple(path) for path in previous for et in base if et[2] == source_type(path)]


def _csr(edge_index: torch.Tensor, num_targets: int, num_sources: int) -> sp.csr_matrix:
    edge_index = edge_index.detach().cpu().numpy()
    ones = np.ones(edge_index.shape[1], dtype=np.float32)
    return sp.csr_matrix((ones, (edge_index[1], edge_index[0])), shape=(num_targets, num_sources))


def compose_edge_index(first: torch.Tensor, second: torch.Tensor, num_nodes: tuple[int, int, int]) -> torch.Tensor:
    """``edge_index`` of the path ``s -> m -> d`` from ``first`` (``s -> m``) and ``second``
    (``m -> d``); ``num_nodes = (|s|, |m|, |d|)``. Sorted by target, then source; no duplicates."""
    n_s, n_m, n_d = num_nodes
    product = (_csr(second, n_d, n_m) @ _csr(first, n_m, n_s)).tocoo()
    order = np.lexsort((product.col, product.row))
    pairs = np.vstack([product.col[order], product.row[order]]).astype(np.int64)
    return torch.from_numpy(pairs).to(first.device)


def metapath_edge_index(path: MetaPath, edge_index_dict: dict, num_nodes: dict[str, int]) -> torch.Tensor:
    """``edge_index`` (source -> target) of a whole meta-path on one graph."""
    result = edge_index_dict[path[0]]
    for et in path[1:]:
        result = compose_edge_index(result, edge_index_dict[et],
                                    (num_nodes[source_type(path)], num_nodes[et[0]], num_nodes[et[2]]))
    return result


class MetaPathCache:
    """The meta-path graphs of the last graph seen, keyed by its edge tensors (object, version),
    so full-batch training composes once while every sampled batch gets its own."""

    def __init__(self):
        self._key = None
        self._value: dict = {}

    def get(self, edge_index_dict: dict, num_nodes: dict[str, int], build) -> dict:
        key = tuple((et, id(ei), ei._version, ei.shape[1]) for et, ei in sorted(edge_index_dict.items())) + \
            tuple(sorted(num_nodes.items()))
        if key != self._key:
            self._value = build()
            self._key = key
        return self._value
