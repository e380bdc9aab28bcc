"""HGT, Heterogeneous Graph Transformer (Hu, Dong, Wang, Sun, WWW 2020), on PyG's ``HGTConv``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import HGTConv

from graphrec.models.registry import get_model_entry, register_model


def _validate(hidden_channels: int, num_layers: int, heads: int, dropout: float, **_) -> None:
    if hidden_channels < 1 or num_layers < 1 or heads < 1 or hidden_channels % heads:
        raise ValueError("hidden_channels, num_layers and heads must be >= 1, heads dividing hidden_channels")
    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")


@register_model(
    "hgt", task="hetero_node_classification", validate=_validate,
    description="HGT (Hu et al. 2020), PyG HGTConv over the base relations (baseline for LATTE)",
)
class HGT(nn.Module):
    r"""HGT from `"Heterogeneous Graph Transformer" <https://arxiv.org/abs/2003.01332>`_.

    Per type, features are projected to ``hidden_channels`` (ReLU) or, for types without features,
    looked up in a learned embedding; ``num_layers`` PyG ``HGTConv`` layers (type- and
    relation-specific attention, messages and skip connections) follow, with dropout between them,
    and a Linear classifier on the target type. Interface as LATTE:
    ``model(x_dict, edge_index_dict, n_id_dict) -> [N_target, C]``. Defaults as LATTE's official
    ``run.py`` ran HGT (128 units, 2 layers, 8 heads, dropout 0.2); ``embedding_std`` is the std of
    the normal init of learned embeddings (types without features), as LATTE's.
    """

    def __init__(self, metadata, in_channels: dict[str, int], num_nodes: dict[str, int], num_classes: int,
                 target: str, hidden_channels: int = 128, num_layers: int = 2, heads: int = 8, dropout: float = 0.2,
                 embedding_std: float = 0.1):
        super().__init__()
        _validate(hidden_channels, num_layers, heads, dropout)
        node_types, edge_types = metadata
        self.node_types, self.target, self.dropout = list(node_types), target, dropout
        featured = {t: int(c) for t, c in in_channels.items() if c}
        self.projection = nn.ModuleDict({t: nn.Linear(c, hidden_channels) for t, c in featured.items()})
        self.embedding = nn.ModuleDict({t: nn.Embedding(int(num_nodes[t]), hidden_channels)
                                        for t in self.node_types if t not in featured})
        self.convs = nn.ModuleList(HGTConv(hidden_channels, hidden_channels, (self.node_types, list(edge_types)),
                                           heads=heads) for _ in range(num_layers))
        self.classifier = nn.Linear(hidden_channels, num_classes)
        for table in self.embedding.values():
            nn.init.normal_(table.weight, std=embedding_std)

    def forward(self, x_dict: dict, edge_index_dict: dict, n_id_dict: dict) -> torch.Tensor:
        h = {}
        for t in self.node_types:
            h[t] = F.relu(self.projection[t](x_dict[t])) if t in self.projection else self.embedding[t](n_id_dict[t])
            h[t] = F.dropout(h[t], p=self.dropout, training=self.training)
        edge_index_dict = {tuple(et): ei for et, ei in edge_index_dict.items()}
        for conv in self.convs:
            out = conv(h, edge_index_dict)
            h = {t: F.dropout(v if v is not None else h[t], p=self.dropout, training=self.training)
                 for t, v in out.items()}
        return self.classifier(h[self.target])

    def forward_with_aux(self, x_dict: dict, edge_index_dict: dict,
                         n_id_dict: dict) -> tuple[torch.Tensor, None]:
        """``(logits, None)``: no auxiliary loss (:class:`~graphrec.models.interfaces.HeteroNodeClassifier`)."""
        return self(x_dict, edge_index_dict, n_id_dict), None

#: HGT's hyper-parameters as a dataclass, derived from its constructor by the registry
HGTConfig = get_model_entry("hgt").config_cls
