"""CatGCN, graph convolution over categorical node features (Chen et al., TKDE 2023)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphrec.models.registry import get_model_entry, register_model
from graphrec.nn import GCNPropagation, NormalizedAdjacency

INTERACTIONS = ("both", "global", "local", "none")


def _validate(embedding_dim: int, num_hops: int, dropout: float, diag_probe: float, balance_ratio: float,
              interaction: str, global_hidden: tuple[int, ...], local_hidden: tuple[int, ...], **_) -> None:
    if embedding_dim < 1 or num_hops < 0 or not 0.0 <= dropout < 1.0:
        raise ValueError("embedding_dim must be >= 1, num_hops >= 0 and 0 <= dropout < 1")
    if diag_probe < 0 or not 0.0 <= balance_ratio <= 1.0:
        raise ValueError("diag_probe must be >= 0 and 0 <= balance_ratio <= 1")
    if interaction not in INTERACTIONS:
        raise ValueError(f"interaction must be one of {INTERACTIONS}, got {interaction!r}")
    if any(int(h) < 1 for h in tuple(global_hidden) + tuple(local_hidden)):
        raise ValueError("hidden sizes must be >= 1")


def bi_interaction(embeddings: torch.Tensor) -> torch.Tensor:
    r"""NFM bi-interaction pooling: :math:`\sum_{i<j} e_i \odot e_j = \tfrac12[(\sum_i e_i)^2 - \sum_i e_i^2]`.

    ``embeddings`` ``[..., F, d]`` -> ``[..., d]``, in O(F d) instead of O(F^2 d).
    """
    summed = embeddings.sum(dim=-2)
    return 0.5 * (summed * summed - (embeddings * embeddings).sum(dim=-2))


def field_graph_adjacency(num_fields: int, diag_probe: float) -> torch.Tensor:
    r"""The normalised artificial field graph :math:`\mathbf{P}'' = (\mathbf{J} + p\mathbf{I}) / (F + p)`.

    Fully connected (``J`` all ones, self-loops included) plus the probe ``p`` on the diagonal;
    every row sums to ``F + p``, so the symmetric normalisation ``Q^-1/2 P' Q^-1/2`` is the division.
    Dense ``[F, F]``, for reference: :class:`FieldGraphConvolution` never builds it.
    """
    return (torch.ones(num_fields, num_fields) + diag_probe * torch.eye(num_fields)) / (num_fields + diag_probe)


class FieldGraphConvolution(nn.Module):
    r"""One graph convolution over each node's fully connected field graph (CatGCN's global branch).

    .. math::
        \mathbf{H}' = \mathbf{P}''\,\mathbf{H}\mathbf{W} + \mathbf{b},\qquad
        \mathbf{P}'' = \frac{\mathbf{J} + p\,\mathbf{I}}{F + p}

    for every node's field embeddings :math:`\mathbf{H}\in\mathbb{R}^{F\times d}`. Because
    :math:`\mathbf{P}''` is "all ones plus probe", the product is
    :math:`(\mathbf{1}\mathbf{1}^\top \mathbf{Z} + p\,\mathbf{Z}) / (F+p)` with
    :math:`\mathbf{Z}=\mathbf{H}\mathbf{W}`: the field sum broadcast plus the probe-weighted field itself,
    O(F d) per node. Weight Xavier-uniform, bias zero (as the official ``BatchAGC``).
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, fields: torch.Tensor, diag_probe: float) -> torch.Tensor:
        z = fields @ self.weight
        num_fields = fields.shape[-2]
        return (z.sum(dim=-2, keepdim=True) + diag_probe * z) / (num_fields + diag_probe) + self.bias


