"""GCNII, graph convolution with initial residual and identity mapping (Chen et al., ICML 2020)."""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

from graphrec.models.registry import get_model_entry, register_model
from graphrec.nn import GCNPropagation, NormalizedAdjacency


def _validate(hidden_channels: int, num_layers: int, alpha: float, theta: float, dropout: float, **_) -> None:
    if hidden_channels < 1 or num_layers < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError("hidden_channels and num_layers must be >= 1 and 0 <= dropout < 1")
    if not 0.0 <= alpha <= 1.0 or theta <= 0.0:
        raise ValueError("alpha must be in [0, 1] and theta > 0")


@register_model(
    "gcnii", task="node_classification", validate=_validate,
    description="GCNII (Chen et al., ICML 2020): deep GCN with initial residual and identity mapping",
)
class GCNII(nn.Module):
    r"""GCNII from `"Simple and Deep Graph Convolutional Networks" <https://arxiv.org/abs/2007.02133>`_.

    .. math::
        \mathbf{H}^{(0)} = \mathrm{ReLU}(\mathrm{drop}(\mathbf{X})\mathbf{W}_{in}),\qquad
        \mathbf{H}^{(l)} = \mathrm{ReLU}\Big(\big((1-\alpha)\hat{\mathbf{A}}\,\mathrm{drop}(\mathbf{H}^{(l-1)})
          + \alpha\mathbf{H}^{(0)}\big)\big((1-\beta_l)\mathbf{I} + \beta_l\mathbf{W}^{(l)}\big)\Big),

    :math:`\beta_l = \log(\theta / l + 1)`, logits :math:`\mathrm{drop}(\mathbf{H}^{(L)})\mathbf{W}_{out}`.
    The initial residual (:math:`\alpha\mathbf{H}^{(0)}`) and the identity mapping keep a 16-64 layer
    model from over-smoothing, which makes it the deep model of the GNNPipe experiments
    (:mod:`graphrec.parallel`). Each layer's parameters live in PyG's :class:`~torch_geometric.nn.GCN2Conv`
    (shared weights; checkpoints keep its names); the product runs on graphrec's propagation.

    Layer hooks (what :mod:`graphrec.parallel.stages` runs on row blocks): :meth:`input_layer`,
    :meth:`layer` (``adjacency``: the whole graph's :class:`~graphrec.nn.NormalizedAdjacency` or an
    :class:`~graphrec.nn.EdgeBlock` of it; ``h0``: :math:`\mathbf{H}^{(0)}` of the target rows) and
    :meth:`output_layer`; dropout is the caller's.
    Defaults: hidden 64, alpha 0.1, lambda (``theta``) 0.5, dropout 0.6 as the official Cora settings,
    16 layers.
    """

    sparse_features = False

    def __init__(self, num_features: int, num_classes: int, hidden_channels: int = 64, num_layers: int = 16,
                 alpha: float = 0.1, theta: float = 0.5, dropout: float = 0.6):
        super().__init__()
        _validate(hidden_channels, num_layers, alpha, theta, dropout)
        from torch_geometric.nn import GCN2Conv

        self.dropout, self.alpha, self.theta = dropout, alpha, theta
        self.lin_in = nn.Linear(num_features, hidden_channels)
        self.convs = nn.ModuleList(
            GCN2Conv(hidden_channels, alpha=alpha, theta=theta, layer=layer + 1, normalize=False)
            for layer in range(num_layers))
        self.lin_out = nn.Linear(hidden_channels, num_classes)
        self._propagation = GCNPropagation(cached=True)

    @staticmethod
    def beta(theta: float, layer: int) -> float:
        """Identity-mapping strength of 1-based layer ``layer``: ``log(theta / layer + 1)``."""
        return math.log(theta / layer + 1)

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def input_layer(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbf{H}^{(0)} = \mathrm{ReLU}(\mathbf{X}\mathbf{W}_{in})` (also the initial residual)."""
        return F.relu(self.lin_in(x))

    def layer(self, index: int, h: torch.Tensor, h0: torch.Tensor, adjacency) -> torch.Tensor:
        r"""Layer ``index`` (0-based): initial residual, identity mapping, ReLU.

        ``h`` holds the rows ``adjacency.propagate`` reads, ``h0`` the target rows' :math:`\mathbf{H}^{(0)}`."""
        out = (1 - self.alpha) * adjacency.propagate(h) + self.alpha * h0
        beta = self.beta(self.theta, index + 1)
        return F.relu(torch.addmm(out, out, self.convs[index].weight1, beta=1.0 - beta, alpha=beta))

    def output_layer(self, h: torch.Tensor) -> torch.Tensor:
        """Logits ``H W_out``."""
        return self.lin_out(h)

    def adjacency(self, edge_index, num_nodes: int) -> NormalizedAdjacency:
        """``A_hat`` for ``edge_index`` (passed through when it already is an adjacency), cached."""
        return self._propagation.adjacency(edge_index, num_nodes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        adjacency = self.adjacency(edge_index, x.shape[0])
        h0 = h = self.input_layer(F.dropout(x, self.dropout, self.training))
        for index in range(len(self.convs)):
            h = self.layer(index, F.dropout(h, self.dropout, self.training), h0, adjacency)
        return self.output_layer(F.dropout(h, self.dropout, self.training))

#: GCNII's hyper-parameters as a dataclass, derived from its constructor by the registry
GCNIIConfig = get_model_entry("gcnii").config_cls
