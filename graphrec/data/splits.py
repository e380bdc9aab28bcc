"""Seeded splits: per-user splits of interaction lists, per-class splits of labelled nodes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd


def per_user_split(
    users: np.ndarray,
    fractions: Sequence[float],
    seed: int = 0,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """Assign each interaction to a part (0, 1, ...) separately for every user.

    ``fractions`` are the sizes of the parts *after* the first, e.g. ``(0.1, 0.2)``
    holds out 10% for validation and 20% for test and keeps the rest (part 0) for
    training. Per user, part sizes are ``round(fraction * n)`` but a user always keeps
    at least one training interaction. With ``timestamps`` the split is by time
    (latest interactions go to the last part: no peeking into the future); without,
    the order within a user is a seeded shuffle.

    Returns an int8 array of part ids aligned with ``users``.
    """
    users = np.asarray(users, dtype=np.int64)
    fractions = [float(f) for f in fractions]
    if any(f < 0 for f in fractions) or sum(fractions) >= 1.0:
        raise ValueError(f"held-out fractions must be >= 0 and sum to < 1, got {fractions}")
    n = users.shape[0]
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(n)
    if timestamps is not None:
        order = np.lexsort((tiebreak, np.asarray(timestamps), users))
    else:
        order = np.lexsort((tiebreak, users))
    sorted_users = users[order]
    # Position of every interaction within its user's (ordered) list, and that list's size.
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)

    held = np.zeros((len(fractions), n), dtype=np.int64)
    for part, fraction in enumerate(fractions):
        held[part] = np.floor(fraction * size + 0.5).astype(np.int64)
    total_held = held.sum(0)
    # Never hold out a user's last training interaction: trim parts from the first one on.
    excess = np.maximum(total_held - (size - 1), 0)
    for part in range(len(fractions)):
        cut = np.minimum(excess, held[part])
        held[part] -= cut
        excess -= cut

    assignment_sorted = np.zeros(n, dtype=np.int8)
    # Parts occupy the tail of each user's list: [train ... | part 1 | part 2 ...].
    boundary = size - held.sum(0)
    for part in range(len(fractions)):
        upper = boundary + held[part]
        assignment_sorted[(rank >= boundary) & (rank < upper)] = part + 1
        boundary = upper
    assignment = np.empty(n, dtype=np.int8)
    assignment[order] = assignment_sorted
    return assignment


def split_by_time(frame: "pd.DataFrame", user: str = "user", time: str = "time",
                  test_fraction: float | None = None, last_n: int | None = None,
                  ) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Per user, hold out the latest interactions: ``(train_df, test_df)``, rows in their original order.

    Give one of ``test_fraction`` (``round(fraction * n)`` of a user's ``n`` rows) or ``last_n``
    (that many rows). Every user keeps at least one row in train, so a user with a single row is
    all train. Rows are ordered by ``time`` within a user; equal times keep the frame's row order,
    so the split is deterministic. A ``time`` column with NaN (or NaT) raises ``ValueError``: a
    missing time cannot be placed before or after the others.

    >>> train_df, test_df = split_by_time(df, user="user_id", time="timestamp", last_n=1)
    >>> rec = Recommender("lightgcn").fit(train_df, user="user_id", item="song_id")
    >>> rec.evaluate(test_df, user="user_id", item="song_id")
    """
    import pandas as pd

    if (test_fraction is None) == (last_n is None):
        raise ValueError("give exactly one of test_fraction and last_n")
    if test_fraction is not None and not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if last_n is not None and (isinstance(last_n, bool) or not isinstance(last_n, (int, np.integer)) or last_n < 0):
        raise ValueError(f"last_n must be an integer >= 0, got {last_n!r}")
    missing = [c for c in (user, time) if c not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the DataFrame (it has {list(frame.columns)})")
    times = frame[time]
    if times.isna().any():
        raise ValueError(f"{int(times.isna().sum())} of {len(frame)} rows have no {time!r} (NaN); "
                         "drop or fill them before splitting by time")
    position = np.arange(len(frame))
    users = pd.factorize(frame[user])[0]
    # sort keys last to first: user, then time, then the row's position (a stable tie-break)
    order = np.lexsort((position, times.rank(method="dense").to_numpy(), users))   # rank: any sortable dtype
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, len(frame)])
    rank = position - np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)
    held = np.floor(test_fraction * size + 0.5).astype(np.int64) if last_n is None else np.full(len(frame), last_n)
    held = np.minimum(held, size - 1)
    is_test = np.empty(len(frame), dtype=bool)
    is_test[order] = rank >= size - held
    return frame[~is_test], frame[is_test]


