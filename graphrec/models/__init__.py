"""Models: plain ``nn.Module``s, one per file, found through one registry."""
from graphrec.models.registry import (
    ModelEntry,
    available_models,
    create_model,
    get_model_entry,
    register_model,
)
from graphrec.nn import NormalizedAdjacency  # public here since before graphrec.nn existed
from graphrec.models.lightgcn import LightGCN, LightGCNConfig

__all__ = [
    "LightGCN", "LightGCNConfig", "ModelEntry", "NormalizedAdjacency", "available_models",
    "create_model", "get_model_entry", "register_model",
]

from graphrec.models.ultragcn import UltraGCN, UltraGCNConfig  # noqa: E402

__all__ += ["UltraGCN", "UltraGCNConfig"]

from graphrec.models.dagnn import DAGNN, DAGNNConfig  # noqa: E402
from graphrec.models.gcn import GCN, GCNConfig  # noqa: E402

__all__ += ["DAGNN", "DAGNNConfig", "GCN", "GCNConfig"]

from graphrec.models.catgcn import CatGCN, CatGCNConfig  # noqa: E402

__all__ += ["CatGCN", "CatGCNConfig"]

from graphrec.models.latte import LATTE, LATTEConfig  # noqa: E402
from graphrec.models.han import HAN, HANConfig  # noqa: E402
from graphrec.models.hgt import HGT, HGTConfig  # noqa: E402

__all__ += ["HAN", "HANConfig", "HGT", "HGTConfig", "LATTE", "LATTEConfig"]

from graphrec.models.gcnii import GCNII, GCNIIConfig  # noqa: E402

__all__ += ["GCNII", "GCNIIConfig"]
