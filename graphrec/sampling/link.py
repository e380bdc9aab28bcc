"""Link (BPR) minibatches with their sampled neighbourhoods: sampled-subgraph training.

Each batch is the ``(user, positive, negatives)`` triples of :class:`BPRSampler` plus
the multi-hop neighbourhood of every node they touch, in PyG's triplet layout (the
one ``LinkNeighborLoader(neg_sampling="triplet")`` produces): ``src_index``,
``dst_pos_index`` and ``dst_neg_index`` are the local rows of the users, positives and
negatives, so a model embeds the subgraph once and scores ``out[src_index]`` against
``out[dst_pos_index]`` and ``out[dst_neg_index]``.
"""
from __future__ import annotations

from typing import Iterator

import scipy.sparse as sp
import torch

from graphrec.data.csr import bipartite_adjacency
from graphrec.sampling.base import Sampler, sample_batches
from graphrec.sampling.bpr import BPRBatch, BPRSampler
from graphrec.sampling.neighbor import NeighborSampler

USER_TO_ITEM = ("user", "rates", "item")
ITEM_TO_USER = ("item", "rated_by", "user")


class LinkNeighborSampler(Sampler):
    """BPR triples from ``train`` (users x items CSR) with their ``fanouts``-hop neighbourhoods.

    Homogeneous (default): one graph where users are nodes ``0..U-1`` and items
    ``U..U+I-1``; a batch is a ``Data`` whose ``n_id`` are such node ids.
    ``heterogeneous=True``: a ``HeteroData`` with node types ``"user"``/``"item"`` and
    relations ``("user", "rates", "item")`` and ``("item", "rated_by", "user")``;
    ``src_index`` lives on ``"user"``, ``dst_pos_index``/``dst_neg_index`` on ``"item"``.

    ``dst_neg_index`` has shape ``(batch,)`` for one negative, ``(batch, num_negatives)``
    otherwise (PyG's convention). Triples and neighbourhoods depend only on
    ``(seed, epoch, batch number)``: the seeds of batch ``b`` are batch ``b`` of the
    :class:`BPRSampler` ``triples`` with the same settings (:mod:`graphrec.sampling.base`).
    """

    def __init__(self, train, fanouts, batch_size: int = 1024, num_negatives: int = 1,
                 replace: bool = False, seed: int = 0, user_sampling: str = "uniform",
                 heterogeneous: bool = False):
        train = sp.csr_matrix(train)
        self.num_users, self.num_items = train.shape
        self.num_negatives = int(num_negatives)
        self.heterogeneous = bool(heterogeneous)
        self.seed = int(seed)
        self.triples = BPRSampler(train, batch_size=batch_size, num_negatives=num_negatives,
                                  user_sampling=user_sampling, seed=seed)
        if heterogeneous:
            relations = {ITEM_TO_USER: train, USER_TO_ITEM: train.T.tocsr()}
            self.neighbors = NeighborSampler(relations, fanouts, replace=replace, seed=seed,
                                             num_nodes={"user": self.num_users, "item": self.num_items})
        else:
            self.neighbors = NeighborSampler(bipartite_adjacency(train), fanouts, replace=replace, seed=seed)

    def __len__(self) -> int:
        return len(self.triples)

    def sample(self, seeds, batch_seed: int | None = None):
        """The neighbourhood batch of given triples: a :class:`BPRBatch` or ``(users, pos_items,
        neg_items)`` in global user and item ids; draws follow ``batch_seed`` (default: the seed)."""
        users, pos_items, neg_items = (seeds.users, seeds.pos_items, seeds.neg_items) if isinstance(
            seeds, BPRBatch) else seeds
        users = torch.as_tensor(users, dtype=torch.long).reshape(-1)
        pos_items = torch.as_tensor(pos_items, dtype=torch.long).reshape(-1)
        neg_items = torch.as_tensor(neg_items, dtype=torch.long).reshape(users.shape[0], -1)
        batch, negatives = users.shape[0], neg_items.shape[1]
        items = torch.cat([pos_items, neg_items.reshape(-1)])
        if self.heterogeneous:
            data = self.neighbors.sample({"user": users, "item": items}, batch_seed=batch_seed)
            user_rows, item_rows = data["user"].input_index, data["item"].input_index
            data["user"].src_index = user_rows
            data["item"].dst_pos_index = item_rows[:batch]
            data["item"].dst_neg_index = _negatives_layout(item_rows[batch:], batch, negatives)
            return data
        data = self.neighbors.sample(torch.cat([users, items + self.num_users]), batch_seed=batch_seed)
        rows = data.input_index
        data.src_index = rows[:batch]
        data.dst_pos_index = rows[batch:2 * batch]
        data.dst_neg_index = _negatives_layout(rows[2 * batch:], batch, negatives)
        return data

    def loader(self, epoch: int, start: int = 0, num_workers: int = 0) -> Iterator:
        """The epoch's batches from batch number ``start`` on; ``num_workers`` threads sample ahead."""
        return sample_batches(self, self.triples, epoch, start, num_workers)



def _negatives_layout(rows: torch.Tensor, batch: int, negatives: int) -> torch.Tensor:
    return rows if negatives == 1 else rows.reshape(batch, negatives)
