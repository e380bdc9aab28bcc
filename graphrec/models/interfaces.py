"""What the tasks, the Trainer and the parallel stages expect of a model: one Protocol per role.

A model satisfies a role by having the members a Protocol lists (structural typing, PEP 544): no
base class to inherit. The runtime-checkable ones are what the callers test with ``isinstance``
instead of probing attributes one by one; a capability that a model switches on or off (sparse
input, categorical fields) is a flag the Protocol declares, read by :func:`takes_sparse_features`
and :func:`takes_categorical_fields`.

Members are methods, properties or plain attributes, never submodules or parameters: from Python
3.12 ``isinstance`` looks members up statically (``inspect.getattr_static``), which does not see
what ``nn.Module.__getattr__`` serves from ``_modules`` / ``_parameters``.

Roles, the models that take them on, and their callers:

- :class:`RecommenderModel`: LightGCN, UltraGCN; ``train.recommendation``, :class:`graphrec.Recommender`.
- :class:`ItemImageSupport`: LightGCN, UltraGCN; ``encoders.graph.attach_node_encoder``.
- :class:`DecoupledPropagation`: LightGCN, CatGCN; sampled mode (the two roles that refine it).
- :class:`SubgraphRecommender`: LightGCN; ``train.sampled_recommendation``.
- :class:`NodeClassifier`: GCN, GCNII, DAGNN, CatGCN; ``train.node_classification``.
- :class:`SparseFeatureInput`: GCN, DAGNN (GCNII declares False); ``train.node_classification``.
- :class:`CategoricalFieldInput`: CatGCN; ``train.node_classification``.
- :class:`DecoupledNodeClassifier`: CatGCN; ``train.sampled_node_classification``.
- :class:`HeteroNodeClassifier`: LATTE, HAN, HGT; ``train.hetero_classification``.
- :class:`OwnParameterGroups`: LATTE; ``train.trainer.make_optimizer``.
- :class:`LayerwiseModel`: GCN and GCNII to come; ``parallel.stages``.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import scipy.sparse as sp
import torch
from torch import nn

__all__ = [
    "CategoricalFieldInput", "DecoupledNodeClassifier", "DecoupledPropagation", "HeteroNodeClassifier",
    "ItemImageSupport", "LayerwiseModel", "NodeClassifier", "OwnParameterGroups", "ROLE_PROTOCOLS",
    "RecommenderModel", "SparseFeatureInput", "SubgraphRecommender", "takes_categorical_fields",
    "takes_sparse_features",
]


# ---------------------------------------------------------------------------------- recommendation
@runtime_checkable
class RecommenderModel(Protocol):
    """A top-k recommender trained from implicit feedback (task ``"recommendation"``).

    Implemented by LightGCN and UltraGCN. Called by
    :class:`~graphrec.train.recommendation.RecommendationTask` (``prepare`` once after building,
    ``loss`` per batch, ``embeddings`` at every evaluation) and by :class:`graphrec.Recommender`.
    """

    def prepare(self, train: sp.csr_matrix) -> None:
        """Derive what the model needs from the train interactions (users x items CSR), once."""

    def loss(self, batch: Any) -> torch.Tensor:
        """The scalar training loss of a :class:`~graphrec.sampling.BPRBatch`."""

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All users' and all items' final embeddings; a score is their inner product."""


@runtime_checkable
class ItemImageSupport(Protocol):
    """A recommender whose items can take image features (``graphrec fit --node-encoder``).

    Implemented by LightGCN and UltraGCN. Called by
    :func:`graphrec.encoders.graph.attach_node_encoder`, which builds an
    :class:`~graphrec.encoders.ImageNodeEncoder` with ``out_dim = item_embedding_dim``.
    """

    @property
    def item_embedding_dim(self) -> int:
        """Width of an item's representation, which the image features are added to."""

    def attach_item_images(self, encoder: nn.Module) -> nn.Module:
        """Add ``encoder``'s projected image features to every item's representation; returns the model."""


