"""UniRepLKNet-style large-kernel ConvNet (Ding et al., CVPR 2024), with its inference-time re-parameterisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphrec.encoders.registry import register_encoder

#: kernel size -> (small kernel sizes, dilation rates) of the parallel dilated branches (paper Table/official code)
DILATED_BRANCHES = {
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)),
    15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)),
    11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)),
    7: ((5, 3, 3), (1, 2, 3)),
    5: ((3, 3), (1, 2)),
}


def fuse_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A conv followed by eval-mode BN as one conv: :math:`W' = W\gamma/\sigma`,
    :math:`b' = \beta + (b - \mu)\gamma/\sigma` with :math:`\sigma = \sqrt{\mathrm{var} + \epsilon}`."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = torch.zeros_like(bn.running_mean) if bias is None else bias
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias + (bias - bn.running_mean) * scale


def dilated_to_dense_kernel(kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """A ``k x k`` depthwise kernel with dilation ``r`` as the equivalent dense ``(r(k-1)+1)`` kernel
    (zeros between the taps): a stride-``r`` transposed conv of the kernel with a 1x1 identity."""
    if dilation == 1:
        return kernel
    identity = torch.ones(1, 1, 1, 1, dtype=kernel.dtype, device=kernel.device)
    return F.conv_transpose2d(kernel, identity, stride=dilation)   # kernel is (C, 1, k, k): depthwise


class DilatedReparamBlock(nn.Module):
    r"""The dilated re-parameterised large-kernel depthwise conv of UniRepLKNet.

    Training: a ``K x K`` depthwise conv + BN in parallel with small dilated depthwise convs
    (each + BN) whose receptive fields fit in ``K``,

    .. math::
        y = \mathrm{BN}_0(W_K * x) + \sum_{(k, r)} \mathrm{BN}_{k,r}(W_{k}^{(r)} *_r x).

    Inference (:meth:`reparameterize`): every BN is folded into its conv, each dilated kernel is
    rewritten as a dense ``r(k-1)+1`` kernel with zeros between its taps, zero-padded to ``K`` and
    added to the large kernel, giving one ``K x K`` depthwise conv with bias and the same output.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size not in DILATED_BRANCHES:
            raise ValueError(f"dilated re-param kernel size must be one of {sorted(DILATED_BRANCHES)}")
        self.channels, self.kernel_size = channels, kernel_size
        self.branch_kernels, self.branch_dilations = DILATED_BRANCHES[kernel_size]
        self.large = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False)
        self.large_bn = nn.BatchNorm2d(channels)
        self.branches = nn.ModuleList()
        self.branch_bns = nn.ModuleList()
        for k, r in zip(self.branch_kernels, self.branch_dilations):
            # padding = half the equivalent kernel: every branch keeps the spatial size
            self.branches.append(nn.Conv2d(channels, channels, k, padding=(r * (k - 1) + 1) // 2, dilation=r,
                                           groups=channels, bias=False))
            self.branch_bns.append(nn.BatchNorm2d(channels))
        self.merged: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged is not None:
            return self.merged(x)
        out = self.large_bn(self.large(x))
        for conv, bn in zip(self.branches, self.branch_bns):
            out = out + bn(conv(x))
        return out

    @torch.no_grad()
    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single ``K x K`` depthwise kernel and bias equal to the multi-branch block (eval mode)."""
        kernel, bias = fuse_conv_bn(self.large.weight, None, self.large_bn)
        for conv, bn, r in zip(self.branches, self.branch_bns, self.branch_dilations):
            branch_kernel, branch_bias = fuse_conv_bn(conv.weight, None, bn)
            dense = dilated_to_dense_kernel(branch_kernel, r)
            pad = (self.kernel_size - dense.shape[-1]) // 2
            kernel = kernel + F.pad(dense, [pad] * 4)
            bias = bias + branch_bias
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        kernel, bias = self.merged_kernel()
        merged = nn.Conv2d(self.channels, self.channels, self.kernel_size, padding=self.kernel_size // 2,
                           groups=self.channels, bias=True).to(kernel.device, kernel.dtype)
        merged.weight.copy_(kernel)
        merged.bias.copy_(bias)
        self.merged = merged
        del self.large, self.large_bn, self.branches, self.branch_bns


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (the official ``channels_first`` LayerNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class SqueezeExcite(nn.Module):
    """SE block as in UniRepLKNet: global average pool, 1x1 down, ReLU, 1x1 up, sigmoid gate."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 1)
        self.up = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.up(F.relu(self.down(F.adaptive_avg_pool2d(x, 1)))))
        return x * gate


