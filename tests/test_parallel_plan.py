"""graphrec.parallel without processes: METIS plans, layer blocks, and the engine's single-process schedule
against the plain modules (the reference every distributed test builds on)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("pymetis")

from graphrec.parallel.engine import ParallelConfig, PipelineEngine  # noqa: E402
from graphrec.parallel.partition import build_rank_plans, partition_and_chunk  # noqa: E402
from graphrec.parallel.stages import split_layers  # noqa: E402


def _random_graph(n=120, m=500, seed=0):
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (m,), generator=generator)
    dst = torch.randint(0, n, (m,), generator=generator)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    return torch.unique(edge_index, dim=1), n


@pytest.mark.parametrize("parts,chunks", [(1, 1), (2, 1), (1, 3), (3, 2)])
def test_plans_cover_graph_and_messages_pair_up(parts, chunks):
    edge_index, n = _random_graph()
    node_parts, node_chunks = partition_and_chunk(edge_index, n, parts, chunks, seed=0)
    assert sorted(set(node_parts.tolist())) == list(range(parts))
    for merge in (False, True):
        plans = build_rank_plans(edge_index, n, node_parts, node_chunks, merge_chunks=merge)
        owned = torch.cat([p.owned_ids for p in plans])
        assert sorted(owned.tolist()) == list(range(n))            # every node owned exactly once
        total_edges = sum(int(c.src.numel()) for p in plans for c in p.chunks)
        assert total_edges == edge_index.shape[1] + n               # every edge (+ self loop) computed once
        for plan in plans:
            assert plan.num_chunks == (1 if merge else chunks)
            for number, chunk in enumerate(plan.chunks):
                for peer in range(parts):                            # what q sends p == what p expects from q
                    expected = plan.chunks[number].recv_pos[peer].numel()
                    assert plans[peer].chunks[number].send_pos[plan.part].numel() == expected
                    sent = plans[peer].owned_ids[plans[peer].chunks[number].own][
                        plans[peer].chunks[number].send_pos[plan.part]]
                    halo_ids = plan.global_ids[chunk.halo][chunk.recv_pos[peer]]
                    assert torch.equal(sent, halo_ids)
                if merge or chunks == 1:
                    assert chunk.stale.numel() == 0


def test_metis_partition_is_deterministic_and_balanced():
    edge_index, n = _random_graph(400, 1600)
    a, _ = partition_and_chunk(edge_index, n, 4, 1, seed=3)
    b, _ = partition_and_chunk(edge_index, n, 4, 1, seed=3)
    assert np.array_equal(a, b)
    assert np.bincount(a).max() <= 1.1 * n / 4


def test_split_layers():
    assert split_layers(16, 2) == [(0, 8), (8, 16)]
    assert split_layers(5, 3) == [(0, 2), (2, 4), (4, 5)]
    with pytest.raises(ValueError):
        split_layers(2, 3)


def _tiny_task(seed=0):
    edge_index, n = _random_graph(90, 300, seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 12, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    perm = torch.randperm(n, generator=generator)
    masks = {name: torch.zeros(n, dtype=torch.bool) for name in ("train", "valid", "test")}
    masks["train"][perm[:30]], masks["valid"][perm[30:60]], masks["test"][perm[60:]] = True, True, True
    return x, edge_index, y, masks


@pytest.mark.parametrize("name", ["gcn", "gcnii"])
def test_single_schedule_equals_plain_module_training(name):
    """The engine's layer-block maths (1 stage, 1 chunk) trains exactly like the registered module."""
    from graphrec.models import create_model

    x, edge_index, y, masks = _tiny_task()
    kwargs = {"num_layers": 4, "dropout": 0.0, "hidden_channels": 16}
    torch.manual_seed(0)
    plain = create_model(name, num_features=12, num_classes=3, **kwargs)
    torch.manual_seed(0)
    staged = create_model(name, num_features=12, num_classes=3, **kwargs)
    engine = PipelineEngine(staged, x, edge_index, y, masks, ParallelConfig(mode="single"), lr=0.01, weight_decay=5e-4)
    optimizer = torch.optim.Adam(plain.parameters(), lr=0.01, weight_decay=5e-4)
    for epoch in range(4):
        plain.train()
        loss = F.cross_entropy(plain(x, edge_index)[masks["train"]], y[masks["train"]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert engine.train_epoch(epoch) == pytest.approx(float(loss.detach()), rel=1e-5)
    for (key, a), b in zip(plain.named_parameters(), staged.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=key)
    plain.eval()
    accuracy = float((plain(x, edge_index).argmax(1) == y)[masks["test"]].float().mean())
    assert engine.evaluate()["test"]["accuracy"] == pytest.approx(accuracy)


def test_engine_resume_continues_exactly():
    from graphrec.models import create_model

    x, edge_index, y, masks = _tiny_task(1)
    config = ParallelConfig(mode="single")

    def engine():
        torch.manual_seed(0)
        model = create_model("gcnii", num_features=12, num_classes=3, num_layers=4, hidden_channels=16, dropout=0.5)
        return PipelineEngine(model, x, edge_index, y, masks, config, lr=0.01, weight_decay=5e-4, seed=7)

    straight = engine()
    losses = [straight.train_epoch(e) for e in range(4)]
    first = engine()
    for e in range(2):
        first.train_epoch(e)
    resumed = engine()
    resumed.load_state_dict(first.state_dict())
    assert [resumed.train_epoch(e) for e in range(2, 4)] == pytest.approx(losses[2:], rel=1e-6)


def test_parallel_config_layouts():
    assert ParallelConfig(mode="pipe").layout(4) == (4, 1)
    assert ParallelConfig(mode="graph").layout(4) == (1, 4)
    assert ParallelConfig(mode="hybrid", stages=2).layout(4) == (2, 2)
    assert ParallelConfig(mode="graph", chunks=8).num_chunks() == 1
    assert ParallelConfig(mode="pipe", chunks=8, staleness=False).num_chunks() == 1
    with pytest.raises(ValueError):
        ParallelConfig(mode="hybrid", stages=3).layout(4)
    with pytest.raises(ValueError):
        ParallelConfig(mode="sideways")


@pytest.mark.data
def test_fit_parallel_run_folder_and_exact_resume(tmp_path, data_root, monkeypatch):
    """The --parallel run loop on one process (1 stage, 2 chunks): best.pt loads into the plain module,
    and a run stopped after 2 epochs then resumed ends with the uninterrupted run's weights."""
    from graphrec.config import build_run_config
    from graphrec.parallel.fit import fit_parallel
    from graphrec.runs import load_trained
    from graphrec.train.checkpoint import load_checkpoint

    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    overrides = {"train.epochs": 4, "train.eval_every": 1, "model.num_layers": 4, "model.hidden_channels": 16}
    config = build_run_config("gcnii", "cora", str(data_root), None, overrides)
    parallel = ParallelConfig(mode="pipe", chunks=2)
    summary = fit_parallel(config, parallel, tmp_path / "straight", checkpoint_every=2)
    assert summary["epochs_run"] == 4 and summary["parallel"]["chunks"] == 2
    model, task, _ = load_trained(tmp_path / "straight" / "best.pt", data_dir=str(data_root))
    assert task.evaluate(model, "test")["accuracy"] == pytest.approx(summary["results"]["test"]["accuracy"])

    short = build_run_config("gcnii", "cora", str(data_root), None, {**overrides, "train.epochs": 2})
    fit_parallel(short, parallel, tmp_path / "resumed", checkpoint_every=2)
    fit_parallel(config, parallel, tmp_path / "resumed", resume=True, checkpoint_every=2)
    straight = load_checkpoint(tmp_path / "straight" / "parallel" / "rank0-epoch4.pt")["engine"]["params"]
    resumed = load_checkpoint(tmp_path / "resumed" / "parallel" / "rank0-epoch4.pt")["engine"]["params"]
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, msg=name)


def test_historical_embeddings_are_exact_when_weights_do_not_change():
    """With lr 0 and no dropout, an exact (warm-up) epoch fills the history tables; every later chunked
    epoch, reading other chunks' rows from them, must then compute exactly the exact schedule's loss.
    Pins the stale-row indexing of the chunk plans."""
    from graphrec.models import create_model

    x, edge_index, y, masks = _tiny_task()
    torch.manual_seed(0)
    model = create_model("gcnii", num_features=12, num_classes=3, num_layers=6, hidden_channels=16, dropout=0.0)
    engine = PipelineEngine(model, x, edge_index, y, masks, ParallelConfig(mode="pipe", chunks=3, warmup_epochs=1),
                            lr=0.0, weight_decay=0.0)
    assert min(engine.layout_summary()["stale_rows"]) > 0
    exact, *chunked = [engine.train_epoch(epoch) for epoch in range(3)]
    assert chunked == pytest.approx([exact, exact], rel=1e-6)
