"""UltraGCN: constraint coefficients, loss against hand-computed values, negative sharing, registry, CLI."""
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec.config import SamplingConfig, TrainConfig, build_run_config
from graphrec.kernels.sampling import _CHUNK, sample_negatives
from graphrec.models import UltraGCN, UltraGCNConfig, create_model
from graphrec.models.ultragcn import constraint_coefficients
from graphrec.sampling import BPRSampler

# u0: i0 i1 | u1: i1 i2 | u2: i1 i2 i3   (user degrees 2 2 3, item degrees 1 3 2 1)
TINY = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]], dtype=np.float32))
USERS = [[0.1, 0.2], [0.3, -0.1], [-0.2, 0.4]]
ITEMS = [[0.5, 0.1], [-0.3, 0.2], [0.2, 0.2], [0.0, -0.4]]
HYPER = dict(w1=0.1, w2=1.0, w3=0.2, w4=0.5, negative_weight=3.0, item_constraint_weight=0.7, l2_weight=0.05,
             num_item_neighbors=2)


def beta(u, i):
    """Eq. 9 by hand: 1/d_u * sqrt((d_u + 1) / (d_i + 1))."""
    d_user, d_item = [2, 2, 3], [1, 3, 2, 1]
    return 1 / d_user[u] * math.sqrt((d_user[u] + 1) / (d_item[i] + 1))


# Official item-item weights, top 2, worked out by hand from G = R^T R and g = [2, 7, 5, 3]:
# w_ij = G_ij / g_i * sqrt((g_i + 1) / (g_j + 1)).
OMEGA = {0: [(0, 1 / 2), (1, 1 / 2 * math.sqrt(3 / 8))],
         1: [(1, 3 / 7), (2, 2 / 7 * math.sqrt(8 / 6))],
         2: [(2, 2 / 5), (1, 2 / 5 * math.sqrt(6 / 8))],
         3: [(3, 1 / 3), (2, 1 / 3 * math.sqrt(4 / 6))]}


def tiny_model(**overrides):
    model = UltraGCN(3, 4, embedding_dim=2, **{**HYPER, **overrides})
    model.prepare(TINY)
    model.double()
    with torch.no_grad():
        model.user_embedding.weight.copy_(torch.tensor(USERS, dtype=torch.float64))
        model.item_embedding.weight.copy_(torch.tensor(ITEMS, dtype=torch.float64))
    return model


def dot(u, i):
    return sum(a * b for a, b in zip(USERS[u], ITEMS[i]))


def neg_log_sigmoid(x):
    return math.log(1 + math.exp(-x))


def loss_by_hand(users, pos, negatives_of_row, h=HYPER):
    objective, item_term = 0.0, 0.0
    for row, (u, i) in enumerate(zip(users, pos)):
        objective += (h["w1"] + h["w2"] * beta(u, i)) * neg_log_sigmoid(dot(u, i))
        negs = negatives_of_row(row)
        objective += h["negative_weight"] * sum(
            (h["w3"] + h["w4"] * beta(u, j)) * neg_log_sigmoid(-dot(u, j)) for j in negs) / len(negs)
        item_term += sum(w * neg_log_sigmoid(dot(u, j)) for j, w in OMEGA[i])
    norm = 0.5 * sum(x * x for row in USERS + ITEMS for x in row)
    return objective + h["item_constraint_weight"] * item_term + h["l2_weight"] * norm


def test_constraint_coefficients_by_hand():
    beta_user, beta_item = constraint_coefficients(TINY)
    np.testing.assert_allclose(beta_user, [math.sqrt(3) / 2, math.sqrt(3) / 2, 2 / 3])
    np.testing.assert_allclose(beta_item, [1 / math.sqrt(2), 1 / 2, 1 / math.sqrt(3), 1 / math.sqrt(2)])
    for u in range(3):
        for i in range(4):
            assert beta_user[u] * beta_item[i] == pytest.approx(beta(u, i))
    assert beta(2, 1) == pytest.approx(1 / 3)
    empty = sp.csr_matrix(np.array([[1, 0], [0, 0]], dtype=np.float32))
    assert constraint_coefficients(empty)[0].tolist() == [math.sqrt(2), 0.0]  # no inf for an idle user