class GlobalResponseNorm(nn.Module):
    r"""GRN (ConvNeXt V2) on NHWC: :math:`x(1 + \gamma N(x)) + \beta`, :math:`N = G / \mathrm{mean}_c G`,
    :math:`G = \|x\|_{2, (H, W)}`."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
        n = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
        return x * (1 + self.gamma * n) + self.beta


class UniRepLKNetBlock(nn.Module):
    r"""``x + gamma * FFN(SE(BN(DWConv(x))))``: a (dilated re-param) depthwise conv, BN, SE, then the
    ConvNeXt-V2 FFN (Linear 4x, GELU, GRN, Linear) with a BN after it, layer scale ``gamma``.

    :meth:`reparameterize` merges the dilated branches, folds the BN after the depthwise conv into it,
    and folds GRN's bias, the FFN's BN and the layer scale into the last Linear (as the official
    ``reparameterize``), leaving the same function with fewer layers.
    """

    def __init__(self, dim: int, kernel_size: int, layer_scale: float = 1e-6, ffn_factor: int = 4):
        super().__init__()
        if kernel_size >= 7:
            self.dwconv: nn.Module = DilatedReparamBlock(dim, kernel_size)
        elif kernel_size in (3, 5):
            self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False)
        else:
            raise ValueError("UniRepLKNet kernel sizes are 3, 5 or a dilated re-param size >= 7")
        self.norm: nn.Module = nn.BatchNorm2d(dim)
        self.se = SqueezeExcite(dim, dim // 4)
        hidden = ffn_factor * dim
        self.pw1 = nn.Linear(dim, hidden)
        self.grn = GlobalResponseNorm(hidden)
        self.pw2 = nn.Linear(hidden, dim, bias=False)
        self.ffn_norm: nn.Module = nn.BatchNorm2d(dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.deployed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.norm(self.dwconv(x)))
        y = self.grn(F.gelu(self.pw1(y.permute(0, 2, 3, 1))))
        y = self.pw2(y).permute(0, 3, 1, 2)
        if not self.deployed:
            y = self.gamma.view(1, -1, 1, 1) * self.ffn_norm(y)
        return x + y

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deployed:
            return
        if isinstance(self.dwconv, DilatedReparamBlock):
            kernel, bias = self.dwconv.merged_kernel()
        else:
            kernel, bias = self.dwconv.weight, None
        kernel, bias = fuse_conv_bn(kernel, bias, self.norm)
        dim = kernel.shape[0]
        conv = nn.Conv2d(dim, dim, kernel.shape[-1], padding=kernel.shape[-1] // 2, groups=dim,
                         bias=True).to(kernel.device, kernel.dtype)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.dwconv, self.norm = conv, nn.Identity()
        # gamma * BN(W (z + beta_grn)) = (gamma s) W z + gamma (beta_bn + (W beta_grn - mu) s)
        bn = self.ffn_norm
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        linear = nn.Linear(self.pw2.in_features, self.pw2.out_features, bias=True).to(kernel.device, kernel.dtype)
        linear.weight.copy_(self.pw2.weight * (self.gamma * scale).view(-1, 1))
        linear.bias.copy_(self.gamma * (bn.bias + (self.pw2.weight @ self.grn.beta - bn.running_mean) * scale))
        self.grn.beta.zero_()
        self.grn.beta.requires_grad_(False)
        self.pw2, self.ffn_norm = linear, nn.Identity()
        self.deployed = True


class UniRepLKNet(nn.Module):
    r"""UniRepLKNet from `"UniRepLKNet: A Universal Perception Large-Kernel ConvNet for Audio, Video,
    Point Cloud, Time-Series and Image Recognition" <https://arxiv.org/abs/2311.15599>`_ (Ding et al.,
    CVPR 2024), as an image encoder: 4 stages of :class:`UniRepLKNetBlock`, a two-conv stride-4 stem
    (conv 3x3/2, LN, GELU, conv 3x3/2, LN), conv 3x3/2 + LN downsampling, global average pool and a
    final LayerNorm. ``forward_features(images) -> (N, dims[-1])``.

    Large kernels (13 by default) use the dilated re-param block in training; call
    :meth:`reparameterize` (in eval mode) before inference to merge every block into plain convs.
    """

    def __init__(self, depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), kernel_sizes=None, in_chans: int = 3,
                 layer_scale: float = 1e-6):
        super().__init__()
        if kernel_sizes is None:   # the official A/F/P/N pattern: 3x3 in stage 1, 13x13 after
            kernel_sizes = tuple((3,) * depths[0] if i == 0 else (13,) * depths[i] for i in range(len(depths)))
        if [len(k) for k in kernel_sizes] != list(depths):
            raise ValueError("kernel_sizes must give one kernel per block of every stage")
        self.downsample = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1), LayerNorm2d(dims[0] // 2, eps=1e-6),
            nn.GELU(), nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1), LayerNorm2d(dims[0], eps=1e-6))])
        for i in range(len(dims) - 1):
            self.downsample.append(nn.Sequential(nn.Conv2d(dims[i], dims[i + 1], 3, stride=2, padding=1),
                                                 LayerNorm2d(dims[i + 1], eps=1e-6)))
        self.stages = nn.ModuleList([nn.Sequential(*[UniRepLKNetBlock(dims[i], k, layer_scale) for k in kernel_sizes[i]])
                                     for i in range(len(dims))])
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.num_features = dims[-1]
        self.apply(_init_weights)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))
        return self.norm(x.mean(dim=(2, 3)))

    forward = forward_features

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge every block into its inference form (call in eval mode: BN statistics are frozen in)."""
        for module in self.modules():
            if isinstance(module, UniRepLKNetBlock):
                module.reparameterize()


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


