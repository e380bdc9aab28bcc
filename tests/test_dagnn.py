"""DAGNN: propagation pinned against a dense reference, interface, registered paper settings."""
import math

import pytest
import torch

from graphrec.config import build_run_config
from graphrec.models import DAGNN, create_model, get_model_entry
from graphrec.models.dagnn import feature_dropout
from graphrec.nn import NormalizedAdjacency

# A tiny undirected graph: path 0-1-2, edge 2-3, triangle closed by 1-3, node 4 isolated.
EDGES = [(0, 1), (1, 2), (2, 3), (1, 3)]
NUM_NODES = 5


def edge_index():
    pairs = EDGES + [(b, a) for a, b in EDGES]  # both directions, as PyG stores undirected graphs
    return torch.tensor(pairs, dtype=torch.long).t().contiguous()


def dense_a_hat():
    """D^-1/2 (A + I) D^-1/2 computed densely, step by step."""
    a = torch.zeros(NUM_NODES, NUM_NODES, dtype=torch.float64)
    for i, j in EDGES:
        a[i, j] = a[j, i] = 1.0
    a_tilde = a + torch.eye(NUM_NODES, dtype=torch.float64)
    degree = a_tilde.sum(dim=1)
    d_inv_sqrt = torch.diag(degree.pow(-0.5))
    return d_inv_sqrt @ a_tilde @ d_inv_sqrt


def test_dense_reference_by_hand():
    a_hat = dense_a_hat()
    # degrees with self-loops: 2, 4, 3, 3, 1
    assert a_hat[0, 1].item() == pytest.approx(1 / math.sqrt(2 * 4))
    assert a_hat[1, 1].item() == pytest.approx(1 / 4)
    assert a_hat[2, 3].item() == pytest.approx(1 / 3)
    assert a_hat[4, 4].item() == pytest.approx(1.0)  # isolated node keeps itself only
    assert a_hat[0, 2].item() == 0.0


def normalized_adjacency(edges, num_nodes):
    return NormalizedAdjacency.from_edge_index(edges, num_nodes)


def test_normalized_adjacency_matches_dense_reference():
    sparse = normalized_adjacency(edge_index(), NUM_NODES)
    assert isinstance(sparse, NormalizedAdjacency) and sparse.shape == (NUM_NODES, NUM_NODES)
    torch.testing.assert_close(sparse.to_dense().double(), dense_a_hat(), rtol=1e-6, atol=1e-7)


def test_existing_self_loops_are_not_doubled():
    with_loop = torch.cat([edge_index(), torch.tensor([[2], [2]])], dim=1)
    torch.testing.assert_close(normalized_adjacency(with_loop, NUM_NODES).to_dense().double(), dense_a_hat(),
                               rtol=1e-6, atol=1e-7)


def reference_output(model: DAGNN, x: torch.Tensor) -> torch.Tensor:
    """sum_k sigmoid(H_k w + b) * H_k with H_k = A_hat^k Z, all dense, in float64."""
    a_hat = dense_a_hat()
    z = model.transform(x).double()
    w = model.retention.weight.double().view(-1)
    b = model.retention.bias.double()
    out = torch.zeros_like(z)
    h = z
    for k in range(model.num_hops + 1):
        if k > 0:
            h = a_hat @ h
        score = torch.sigmoid(h @ w + b)  # one score per node for hop k
        out += score.unsqueeze(1) * h
    return out


@pytest.mark.parametrize("num_hops", [0, 1, 3, 10])
def test_forward_matches_dense_reference(num_hops):
    torch.manual_seed(0)
    model = DAGNN(num_features=6, num_classes=3, hidden_channels=8, num_hops=num_hops, dropout=0.5).eval()
    x = torch.randn(NUM_NODES, 6)
    out = model(x, edge_index())
    assert out.shape == (NUM_NODES, 3)
    torch.testing.assert_close(out.double(), reference_output(model, x), rtol=1e-5, atol=1e-6)


def test_hop_zero_is_the_mlp_scaled_by_its_retention():
    torch.manual_seed(1)
    model = DAGNN(6, 3, hidden_channels=8, num_hops=0).eval()
    x = torch.randn(NUM_NODES, 6)
    z = model.transform(x)
    expected = torch.sigmoid(model.retention(z)) * z
    torch.testing.assert_close(model(x, edge_index()), expected)