def _dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with a uniform-threshold mask: the law of ``F.dropout``, and about twice
    as fast on CPU for the large ``[N, F, d]`` field tensor (``bernoulli_`` is slow there)."""
    if not training or p == 0.0:
        return x
    return x * ((torch.rand_like(x) >= p).to(x.dtype) / (1.0 - p))


def _mlp(sizes: list[int]) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))


@register_model(
    "catgcn", task="node_classification", validate=_validate,
    description="CatGCN (Chen et al., TKDE 2023): field-interaction node features (global field-graph GCN + "
                "local NFM bi-interaction), then K hops of A_hat",
)
class CatGCN(nn.Module):
    r"""CatGCN from `"CatGCN: Graph Convolutional Networks with Categorical Node Features"
    <https://arxiv.org/abs/2009.05303>`_ (Chen, Feng, Wang, He, Song, Ling, Zhang; TKDE 2023).

    Node :math:`i` has F categorical fields; each value has an embedding, giving
    :math:`\mathbf{E}_i = [\mathbf{e}_{i1},\dots,\mathbf{e}_{iF}]\in\mathbb{R}^{F\times d}`.
    The initial node representation models explicit feature interactions.

    *Global interaction* (one GCN layer over an artificial fully connected field graph whose
    self-loops carry the "probe" weight :math:`p`, then mean pooling over fields and an MLP):

    .. math::
        \mathbf{g}_i = \mathrm{MLP}_g\Big(\tfrac1F \textstyle\sum_f \mathrm{drop}\big(
            \mathrm{ReLU}(\mathbf{P}''\mathbf{E}_i\mathbf{W} + \mathbf{b})\big)_f\Big),\qquad
        \mathbf{P}'' = (\mathbf{J} + p\mathbf{I})/(F + p).

    *Local interaction* (NFM bi-interaction pooling of all field pairs, then an MLP):

    .. math::
        \mathbf{l}_i = \mathrm{MLP}_l\Big(\textstyle\sum_{f<f'} \mathbf{e}_{if}\odot\mathbf{e}_{if'}\Big)
        = \mathrm{MLP}_l\Big(\tfrac12\big[(\textstyle\sum_f \mathbf{e}_{if})^2 - \sum_f \mathbf{e}_{if}^2\big]\Big).

    Both MLPs end in the C classes (official default: a single Linear each); they are mixed by
    the balance ratio, :math:`\mathbf{h}_i = \beta\,\mathbf{g}_i + (1-\beta)\,\mathbf{l}_i`, and
    propagated K hops without parameters (the official "pna" layer):

    .. math::
        \mathbf{Z} = \hat{\mathbf{A}}^K \mathbf{H},\qquad
        \hat{\mathbf{A}} = \mathbf{D}^{-1/2}(\mathbf{A}+\mathbf{I})\mathbf{D}^{-1/2}.

    ``interaction="none"`` replaces :math:`\mathbf{h}_i` by
    :math:`\mathrm{MLP}_m(\mathrm{drop}(\frac1F\sum_f \mathbf{e}_{if}))`, a linear function of the
    one-hot fields: the same-depth GCN without interaction modelling. ``"global"`` / ``"local"``
    keep one branch. ``forward`` returns logits; the (class-weighted) softmax cross-entropy is
    the official ``log_softmax`` + weighted NLL, and lives in the task.

    Node-classification interface: ``model(x_fields, edge_index) -> logits [N, C]`` where
    ``x_fields`` is long ``[N, F]`` of global value ids in ``0..num_features-1`` (see
    :mod:`graphrec.data.categorical`; the class attribute ``categorical_fields = True`` tells the
    task to pass them instead of ``x``). ``edge_index`` may also be a precomputed
    ``A_hat`` (:class:`graphrec.nn.NormalizedAdjacency`); the normalised adjacency of the last graph seen is cached.

    Args:
        num_features: number of distinct field values V (the width of the one-hot ``x``).
        num_classes: number of classes C.
        embedding_dim: field embedding size d (official: 64).
        num_hops: propagation depth K (official Tencent-age: 6).
        dropout: dropout after the field-graph convolution and between MLP layers (0.3).
        diag_probe: probe weight p on the field graph's self-loops (1).
        balance_ratio: beta, the global branch's share (0.4).
        interaction: "both", "global", "local" or "none" (see above).
        global_hidden, local_hidden: hidden sizes of the two MLPs (official: none).
    """

    categorical_fields = True  # the task passes x_fields, not x

    def __init__(self, num_features: int, num_classes: int, embedding_dim: int = 64, num_hops: int = 6,
                 dropout: float = 0.3, diag_probe: float = 1.0, balance_ratio: float = 0.4,
                 interaction: str = "both", global_hidden: tuple[int, ...] = (), local_hidden: tuple[int, ...] = ()):
        super().__init__()
        _validate(embedding_dim, num_hops, dropout, diag_probe, balance_ratio, interaction, global_hidden,
                  local_hidden)
        if num_features < 1 or num_classes < 1:
            raise ValueError("num_features and num_classes must be >= 1")
        self.num_features, self.num_classes = num_features, num_classes
        self.num_hops, self.dropout = num_hops, dropout
        self.diag_probe, self.balance_ratio, self.interaction = diag_probe, balance_ratio, interaction
        self.embedding = nn.Embedding(num_features, embedding_dim)
        if interaction in ("both", "global"):
            self.field_conv = FieldGraphConvolution(embedding_dim, embedding_dim)
            self.global_mlp = _mlp([embedding_dim, *map(int, global_hidden), num_classes])
        if interaction in ("both", "local"):
            self.local_mlp = _mlp([embedding_dim, *map(int, local_hidden), num_classes])
        if interaction == "none":
            self.mean_mlp = _mlp([embedding_dim, *map(int, global_hidden), num_classes])
        self._propagation = GCNPropagation(cached=True)

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _run_mlp(self, layers: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
        for number, layer in enumerate(layers):
            h = layer(h)
            if number + 1 < len(layers):
                h = F.dropout(F.relu(h), self.dropout, self.training)
        return h

    # The branches never look up the [N, F, d] embeddings and then transform them: an embedding
    # followed by a linear map is the linear map of the embedding table, so W is applied to the
    # V table rows, and field sums are embedding bags. Same values as the formulas, less work.
    def global_interaction(self, x_fields: torch.Tensor) -> torch.Tensor:
        """``g``: field-graph convolution, ReLU, dropout, mean over fields, MLP -> ``[N, C]``.

        ``P'' E W + b`` row f is ``(sum_f' z_f' + p z_f) / (F + p) + b`` with ``z = e W``."""
        conv = self.field_conv
        table = self.embedding.weight @ conv.weight  # z for every field value, [V, d]
        num_fields = x_fields.shape[1]
        scale = 1.0 / (num_fields + self.diag_probe)
        shared = F.embedding_bag(x_fields, table, mode="sum") * scale + conv.bias  # [N, d]
        h = torch.addcmul(shared.unsqueeze(1), F.embedding(x_fields, table), torch.tensor(self.diag_probe * scale))
        h = _dropout(F.relu(h), self.dropout, self.training)
        return self._run_mlp(self.global_mlp, h.mean(dim=1))

    def local_interaction(self, x_fields: torch.Tensor) -> torch.Tensor:
        """``l``: bi-interaction pooling ``((sum e)^2 - sum e^2) / 2``, MLP -> ``[N, C]``."""
        table = self.embedding.weight
        summed = F.embedding_bag(x_fields, table, mode="sum")
        squares = F.embedding_bag(x_fields, table * table, mode="sum")
        return self._run_mlp(self.local_mlp, 0.5 * (summed * summed - squares))

    def initial_representation(self, x_fields: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``H`` (before propagation), ``[N, C]``; ``nodes`` (the rows' node ids) is not needed here."""
        if x_fields.dtype not in (torch.long, torch.int32, torch.int64) or x_fields.dim() != 2:
            raise ValueError(f"CatGCN takes x_fields, a [nodes, fields] integer tensor of field-value ids; got "
                             f"{x_fields.dtype} {tuple(x_fields.shape)} (is the data a categorical graph?)")
        x_fields = x_fields.long()
        if self.interaction == "none":
            pooled = F.embedding_bag(x_fields, self.embedding.weight, mode="mean")
            return self._run_mlp(self.mean_mlp, F.dropout(pooled, self.dropout, self.training))
        if self.interaction == "global":
            return self.global_interaction(x_fields)
        if self.interaction == "local":
            return self.local_interaction(x_fields)
        return (self.balance_ratio * self.global_interaction(x_fields)
                + (1.0 - self.balance_ratio) * self.local_interaction(x_fields))

    def propagate(self, h: torch.Tensor, adjacency) -> torch.Tensor:
        """``A_hat^K h``."""
        adjacency = self.adjacency(adjacency, h.shape[0])
        for _ in range(self.num_hops):
            h = adjacency.propagate(h)
        return h

    def forward(self, x_fields: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.initial_representation(x_fields)
        return self.propagate(h, self.adjacency(edge_index, x_fields.shape[0]))

    def adjacency(self, edge_index, num_nodes: int) -> NormalizedAdjacency:
        """``A_hat`` for ``edge_index`` (passed through when it already is an adjacency), cached."""
        return self._propagation.adjacency(edge_index, num_nodes)


#: CatGCN's hyper-parameters as a dataclass, derived from its constructor by the registry
CatGCNConfig = get_model_entry("catgcn").config_cls