# ---------------------------------------------------------------------------------- decoupled propagation
@runtime_checkable
class DecoupledPropagation(Protocol):
    """A model whose output is parameter-free propagation of a per-node representation, so
    sampled mode (``sampling.mode=sampled``) computes that representation for a sampled subgraph's
    nodes only and propagates it over the subgraph (:mod:`graphrec.nn.subgraph`).

    Implemented by LightGCN (the layer-0 rows of the given node ids) and CatGCN (``H`` of the given
    field rows); refined by :class:`SubgraphRecommender` and :class:`DecoupledNodeClassifier`, which
    say how deep and how the layers are read out.
    """

    def initial_representation(self, inputs: torch.Tensor) -> torch.Tensor:
        """The representation before propagation, one row per input row (a node's id or its features)."""


@runtime_checkable
class SubgraphRecommender(DecoupledPropagation, Protocol):
    """A recommender with LightGCN's parameterisation, trainable on sampled subgraphs: parameters
    only in the layer-0 table (users ``0..U-1`` then items), mean over ``num_layers + 1`` layers.

    Implemented by LightGCN. Called by
    :class:`~graphrec.train.sampled_recommendation.SampledRecommendationTask`, which calls
    ``subgraph_loss(batch, propagation)``: the batch nodes' layer-0 rows
    (``initial_representation(n_id)``) propagated over the subgraph by a
    :class:`graphrec.nn.SubgraphPropagation`, plus ``reg_weight`` times the L2 of the batch's
    layer-0 rows. UltraGCN has no propagation, so it does not satisfy it.
    """

    #: propagation layers K
    num_layers: int
    #: weight of the L2 term on the batch's layer-0 rows
    reg_weight: float

    def subgraph_loss(self, batch, propagation, deep=None) -> torch.Tensor:
        """BPR + L2 loss of a sampled subgraph batch (same value as the full-graph loss at full fanout);
        ``deep``: the seeds' historical layers past the batch's sampled hops."""

    def deep_layer_sum(self, first_layer: int) -> torch.Tensor:
        """Sum of full-graph layers ``first_layer..num_layers`` of every node, without autograd."""


