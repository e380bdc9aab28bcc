"""The one sampler protocol (graphrec.sampling.base): ``sample(seeds)`` plus a loader from (epoch, start).

For every sampler, ``loader(epoch, start=k)`` yields exactly batches k.. of ``loader(epoch)``, and
the k skipped batches are never sampled; Trainer runs that resume mid-epoch stay exact.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData

from graphrec import runs
from graphrec.config import build_run_config
from graphrec.data.categorical import categorical_graph
from graphrec.data.interactions import InteractionGraph
from graphrec.kernels.sampling import _CHUNK
from graphrec.models import get_model_entry
from graphrec.sampling import (BPRBatch, BPRSampler, LinkNeighborSampler, NeighborSampler, NodeSeeds, Sampler,
                               SeedSchedule)
from graphrec.train import Trainer, load_checkpoint


def _interactions(num_users=60, num_items=80, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.random((num_users, num_items)) < density
    dense[np.arange(num_users), rng.integers(0, num_items, num_users)] = True
    return sp.csr_matrix(dense.astype(np.float32))


def _bpr():
    sampler = BPRSampler(_interactions(), batch_size=32, num_negatives=2, seed=4)
    return sampler, sampler.loader


def _link():
    sampler = LinkNeighborSampler(_interactions(seed=1), [3, 2], batch_size=32, seed=4)
    return sampler, sampler.loader


def _link_hetero():
    sampler = LinkNeighborSampler(_interactions(seed=2), [3, 2], batch_size=32, num_negatives=2, seed=4,
                                  heterogeneous=True)
    return sampler, sampler.loader


def _neighbor():
    sampler = NeighborSampler(_interactions(num_users=120, num_items=120, seed=3), [3, 2], seed=4)
    return sampler, lambda epoch, start=0, num_workers=0: sampler.loader(
        batch_size=16, epoch=epoch, start=start, num_workers=num_workers)


def _neighbor_hetero():
    matrix = _interactions(seed=5)
    sampler = NeighborSampler({("item", "to", "user"): matrix, ("user", "to", "item"): matrix.T.tocsr()}, [3, 2],
                              seed=4, num_nodes={"user": matrix.shape[0], "item": matrix.shape[1]})
    return sampler, lambda epoch, start=0, num_workers=0: sampler.loader(
        batch_size=16, epoch=epoch, start=start, seed_type="user", num_workers=num_workers)


def _same(a, b) -> bool:
    if isinstance(a, BPRBatch):
        return all(torch.equal(x, y) for x, y in zip((a.users, a.pos_items, a.neg_items),
                                                     (b.users, b.pos_items, b.neg_items)))
    if isinstance(a, HeteroData):
        return all(torch.equal(a[t].n_id, b[t].n_id) for t in a.node_types) and all(
            torch.equal(a[et].edge_index, b[et].edge_index) for et in a.edge_types)
    return torch.equal(a.n_id, b.n_id) and torch.equal(a.edge_index, b.edge_index)


@pytest.mark.parametrize("make", [_bpr, _link, _link_hetero, _neighbor, _neighbor_hetero],
                         ids=["bpr", "link", "link-hetero", "neighbor", "neighbor-hetero"])
def test_loader_from_start_yields_the_tail_without_sampling_the_skipped_batches(make):
    sampler, loader = make()
    assert isinstance(sampler, Sampler)
    full = list(loader(2))
    assert len(full) >= 4
    calls = []
    sample = sampler.sample
    sampler.sample = lambda seeds, batch_seed=None: calls.append(batch_seed) or sample(seeds, batch_seed=batch_seed)
    for start in (0, 1, 3, len(full)):
        calls.clear()
        tail = list(loader(2, start=start))
        assert len(tail) == len(full) - start and len(calls) == len(tail)
        assert all(_same(a, b) for a, b in zip(tail, full[start:]))
    assert all(_same(a, b) for a, b in zip(loader(2, start=1, num_workers=2), full[1:]))
    assert not _same(next(iter(loader(3))), full[0])


def test_bpr_draws_no_negatives_for_the_chunks_it_skips(monkeypatch):
    train = _interactions(num_users=500, num_items=400, density=0.1, seed=6)   # ~5 chunks of triples
    assert train.nnz > 4 * _CHUNK
    reference = list(BPRSampler(train, batch_size=1000, seed=1).loader(0))
    sampler = BPRSampler(train, batch_size=1000, seed=1)
    monkeypatch.setattr(sampler, "_window", lambda: _CHUNK)    # one chunk of negatives per draw
    drawn = []
    negatives = sampler._negatives
    monkeypatch.setattr(sampler, "_negatives", lambda users, seeds, begin, end: drawn.append(begin) or
                        negatives(users, seeds, begin, end))
    start = 3 * _CHUNK // 1000 + 1
    tail = list(sampler.loader(0, start=start))
    assert all(_same(a, b) for a, b in zip(tail, reference[start:])) and len(tail) == len(reference) - start
    assert min(drawn) == (start * 1000 // _CHUNK) * _CHUNK >= 3 * _CHUNK


def test_node_seeds_cover_every_seed_once_per_epoch():
    schedule = NodeSeeds(np.arange(10, 60), batch_size=16, seed=3)
    assert isinstance(schedule, SeedSchedule) and len(schedule) == 4
    batches = list(schedule.epoch_seeds(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(10, 60))
    assert [b.tolist() for b in schedule.epoch_seeds(1, start=2)] == [b.tolist() for b in batches[2:]]
    assert len(NodeSeeds(np.arange(50), batch_size=16, drop_last=True)) == 3


# ----------------------------------------------------------------- exact resume of sampled Trainer runs
def _recommendation_trainer(run_dir):
    graph = InteractionGraph.from_scipy(_interactions(num_users=40, num_items=50, density=0.15, seed=7), seed=0)
    config = build_run_config("lightgcn", "gowalla", overrides={
        "train.epochs": 3, "train.batch_size": 16, "train.eval_every": 1, "train.seed": 3, "sampling.mode": "sampled",
        "sampling.fanouts": [3, 2], "model.embedding_dim": 8, "model.num_layers": 2})
    return _trainer(config, graph, run_dir, lambda task: task.link_sampler)


def _node_classification_trainer(run_dir):
    rng = np.random.default_rng(0)
    codes, pairs = rng.integers(0, 4, (60, 3)), rng.integers(0, 60, (2, 180))
    graph = categorical_graph(codes, pairs, (codes[:, 0] + codes[:, 1]) % 3, name="tiny")
    config = build_run_config("catgcn", "catgcn-synthetic", overrides={
        "model.embedding_dim": 8, "model.num_hops": 2, "model.dropout": 0.2, "train.epochs": 3, "train.patience": 0,
        "train.batch_size": 12, "sampling.fanouts": [2, 2], "train.seed": 1, "sampling.mode": "sampled"})
    return _trainer(config, graph, run_dir, lambda task: task.sampler)


def _trainer(config, data, run_dir, sampler_of):
    torch.manual_seed(0)
    task = runs.make_task(config, data)
    model = task.build_model(get_model_entry(config.model), config.model_config)
    trainer = Trainer(model, task, config.train, run_dir=run_dir, run_config=config.to_dict())
    sampler = sampler_of(task)
    trainer.sample_calls = []
    sample = sampler.sample
    sampler.sample = lambda seeds, batch_seed=None: trainer.sample_calls.append(batch_seed) or sample(
        seeds, batch_seed=batch_seed)
    return trainer


@pytest.mark.parametrize("make", [_recommendation_trainer, _node_classification_trainer],
                         ids=["recommendation", "node-classification"])
def test_sampled_run_resumed_mid_epoch_equals_uninterrupted_and_samples_only_what_is_left(make, tmp_path):
    reference = make(tmp_path / "a")
    reference.fit()
    per_epoch = reference.task.num_batches()
    assert per_epoch >= 3 and len(reference.sample_calls) == 3 * per_epoch

    interrupted = make(tmp_path / "b")
    loss = interrupted.task.training_loss
    steps = []

    def loss_then_stop(model, batch):
        steps.append(1)
        if len(steps) == per_epoch + 2:
            interrupted.request_stop()
        return loss(model, batch)

    interrupted.task.training_loss = loss_then_stop
    assert interrupted.fit()["status"] == "interrupted"
    assert (load_checkpoint(tmp_path / "b" / "last.pt")["step"]) == 2

    torch.manual_seed(12345)
    resumed = make(tmp_path / "b")
    resumed.resume()
    assert resumed.fit()["status"] == "completed"
    assert resumed.sample_calls == reference.sample_calls[per_epoch + 2:]   # the skipped batches: never drawn
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    rows = [[json.loads(line) for line in open(tmp_path / run / "metrics.jsonl")] for run in ("a", "b")]
    strip = [[{k: v for k, v in r.items() if k in ("epoch", "split", "loss")} for r in run if r["split"] != "train"]
             for run in rows]
    assert strip[0] == strip[1]
