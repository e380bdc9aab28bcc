"""Sampled-subgraph recommendation training (``sampling.mode=sampled``), PinSage-style.

Each BPR batch comes with the sampled K-hop neighbourhood of its users and items
(:class:`~graphrec.sampling.LinkNeighborSampler`, one fan-out per propagation layer) and the
model propagates over that subgraph only (:mod:`graphrec.nn.subgraph`), so a training
step's memory and time follow the subgraph, not the graph: a recommender trains on graphs
whose full propagation (with autograd) would not fit. Evaluation is unchanged: full-ranking
on the exact full-graph embeddings (one propagation without autograd, O(nodes x dim) memory).

**Historical layers** (``sampling.history_refreshes=R`` with fewer fan-outs ``h`` than layers
``K``, e.g. ``fanouts=[10]`` for 3 layers): layers ``0..h`` are propagated over the sampled
subgraph as above, layers ``h+1..K`` of the batch's nodes are read from a table that a full-graph
propagation of the current layer-0 embeddings (no autograd) fills ``R`` times per epoch, at evenly
spaced batches starting with the first. Why: a step then costs the batch times ``h`` fan-outs
whatever the graph, and an epoch ``R`` propagations plus its steps, so an epoch grows linearly
with the data (plain sampling's ``K``-hop subgraph grows with the graph until it stops
overlapping itself; docs/scaling.md). The price, documented: the deep layers are up to
``1/R`` epoch stale, and no gradient flows through them (a node learns from its batch role and
its ``h``-hop neighbours, not from ``K``-hop ones). At the moment of a refresh, with fan-out -1,
the forward value is exactly the full-graph one (the tests pin this). The table is part of the
checkpoint, so a run interrupted between refreshes resumes exactly.

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
        #: historical layers (history_refreshes > 0): every node's sum of layers past the sampled hops
        self.history: torch.Tensor | None = None
        self._sampled_hops = 0
        self._refresh_due = False

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
        if layers == 0:
            raise ValueError("sampling.mode=sampled needs at least one propagation layer")
        if self.sampling.history_refreshes:
            if not 1 <= len(fanouts) < layers:
                raise ValueError(f"sampling.history_refreshes reads layers past the sampled hops from history: give "
                                 f"fewer fan-outs than the model's {layers} layers (e.g. sampling.fanouts=[10])")
        elif len(fanouts) != layers:
            raise ValueError(f"sampling.fanouts has {len(fanouts)} entries but the model propagates {layers} layers: "
                             "give one fan-out per layer (-1: all neighbours), or fewer with "
                             "sampling.history_refreshes (historical layers past them)")
        self._sampled_hops = len(fanouts)
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
        every = self.history_interval()
        for number, batch in enumerate(self.link_sampler.loader(epoch, start, self.sampling.sampler_workers),
                                       start=start):
            if number >= self.num_batches():
                return
            if every and number % every == 0:
                self._refresh_due = True  # sticky: a rank that skips this batch refreshes at its next one
            yield batch.to(self.device)

    def history_interval(self) -> int:
        """Batches between refreshes of the historical layers (0: no history)."""
        refreshes = self.sampling.history_refreshes
        return -(-self.num_batches() // refreshes) if refreshes else 0

    def training_loss(self, model, batch) -> torch.Tensor:
        if not self.sampling.history_refreshes:
            return model.subgraph_loss(batch, self.propagation)
        if self._refresh_due or self.history is None:
            self.history = model.deep_layer_sum(self._sampled_hops + 1)
            self._refresh_due = False
        return model.subgraph_loss(batch, self.propagation, self.history[batch.n_id[: int(batch.batch_size)]])

    def state_dict(self) -> dict:
        return {"history": self.history} if self.history is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.sampling.history_refreshes and state.get("history") is not None:
            self.history = state["history"].to(self.device)

    def batch_samples(self, batch) -> int:
        return int(batch.src_index.shape[0])

    def describe(self) -> dict:
        sampler = self.link_sampler
        return {**super().describe(), "mode": "sampled",
                "fanouts": sampler.neighbors.fanouts[("node", "to", "node")] if sampler else None,
                "subgraph_normalization": self.sampling.subgraph_normalization,
                **({"history_refreshes_per_epoch": self.sampling.history_refreshes,
                    "historical_layers_from": self._sampled_hops + 1} if self.sampling.history_refreshes else {})}
