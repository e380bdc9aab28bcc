"""Node classification on heterogeneous graphs (PyG ``HeteroData``), full batch or sampled."""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from graphrec.config import SamplingConfig, TrainConfig
from graphrec.data.splits import planetoid_random_split, stratified_split
from graphrec.metrics.classification import classification_metrics
from graphrec.models.interfaces import HeteroNodeClassifier
from graphrec.sampling.base import batch_seed
from graphrec.sampling.neighbor import NeighborSampler
from graphrec.train.task import Task

PROTOCOL = ("evaluate the valid split every eval_every epochs, keep the epoch with the best monitor "
            "(LATTE's official code: lowest validation loss); test reported once, at that checkpoint")


class HeteroBatch(dict):
    """One forward's inputs: ``x_dict``, ``edge_index_dict``, ``n_id_dict`` (global ids of every
    type's local nodes), ``y`` and ``mask`` (which target rows count) of the target type."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class HeteroNodeClassificationTask(Task):
    """Semi-supervised classification of one node type of a ``HeteroData`` graph.

    Data: a ``HeteroData`` with ``target_node_type``, ``data[target].y`` and either split masks
    ``train_mask_<k>``/``val_mask_<k>``/``test_mask_<k>`` for the labels-per-class counts
    ``k`` in ``data.label_splits`` (``loaders/hetero.py``) or, for ``split`` random/stratified,
    nothing more. ``train.split``: a count (``"20"``), ``"public"`` (the first count shipped),
    ``"random"`` or ``"stratified"`` (seeded as in :mod:`graphrec.train.node_classification`).

    Model interface (:class:`~graphrec.models.interfaces.HeteroNodeClassifier`: LATTE, HAN, HGT)::

        model = entry.build(config, metadata=data.metadata(), in_channels={type: F or 0},
                            num_nodes={type: N}, num_classes=C, target=target_type)
        logits = model(x_dict, edge_index_dict, n_id_dict)   # [N_target in the graph given, C]
        logits, aux = model.forward_with_aux(x_dict, edge_index_dict, n_id_dict)

    Training adds the returned auxiliary loss (LATTE's proximity loss; None: nothing) to the
    cross-entropy.

    ``sampling.mode``: ``full`` (one batch, the whole graph) or ``sampled``: minibatches of
    ``batch_size`` train nodes with their sampled neighbourhoods (:class:`NeighborSampler` over
    every relation, ``sampling.fanouts`` neighbours per relation and hop). In sampled mode,
    evaluation also runs on sampled neighbourhoods of the split's nodes, drawn once with a fixed
    seed (the same subgraph at every evaluation, so validation losses compare across epochs),
    as LATTE's official code does; ``sampling.fanouts`` of -1 make it exact.
    """

    selection_split = "valid"
    report_splits = ("valid", "test")

    def __init__(self, data, config: TrainConfig, sampling: SamplingConfig | None = None):
        self.sampling = sampling = sampling if sampling is not None else SamplingConfig()
        if config.protocol != "validation":
            raise ValueError("node classification always selects on the validation split")
        target = getattr(data, "target_node_type", None)
        if target is None or getattr(data[target], "y", None) is None:
            raise ValueError("heterogeneous node classification needs data.target_node_type and data[target].y")
        self.config, self.device, self.target = config, torch.device(config.device), target
        self.name = getattr(data, "name", None)
        self.split = self._split_name(data, config.split)
        y = data[target].y.long().view(-1)
        self.num_classes = int(y.max()) + 1
        if self.split.isdigit():
            masks = {name: getattr(data[target], f"{key}_mask_{self.split}")
                     for name, key in (("train", "train"), ("valid", "val"), ("test", "test"))}
        elif self.split == "stratified":
            masks = stratified_split(y, config.split_fractions, seed=config.seed)
        else:
            masks = planetoid_random_split(y, seed=config.seed, num_classes=self.num_classes)
        self.masks = {name: mask.bool().to(self.device) for name, mask in masks.items()}
        self.metadata = data.metadata()
        self.num_nodes = {t: int(data[t].num_nodes) for t in data.node_types}
        x_dict = {}
        for t in data.node_types:
            x = getattr(data[t], "x", None)
            if x is not None:
                x = x.float()
                if config.normalize_features:
                    x = x / x.sum(dim=-1, keepdim=True).clamp(min=1e-12)
                x_dict[t] = x.to(self.device)
        self.y = y.to(self.device)
        self.graph = HeteroBatch(
            x_dict=x_dict, edge_index_dict={et: data[et].edge_index.long().to(self.device) for et in data.edge_types},
            n_id_dict={t: torch.arange(n, device=self.device) for t, n in self.num_nodes.items()},
            y=self.y, mask=self.masks["train"])
        self.sampler = None
        if sampling.mode == "sampled":
            if not sampling.fanouts:
                raise ValueError("sampling.mode=sampled needs sampling.fanouts (neighbours per relation and hop, e.g. [10, 10])")
            from torch_geometric.data import HeteroData

            structure = HeteroData()
            for t, n in self.num_nodes.items():
                structure[t].num_nodes = n
            for et in data.edge_types:
                structure[et].edge_index = data[et].edge_index
            self.sampler = NeighborSampler(structure, list(sampling.fanouts), seed=config.seed)
        self._eval_batches: dict[str, HeteroBatch] = {}

    @staticmethod
    def _split_name(data, split: str) -> str:
        shipped = [str(k) for k in getattr(data, "label_splits", ())]
        if split == "public":
            if not shipped:
                raise ValueError("this dataset ships no split: use train.split=random or stratified")
            return shipped[0]
        if split.isdigit() and split not in shipped:
            raise ValueError(f"split {split!r} is not shipped with this dataset: use one of {shipped or ['random']}")
        return split

    # ------------------------------------------------------------------ model and batches
    def build_model(self, entry, model_config) -> nn.Module:
        in_channels = {t: int(self.graph.x_dict[t].shape[1]) if t in self.graph.x_dict else 0 for t in self.num_nodes}
        model = entry.build(model_config, metadata=self.metadata, in_channels=in_channels,
                            num_nodes=self.num_nodes, num_classes=self.num_classes, target=self.target)
        if not isinstance(model, HeteroNodeClassifier):
            raise TypeError(f"{type(model).__name__} is not a heterogeneous node classifier: it needs "
                            "forward(x_dict, edge_index_dict, n_id_dict) and forward_with_aux (see "
                            "graphrec.models.interfaces.HeteroNodeClassifier)")
        return model.to(self.device)

    def _train_nodes(self) -> torch.Tensor:
        return self.masks["train"].nonzero().view(-1).cpu()

    def num_batches(self) -> int:
        if self.sampler is None:
            return 1
        return -(-int(self._train_nodes().shape[0]) // self.config.batch_size)

    def _subgraph(self, sample) -> HeteroBatch:
        """A sampled ``HeteroData`` as model inputs: features gathered by ``n_id``, labels of its seeds."""
        n_id = {t: sample[t].n_id.to(self.device) for t in sample.node_types}
        x_dict = {t: x[n_id[t]] for t, x in self.graph.x_dict.items()}
        edges = {et: sample[et].edge_index.to(self.device) for et in sample.edge_types}
        seeds = n_id[self.target]
        mask = torch.zeros(seeds.shape[0], dtype=torch.bool, device=self.device)
        mask[:int(sample[self.target].batch_size)] = True
        return HeteroBatch(x_dict=x_dict, edge_index_dict=edges, n_id_dict=n_id, y=self.y[seeds], mask=mask)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[HeteroBatch]:
        if self.sampler is None:
            if start == 0:
                yield self.graph
            return
        for sample in self.sampler.loader(self._train_nodes(), batch_size=self.config.batch_size, shuffle=True,
                                          epoch=epoch, start=start, seed_type=self.target):
            yield self._subgraph(sample)

    def batch_samples(self, batch: HeteroBatch) -> int:
        return int(batch.mask.sum())

    def training_loss(self, model: nn.Module, batch: HeteroBatch) -> torch.Tensor:
        logits, auxiliary = model.forward_with_aux(batch.x_dict, batch.edge_index_dict, batch.n_id_dict)
        loss = F.cross_entropy(logits[batch.mask], batch.y[batch.mask])
        return loss if auxiliary is None else loss + auxiliary

    # ------------------------------------------------------------------ evaluation
    def eval_batches(self, split: str) -> list[tuple[HeteroBatch, torch.Tensor]]:
        """``(graph, rows)`` pairs covering ``split``: the whole graph, or its sampled
        neighbourhoods (drawn once per split with a fixed seed, ``batch_size`` seeds each)."""
        nodes = self.masks[split].nonzero().view(-1)
        if self.sampler is None:
            return [(self.graph, nodes)]
        if split not in self._eval_batches:
            batches, cpu = [], nodes.cpu()
            for number, begin in enumerate(range(0, cpu.shape[0], self.config.batch_size)):
                seeds = cpu[begin:begin + self.config.batch_size]
                # "epoch" 1e6 + split number: never a training epoch, so never a training batch
                sample = self.sampler.sample(seeds, seed_type=self.target, batch_seed=batch_seed(
                    self.config.seed, 1_000_000 + list(self.masks).index(split), number))
                batch = self._subgraph(sample)
                batches.append((batch, sample[self.target].input_index.to(self.device)))
            self._eval_batches[split] = batches
        return self._eval_batches[split]

    def predict(self, model: nn.Module, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode logits and labels of a split's nodes."""
        was_training = model.training
        model.eval()
        try:
            logits, labels = [], []
            with torch.no_grad():
                for batch, rows in self.eval_batches(split):
                    out = model(batch.x_dict, batch.edge_index_dict, batch.n_id_dict)
                    logits.append(out[rows])
                    labels.append(batch.y[rows])
            return torch.cat(logits), torch.cat(labels)
        finally:
            model.train(was_training)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.masks:
            raise KeyError(f"unknown split {split!r}: use one of {sorted(self.masks)}")
        logits, target = self.predict(model, split)
        return {"loss": float(F.cross_entropy(logits, target)),
                **classification_metrics(logits, target, num_classes=self.num_classes)}

    def describe(self) -> dict:
        return {"task": "hetero_node_classification", "protocol": "validation", "protocol_description": PROTOCOL,
                "split": self.split, "mode": self.sampling.mode,
                "fanouts": list(self.sampling.fanouts) if self.sampler is not None else None,
                "data": {"name": self.name, "target": self.target, "nodes": dict(self.num_nodes),
                         "edges": {"-".join(et): int(ei.shape[1]) for et, ei in self.graph.edge_index_dict.items()},
                         "features": {t: int(x.shape[1]) for t, x in self.graph.x_dict.items()},
                         "classes": self.num_classes,
                         **{split: int(mask.sum()) for split, mask in self.masks.items()}}}
