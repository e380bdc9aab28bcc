"""graphrec.sampling.bpr.BPRSampler."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec.sampling import BPRBatch, BPRSampler


def _train(seed=0, n_users=60, n_items=80, density=0.1):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[:, 0] = True          # everyone active ...
    dense[5] = False            # ... except user 5, who has no train items
    return sp.csr_matrix(dense.astype(np.float32))


def _epoch(sampler, epoch):
    batches = list(sampler.loader(epoch))
    return (torch.cat([b.users for b in batches]).numpy(), torch.cat([b.pos_items for b in batches]).numpy(),
            torch.cat([b.neg_items for b in batches]).numpy(), batches)


@pytest.mark.parametrize("user_sampling", ["uniform", "interaction"])
def test_epoch_size_and_batch_shapes(user_sampling):
    train = _train()
    sampler = BPRSampler(train, batch_size=64, num_negatives=3, user_sampling=user_sampling, seed=1)
    users, pos, neg, batches = _epoch(sampler, 0)
    assert sampler.samples_per_epoch == train.nnz
    assert users.size == pos.size == train.nnz and neg.shape == (train.nnz, 3)
    assert len(batches) == len(sampler) == -(-train.nnz // 64)
    assert all(isinstance(b, BPRBatch) and len(b) == 64 for b in batches[:-1])
    assert len(batches[-1]) == train.nnz - 64 * (len(batches) - 1)
    assert batches[0].neg_items.shape == (64, 3)
    assert users.dtype == np.int64 and pos.dtype == np.int64 and neg.dtype == np.int64


@pytest.mark.parametrize("user_sampling", ["uniform", "interaction"])
def test_positives_are_train_pairs_and_negatives_never_are(user_sampling):
    train = _train()
    dense = train.toarray() > 0
    sampler = BPRSampler(train, batch_size=100, num_negatives=2, user_sampling=user_sampling, seed=3)
    users, pos, neg, _ = _epoch(sampler, 4)
    assert dense[users, pos].all()
    assert not dense[users[:, None], neg].any()
    assert neg.min() >= 0 and neg.max() < train.shape[1]
    assert 5 not in set(users.tolist())  # a user without train items is never drawn


def test_interaction_sampling_visits_each_pair_once_in_shuffled_order():
    train = _train()
    sampler = BPRSampler(train, batch_size=50, user_sampling="interaction", seed=0)
    users, pos, _, _ = _epoch(sampler, 0)
    coo = train.tocoo()
    expected = sorted(zip(coo.row.tolist(), coo.col.tolist()))
    assert sorted(zip(users.tolist(), pos.tolist())) == expected
    assert list(zip(users.tolist(), pos.tolist())) != expected  # shuffled, not in CSR order


def test_uniform_sampling_draws_users_uniformly_not_by_degree():
    # Users 0-9 have 1 item each, users 10-19 have 99 (items 1..99), user 20 none: 1000 train
    # pairs. Uniform over *active* users gives users 0-9 half of the draws; sampling
    # interactions would give them 10/1000.
    dense = np.zeros((21, 120), dtype=np.float32)
    dense[np.arange(10), np.arange(10) + 100] = 1
    dense[10:20, 1:100] = 1
    train = sp.csr_matrix(dense)
    uniform = BPRSampler(train, batch_size=1000, user_sampling="uniform", seed=0)
    users, pos, _ = (np.concatenate(parts) for parts in zip(*(uniform.sample_epoch(e) for e in range(10))))
    assert users.size == 10000
    share = np.mean(users < 10)
    assert 0.46 < share < 0.54
    assert set(users.tolist()) == set(range(20))
    # Positives of the high-degree users are uniform over their 99 items (~50 draws each).
    counts = np.bincount(pos[users >= 10], minlength=120)[1:100]
    assert counts.min() > 0.4 * counts.mean() and counts.max() < 1.6 * counts.mean()
    interaction = BPRSampler(train, batch_size=1000, user_sampling="interaction", seed=0)
    assert np.mean(interaction.sample_epoch(0)[0] < 10) == pytest.approx(10 / 1000)


@pytest.mark.parametrize("user_sampling", ["uniform", "interaction"])
def test_resume_from_batch_equals_tail(user_sampling):
    sampler = BPRSampler(_train(), batch_size=37, num_negatives=2, user_sampling=user_sampling, seed=9)
    full = list(sampler.loader(3))
    for start in (0, 1, 5, len(full) - 1):
        tail = list(sampler.loader(3, start=start))
        assert len(tail) == len(full) - start
        for a, b in zip(tail, full[start:]):
            assert torch.equal(a.users, b.users) and torch.equal(a.pos_items, b.pos_items)
            assert torch.equal(a.neg_items, b.neg_items)
    assert list(sampler.loader(3, start=len(full))) == []


@pytest.mark.parametrize("user_sampling", ["uniform", "interaction"])
def test_same_seed_and_epoch_identical_other_epoch_or_seed_differs(user_sampling):
    train = _train()
    a = BPRSampler(train, batch_size=64, user_sampling=user_sampling, seed=11)
    b = BPRSampler(train, batch_size=64, user_sampling=user_sampling, seed=11)
    ua, pa, na, _ = _epoch(a, 2)
    _ = _epoch(b, 0)  # drawing another epoch first changes nothing
    ub, pb, nb, _ = _epoch(b, 2)
    np.testing.assert_array_equal(ua, ub)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(na, nb)
    uc, pc, nc, _ = _epoch(a, 3)
    assert (ua != uc).any() and (na != nc).any()
    c = BPRSampler(train, batch_size=64, user_sampling=user_sampling, seed=12)
    ud, _, nd, _ = _epoch(c, 2)
    assert (ua != ud).any() and (na != nd).any()


def test_user_with_every_item_is_an_error():
    dense = np.zeros((4, 6), dtype=np.float32)
    dense[0, :2] = 1
    dense[2, :] = 1
    with pytest.raises(ValueError) as info:
        BPRSampler(sp.csr_matrix(dense))
    assert "[2]" in str(info.value) and "every item" in str(info.value)


def test_argument_errors():
    train = _train()
    with pytest.raises(ValueError, match="user_sampling"):
        BPRSampler(train, user_sampling="popular")
    with pytest.raises(ValueError):
        BPRSampler(train, batch_size=0)
    with pytest.raises(ValueError):
        BPRSampler(train, num_negatives=0)


def test_batch_to_device():
    batch = next(BPRSampler(_train(), batch_size=8).loader(0))
    moved = batch.to("cpu")
    assert torch.equal(moved.users, batch.users) and moved.neg_items.shape == (8, 1)