def test_prepare_builds_beta_and_item_neighbors():
    model = tiny_model()
    for i, expected in OMEGA.items():
        assert model.item_neighbors[i].tolist() == [j for j, _ in expected]
        np.testing.assert_allclose(model.item_neighbor_weights[i].numpy(), [w for _, w in expected], rtol=1e-6)
    assert "beta_user" not in model.state_dict()  # derived data, rebuilt by prepare()
    with pytest.raises(ValueError, match="shape"):
        UltraGCN(3, 5).prepare(TINY)
    with pytest.raises(RuntimeError, match="prepare"):
        UltraGCN(3, 4).recommendation_loss(torch.tensor([0]), torch.tensor([0]), torch.tensor([[1]]))


def test_per_positive_loss_equals_hand_computed_value():
    model = tiny_model()
    users, pos = [2, 0, 1], [1, 0, 2]
    negs = [[0, 3], [2, 3], [0, 0]]
    loss = model.recommendation_loss(torch.tensor(users), torch.tensor(pos), torch.tensor(negs))
    assert float(loss) == pytest.approx(loss_by_hand(users, pos, lambda row: negs[row]), rel=1e-7)  # float32 weights


def test_shared_negative_loss_equals_hand_computed_value():
    model = tiny_model()
    users, pos, shared = [2, 0, 1], [1, 0, 2], [3, 2, 0]
    loss = model.recommendation_loss(torch.tensor(users), torch.tensor(pos), torch.tensor([shared]),
                                     shared_negatives=True)
    assert float(loss) == pytest.approx(loss_by_hand(users, pos, lambda row: shared), rel=1e-7)


@pytest.mark.parametrize("shared,num_negatives,path", [
    (False, 1, "auto"), (False, 3, "auto"), (False, 3, "fused"), (False, 3, "matmul"), (False, 1, "gather"),
    (False, 3, "gather"), (True, 3, "auto")])
