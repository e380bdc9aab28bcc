"""VanillaNet (Chen et al., NeurIPS 2023), with its deploy-time layer merging."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphrec.encoders.registry import register_encoder
from graphrec.encoders.unireplknet import fuse_conv_bn


def lambda_schedule(epoch: float, decay_epochs: float) -> float:
    r"""The deep-training non-linearity weight schedule: :math:`\lambda = e / E_{decay}`, capped at 1.

    ``VanillaNet.set_lambda(lambda_schedule(epoch, decay_epochs))`` each epoch: the activation
    between each block's two 1x1 convs goes from ReLU (lambda = 0) to the identity (lambda = 1),
    after which the two convs are one linear map and :meth:`VanillaNet.reparameterize` merges them.
    """
    if decay_epochs <= 0:
        return 1.0
    return min(1.0, max(0.0, float(epoch) / float(decay_epochs)))


class SeriesActivation(nn.Module):
    r"""The series-informed activation: ReLU followed by a learned ``(2n+1) x (2n+1)`` depthwise conv
    and BN, i.e. :math:`A_s(x_{h,w,c}) = \sum_{i,j} a_{i,j,c}\,\mathrm{ReLU}(x_{h+i,w+j,c}) + b_c`
    (paper Eq. 6), ``n`` = ``act_num``. Deploy: the BN is folded into the depthwise conv."""

    def __init__(self, dim: int, act_num: int = 3):
        super().__init__()
        self.act_num = act_num
        self.weight = nn.Parameter(torch.empty(dim, 1, 2 * act_num + 1, 2 * act_num + 1))
        nn.init.trunc_normal_(self.weight, std=0.02)
        self.bn: nn.Module | None = nn.BatchNorm2d(dim, eps=1e-6)
        self.bias: nn.Parameter | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(F.relu(x), self.weight, self.bias, padding=self.act_num, groups=self.weight.shape[0])
        return self.bn(y) if self.bn is not None else y

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.bn is None:
            return
        weight, bias = fuse_conv_bn(self.weight, None, self.bn)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.bn = None


def _conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    return fuse_conv_bn(conv.weight, conv.bias, bn)


class VanillaBlock(nn.Module):
    r"""One VanillaNet block: ``1x1 conv + BN``, leaky-ReLU of slope :math:`\lambda`, ``1x1 conv + BN``,
    max-pool (stride > 1), series activation. With :math:`\lambda = 1` the middle activation is the
    identity and :meth:`reparameterize` merges the two convs (BNs folded) into one 1x1 conv,
    :math:`W = W_2 W_1`, :math:`b = W_2 b_1 + b_2`: the deployed network has one conv per layer."""

    def __init__(self, dim: int, dim_out: int, act_num: int = 3, stride: int = 2):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim, eps=1e-6)
        self.conv2, self.bn2 = nn.Conv2d(dim, dim_out, 1), nn.BatchNorm2d(dim_out, eps=1e-6)
        self.merged: nn.Conv2d | None = None
        self.pool = nn.MaxPool2d(stride) if stride > 1 else nn.Identity()
        self.act = SeriesActivation(dim_out, act_num)
        self.act_learn = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged is not None:
            x = self.merged(x)
        else:
            x = F.leaky_relu(self.bn1(self.conv1(x)), self.act_learn)
            x = self.bn2(self.conv2(x))
        return self.act(self.pool(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.merged is not None:
            return
        if self.act_learn != 1.0:
            raise RuntimeError(f"VanillaNet blocks merge only once lambda = 1 (the inner activation is the "
                               f"identity); lambda is {self.act_learn}: call set_lambda(1.0) at the end of training")
        w1, b1 = _conv_bn(self.conv1, self.bn1)
        w2, b2 = _conv_bn(self.conv2, self.bn2)
        w1, w2 = w1.flatten(1), w2.flatten(1)
        merged = nn.Conv2d(w1.shape[1], w2.shape[0], 1).to(w1.device, w1.dtype)
        merged.weight.copy_((w2 @ w1).reshape(merged.weight.shape))
        merged.bias.copy_(w2 @ b1 + b2)
        self.merged = merged
        del self.conv1, self.bn1, self.conv2, self.bn2
        self.act.reparameterize()


class VanillaNet(nn.Module):
    r"""VanillaNet from `"VanillaNet: the Power of Minimalism in Deep Learning"
    <https://arxiv.org/abs/2305.12972>`_ (Chen et al., NeurIPS 2023), as an image encoder.

    No shortcuts, no attention: a 4x4 stride-4 conv stem (+ BN, leaky-ReLU(:math:`\lambda`), 1x1 conv,
    BN, series activation), then one :class:`VanillaBlock` per stage, global average pooling.
    ``forward_features(images) -> (N, dims[-1])``.

    Deep training: :meth:`set_lambda` each epoch with :func:`lambda_schedule` (0 -> 1); once
    :math:`\lambda = 1`, :meth:`reparameterize` (eval mode) merges every pair of 1x1 convs and folds
    every BN, as the official ``switch_to_deploy``. The classifier head is not part of the encoder.
    """

    def __init__(self, dims=(512, 1024, 2048, 4096), strides=(2, 2, 2), act_num: int = 3, in_chans: int = 3):
        super().__init__()
        if len(strides) != len(dims) - 1:
            raise ValueError("VanillaNet needs one stride per block: len(strides) == len(dims) - 1")
        self.stem1, self.stem1_bn = nn.Conv2d(in_chans, dims[0], 4, stride=4), nn.BatchNorm2d(dims[0], eps=1e-6)
        self.stem2, self.stem2_bn = nn.Conv2d(dims[0], dims[0], 1), nn.BatchNorm2d(dims[0], eps=1e-6)
        self.stem_merged: nn.Conv2d | None = None
        self.stem_act = SeriesActivation(dims[0], act_num)
        self.stages = nn.ModuleList([VanillaBlock(dims[i], dims[i + 1], act_num, strides[i])
                                     for i in range(len(strides))])
        self.num_features = dims[-1]
        self.act_learn = 0.0
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def set_lambda(self, value: float) -> None:
        """The slope of the leaky-ReLU inside the stem and every block (0: ReLU, 1: identity)."""
        self.act_learn = float(value)
        for stage in self.stages:
            stage.act_learn = float(value)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        if self.stem_merged is not None:
            x = self.stem_merged(images)
        else:
            x = F.leaky_relu(self.stem1_bn(self.stem1(images)), self.act_learn)
            x = self.stem2_bn(self.stem2(x))
        x = self.stem_act(x)
        for stage in self.stages:
            x = stage(x)
        return x.mean(dim=(2, 3))

    forward = forward_features

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge to the deploy network (eval mode, lambda = 1)."""
        if self.stem_merged is None:
            if self.act_learn != 1.0:
                raise RuntimeError("VanillaNet merges only once lambda = 1: call set_lambda(1.0) first")
            w1, b1 = _conv_bn(self.stem1, self.stem1_bn)          # (C, in, 4, 4)
            w2, b2 = _conv_bn(self.stem2, self.stem2_bn)          # (C, C, 1, 1)
            w2 = w2.flatten(1)
            merged = nn.Conv2d(w1.shape[1], w1.shape[0], 4, stride=4).to(w1.device, w1.dtype)
            merged.weight.copy_(torch.einsum("oc,cihw->oihw", w2, w1))
            merged.bias.copy_(w2 @ b1 + b2)
            self.stem_merged = merged
            del self.stem1, self.stem1_bn, self.stem2, self.stem2_bn
            self.stem_act.reparameterize()
        for stage in self.stages:
            stage.reparameterize()


