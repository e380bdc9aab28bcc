"""Learning-rate schedules as pure functions of the epoch.

The rate for an epoch is computed from the config and the number of completed epochs alone,
never from a scheduler object's running state: a resumed run (``--resume``) therefore gets
exactly the rates the uninterrupted run had, with nothing extra to checkpoint. torch's
``LRScheduler`` classes would work too, but their state would have to travel in every
checkpoint and they step per call rather than per epoch index.
"""
from __future__ import annotations

import math

import torch

from graphrec.config import TrainConfig

SCHEDULES = ("constant", "cosine", "step")


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """Multiplier on ``config.lr`` for the epoch that starts after ``epoch`` completed epochs.

    - ``constant``: 1.
    - ``cosine``: from 1 down to ``lr_min / lr`` along half a cosine over ``lr_decay_epochs``
      epochs (0: over ``epochs``), then held there (Loshchilov & Hutter, SGDR, without restarts):
      ``lr_t = lr_min + (lr - lr_min) * (1 + cos(pi * t / T)) / 2``.
    - ``step``: times ``lr_gamma`` at each epoch in ``lr_milestones`` (counted in completed
      epochs: milestone 100 means epochs 101 onwards run at ``lr * lr_gamma``).
    """
    name = config.lr_schedule
    if name == "constant":
        return 1.0
    if name == "cosine":
        horizon = config.lr_decay_epochs or config.epochs
        floor = config.lr_min / config.lr
        progress = min(epoch, horizon) / horizon
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if name == "step":
        return config.lr_gamma ** sum(1 for milestone in config.lr_milestones if epoch >= milestone)
    raise ValueError(f"unknown lr_schedule {name!r}: use one of {', '.join(SCHEDULES)}")


def apply_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int) -> float:
    """Set every parameter group's rate for the coming epoch; returns the rate of ``config.lr``.

    Groups keep their ratio to ``config.lr`` (a model's parameter groups may set their own rate):
    each group's starting rate is remembered as ``initial_lr``, as torch's schedulers do.
    """
    factor = lr_factor(config, epoch)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor
    return config.lr * factor