def planetoid_random_split(y: torch.Tensor, seed: int, num_classes: int | None = None, per_class: int = 20,
                           num_valid: int = 500, num_test: int = 1000) -> dict[str, torch.Tensor]:
    """Boolean masks ``{"train", "valid", "test"}`` of a seeded random Planetoid-style split.

    Per class, ``per_class`` nodes are drawn for train; the remaining nodes of all classes
    are shuffled together and the first ``num_valid`` go to valid, the next ``num_test`` to
    test (the split of Shchur et al. and of the DAGNN/APPNP official code). The same seed
    gives the same split on any machine (a private ``torch.Generator``).
    """
    y = y.detach().cpu().long()
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    generator = torch.Generator().manual_seed(int(seed))
    train, rest = [], []
    for label in range(num_classes):
        nodes = (y == label).nonzero().view(-1)
        if nodes.numel() < per_class:
            raise ValueError(f"class {label} has {nodes.numel()} nodes, fewer than {per_class} per class for train")
        nodes = nodes[torch.randperm(nodes.numel(), generator=generator)]
        train.append(nodes[:per_class])
        rest.append(nodes[per_class:])
    rest = torch.cat(rest)
    if rest.numel() < num_valid + num_test:
        raise ValueError(f"only {rest.numel()} nodes left after train, fewer than {num_valid} valid + {num_test} test")
    rest = rest[torch.randperm(rest.numel(), generator=generator)]
    parts = {"train": torch.cat(train), "valid": rest[:num_valid], "test": rest[num_valid:num_valid + num_test]}
    masks = {}
    for name, index in parts.items():
        mask = torch.zeros(y.numel(), dtype=torch.bool)
        mask[index] = True
        masks[name] = mask
    return masks


def stratified_split(y: torch.Tensor, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, torch.Tensor]:
    """Boolean masks ``{"train", "valid", "test"}``: per class, a seeded shuffle of its labelled
    nodes, the first ``round(f_train * n_c)`` to train, the next ``round(f_valid * n_c)`` to valid,
    then ``round(f_test * n_c)`` to test (all the rest when the fractions sum to 1). Nodes with
    ``y < 0`` (unlabelled) are in no split. Private ``torch.Generator``: same seed, same split.
    """
    y = y.detach().cpu().long().view(-1)
    f_train, f_valid, f_test = (float(f) for f in fractions)
    generator = torch.Generator().manual_seed(int(seed))
    masks = {name: torch.zeros(y.numel(), dtype=torch.bool) for name in ("train", "valid", "test")}
    for label in range(int(y.max()) + 1 if y.numel() else 0):
        nodes = (y == label).nonzero().view(-1)
        nodes = nodes[torch.randperm(nodes.numel(), generator=generator)]
        n_train, n_valid = round(f_train * nodes.numel()), round(f_valid * nodes.numel())
        rest = nodes.numel() - n_train - n_valid
        n_test = rest if abs(f_train + f_valid + f_test - 1.0) < 1e-9 else min(rest, round(f_test * nodes.numel()))
        masks["train"][nodes[:n_train]] = True
        masks["valid"][nodes[n_train:n_train + n_valid]] = True
        masks["test"][nodes[n_train + n_valid:n_train + n_valid + n_test]] = True
    for name, mask in masks.items():
        if not bool(mask.any()):
            raise ValueError(f"split {name!r} is empty: too few labelled nodes for fractions {tuple(fractions)}")
    return masks