_VARIANTS = {  # official widths (x4) and strides, VanillaNet-5 .. -10
    "vanillanet_5": ((128, 256, 512, 1024), (2, 2, 2)),
    "vanillanet_6": ((128, 256, 512, 1024, 1024), (2, 2, 2, 1)),
    "vanillanet_7": ((128, 128, 256, 512, 1024, 1024), (1, 2, 2, 2, 1)),
    "vanillanet_8": ((128, 128, 256, 512, 512, 1024, 1024), (1, 2, 2, 1, 2, 1)),
    "vanillanet_9": ((128, 128, 256, 512, 512, 512, 1024, 1024), (1, 2, 2, 1, 1, 2, 1)),
    "vanillanet_10": ((128, 128, 256, 512, 512, 512, 512, 1024, 1024), (1, 2, 2, 1, 1, 1, 2, 1)),
}


def _register(name, widths, strides):
    def build(**kwargs):
        kwargs.setdefault("dims", tuple(4 * w for w in widths))
        kwargs.setdefault("strides", strides)
        return VanillaNet(**kwargs)

    build.__doc__ = f"VanillaNet-{name.split('_')[1]} (Chen et al., NeurIPS 2023): widths {tuple(4 * w for w in widths)}"
    register_encoder(name)(build)


for _name, (_widths, _strides) in _VARIANTS.items():
    _register(_name, _widths, _strides)
