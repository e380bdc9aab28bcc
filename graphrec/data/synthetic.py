"""Seeded synthetic implicit feedback with realistic skew, at any size (the scaling benchmark's data).

:func:`synthetic_interactions` returns the :class:`~graphrec.data.interactions.InteractionGraph` the
Gowalla loader returns (binary users x items CSR ``train`` and ``test``, sorted rows, contiguous ids),
so every model, sampler, evaluator and the Trainer take it unchanged.

The model of the data:

- **Sizes** scale with the number of interactions ``n``: ``users = n / interactions_per_user`` and
  ``items = n / interactions_per_item``. The defaults are Gowalla's ratios (29,858 users, 40,981 items,
  1,027,370 interactions: 34.4 per user, 25.07 per item); Yelp2018's are 49.3 and 41.0.
- **User activity** is lognormal: user ``u`` gets a weight ``exp(sigma * z_u)``, ``z_u ~ N(0, 1)``,
  and ``2 + round(weight share x (n - 2 users))`` interactions, so every user has at least 2 (one to
  train on, one to test) and the total is exactly ``n``. ``activity_sigma`` is the standard deviation
  of log(activity): 0.73 on Gowalla, 0.61 on Yelp2018 (both 10-core filtered); default 0.75. A user
  is capped at half the items.
- **Item popularity** is Zipf: the item of popularity rank ``r`` (1-based) is drawn with probability
  ``r^-a / H(items, a)``; ``zipf_exponent`` ``a`` defaults to 1.0 (raw logs: web, music, retail).
  Item ids are a seeded permutation of the ranks, so popularity is not ordered by id. The top 1% of
  items would hold ``H(items / 100, a) / H(items, a)`` of independent draws (``H`` the generalised
  harmonic number: 0.59 for ``a = 1`` at 40k items, 0.70 at 2.5M); after de-duplication (below) they hold
  0.41 of the interactions at 250k interactions and 0.50 at 1M for ``a = 1``, 0.13-0.15 for ``a = 0.6``.
  The 10-core filtered benchmarks are flat like the latter: Gowalla's and Yelp2018's top 1% hold 13% and
  11% (fitted rank-frequency slope about 0.6), so ``zipf_exponent=0.6`` imitates them and the default
  1.0 is the harder, more skewed case.
- **No repeated (user, item) pair.** Each user draws its items by popularity; repeats are dropped and
  the missing ones redrawn, ``zipf_rounds`` times by popularity, then uniformly over items (a heavy user
  who already holds the popular items would otherwise redraw them for ever). The uniform top-up touches
  a small fraction of the interactions (the heaviest users' tails) and flattens the skew a little.
- **Split**: per user, a seeded random ``test_fraction`` of its items (rounded, at least 1, and at
  least 1 left to train) goes to ``test``, the rest to ``train`` (Gowalla's test holds 21%).

Memory: every array is int32 except the (user, item) pair keys, int64 while pairs are de-duplicated.
The numpy allocations peak at about 37 bytes per interaction (tracemalloc, at 250k and 1M interactions:
the same ratio), so about 2.4 GB for 64M interactions over the interpreter's own footprint; the result
holds 8 bytes per interaction (float32 ones and int32 item ids in two CSRs). Time grows as ``n log n``
(two sorts of ``n`` keys): about 1.2 s per million interactions on one core at 1M, so an estimated
two minutes for 64M.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graphrec.data.interactions import InteractionGraph

#: Gowalla (LightGCN split): 1,027,370 interactions over 29,858 users and 40,981 items.
GOWALLA_INTERACTIONS_PER_USER = 1_027_370 / 29_858
GOWALLA_INTERACTIONS_PER_ITEM = 1_027_370 / 40_981
#: Draws per chunk: bounds the float64 / int64 temporaries of the popularity draw.
_DRAW_CHUNK = 1 << 22


def synthetic_interactions(
    num_interactions: int,
    *,
    zipf_exponent: float = 1.0,
    activity_sigma: float = 0.75,
    interactions_per_user: float = GOWALLA_INTERACTIONS_PER_USER,
    interactions_per_item: float = GOWALLA_INTERACTIONS_PER_ITEM,
    num_users: int | None = None,
    num_items: int | None = None,
    test_fraction: float = 0.2,
    zipf_rounds: int = 6,
    seed: int = 0,
) -> InteractionGraph:
    """Exactly ``num_interactions`` distinct (user, item) pairs, split per user into train and test.

    See the module docstring for the model. ``num_users``/``num_items`` override the sizes derived from
    the ratios. The same arguments give the same graph.
    """
    n = int(num_interactions)
    users = int(num_users) if num_users is not None else max(1, round(n / interactions_per_user))
    items = int(num_items) if num_items is not None else max(2, round(n / interactions_per_item))
    if zipf_exponent < 0 or activity_sigma < 0:
        raise ValueError("zipf_exponent and activity_sigma must be >= 0")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    cap = items // 2
    if n < 2 * users or n > users * cap:
        raise ValueError(f"{n} interactions cannot give {users} users between 2 and {cap} (half of {items} "
                         "items) interactions each: change the size or the ratios")
    rng = np.random.default_rng(np.random.SeedSequence([seed, n, users, items]))
    degree = _user_degrees(rng, n, users, cap, activity_sigma)
    keys = _distinct_pairs(rng, degree, items, zipf_exponent, zipf_rounds)
    user_of, item_of = (keys // items).astype(np.int32), (keys % items).astype(np.int32)
    del keys
    is_test, test_count = _per_user_test_mask(rng, user_of, degree, test_fraction)
    del user_of
    train = _csr(item_of[~is_test], degree - test_count, users, items)
    test = _csr(item_of[is_test], test_count, users, items)
    return InteractionGraph(users, items, train, test=test, name=f"synthetic-{n}")


def _user_degrees(rng, n: int, users: int, cap: int, sigma: float) -> np.ndarray:
    """Lognormal activity shares of ``n``, every user in ``[2, cap]``, summing to ``n`` exactly."""
    weight = np.exp(sigma * rng.standard_normal(users))
    degree = np.full(users, 2, dtype=np.int64)
    remaining = n - 2 * users
    while remaining > 0:
        room = cap - degree
        share = np.where(room > 0, weight, 0.0)
        want = share / share.sum() * remaining
        extra = np.minimum(np.floor(want).astype(np.int64), room)
        # Hand the rounding remainder to the users with the largest fractional parts (ties: lower index).
        short = remaining - int(extra.sum())
        if short > 0:
            fraction = np.where(room - extra > 0, want - np.floor(want), -1.0)
            lucky = np.argsort(-fraction, kind="stable")[:short]
            lucky = lucky[fraction[lucky] >= 0]
            extra[lucky] += 1
        degree += extra
        remaining = n - int(degree.sum())
    return degree


def _distinct_pairs(rng, degree: np.ndarray, items: int, a: float, zipf_rounds: int) -> np.ndarray:
    """Sorted unique ``user * items + item`` keys, ``degree[u]`` of them for user ``u``."""
    rank_weight = np.arange(1, items + 1, dtype=np.float64) ** -a
    cdf = np.cumsum(rank_weight)
    cdf /= cdf[-1]
    del rank_weight
    item_of_rank = rng.permutation(items).astype(np.int32)
    accepted: list[np.ndarray] = []
    missing = degree.copy()
    round_number = 0
    while missing.any():
        by_popularity = round_number < zipf_rounds
        candidates = _draw_keys(rng, missing, items, cdf if by_popularity else None, item_of_rank)
        candidates.sort()
        candidates = candidates[np.r_[True, candidates[1:] != candidates[:-1]]]
        for previous in accepted:
            candidates = candidates[~_contains(previous, candidates)]
        accepted.append(candidates)
        missing -= np.bincount(candidates // items, minlength=degree.shape[0])
        round_number += 1
    keys = np.concatenate(accepted) if len(accepted) > 1 else accepted[0]
    del accepted
    keys.sort()
    return keys


def _draw_keys(rng, count: np.ndarray, items: int, cdf: np.ndarray | None, item_of_rank) -> np.ndarray:
    """``count[u]`` item draws for every user ``u`` (by popularity, or uniform when ``cdf`` is None)."""
    owners = np.repeat(np.arange(count.shape[0], dtype=np.int32), count)
    keys = np.empty(owners.shape[0], dtype=np.int64)
    for start in range(0, owners.shape[0], _DRAW_CHUNK):
        stop = min(start + _DRAW_CHUNK, owners.shape[0])
        if cdf is None:
            item = rng.integers(0, items, stop - start, dtype=np.int64)
        else:
            rank = np.searchsorted(cdf, rng.random(stop - start), side="right")
            item = item_of_rank[np.minimum(rank, items - 1)].astype(np.int64)
        keys[start:stop] = owners[start:stop].astype(np.int64) * items + item
    return keys


def _contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    position = np.searchsorted(sorted_keys, queries)
    found = position < sorted_keys.shape[0]
    found[found] = sorted_keys[position[found]] == queries[found]
    return found


def _per_user_test_mask(rng, user_of: np.ndarray, degree: np.ndarray, fraction: float):
    """(mask, per-user count) of a seeded random ``round(fraction * degree)`` of each user's rows
    (within ``[1, degree - 1]``).

    ``user_of`` is sorted (rows grouped by user): ranking the rows within each user by a random key
    is one argsort of ``user + U(0, 1)``.
    """
    held = np.clip(np.floor(fraction * degree + 0.5), 1, degree - 1).astype(np.int32)
    order = np.argsort(user_of + rng.random(user_of.shape[0]))
    start = np.cumsum(degree) - degree
    rank = np.empty(user_of.shape[0], dtype=np.int32)
    rank[order] = np.arange(user_of.shape[0], dtype=np.int32) - np.repeat(start, degree).astype(np.int32)
    del order
    return rank < held[user_of], held


def _csr(indices: np.ndarray, row_lengths: np.ndarray, rows: int, columns: int) -> sp.csr_matrix:
    """Binary CSR from column indices already grouped by row and sorted within each row."""
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(row_lengths, out=indptr[1:])
    index_dtype = np.int32 if max(indptr[-1], columns) < np.iinfo(np.int32).max else np.int64
    matrix = sp.csr_matrix((np.ones(indices.shape[0], dtype=np.float32), indices.astype(index_dtype, copy=False),
                            indptr.astype(index_dtype)), shape=(rows, columns))
    matrix.has_sorted_indices = True
    return matrix
