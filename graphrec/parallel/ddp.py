"""Data-parallel training of the recommenders (LightGCN, UltraGCN) with DistributedDataParallel.

Same launcher as the GNN pipeline (``graphrec fit --nproc N --parallel ddp`` or torchrun), same
Trainer as single-process runs: only the task is wrapped.

* :class:`ShardedTask`: every rank draws the epoch's seeded BPR batches (identical streams: the
  sampler is seeded by (seed, epoch)) and trains on batch ``i`` when ``i % world_size == rank``;
  each rank gets ``num_batches // world_size`` batches (the remainder is dropped so that every rank
  takes part in every all-reduce). The global batch is ``world_size x batch_size`` (standard DDP).
* The loss goes through ``DistributedDataParallel`` around a small module whose ``forward`` is the
  model's ``loss(batch)`` (DDP hooks ``forward``; our recommenders expose their loss as a method),
  so gradients are bucket-all-reduced and averaged during ``backward`` exactly as DDP does. DDP
  also broadcasts rank 0's initial parameters.
* :class:`DataParallel` is the Trainer's strategy: every rank evaluates (same parameters, so the
  same metrics and the same early-stopping decision without extra messages); stop requests and time
  limits are agreed at the end of each epoch; only rank 0 writes the run folder. ``--resume`` makes
  every rank load rank 0's ``last.pt`` (one machine or a shared file system).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from graphrec.parallel.launch import init_distributed
from graphrec.train.strategy import SingleProcess
from graphrec.train.task import Task


class _LossModule(nn.Module):
    def __init__(self, model: nn.Module, task: Task):
        super().__init__()
        self.model, self._task = model, task

    def forward(self, batch):
        return self._task.training_loss(self.model, batch)


class ShardedTask(Task):
    """A task whose training batches are split round-robin over the ranks, loss through DDP."""

    def __init__(self, task: Task, rank: int, world_size: int):
        self.task, self.rank, self.world_size = task, rank, world_size
        self.selection_split, self.report_splits = task.selection_split, task.report_splits
        self.ddp: nn.Module | None = None

    def wrap(self, model: nn.Module, device: str = "cpu") -> None:
        from torch.nn.parallel import DistributedDataParallel

        module = _LossModule(model, self.task)
        ids = [torch.device(device).index] if device.startswith("cuda") else None
        self.ddp = DistributedDataParallel(module, device_ids=ids) if self.world_size > 1 else module

    def build_model(self, entry, model_config) -> nn.Module:
        return self.task.build_model(entry, model_config)

    def num_batches(self) -> int:
        return max(1, self.task.num_batches() // self.world_size)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        mine = 0
        for number, batch in enumerate(self.task.train_batches(epoch)):
            if number % self.world_size != self.rank:
                continue
            if mine >= self.num_batches():
                return
            if mine >= start:
                yield batch
            mine += 1

    def training_loss(self, model: nn.Module, batch) -> torch.Tensor:
        return self.ddp(batch)

    def state_dict(self) -> dict[str, Any]:
        return self.task.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task.load_state_dict(state)

    def batch_samples(self, batch) -> int:
        return self.task.batch_samples(batch)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        return self.task.evaluate(model, split)

    def describe(self) -> dict:
        return {**self.task.describe(), "data_parallel": {"world_size": self.world_size,
                                                          "batches_per_rank": self.num_batches()}}


class DataParallel(SingleProcess):
    """The single-process step over a :class:`ShardedTask` (gradients all-reduced by DDP), as one rank."""

    stops_mid_epoch = False  # a rank that stopped alone would leave the others in an all-reduce

    def __init__(self, model: nn.Module, task: ShardedTask, optimizer: torch.optim.Optimizer):
        super().__init__(model, task, optimizer)
        self.is_writer = task.rank == 0
        self.world_size = task.world_size

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        if self.world_size == 1:
            return tuple(bool(flag) for flag in flags)
        values = torch.tensor([float(bool(flag)) for flag in flags])
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return tuple(bool(value > 0) for value in values.tolist())

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def fit_ddp(config, run_dir: str | Path, resume: bool = False, backend: str = "", timeout_s: float = 60.0,
            data=None) -> dict[str, Any]:
    """Train a recommender as this rank of a data-parallel group (see the module docstring);
    ``data``: the dataset already in memory (else read from ``config``)."""
    from graphrec import runs
    from graphrec.train.trainer import make_optimizer

    owns_group = not dist.is_initialized()  # a caller's own process group stays open
    rank, world_size, device = init_distributed(backend, timeout_s, config.train.device)

    def strategy(model: nn.Module, task: Task) -> DataParallel:
        if task.num_batches() < world_size:
            raise ValueError(f"--parallel ddp gives each of the {world_size} ranks its own batches, but this task "
                             f"has {task.num_batches()} per epoch (full-graph training): use --parallel pipe or graph")
        sharded = ShardedTask(task, rank, world_size)
        sharded.wrap(model, device)
        return DataParallel(model, sharded, make_optimizer(model, config.train))

    _, summary = runs.fit(config, run_dir, resume=resume, data=data, strategy=strategy)
    if world_size > 1:
        dist.barrier()
        if owns_group:
            dist.destroy_process_group()
    summary["rank"] = rank
    return summary
