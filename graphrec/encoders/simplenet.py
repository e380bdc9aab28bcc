"""SimpleNet (Hasanpour et al., 2016): plain 3x3 conv-BN-ReLU stacks."""
from __future__ import annotations

import torch
from torch import nn

from graphrec.encoders.registry import register_encoder

# (filters or "p" for a 2x2 max-pool, dropout after the layer or None, 1 for a 1x1 kernel), as the official
# SimpleNet_Pytorch configs (ImageNet v1 5m and the CIFAR models of the paper).
CONFIGS = {
    "simplenetv1_imagenet": [(64, 0.0, 3), (128, 0.0, 3), (128, 0.0, 3), (128, 0.0, 3), (128, 0.0, 3), (128, 0.0, 3),
                             ("p", 0.0, 0), (256, 0.0, 3), (256, 0.0, 3), (256, 0.0, 3), (512, 0.0, 3), ("p", 0.0, 0),
                             (2048, 0.0, 1), (256, 0.0, 1), (256, 0.0, 3)],
    "simplenet_cifar_5m": [(64, 0.0, 3), (128, 0.0, 3), (128, 0.0, 3), (128, None, 3), ("p", 0.0, 0),
                           (128, 0.0, 3), (128, 0.0, 3), (256, None, 3), ("p", 0.0, 0), (256, 0.0, 3), (256, None, 3),
                           ("p", 0.0, 0), (512, 0.0, 3), (2048, 0.0, 1), (256, None, 1), ("p", 0.0, 0), (256, None, 3)],
    "simplenet_cifar_310k": [(64, 0.0, 3), (32, 0.0, 3), (32, 0.0, 3), (32, None, 3), ("p", 0.0, 0),
                             (32, 0.0, 3), (32, 0.0, 3), (64, None, 3), ("p", 0.0, 0), (64, 0.0, 3), (64, None, 3),
                             ("p", 0.0, 0), (128, 0.0, 3), (256, 0.0, 1), (64, None, 1), ("p", 0.0, 0), (64, None, 3)],
}
#: stride mode -> {layer index: stride} (official ``mode``: how fast a large input shrinks; 0 = CIFAR)
STRIDE_MODES = {0: {}, 1: {0: 2, 1: 2, 2: 2}, 2: {0: 2, 1: 2, 2: 1, 3: 2}, 3: {0: 2, 1: 2, 2: 1, 3: 1, 4: 2},
                4: {0: 2, 1: 1, 2: 2, 3: 1, 4: 2, 5: 1}}


class SimpleNet(nn.Module):
    r"""SimpleNet from `"Lets Keep it simple, Using simple architectures to outperform deeper and more
    complex architectures" <https://arxiv.org/abs/1608.06037>`_ (Hasanpour et al., 2016), as an image
    encoder: 13 conv layers (3x3, two 1x1 near the end), each Conv-BN(momentum 0.05)-ReLU, max-pools
    with dropout, then global max pooling (the paper's). ``forward_features(images) -> (N, C_last)``.

    ``scale`` multiplies every width; ``mode`` sets the early strides for large (ImageNet) inputs.
    As the official code, 1x1 layers keep ``padding=1`` (their output grows by 2 pixels per side pair).
    """

    def __init__(self, config: str = "simplenetv1_imagenet", scale: float = 1.0, mode: int = 2,
                 in_chans: int = 3, drop_rates: dict[int, float] | None = None):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"unknown SimpleNet config {config!r}: one of {sorted(CONFIGS)}")
        strides, drops = STRIDE_MODES[mode], dict(drop_rates or {})
        layers: list[nn.Module] = []
        channels = in_chans
        for index, (filters, drop, kernel) in enumerate(CONFIGS[config]):
            drop = drops.get(index, drop)
            stride = strides.get(index, 2 if filters == "p" else 1)
            if filters == "p":
                layers += [nn.MaxPool2d(2, stride=stride), nn.Dropout2d(drop or 0.0)]
                continue
            width = max(1, round(filters * scale))
            layers += [nn.Conv2d(channels, width, kernel, stride=stride, padding=1),
                       nn.BatchNorm2d(width, eps=1e-5, momentum=0.05), nn.ReLU(inplace=True)]
            if drop is not None:
                layers.append(nn.Dropout2d(drop))
            channels = width
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight, gain=nn.init.calculate_gain("relu"))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.amax(self.features(images), dim=(2, 3))   # global max pool, as the paper

    forward = forward_features


def _register(name, config, mode, scale=1.0, doc=""):
    def build(**kwargs):
        kwargs.setdefault("config", config)
        kwargs.setdefault("mode", mode)
        kwargs.setdefault("scale", scale)
        return SimpleNet(**kwargs)

    build.__doc__ = doc
    register_encoder(name)(build)


_register("simplenetv1_5m_m1", "simplenetv1_imagenet", 1, doc="SimpleNet v1 5M, stride mode 1 (ImageNet)")
_register("simplenetv1_5m_m2", "simplenetv1_imagenet", 2, doc="SimpleNet v1 5M, stride mode 2 (ImageNet)")
_register("simplenetv1_small_m1_05", "simplenetv1_imagenet", 1, 0.5, doc="SimpleNet v1 1.5M (x0.5), mode 1")
_register("simplenet_cifar_5m", "simplenet_cifar_5m", 0, doc="SimpleNet 5M of the paper's CIFAR experiments")
_register("simplenet_cifar_310k", "simplenet_cifar_310k", 0, doc="SimpleNet 310k (CIFAR, the paper's small model)")
