"""The one sampler protocol: a sampler builds a minibatch from its seeds, a loader walks an epoch.

Two roles, as in PyG (``BaseSampler.sample_from_nodes``) and DGL (``Sampler.sample`` behind a
``DataLoader``):

- :class:`Sampler`: ``sample(seeds, batch_seed=...)`` builds one minibatch around its seeds
  (a neighbourhood, or the triples themselves for :class:`~graphrec.sampling.BPRSampler`);
- :class:`SeedSchedule`: ``epoch_seeds(epoch, start)`` yields the seeds of batches ``start,
  start + 1, ...`` of an epoch (shuffled node ids, BPR triples), a pure function of (seed, epoch).

:func:`sample_batches` joins them: batch ``b`` of epoch ``e`` is
``sampler.sample(seeds_b, batch_seed=batch_seed(sampler.seed, e, b))``. Batches before ``start``
are neither seeded nor sampled, so a resumed epoch sees exactly the batches an uninterrupted one
would, without drawing the ones it skips; ``num_workers`` threads change the speed, never the batches.
Every sampler's ``loader(..., epoch=, start=, num_workers=)`` is this function over its schedule.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np
import torch


def batch_seed(seed: int, epoch: int, number: int) -> int:
    """The 64-bit seed of one batch: a pure function of (seed, epoch, batch number)."""
    return int(np.random.SeedSequence([seed, epoch, number]).generate_state(1, np.uint64)[0])


class Sampler(ABC):
    """Builds one minibatch from its seeds. ``seed`` keys every random draw."""

    seed: int = 0

    @abstractmethod
    def sample(self, seeds, batch_seed: int | None = None) -> Any:
        """The minibatch of ``seeds``; its random draws follow ``batch_seed`` (default: ``self.seed``)."""


class SeedSchedule(ABC):
    """Which seeds each batch of an epoch holds."""

    @abstractmethod
    def __len__(self) -> int:
        """Batches per epoch."""

    @abstractmethod
    def epoch_seeds(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """The seeds of batches ``start, start + 1, ...`` of ``epoch``, in order.

        Depends only on (seed, epoch); what belongs to batches before ``start`` alone is not drawn.
        """


class NodeSeeds(SeedSchedule):
    """Batches of ``batch_size`` node ids, shuffled per epoch (seeded by ``(seed, epoch)``) or in order;
    with ``node_type`` each batch is ``{node_type: ids}``."""

    def __init__(self, ids, batch_size: int, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 node_type: str | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.ids, self.batch_size = as_ids(ids), int(batch_size)
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), int(seed)
        self.node_type = node_type

    def __len__(self) -> int:
        n = self.ids.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_seeds(self, epoch: int, start: int = 0) -> Iterator[np.ndarray]:
        ids = self.ids
        if self.shuffle:
            ids = ids[np.random.default_rng(np.random.SeedSequence([self.seed, epoch])).permutation(ids.shape[0])]
        for number in range(start, len(self)):
            batch = ids[number * self.batch_size:(number + 1) * self.batch_size]
            yield batch if self.node_type is None else {self.node_type: batch}


def sample_batches(sampler: Sampler, schedule: SeedSchedule, epoch: int, start: int = 0,
                   num_workers: int = 0) -> Iterator:
    """Batches ``start..`` of ``epoch``: ``sampler.sample`` over ``schedule``'s seeds (see the module)."""
    jobs = enumerate(schedule.epoch_seeds(epoch, start), start)
    return map_in_order(lambda job: sampler.sample(job[1], batch_seed=batch_seed(sampler.seed, epoch, job[0])),
                        jobs, num_workers)


def map_in_order(fn, jobs, num_workers: int = 0, lookahead: int | None = None) -> Iterator:
    """``fn(job)`` for every job, in order; with ``num_workers`` threads computing ahead.

    At most ``lookahead`` (default ``2 * num_workers``) results wait unconsumed, which
    bounds memory. Threads help only because the numba kernels run without the GIL.
    """
    if num_workers <= 0:
        for job in jobs:
            yield fn(job)
        return
    lookahead = lookahead or 2 * num_workers
    pending = deque()
    with ThreadPoolExecutor(num_workers, thread_name_prefix="graphrec-sampler") as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(fn, job))
                if len(pending) >= lookahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # consumer stopped early: drop what was not started
            for future in pending:
                future.cancel()


def as_ids(ids) -> np.ndarray:
    """Node ids (tensor, array or sequence) as a contiguous int64 numpy vector."""
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
