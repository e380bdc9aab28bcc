"""Models: plain ``nn.Module``s, one per file, found through one registry."""
from graphrec.models.catgcn import CatGCN, CatGCNConfig
from graphrec.models.dagnn import DAGNN, DAGNNConfig
from graphrec.models.gcn import GCN, GCNConfig
from graphrec.models.gcnii import GCNII, GCNIIConfig
from graphrec.models.han import HAN, HANConfig
from graphrec.models.hgt import HGT, HGTConfig
from graphrec.models.latte import LATTE, LATTEConfig
from graphrec.models.lightgcn import LightGCN, LightGCNConfig
from graphrec.models.pop import Popularity, PopularityConfig
from graphrec.models.registry import (
    ModelEntry,
    available_models,
    create_model,
    get_model_entry,
    register_model,
)
from graphrec.models.ultragcn import UltraGCN, UltraGCNConfig
from graphrec.nn import NormalizedAdjacency  # public here since before graphrec.nn existed

__all__ = [
    "CatGCN", "CatGCNConfig", "DAGNN", "DAGNNConfig", "GCN", "GCNConfig", "GCNII", "GCNIIConfig",
    "HAN", "HANConfig", "HGT", "HGTConfig", "LATTE", "LATTEConfig", "LightGCN", "LightGCNConfig",
    "ModelEntry", "NormalizedAdjacency", "Popularity", "PopularityConfig", "UltraGCN", "UltraGCNConfig",
    "available_models", "create_model", "get_model_entry", "register_model",
]
