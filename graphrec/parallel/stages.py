"""Deep GNNs cut into layer blocks: the row-subset view of a model that the engine runs.

A pipeline stage computes some consecutive layers for *some* rows (one chunk of one partition),
so a layer is written here as "given the rows of the in-neighbourhood and the normalised edges into
the target rows, return the target rows". The adapters reuse the parameters of the registered
single-process modules (:class:`~graphrec.models.GCN`, :class:`~graphrec.models.gcnii.GCNII`), so a
model trained by the engine loads into the plain module and vice versa, and the equality tests
compare like with like.

Dropout: every dropout site draws one mask per epoch over the *whole* graph from a generator
seeded by (seed, epoch, site) and each computation takes the rows of the nodes it touches
(:class:`DropoutMasks`). A node's features are therefore dropped identically whichever rank,
stage or chunk uses them, and a single process with the same seed draws the same masks: the only
difference between single-process and pipelined training is the one we mean to measure (staleness).
"""
from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F
from torch import nn


class DropoutMasks:
    """Per-epoch dropout masks over all nodes, keyed by site, indexed by global node id."""

    def __init__(self, p: float, seed: int, num_nodes: int):
        self.p, self.seed, self.num_nodes = float(p), int(seed), int(num_nodes)
        self.epoch: int | None = None
        self._cache: dict[tuple[str, int], torch.Tensor] = {}
        self.training = True

    def start_epoch(self, epoch: int, training: bool = True) -> None:
        if epoch != self.epoch:
            self._cache.clear()
        self.epoch, self.training = epoch, training

    def __call__(self, site: str, rows: torch.Tensor, global_ids: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return rows
        key = (site, rows.shape[1])
        mask = self._cache.get(key)
        if mask is None:
            # zlib.crc32, not hash(): str hashes differ between processes (PYTHONHASHSEED)
            generator = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:{self.epoch}:{site}".encode()))
            mask = (torch.rand(self.num_nodes, rows.shape[1], generator=generator) >= self.p).to(rows.device)
            self._cache[key] = mask
        return rows * mask[global_ids].to(rows.dtype) / (1.0 - self.p)


def aggregate(x_src: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor,
              num_dst: int) -> torch.Tensor:
    """``out[i] = sum_j w_ij x_src[j]`` over the given edges (the sparse product ``A_hat X`` row block)."""
    out = x_src.new_zeros(num_dst, x_src.shape[1])
    return out.index_add_(0, dst, x_src.index_select(0, src) * weight.unsqueeze(1))


class StagedModel(nn.Module):
    """Layer-block view of a deep GNN.

    ``num_convs`` message-passing layers, numbered 0..L-1. Conv 0 reads rows computed from the
    features (``first_input``: local on every rank, no communication, never stale); conv ``l > 0``
    reads hidden rows of width ``hidden``. ``carry`` is the number of extra per-node columns a
    stage must hand to the next one besides the hidden rows (GCNII: ``H0``).
    """

    num_convs: int
    hidden: int
    carry: int = 0

    def first_input(self, x_rows, ids, drop: DropoutMasks) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(input rows of conv 0, carried rows or None) from raw feature rows."""
        raise NotImplementedError

    def conv(self, layer: int, x_src, src, dst, weight, num_dst, carried_dst, src_ids, drop) -> torch.Tensor:
        raise NotImplementedError

    def output(self, h, ids, drop) -> torch.Tensor:
        raise NotImplementedError

    def stage_modules(self, first: int, stop: int, num_stages_first: bool, last: bool) -> list[nn.Module]:
        raise NotImplementedError


class StagedGCN(StagedModel):
    """:class:`graphrec.models.GCN` by layers: conv ``l`` = ``A_hat drop(H) W_l + b_l``, ReLU but last."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.num_convs = len(model.convs)
        self.hidden = model.convs[0].out_channels
        self.p = model.dropout

    def first_input(self, x_rows, ids, drop):
        return x_rows, None

    def conv(self, layer, x_src, src, dst, weight, num_dst, carried_dst, src_ids, drop):
        conv = self.model.convs[layer]
        x_src = drop(f"conv{layer}", x_src, src_ids)
        if conv.in_channels > conv.out_channels:  # transform first: fewer columns to aggregate
            out = aggregate(conv.lin(x_src), src, dst, weight, num_dst)
        else:
            out = conv.lin(aggregate(x_src, src, dst, weight, num_dst))
        if conv.bias is not None:
            out = out + conv.bias
        return F.relu(out) if layer < self.num_convs - 1 else out

    def output(self, h, ids, drop):
        return h

    def stage_modules(self, first, stop, is_first, is_last):
        return [self.model.convs[layer] for layer in range(first, stop)]


class StagedGCNII(StagedModel):
    """:class:`graphrec.models.gcnii.GCNII` by layers; ``H0`` travels with the hidden rows (``carry``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.num_convs = len(model.convs)
        self.hidden = model.lin_in.out_features
        self.carry = self.hidden
        self.alpha, self.theta = model.alpha, model.theta

    def first_input(self, x_rows, ids, drop):
        h0 = F.relu(self.model.lin_in(drop("features", x_rows, ids)))
        return h0, h0

    def conv(self, layer, x_src, src, dst, weight, num_dst, carried_dst, src_ids, drop):
        conv = self.model.convs[layer]
        x_src = drop(f"conv{layer}", x_src, src_ids)
        out = (1 - self.alpha) * aggregate(x_src, src, dst, weight, num_dst) + self.alpha * carried_dst
        beta = self.model.beta(self.theta, layer + 1)
        return F.relu(torch.addmm(out, out, conv.weight1, beta=1.0 - beta, alpha=beta))

    def output(self, h, ids, drop):
        return self.model.lin_out(drop("output", h, ids))

    def stage_modules(self, first, stop, is_first, is_last):
        modules = [self.model.convs[layer] for layer in range(first, stop)]
        return ([self.model.lin_in] if is_first else []) + modules + ([self.model.lin_out] if is_last else [])


def staged(model: nn.Module) -> StagedModel:
    """The layer-block adapter of a registered node-classification model."""
    from graphrec.models.gcn import GCN
    from graphrec.models.gcnii import GCNII

    if isinstance(model, GCNII):
        return StagedGCNII(model)
    if isinstance(model, GCN):
        return StagedGCN(model)
    raise ValueError(f"{type(model).__name__} has no layer-block adapter; pipeline/graph parallelism supports "
                     "gcn and gcnii (add a StagedModel in graphrec/parallel/stages.py)")


def split_layers(num_layers: int, num_stages: int) -> list[tuple[int, int]]:
    """Consecutive, balanced (first, stop) conv ranges per stage (earlier stages take the remainder)."""
    if num_stages > num_layers:
        raise ValueError(f"{num_layers} layers cannot fill {num_stages} pipeline stages")
    base, extra = divmod(num_layers, num_stages)
    bounds, start = [], 0
    for stage in range(num_stages):
        stop = start + base + (1 if stage < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds
