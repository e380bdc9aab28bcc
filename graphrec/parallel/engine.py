"""GNNPipe: layer-pipelined full-graph training of GCN/GCNII, graph parallelism (METIS partitions with
halo exchange) and their hybrid, as one rank's :class:`PipelineEngine` (Chen, Chen, Qian, arXiv 2308.10087).

``world_size = stages x parts``: rank ``r`` is stage ``r // parts`` of partition ``r % parts``. Each
partition's nodes flow through the stages in ``chunks``; rows of other chunks come from per-layer
history tables (detached, at most one epoch stale), and with one chunk the schedule is exact. One
optimizer step per epoch. Design and measurements: docs/parallel.md.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from graphrec.config import ParallelConfig, TrainConfig
from graphrec.parallel.comm import Comm, HaloExchange
from graphrec.parallel.partition import build_rank_plans, partition_and_chunk
from graphrec.parallel.stages import DropoutMasks, split_layers, staged
from graphrec.train.trainer import load_optimizer_state, make_optimizer

MODES = ("single", "pipe", "graph", "hybrid")


class PipelineEngine:
    """One rank's share of a distributed full-graph node-classification training.

    Args:
        model: the full registered model (GCN or GCNII), built from the same seed on every rank.
        x, edge_index, y: the whole graph (features preprocessed), on every rank.
        masks: ``{"train", "valid", "test"}`` boolean node masks.
        config: the :class:`ParallelConfig`.
        lr, weight_decay: Adam's settings when ``optimizer_config`` is not given.
        optimizer_config: the run's :class:`~graphrec.config.TrainConfig`: this stage's optimizer is
            :func:`~graphrec.train.trainer.make_optimizer` of it (``train.optimizer``, weight decay,
            fused Adam), as in a single-process run.
        seed: dropout masks and chunk order derive from it.
        rank, world_size: this process in the default process group (initialised by the caller
            when ``world_size > 1``).
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, edge_index: torch.Tensor, y: torch.Tensor,
                 masks: dict[str, torch.Tensor], config: ParallelConfig, lr: float = 0.01, weight_decay: float = 0.0,
                 seed: int = 0, rank: int = 0, world_size: int = 1, device: str = "cpu",
                 optimizer_config: TrainConfig | None = None):
        self.config, self.rank, self.world_size = config, rank, world_size
        self.num_stages, self.num_parts = config.layout(world_size)
        self.stage, self.part = divmod(rank, self.num_parts)
        self.is_first, self.is_last = self.stage == 0, self.stage == self.num_stages - 1
        self.device = torch.device(device)
        self.comm = Comm(rank, world_size, self.device)
        self.model = model.to(self.device)
        self.staged = staged(model)
        self.first, self.stop = split_layers(self.staged.num_convs, self.num_stages)[self.stage]
        modules = self.staged.stage_modules(self.first, self.stop, self.is_first, self.is_last)
        seen, self.params = set(), []
        for module in modules:
            for param in module.parameters():
                if id(param) not in seen:
                    seen.add(id(param))
                    self.params.append(param)
        self.param_names = [name for name, p in model.named_parameters() if id(p) in seen]
        self.optimizer = _stage_optimizer(model, seen, optimizer_config or TrainConfig(weight_decay=weight_decay))
        if optimizer_config is None:  # the lr shortcut may be 0 (frozen weights), which TrainConfig refuses
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        num_nodes = int(x.shape[0])
        self.num_nodes, self.seed = num_nodes, seed

        # partition (rank 0's, broadcast: every rank must agree on it bit for bit)
        parts, chunks = partition_and_chunk(edge_index, num_nodes, self.num_parts, config.num_chunks(),
                                            config.metis_seed)
        if world_size > 1:
            shared = [parts, chunks]
            dist.broadcast_object_list(shared, src=0)
            parts, chunks = shared
        self.node_parts, self.node_chunks = parts, chunks
        self.plan = build_rank_plans(edge_index, num_nodes, parts, chunks)[self.part]
        self.exact_plan = build_rank_plans(edge_index, num_nodes, parts, chunks, merge_chunks=True)[self.part]
        for one in (self.plan, self.exact_plan):  # index tensors live on the device once
            for chunk in one.chunks:
                for name in ("src", "dst", "weight", "stale", "first_src"):
                    setattr(chunk, name, getattr(chunk, name).to(self.device))
                chunk.send_pos = [t.to(self.device) for t in chunk.send_pos]
                chunk.recv_pos = [t.to(self.device) for t in chunk.recv_pos]
        plan = self.plan
        self.ids = plan.global_ids.to(self.device)
        self.x_local = x[plan.global_ids].to(self.device)
        own = plan.owned_ids
        self.y_own = y[own].long().clamp(min=0).to(self.device)
        self.masks_own = {name: mask[own].bool().to(self.device) for name, mask in masks.items()}
        self.num_train = int(masks["train"].sum())
        self.train_weight = self.masks_own["train"].float() / max(self.num_train, 1)
        hidden_inputs = range(max(self.first, 1), self.stop)
        self.history = {layer: torch.zeros(plan.num_local, self.staged.hidden, device=self.device)
                        for layer in hidden_inputs}
        self.drop = DropoutMasks(model.dropout, seed, num_nodes)  # staged() checked the LayerwiseModel contract
        # stage groups (replicas of one stage) for gradient all-reduce: every rank creates all of them
        self.group = None
        if world_size > 1 and self.num_parts > 1:
            for stage in range(self.num_stages):
                ranks = list(range(stage * self.num_parts, (stage + 1) * self.num_parts))
                group = dist.new_group(ranks)
                if stage == self.stage:
                    self.group = group
        self.peers = {part: self.stage * self.num_parts + part for part in range(self.num_parts)
                      if part != self.part}
        self.prev_rank = rank - self.num_parts if not self.is_first else None
        self.next_rank = rank + self.num_parts if not self.is_last else None
        self.width = self.staged.hidden + self.staged.carry

    # ------------------------------------------------------------------ forward
    def _chunk_forward(self, plan, chunk, phase: str):
        """Forward one chunk through this stage's block. Returns (output rows, input leaf or None)."""
        staged, ids = self.staged, self.ids
        n_own = chunk.own.stop - chunk.own.start
        training = self.drop.training
        leaf, carried, own_h = None, None, None
        if self.is_first:
            rows = torch.cat([torch.arange(chunk.own.start, chunk.own.stop, device=self.device),
                              torch.arange(chunk.halo.start, chunk.halo.stop, device=self.device),
                              chunk.stale.to(self.device)])
            x_src, carried_all = staged.first_input(self.x_local[rows], ids[rows], self.drop)
            carried = carried_all[:n_own] if carried_all is not None else None
        else:
            leaf = self.comm.recv((n_own, self.width), self.prev_rank, f"{phase}/pipe_forward")
            leaf.requires_grad_(training and torch.is_grad_enabled())
            own_h = leaf[:, :staged.hidden]
            carried = leaf[:, staged.hidden:] if staged.carry else None
        for layer in range(self.first, self.stop):
            if layer > 0:
                if self.num_parts > 1:
                    halo_h = HaloExchange.apply(own_h, self.comm, chunk, self.peers, f"{phase}/halo")
                else:
                    halo_h = own_h.new_zeros(0, own_h.shape[1])
                history = self.history[layer]
                if training:
                    history[chunk.own] = own_h.detach()
                    history[chunk.halo] = halo_h.detach()
                stale_h = history[chunk.stale.to(self.device)]
                x_src = torch.cat([own_h, halo_h, stale_h])
                rows = torch.cat([torch.arange(chunk.own.start, chunk.own.stop, device=self.device),
                                  torch.arange(chunk.halo.start, chunk.halo.stop, device=self.device),
                                  chunk.stale.to(self.device)])
            own_h = staged.conv(layer, x_src, chunk.src.to(self.device), chunk.dst.to(self.device),
                                chunk.weight.to(self.device), n_own, carried, ids[rows], self.drop)
        if self.is_last:
            return staged.output(own_h, ids[chunk.own], self.drop), leaf
        out = torch.cat([own_h, carried], 1) if carried is not None else own_h
        return out, leaf

    def _chunk_order(self, epoch: int, num_chunks: int) -> list[int]:
        if self.config.shuffle_chunks and num_chunks > 1:
            generator = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            return torch.randperm(num_chunks, generator=generator).tolist()
        return list(range(num_chunks))

    # ------------------------------------------------------------------ train
    def train_epoch(self, epoch: int) -> float:
        """One full-graph step: pipelined forward of every chunk, pipelined backward, one update.
        Returns the global training loss (mean cross-entropy of the train nodes), on every rank;
        a non-finite loss leaves the parameters untouched."""
        self.model.train()
        self.drop.start_epoch(epoch, training=True)
        exact = epoch < self.config.warmup_epochs or 0 < self.config.exact_from_epoch <= epoch
        plan = self.exact_plan if exact else self.plan
        order = self._chunk_order(epoch, plan.num_chunks)
        self.optimizer.zero_grad(set_to_none=True)
        records = []
        loss_total = 0.0
        for number in order:
            chunk = plan.chunks[number]
            out, leaf = self._chunk_forward(plan, chunk, "train")
            if self.is_last:
                rows = slice(chunk.own.start, chunk.own.stop)
                loss = (F.cross_entropy(out, self.y_own[rows], reduction="none") * self.train_weight[rows]).sum()
                loss_total += float(loss.detach())
                records.append((chunk, loss, leaf))
            else:
                self.comm.isend(out, self.next_rank, "train/pipe_forward")
                records.append((chunk, out, leaf))
        for chunk, out, leaf in reversed(records):
            if self.is_last:
                out.backward()
            else:
                grad = self.comm.recv(out.shape, self.next_rank, "train/pipe_backward")
                torch.autograd.backward(out, grad)
            if leaf is not None:
                grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
                self.comm.isend(grad, self.prev_rank, "train/pipe_backward")
        records.clear()
        if self.group is not None:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            flat = torch.cat([g.reshape(-1) for g in grads])
            self.comm.all_reduce(flat, "train/allreduce", group=self.group, group_size=self.num_parts)
            offset = 0
            for param in self.params:
                size = param.numel()
                param.grad = flat[offset:offset + size].view_as(param).clone()
                offset += size
        self.comm.flush()
        total = torch.tensor([loss_total], dtype=torch.float64, device=self.device)
        self.comm.all_reduce(total, "metrics")
        loss = float(total)
        if math.isfinite(loss):  # every rank knows the global loss: a NaN step is skipped everywhere
            self.optimizer.step()
        return loss

    # ------------------------------------------------------------------ eval
    @torch.no_grad()
    def logits_own(self) -> torch.Tensor | None:
        """Exact (one chunk, no history) eval-mode logits of this rank's owned nodes (last stage only)."""
        self.model.eval()
        self.drop.start_epoch(-1, training=False)
        chunk = self.exact_plan.chunks[0]
        out, _ = self._chunk_forward(self.exact_plan, chunk, "eval")
        if not self.is_last:
            self.comm.isend(out, self.next_rank, "eval/pipe_forward")
            self.comm.flush()
            return None
        return out

    def evaluate(self) -> dict[str, dict[str, float]]:
        """``{split: {"loss", "accuracy"}}`` for train/valid/test, identical on every rank."""
        logits = self.logits_own()
        names = ("train", "valid", "test")
        sums = torch.zeros(len(names), 3, dtype=torch.float64, device=self.device)
        if logits is not None:
            losses = F.cross_entropy(logits, self.y_own, reduction="none")
            correct = (logits.argmax(1) == self.y_own)
            for index, name in enumerate(names):
                mask = self.masks_own[name]
                sums[index] = torch.stack([losses[mask].double().sum(), correct[mask].double().sum(),
                                           mask.double().sum()])
        self.comm.all_reduce(sums, "metrics")
        return {name: {"loss": float(sums[i, 0] / sums[i, 2].clamp(min=1)),
                       "accuracy": float(sums[i, 1] / sums[i, 2].clamp(min=1))} for i, name in enumerate(names)}

    # ------------------------------------------------------------------ state
    def owned_state(self) -> dict[str, torch.Tensor]:
        """This stage's parameters by their names in the full model."""
        named = dict(self.model.named_parameters())
        return {name: named[name].detach().clone() for name in self.param_names}

    def gather_model_state(self) -> dict[str, torch.Tensor] | None:
        """The full model's parameters assembled on rank 0 (stage 0 replicas are identical)."""
        state = {k: v.cpu() for k, v in self.owned_state().items()}
        if self.world_size == 1:
            return state
        gathered = [None] * self.world_size if self.rank == 0 else None
        dist.gather_object(state, gathered, dst=0)
        if self.rank != 0:
            return None
        merged = {}
        for part in gathered:
            merged.update(part)
        full = self.model.state_dict()
        full.update(merged)
        return {k: v.cpu() for k, v in full.items()}

    def state_dict(self) -> dict:
        return {"params": self.owned_state(), "optimizer": self.optimizer.state_dict(),
                "history": {str(k): v.clone() for k, v in self.history.items()},
                "layout": [self.num_stages, self.num_parts, self.stage, self.part]}

    def load_state_dict(self, state: dict) -> None:
        if list(state["layout"]) != [self.num_stages, self.num_parts, self.stage, self.part]:
            raise ValueError(f"checkpoint layout {state['layout']} does not match this run's "
                             f"{[self.num_stages, self.num_parts, self.stage, self.part]}: resume with the "
                             "same --nproc and --parallel")
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["params"].items():
                named[name].copy_(value)
        load_optimizer_state(self.optimizer, state["optimizer"])
        for key, value in state["history"].items():
            self.history[int(key)].copy_(value)

    def layout_summary(self) -> dict:
        return {"mode": self.config.mode, "stages": self.num_stages, "parts": self.num_parts,
                "chunks": self.plan.num_chunks, "layers": [self.first, self.stop], "owned_nodes": self.plan.num_owned,
                "halo_nodes": self.plan.num_local - self.plan.num_owned,
                "chunk_sizes": [c.own.stop - c.own.start for c in self.plan.chunks],
                "stale_rows": [int(c.stale.numel()) for c in self.plan.chunks]}


def _stage_optimizer(model: nn.Module, owned: set[int], config: TrainConfig) -> torch.optim.Optimizer:
    """``make_optimizer`` over this stage's parameters: it takes the trainable ones, so the other
    stages' parameters are frozen for the call (and only for it)."""
    others = [p for p in model.parameters() if id(p) not in owned and p.requires_grad]
    for param in others:
        param.requires_grad_(False)
    try:
        return make_optimizer(model, config)
    finally:
        for param in others:
            param.requires_grad_(True)


def comm_volume(engine: PipelineEngine) -> dict[str, float]:
    """Bytes per phase summed over all ranks (a collective; call on every rank)."""
    return engine.comm.volume_all_ranks()


__all__ = ["MODES", "ParallelConfig", "PipelineEngine", "comm_volume"]