def test_retention_scores_shape_and_range():
    torch.manual_seed(2)
    model = DAGNN(6, 3, num_hops=4).eval()
    x = torch.randn(NUM_NODES, 6)
    hops = model.hops(model.transform(x), normalized_adjacency(edge_index(), NUM_NODES))
    scores = model.retention_scores(hops)
    assert hops.shape == (NUM_NODES, 5, 3) and scores.shape == (NUM_NODES, 5)
    assert bool(((scores > 0) & (scores < 1)).all())


def test_sparse_features_give_the_same_logits_and_gradients():
    torch.manual_seed(3)
    model = DAGNN(8, 3, hidden_channels=4, num_hops=2).eval()
    x = (torch.rand(NUM_NODES, 8) < 0.3).float() * torch.rand(NUM_NODES, 8)
    dense = model(x, edge_index())
    dense.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    sparse = model(x.to_sparse(), edge_index())
    sparse.square().sum().backward()
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)
    for grad, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, grad, rtol=1e-5, atol=1e-6)


def test_precomputed_adjacency_and_cache_invalidation():
    torch.manual_seed(4)
    model = DAGNN(6, 3, num_hops=3).eval()
    x = torch.randn(NUM_NODES, 6)
    ei = edge_index()
    first = model(x, ei)
    torch.testing.assert_close(model(x, normalized_adjacency(ei, NUM_NODES)), first)
    torch.testing.assert_close(model(x, normalized_adjacency(ei, NUM_NODES).to_torch_sparse()), first)
    # Editing the same tensor in place must not reuse the cached A_hat of the old graph.
    ei[:, 0] = torch.tensor([0, 4])
    ei[:, len(EDGES)] = torch.tensor([4, 0])
    changed = model(x, ei)
    torch.testing.assert_close(changed, model(x, normalized_adjacency(ei.clone(), NUM_NODES)))
    assert not torch.allclose(changed, first)


def test_feature_dropout_on_sparse_input():
    torch.manual_seed(5)
    x = torch.zeros(200, 50)
    x[torch.arange(200), torch.randint(0, 50, (200,))] = 2.0
    dropped = feature_dropout(x.to_sparse(), 0.8, training=True).to_dense()
    kept = dropped != 0
    assert bool((x[kept] != 0).all())  # zeros stay zero
    torch.testing.assert_close(dropped[kept], torch.full((int(kept.sum()),), 10.0))  # scaled by 1/(1-p)
    assert 0.1 < kept.sum().item() / 200 < 0.3
    same = feature_dropout(x.to_sparse(), 0.8, training=False)
    torch.testing.assert_close(same.to_dense(), x)


def test_training_mode_uses_dropout_eval_does_not():
    torch.manual_seed(6)
    model = DAGNN(6, 3, num_hops=2, dropout=0.5)
    x = torch.randn(NUM_NODES, 6)
    model.train()
    assert not torch.allclose(model(x, edge_index()), model(x, edge_index()))
    model.eval()
    torch.testing.assert_close(model(x, edge_index()), model(x, edge_index()))


def test_registered_with_the_official_per_dataset_settings():
    entry = get_model_entry("dagnn")
    assert entry.task == "node_classification"
    expected = {"cora": (10, 0.8, 5e-3), "citeseer": (10, 0.5, 2e-2), "pubmed": (20, 0.8, 5e-3)}
    for dataset, (hops, dropout, weight_decay) in expected.items():
        config = build_run_config("dagnn", dataset)
        assert config.model_config.num_hops == hops
        assert config.model_config.dropout == dropout
        assert config.model_config.hidden_channels == 64
        assert config.train.weight_decay == weight_decay
        assert config.train.lr == 0.01
        assert config.train.epochs == 1000
        assert (config.train.monitor, config.train.monitor_mode) == ("loss", "min")
        assert (config.train.early_stopping, config.train.patience, config.train.eval_every) == ("window_mean", 100, 1)
    model = create_model("dagnn", num_features=10, num_classes=4, num_hops=7)
    assert isinstance(model, DAGNN) and model.num_hops == 7
    with pytest.raises(ValueError):
        create_model("dagnn", num_features=10, num_classes=4, dropout=1.0)
