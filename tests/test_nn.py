"""graphrec.nn: the propagation layer's maths pinned on a graph small enough to check by hand."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec.models import GCN, GCNII
from graphrec.nn import (EdgeBlock, GCNPropagation, NormalizedAdjacency, SubgraphPropagation, aggregate,
                         bipartite_norm, bpr_loss, gcn_norm, layer_mean_rows)
from graphrec.sampling.neighbor import CSRGraph, NeighborSampler

# Path 0-1-2, edge 2-3, triangle closed by 1-3, node 4 isolated (undirected: both directions stored).
EDGES = [(0, 1), (1, 2), (2, 3), (1, 3)]
NUM_NODES = 5


def edge_index(directed: bool = False) -> torch.Tensor:
    pairs = EDGES if directed else EDGES + [(b, a) for a, b in EDGES]
    return torch.tensor(pairs, dtype=torch.long).t().contiguous()


def dense_gcn_a_hat(directed: bool = False) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2, float64, ``A[i, j] = 1`` for an edge j -> i, D the in-degrees of A + I."""
    a = torch.zeros(NUM_NODES, NUM_NODES, dtype=torch.float64)
    for j, i in EDGES:
        a[i, j] = 1.0
        if not directed:
            a[j, i] = 1.0
    a = a + torch.eye(NUM_NODES, dtype=torch.float64)
    d = a.sum(dim=1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def features(columns: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(NUM_NODES, columns, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- normalisation
def test_gcn_norm_by_hand():
    a_hat = torch.from_numpy(gcn_norm(edge_index(), NUM_NODES).toarray()).double()
    # degrees with self-loops: 2, 4, 3, 3, 1
    assert a_hat[0, 1].item() == pytest.approx(1 / math.sqrt(2 * 4))
    assert a_hat[1, 1].item() == pytest.approx(1 / 4)
    assert a_hat[2, 3].item() == pytest.approx(1 / 3)
    assert a_hat[4, 4].item() == pytest.approx(1.0)
    assert a_hat[0, 2].item() == 0.0
    torch.testing.assert_close(a_hat, dense_gcn_a_hat(), rtol=1e-6, atol=1e-7)
    without_loops = torch.from_numpy(gcn_norm(edge_index(), NUM_NODES, add_self_loops=False).toarray())
    assert without_loops[0, 1].item() == pytest.approx(1 / math.sqrt(1 * 3))
    assert without_loops[4].abs().sum().item() == 0.0


def test_bipartite_norm_by_hand():
    # users 0, 1; items 0, 1, 2. User 0 has items 0, 1; user 1 has item 1; item 2 has nobody.
    train = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32))
    a_hat = bipartite_norm(train).toarray()
    assert a_hat.shape == (5, 5)
    assert a_hat[0, 2] == pytest.approx(1 / math.sqrt(2 * 1))    # user 0 (deg 2) - item 0 (deg 1)
    assert a_hat[0, 3] == pytest.approx(1 / math.sqrt(2 * 2))    # user 0 - item 1 (deg 2)
    assert a_hat[1, 3] == pytest.approx(1 / math.sqrt(1 * 2))
    assert a_hat[4].sum() == 0.0 and np.allclose(a_hat, a_hat.T)  # isolated item: zero row


# ---------------------------------------------------------------- whole-graph propagation
@pytest.mark.parametrize("directed", [False, True])
def test_propagation_equals_dense_formula_and_torch_sparse(directed):
    adjacency = NormalizedAdjacency.from_edge_index(edge_index(directed), NUM_NODES)
    x = features()
    expected = dense_gcn_a_hat(directed) @ x.double()
    out = adjacency.propagate(x)                                       # numba CSR kernel (CPU float32)
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out, adjacency.to_torch_sparse() @ x)  # torch's sparse kernel
    torch.testing.assert_close(adjacency.propagate(x.double()), expected)  # float64 takes torch's path
    torch.testing.assert_close(adjacency.to_dense().double(), dense_gcn_a_hat(directed), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("directed", [False, True])
def test_propagation_gradient_equals_dense_autograd(directed):
    adjacency = NormalizedAdjacency.from_edge_index(edge_index(directed), NUM_NODES)
    weight = features(seed=1)
    x = features().requires_grad_(True)
    (adjacency.propagate(adjacency.propagate(x)) * weight).sum().backward()
    reference = x.detach().double().requires_grad_(True)
    a_hat = dense_gcn_a_hat(directed)
    (a_hat @ (a_hat @ reference) * weight.double()).sum().backward()
    torch.testing.assert_close(x.grad.double(), reference.grad, rtol=1e-6, atol=1e-6)
    assert adjacency.symmetric is (not directed)  # the backward found out which transpose to use


def test_propagate_rows_and_layer_mean_rows_equal_dense_formula():
    train = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))
    adjacency = NormalizedAdjacency.from_interactions(train)
    a_hat = torch.from_numpy(bipartite_norm(train).toarray()).double()
    rows = torch.tensor([0, 3, 4, 3])
    x0 = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    weight = torch.randn(4, 4, generator=torch.Generator().manual_seed(3)).double()

    x = x0.clone().requires_grad_(True)
    mean, initial = layer_mean_rows(adjacency, x, rows, 2)
    ((mean.double() * weight).sum() + initial.double().pow(2).sum()).backward()
    reference = x0.double().requires_grad_(True)
    expected = (reference + a_hat @ reference + a_hat @ a_hat @ reference)[rows] / 3
    ((expected * weight).sum() + reference[rows].pow(2).sum()).backward()
    torch.testing.assert_close(mean.double(), expected.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), reference.grad, rtol=1e-6, atol=1e-6)

    x = x0.clone().requires_grad_(True)
    picked = adjacency.propagate_rows(x, rows)
    torch.testing.assert_close(picked, adjacency.propagate(x0)[rows])
    (picked.double() * weight).sum().backward()
    torch.testing.assert_close(x.grad.double(), a_hat[rows].t() @ weight, rtol=1e-6, atol=1e-6)


