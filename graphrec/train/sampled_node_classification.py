"""Minibatch node classification over sampled neighbourhoods (``sampling.mode=sampled``).

User graphs in profiling are large (CatGCN's Tencent graph: 1.5M users); full-batch training
computes every node's field interactions and K propagations each step. Here an epoch is
minibatches of ``train.batch_size`` train nodes; each batch carries the sampled K-hop
neighbourhood of its nodes (:class:`~graphrec.sampling.NeighborSampler`, one fan-out per hop),
the model's initial representation is computed for the subgraph's nodes only and propagated
over the subgraph (:mod:`graphrec.nn.subgraph`, full-graph degrees). Evaluation is
unchanged (full graph, eval mode).

Supported models: decoupled ones, whose forward is ``A_hat^K`` applied to a per-node
representation (:class:`~graphrec.models.interfaces.DecoupledNodeClassifier`:
``initial_representation(features) -> H`` and ``num_hops``; CatGCN).
Models whose layers interleave weights and propagation (GCN, DAGNN) are refused with a clear
message rather than trained with a different operator.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graphrec.config import SamplingConfig, TrainConfig
from graphrec.data.csr import CSRGraph
from graphrec.models.interfaces import DecoupledNodeClassifier
from graphrec.nn import SubgraphPropagation
from graphrec.sampling.neighbor import NeighborSampler
from graphrec.train.node_classification import NodeClassificationTask


class SampledNodeClassificationTask(NodeClassificationTask):
    """:class:`NodeClassificationTask` trained on minibatches of sampled neighbourhoods.

    Batches are PyG ``Data`` from :meth:`NeighborSampler.loader` over the train nodes
    (shuffled per epoch, seeded by ``train.seed``; a batch depends only on (seed, epoch,
    number)). The loss of a batch is the (class-weighted) cross-entropy of its seed nodes:
    with fan-outs that take every neighbour and one batch holding every train node it equals
    the full-batch loss. The graph's own self-loops are dropped before sampling: the operator
    adds exactly one per node, as ``gcn_norm`` does.
    """

    def __init__(self, data, config: TrainConfig, sampling: SamplingConfig | None = None):
        super().__init__(data, config, sampling)
        edge_index = self.edge_index.cpu()
        edge_index = edge_index[:, edge_index[0] != edge_index[1]]
        self.csr = CSRGraph.from_edge_index(edge_index, self.num_nodes)
        self.train_nodes = self.masks["train"].nonzero().view(-1).cpu()
        self.sampler: NeighborSampler | None = None
        self.propagation: SubgraphPropagation | None = None

    def build_model(self, entry, model_config) -> nn.Module:
        model = super().build_model(entry, model_config)
        if not isinstance(model, DecoupledNodeClassifier):
            raise ValueError(
                f"sampling.mode=sampled trains decoupled models (initial_representation, then num_hops of A_hat), "
                f"such as CatGCN; {type(model).__name__} interleaves weights and propagation: use sampling.mode=full")
        hops = int(model.num_hops)
        if hops == 0:
            raise ValueError("sampling.mode=sampled needs at least one propagation hop (model.num_hops >= 1)")
        fanouts = list(self.sampling.fanouts) or [-1] * hops
        if len(fanouts) != hops:
            raise ValueError(f"sampling.fanouts has {len(fanouts)} entries but the model propagates {hops} hops: "
                             "give one fan-out per hop (-1: all neighbours)")
        self.sampler = NeighborSampler(self.csr, fanouts, seed=self.config.seed)
        self.propagation = SubgraphPropagation(np.diff(self.csr.indptr), self_loops=True,
                                               normalization=self.sampling.subgraph_normalization)
        return model

    def num_batches(self) -> int:
        return -(-int(self.train_nodes.shape[0]) // self.config.batch_size)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator:
        if self.sampler is None:
            raise RuntimeError("build_model() first: the fan-outs depend on the model's depth")
        for batch in self.sampler.loader(self.train_nodes, batch_size=self.config.batch_size, shuffle=True,
                                         epoch=epoch, start=start, num_workers=self.sampling.sampler_workers):
            yield batch.to(self.device)

    def batch_samples(self, batch) -> int:
        return int(batch.batch_size)

    def batch_logits(self, model: nn.Module, batch) -> torch.Tensor:
        """Logits of the batch's seed nodes, ``[batch_size, C]``."""
        features = self.features(model)
        if features.layout != torch.strided:
            features = features.to_dense()
        h = model.initial_representation(features[batch.n_id], batch.n_id)
        return self.propagation.last_layer(h, batch, int(model.num_hops))

    def training_loss(self, model: nn.Module, batch) -> torch.Tensor:
        logits = self.batch_logits(model, batch)
        target = self.y[batch.n_id[: int(batch.batch_size)]]
        return F.cross_entropy(logits, target, weight=self.class_weight)

    def describe(self) -> dict:
        return {**super().describe(), "mode": "sampled",
                "fanouts": self.sampler.fanouts[("node", "to", "node")] if self.sampler else None,
                "subgraph_normalization": self.sampling.subgraph_normalization,
                "batch_size": self.config.batch_size}
