"""Data-parallel recommenders (graphrec.parallel.ddp) without processes: the batch sharding and the
Trainer loop through the DDP task wrapper (one process: the wrapper is the plain loss module)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.config import TrainConfig
from graphrec.data.interactions import InteractionGraph
from graphrec.parallel.ddp import ShardedTask
from graphrec.train.recommendation import RecommendationTask


def _graph():
    rng = np.random.default_rng(0)
    matrix = sp.random(60, 80, density=0.1, random_state=rng, format="csr")
    return InteractionGraph.from_scipy(matrix, seed=0, name="tiny")


def test_batches_are_split_round_robin_without_overlap():
    task = RecommendationTask(_graph(), TrainConfig(batch_size=16, seed=1, eval_every=1))
    shards = [ShardedTask(task, rank, 2) for rank in (0, 1)]
    assert shards[0].num_batches() == shards[1].num_batches() == task.num_batches() // 2
    full = [batch.users.tolist() for batch in task.train_batches(3)]
    mine = [[batch.users.tolist() for batch in shard.train_batches(3)] for shard in shards]
    assert mine[0] == full[0::2][: shards[0].num_batches()]
    assert mine[1] == full[1::2][: shards[1].num_batches()]
    resumed = [batch.users.tolist() for batch in shards[1].train_batches(3, start=1)]
    assert resumed == mine[1][1:]


def test_trainer_runs_through_the_sharded_task():
    from graphrec.models import get_model_entry
    from graphrec.train import Trainer

    config = TrainConfig(batch_size=16, seed=1, epochs=2, eval_every=1, lr=0.01)
    task = ShardedTask(RecommendationTask(_graph(), config), 0, 1)
    torch.manual_seed(0)
    model = task.build_model(get_model_entry("lightgcn"), get_model_entry("lightgcn").config_cls())
    task.wrap(model)
    summary = Trainer(model, task, config).fit()
    assert summary["epochs_run"] == 2 and summary["data_parallel"]["world_size"] == 1


def _ddp_worker() -> None:
    """Run by each of 2 ranks (this file as a script): rank-dependent init, DDP must broadcast rank 0's
    weights and keep the replicas identical through training; rank 0 writes OK or the failure."""
    import sys

    import torch.distributed as dist

    from graphrec.models import get_model_entry
    from graphrec.parallel.launch import init_distributed
    from graphrec.train import Trainer

    rank, world_size, _ = init_distributed("", 30)
    lines = []
    for name in ("lightgcn", "ultragcn"):
        config = TrainConfig(batch_size=16, seed=1, epochs=2, eval_every=1, lr=0.01)
        task = ShardedTask(RecommendationTask(_graph(), config), rank, world_size)
        torch.manual_seed(rank)
        entry = get_model_entry(name)
        model = task.build_model(entry, entry.config_cls())
        task.wrap(model)
        Trainer(model, task, config).fit()
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        replicas = [torch.zeros_like(flat) for _ in range(world_size)]
        dist.all_gather(replicas, flat)
        lines.append(f"{name} {all(torch.equal(replicas[0], r) for r in replicas)}")
    if rank == 0:
        with open(sys.argv[1], "w") as out:
            out.write("\n".join(lines))
    dist.destroy_process_group()


def test_ddp_replicas_stay_identical_across_two_processes(tmp_path):
    import sys

    from graphrec.parallel.launch import launch

    assert launch([sys.executable, __file__, str(tmp_path / "ok.txt")], 2) == 0
    assert (tmp_path / "ok.txt").read_text().split("\n") == ["lightgcn True", "ultragcn True"]


if __name__ == "__main__":
    _ddp_worker()


def test_each_rank_refreshes_historical_layers_when_another_rank_owns_the_refresh_batch():
    from graphrec.config import SamplingConfig
    from graphrec.models import get_model_entry
    from graphrec.train.sampled_recommendation import SampledRecommendationTask

    config = TrainConfig(batch_size=8, seed=1, optimizer="sparse_adam", weight_decay=0.0)
    task = SampledRecommendationTask(_graph(), config, SamplingConfig(mode="sampled", fanouts=(3,), history_refreshes=2))
    shard = ShardedTask(task, rank=1, world_size=2)
    entry = get_model_entry("lightgcn")
    model = shard.build_model(entry, entry.config_cls(embedding_dim=4, num_layers=3))
    assert 1 < task.history_interval() < task.num_batches()  # two refreshes; batch 0's belongs to rank 0
    refreshed = []
    original = model.deep_layer_sum
    model.deep_layer_sum = lambda first: refreshed.append(first) or original(first)
    for batch in shard.train_batches(0):
        task.training_loss(model, batch)
    assert len(refreshed) == 2  # at rank 1's first batch, and at its first batch after the half-way refresh
    assert set(shard.state_dict()) == {"history"} and torch.equal(shard.state_dict()["history"], task.history)
