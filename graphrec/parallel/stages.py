"""Deep GNNs cut into layer blocks: the row-subset view of a model that the engine runs.

A pipeline stage computes some consecutive layers for *some* rows (one chunk of one partition),
so a layer is run here as "given the rows of the in-neighbourhood and the normalised edges into
the target rows (an :class:`~graphrec.nn.EdgeBlock`), return the target rows". The adapters call
the registered single-process modules' own layer hooks (``input_layer``, ``layer``,
``output_layer`` of :class:`~graphrec.models.GCN` and :class:`~graphrec.models.gcnii.GCNII`), so
the maths is written once, a model trained by the engine loads into the plain module and vice
versa, and the equality tests compare like with like. The adapters add only what the plain
forward does not know: which rows each dropout site covers, and which modules a stage owns.

Dropout: every dropout site draws one mask per epoch over the *whole* graph from a generator
seeded by (seed, epoch, site) and each computation takes the rows of the nodes it touches
(:class:`DropoutMasks`). A node's features are therefore dropped identically whichever rank,
stage or chunk uses them, and a single process with the same seed draws the same masks: the only
difference between single-process and pipelined training is the one we mean to measure (staleness).
"""
from __future__ import annotations

import zlib

import torch
from torch import nn

from graphrec.nn import EdgeBlock


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
    """:class:`graphrec.models.GCN` by layers: conv ``l`` = ``model.layer(l, drop(H), None, block)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.num_convs = model.num_layers
        self.hidden = model.convs[0].out_channels

    def first_input(self, x_rows, ids, drop):
        return self.model.input_layer(x_rows), None

    def conv(self, layer, x_src, src, dst, weight, num_dst, carried_dst, src_ids, drop):
        x_src = drop(f"conv{layer}", x_src, src_ids)
        return self.model.layer(layer, x_src, None, EdgeBlock(src, dst, weight, num_dst))

    def output(self, h, ids, drop):
        return self.model.output_layer(h)

    def stage_modules(self, first, stop, is_first, is_last):
        return [self.model.convs[layer] for layer in range(first, stop)]


class StagedGCNII(StagedModel):
    """:class:`graphrec.models.gcnii.GCNII` by layers; ``H0`` travels with the hidden rows (``carry``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.num_convs = model.num_layers
        self.hidden = model.lin_in.out_features
        self.carry = self.hidden

    def first_input(self, x_rows, ids, drop):
        h0 = self.model.input_layer(drop("features", x_rows, ids))
        return h0, h0

    def conv(self, layer, x_src, src, dst, weight, num_dst, carried_dst, src_ids, drop):
        x_src = drop(f"conv{layer}", x_src, src_ids)
        return self.model.layer(layer, x_src, carried_dst, EdgeBlock(src, dst, weight, num_dst))

    def output(self, h, ids, drop):
        return self.model.output_layer(drop("output", h, ids))

    def stage_modules(self, first, stop, is_first, is_last):
        modules = [self.model.convs[layer] for layer in range(first, stop)]
        return ([self.model.lin_in] if is_first else []) + modules + ([self.model.lin_out] if is_last else [])


def staged(model: nn.Module) -> StagedModel:
    """The layer-block adapter of a registered node-classification model."""
    from graphrec.models.gcn import GCN
    from graphrec.models.gcnii import GCNII
    from graphrec.models.interfaces import LayerwiseModel

    if not isinstance(model, LayerwiseModel):
        raise ValueError(f"{type(model).__name__} is not exposed layer by layer (graphrec.models.interfaces."
                         "LayerwiseModel); pipeline/graph parallelism supports gcn and gcnii")
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
