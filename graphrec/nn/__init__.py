"""Reusable graph operations the models compose (PyG's ``nn/conv`` + ``gcn_norm`` shape).

- :mod:`graphrec.nn.norm`: ``A_hat = D^-1/2 A D^-1/2`` of an ``edge_index`` (GCN) or of
  user-item interactions (LightGCN), as a CSR;
- :mod:`graphrec.nn.propagate`: :class:`NormalizedAdjacency`, differentiable ``A_hat @ x`` (numba
  kernels on CPU, torch sparse on accelerators), :class:`GCNPropagation` (``cached=``/``normalize=``)
  and LightGCN's fused :func:`layer_mean_rows`;
- :mod:`graphrec.nn.aggregate`: the same product over an explicit edge list (:class:`EdgeBlock`);
- :mod:`graphrec.nn.subgraph`: propagation over sampled K-hop subgraphs;
- :mod:`graphrec.nn.loss`: the BPR loss with L2 on the batch's layer-0 embeddings.
"""
from graphrec.nn.aggregate import EdgeBlock, aggregate
from graphrec.nn.loss import bpr_loss
from graphrec.nn.norm import bipartite_norm, gcn_norm
from graphrec.nn.propagate import GCNPropagation, NormalizedAdjacency, layer_mean_rows
from graphrec.nn.subgraph import NORMALIZATIONS, SubgraphPropagation

__all__ = ["EdgeBlock", "GCNPropagation", "NORMALIZATIONS", "NormalizedAdjacency", "SubgraphPropagation",
           "aggregate", "bipartite_norm", "bpr_loss", "gcn_norm", "layer_mean_rows"]
