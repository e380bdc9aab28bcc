"""Semi-supervised node classification on one graph (full batch), as a Trainer task."""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data

from graphrec.config import SamplingConfig, TrainConfig
from graphrec.data.splits import planetoid_random_split, stratified_split
from graphrec.metrics.classification import classification_metrics
from graphrec.models.interfaces import takes_categorical_fields, takes_sparse_features
from graphrec.train.task import Task

SPLITS = {
    "public": "the dataset's own split (Planetoid: 20 labelled nodes per class, 500 valid, 1000 test)",
    "random": "seeded random split: 20 nodes per class for train, then 500 valid and 1000 test drawn "
              "from the remaining nodes (seed = train.seed)",
    "stratified": "seeded stratified split: train.split_fractions (train, valid, test) of every class's "
                  "labelled nodes (seed = train.seed; CatGCN: 80/10/10)",
}
#: largest fraction of non-zero features for which models that accept it get ``x`` as a sparse tensor
SPARSE_DENSITY = 0.25
PROTOCOL = ("evaluate the valid split every eval_every epochs, keep the epoch with the best monitor "
            "(DAGNN: lowest validation loss); test reported once, at that checkpoint")


def class_balance_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``n / (C * count_c)`` over the labels ``y`` (scikit-learn's "balanced"; CatGCN's weighted NLL).
    A class absent from ``y`` gets weight 0 (it contributes no term anyway)."""
    counts = torch.bincount(y.long().view(-1), minlength=num_classes).double()
    weights = torch.where(counts > 0, y.numel() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


class NodeClassificationTask(Task):
    """Full-batch semi-supervised node classification: one batch (the whole graph) per epoch.

    Data: a PyG ``Data`` with ``x`` ``[N, F]``, ``edge_index`` ``[2, E]``, ``y`` ``[N]`` and, for
    the public split, ``train_mask``/``val_mask``/``test_mask`` (what the Planetoid loaders
    return). Options from :class:`~graphrec.config.TrainConfig`: ``split`` ("public" or
    "random", seeded by ``seed``), ``normalize_features`` (row-normalise ``x``, as GCN and
    DAGNN do), ``device``.

    Model interface (what every node-classification model implements)::

        model = entry.build(config, num_features=F, num_classes=C)
        logits = model(x, edge_index)            # [N, C] unnormalised class scores

    Categorical node data (:mod:`graphrec.data.categorical`: ``x_fields`` ``[N, F]`` of field-value
    ids beside the one-hot ``x``): a model that declares ``categorical_fields = True``
    (:class:`~graphrec.models.interfaces.CategoricalFieldInput`: CatGCN) gets ``x_fields`` instead
    of ``x``; ``num_features`` is then the number of field values.
    ``class_weighted_loss`` weights every loss (train, valid, test) by :func:`class_balance_weights`
    of the train labels. Labels ``-1`` mark unlabelled nodes (in no split).

    A model may declare ``sparse_features = True``
    (:class:`~graphrec.models.interfaces.SparseFeatureInput`) to say that it also takes
    ``x`` as a sparse COO tensor; it then gets one when the features are sparse (Planetoid's
    bag-of-words: about 1% non-zero), which makes its input dropout and first layer cost
    O(non-zeros) instead of O(N F). The result is the same.

    The batch is a PyG ``Data`` of the whole graph (``x`` preprocessed, ``y``, the task's
    ``train_mask``/``val_mask``/``test_mask``), so any PyG model with this call signature
    trains too. The training loss is the cross-entropy of the train nodes' logits; :meth:`evaluate`
    returns ``loss`` (cross-entropy), ``accuracy``, ``macro_f1`` and ``micro_f1`` of a split
    ("train", "valid" or "test"). Selection is on "valid" (``train.monitor``, e.g. ``loss``
    with ``monitor_mode=min`` as in DAGNN's official code); test is reported at the selected
    checkpoint.
    """

    selection_split = "valid"
    report_splits = ("valid", "test")

    def __init__(self, data, config: TrainConfig, sampling: SamplingConfig | None = None):
        self.sampling = sampling if sampling is not None else SamplingConfig()
        if config.protocol != "validation":
            raise ValueError("node classification always selects on the validation split (as the GCN and "
                             f"DAGNN papers do); protocol {config.protocol!r} is a recommendation option")
        for attribute in ("x", "edge_index", "y"):
            if getattr(data, attribute, None) is None:
                raise ValueError(f"node classification needs a graph with '{attribute}'")
        self.config = config
        self.device = torch.device(config.device)
        self.name = getattr(data, "name", None)
        self.split = config.split
        x = data.x.float()
        if config.normalize_features:
            x = x - x.min()
            x = x / x.sum(dim=-1, keepdim=True).clamp(min=1.0)  # PyG's NormalizeFeatures
        y = data.y.long().view(-1)
        self.num_classes = int(y.max()) + 1
        if self.split == "public":
            missing = [m for m in ("train_mask", "val_mask", "test_mask") if getattr(data, m, None) is None]
            if missing:
                raise ValueError(f"split 'public' needs the data's {', '.join(missing)}; use train.split=random")
            masks = {"train": data.train_mask, "valid": data.val_mask, "test": data.test_mask}
        elif self.split == "stratified":
            masks = stratified_split(y, config.split_fractions, seed=config.seed)
        else:
            masks = planetoid_random_split(y, seed=config.seed, num_classes=self.num_classes)
        self.masks = {name: mask.bool().to(self.device) for name, mask in masks.items()}
        #: per-class loss weights (``class_weighted_loss``) or None
        self.class_weight = (class_balance_weights(y[masks["train"].bool().cpu()], self.num_classes).to(self.device)
                             if config.class_weighted_loss else None)
        #: the one batch: the whole graph with this task's features and masks
        self.graph = Data(x=x.to(self.device), edge_index=data.edge_index.long().to(self.device),
                          y=y.to(self.device), train_mask=self.masks["train"], val_mask=self.masks["valid"],
                          test_mask=self.masks["test"])
        if getattr(data, "x_fields", None) is not None:
            self.graph.x_fields = data.x_fields.long().to(self.device)
        self.x, self.edge_index, self.y = self.graph.x, self.graph.edge_index, self.graph.y
        self._sparse_x: torch.Tensor | None = None

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    def build_model(self, entry, model_config) -> nn.Module:
        model = entry.build(model_config, num_features=self.num_features, num_classes=self.num_classes)
        return model.to(self.device)

    def num_batches(self) -> int:
        return 1

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Data]:
        if start == 0:
            yield self.graph

    def batch_samples(self, batch: Data) -> int:
        return int(batch.train_mask.sum())

    def features(self, model: nn.Module, batch: Data | None = None) -> torch.Tensor:
        """``x`` as the model takes it: a sparse COO copy (made once) for models that declare
        ``sparse_features = True`` when at most :data:`SPARSE_DENSITY` of it is non-zero,
        else the dense tensor."""
        batch = self.graph if batch is None else batch
        if takes_categorical_fields(model):
            if getattr(batch, "x_fields", None) is None:
                raise ValueError(f"{type(model).__name__} takes categorical fields (x_fields) but the data has none; "
                                 "use a categorical dataset (graphrec.data.categorical)")
            return batch.x_fields
        if batch is not self.graph or not takes_sparse_features(model):
            return batch.x
        if self._sparse_x is None:
            density = float(torch.count_nonzero(self.x)) / max(self.x.numel(), 1)
            self._sparse_x = self.x.to_sparse().coalesce() if density <= SPARSE_DENSITY else self.x
        return self._sparse_x

    def training_loss(self, model: nn.Module, batch: Data) -> torch.Tensor:
        logits = model(self.features(model, batch), batch.edge_index)
        return F.cross_entropy(logits[batch.train_mask], batch.y[batch.train_mask], weight=self.class_weight)

    def logits(self, model: nn.Module) -> torch.Tensor:
        """All nodes' logits in eval mode (no dropout, no gradient)."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model(self.features(model), self.edge_index)
        finally:
            model.train(was_training)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.masks:
            raise KeyError(f"unknown split {split!r}: use one of {sorted(self.masks)}")
        mask = self.masks[split]
        logits = self.logits(model)[mask]
        target = self.y[mask]
        return {"loss": float(F.cross_entropy(logits, target, weight=self.class_weight)),
                **classification_metrics(logits, target)}

    def describe(self) -> dict:
        return {"task": "node_classification", "protocol": "validation", "protocol_description": PROTOCOL,
                "split": self.split, "split_description": SPLITS[self.split],
                "data": {"name": self.name, "nodes": self.num_nodes, "edges": int(self.edge_index.shape[1]),
                         "features": self.num_features, "classes": self.num_classes,
                         **{split: int(mask.sum()) for split, mask in self.masks.items()}}}
