"""graphrec.data.splits.per_user_split."""
import numpy as np
import pytest

from graphrec.data import per_user_split


def _counts(users, parts, user, num_parts=3):
    return np.bincount(parts[users == user], minlength=num_parts).tolist()


def test_fractions_per_user_hand_checked():
    # Users interleaved (not sorted) to check the result is aligned with the input order.
    sizes = {0: 10, 1: 5, 2: 1, 3: 3, 4: 4}
    users = np.concatenate([np.full(n, u) for u, n in sizes.items()])
    users = users[np.random.default_rng(1).permutation(users.size)]
    parts = per_user_split(users, (0.1, 0.2), seed=3)
    assert parts.dtype == np.int8
    assert parts.shape == users.shape
    # size n -> valid floor(0.1 n + 0.5), test floor(0.2 n + 0.5), train the rest:
    assert _counts(users, parts, 0) == [7, 1, 2]  # 10: 0.1*10=1, 0.2*10=2
    assert _counts(users, parts, 1) == [3, 1, 1]  # 5: 0.5 -> 1, 1.0 -> 1
    assert _counts(users, parts, 2) == [1, 0, 0]  # 1: 0.1 -> 0, 0.2 -> 0
    assert _counts(users, parts, 3) == [2, 0, 1]  # 3: 0.3 -> 0, 0.6 -> 1
    assert _counts(users, parts, 4) == [3, 0, 1]  # 4: 0.4 -> 0, 0.8 -> 1


def test_single_fraction():
    users = np.repeat(np.arange(3), 10)
    parts = per_user_split(users, (0.3,), seed=0)
    assert set(parts.tolist()) == {0, 1}
    for u in range(3):
        assert np.bincount(parts[users == u], minlength=2).tolist() == [7, 3]


def test_every_user_keeps_a_train_interaction():
    # Two interactions, 0.45 + 0.45: both parts round to 1 (floor(0.9 + 0.5)), which would
    # leave no train item; the first held-out part gives way first.
    users = np.array([7, 7])
    parts = per_user_split(users, (0.45, 0.45), seed=0)
    assert sorted(parts.tolist()) == [0, 2]
    # Many users of sizes 1..5 with large fractions: never a user without train.
    users = np.repeat(np.arange(50), np.arange(50) % 5 + 1)
    parts = per_user_split(users, (0.4, 0.5), seed=1)
    train_users = np.unique(users[parts == 0])
    assert train_users.tolist() == list(range(50))


def test_same_seed_same_split_different_seed_differs():
    users = np.repeat(np.arange(100), 20)
    a = per_user_split(users, (0.1, 0.2), seed=5)
    b = per_user_split(users, (0.1, 0.2), seed=5)
    c = per_user_split(users, (0.1, 0.2), seed=6)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    # Same per-user counts whatever the seed.
    for u in range(100):
        assert np.bincount(a[users == u], minlength=3).tolist() == np.bincount(c[users == u], minlength=3).tolist()


def test_split_is_a_shuffle_not_positional():
    # Without timestamps the held-out items are not just each user's last rows.
    users = np.repeat(np.arange(200), 10)
    parts = per_user_split(users, (0.2,), seed=0)
    position = np.tile(np.arange(10), 200)
    held_positions = np.bincount(position[parts == 1], minlength=10)
    assert (held_positions > 0).all()


def test_time_split_puts_latest_interactions_last():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 10)
    timestamps = rng.permutation(users.size).astype(np.float64)  # distinct times
    order = rng.permutation(users.size)
    users, timestamps = users[order], timestamps[order]
    parts = per_user_split(users, (0.1, 0.2), seed=0, timestamps=timestamps)
    for u in range(30):
        mine = users == u
        t, p = timestamps[mine], parts[mine]
        ranked = p[np.argsort(t)]  # parts in time order
        # 10 interactions: 7 train, then 1 valid, then the 2 latest in test.
        assert ranked.tolist() == [0] * 7 + [1] + [2, 2]


def test_time_split_ignores_seed_for_distinct_times():
    users = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    timestamps = np.array([5, 1, 9, 3, 40, 10, 30, 20, 50])
    a = per_user_split(users, (0.25,), seed=0, timestamps=timestamps)
    b = per_user_split(users, (0.25,), seed=123, timestamps=timestamps)
    np.testing.assert_array_equal(a, b)
    # user 0: 4 * 0.25 = 1 held out, its latest (t=9); user 1: 5 * 0.25 = 1.25 -> 1, t=50.
    assert a.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 1]


@pytest.mark.parametrize("fractions", [(-0.1, 0.2), (0.5, 0.5), (1.0,), (0.7, 0.4)])
def test_invalid_fractions_error(fractions):
    with pytest.raises(ValueError, match="fractions"):
        per_user_split(np.array([0, 0, 1]), fractions)


def test_node_splits_live_in_graphrec_data_and_keep_their_old_import_path():
    from graphrec.data import planetoid_random_split, stratified_split
    from graphrec.train import node_classification

    assert node_classification.planetoid_random_split is planetoid_random_split
    assert node_classification.stratified_split is stratified_split
    assert planetoid_random_split.__module__ == stratified_split.__module__ == "graphrec.data.splits"


def test_csr_graph_lives_in_graphrec_data():
    import graphrec.data.dgl as dgl_interop
    import graphrec.sampling
    from graphrec.data import CSRGraph, bipartite_adjacency

    assert CSRGraph.__module__ == "graphrec.data.csr" and dgl_interop.CSRGraph is CSRGraph
    assert graphrec.sampling.CSRGraph is CSRGraph and graphrec.sampling.bipartite_adjacency is bipartite_adjacency
