"""graphrec.metrics.ranking: metric arithmetic, the evaluator, and top-k selection."""
from math import log2

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec.metrics import RankingEvaluator, ranking_metrics_from_hits, top_k_items
from graphrec.metrics.ranking import top_k_items_on_device


def _close(got: dict, expected: dict):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_metrics_from_hits_hand_computed():
    # user A: hits [1, 0, 1], 2 targets;  user B: hits [0, 1, 0], 4 targets.
    hits = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.int8)
    got = ranking_metrics_from_hits(hits, np.array([2, 4]), ks=(1, 3))
    # k=1: A: 1 hit -> recall 1/2, precision 1/1, DCG 1/log2(2) = 1, IDCG over min(2,1)=1 pos = 1, hit 1
    #      B: 0 hits -> all 0.
    # k=3: A: 2 hits -> recall 2/2, precision 2/3, DCG 1 + 1/log2(4) = 1.5, IDCG (min(2,3)=2) 1 + 1/log2(3)
    #      B: 1 hit  -> recall 1/4, precision 1/3, DCG 1/log2(3),            IDCG (min(4,3)=3) 1 + 1/log2(3) + 1/2
    ndcg_a3 = 1.5 / (1 + 1 / log2(3))
    ndcg_b3 = (1 / log2(3)) / (1 + 1 / log2(3) + 0.5)
    _close(got, {
        "recall@1": (0.5 + 0) / 2, "precision@1": (1 + 0) / 2, "ndcg@1": (1 + 0) / 2, "hit@1": (1 + 0) / 2,
        "recall@3": (1 + 0.25) / 2, "precision@3": (2 / 3 + 1 / 3) / 2,
        "ndcg@3": (ndcg_a3 + ndcg_b3) / 2, "hit@3": 1.0,
    })
    assert ndcg_a3 == pytest.approx(0.919721, abs=1e-6) and ndcg_b3 == pytest.approx(0.296082, abs=1e-6)


def test_metrics_perfect_and_empty():
    # 3 targets, all in the top 3 of a top-5 list: IDCG over 3 positions equals DCG -> ndcg 1 at k=5;
    # precision@5 = 3/5, recall = 1.
    got = ranking_metrics_from_hits(np.array([[1, 1, 1, 0, 0]]), np.array([3]), ks=(5,))
    _close(got, {"recall@5": 1.0, "precision@5": 0.6, "ndcg@5": 1.0, "hit@5": 1.0})
    empty = ranking_metrics_from_hits(np.zeros((0, 10)), np.zeros(0), ks=(5, 10))
    assert empty == {f"{m}@{k}": 0.0 for k in (5, 10) for m in ("recall", "precision", "ndcg", "hit")}


def _tiny():
    # 6 items with 1-d embeddings 6..1: user +1 ranks items 0,1,2,...; user -1 ranks 5,4,3,...
    item_emb = torch.tensor([[6.0], [5.0], [4.0], [3.0], [2.0], [1.0]])
    user_emb = torch.tensor([[1.0], [-1.0], [1.0]])
    exclude = sp.csr_matrix(np.array([
        [1, 1, 0, 0, 0, 0],   # user 0 trained on items 0, 1
        [0, 0, 0, 0, 0, 1],   # user 1 trained on item 5
        [0, 0, 0, 0, 0, 0],   # user 2 trained on nothing
    ], dtype=np.float32))
    targets = sp.csr_matrix(np.array([
        [0, 0, 1, 0, 0, 1],   # user 0: targets 2, 5
        [1, 0, 0, 1, 0, 0],   # user 1: targets 0, 3
        [0, 0, 0, 0, 0, 0],   # user 2: no targets -> ignored
    ], dtype=np.float32))
    return user_emb, item_emb, exclude, targets


