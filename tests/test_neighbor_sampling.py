"""graphrec.kernels.neighbor_sampling and graphrec.sampling.neighbor.NeighborSampler.

The kernel is pinned draw for draw by a pure-Python reference; the sampler by
exhaustive checks on small graphs (every edge exists, fan-outs, hop structure,
reproducibility) and by PyG layers: with every neighbour sampled, a 2-layer model on
the batch gives exactly the full-graph outputs for the seeds.
"""
import numba
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import Data, HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from graphrec.data.csr import CSRGraph, bipartite_adjacency
from graphrec.kernels.neighbor_sampling import relabel, reset_node_map, sample_hop, sample_hop_serial
from graphrec.sampling.neighbor import NeighborSampler

# ------------------------------------------------------------------ reference draws
_M = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return z ^ (z >> 31)


def _below(state, bound):
    state = (state + _GOLDEN) & _M
    return state, ((_mix(state) >> 32) * bound) >> 32


def reference_sample_hop(indptr, indices, frontier, offset, fanout, replace, seed):
    """The kernel's algorithm in plain Python: same streams, same branches."""
    neighbors, targets, positions = [], [], []
    for i, v in enumerate(frontier):
        start, degree = int(indptr[v]), int(indptr[v + 1] - indptr[v])
        k = 0 if degree == 0 else degree if fanout < 0 else fanout if replace else min(fanout, degree)
        state = _mix(int(seed) ^ _mix((i * _GOLDEN + _GOLDEN) & _M))
        if k == degree and (fanout < 0 or not replace):
            picks = list(range(k))
        elif replace:
            picks = []
            for _ in range(k):
                state, r = _below(state, degree)
                picks.append(r)
        elif k <= 64:  # Floyd
            picks = []
            for j in range(degree - k, degree):
                state, r = _below(state, j + 1)
                picks.append(j if r in picks else r)
        else:          # partial Fisher-Yates
            scratch = list(range(degree))
            picks = []
            for j in range(k):
                state, r = _below(state, degree - j)
                r += j
                scratch[j], scratch[r] = scratch[r], scratch[j]
                picks.append(scratch[j])
        for p in picks:
            positions.append(start + p)
            neighbors.append(int(indices[start + p]))
            targets.append(offset + i)
    return np.array(neighbors, np.int64), np.array(targets, np.int64), np.array(positions, np.int64)