def test_fused_loss_and_gradients_equal_the_reference_terms(shared, num_negatives, path):
    # Every way of scoring per-positive negatives (the CPU kernel, score-every-item matmul, the
    # (B, N, d) gather) gives the reference's loss and gradients; duplicates within a row count twice.
    model = tiny_model()
    model.negative_scoring = path
    if not shared:
        assert model._negative_path(torch.zeros(1, num_negatives, dtype=torch.long)) == (
            "fused" if path == "auto" else path)
    users, pos = torch.tensor([2, 0, 1, 2]), torch.tensor([1, 0, 2, 3])
    negs = torch.tensor([[0, 3, 1], [2, 3, 3], [0, 0, 1], [1, 2, 0]])[:, :num_negatives]
    negs = negs[:1] if shared else negs
    fused = model.recommendation_loss(users, pos, negs, shared_negatives=shared)
    fused.backward()
    fused_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    reference = (model.objective_loss(users, pos, negs, shared_negatives=shared)
                 + model.item_constraint_weight * model.item_constraint_loss(users, pos)
                 + model.l2_weight * model.norm_loss())
    reference.backward()
    assert float(fused) == pytest.approx(float(reference), rel=1e-12)
    for got, want in zip(fused_grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(got, want)


def test_each_weight_moves_the_loss_as_the_formula_says():
    users, pos, negs = torch.tensor([2]), torch.tensor([1]), torch.tensor([[3]])
    base = float(tiny_model().recommendation_loss(users, pos, negs))
    more_pos = float(tiny_model(w1=1.1).recommendation_loss(users, pos, negs))
    assert more_pos - base == pytest.approx(1.0 * neg_log_sigmoid(dot(2, 1)))
    more_neg = float(tiny_model(negative_weight=4.0).recommendation_loss(users, pos, negs))
    assert more_neg - base == pytest.approx((0.2 + 0.5 * beta(2, 3)) * neg_log_sigmoid(-dot(2, 3)))


def test_embeddings_and_forward_are_plain_inner_products():
    model = tiny_model()
    users, items = model.embeddings()
    assert users.shape == (3, 2) and items.shape == (4, 2) and not users.requires_grad
    assert float(model(torch.tensor([1]), torch.tensor([2]))) == pytest.approx(dot(1, 2))


def test_registry_and_official_per_dataset_defaults():
    model = create_model("ultragcn", num_users=3, num_items=4, embedding_dim=8)
    assert isinstance(model, UltraGCN) and model.user_embedding.weight.shape == (3, 8)
    gowalla = build_run_config("ultragcn", "gowalla")
    t, m, s = gowalla.train, gowalla.model_config, gowalla.sampling
    assert (t.lr, t.batch_size, s.num_negatives, s.user_sampling) == (1e-4, 512, 1500, "interaction")
    assert (m.negative_weight, m.w1, m.w2, m.w3, m.w4) == (300, 1e-6, 1, 1e-6, 1)
    assert (m.item_constraint_weight, m.l2_weight, m.init_std, m.num_item_neighbors) == (5e-4, 1e-4, 1e-4, 10)
    assert m.item_weighting == "official" and s.shared_negatives is False
    yelp = build_run_config("ultragcn", "yelp2018")
    assert (yelp.train.lr, yelp.train.batch_size, yelp.sampling.num_negatives) == (1e-3, 1024, 800)
    assert (yelp.model_config.negative_weight, yelp.model_config.w1, yelp.model_config.w3) == (300, 1e-8, 1e-8)
    amazon = build_run_config("ultragcn", "amazon-book")
    assert (amazon.train.lr, amazon.train.batch_size, amazon.sampling.num_negatives) == (1e-3, 1024, 500)
    a = amazon.model_config
    assert (a.negative_weight, a.w1, a.w2, a.w3, a.w4, a.item_constraint_weight) == (500, 1e-8, 1, 1, 1e-8, 2.75)
    with pytest.raises(ValueError, match="item_weighting"):
        UltraGCNConfig(item_weighting="cosine")


# ------------------------------------------------------------------ negative sharing in the sampler
def _train(seed=0, n_users=300, n_items=50, density=0.15):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[:, 0] = True
    return sp.csr_matrix(dense.astype(np.float32))


def test_shared_negative_batches_are_valid_and_reproducible():
    train = _train()
    plain = BPRSampler(train, batch_size=64, num_negatives=7, user_sampling="interaction", seed=3)
    shared = BPRSampler(train, batch_size=64, num_negatives=7, user_sampling="interaction", seed=3,
                        shared_negatives=True)
    batches = list(shared.loader(2))
    assert len(batches) == len(shared) == -(-train.nnz // 64)
    for batch, reference in zip(batches, plain.loader(2)):
        assert batch.shared_negatives and not reference.shared_negatives
        assert batch.neg_items.shape == (1, 7) and batch.neg_items.dtype == torch.int64
        assert 0 <= int(batch.neg_items.min()) and int(batch.neg_items.max()) < train.shape[1]
        assert torch.equal(batch.users, reference.users) and torch.equal(batch.pos_items, reference.pos_items)
        assert batch.to("cpu").shared_negatives
    again = list(shared.loader(2, start=5))  # resuming mid-epoch sees the same batches
    assert all(torch.equal(a.neg_items, b.neg_items) for a, b in zip(again, batches[5:]))
    assert not torch.equal(batches[0].neg_items, next(iter(shared.loader(3))).neg_items)


def test_shared_negatives_are_uniform_over_all_items_positives_included():
    # Documented semantics: one set per batch, uniform over every item (as the official
    # UltraGCN sampler with sampling_sift_pos=no), so a batch's own positives can appear.
    train = _train(n_items=10, density=0.5)
    sampler = BPRSampler(train, batch_size=32, num_negatives=50, seed=0, shared_negatives=True)
    counts = np.zeros(10)
    hit_positive = False
    for batch in sampler.loader(0):
        drawn = batch.neg_items.numpy().ravel()
        counts += np.bincount(drawn, minlength=10)
        positives = train[batch.users.numpy()].toarray().any(0)
        hit_positive |= bool(positives[drawn].any())
    assert hit_positive
    expected = counts.sum() / 10
    assert np.abs(counts - expected).max() < 5 * math.sqrt(expected)


def _old_whole_epoch(sampler, epoch):
    """The sampler's draws as the foundation wrote them: everything for the epoch at once."""
    rng = np.random.default_rng(np.random.SeedSequence([sampler.seed, epoch]))
    n = sampler.samples_per_epoch
    if sampler.user_sampling == "uniform":
        users = sampler.active_users[rng.integers(0, sampler.active_users.shape[0], n)]
        offsets = (rng.random(n) * sampler.degree[users]).astype(np.int64)
        pos = sampler.indices[sampler.indptr[users] + offsets]
    else:
        order = rng.permutation(n)
        users = np.repeat(np.arange(sampler.num_users), sampler.degree)[order]
        pos = sampler.indices[order]
    neg = np.empty((n, sampler.num_negatives), dtype=np.int64)
    seeds = rng.integers(0, 2**31 - 1, -(-n // _CHUNK))
    sample_negatives(sampler.indptr, sampler.indices, users, sampler.num_items, sampler.num_negatives, seeds, neg)
    return users, pos, neg


@pytest.mark.parametrize("user_sampling", ["uniform", "interaction"])
@pytest.mark.parametrize("window_chunks", [None, 1])
def test_per_positive_batches_unchanged_when_drawn_window_by_window(user_sampling, window_chunks, monkeypatch):
    # Many negatives per positive are drawn a window at a time; the draws must be the
    # foundation's whole-epoch draws exactly (LightGCN's batches do not change).
    train = _train(n_users=2000, n_items=60, density=0.1)
    assert train.nnz > 3 * _CHUNK
    if window_chunks:
        monkeypatch.setattr(BPRSampler, "_window", lambda self: window_chunks * _CHUNK)
    sampler = BPRSampler(train, batch_size=1000, num_negatives=3, user_sampling=user_sampling, seed=5)
    users, pos, neg = _old_whole_epoch(sampler, 1)
    batches = list(sampler.loader(1))
    np.testing.assert_array_equal(torch.cat([b.users for b in batches]).numpy(), users)
    np.testing.assert_array_equal(torch.cat([b.pos_items for b in batches]).numpy(), pos)
    np.testing.assert_array_equal(torch.cat([b.neg_items for b in batches]).numpy(), neg)
    np.testing.assert_array_equal(sampler.sample_epoch(1)[2], neg)
    resumed = torch.cat([b.neg_items for b in sampler.loader(1, start=7)]).numpy()
    np.testing.assert_array_equal(resumed, neg[7 * 1000:])
    assert not batches[0].shared_negatives


def test_many_negatives_are_drawn_in_bounded_windows():
    sampler = BPRSampler(_train(), batch_size=512, num_negatives=1500)
    assert sampler._window() * 1500 <= 2 * (1 << 24)
    assert sampler._window() >= 512 + _CHUNK  # a batch always fits in one window


def test_sampling_config_passes_shared_negatives_to_the_sampler():
    from graphrec.data.interactions import InteractionGraph
    from graphrec.train.recommendation import RecommendationTask

    assert SamplingConfig().shared_negatives is False
    graph = InteractionGraph(3, 4, TINY, test=TINY)
    task = RecommendationTask(graph, TrainConfig(protocol="paper"),
                              SamplingConfig(shared_negatives=True, num_negatives=2))
    assert task.sampler.shared_negatives
    batch = next(iter(task.train_batches(0)))
    assert batch.shared_negatives and batch.neg_items.shape == (1, 2)


@pytest.mark.parametrize("shared", [False, True])
def test_training_learns_the_block_structure(shared):
    # Two user groups, each interacting with its own half of the items: after training,
    # each user's top unseen items must come from its own block (random: 9 of 24).
    torch.manual_seed(0)
    n_users, n_items = 40, 30
    dense = np.zeros((n_users, n_items), dtype=np.float32)
    rng = np.random.default_rng(0)
    for u in range(n_users):
        block = np.arange(15) if u < 20 else np.arange(15, 30)
        dense[u, rng.choice(block, 6, replace=False)] = 1
    train = sp.csr_matrix(dense)
    model = UltraGCN(n_users, n_items, embedding_dim=8, init_std=0.1, negative_weight=10, w3=1.0)
    model.prepare(train)
    sampler = BPRSampler(train, batch_size=32, num_negatives=10, seed=0, shared_negatives=shared)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for epoch in range(60):
        for batch in sampler.loader(epoch):
            loss = model.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    users, items = model.embeddings()
    scores = (users @ items.T).numpy()
    scores[dense > 0] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :5]
    own = np.where(np.arange(n_users)[:, None] < 20, top < 15, top >= 15)
    assert own.mean() > 0.75


def test_cli_fit_smoke(data_root, tmp_path, capsys):
    # Gowalla's official settings (1500 negatives per positive); paper protocol for one evaluation.
    from graphrec.cli import main

    run_dir = tmp_path / "run"
    code = main(["fit", "--model", "ultragcn", "--data", "gowalla", "--data-dir", str(data_root), "--epochs", "1",
                 "--protocol", "paper", "--set", "train.max_batches_per_epoch=5", "--run-dir", str(run_dir)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "completed" and out["results"]["test"]["recall@20"] > 0
    config = (run_dir / "config.yaml").read_text()
    assert "ultragcn" in config and "num_negatives: 1500" in config
    assert (run_dir / "best.pt").exists()


def test_checkpoint_round_trip_keeps_only_embeddings():
    model = tiny_model()
    state = model.state_dict()
    assert set(state) == {"user_embedding.weight", "item_embedding.weight"}
    fresh = UltraGCN(3, 4, embedding_dim=2, **HYPER)
    fresh.prepare(TINY)
    fresh.double()
    fresh.load_state_dict(state)
    users, pos, negs = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([[2], [0]])
    assert float(fresh.recommendation_loss(users, pos, negs)) == float(model.recommendation_loss(users, pos, negs))


def test_prepare_keeps_the_torch_thread_setting():
    # numba's OpenMP pool start-up (the first parallel kernel call of a process) resets
    # torch's thread count; train.num_threads must survive prepare(). A fresh process, so
    # that no earlier test has started the pool.
    import subprocess
    import sys

    code = ("import numpy as np, scipy.sparse as sp, torch\n"
            "from graphrec.models import UltraGCN\n"
            "torch.set_num_threads(1)\n"
            "UltraGCN(3, 4).prepare(sp.csr_matrix(np.eye(3, 4, dtype=np.float32)))\n"
            "print(torch.get_num_threads())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1"


def test_pair_score_kernel_equals_gathered_dot_products_and_their_gradients():
    from graphrec.kernels.pair_scores import pair_scores, pair_scores_item_grad, pair_scores_user_grad

    generator = torch.Generator().manual_seed(0)
    users, items = torch.randn(5, 8, generator=generator), torch.randn(7, 8, generator=generator)
    pairs = torch.randint(0, 7, (5, 11), generator=generator)
    pairs[0, :3] = 6  # a repeated item must collect every contribution
    grad = torch.randn(5, 11, generator=generator)
    u, w = users.clone().requires_grad_(), items.clone().requires_grad_()
    reference = (w[pairs] * u.unsqueeze(1)).sum(-1)
    reference.backward(grad)
    torch.testing.assert_close(torch.from_numpy(pair_scores(users.numpy(), items.numpy(), pairs.numpy())),
                               reference.detach())
    torch.testing.assert_close(torch.from_numpy(pair_scores_user_grad(grad.numpy(), items.numpy(), pairs.numpy())),
                               u.grad)
    for parts in (1, 3, 7, 10):  # thread-owned item ranges, including more parts than items
        got = pair_scores_item_grad(grad.numpy(), users.numpy(), pairs.numpy(), 7, parts)
        torch.testing.assert_close(torch.from_numpy(got), w.grad)