def test_layer_mean_rows_refuses_an_asymmetric_adjacency():
    adjacency = NormalizedAdjacency.from_edge_index(edge_index(directed=True), NUM_NODES)
    with pytest.raises(ValueError, match="symmetric"):
        layer_mean_rows(adjacency, features(), torch.tensor([0, 1]), 2)


def test_gcn_propagation_switches():
    ei = edge_index()
    propagation = GCNPropagation(cached=True)
    first = propagation.adjacency(ei, NUM_NODES)
    assert propagation.adjacency(ei, NUM_NODES) is first             # cached: normalised once
    ei[:, 0] = torch.tensor([0, 4])                                   # edited in place: built again
    assert propagation.adjacency(ei, NUM_NODES) is not first
    assert GCNPropagation(cached=False).adjacency(ei, NUM_NODES) is not GCNPropagation().adjacency(ei, NUM_NODES)
    raw = GCNPropagation(normalize=False).adjacency(edge_index(), NUM_NODES).to_dense()
    expected = (dense_gcn_a_hat() > 0).float()                        # A + I with unit weights
    torch.testing.assert_close(raw, expected)
    x = features()
    torch.testing.assert_close(GCNPropagation()(x, edge_index(), num_hops=2).double(),
                               dense_gcn_a_hat() @ dense_gcn_a_hat() @ x.double(), rtol=1e-6, atol=1e-6)
    # a precomputed adjacency passes through, a torch sparse one is converted
    assert propagation.adjacency(first, NUM_NODES) is first
    torch.testing.assert_close(propagation.adjacency(first.to_torch_sparse(), NUM_NODES).to_dense(), first.to_dense())
    with pytest.raises(ValueError, match="shape"):
        propagation.adjacency(first, NUM_NODES + 1)


