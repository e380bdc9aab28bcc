"""LATTE, Layer-stacked ATTention Embedding for heterogeneous graphs (Tran & Gao, arXiv 2009.08072)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import softmax

from graphrec.models.metapath import (MetaPath, MetaPathCache, compose_edge_index, extend_metapaths,
                                      metapath_name, source_type, target_type)
from graphrec.models.registry import get_model_entry, register_model
from graphrec.nn import aggregate as graph_aggregate

#: above this many gathered message entries (edges x channels) a relation is aggregated with a
#: sparse CSR product per head instead of materialising every message (ACM's paper-subject-paper:
#: 4.3M edges x 128 channels would be 2.2 GB)
GATHER_LIMIT = 1 << 24


def _validate(embedding_dim: int, num_layers: int, heads: int, attn_dropout: float, dropout: float,
              classifier_dropout: float, neg_sampling_ratio: float, edge_threshold: float, **_) -> None:
    if embedding_dim < 1 or num_layers < 1 or heads < 1 or embedding_dim % heads:
        raise ValueError("embedding_dim, num_layers and heads must be >= 1, heads dividing embedding_dim")
    for name, value in (("attn_dropout", attn_dropout), ("dropout", dropout),
                        ("classifier_dropout", classifier_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1)")
    if neg_sampling_ratio <= 0:
        raise ValueError("neg_sampling_ratio must be > 0")
    if not 0.0 <= edge_threshold <= 1.0:
        raise ValueError("edge_threshold must be in [0, 1]")


class LATTEConv(nn.Module):
    r"""One LATTE layer over a fixed list of (t-order) meta-paths.

    For node type :math:`\phi` with input embeddings :math:`h_i` and meta-paths
    :math:`m \in M_\phi` ending at :math:`\phi`, with :math:`H` heads:

    .. math::
        \beta_i = \mathrm{softmax}\big(W^\beta_\phi h_i + b^\beta_\phi\big) \in \Delta^{|M_\phi|+1}
        \quad \text{(relation weights, eq. 5; the last entry selects the node itself)}

    .. math::
        e^m_{ij} = a_m\,\mathrm{LeakyReLU}_{0.2}\big(\langle \vec a^{\,l}_m, W^l_\phi h_i\rangle
                   + \langle \vec a^{\,r}_m, W^r_{\psi} h_j\rangle\big),\qquad
        \alpha^m_{ij} = \frac{\exp e^m_{ij}}{\sum_{k \in N_m(i)} \exp e^m_{ik}}
        \quad \text{(node-level attention per head, eq. 3; } a_m \text{ the learned sharpening)}

    .. math::
        h^m_i = \sum_{j \in N_m(i)} \alpha^m_{ij} W^r_{\psi} h_j,\qquad
        h'_i = \sigma\Big(\sum_{m} \beta_{i,m}\, h^m_i + \beta_{i,\text{self}}\, W^l_\phi h_i\Big)
        \quad \text{(eq. 6)}

    where :math:`\psi` is the source type of :math:`m`, the heads are concatenated and
    :math:`\sigma` is ReLU. A meta-path without edges in the current graph contributes
    :math:`h^m_i = 0` (its :math:`\beta` still takes its share), as in the official code.
    Attention dropout is applied to :math:`\alpha` after the softmax.
    """

    def __init__(self, in_dim: int, out_dim: int, node_types: list[str], metapaths: list[MetaPath], heads: int,
                 attn_dropout: float):
        super().__init__()
        self.node_types = list(node_types)
        self.metapaths = list(metapaths)
        self.names = [metapath_name(p) for p in self.metapaths]
        self.heads, self.out_dim, self.head_dim = heads, out_dim, out_dim // heads
        self.attn_dropout = attn_dropout
        self.lin_l = nn.ModuleDict({t: nn.Linear(in_dim, out_dim) for t in self.node_types})
        self.lin_r = nn.ModuleDict({t: nn.Linear(in_dim, out_dim) for t in self.node_types})
        self.relation_score = nn.ModuleDict({t: nn.Linear(in_dim, len(self.relations_of(t)) + 1)
                                             for t in self.node_types})
        self.attn_l = nn.Parameter(torch.empty(len(self.metapaths), heads, self.head_dim))
        self.attn_r = nn.Parameter(torch.empty(len(self.metapaths), heads, self.head_dim))
        self.sharpening = nn.Parameter(torch.ones(len(self.metapaths)))
        self.reset_parameters()

    def relations_of(self, node_type: str) -> list[int]:
        """Indices of the meta-paths that ``node_type`` aggregates over (its beta slots, in order)."""
        return [k for k, path in enumerate(self.metapaths) if target_type(path) == node_type]

    def relation_names(self, node_type: str) -> list[str]:
        return [self.names[k] for k in self.relations_of(node_type)] + [node_type]

    def reset_parameters(self) -> None:
        gain = nn.init.calculate_gain("leaky_relu", 0.2)
        for k in range(len(self.metapaths)):
            nn.init.xavier_normal_(self.attn_l[k], gain=gain)
            nn.init.xavier_normal_(self.attn_r[k], gain=gain)
        relu = nn.init.calculate_gain("relu")
        for layer in list(self.lin_l.values()) + list(self.lin_r.values()):
            nn.init.xavier_normal_(layer.weight, gain=relu)
            nn.init.zeros_(layer.bias)
        for layer in self.relation_score.values():
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.sharpening.fill_(1.0)

    def scores(self, k: int, left: torch.Tensor, right: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``e^m_ij`` ``[E, heads]`` of meta-path ``k`` on its edges (source j -> target i)."""
        alpha_l = (left * self.attn_l[k]).sum(-1)     # [N_target, H]
        alpha_r = (right * self.attn_r[k]).sum(-1)    # [N_source, H]
        raw = alpha_l[edge_index[1]] + alpha_r[edge_index[0]]
        return self.sharpening[k] * F.leaky_relu(raw, negative_slope=0.2)

    def forward(self, h: dict[str, torch.Tensor], edges: dict[MetaPath, torch.Tensor]):
        """``h``: type -> ``[N_t, in_dim]``; ``edges``: meta-path -> ``edge_index`` (source -> target).

        Returns ``(out, beta, alpha)``: type -> ``[N_t, out_dim]`` (after ReLU), type ->
        ``[N_t, |M_t| + 1]`` relation weights, meta-path -> ``[E, heads]`` attention.
        """
        left = {t: self.lin_l[t](h[t]).view(-1, self.heads, self.head_dim) for t in self.node_types if t in h}
        right = {t: self.lin_r[t](h[t]).view(-1, self.heads, self.head_dim) for t in self.node_types if t in h}
        out, beta, alpha = {}, {}, {}
        for t in self.node_types:
            if t not in h:
                continue
            n = h[t].shape[0]
            beta[t] = torch.softmax(self.relation_score[t](h[t]), dim=-1)
            combined = beta[t][:, -1:] * left[t].reshape(n, -1)
            for slot, k in enumerate(self.relations_of(t)):
                path = self.metapaths[k]
                edge_index = edges.get(path)
                if edge_index is None or edge_index.shape[1] == 0:
                    continue
                src = right[source_type(path)]
                a = softmax(self.scores(k, left[t], src, edge_index), edge_index[1], num_nodes=n)
                alpha[path] = a
                a = F.dropout(a, p=self.attn_dropout, training=self.training)
                message = aggregate(a, src, edge_index, n)
                combined = combined + beta[t][:, slot:slot + 1] * message.reshape(n, -1)
            out[t] = F.relu(combined)
        self._left, self._right = left, right   # for the proximity loss of the same pass
        return out, beta, alpha

    def proximity_loss(self, edges: dict[MetaPath, torch.Tensor], neg_ratio: float) -> torch.Tensor:
        """Paper eq. 8: every meta-path's edges are scored ``sigma(a_m LeakyReLU(max_h(...)))``
        against ``neg_ratio`` uniform random pairs per edge; mean of the positive and negative
        log-likelihoods over meta-paths (official ``proximity_loss``)."""
        loss, terms = None, 0
        for k, path in enumerate(self.metapaths):
            edge_index = edges.get(path)
            if edge_index is None or edge_index.shape[1] == 0:
                continue
            left, right = self._left[target_type(path)], self._right[source_type(path)]
            alpha_l = (left * self.attn_l[k]).sum(-1)
            alpha_r = (right * self.attn_r[k]).sum(-1)

            def logits(index):
                raw = (alpha_l[index[1]] + alpha_r[index[0]]).max(dim=1).values
                return self.sharpening[k] * F.leaky_relu(raw, negative_slope=0.2)

            num_neg = max(int(edge_index.shape[1] * neg_ratio), 1)
            negative = torch.stack([torch.randint(0, right.shape[0], (num_neg,), device=edge_index.device),
                                    torch.randint(0, left.shape[0], (num_neg,), device=edge_index.device)])
            term = -F.logsigmoid(logits(edge_index)).mean() - F.logsigmoid(-logits(negative)).mean()
            loss = term if loss is None else loss + term
            terms += 2
        if loss is None:
            return torch.zeros((), device=self.sharpening.device)
        return loss / terms


