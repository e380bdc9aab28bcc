"""Conv vision backbones as node encoders: images become node features for every graph model.

- :func:`create_encoder` builds any backbone by name: graphrec's own (UniRepLKNet, VanillaNet,
  SimpleNet; :func:`native_encoders`) or any timm model (optional extra ``graphrec[vision]``, imported
  only when a timm name is asked for).
- :class:`NodeImages` says which image belongs to which node (tensor, folder named by node id, or a
  table of paths); :class:`ImageNodeEncoder` turns them into node features, frozen (encoded once,
  cached on disk, served through a :class:`~graphrec.sampling.FeatureStore`) or end to end (unique
  nodes per minibatch, gradients into the backbone).
- :mod:`graphrec.encoders.graph` wires them into graph models (DAGNN/GCN/CatGCN node features,
  HeteroData node types).
"""
from graphrec.encoders.registry import (
    VISION_EXTRA_HINT,
    available_encoders,
    get_encoder_entry,
    native_encoders,
    register_encoder,
    timm_available,
)
from graphrec.encoders.encoder import ImageEncoder, create_encoder
from graphrec.encoders.images import NodeImages
from graphrec.encoders.node_encoder import ImageNodeEncoder, create_node_encoder

__all__ = ["VISION_EXTRA_HINT", "ImageEncoder", "ImageNodeEncoder", "NodeImages", "available_encoders",
           "create_encoder", "create_node_encoder", "get_encoder_entry", "native_encoders", "register_encoder",
           "timm_available"]
