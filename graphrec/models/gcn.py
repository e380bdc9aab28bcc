"""GCN, graph convolutional network (Kipf and Welling, ICLR 2017), of configurable depth."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphrec.models.dagnn import feature_dropout
from graphrec.models.registry import get_model_entry, register_model
from graphrec.nn import GCNPropagation, NormalizedAdjacency


def _validate(hidden_channels: int, num_layers: int, dropout: float, **_) -> None:
    if hidden_channels < 1 or num_layers < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError("hidden_channels and num_layers must be >= 1 and 0 <= dropout < 1")


@register_model(
    "gcn", task="node_classification", validate=_validate,
    description="GCN (Kipf & Welling, ICLR 2017): L stacked graph convolutions, the plain deep baseline",
)
class GCN(nn.Module):
    r"""GCN from `"Semi-Supervised Classification with Graph Convolutional Networks"
    <https://arxiv.org/abs/1609.02907>`_ (Kipf and Welling, ICLR 2017), ``num_layers`` deep.

    Each layer is PyG's :class:`~torch_geometric.nn.GCNConv`,

    .. math::
        \mathbf{H}^{(l+1)} = \hat{\mathbf{A}}\,\mathrm{drop}(\mathbf{H}^{(l)})\,\mathbf{W}^{(l)} + \mathbf{b}^{(l)},
        \qquad \hat{\mathbf{A}} = \mathbf{D}^{-1/2}(\mathbf{A} + \mathbf{I})\mathbf{D}^{-1/2},

    with ReLU after every layer but the last, which maps to the C classes (``num_layers=1``:
    one convolution straight from features to classes). Transformation and propagation are
    entangled: depth L means L propagations *and* L weight matrices, the setting in which
    the DAGNN paper shows accuracy collapsing with depth (over-smoothing).

    Node-classification interface: ``model(x, edge_index) -> logits [N, C]``. ``A_hat`` is
    normalised once per graph (cached) and shared by all layers; ``x`` may be dense or sparse
    COO (input dropout then drops stored entries only).

    Layer hooks (what :mod:`graphrec.parallel.stages` runs on row blocks): :meth:`input_layer`,
    :meth:`layer` (``adjacency``: the whole graph's :class:`~graphrec.nn.NormalizedAdjacency` or
    an :class:`~graphrec.nn.EdgeBlock` of it) and :meth:`output_layer`; dropout is the caller's.

    Args:
        num_features: input feature size.
        num_classes: number of classes C.
        hidden_channels: width of the hidden layers.
        num_layers: number of graph convolutions L (>= 1).
        dropout: dropout before each convolution.
    """

    sparse_features = True  # forward takes x as a sparse COO tensor too (GCNConv's Linear does)

    def __init__(self, num_features: int, num_classes: int, hidden_channels: int = 64, num_layers: int = 2,
                 dropout: float = 0.5):
        super().__init__()
        _validate(hidden_channels, num_layers, dropout)
        from torch_geometric.nn import GCNConv

        if num_features < 1 or num_classes < 1 or num_layers < 1:
            raise ValueError("num_features, num_classes and num_layers must be >= 1")
        self.dropout = dropout
        sizes = [num_features] + [hidden_channels] * (num_layers - 1) + [num_classes]
        # GCNConv holds each layer's parameters (lin.weight, bias: checkpoints keep PyG's names);
        # the product runs in :meth:`layer`, on graphrec's propagation.
        self.convs = nn.ModuleList(GCNConv(a, b, normalize=False) for a, b in zip(sizes[:-1], sizes[1:]))
        self._propagation = GCNPropagation(cached=True)

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def input_layer(self, x: torch.Tensor) -> torch.Tensor:
        """The input of layer 0 (the features themselves: GCN has no input transform)."""
        return x

    def layer(self, index: int, h: torch.Tensor, h0: torch.Tensor | None, adjacency) -> torch.Tensor:
        """Layer ``index``: ``A_hat h W + b``, ReLU but after the last layer (``h0`` unused).

        ``h`` holds the rows ``adjacency.propagate`` reads; the result has its target rows."""
        conv = self.convs[index]
        if h.layout != torch.strided or conv.in_channels > conv.out_channels:
            out = adjacency.propagate(conv.lin(h))  # transform first: fewer columns to propagate
        else:
            out = conv.lin(adjacency.propagate(h))
        if conv.bias is not None:
            out = out + conv.bias
        return F.relu(out) if index < len(self.convs) - 1 else out

    def output_layer(self, h: torch.Tensor) -> torch.Tensor:
        """Logits from the last layer's rows (the last layer already maps to the classes)."""
        return h

    def adjacency(self, edge_index, num_nodes: int) -> NormalizedAdjacency:
        """``A_hat`` for ``edge_index`` (passed through when it already is an adjacency), cached."""
        return self._propagation.adjacency(edge_index, num_nodes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        adjacency = self.adjacency(edge_index, x.shape[0])
        h = self.input_layer(x)
        for index in range(len(self.convs)):
            h = self.layer(index, feature_dropout(h, self.dropout, self.training), None, adjacency)
        return self.output_layer(h)

#: GCN's hyper-parameters as a dataclass, derived from its constructor by the registry
GCNConfig = get_model_entry("gcn").config_cls