@pytest.mark.parametrize("chunk_size", [1, 2, 1024])
def test_evaluator_tiny_hand_computed(chunk_size):
    user_emb, item_emb, exclude, targets = _tiny()
    evaluator = RankingEvaluator(exclude, targets, ks=(4, 1, 2, 2), chunk_size=chunk_size)
    assert evaluator.ks == (1, 2, 4)
    assert evaluator.users.tolist() == [0, 1]
    got = evaluator.evaluate(user_emb, item_emb)
    # Ranked lists with train items removed: user 0 -> [2, 3, 4, 5], user 1 -> [4, 3, 2, 1, 0].
    # k=1: u0 [2] hit (1 of 2 targets);  u1 [4] miss.
    # k=2: u0 [2,3] hits [1,0]: recall 1/2, DCG 1,          IDCG 1 + 1/log2(3)
    #      u1 [4,3] hits [0,1]: recall 1/2, DCG 1/log2(3),  IDCG 1 + 1/log2(3)
    # k=4: u0 [2,3,4,5] hits [1,0,0,1]: recall 1,   DCG 1 + 1/log2(5), IDCG 1 + 1/log2(3)
    #      u1 [4,3,2,1] hits [0,1,0,0]: recall 1/2, DCG 1/log2(3),   IDCG 1 + 1/log2(3)  (item 0 is 5th)
    idcg2 = 1 + 1 / log2(3)
    _close(got, {
        "recall@1": (0.5 + 0) / 2, "precision@1": (1 + 0) / 2, "ndcg@1": (1 + 0) / 2, "hit@1": 0.5,
        "recall@2": 0.5, "precision@2": 0.5, "ndcg@2": (1 / idcg2 + (1 / log2(3)) / idcg2) / 2, "hit@2": 1.0,
        "recall@4": (1 + 0.5) / 2, "precision@4": (2 / 4 + 1 / 4) / 2,
        "ndcg@4": ((1 + 1 / log2(5)) / idcg2 + (1 / log2(3)) / idcg2) / 2, "hit@4": 1.0,
    })


def test_evaluator_masks_train_items():
    user_emb, item_emb, exclude, targets = _tiny()
    # If train items were not removed, user 0's top 1 would be item 0 and user 1's item 5: no hits.
    # Make item 0 a target of user 0: it is in train, so it can never be recommended.
    targets = targets.tolil()
    targets[0, 0] = 1
    got = RankingEvaluator(exclude, targets.tocsr(), ks=(1,)).evaluate(user_emb, item_emb)
    # user 0: top1 item 2 (hit; 3 targets) -> recall 1/3; user 1: top1 item 4 (miss).
    assert got["recall@1"] == pytest.approx((1 / 3 + 0) / 2)
    assert got["hit@1"] == pytest.approx(0.5)


def test_evaluator_argument_errors():
    _, _, exclude, targets = _tiny()
    with pytest.raises(ValueError, match="shape"):
        RankingEvaluator(exclude, targets[:, :5])
    with pytest.raises(ValueError, match="ks"):
        RankingEvaluator(exclude, targets, ks=(0, 5))
    with pytest.raises(ValueError, match="ks"):
        RankingEvaluator(exclude, targets, ks=())


def _reference_topk(scores, mask, k):
    """Brute force: masked items to -inf and dropped, stable order by (-score, item id), pad -1."""
    n_users, n_items = scores.shape
    items = np.full((n_users, k), -1, dtype=np.int64)
    out_scores = np.full((n_users, k), -np.inf, dtype=np.float64)
    for u in range(n_users):
        s = np.where(mask[u], -np.inf, scores[u])
        order = np.lexsort((np.arange(n_items), -s))
        order = order[~mask[u][order]][:k]
        items[u, : order.size] = order
        out_scores[u, : order.size] = s[order]
    return items, out_scores


def _tied_case(seed: int):
    """Small integer embeddings (exact float32 products, many tied scores) and a mask with short rows."""
    rng = np.random.default_rng(seed)
    n_users, n_items, dim = 40, 70, 3
    user = rng.integers(-2, 3, (n_users, dim))
    item = rng.integers(-2, 3, (n_items, dim))
    mask = rng.random((n_users, n_items)) < 0.3
    mask[0] = True                       # no candidate at all
    mask[1] = True
    mask[1, [0, 33, 69]] = False         # 3 candidates < k
    mask[2, : n_items - 5] = True        # 5 candidates at the end
    mask[3] = False                      # nothing masked
    return user, item, mask


@pytest.mark.parametrize("item_tile", [3, 32, 33, 8192])  # tiles smaller/larger than the SIMD block
@pytest.mark.parametrize("seed", [0, 1])
def test_top_k_items_matches_bruteforce_with_ties_and_short_rows(seed, item_tile):
    k = 10
    user, item, mask = _tied_case(seed)
    n_items = item.shape[0]
    scores = user @ item.T
    expected_items, expected_scores = _reference_topk(scores, mask, k)
    assert len(np.unique(scores[3])) < n_items  # ties do happen
    got_items, got_scores = top_k_items(torch.tensor(user, dtype=torch.float32),
                                        torch.tensor(item, dtype=torch.float32), k,
                                        exclude=sp.csr_matrix(mask.astype(np.float32)), chunk_size=7,
                                        item_tile=item_tile)
    np.testing.assert_array_equal(got_items, expected_items)
    np.testing.assert_array_equal(got_scores, expected_scores.astype(np.float32))
    assert got_items[0].tolist() == [-1] * k
    assert got_items[1, 3:].tolist() == [-1] * (k - 3)


