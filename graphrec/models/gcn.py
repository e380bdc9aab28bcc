"""GCN, graph convolutional network (Kipf and Welling, ICLR 2017), of configurable depth."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphrec.models.dagnn import feature_dropout
from graphrec.models.registry import get_model_entry, register_model


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
    normalised once per forward and shared by all layers (``normalize=False`` convolutions);
    ``x`` may be dense or sparse COO (input dropout then drops stored entries only).

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
        self.convs = nn.ModuleList(GCNConv(a, b, normalize=False) for a, b in zip(sizes[:-1], sizes[1:]))

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        from torch_geometric.nn.conv.gcn_conv import gcn_norm

        edge_index, weight = gcn_norm(edge_index, None, x.shape[0], add_self_loops=True, dtype=torch.float32)
        last = len(self.convs) - 1
        for number, conv in enumerate(self.convs):
            x = feature_dropout(x, self.dropout, self.training)
            x = conv(x, edge_index, weight)
            if number < last:
                x = F.relu(x)
        return x


#: GCN's hyper-parameters as a dataclass, derived from its constructor by the registry
GCNConfig = get_model_entry("gcn").config_cls
