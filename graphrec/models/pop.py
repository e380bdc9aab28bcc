"""Most-popular: every user gets the items with the most train interactions (the baseline to beat)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from graphrec.models.registry import get_model_entry, register_model


@register_model("pop", task="recommendation",
                description="most popular items (train interaction counts); no parameters, no training")
class Popularity(nn.Module):
    """Scores an item by its number of train interactions, the same for every user.

    ``embeddings()`` returns a column of ones for the users and the counts for the items, so
    the score (their inner product) is the count and ties go to the lower item index, as in
    every ranking of :mod:`graphrec.metrics.ranking`. The counts are a buffer (they travel in
    checkpoints); there is nothing to train: its recipe runs one epoch of one batch
    (``train.epochs=1``, ``train.max_batches_per_epoch=1``), :meth:`loss` is a constant zero and
    the optimizer has no parameters to update.
    """

    def __init__(self, num_users: int, num_items: int):
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.register_buffer("item_counts", torch.zeros(num_items))

    def prepare(self, train: sp.csr_matrix) -> None:
        counts = np.bincount(sp.csr_matrix(train).indices, minlength=self.num_items)
        self.item_counts.copy_(torch.from_numpy(counts.astype(np.float32)))

    def loss(self, batch) -> torch.Tensor:
        # a leaf that asks for a gradient, so a Trainer step (backward, an optimizer with
        # nothing to update) runs
        return torch.zeros((), device=self.item_counts.device, requires_grad=True)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        users = torch.ones(self.num_users, 1, device=self.item_counts.device)
        return users, self.item_counts.view(-1, 1)


PopularityConfig = get_model_entry("pop").config_cls
