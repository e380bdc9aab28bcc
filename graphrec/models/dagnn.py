"""DAGNN, Deep Adaptive Graph Neural Network (Liu, Gao, Ji, KDD 2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphrec.models.registry import get_model_entry, register_model
from graphrec.nn import GCNPropagation, NormalizedAdjacency


def _validate(hidden_channels: int, num_hops: int, dropout: float, **_) -> None:
    if hidden_channels < 1 or num_hops < 0 or not 0.0 <= dropout < 1.0:
        raise ValueError("hidden_channels must be >= 1, num_hops >= 0 and 0 <= dropout < 1")


def feature_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout that also takes a sparse COO ``x``: only stored entries are dropped (zeros stay
    zero either way), so the result has the law of dense dropout at O(non-zeros) cost."""
    if x.layout == torch.strided:
        return F.dropout(x, p=p, training=training)
    if not training or p == 0.0:
        return x
    x = x.coalesce()
    return torch.sparse_coo_tensor(x.indices(), F.dropout(x.values(), p=p, training=True), x.shape,
                                   is_coalesced=True, check_invariants=False)


@register_model(
    "dagnn", task="node_classification", validate=_validate,
    description="DAGNN (Liu, Gao, Ji, KDD 2020): MLP, K hops of A_hat, learned per-node retention of each hop",
)
class DAGNN(nn.Module):
    r"""DAGNN from `"Towards Deeper Graph Neural Networks" <https://arxiv.org/abs/2007.09296>`_
    (Liu, Gao, Ji, KDD 2020).

    Transformation and propagation are decoupled. An MLP maps features to class scores,

    .. math::
        \mathbf{Z} = \mathrm{MLP}(\mathbf{X})
          = \mathbf{W}_2\,\mathrm{drop}(\mathrm{ReLU}(\mathbf{W}_1\,\mathrm{drop}(\mathbf{X}))),

    which are propagated :math:`K` hops without weights over the GCN-normalised adjacency,

    .. math::
        \mathbf{H}_0 = \mathbf{Z},\qquad \mathbf{H}_k = \hat{\mathbf{A}}\mathbf{H}_{k-1},\qquad
        \hat{\mathbf{A}} = \mathbf{D}^{-1/2}(\mathbf{A} + \mathbf{I})\mathbf{D}^{-1/2},

    and combined node by node with learned retention scores (paper eq. 9, "adaptive
    adjustment"): for node :math:`i` and hop :math:`k`,
    :math:`s_{ik} = \sigma(\mathbf{H}_k[i]\,\mathbf{w} + b)` with one projection
    :math:`\mathbf{w}\in\mathbb{R}^{C}` shared by all hops, and

    .. math::
        \mathbf{X}_{\text{out}}[i] = \sum_{k=0}^{K} s_{ik}\,\mathbf{H}_k[i].

    ``forward`` returns these logits; the softmax lives in the loss (the official code's
    ``log_softmax`` + NLL is the same cross-entropy).

    Node-classification interface: ``model(x, edge_index) -> logits [N, C]``. ``x`` may be
    dense or a sparse COO tensor (``sparse_features``: dropout and the first Linear then cost
    O(non-zeros), same result); ``edge_index`` may also be a precomputed ``A_hat``
    (:class:`graphrec.nn.NormalizedAdjacency`, or a torch sparse tensor). The normalised
    adjacency of the last graph seen is cached (:class:`graphrec.nn.GCNPropagation`), so
    full-batch training normalises once.

    Args:
        num_features: input feature size.
        num_classes: number of classes C.
        hidden_channels: MLP hidden size (paper: 64).
        num_hops: propagation depth K (paper: 10 for Cora/CiteSeer, 20 for PubMed).
        dropout: dropout before each Linear (paper: 0.8 Cora/PubMed, 0.5 CiteSeer).
    """

    sparse_features = True  # forward takes x as a sparse COO tensor too

    def __init__(self, num_features: int, num_classes: int, hidden_channels: int = 64, num_hops: int = 10,
                 dropout: float = 0.5):
        super().__init__()
        _validate(hidden_channels, num_hops, dropout)
        if num_features < 1 or num_classes < 1:
            raise ValueError("num_features and num_classes must be >= 1")
        self.num_hops = num_hops
        self.dropout = dropout
        self.lin1 = nn.Linear(num_features, hidden_channels)
        self.lin2 = nn.Linear(hidden_channels, num_classes)
        self.retention = nn.Linear(num_classes, 1)  # s = sigmoid(H_k w + b), shared over hops
        self._propagation = GCNPropagation(cached=True)

    def reset_parameters(self) -> None:
        for layer in (self.lin1, self.lin2, self.retention):
            layer.reset_parameters()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``Z = MLP(X)``: dropout, Linear, ReLU, dropout, Linear (``x`` dense or sparse COO)."""
        x = feature_dropout(x, self.dropout, self.training)
        if x.layout == torch.strided:
            x = self.lin1(x)
        else:
            x = torch.sparse.mm(x, self.lin1.weight.t()) + self.lin1.bias
        x = F.relu(x)
        x = F.dropout(x, p=self.dropout, training=self.training)
        return self.lin2(x)

    def hops(self, z: torch.Tensor, adjacency) -> torch.Tensor:
        """``[H_0, ..., H_K]`` stacked as ``[N, K+1, C]``."""
        adjacency = self.adjacency(adjacency, z.shape[0])
        outputs = [z]
        for _ in range(self.num_hops):
            z = adjacency.propagate(z)
            outputs.append(z)
        return torch.stack(outputs, dim=1)

    def retention_scores(self, hops: torch.Tensor) -> torch.Tensor:
        """``s[i, k] = sigmoid(H_k[i] w + b)``, shape ``[N, K+1]``."""
        return torch.sigmoid(self.retention(hops)).squeeze(-1)

    def propagate(self, z: torch.Tensor, adjacency) -> torch.Tensor:
        """Adaptive adjustment: ``sum_k s_k * H_k`` per node."""
        stacked = self.hops(z, adjacency)
        return (self.retention_scores(stacked).unsqueeze(-1) * stacked).sum(dim=1)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.propagate(self.transform(x), self.adjacency(edge_index, x.shape[0]))

    def adjacency(self, edge_index, num_nodes: int) -> NormalizedAdjacency:
        """``A_hat`` for ``edge_index`` (passed through when it already is an adjacency), cached."""
        return self._propagation.adjacency(edge_index, num_nodes)


#: DAGNN's hyper-parameters as a dataclass, derived from its constructor by the registry
DAGNNConfig = get_model_entry("dagnn").config_cls
