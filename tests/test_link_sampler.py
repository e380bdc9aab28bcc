"""graphrec.sampling.link.LinkNeighborSampler: BPR triples with their sampled neighbourhoods."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData
from torch_geometric.nn import SAGEConv

from graphrec.sampling.bpr import BPRSampler
from graphrec.sampling.link import ITEM_TO_USER, USER_TO_ITEM, LinkNeighborSampler


def _train(seed=0, n_users=40, n_items=60):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.08
    dense[:, 0] = True
    return sp.csr_matrix(dense.astype(np.float32))


def _edges_are_interactions(train, n_id, edge_index, num_users):
    """Every sampled edge of the homogeneous user-item graph links a user and an item of train."""
    src, dst = n_id[edge_index[0]], n_id[edge_index[1]]
    user_side = src < num_users
    users = np.where(user_side, src, dst)
    items = np.where(user_side, dst, src) - num_users
    return bool(((src < num_users) != (dst < num_users)).all() and train.toarray()[users, items].all())


@pytest.mark.parametrize("num_negatives", [1, 3])
def test_homogeneous_batches_index_their_triples(num_negatives):
    train = _train()
    sampler = LinkNeighborSampler(train, [3, 2], batch_size=16, num_negatives=num_negatives, seed=2)
    triples = list(BPRSampler(train, batch_size=16, num_negatives=num_negatives, seed=2).loader(0))
    batches = list(sampler.loader(0))
    assert len(batches) == len(sampler) == len(triples)
    num_users = train.shape[0]
    for data, triple in zip(batches, triples):
        n_id = data.n_id
        assert torch.equal(n_id[data.src_index], triple.users)
        assert torch.equal(n_id[data.dst_pos_index], triple.pos_items + num_users)
        neg = triple.neg_items if num_negatives > 1 else triple.neg_items[:, 0]
        assert data.dst_neg_index.shape == neg.shape
        assert torch.equal(n_id[data.dst_neg_index], neg + num_users)
        # the seeds are the distinct users and items of the triples, first
        seeds = torch.cat([triple.users, triple.pos_items + num_users, triple.neg_items.reshape(-1) + num_users])
        assert data.batch_size == torch.unique(seeds).numel()
        assert set(n_id[:data.batch_size].tolist()) == set(seeds.tolist())
        assert _edges_are_interactions(train, n_id.numpy(), data.edge_index.numpy(), num_users)
    # reproducible, threads or not
    again = list(sampler.loader(0, num_workers=2))
    assert all(torch.equal(a.edge_index, b.edge_index) and torch.equal(a.n_id, b.n_id)
               for a, b in zip(batches, again))
    resumed = list(sampler.loader(0, start=2))
    assert torch.equal(resumed[0].edge_index, batches[2].edge_index)


def test_heterogeneous_batches_put_indices_on_their_node_types():
    train = _train(seed=1)
    sampler = LinkNeighborSampler(train, [4, 3], batch_size=20, num_negatives=2, seed=0, heterogeneous=True)
    triple = next(iter(BPRSampler(train, batch_size=20, num_negatives=2, seed=0).loader(1)))
    data = next(iter(sampler.loader(1)))
    assert isinstance(data, HeteroData)
    users, items = data["user"].n_id, data["item"].n_id
    assert torch.equal(users[data["user"].src_index], triple.users)
    assert torch.equal(items[data["item"].dst_pos_index], triple.pos_items)
    assert torch.equal(items[data["item"].dst_neg_index], triple.neg_items)
    dense = train.toarray().astype(bool)
    u2i = data[USER_TO_ITEM].edge_index
    i2u = data[ITEM_TO_USER].edge_index
    assert u2i.shape[1] > 0 and i2u.shape[1] > 0
    assert dense[users[u2i[0]], items[u2i[1]]].all()
    assert dense[users[i2u[1]], items[i2u[0]]].all()


def test_a_pyg_bpr_step_runs_on_a_batch():
    train = _train(seed=3)
    num_nodes = sum(train.shape)
    sampler = LinkNeighborSampler(train, [5, 5], batch_size=32, seed=0)
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(num_nodes, 16)
    conv1, conv2 = SAGEConv(16, 16), SAGEConv(16, 16)
    params = list(embedding.parameters()) + list(conv1.parameters()) + list(conv2.parameters())
    optimizer = torch.optim.Adam(params, lr=0.01)
    data = next(iter(sampler.loader(0)))
    x = embedding(data.n_id)
    out = conv2(conv1(x, data.edge_index).relu(), data.edge_index)
    pos = (out[data.src_index] * out[data.dst_pos_index]).sum(-1)
    neg = (out[data.src_index] * out[data.dst_neg_index]).sum(-1)
    loss = F.softplus(neg - pos).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and embedding.weight.grad is not None
    touched = embedding.weight.grad.abs().sum(1) > 0
    assert set(torch.nonzero(touched).reshape(-1).tolist()) <= set(data.n_id.tolist())
