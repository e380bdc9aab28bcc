"""How the Trainer's steps run: on this process, or across ranks (:mod:`graphrec.parallel`).

:class:`~graphrec.train.Trainer` owns the loop: epochs, the learning-rate schedule, evaluation cadence,
selection, early stopping, time limits, checkpoints and the run folder. A strategy owns only what
differs between one process and many: forward/backward/step, evaluation across ranks, where its
state is written, and which rank writes the run folder. :class:`SingleProcess` is the default;
:mod:`graphrec.parallel.ddp` and :mod:`graphrec.parallel.fit` hold the distributed ones.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from graphrec.train.checkpoint import load_checkpoint, load_model_state, save_checkpoint, task_sizes
from graphrec.train.task import Task


class TrainingStrategy:
    """What :meth:`Trainer.fit <graphrec.train.Trainer.fit>` calls, with the single-process defaults
    for everything that is not about the step itself.

    Every rank runs the same Trainer loop and calls these in the same order, so a strategy may use
    collectives in any of them (the loop's decisions then agree across ranks).
    """

    model: nn.Module
    task: Task
    optimizer: torch.optim.Optimizer
    #: this rank writes the run folder (config, metrics, best.pt, summary); the others only compute
    is_writer: bool = True
    #: a stop request may end an epoch between two batches (ranks would otherwise wait for each other)
    stops_mid_epoch: bool = True

    # ------------------------------------------------------------------ training
    def num_batches(self) -> int:
        """Steps in one epoch on this rank."""
        raise NotImplementedError

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """The steps of ``epoch`` from number ``start`` on."""
        raise NotImplementedError

    def batch_samples(self, batch: Any) -> int:
        """Training examples in one step (throughput)."""
        raise NotImplementedError

    def train_step(self, batch: Any) -> float:
        """Forward, backward and optimizer step of one batch; returns the loss. A non-finite loss
        must leave the parameters untouched (the Trainer then raises)."""
        raise NotImplementedError

    def evaluate(self, split: str) -> dict[str, float]:
        """Metrics of the current weights on ``split``, the same on every rank."""
        raise NotImplementedError

    # ------------------------------------------------------------------ agreement across ranks
    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true when it is true on any rank (stop requests, time limits)."""
        return tuple(bool(flag) for flag in flags)

    def barrier(self) -> None:
        """Wait for every rank (before reading what the writer wrote)."""

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """This rank's share of the training state (goes into the Trainer's checkpoint)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def model_state(self) -> dict[str, torch.Tensor] | None:
        """The whole model's state dict on the writer (what ``best.pt`` holds), None elsewhere."""
        raise NotImplementedError

    def remember_best(self, saved: bool) -> None:
        """The current weights became the best; ``saved``: the writer has written them to ``best.pt``."""
        raise NotImplementedError

    def restore_best(self, path: Path | None) -> None:
        """Put the remembered best weights back (from ``path``, ``best.pt``, when not in memory)."""
        raise NotImplementedError

    def checkpoint_path(self, run_dir: Path) -> Path:
        """What ``--resume`` reads in ``run_dir`` (shown to the user)."""
        return run_dir / "last.pt"

    def write_checkpoint(self, state: dict[str, Any], run_dir: Path, epoch: int, final: bool) -> None:
        """Write the Trainer's ``state`` after ``epoch``; ``final``: the loop is about to return."""
        if self.is_writer:
            save_checkpoint(state, self.checkpoint_path(run_dir))

    def read_checkpoint(self, run_dir: Path) -> dict[str, Any]:
        return load_checkpoint(self.checkpoint_path(run_dir))

    def describe(self) -> dict[str, Any]:
        """Facts for the run summary (layout, communication volume)."""
        return {}


class SingleProcess(TrainingStrategy):
    """Today's batch loop on one process: the task's batches, its loss, one optimizer."""

    def __init__(self, model: nn.Module, task: Task, optimizer: torch.optim.Optimizer):
        self.model, self.task, self.optimizer = model, task, optimizer
        self._best: dict[str, torch.Tensor] | None = None

    def num_batches(self) -> int:
        return self.task.num_batches()

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        return self.task.train_batches(epoch, start=start)

    def batch_samples(self, batch: Any) -> int:
        return self.task.batch_samples(batch)

    def train_step(self, batch: Any) -> float:
        loss = self.task.training_loss(self.model, batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            return value
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return value

    def evaluate(self, split: str) -> dict[str, float]:
        return self.task.evaluate(self.model, split)

    def state_dict(self) -> dict[str, Any]:
        return {"model_state": self.model.state_dict(), "optimizer_state": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from graphrec.train.trainer import load_optimizer_state

        load_model_state(self.model, state, sizes=task_sizes(self.task))
        load_optimizer_state(self.optimizer, state["optimizer_state"])

    def model_state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def remember_best(self, saved: bool) -> None:
        # without a best.pt (no run folder, or not the writer) the weights stay in memory
        self._best = None if saved else {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore_best(self, path: Path | None) -> None:
        if self._best is not None:
            self.model.load_state_dict(self._best)
        elif path is not None and path.exists():
            self.model.load_state_dict(load_checkpoint(path)["model_state"])