def _graph(seed=0, n=150, density=0.04):
    """Random directed graph with an isolated node (3) and a hub (0) of degree > 100."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n, n)) < density
    dense[0, 20:130] = True
    dense[3, :] = False
    dense[:, 3] = False
    return sp.csr_matrix(dense.astype(np.float32))


# ------------------------------------------------------------------ kernel
@pytest.mark.parametrize("fanout, replace", [(3, False), (3, True), (-1, False), (80, False), (80, True),
                                             (0, False)])
def test_sample_hop_equals_reference_serial_and_parallel(fanout, replace):
    adjacency = CSRGraph.from_scipy(_graph())
    frontier = np.array([0, 5, 3, 7, 0, 149, 42], dtype=np.int64)  # hub twice, isolated node
    expected = reference_sample_hop(adjacency.indptr, adjacency.indices, frontier, 10, fanout, replace, 12345)
    for draw in (sample_hop, sample_hop_serial):
        got = draw(adjacency.indptr, adjacency.indices, frontier, 10, fanout, replace, np.uint64(12345))
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_sample_hop_parallel_ranges_match_serial_on_a_large_frontier():
    adjacency = CSRGraph.from_scipy(_graph(seed=1))
    frontier = np.random.default_rng(0).integers(0, 150, 5000)  # several 512-node ranges
    a = sample_hop(adjacency.indptr, adjacency.indices, frontier, 0, 4, False, np.uint64(9))
    b = sample_hop_serial(adjacency.indptr, adjacency.indices, frontier, 0, 4, False, np.uint64(9))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("replace", [False, True])
def test_draws_are_uniform_over_neighbours(replace):
    indptr = np.array([0, 10], dtype=np.int64)
    indices = np.arange(10, dtype=np.int64)
    frontier = np.zeros(3000, dtype=np.int64)    # one stream per position: 3000 independent draws
    neighbors, _, _ = sample_hop_serial(indptr, indices, frontier, 0, 3, replace, np.uint64(77))
    counts = np.bincount(neighbors, minlength=10)
    assert counts.sum() == 9000
    assert np.abs(counts - 900).max() < 120      # ~4 standard deviations
    if not replace:
        assert (np.sort(neighbors.reshape(3000, 3), axis=1)[:, 1:] != np.sort(neighbors.reshape(3000, 3),
                                                                            axis=1)[:, :-1]).all()


def test_relabel_numbers_in_first_appearance_order_and_resets():
    node_map = np.full(20, -1, dtype=np.int32)
    local, new = relabel(np.array([7, 3, 7, 9, 3], dtype=np.int64), node_map, 5)
    np.testing.assert_array_equal(local, [5, 6, 5, 7, 6])
    np.testing.assert_array_equal(new, [7, 3, 9])
    local, new = relabel(np.array([9, 1], dtype=np.int64), node_map, 8)
    np.testing.assert_array_equal(local, [7, 8])
    np.testing.assert_array_equal(new, [1])
    reset_node_map(node_map, np.array([7, 3, 9, 1], dtype=np.int64))
    assert (node_map == -1).all()


# ------------------------------------------------------------------ homogeneous sampler
def _check_batch(data, matrix, seeds, fanouts, replace):
    """Exhaustive checks of one homogeneous batch against its CSR ``matrix``."""
    indptr, indices = matrix.indptr, matrix.indices
    n_id, edge_index, e_id = data.n_id.numpy(), data.edge_index.numpy(), data.e_id.numpy()
    uniq_seeds = list(dict.fromkeys(seeds.tolist()))
    assert data.batch_size == len(uniq_seeds) and n_id[:data.batch_size].tolist() == uniq_seeds
    np.testing.assert_array_equal(n_id[data.input_index.numpy()], seeds)
    assert np.unique(n_id).size == n_id.size == data.num_nodes
    src, dst = n_id[edge_index[0]], n_id[edge_index[1]]
    # Every sampled edge exists, and e_id is its CSR position.
    np.testing.assert_array_equal(indices[e_id], src)
    assert ((e_id >= indptr[dst]) & (e_id < indptr[dst + 1])).all()
    # Hop structure: hop h expands exactly the nodes first reached in hop h - 1.
    node_bounds = np.cumsum([0] + data.num_sampled_nodes)
    edge_bounds = np.cumsum([0] + data.num_sampled_edges)
    assert node_bounds[-1] == n_id.size and edge_bounds[-1] == e_id.size
    for hop, fanout in enumerate(fanouts):
        lo, hi = node_bounds[hop], node_bounds[hop + 1]
        hop_edges = slice(edge_bounds[hop], edge_bounds[hop + 1])
        targets = edge_index[1, hop_edges]
        assert set(targets.tolist()) <= set(range(lo, hi))
        for local in range(lo, hi):
            v = n_id[local]
            degree = indptr[v + 1] - indptr[v]
            mine = e_id[hop_edges][targets == local]
            expected = 0 if degree == 0 else degree if fanout < 0 else fanout if replace else min(fanout, degree)
            assert mine.size == expected
            if not replace:
                assert np.unique(mine).size == mine.size        # distinct neighbours
        # the nodes new in this hop are exactly the not-yet-seen sources of its edges
        sources = edge_index[0, hop_edges]
        assert set(range(hi, node_bounds[hop + 2])) == set(sources[sources >= hi].tolist())
        assert (sources < node_bounds[hop + 2]).all()


@pytest.mark.parametrize("fanouts, replace", [([3, 2], False), ([3, 2], True), ([-1, 2], False),
                                              ([70, 1, 2], False)])
@pytest.mark.parametrize("path", ["one pass", "hop by hop"])
def test_homogeneous_batches_are_exhaustively_valid(fanouts, replace, path):
    matrix = _graph()
    parallel_frontier = 10 ** 9 if path == "one pass" else 0
    sampler = NeighborSampler(matrix, fanouts, replace=replace, seed=3, parallel_frontier=parallel_frontier)
    for seeds in (np.array([0, 5, 3, 149]), np.array([11, 11, 2]), np.arange(150), np.array([3])):
        _check_batch(sampler.sample(seeds), matrix, seeds, fanouts, replace)


def test_batches_are_reproducible_and_independent_of_threads_and_path():
    matrix = _graph(seed=2)
    seeds = np.arange(0, 150, 2)

    def run(parallel_frontier, threads, seed=5):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            data = NeighborSampler(matrix, [4, 3], seed=seed, parallel_frontier=parallel_frontier).sample(seeds)
        finally:
            numba.set_num_threads(previous)
        return data.n_id, data.edge_index, data.e_id

    reference = run(10 ** 9, 1)
    for variant in (run(10 ** 9, 1), run(0, 1), run(0, numba.config.NUMBA_NUM_THREADS)):
        assert all(torch.equal(a, b) for a, b in zip(reference, variant))
    other = run(0, 1, seed=6)
    assert not torch.equal(reference[1], other[1])


def test_loader_covers_every_seed_once_and_workers_do_not_change_batches():
    matrix = _graph()
    sampler = NeighborSampler(matrix, [2, 2], seed=1)
    serial = list(sampler.loader(batch_size=32, epoch=4))
    threaded = list(sampler.loader(batch_size=32, epoch=4, num_workers=2))
    seen = np.concatenate([d.n_id[:d.batch_size].numpy() for d in serial])
    assert sorted(seen.tolist()) == list(range(150)) and len(serial) == 5
    for a, b in zip(serial, threaded):
        assert torch.equal(a.n_id, b.n_id) and torch.equal(a.edge_index, b.edge_index)
    other_epoch = next(iter(sampler.loader(batch_size=32, epoch=5)))
    assert not torch.equal(other_epoch.n_id[:32], serial[0].n_id[:32])
    assert len(list(sampler.loader(batch_size=32, drop_last=True))) == 4


def test_edge_index_input_keeps_its_edge_ids():
    rng = np.random.default_rng(4)
    edge_index = torch.from_numpy(rng.integers(0, 40, (2, 300)))
    sampler = NeighborSampler(Data(edge_index=edge_index, num_nodes=40), [3, 3], seed=0)
    data = sampler.sample(torch.tensor([1, 2, 3]))
    original = edge_index[:, data.e_id]
    assert torch.equal(original, data.n_id[data.edge_index])   # source -> target, like PyG


def test_sage_conv_on_full_neighbourhood_equals_full_graph():
    matrix = _graph(seed=5)
    n = matrix.shape[0]
    torch.manual_seed(0)
    x = torch.randn(n, 8)
    conv1, conv2 = SAGEConv(8, 16), SAGEConv(16, 4)
    rows, cols = matrix.nonzero()           # row v aggregates from its indices: edges col -> row
    full_edges = torch.from_numpy(np.stack([cols, rows]).astype(np.int64))
    full = conv2(conv1(x, full_edges).relu(), full_edges)
    seeds = torch.tensor([0, 7, 3, 99, 42])
    data = NeighborSampler(matrix, [-1, -1], seed=0).sample(seeds)
    out = conv2(conv1(x[data.n_id], data.edge_index).relu(), data.edge_index)[:data.batch_size]
    torch.testing.assert_close(out, full[seeds], rtol=1e-5, atol=1e-5)
    # and with sampled fan-outs the forward still runs on PyG's layout
    data = NeighborSampler(matrix, [3, 2], seed=0).sample(seeds)
    assert conv2(conv1(x[data.n_id], data.edge_index).relu(), data.edge_index)[:data.batch_size].shape == (5, 4)


def test_bipartite_adjacency_links_users_and_items_both_ways():
    train = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32))
    adjacency = bipartite_adjacency(train)
    dense = sp.csr_matrix((np.ones(adjacency.indices.size), adjacency.indices, adjacency.indptr)).toarray()
    expected = np.zeros((5, 5))
    expected[:2, 2:] = train.toarray()
    expected[2:, :2] = train.toarray().T
    np.testing.assert_array_equal(dense, expected)


# ------------------------------------------------------------------ heterogeneous sampler
def _hetero(seed=0):
    rng = np.random.default_rng(seed)
    rated = rng.random((30, 40)) < 0.15
    rated[2] = False                                                             # a user with no items
    rates = sp.csr_matrix(rated.astype(np.float32))                             # users x items
    tags = sp.csr_matrix((rng.random((40, 10)) < 0.3).astype(np.float32))      # items x tags
    relations = {("item", "rated_by", "user"): rates, ("user", "rates", "item"): rates.T.tocsr(),
                 ("tag", "tags", "item"): tags}
    return relations, {"user": 30, "item": 40, "tag": 10}


@pytest.mark.parametrize("replace", [False, True])
def test_heterogeneous_batches_are_valid_per_relation(replace):
    relations, sizes = _hetero()
    fanouts = {("item", "rated_by", "user"): [4, 2], ("user", "rates", "item"): [3, 2],
               ("tag", "tags", "item"): [2, 1]}
    sampler = NeighborSampler(relations, fanouts, replace=replace, seed=0, num_nodes=sizes)
    seeds = np.array([0, 2, 5, 29])
    data = sampler.sample(seeds, seed_type="user")
    assert isinstance(data, HeteroData)
    assert data["user"].batch_size == 4 and data["user"].n_id[:4].tolist() == seeds.tolist()
    for node_type in sizes:
        n_id = data[node_type].n_id.numpy()
        assert np.unique(n_id).size == n_id.size == data[node_type].num_nodes
    for et, matrix in relations.items():
        matrix = sp.csr_matrix(matrix)
        src_ids, dst_ids = data[et[0]].n_id.numpy(), data[et[2]].n_id.numpy()
        edge_index, e_id = data[et].edge_index.numpy(), data[et].e_id.numpy()
        src, dst = src_ids[edge_index[0]], dst_ids[edge_index[1]]
        np.testing.assert_array_equal(matrix.indices[e_id], src)
        assert ((e_id >= matrix.indptr[dst]) & (e_id < matrix.indptr[dst + 1])).all()
        for local in np.unique(edge_index[1]):
            v = dst_ids[local]
            degree = matrix.indptr[v + 1] - matrix.indptr[v]
            mine = e_id[edge_index[1] == local]
            # a target is expanded in one hop only, so its count is that hop's fan-out
            allowed = {(f if replace else min(f, degree)) for f in fanouts[et]}
            assert mine.size in allowed
            if not replace:
                assert np.unique(mine).size == mine.size
    # user 2 has no items: it gets no incoming edges
    user_edges = data[("item", "rated_by", "user")].edge_index
    assert (user_edges[1] != 1).all()                     # local id 1 is user 2
    again = sampler.sample(seeds, seed_type="user")
    assert all(torch.equal(data[et].edge_index, again[et].edge_index) for et in relations)


@pytest.mark.filterwarnings("ignore:There exist node types")   # tags only send messages
def test_hetero_conv_on_full_neighbourhood_equals_full_graph():
    relations, sizes = _hetero(seed=1)
    graph = HeteroData()
    for t, n in sizes.items():
        graph[t].num_nodes = n
    for et, matrix in relations.items():
        rows, cols = sp.csr_matrix(matrix).nonzero()
        graph[et].edge_index = torch.from_numpy(np.stack([cols, rows]).astype(np.int64))
    torch.manual_seed(0)
    x = {t: torch.randn(n, 6) for t, n in sizes.items()}
    conv1 = HeteroConv({et: SAGEConv((6, 6), 8) for et in relations}, aggr="sum")
    conv2 = HeteroConv({et: SAGEConv((8, 8), 3) for et in relations}, aggr="sum")

    def forward(x_dict, edge_dict):
        hidden = {t: h.relu() for t, h in conv1(x_dict, edge_dict).items()}
        hidden = {t: hidden.get(t, torch.zeros(x_dict[t].shape[0], 8)) for t in x_dict}
        return conv2(hidden, edge_dict)

    full = forward(x, graph.edge_index_dict)
    seeds = torch.tensor([0, 4, 17])
    for source in (graph, relations):   # HeteroData input and dict-of-CSR input
        sampler = NeighborSampler(source, [-1, -1], seed=0, num_nodes=sizes)
        data = sampler.sample(seeds, seed_type="user")
        out = forward({t: x[t][data[t].n_id] for t in sizes}, data.edge_index_dict)
        torch.testing.assert_close(out["user"][:data["user"].batch_size], full["user"][seeds],
                                   rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_rejected():
    relations, sizes = _hetero()
    with pytest.raises(ValueError, match="num_nodes"):
        NeighborSampler(relations, [2])
    with pytest.raises(ValueError, match="no fan-outs"):
        NeighborSampler(relations, {("user", "rates", "item"): [2]}, num_nodes=sizes)
    sampler = NeighborSampler(_graph(), [2])
    with pytest.raises(IndexError):
        sampler.sample([150])
    with pytest.raises(ValueError, match="square"):
        NeighborSampler(sp.csr_matrix((3, 4)), [2])