# ---------------------------------------------------------------------------------- node classification
@runtime_checkable
class NodeClassifier(Protocol):
    """Semi-supervised node classifier on one homogeneous graph (task ``"node_classification"``).

    Implemented by GCN, GCNII, DAGNN and CatGCN (and any PyG-style ``model(x, edge_index)``).
    Called by :class:`~graphrec.train.node_classification.NodeClassificationTask`, which builds
    it with ``num_features`` and ``num_classes`` and passes ``x`` as :func:`takes_sparse_features`
    and :func:`takes_categorical_fields` say.
    """

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores ``[N, C]`` of every node."""


@runtime_checkable
class SparseFeatureInput(Protocol):
    """A node classifier that declares whether ``forward`` also takes ``x`` as a sparse COO tensor.

    GCN and DAGNN declare ``sparse_features = True`` (input dropout and the first layer then cost
    O(non-zeros)); GCNII declares False. Read by :func:`takes_sparse_features` for
    :meth:`NodeClassificationTask.features <graphrec.train.node_classification.NodeClassificationTask.features>`.
    """

    sparse_features: bool


@runtime_checkable
class CategoricalFieldInput(Protocol):
    """A node classifier that declares whether it takes categorical field ids (``x_fields``
    ``[N, F]`` long, :mod:`graphrec.data.categorical`) instead of ``x``.

    CatGCN declares ``categorical_fields = True`` (so does
    :class:`~graphrec.encoders.graph.ImageFeatureModel` around it). Read by
    :func:`takes_categorical_fields` for the node-classification task and its sampled variant.
    """

    categorical_fields: bool


@runtime_checkable
class DecoupledNodeClassifier(DecoupledPropagation, Protocol):
    """A node classifier whose forward is ``A_hat^K`` applied to a per-node representation, so it
    trains on sampled neighbourhoods (``sampling.mode=sampled``): the representation is computed for
    the subgraph's nodes only, then propagated over the subgraph.

    Implemented by CatGCN. Called by
    :class:`~graphrec.train.sampled_node_classification.SampledNodeClassificationTask`
    (``initial_representation`` on the batch's rows, then ``num_hops`` propagations of
    :class:`~graphrec.nn.SubgraphPropagation`). GCN and DAGNN interleave weights and
    propagation (or weigh every hop) and do not satisfy it.
    """

    #: propagation depth K of ``A_hat^K``
    num_hops: int

    def initial_representation(self, inputs: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """``H`` of the rows ``inputs`` of the nodes ``nodes`` (global ids: per-node extras such as
        image features are looked up by them)."""


def takes_sparse_features(model: nn.Module) -> bool:
    """True when ``model`` declares (:class:`SparseFeatureInput`) that it takes a sparse ``x``."""
    return isinstance(model, SparseFeatureInput) and bool(model.sparse_features)


def takes_categorical_fields(model: nn.Module) -> bool:
    """True when ``model`` declares (:class:`CategoricalFieldInput`) that it takes ``x_fields``."""
    return isinstance(model, CategoricalFieldInput) and bool(model.categorical_fields)


# ---------------------------------------------------------------------------------- heterogeneous graphs
@runtime_checkable
class HeteroNodeClassifier(Protocol):
    """Classifier of one node type of a heterogeneous graph (task ``"hetero_node_classification"``).

    Implemented by LATTE, HAN and HGT. Called by
    :class:`~graphrec.train.hetero_classification.HeteroNodeClassificationTask`, which builds it
    with ``metadata``, ``in_channels``, ``num_nodes``, ``num_classes`` and ``target``, trains with
    ``forward_with_aux`` (the classification loss plus the auxiliary loss when there is one) and
    evaluates with ``forward``. ``x_dict`` holds the featured types, ``edge_index_dict`` the base
    relations, ``n_id_dict`` every type's global node ids (``arange`` on the full graph, a sampled
    batch's ``n_id``).
    """

    def forward(self, x_dict: dict, edge_index_dict: dict, n_id_dict: dict) -> torch.Tensor:
        """Unnormalised class scores ``[N_target, C]`` of the target type's nodes in the graph given."""

    def forward_with_aux(self, x_dict: dict, edge_index_dict: dict,
                         n_id_dict: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, auxiliary_loss)``: the loss to add to the classification loss in training
        (LATTE's proximity loss), or None when the model has none (in eval mode, or by design)."""


# ---------------------------------------------------------------------------------- optimisation
@runtime_checkable
class OwnParameterGroups(Protocol):
    """A model that chooses its optimizer parameter groups (e.g. no weight decay on biases).

    Implemented by LATTE (its official ``configure_optimizers`` groups). Called by
    :func:`graphrec.train.trainer.make_optimizer`, which passes ``train.weight_decay`` (the
    default of any group that sets none) and builds the optimizer from exactly these groups.
    """

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """torch optimizer parameter groups (``{"params": [...], ...}``) covering the trainable parameters."""


# ---------------------------------------------------------------------------------- pipeline stages
@runtime_checkable
class LayerwiseModel(Protocol):
    """A deep node classifier exposed layer by layer, so pipeline stages run blocks of its layers
    on blocks of rows with the model's own parameters (GNNPipe-style, :mod:`graphrec.parallel`).

    Implemented by GCN and GCNII. Called by :mod:`graphrec.parallel.stages` and the pipeline
    engine: ``input_layer`` on the feature rows, ``layer`` for layers ``0..num_layers-1`` (each
    stage its consecutive block, on an :class:`~graphrec.nn.EdgeBlock` of the target rows),
    ``output_layer`` on the last stage. The single-process ``forward`` is the same computation over
    the whole graph, with plain dropout where the engine draws per-epoch masks at the rate ``dropout``.
    """

    #: the rate of every dropout site; the engine draws its per-epoch masks with it
    dropout: float

    @property
    def num_layers(self) -> int:
        """Message-passing layers L, numbered ``0..L-1``."""

    def input_layer(self, x: torch.Tensor) -> torch.Tensor:
        """The input rows of layer 0 (and GCNII's ``H0``) from raw feature rows."""

    def layer(self, index: int, h: torch.Tensor, h0: torch.Tensor | None, adjacency) -> torch.Tensor:
        """Layer ``index`` for the target rows of ``adjacency`` (the whole graph's ``A_hat`` or an
        :class:`~graphrec.nn.EdgeBlock`): ``h`` are the rows it reads, ``h0`` the targets' carried rows."""

    def output_layer(self, h: torch.Tensor) -> torch.Tensor:
        """Class scores from the last layer's rows."""


#: the Protocol every model registered for a task meets (``ModelEntry.task`` -> Protocol)
ROLE_PROTOCOLS: dict[str, type] = {
    "recommendation": RecommenderModel,
    "node_classification": NodeClassifier,
    "hetero_node_classification": HeteroNodeClassifier,
}
