"""Sampled-subgraph recommendation training (``sampling.mode=sampled``), PinSage-style.

Each BPR batch comes with the sampled K-hop neighbourhood of its users and items
(:class:`~graphrec.sampling.LinkNeighborSampler`, one fan-out per propagation layer) and the
model propagates over that subgraph only (:mod:`graphrec.nn.subgraph`), so a training
step's memory and time follow the subgraph, not the graph: a recommender trains on graphs
whose full propagation (with autograd) would not fit. Evaluation is unchanged: full-ranking
on the exact full-graph embeddings (one propagation without autograd, O(nodes x dim) memory).

Supported models: those with LightGCN's parameterisation
(:class:`~graphrec.models.interfaces.SubgraphRecommender`: a stacked user-then-item layer-0
table read by ``initial_representation(node_ids)``, ``num_layers``, ``reg_weight``, and its
``subgraph_loss``). UltraGCN has no propagation (its graph enters through constraint weights on
the batch's own rows), so its training is already per-batch and there is no neighbourhood to
sample; asking for it is an error that says so.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from graphrec.config import SamplingConfig, TrainConfig
from graphrec.data.interactions import InteractionGraph
from graphrec.models.interfaces import SubgraphRecommender
from graphrec.nn import SubgraphPropagation
from graphrec.sampling.link import LinkNeighborSampler
from graphrec.train.recommendation import RecommendationTask


class SampledRecommendationTask(RecommendationTask):
    """:class:`RecommendationTask` whose training batches are BPR triples with their sampled
    neighbourhoods (PyG ``Data``: ``n_id``, ``edge_index``, ``src_index``, ``dst_pos_index``,
    ``dst_neg_index``).

    The triples are those of the full mode's :class:`~graphrec.sampling.BPRSampler` with the
    same settings (same seed, same users, positives and negatives, batch for batch), so the two
    modes differ only in the propagation. ``sampling.fanouts`` gives one fan-out per layer (empty:
    every neighbour at every hop, which reproduces full-graph training exactly);
    ``sampling.subgraph_normalization`` the edge weights (default ``unbiased``, see
    :mod:`graphrec.nn.subgraph`); ``sampling.sampler_workers`` threads sample batches ahead.
    """

    def __init__(self, graph: InteractionGraph, config: TrainConfig, sampling: SamplingConfig | None = None):
        super().__init__(graph, config, sampling)
        sampling = self.sampling
        if sampling.shared_negatives or sampling.num_negatives != 1:
            raise ValueError("sampling.mode=sampled trains LightGCN-style BPR: one negative per positive, "
                             "not shared (set sampling.num_negatives=1, sampling.shared_negatives=false)")
        self.link_sampler: LinkNeighborSampler | None = None
        self.propagation: SubgraphPropagation | None = None

    def build_model(self, entry, model_config) -> nn.Module:
        model = super().build_model(entry, model_config)
        if not isinstance(model, SubgraphRecommender):
            raise ValueError(
                "sampling.mode=sampled needs a propagation recommender with LightGCN's parameters "
                f"(initial_representation, num_layers, reg_weight); {type(model).__name__} has none. UltraGCN has "
                "no propagation to sample: train it with sampling.mode=full (its batches already touch only their "
                "own rows)")
        model.sparse_gradients = self.config.optimizer == "sparse_adam"
        layers = int(model.num_layers)
        fanouts = list(self.sampling.fanouts) or [-1] * layers
        if len(fanouts) != layers:
            raise ValueError(f"sampling.fanouts has {len(fanouts)} entries but the model propagates {layers} layers: "
                             "give one fan-out per layer (-1: all neighbours)")
        if layers == 0:
            raise ValueError("sampling.mode=sampled needs at least one propagation layer")
        self.link_sampler = LinkNeighborSampler(
            self.graph.train, fanouts, batch_size=self.config.batch_size, num_negatives=1,
            seed=self.config.seed, user_sampling=self.sampling.user_sampling)
        degree = np.diff(self.link_sampler.neighbors.relations[("node", "to", "node")].indptr)
        self.propagation = SubgraphPropagation(degree, self_loops=False,
                                               normalization=self.sampling.subgraph_normalization)
        return model

    def train_batches(self, epoch: int, start: int = 0) -> Iterator:
        if self.link_sampler is None:
            raise RuntimeError("build_model() first: the fan-outs depend on the model's depth")
        for number, batch in enumerate(self.link_sampler.loader(epoch, start, self.sampling.sampler_workers),
                                       start=start):
            if number >= self.num_batches():
                return
            yield batch.to(self.device)

    def training_loss(self, model, batch) -> torch.Tensor:
        return model.subgraph_loss(batch, self.propagation)

    def batch_samples(self, batch) -> int:
        return int(batch.src_index.shape[0])

    def describe(self) -> dict:
        sampler = self.link_sampler
        return {**super().describe(), "mode": "sampled",
                "fanouts": sampler.neighbors.fanouts[("node", "to", "node")] if sampler else None,
                "subgraph_normalization": self.sampling.subgraph_normalization}
