"""DGL interop: graphs and sampled batches to DGL and back, and DGL's sampler against ours.

Run wherever DGL imports (``bash benchmarks/setup_dgl_env.sh``, then
``../dgl-venv/bin/python -m pytest -q tests/test_dgl_interop.py``); skipped elsewhere, since
DGL 2.1.0 (the newest wheel for Python 3.11) imports only beside torch 2.0.0-2.2.1.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

try:
    import dgl
except Exception as error:  # not installed, or installed beside a torch it cannot load
    pytest.skip(f"DGL does not import here ({type(error).__name__}: {str(error)[:120]}); the DGL interop tests run "
                "in the environment made by benchmarks/setup_dgl_env.sh", allow_module_level=True)

from torch_geometric.data import Data, HeteroData

from graphrec.data.csr import CSRGraph, bipartite_adjacency
from graphrec.data.dgl import blocks_to_batch, from_dgl, to_dgl
from graphrec.sampling import LinkNeighborSampler, NeighborSampler


def random_graph(num_nodes=30, num_edges=120, seed=0):
    rng = np.random.default_rng(seed)
    edge_index = torch.from_numpy(rng.integers(0, num_nodes, (2, num_edges)))
    return Data(edge_index=edge_index, num_nodes=num_nodes, x=torch.randn(num_nodes, 4),
                y=torch.arange(num_nodes), edge_weight=torch.rand(num_edges))


def edge_set(src, dst):
    return sorted(zip(src.tolist(), dst.tolist()))


def test_homogeneous_data_round_trip():
    data = random_graph()
    g = to_dgl(data)
    assert g.num_nodes() == 30 and g.num_edges() == 120
    src, dst = g.edges(order="eid")
    assert torch.equal(torch.stack([src, dst]), data.edge_index)          # same edges, same order
    assert torch.equal(g.ndata["x"], data.x) and torch.equal(g.edata["edge_weight"], data.edge_weight)
    back = from_dgl(g)
    assert torch.equal(back.edge_index, data.edge_index) and back.num_nodes == data.num_nodes
    for key in ("x", "y", "edge_weight"):
        assert torch.equal(back[key], data[key])


def test_sampled_batch_to_dgl_keeps_global_ids_and_messages():
    data = random_graph(seed=1)
    sampler = NeighborSampler(data, [3, 2], seed=4)
    batch = sampler.sample(torch.tensor([0, 5, 7]))
    g = to_dgl(batch)
    assert torch.equal(g.ndata[dgl.NID], batch.n_id) and torch.equal(g.edata[dgl.EID], batch.e_id)
    # Every edge of the DGL graph is an edge of the original graph, through the global ids.
    src, dst = g.edges(order="eid")
    original = set(edge_set(*data.edge_index))
    assert set(edge_set(batch.n_id[src], batch.n_id[dst])) <= original
    # A DGL sum aggregation equals the same aggregation on the PyG batch.
    h = torch.randn(g.num_nodes(), 5)
    g.ndata["h"] = h
    g.update_all(dgl.function.copy_u("h", "m"), dgl.function.sum("m", "out"))
    expected = torch.zeros_like(h).index_add_(0, batch.edge_index[1], h[batch.edge_index[0]])
    torch.testing.assert_close(g.ndata["out"], expected)
    back = from_dgl(g)
    assert torch.equal(back.n_id, batch.n_id) and torch.equal(back.e_id, batch.e_id)


def test_csr_graph_to_dgl_and_back_feeds_our_sampler():
    matrix = sp.random(25, 25, density=0.15, random_state=3, format="csr")
    csr = CSRGraph.from_scipy(matrix)
    g = to_dgl(csr)
    assert torch.equal(g.in_degrees(), torch.from_numpy(np.diff(csr.indptr)))
    # DGL graph -> Data -> our sampler: the same batches as sampling the CSR directly.
    ours = NeighborSampler(csr, [4, 3], seed=9).sample(np.array([1, 2, 3]))
    theirs = NeighborSampler(from_dgl(g), [4, 3], seed=9).sample(np.array([1, 2, 3]))
    assert torch.equal(ours.n_id, theirs.n_id) and torch.equal(ours.edge_index, theirs.edge_index)


def test_heterogeneous_batch_round_trip():
    train = sp.random(12, 15, density=0.3, random_state=0, format="csr")
    train.data[:] = 1
    sampler = LinkNeighborSampler(train, [3, 2], batch_size=4, seed=1, heterogeneous=True)
    batch = next(iter(sampler.loader(epoch=0)))
    g = to_dgl(batch)
    assert set(g.canonical_etypes) == {("user", "rates", "item"), ("item", "rated_by", "user")}
    for t in ("user", "item"):
        assert g.num_nodes(t) == batch[t].num_nodes
        assert torch.equal(g.nodes[t].data[dgl.NID], batch[t].n_id)
    back = from_dgl(g)
    assert isinstance(back, HeteroData)
    for et in batch.edge_types:
        assert torch.equal(back[et].edge_index, batch[et].edge_index)
        assert torch.equal(back[et].e_id, batch[et].e_id)
    # Edges point the right way: a "rates" edge goes from a user who rated the item.
    src, dst = g.edges(etype=("user", "rates", "item"))
    users, items = g.nodes["user"].data[dgl.NID][src], g.nodes["item"].data[dgl.NID][dst]
    assert all(train[u, i] for u, i in zip(users.tolist(), items.tolist()))


def test_relation_dict_to_heterograph():
    train = sp.random(6, 8, density=0.4, random_state=1, format="csr")
    relations = {("item", "rated_by", "user"): train, ("user", "rates", "item"): train.T.tocsr()}
    g = to_dgl(relations, num_nodes={"user": 6, "item": 8})
    assert g.num_edges(("user", "rates", "item")) == train.nnz
    assert torch.equal(g.in_degrees(etype=("item", "rated_by", "user")),
                       torch.from_numpy(np.diff(train.indptr)).long())


def test_dgl_sampler_with_every_neighbour_matches_ours():
    # One hop, all neighbours: DGL's and graphrec's samplers draw the same edge set.
    train = sp.random(20, 30, density=0.2, random_state=4, format="csr")
    csr = bipartite_adjacency(train)
    g = to_dgl(csr)
    seeds = torch.tensor([0, 3, 25, 40])
    ours = NeighborSampler(csr, [-1], seed=0).sample(seeds)
    frontier = dgl.sampling.sample_neighbors(g, seeds, -1)
    src, dst = frontier.edges()
    assert edge_set(src, dst) == edge_set(ours.n_id[ours.edge_index[0]], ours.n_id[ours.edge_index[1]])
    # Through DGL's block sampler and back into our batch layout.
    _, _, blocks = dgl.dataloading.NeighborSampler([-1]).sample_blocks(g, seeds)
    batch = blocks_to_batch(blocks)
    assert batch.batch_size == 4 and torch.equal(batch.n_id[:4], seeds)
    assert edge_set(batch.n_id[batch.edge_index[0]], batch.n_id[batch.edge_index[1]]) == edge_set(src, dst)


def test_core_does_not_import_dgl():
    import subprocess
    import sys

    code = "import sys, graphrec, graphrec.sampling, graphrec.data, graphrec.data.dgl; print('dgl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
