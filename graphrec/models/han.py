"""HAN, Heterogeneous graph Attention Network (Wang et al., WWW 2019), on PyG's ``HANConv``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import HANConv
from torch_geometric.utils import add_remaining_self_loops

from graphrec.models.metapath import MetaPathCache, compose_edge_index, extend_metapaths, metapath_name, source_type
from graphrec.models.registry import get_model_entry, register_model


def _validate(hidden_channels: int, heads: int, dropout: float, **_) -> None:
    if hidden_channels < 1 or heads < 1 or hidden_channels % heads:
        raise ValueError("hidden_channels and heads must be >= 1, heads dividing hidden_channels")
    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")


@register_model(
    "han", task="hetero_node_classification", validate=_validate,
    description="HAN (Wang et al. 2019), PyG HANConv over the target type's 2-hop meta-paths (baseline for LATTE)",
)
class HAN(nn.Module):
    r"""HAN from `"Heterogeneous Graph Attention Network" <https://arxiv.org/abs/1903.07293>`_.

    The meta-paths are every target -> other -> target path of the schema (ACM: paper-author-paper,
    paper-subject-paper; Freebase: movie-actor-movie, movie-director-movie, movie-writer-movie),
    built from the base relations by boolean products (self-loops added). PyG's ``HANConv``
    applies node-level attention (GAT, one per meta-path) and semantic attention (eq. 7-9),
    followed by a Linear classifier. A target type without features gets a learned embedding.
    Interface: ``model(x_dict, edge_index_dict, n_id_dict) -> [N_target, C]`` (see LATTE).
    Defaults: the official Jhy1993/HAN, 8 heads of 8 units, dropout 0.6.
    """

    def __init__(self, metadata, in_channels: dict[str, int], num_nodes: dict[str, int], num_classes: int,
                 target: str, hidden_channels: int = 64, heads: int = 8, dropout: float = 0.6):
        super().__init__()
        _validate(hidden_channels, heads, dropout)
        _, edge_types = metadata
        base = [tuple(et) for et in edge_types]
        self.target, self.dropout = target, dropout
        paths = extend_metapaths([(et,) for et in base if et[2] == target], base)
        self.metapaths = [p for p in paths if source_type(p) == target]
        if not self.metapaths:
            raise ValueError(f"no {target}-*-{target} meta-path in the schema {base}")
        self.relations = {p: (target, metapath_name(p), target) for p in self.metapaths}
        channels = int(in_channels.get(target) or 0)
        self.embedding = None if channels else nn.Embedding(int(num_nodes[target]), hidden_channels)
        self.conv = HANConv(channels or hidden_channels, hidden_channels,
                            ([target], list(self.relations.values())), heads=heads, dropout=dropout)
        self.classifier = nn.Linear(hidden_channels, num_classes)
        self._cache = MetaPathCache()

    def metapath_graphs(self, edge_index_dict: dict, num_nodes: dict[str, int]) -> dict:
        def build():
            graphs = {}
            for path, relation in self.relations.items():
                first, second = path
                if first not in edge_index_dict or second not in edge_index_dict:
                    continue
                edge_index = compose_edge_index(edge_index_dict[first], edge_index_dict[second],
                                                (num_nodes[first[0]], num_nodes[first[2]], num_nodes[second[2]]))
                graphs[relation] = add_remaining_self_loops(edge_index, num_nodes=num_nodes[self.target])[0]
            return graphs

        return self._cache.get(edge_index_dict, num_nodes, build)

    def forward(self, x_dict: dict, edge_index_dict: dict, n_id_dict: dict) -> torch.Tensor:
        num_nodes = {t: int(ids.shape[0]) for t, ids in n_id_dict.items()}
        graphs = self.metapath_graphs({tuple(et): ei for et, ei in edge_index_dict.items()}, num_nodes)
        x = x_dict[self.target] if self.embedding is None else self.embedding(n_id_dict[self.target])
        h = self.conv({self.target: x}, graphs)[self.target]
        return self.classifier(F.dropout(h, p=self.dropout, training=self.training))

    def forward_with_aux(self, x_dict: dict, edge_index_dict: dict,
                         n_id_dict: dict) -> tuple[torch.Tensor, None]:
        """``(logits, None)``: no auxiliary loss (:class:`~graphrec.models.interfaces.HeteroNodeClassifier`)."""
        return self(x_dict, edge_index_dict, n_id_dict), None

#: HAN's hyper-parameters as a dataclass, derived from its constructor by the registry
HANConfig = get_model_entry("han").config_cls
