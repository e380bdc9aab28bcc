"""The BPR loss of a batch of (user, positive item, negative item) triples."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, initial: torch.Tensor | None = None,
             reg_weight: float = 0.0) -> torch.Tensor:
    r"""``mean(-ln sigmoid(u.p - u.n)) + reg_weight * ||initial||^2 / (2 B)``.

    ``user``, ``pos``, ``neg``: ``[B, d]`` final embeddings of each triple. ``initial``: the
    triples' layer-0 rows (users, positives and negatives, repeats included: LightGCN's official
    L2, the squared norm summed and divided by twice the batch size). ``-ln sigmoid(z)`` is
    computed as ``softplus(-z)``, stable for large scores.
    """
    pos_scores = (user * pos).sum(-1)
    neg_scores = (user * neg).sum(-1)
    loss = F.softplus(neg_scores - pos_scores).mean()
    if initial is None:
        return loss
    return loss + reg_weight * (0.5 * initial.pow(2).sum() / user.shape[0])
