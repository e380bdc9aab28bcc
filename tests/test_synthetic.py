import numpy as np
import pytest
import scipy.sparse as sp

from graphrec.data.interactions import InteractionGraph
from graphrec.data.synthetic import synthetic_interactions


def _all_pairs(graph: InteractionGraph) -> sp.csr_matrix:
    return (graph.train + graph.test).tocsr()


def _top_percent_share(graph: InteractionGraph) -> float:
    popularity = np.sort(np.bincount(_all_pairs(graph).indices, minlength=graph.num_items))[::-1]
    return popularity[: graph.num_items // 100].sum() / popularity.sum()


@pytest.fixture(scope="module")
def graph():
    return synthetic_interactions(200_000, seed=3)


def test_the_loaders_type_with_gowalla_ratios(graph):
    assert isinstance(graph, InteractionGraph)
    assert graph.num_users == round(200_000 * 29_858 / 1_027_370)
    assert graph.num_items == round(200_000 * 40_981 / 1_027_370)
    assert graph.train.nnz + graph.test.nnz == 200_000
    for matrix in (graph.train, graph.test):
        assert matrix.shape == (graph.num_users, graph.num_items)
        assert matrix.has_sorted_indices and matrix.indices.dtype == np.int32
        assert np.all(matrix.data == 1.0)


def test_no_pair_twice_and_disjoint_splits(graph):
    both = _all_pairs(graph)
    assert both.nnz == graph.train.nnz + graph.test.nnz  # a pair in both splits would collapse here
    assert both.max() == 1.0
    assert graph.train.multiply(graph.test).nnz == 0


def test_every_user_trains_and_tests(graph):
    assert np.diff(graph.train.indptr).min() >= 1
    assert np.diff(graph.test.indptr).min() >= 1
    assert np.diff(_all_pairs(graph).indptr).min() >= 2
    assert graph.test.nnz / (graph.train.nnz + graph.test.nnz) == pytest.approx(0.2, abs=0.01)


def test_same_seed_same_graph_other_seed_other_graph(graph):
    again = synthetic_interactions(200_000, seed=3)
    assert (graph.train != again.train).nnz == 0 and (graph.test != again.test).nnz == 0
    other = synthetic_interactions(200_000, seed=4)
    assert (graph.train != other.train).nnz > 0


def test_skew_bands(graph):
    # Documented in graphrec/data/synthetic.py: a = 1 puts 0.41-0.50 in the top 1% at these sizes; a = 0.6
    # about Gowalla's 0.13.
    assert 0.35 <= _top_percent_share(graph) <= 0.55
    flat = synthetic_interactions(200_000, zipf_exponent=0.6, seed=3)
    assert 0.10 <= _top_percent_share(flat) <= 0.20
    activity = np.diff(_all_pairs(graph).indptr)
    assert np.log(activity).std() == pytest.approx(0.75, abs=0.15)


def test_heavy_users_capped_and_exact_total_on_a_tiny_catalogue():
    graph = synthetic_interactions(3_000, num_users=40, num_items=200, activity_sigma=2.0, seed=0)
    degree = np.diff(_all_pairs(graph).indptr)
    assert degree.sum() == 3_000 and degree.max() <= 100 and degree.min() >= 2


def test_impossible_sizes_are_refused():
    with pytest.raises(ValueError, match="cannot give"):
        synthetic_interactions(100, num_users=60, num_items=10)


def test_a_model_trains_on_it():
    import torch

    from graphrec.models import LightGCN
    from graphrec.sampling import BPRSampler

    small = synthetic_interactions(5_000, seed=1)
    model = LightGCN(small.num_users, small.num_items, embedding_dim=8, num_layers=2)
    model.prepare(small.train)
    batch = next(iter(BPRSampler(small.train, batch_size=256, seed=0).loader(0)))
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