@pytest.mark.parametrize("chunk_size", [7, None])
@pytest.mark.parametrize("seed", [0, 1])
def test_device_top_k_matches_bruteforce_with_ties_and_short_rows(seed, chunk_size):
    # The GPU path's logic (mask, topk, exact tie order, padding), run here on CPU tensors.
    k = 10
    user, item, mask = _tied_case(seed)
    expected_items, expected_scores = _reference_topk(user @ item.T, mask, k)
    got_items, got_scores = top_k_items_on_device(torch.tensor(user, dtype=torch.float32),
                                                  torch.tensor(item, dtype=torch.float32), k,
                                                  exclude=sp.csr_matrix(mask.astype(np.float32)),
                                                  chunk_size=chunk_size)
    np.testing.assert_array_equal(got_items, expected_items)
    np.testing.assert_array_equal(got_scores, expected_scores.astype(np.float32))


def test_device_top_k_pads_when_k_exceeds_items():
    rng = np.random.default_rng(5)
    user, item = rng.integers(-3, 4, (12, 4)), rng.integers(-3, 4, (9, 4))
    users = np.array([7, 2, 2, 11])
    expected, _ = _reference_topk((user @ item.T)[users], np.zeros((users.size, 9), dtype=bool), 12)
    got, _ = top_k_items_on_device(torch.tensor(user, dtype=torch.float32), torch.tensor(item, dtype=torch.float32),
                                   12, users=users)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by benchmarks/gpu/device_check.sh)")
def test_evaluator_on_cuda_embeddings_equals_cpu():
    rng = np.random.default_rng(7)
    user, item = torch.randn(300, 16), torch.randn(500, 16)
    exclude = sp.csr_matrix((rng.random((300, 500)) < 0.05).astype(np.float32))
    targets = sp.csr_matrix(((rng.random((300, 500)) < 0.03) & (exclude.toarray() == 0)).astype(np.float32))
    evaluator = RankingEvaluator(exclude, targets, ks=(10, 20))
    _close(evaluator.evaluate(user.cuda(), item.cuda()), evaluator.evaluate(user, item))


def test_top_k_items_user_subset_and_no_exclude():
    rng = np.random.default_rng(5)
    user = rng.integers(-3, 4, (12, 4))
    item = rng.integers(-3, 4, (9, 4))
    users = np.array([7, 2, 2, 11])
    no_mask = np.zeros((users.size, 9), dtype=bool)
    expected, _ = _reference_topk((user @ item.T)[users], no_mask, 12)  # k > items: padded
    got, _ = top_k_items(torch.tensor(user, dtype=torch.float32), torch.tensor(item, dtype=torch.float32),
                         12, users=users)
    np.testing.assert_array_equal(got, expected)
    assert (got[:, 9:] == -1).all()


def test_evaluator_matches_reference_on_random_data():
    rng = np.random.default_rng(3)
    n_users, n_items, k_max = 30, 50, 10
    user = torch.tensor(rng.integers(-2, 3, (n_users, 4)), dtype=torch.float32)
    item = torch.tensor(rng.integers(-2, 3, (n_items, 4)), dtype=torch.float32)
    exclude = rng.random((n_users, n_items)) < 0.2
    targets = (rng.random((n_users, n_items)) < 0.1) & ~exclude
    targets[:5] = False  # users without targets
    evaluator = RankingEvaluator(sp.csr_matrix(exclude.astype(np.float32)),
                                 sp.csr_matrix(targets.astype(np.float32)), ks=(5, 10), chunk_size=8)
    got = evaluator.evaluate(user, item)
    ref_items, _ = _reference_topk((user @ item.T).numpy(), exclude, k_max)
    active = np.flatnonzero(targets.sum(1) > 0)
    hits = np.array([[1 if i >= 0 and targets[u, i] else 0 for i in ref_items[u]] for u in active])
    _close(got, ranking_metrics_from_hits(hits, targets[active].sum(1), (5, 10)))