def aggregate(alpha: torch.Tensor, source: torch.Tensor, edge_index: torch.Tensor, num_targets: int) -> torch.Tensor:
    """``out[i, h] = sum_j alpha[(j, i), h] * source[j, h]`` over ``edge_index`` (source -> target).

    :func:`graphrec.nn.aggregate` per head: relations above :data:`GATHER_LIMIT` message entries
    take its sparse CSR product, which never materialises the ``[E, heads, dim]`` messages (the
    (source, target) pairs must be unique; loaded relations, sampled batches and composed
    meta-paths all are).
    """
    return graph_aggregate(source, edge_index[0], edge_index[1], alpha, num_targets, gather_limit=GATHER_LIMIT)


@register_model(
    "latte", task="hetero_node_classification", validate=_validate,
    description="LATTE (Tran & Gao 2020): layer-stacked relation (beta) and node (alpha) attention over t-order "
                "meta-paths, layers concatenated",
)
class LATTE(nn.Module):
    r"""LATTE from `"Layer-stacked Attention for Heterogeneous Network Embedding"
    <https://arxiv.org/abs/2009.08072>`_ (Tran & Gao, 2020); official code JonnyTran/LATTE.

    Input: every type with features is projected, :math:`h^0_i = \mathrm{drop}(\mathrm{ReLU}(W_\phi x_i))`;
    every type without gets a learned embedding :math:`h^0_i = E_\phi[i]` (indexed by global id).
    Layer :math:`t = 1..T` is a :class:`LATTEConv` over the :math:`t`-order meta-paths: the
    base relations for :math:`t = 1`, and every :math:`(t-1)`-order path continued by one base
    relation for :math:`t > 1` (:func:`~graphrec.models.metapath.extend_metapaths`; adjacency =
    boolean product). Dropout follows every layer and the node embedding is the concatenation
    :math:`[h^1_i \| \dots \| h^T_i]` (``layer_pooling="concat"``), classified by dropout + Linear.

    Heterogeneous node-classification interface (what :class:`HeteroNodeClassificationTask`
    calls)::

        model = LATTE(metadata, in_channels={"paper": 1902}, num_nodes={"paper": 4019, ...},
                      num_classes=3, target="paper")
        logits = model(x_dict, edge_index_dict, n_id_dict)    # [N_target, C]

    ``x_dict`` holds the featured types, ``edge_index_dict`` the base relations (PyG layout,
    source -> target) and ``n_id_dict`` every type's global node ids (``arange`` on the full
    graph; a sampled batch's ``n_id``). ``relation_weights`` (after an eval-mode forward)
    returns the last pass's beta per layer and type, the paper's interpretability output.
    :meth:`forward_with_aux` returns the logits with the proximity loss of the pass (training
    with ``use_proximity``; else None), which the task adds to the classification loss.

    Hyper-parameters (defaults: the official ``run.py``, method LATTE-2): ``embedding_dim`` (128),
    ``num_layers`` (2), ``heads`` (2), ``attn_dropout``, ``dropout`` (0.2), ``classifier_dropout``
    (0.4, the official ``nb_cls_dropout``, before the classifier); ``use_proximity`` adds the
    proximity (link) loss of eq. 8 ("LATTE-2proximity") with ``neg_sampling_ratio`` uniform negative
    edges per positive edge (2.0); ``embedding_std``: std of the normal init of the embeddings of
    types without features (official: nn.Embedding's N(0, 1); 0.1 here, chosen on validation);
    ``official_parameter_groups``: the official optimizer groups, no weight decay on biases,
    sharpening and embeddings; ``edge_threshold``: the official ``edge_threshold``, a t-order
    meta-path (t > 1) is composed only from the (t-1)-order edges whose previous-layer attention
    (max over heads) is at least this (the top edge is always kept); 0 composes every edge.
    """

    def __init__(self, metadata, in_channels: dict[str, int], num_nodes: dict[str, int], num_classes: int,
                 target: str, embedding_dim: int = 128, num_layers: int = 2, heads: int = 2,
                 attn_dropout: float = 0.2, dropout: float = 0.2, classifier_dropout: float = 0.4,
                 use_proximity: bool = False, neg_sampling_ratio: float = 2.0, embedding_std: float = 0.1,
                 official_parameter_groups: bool = True, edge_threshold: float = 0.0):
        super().__init__()
        _validate(embedding_dim, num_layers, heads, attn_dropout, dropout, classifier_dropout, neg_sampling_ratio,
                  edge_threshold)
        node_types, edge_types = metadata
        self.node_types = list(node_types)
        self.edge_types = [tuple(et) for et in edge_types]
        self.target = target
        self.dropout, self.classifier_dropout = dropout, classifier_dropout
        self.use_proximity, self.neg_sampling_ratio = use_proximity, neg_sampling_ratio
        self.embedding_std = embedding_std
        self.official_parameter_groups = official_parameter_groups
        self.edge_threshold = edge_threshold
        featured = {t: int(c) for t, c in in_channels.items() if c}
        self.projection = nn.ModuleDict({t: nn.Linear(c, embedding_dim) for t, c in featured.items()})
        self.embedding = nn.ModuleDict({t: nn.Embedding(int(num_nodes[t]), embedding_dim)
                                        for t in self.node_types if t not in featured})
        self.metapaths: list[list[MetaPath]] = []
        order = [(et,) for et in self.edge_types]
        for _ in range(num_layers):
            self.metapaths.append(order)
            order = extend_metapaths(order, self.edge_types)
        self.layers = nn.ModuleList(LATTEConv(embedding_dim, embedding_dim, self.node_types, paths, heads,
                                              attn_dropout) for paths in self.metapaths)
        self.classifier = nn.Linear(embedding_dim * num_layers, num_classes)
        self._cache = MetaPathCache()
        self._betas: list[dict[str, torch.Tensor]] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        relu = nn.init.calculate_gain("relu")
        for layer in self.projection.values():
            nn.init.xavier_normal_(layer.weight, gain=relu)
            nn.init.zeros_(layer.bias)
        for table in self.embedding.values():
            nn.init.normal_(table.weight, std=self.embedding_std)
        for layer in self.layers:
            layer.reset_parameters()
        self.classifier.reset_parameters()

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer groups of the official ``configure_optimizers``: no weight decay on biases,
        the sharpening scales (official ``alpha_activation``) and the learned embeddings; the
        rest (projections, attention vectors, relation scores, classifier) gets ``weight_decay``.
        The Trainer builds its optimizer from these; with ``official_parameter_groups`` off there
        is one group and every parameter gets ``weight_decay``."""
        if not self.official_parameter_groups:
            return [{"params": list(self.parameters()), "weight_decay": weight_decay}]
        decay, no_decay = [], []
        for name, parameter in self.named_parameters():
            skip = name.endswith("bias") or name.endswith("sharpening") or name.startswith("embedding.")
            (no_decay if skip else decay).append(parameter)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def metapath_edges(self, edge_index_dict: dict, num_nodes: dict[str, int],
                       num_layers: int | None = None) -> list[dict[MetaPath, torch.Tensor]]:
        """Per layer (the first ``num_layers``), meta-path -> structural ``edge_index`` on this graph
        (cached for the last graph seen)."""
        def build():
            per_layer, previous = [], {}
            for t, paths in enumerate(self.metapaths[:num_layers]):
                current = {}
                for path in paths:
                    if t == 0:
                        edge_index = edge_index_dict.get(path[0])
                    else:
                        first, rest = path[0], path[1:]
                        if first not in edge_index_dict or rest not in previous:
                            continue
                        edge_index = compose_edge_index(
                            edge_index_dict[first], previous[rest],
                            (num_nodes[first[0]], num_nodes[first[2]], num_nodes[target_type(path)]))
                    if edge_index is not None:
                        current[path] = edge_index
                per_layer.append(current)
                previous = current
            return per_layer

        return self._cache.get(edge_index_dict, num_nodes, build)

    def filtered_edges(self, t: int, edge_index_dict: dict, num_nodes: dict[str, int],
                       previous: dict[MetaPath, torch.Tensor], alpha: dict[MetaPath, torch.Tensor]):
        """Layer ``t``'s meta-paths composed from the base relations and layer ``t - 1``'s edges whose
        attention (max over heads) is at least ``edge_threshold`` (official ``join_edge_indexes``;
        the top edge of a path is kept when none passes)."""
        kept = {}
        for rest, edge_index in previous.items():
            if rest not in alpha or edge_index.shape[1] == 0:
                continue
            score = alpha[rest].detach().max(dim=1).values
            mask = score >= self.edge_threshold
            if not bool(mask.any()):
                mask[torch.argmax(score)] = True
            kept[rest] = edge_index[:, mask]
        current = {}
        for path in self.metapaths[t]:
            first, rest = path[0], path[1:]
            if first in edge_index_dict and rest in kept:
                current[path] = compose_edge_index(
                    edge_index_dict[first], kept[rest],
                    (num_nodes[first[0]], num_nodes[first[2]], num_nodes[target_type(path)]))
        return current

    def initial_embeddings(self, x_dict: dict, n_id_dict: dict) -> dict[str, torch.Tensor]:
        h = {}
        for t in self.node_types:
            if t in self.projection:
                h[t] = F.dropout(F.relu(self.projection[t](x_dict[t])), p=self.dropout, training=self.training)
            else:
                h[t] = self.embedding[t](n_id_dict[t])
        return h

    def embed(self, x_dict: dict, edge_index_dict: dict, n_id_dict: dict) -> dict[str, torch.Tensor]:
        """Concatenated layer embeddings ``[N_t, embedding_dim * num_layers]`` of every type."""
        return self.embed_with_aux(x_dict, edge_index_dict, n_id_dict)[0]

    def embed_with_aux(self, x_dict: dict, edge_index_dict: dict,
                       n_id_dict: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """:meth:`embed` and the proximity loss of this pass (training with ``use_proximity``; else None)."""
        num_nodes = {t: int(n_id_dict[t].shape[0]) for t in self.node_types}
        edge_index_dict = {tuple(et): ei for et, ei in edge_index_dict.items()}
        filtering = self.edge_threshold > 0
        edges = self.metapath_edges(edge_index_dict, num_nodes, 1 if filtering else None)
        h = self.initial_embeddings(x_dict, n_id_dict)
        layers, betas, proximity, alpha = {t: [] for t in self.node_types}, [], None, {}
        layer_edges: dict = {}
        for depth, layer in enumerate(self.layers):
            # with filtering, layer t's meta-paths compose the previous layer's (attention-filtered) edges
            layer_edges = (self.filtered_edges(depth, edge_index_dict, num_nodes, layer_edges, alpha)
                           if filtering and depth > 0 else edges[depth])
            h, beta, alpha = layer(h, layer_edges)
            betas.append({t: b.detach() for t, b in beta.items()})
            if self.use_proximity and self.training:
                term = layer.proximity_loss(layer_edges, self.neg_sampling_ratio)
                proximity = term if proximity is None else proximity + term
            h = {t: F.dropout(v, p=self.dropout, training=self.training) for t, v in h.items()}
            for t, v in h.items():
                layers[t].append(v)
        self._betas = betas
        return {t: torch.cat(v, dim=-1) for t, v in layers.items()}, proximity

    def forward(self, x_dict: dict, edge_index_dict: dict, n_id_dict: dict) -> torch.Tensor:
        return self.forward_with_aux(x_dict, edge_index_dict, n_id_dict)[0]

    def forward_with_aux(self, x_dict: dict, edge_index_dict: dict,
                         n_id_dict: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, proximity loss or None)``
        (:class:`~graphrec.models.interfaces.HeteroNodeClassifier`)."""
        embeddings, proximity = self.embed_with_aux(x_dict, edge_index_dict, n_id_dict)
        z = embeddings[self.target]
        return self.classifier(F.dropout(z, p=self.classifier_dropout, training=self.training)), proximity

    def relation_weights(self) -> list[dict[str, dict[str, torch.Tensor]]]:
        """Per layer, type -> {relation name: beta ``[N_t]``} from the last forward pass
        (the last name of every type is the type itself: the weight of its own embedding)."""
        if self._betas is None:
            raise RuntimeError("run a forward pass first (model.eval(); model(x_dict, edge_index_dict, n_id_dict))")
        out = []
        for layer, betas in zip(self.layers, self._betas):
            out.append({t: dict(zip(layer.relation_names(t), beta.unbind(dim=1))) for t, beta in betas.items()})
        return out


#: LATTE's hyper-parameters as a dataclass, derived from its constructor by the registry
LATTEConfig = get_model_entry("latte").config_cls
