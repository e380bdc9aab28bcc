"""What the Trainer needs to know about a kind of problem, and nothing about models."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator

import torch
from torch import nn


class Task(ABC):
    """A training problem: its batches, its loss call and its evaluator.

    The :class:`~graphrec.train.Trainer` loops over any task; tasks never look at model
    names, only at the small interface their models share.
    """

    #: split evaluated during training to select the best epoch ("valid", or "test" under
    #: the paper protocol); the Trainer reports every split in ``report_splits`` at the end.
    selection_split: str = "valid"
    report_splits: tuple[str, ...] = ("valid", "test")

    @abstractmethod
    def build_model(self, entry, model_config) -> nn.Module:
        """Instantiate a registered model with this task's data sizes and prepare it."""

    @abstractmethod
    def num_batches(self) -> int:
        """Batches in one epoch."""

    @abstractmethod
    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """The batches of ``epoch`` from number ``start`` on, deterministic given the seed."""

    @abstractmethod
    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The scalar loss of one batch."""

    @abstractmethod
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics of ``model`` on ``split``."""

    def batch_samples(self, batch: Any) -> int:
        """How many training examples a batch holds (for throughput)."""
        return len(batch)

    def state_dict(self) -> dict[str, Any]:
        """Training state the task keeps besides the model and optimizer (e.g. historical layers),
        saved in the checkpoint so a resumed run continues exactly; empty for most tasks."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def describe(self) -> dict[str, Any]:
        """Protocol and data facts written into every summary."""
        return {}
