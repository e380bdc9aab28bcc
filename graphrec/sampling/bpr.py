"""(user, positive item, negative items) minibatches for pairwise recommendation losses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.kernels.sampling import _CHUNK, sample_negatives
from graphrec.sampling.base import Sampler, SeedSchedule, sample_batches


@dataclass
class BPRBatch:
    """One minibatch: ``neg_items`` has shape (batch, num_negatives).

    With ``shared_negatives`` the batch has one negative set for all its rows and
    ``neg_items`` has shape (1, num_negatives).
    """

    users: torch.Tensor
    pos_items: torch.Tensor
    neg_items: torch.Tensor
    shared_negatives: bool = False

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def to(self, device) -> "BPRBatch":
        return BPRBatch(self.users.to(device), self.pos_items.to(device), self.neg_items.to(device),
                        self.shared_negatives)


class BPRSampler(Sampler, SeedSchedule):
    """Draws an epoch of BPR triples from the train interactions, then cuts it into batches.

    An epoch has as many triples as there are train interactions. ``user_sampling``:

    - ``"uniform"`` (the official LightGCN samplers): a user uniformly among users with
      train items, then one of their positives uniformly;
    - ``"interaction"``: every train interaction once, in a shuffled order.

    Negatives are drawn uniformly among the items the user has not interacted with in
    train. The epoch's draws depend only on ``(seed, epoch)``, so a resumed run sees
    exactly the batches an uninterrupted one would. Per-positive negatives are drawn a
    window of batches at a time (identical to drawing the whole epoch at once), so
    memory stays bounded with many negatives per positive (UltraGCN: 1500).

    ``shared_negatives=True`` draws one set of ``num_negatives`` items per batch instead,
    uniformly over *all* items, shared by every row of the batch (``neg_items`` of shape
    (1, num_negatives)): the negative sharing of UltraGCN-style and sampled-softmax
    trainers. A shared negative may be a train positive of some user in the batch, as
    with the official UltraGCN sampler (``sampling_sift_pos=no``); models score the set
    with one dense matmul instead of a per-row gather.

    In the sampler protocol (:mod:`graphrec.sampling.base`) the triples are the seeds:
    :meth:`epoch_seeds` draws them and :meth:`sample` returns a batch of them unchanged, so
    :class:`~graphrec.sampling.LinkNeighborSampler` reuses this schedule for its neighbourhoods.
    """

    def __init__(self, train: sp.csr_matrix, batch_size: int = 2048, num_negatives: int = 1,
                 user_sampling: str = "uniform", seed: int = 0, shared_negatives: bool = False):
        if user_sampling not in ("uniform", "interaction"):
            raise ValueError(f"user_sampling must be 'uniform' or 'interaction', got {user_sampling!r}")
        if batch_size < 1 or num_negatives < 1:
            raise ValueError("batch_size and num_negatives must be >= 1")
        train = sp.csr_matrix(train)
        train.sort_indices()
        self.indptr = train.indptr.astype(np.int64)
        self.indices = train.indices.astype(np.int64)
        self.num_users, self.num_items = train.shape
        self.degree = np.diff(self.indptr)
        full = np.flatnonzero(self.degree >= self.num_items)
        if full.size:
            raise ValueError(f"users {full[:5].tolist()} interacted with every item: no negative exists")
        self.active_users = np.flatnonzero(self.degree > 0)
        self.batch_size = batch_size
        self.num_negatives = num_negatives
        self.user_sampling = user_sampling
        self.seed = seed
        self.shared_negatives = shared_negatives

    @property
    def samples_per_epoch(self) -> int:
        return int(self.indices.shape[0])

    def __len__(self) -> int:
        return -(-self.samples_per_epoch // self.batch_size)

    def sample_epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole epoch's (users, positives, per-positive negatives (n, num_negatives))."""
        users, pos, chunk_seeds, _ = self._draw(epoch)
        return users, pos, self._negatives(users, chunk_seeds, 0, users.shape[0])

    def _draw(self, epoch: int):
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        n = self.samples_per_epoch
        if self.user_sampling == "uniform":
            users = self.active_users[rng.integers(0, self.active_users.shape[0], n)]
            offsets = (rng.random(n) * self.degree[users]).astype(np.int64)
            pos = self.indices[self.indptr[users] + offsets]
        else:
            order = rng.permutation(n)
            users = np.repeat(np.arange(self.num_users), self.degree)[order]
            pos = self.indices[order]
        chunk_seeds = rng.integers(0, 2**31 - 1, -(-n // _CHUNK))
        shared = (rng.integers(0, self.num_items, (len(self), self.num_negatives))
                  if self.shared_negatives else None)
        return users, pos, chunk_seeds, shared

    def _negatives(self, users, chunk_seeds, begin: int, end: int) -> np.ndarray:
        """Per-positive negatives of triples ``[begin, end)``; ``begin`` is a multiple of ``_CHUNK``.

        Each ``_CHUNK`` of triples has its own seeded stream, so any chunk-aligned window
        draws exactly what the whole epoch at once would.
        """
        neg = np.empty((end - begin, self.num_negatives), dtype=np.int64)
        sample_negatives(self.indptr, self.indices, users[begin:end], self.num_items, self.num_negatives,
                         chunk_seeds[begin // _CHUNK:], neg)
        return neg

    def _window(self) -> int:
        """Triples whose negatives are drawn at once: chunk-aligned, about 2^24 items at most."""
        chunks = max(-(-self.batch_size // _CHUNK) + 1, (1 << 24) // (_CHUNK * self.num_negatives), 1)
        return chunks * _CHUNK

    def epoch_seeds(self, epoch: int, start: int = 0) -> Iterator[BPRBatch]:
        """The epoch's triples, batch by batch from batch number ``start`` on.

        The epoch's users and positives are drawn whole (one vector each); negatives only for
        the chunk-aligned windows that hold batches ``start..``.
        """
        users_np, pos_np, chunk_seeds, shared = self._draw(epoch)
        users, pos = torch.from_numpy(users_np), torch.from_numpy(pos_np)
        n = users.shape[0]
        window_begin, window_end, neg = 0, 0, None
        for number in range(start, len(self)):
            begin, end = number * self.batch_size, min(n, (number + 1) * self.batch_size)
            if shared is not None:
                yield BPRBatch(users[begin:end], pos[begin:end], torch.from_numpy(shared[number: number + 1]),
                               shared_negatives=True)
                continue
            if end > window_end:
                window_begin = (begin // _CHUNK) * _CHUNK
                window_end = min(n, max(window_begin + self._window(), -(-end // _CHUNK) * _CHUNK))
                neg = torch.from_numpy(self._negatives(users_np, chunk_seeds, window_begin, window_end))
            yield BPRBatch(users[begin:end], pos[begin:end], neg[begin - window_begin: end - window_begin])

    def sample(self, seeds: BPRBatch, batch_seed: int | None = None) -> BPRBatch:
        """A batch of triples is its own minibatch (its draws happened in :meth:`epoch_seeds`)."""
        return seeds

    def loader(self, epoch: int, start: int = 0, num_workers: int = 0) -> Iterator[BPRBatch]:
        """The epoch's batches from batch number ``start`` on (:func:`~graphrec.sampling.base.sample_batches`)."""
        return sample_batches(self, self, epoch, start, num_workers)