_VARIANTS = {  # official depths/widths (A, F, P, N, T); kernels 3 in stage 1, 13 after (T: alternating 13/3)
    "unireplknet_a": ((2, 2, 6, 2), (40, 80, 160, 320)),
    "unireplknet_f": ((2, 2, 6, 2), (48, 96, 192, 384)),
    "unireplknet_p": ((2, 2, 6, 2), (64, 128, 256, 512)),
    "unireplknet_n": ((2, 2, 8, 2), (80, 160, 320, 640)),
    "unireplknet_t": ((3, 3, 18, 3), (80, 160, 320, 640)),
}


def _register(name, depths, dims):
    def build(**kwargs):
        kwargs.setdefault("depths", depths)
        kwargs.setdefault("dims", dims)
        if name == "unireplknet_t" and "kernel_sizes" not in kwargs:
            kwargs["kernel_sizes"] = ((3,) * 3, (13,) * 3, (13, 3) * 9, (13,) * 3)
        return UniRepLKNet(**kwargs)

    build.__doc__ = f"UniRepLKNet-{name[-1].upper()} (Ding et al., CVPR 2024): depths {depths}, widths {dims}"
    register_encoder(name)(build)


for _name, (_depths, _dims) in _VARIANTS.items():
    _register(_name, _depths, _dims)
