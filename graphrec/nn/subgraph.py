r"""Propagation over a sampled K-hop subgraph (PinSage-style minibatch training).

A model with K parameter-free propagation layers (LightGCN, CatGCN's ``A_hat^K``) needs, for
the outputs of a batch of seed nodes, only their K-hop neighbourhood. A
:class:`~graphrec.sampling.NeighborSampler` / :class:`~graphrec.sampling.LinkNeighborSampler`
batch holds exactly that, ordered by hop (PyG's layout: ``n_id`` seeds first, then the nodes
first reached at hop 1, 2, ...; edges of hop ``h`` point into the nodes first reached at hop
``h``). Layer ``k`` is therefore needed only on the nodes first reached at hops ``<= K - k``
and only over the edges of hops ``<= K - k``: both are prefixes, so each layer trims its input
(PyG's ``trim_to_layer``) and the seeds' layer-``K`` value costs one pass over the sampled
edges of hop 0, not of every hop. A node reached at the last hop has no sampled in-edges; it
only ever contributes its layer-0 value, so its missing neighbourhood never matters.

**Normalisation.** The full-graph operator is ``A_hat = D^-1/2 (A [+ I]) D^-1/2``. On the
subgraph we keep the *full-graph* degrees ``d`` (a per-node array computed once) and weight a
sampled edge ``u -> v`` by

.. math::
    w_{uv} = \frac{d_v}{s_v}\,\frac{1}{\sqrt{\tilde d_u \tilde d_v}},\qquad
    w_{vv} = \frac{1}{\tilde d_v}\ \text{(self-loops)},

where ``s_v`` is the number of neighbours sampled for ``v`` and ``d~ = d (+1 with self-loops)``
(``normalization="unbiased"``, the default). Why:

- uniform sampling without replacement makes ``(d_v/s_v) sum_{u in S(v)} x_u / sqrt(d~_u d~_v)``
  an unbiased estimate of ``(A_hat x)_v`` (the GraphSAGE/VR-GCN estimator), so the sampled
  model estimates the model that is evaluated (full-graph propagation), layer by layer;
- with fan-outs that take every neighbour it *is* the full-graph operator on every node that
  matters, so sampled training reproduces full-graph training exactly (the tests pin this);
- subgraph degrees (``normalization="subgraph"``: ``D_sub^-1/2 A_sub D_sub^-1/2``, what a PyG
  ``GCNConv`` computes on the batch) change with the fan-out and are wrong even with every
  neighbour: nodes of the last hop have no sampled in-edges, so their subgraph degree is 0
  (1 with self-loops), which shrinks or inflates the weights of the edges leaving them. It is
  offered for comparison only. ``normalization="full"`` keeps full degrees without the
  ``d_v/s_v`` rescaling (sums over fewer neighbours: biased towards 0 when sampling).

Each layer is an edge-list aggregation (:func:`graphrec.nn.aggregate`, differentiable), so
gradients reach the layer-0 inputs through the subgraph only: memory scales with the sampled
subgraph, not with the graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graphrec.nn.aggregate import aggregate

NORMALIZATIONS = ("unbiased", "full", "subgraph")


@dataclass
class SubgraphPropagation:
    """Weights and trimmed layer-by-layer propagation on sampled batches of one graph.

    ``degree``: every node's full-graph in-degree *without* self-loops (for the graphs of
    :func:`~graphrec.sampling.bipartite_adjacency` and undirected graphs, the degree), e.g.
    ``np.diff(csr.indptr)`` of the sampler's CSR. ``self_loops``: the operator is
    ``D^-1/2 (A + I) D^-1/2`` with ``D`` the degrees of ``A + I`` (GCN, CatGCN); without it,
    ``D^-1/2 A D^-1/2`` (LightGCN; isolated nodes propagate zeros). ``normalization``: see the
    module docstring.
    """

    degree: np.ndarray
    self_loops: bool = False
    normalization: str = "unbiased"

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        self.degree = torch.as_tensor(np.asarray(self.degree), dtype=torch.float32)

    # --------------------------------------------------------------- weights
    def weights(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(edge_weight [E], self_weight [N] or None)`` of a homogeneous ``Data`` batch."""
        row, col = batch.edge_index
        num_nodes = int(batch.n_id.shape[0])
        loop = 1.0 if self.self_loops else 0.0
        sampled = torch.zeros(num_nodes, dtype=torch.float32).index_add_(
            0, col, torch.ones(col.shape[0], dtype=torch.float32))
        if self.normalization == "subgraph":
            degree = sampled + loop
        else:
            degree = self.degree[batch.n_id] + loop
        inv_sqrt = torch.where(degree > 0, degree.clamp(min=1e-12).rsqrt(), torch.zeros_like(degree))
        weight = inv_sqrt[row] * inv_sqrt[col]
        if self.normalization == "unbiased":
            full = self.degree[batch.n_id]
            scale = torch.where(sampled > 0, full / sampled.clamp(min=1.0), torch.zeros_like(full))
            weight = weight * scale[col]
        self_weight = inv_sqrt * inv_sqrt if self.self_loops else None
        return weight, self_weight

    # --------------------------------------------------------------- propagation
    def layers(self, x: torch.Tensor, batch, num_layers: int) -> list[torch.Tensor]:
        """``[x^(0), x^(1), ..., x^(K)]``: ``x^(k)`` on the nodes first reached at hops ``<= K - k``.

        ``x``: layer-0 rows of the batch's nodes (``x[i]`` belongs to ``batch.n_id[i]``).
        ``x^(k)[:batch.batch_size]`` are the seeds' layer-``k`` values. The batch must have
        been sampled with ``num_layers`` hops.
        """
        nodes_per_hop = list(batch.num_sampled_nodes)
        edges_per_hop = list(batch.num_sampled_edges)
        if len(edges_per_hop) != num_layers:
            raise ValueError(f"the batch was sampled with {len(edges_per_hop)} hops but the model propagates "
                             f"{num_layers} layers: use one fan-out per layer")
        if x.shape[0] != batch.n_id.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows, the batch {batch.n_id.shape[0]} nodes")
        weight, self_weight = self.weights(batch)
        row, col = batch.edge_index
        out = [x]
        for k in range(1, num_layers + 1):
            keep = num_layers - k + 1                    # hops 0..K-k
            n_out = int(sum(nodes_per_hop[:keep]))
            n_edges = int(sum(edges_per_hop[:keep]))
            y = aggregate(out[-1], row[:n_edges], col[:n_edges], weight[:n_edges], n_out)
            h = out[-1]
            if self_weight is not None:
                y = y + h[:n_out] * self_weight[:n_out, None]
            out.append(y)
        return out

    def layer_mean(self, x: torch.Tensor, batch, num_layers: int, deep: torch.Tensor | None = None) -> torch.Tensor:
        """LightGCN's ``(1/(K+1)) sum_k x^(k)`` on the seeds, ``[batch_size, d]``.

        A batch sampled with fewer hops ``h`` than ``num_layers`` needs ``deep``: the seeds' sum of
        layers ``h+1..K`` from elsewhere (historical layers of a full-graph propagation, held fixed:
        no gradient flows through them). Layers ``0..h`` are propagated here, over the subgraph.
        """
        seeds, hops = int(batch.batch_size), len(batch.num_sampled_edges)
        if hops > num_layers:
            raise ValueError(f"the batch was sampled with {hops} hops but the model propagates {num_layers} layers")
        if (hops < num_layers) != (deep is not None):
            raise ValueError(f"a batch sampled with {hops} of {num_layers} hops needs the seeds' deeper layers "
                             "(deep) exactly when hops < layers")
        total = None
        for h in self.layers(x, batch, hops):
            total = h[:seeds] if total is None else total + h[:seeds]
        if deep is not None:
            total = total + deep
        return total / (num_layers + 1)

    def last_layer(self, x: torch.Tensor, batch, num_layers: int) -> torch.Tensor:
        """``(A_hat^K x)`` on the seeds, ``[batch_size, d]`` (CatGCN's propagation)."""
        return self.layers(x, batch, num_layers)[-1][: int(batch.batch_size)]


