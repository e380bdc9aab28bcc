"""Image-derived node features for graph models: node classification (DAGNN, GCN, CatGCN), HeteroData
node types (e.g. for LATTE) and recommenders' items, without changing those models' files."""
from __future__ import annotations

import torch
from torch import nn

from graphrec.encoders.node_encoder import ImageNodeEncoder
from graphrec.models.interfaces import ItemImageSupport, takes_categorical_fields

COMBINE = ("concat", "replace")


class ImageFeatureModel(nn.Module):
    r"""A node-classification model whose node features come (partly) from node images.

    ``model(x, edge_index)`` keeps the wrapped model's interface (so the node-classification task,
    the Trainer and checkpoints need nothing new):

    - dense-feature models (DAGNN, GCN, any PyG-style ``model(x, edge_index)``): the model sees
      ``[x, f(images)]`` (``combine="concat"``; build it with ``num_features = F + out_dim``) or
      ``f(images)`` alone (``"replace"``);
    - CatGCN (``categorical_fields``): the image features are added to its initial representation,
      :math:`\mathbf{H} = \mathrm{CatGCN}_{init}(x_{fields}) + f(\text{images})` (``out_dim`` = the
      number of classes), then propagated as usual.

    ``f`` is an :class:`ImageNodeEncoder` over all nodes (full batch: every node is encoded once per
    step in end-to-end mode, with gradients into the backbone).
    """

    def __init__(self, model: nn.Module, node_encoder: ImageNodeEncoder, combine: str = "concat"):
        super().__init__()
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        self.model = model
        self.node_encoder = node_encoder
        self.combine = combine
        self.categorical_fields = takes_categorical_fields(model)

    def image_features(self, num_nodes: int) -> torch.Tensor:
        if num_nodes != self.node_encoder.num_nodes:
            raise ValueError(f"the graph has {num_nodes} nodes, the image encoder {self.node_encoder.num_nodes}")
        return self.node_encoder.all_features()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        images = self.image_features(x.shape[0])
        if self.categorical_fields:
            h = self.model.initial_representation(x) + images
            return self.model.propagate(h, self.model.adjacency(edge_index, x.shape[0]))
        x = images if self.combine == "replace" else torch.cat([x.to_dense() if x.is_sparse else x, images.to(x.dtype)], 1)
        return self.model(x, edge_index)


class CategoricalImageFeatureModel(ImageFeatureModel):
    """:class:`ImageFeatureModel` around CatGCN, also trainable on sampled subgraphs
    (:class:`~graphrec.models.interfaces.DecoupledNodeClassifier`): the image features of the batch's
    nodes are added to their initial representation, as the full-graph forward adds everyone's."""

    @property
    def num_hops(self) -> int:
        return self.model.num_hops

    def initial_representation(self, x_fields: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        return self.model.initial_representation(x_fields) + self.node_encoder(nodes)


def build_node_classifier(entry, model_config, num_features: int, num_classes: int,
                          node_encoder: ImageNodeEncoder, combine: str = "concat") -> ImageFeatureModel:
    """A registered node-classification model sized for the image features, wrapped."""
    model_cls = entry.model_cls
    if getattr(model_cls, "categorical_fields", False):
        if node_encoder.out_dim != num_classes:
            raise ValueError(f"CatGCN adds image features to its [N, classes] representation: build the node "
                             f"encoder with out_dim={num_classes}")
        model = entry.build(model_config, num_features=num_features, num_classes=num_classes)
        return CategoricalImageFeatureModel(model, node_encoder, combine)
    else:
        width = node_encoder.out_dim + (num_features if combine == "concat" else 0)
        model = entry.build(model_config, num_features=width, num_classes=num_classes)
    return ImageFeatureModel(model, node_encoder, combine)


@torch.no_grad()
def attach_image_features(data, node_type: str | None, node_encoder: ImageNodeEncoder, combine: str = "concat"):
    """Write frozen image features into a PyG ``Data`` / ``HeteroData`` node store's ``x``.

    ``data[node_type].x`` (or ``data.x`` for ``node_type=None``) becomes ``[x, f(images)]``
    (``"concat"``, or ``f(images)`` when the type has no ``x``) or ``f(images)`` (``"replace"``). Any
    model reading ``x_dict`` (LATTE, HGT, RGCN, ...) then sees image-derived features with no change to
    its code. For end-to-end training use :class:`ImageNodeEncoder` inside the model instead.
    """
    store = data if node_type is None else data[node_type]
    features = node_encoder.all_features().cpu()
    x = getattr(store, "x", None)
    if x is not None and x.shape[0] != features.shape[0]:
        raise ValueError(f"node type {node_type!r} has {x.shape[0]} nodes, the image encoder {features.shape[0]}")
    store.x = features if (x is None or combine == "replace") else torch.cat([x.float(), features.to(torch.float32)], 1)
    return data


def attach_node_encoder(model: nn.Module, task, entry, config) -> nn.Module:
    """What ``graphrec fit --node-encoder NAME --images PATH`` does after the task is built.

    Recommendation: the items' images (named by item id) are attached to the model
    (``attach_item_images``: LightGCN, UltraGCN). Node classification: the model is rebuilt for
    ``[x, f(images)]`` and wrapped in :class:`ImageFeatureModel`. Frozen features are cached under
    ``$GRAPHREC_CACHE/image-features``.
    """
    name, path, mode = config.encoder.name, config.encoder.images, config.encoder.mode
    if not path:
        raise ValueError("--node-encoder needs --images PATH (a folder of images named by node id, or a "
                         "node,path table)")
    device = next(model.parameters()).device
    # A randomly initialised frozen backbone is not in the checkpoint: build it from the run's seed so
    # that `graphrec eval` rebuilds the same weights (and finds the same feature cache).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return _attach(model, task, entry, config, name, path, mode, device)


def _attach(model, task, entry, config, name, path, mode, device):
    from graphrec.encoders.images import NodeImages
    from graphrec.encoders.node_encoder import create_node_encoder

    if entry.task == "recommendation":
        if not isinstance(model, ItemImageSupport):
            raise ValueError(f"model '{entry.name}' takes no item images")
        graph = task.graph
        ids = graph.item_map.ids if getattr(graph, "item_map", None) is not None else None
        images = NodeImages.from_path(path, num_nodes=graph.num_items, node_ids=ids)
        encoder = create_node_encoder(name, images, out_dim=model.item_embedding_dim, mode=mode, cache_dir=_cache_dir(path),
                                      pretrained=config.encoder.pretrained, batch_size=config.encoder.batch_size)
        return model.attach_item_images(encoder.to(device))
    images = NodeImages.from_path(path, num_nodes=task.num_nodes)
    width = task.num_classes if getattr(entry.model_cls, "categorical_fields", False) else 64
    encoder = create_node_encoder(name, images, out_dim=width, mode=mode, cache_dir=_cache_dir(path),
                                  pretrained=config.encoder.pretrained, batch_size=config.encoder.batch_size)
    wrapped = build_node_classifier(entry, config.model_config, task.num_features, task.num_classes, encoder)
    return wrapped.to(device)


def _cache_dir(images_path):
    """``$GRAPHREC_CACHE/image-features`` (default ``~/.cache/graphrec/image-features``)."""
    import os
    from pathlib import Path

    root = os.environ.get("GRAPHREC_CACHE") or Path.home() / ".cache" / "graphrec"
    return Path(root) / "image-features"