# ---------------------------------------------------------------- edge lists
def test_aggregate_paths_agree_in_values_and_gradients():
    adjacency = gcn_norm(edge_index(), NUM_NODES).tocoo()
    dst, src = torch.from_numpy(adjacency.row.astype(np.int64)), torch.from_numpy(adjacency.col.astype(np.int64))
    weight = torch.from_numpy(adjacency.data)
    x0 = features(4)
    results = []
    shuffled = torch.randperm(src.shape[0], generator=torch.Generator().manual_seed(0))
    # sorted by target: numba CSR; unsorted: gathered messages; gather_limit=0: sparse CSR product
    for order, limit in ((torch.arange(src.shape[0]), None), (shuffled, None), (shuffled, 0)):
        x = x0.clone().requires_grad_(True)
        out = aggregate(x, src[order], dst[order], weight[order], NUM_NODES, gather_limit=limit)
        out.square().sum().backward()
        results.append((out.detach(), x.grad))
    expected = dense_gcn_a_hat() @ x0.double()
    for out, grad in results:
        torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(grad, results[0][1])
    block = EdgeBlock(src, dst, weight, NUM_NODES)
    torch.testing.assert_close(block.propagate(x0), NormalizedAdjacency.from_edge_index(edge_index(),
                                                                                       NUM_NODES).propagate(x0))


def test_aggregate_per_head_with_differentiable_weights():
    src, dst = torch.tensor([0, 1, 2, 2]), torch.tensor([1, 1, 0, 2])
    alpha = torch.rand(4, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    x = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(1))
    out = aggregate(x, src, dst, alpha, 3)
    expected = torch.zeros(3, 2, 5)
    for e in range(4):
        expected[dst[e]] += alpha[e, :, None].detach() * x[src[e]]
    torch.testing.assert_close(out.detach(), expected)
    out.sum().backward()
    torch.testing.assert_close(alpha.grad, x[src].sum(-1))  # d out / d alpha[e, h] = sum_d x[src[e], h, d]


# ---------------------------------------------------------------- sampled subgraphs
def test_subgraph_propagation_equals_full_propagation_with_every_neighbour():
    ei = edge_index()
    sampler = NeighborSampler(CSRGraph.from_edge_index(ei, NUM_NODES), [-1, -1], seed=0)
    seeds = np.array([0, 3])
    batch = sampler.sample(seeds)
    x = features(4)
    propagation = SubgraphPropagation(np.bincount(ei[1].numpy(), minlength=NUM_NODES), self_loops=True)
    a_hat = dense_gcn_a_hat()
    full = [x.double(), a_hat @ x.double(), a_hat @ a_hat @ x.double()]
    layers = propagation.layers(x[batch.n_id], batch, 2)
    seeds_local = batch.input_index
    for layer, expected in zip(layers, full):
        torch.testing.assert_close(layer[seeds_local].double(), expected[torch.from_numpy(seeds)],
                                   rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(propagation.last_layer(x[batch.n_id], batch, 2)[seeds_local].double(),
                               full[2][torch.from_numpy(seeds)], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(propagation.layer_mean(x[batch.n_id], batch, 2)[seeds_local].double(),
                               (sum(full) / 3)[torch.from_numpy(seeds)], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- loss
def test_bpr_loss_by_hand():
    user = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    pos = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    initial = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    # pairs: u.p - u.n = 2 - 0 = 2 and 2 - 2 = 0; L2: (1 + 1 + 4) / (2 * 2 triples) = 1.5
    bpr = (math.log(1 + math.exp(-2.0)) + math.log(2.0)) / 2
    assert float(bpr_loss(user, pos, neg)) == pytest.approx(bpr)
    assert float(bpr_loss(user, pos, neg, initial, reg_weight=0.1)) == pytest.approx(bpr + 0.1 * 1.5)


# ---------------------------------------------------------------- model layer hooks
@pytest.mark.parametrize("model_cls", [GCN, GCNII])
def test_layer_hooks_on_an_edge_block_equal_the_forward(model_cls):
    torch.manual_seed(0)
    model = model_cls(6, 3, hidden_channels=4, num_layers=3, dropout=0.0).eval()
    x = features(6)
    adjacency = gcn_norm(edge_index(), NUM_NODES).tocoo()
    src, dst = (torch.from_numpy(index.astype(np.int64)) for index in (adjacency.col, adjacency.row))
    block = EdgeBlock(src, dst, torch.from_numpy(adjacency.data), NUM_NODES)
    h0 = h = model.input_layer(x)
    for index in range(model.num_layers):
        h = model.layer(index, h, h0, block)
    torch.testing.assert_close(model.output_layer(h), model(x, edge_index()), rtol=1e-5, atol=1e-6)
