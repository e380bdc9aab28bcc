"""Top-k recommendation from implicit feedback, as a Trainer task."""
from __future__ import annotations

import warnings
from typing import Iterator

import torch
from torch import nn

from graphrec.config import SamplingConfig, TrainConfig
from graphrec.data.interactions import InteractionGraph
from graphrec.metrics.ranking import RankingEvaluator
from graphrec.models.interfaces import SubgraphRecommender
from graphrec.sampling.bpr import BPRBatch, BPRSampler
from graphrec.train.task import Task

#: train interactions above which full-graph propagation training is advised against (docs/scaling.md)
FULL_GRAPH_ADVICE_ABOVE = 4_000_000

PROTOCOLS = {
    "validation": "select on a seeded per-user validation split carved out of train; "
                  "test reported once, at the best-validation checkpoint",
    "paper": "no validation split; test evaluated during training and the best test epoch reported "
             "(the original LightGCN protocol, for comparison with published numbers only)",
}


class RecommendationTask(Task):
    """BPR-style minibatches, full-ranking evaluation.

    Models implement the recommender interface: ``prepare(train_csr)`` once,
    ``loss(BPRBatch) -> Tensor`` per batch and ``embeddings() -> (users, items)``
    whose inner products are the scores.
    """

    def __init__(self, graph: InteractionGraph, config: TrainConfig, sampling: SamplingConfig | None = None):
        self.config = config
        self.sampling = sampling = sampling if sampling is not None else SamplingConfig()
        self.protocol = config.protocol
        if self.protocol == "validation":
            if graph.valid is None:
                graph = graph.with_validation(config.valid_fraction, seed=config.seed)
            self.selection_split = "valid"
            self.report_splits = ("valid", "test") if graph.test is not None else ("valid",)
        else:
            if graph.test is None:
                raise ValueError("the paper protocol evaluates on test, but the data has no test split")
            self.selection_split = "test"
            self.report_splits = ("test",)
        if config.optimizer == "sparse_adam" and sampling.mode != "sampled":
            raise ValueError("train.optimizer=sparse_adam needs sampling.mode=sampled: full-graph propagation gives "
                             "every row a gradient at every step")
        self.graph = graph
        self.sampler = BPRSampler(graph.train, batch_size=config.batch_size,
                                  num_negatives=sampling.num_negatives,
                                  user_sampling=sampling.user_sampling, seed=config.seed,
                                  shared_negatives=sampling.shared_negatives)
        self.device = torch.device(config.device)
        self._evaluators: dict[str, RankingEvaluator] = {}
        self._baseline: dict[str, dict[str, float]] = {}

    def build_model(self, entry, model_config) -> nn.Module:
        model = entry.build(model_config, num_users=self.graph.num_users, num_items=self.graph.num_items)
        model.prepare(self.graph.train)
        advice = _scale_advice(self.sampling, self.graph.train.nnz) if isinstance(model, SubgraphRecommender) else None
        if advice:
            warnings.warn(advice, stacklevel=2)
        return model.to(self.device)

    def num_batches(self) -> int:
        n = len(self.sampler)
        limit = self.config.max_batches_per_epoch
        return min(n, limit) if limit > 0 else n

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[BPRBatch]:
        for number, batch in enumerate(self.sampler.loader(epoch, start), start=start):
            if number >= self.num_batches():
                return
            yield batch.to(self.device)

    def training_loss(self, model, batch: BPRBatch) -> torch.Tensor:
        return model.loss(batch)

    def evaluator(self, split: str) -> RankingEvaluator:
        if split not in self._evaluators:
            # Mask every interaction the model may know of: train, plus valid when testing.
            known = ("train",) if split == "valid" else ("train", "valid")
            self._evaluators[split] = RankingEvaluator(
                self.graph.known_interactions(*known), self.graph.split(split),
                ks=self.config.ks, chunk_size=self.config.eval_chunk_size)
        return self._evaluators[split]

    @torch.no_grad()
    def evaluate(self, model, split: str) -> dict[str, float]:
        was_training = model.training
        model.eval()
        users, items = model.embeddings()
        model.train(was_training)
        return self.evaluator(split).evaluate(users, items)

    def popularity_baseline(self, split: str) -> dict[str, float]:
        """The metrics of ``pop`` (items ranked by train popularity) on ``split``, with this task's
        exclusions and cut-offs: the level a trained model has to beat. Computed once per split."""
        if split not in self._baseline:
            from graphrec.models.pop import Popularity

            pop = Popularity(self.graph.num_users, self.graph.num_items)
            pop.prepare(self.graph.train)
            self._baseline[split] = self.evaluator(split).evaluate(*pop.embeddings())
        return self._baseline[split]

    def describe(self) -> dict:
        """Protocol and data, and ``baseline``: ``pop``'s metrics beside every split a model was
        evaluated on so far (none before the first evaluation, so describing a task costs nothing)."""
        evaluated = [split for split in self.report_splits if split in self._evaluators]
        return {"task": "recommendation", "protocol": self.protocol,
                "protocol_description": PROTOCOLS[self.protocol], "data": self.graph.summary(),
                "baseline": {"model": "pop", "results": {split: self.popularity_baseline(split)
                                                         for split in evaluated}}}


def _scale_advice(sampling, train_interactions: int) -> str | None:
    """Why and how to switch to the linear path, for a propagation recommender on a large graph."""
    if train_interactions <= FULL_GRAPH_ADVICE_ABOVE or sampling.history_refreshes:
        return None
    if sampling.mode == "full":
        why = ("a full-graph epoch propagates the whole graph at every step, so it grows with the square of the "
               "data (docs/scaling.md: 16M interactions, ~25 h an epoch on one core)")
    else:
        why = ("every step propagates a K-hop sampled neighbourhood that keeps growing with the graph until it "
               "stops overlapping (docs/scaling.md: 64M interactions, ~3 h an epoch on one core)")
    return (f"{train_interactions:,} train interactions: {why}. One sampled hop with historical deeper layers and "
            "lazy Adam grows linearly (64M interactions: 20 min an epoch on one core): --config "
            "examples/configs/lightgcn-large-graph.yaml, i.e. --set sampling.mode=sampled --set sampling.fanouts=[10] "
            "--set sampling.history_refreshes=4 --set train.optimizer=sparse_adam --set train.weight_decay=0")
