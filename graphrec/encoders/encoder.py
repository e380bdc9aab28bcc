"""One interface for every backbone: images ``(N, 3, H, W)`` -> features ``(N, D)``."""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from graphrec.encoders.registry import build_backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageEncoder(nn.Module):
    """A backbone (native or timm) and an optional linear projection to ``out_dim``.

    ``encoder(images)`` takes normalised images ``(N, 3, H, W)`` (see :attr:`mean`, :attr:`std`)
    and returns ``(N, out_dim)``; without ``out_dim`` the backbone's pooled features
    (``num_features`` wide). Build it with :func:`create_encoder`.
    """

    def __init__(self, backbone: nn.Module, name: str, source: str, out_dim: int | None = None,
                 weights_tag: str = "random-init"):
        super().__init__()
        self.backbone = backbone
        self.name = name
        self.source = source
        self.weights_tag = getattr(backbone, "weights_tag", weights_tag)
        self.num_features = int(backbone.num_features)
        self.projection = nn.Linear(self.num_features, out_dim) if out_dim is not None else nn.Identity()
        self.out_dim = int(out_dim) if out_dim is not None else self.num_features
        self.mean = tuple(getattr(backbone, "mean", IMAGENET_MEAN))
        self.std = tuple(getattr(backbone, "std", IMAGENET_STD))
        self.input_size = tuple(getattr(backbone, "input_size", (3, 224, 224)))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled features ``(N, num_features)`` (no projection)."""
        return self.backbone.forward_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(images))

    def reparameterize(self) -> "ImageEncoder":
        """Merge a re-parameterisable backbone (UniRepLKNet, VanillaNet) into its inference form.

        timm models with ``reparameterize``/``fuse`` methods (RepVGG, MobileOne, ...) are merged too."""
        for method in ("reparameterize", "switch_to_deploy", "fuse"):
            if hasattr(self.backbone, method):
                getattr(self.backbone, method)()
                break
        else:
            model = getattr(self.backbone, "model", None)
            try:
                from timm.utils.model import reparameterize_model
            except ImportError:
                reparameterize_model = None
            if model is not None and reparameterize_model is not None:
                self.backbone.model = reparameterize_model(model)
        return self

    def weights_digest(self) -> str:
        """A short hash of the backbone's parameters and buffers: two encoders with the same digest
        compute the same features (used in frozen-feature cache keys)."""
        digest = hashlib.sha256()
        for key, tensor in sorted(self.backbone.state_dict().items()):
            digest.update(key.encode())
            data = tensor.detach().cpu().contiguous()
            if data.dtype == torch.bfloat16:
                data = data.float()
            digest.update(data.numpy().tobytes() if data.dim() else str(data.item()).encode())
        return digest.hexdigest()[:16]


def create_encoder(name: str, out_dim: int | None = None, pretrained: bool = False, **kwargs) -> ImageEncoder:
    """Build an image encoder by name: a native graphrec backbone (``graphrec.encoders.native_encoders()``:
    UniRepLKNet, VanillaNet, SimpleNet variants) or any timm model (the ``graphrec[vision]`` extra).

    ``out_dim``: add a linear projection to this width. ``pretrained``: load the default weights,
    from local files only (never downloaded; timm models only; ``weights_file=PATH`` for a given
    file). Other keyword arguments go to the backbone's constructor (e.g. ``dims=...`` for native
    models, ``drop_path_rate=...`` for timm).

    >>> encoder = create_encoder("convnext_atto", out_dim=64)
    >>> encoder(torch.randn(8, 3, 64, 64)).shape
    torch.Size([8, 64])
    """
    backbone, source = build_backbone(name, pretrained=pretrained, **kwargs)
    return ImageEncoder(backbone, name, source, out_dim)
