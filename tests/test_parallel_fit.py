"""``--parallel pipe`` runs through the Trainer's loop: the same learning-rate schedule, optimizer and
early stopping as a single-process run, and exact resume (2 gloo ranks on CPU, real Cora).

One launch of 2 ranks runs every scenario in sequence (start-up and imports dominate), each with
``fit_parallel`` into its own run folder; each test compares a folder with a single-process run of
the same config. The pipeline runs one chunk without dropout, where it computes exactly what one
process computes, so whole loss trajectories must agree, not only the logged settings. A second
launch runs ``fit_ddp`` (data-parallel LightGCN on a tiny graph) through the same loop.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("pymetis")

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = {"model.num_layers": 4, "model.hidden_channels": 16, "model.dropout": 0.0, "train.eval_every": 1,
         "train.patience": 0, "train.num_threads": 1}
EXACT = {"mode": "pipe", "chunks": 1}
SCENARIOS = {
    "cosine": ({**SMALL, "train.epochs": 5, "train.lr": 0.02, "train.lr_schedule": "cosine", "train.lr_min": 0.001},
               EXACT),
    "sgd": ({**SMALL, "train.epochs": 4, "train.optimizer": "sgd", "train.lr": 0.5}, EXACT),
    # constant accuracy (weights barely move): 2 evaluations without a new best stop the run at epoch 3
    "patience": ({**SMALL, "train.epochs": 30, "train.lr": 1e-7, "train.monitor": "accuracy",
                  "train.monitor_mode": "max", "train.patience": 2}, EXACT),
    # the validation loss of this small setting rises from epoch 1: window_mean stops just after half
    # the epochs, where patience 2 alone (the patience rule) would have stopped at epoch 3
    "window_mean": ({**SMALL, "train.epochs": 8, "train.early_stopping": "window_mean", "train.patience": 2,
                     "train.monitor": "loss", "train.monitor_mode": "min"}, EXACT),
}
RESUME = {**SMALL, "train.lr_schedule": "cosine", "train.lr_decay_epochs": 4}
CHUNKED = {"mode": "pipe", "chunks": 2}


def _config(data_root, overrides):
    from graphrec.config import build_run_config

    return build_run_config("gcnii", "cora", str(data_root), None, overrides)


def _worker(spec_path: str) -> None:
    """Each rank: every scenario through fit_parallel, then the interrupted-and-resumed run."""
    from graphrec.parallel.engine import ParallelConfig
    from graphrec.parallel.fit import fit_parallel
    from graphrec.parallel.launch import init_distributed

    spec = json.loads(Path(spec_path).read_text())
    root, data_root = Path(spec["out"]), spec["data_root"]
    init_distributed("", 60.0)  # one group for every run (fit_parallel leaves a caller's group open)
    for name, (overrides, parallel) in SCENARIOS.items():
        fit_parallel(_config(data_root, overrides), ParallelConfig(**parallel), root / name)
    parallel = ParallelConfig(**CHUNKED)
    fit_parallel(_config(data_root, {**RESUME, "train.epochs": 4}), parallel, root / "straight", checkpoint_every=2)
    fit_parallel(_config(data_root, {**RESUME, "train.epochs": 2}), parallel, root / "resumed", checkpoint_every=2)
    fit_parallel(_config(data_root, {**RESUME, "train.epochs": 4}), parallel, root / "resumed", resume=True,
                 checkpoint_every=2)
    torch.distributed.destroy_process_group()


def _ddp_config(epochs: int):
    from graphrec.config import RunConfig, TrainConfig
    from graphrec.models import get_model_entry

    train = TrainConfig(batch_size=16, seed=1, epochs=epochs, eval_every=1, patience=0, lr=0.01,
                        lr_schedule="cosine", lr_decay_epochs=4, num_threads=1)
    return RunConfig(model="lightgcn", data="tiny", model_config=get_model_entry("lightgcn").config_cls(), train=train)


def _tiny_interactions():
    import numpy as np
    import scipy.sparse as sp

    from graphrec.data.interactions import InteractionGraph

    matrix = sp.random(60, 80, density=0.1, random_state=np.random.default_rng(0), format="csr")
    return InteractionGraph.from_scipy(matrix, seed=0, name="tiny")


def _ddp_worker(out: str) -> None:
    """Each rank: fit_ddp straight for 4 epochs, and stopped after 2 then resumed to 4."""
    from graphrec.parallel.ddp import fit_ddp
    from graphrec.parallel.launch import init_distributed

    init_distributed("", 60.0)
    graph = _tiny_interactions()
    fit_ddp(_ddp_config(4), Path(out) / "straight", data=graph)
    fit_ddp(_ddp_config(2), Path(out) / "resumed", data=graph)
    fit_ddp(_ddp_config(4), Path(out) / "resumed", resume=True, data=graph)
    torch.distributed.destroy_process_group()


def _launch_this_file(*args: str) -> int:
    from graphrec.parallel.launch import launch

    env = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env if env else "")  # this checkout's graphrec
    try:
        return launch([sys.executable, __file__, *args], 2)
    finally:
        if env is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env


def _rows(run_dir: Path, split: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [row for row in rows if row.get("split") == split]


@pytest.fixture(scope="module")
def pipe_runs(tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("parallel_fit")
    (folder / "spec.json").write_text(json.dumps({"out": str(folder), "data_root": str(data_root)}))
    assert _launch_this_file(str(folder / "spec.json")) == 0, "the 2-rank run failed"
    return folder


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory, data_root):
    from graphrec import runs

    folder = tmp_path_factory.mktemp("single_fit")
    return {name: runs.fit(_config(data_root, overrides), folder / name)[1] | {"run_dir": folder / name}
            for name, (overrides, _) in SCENARIOS.items()}


@pytest.mark.data
def test_pipe_logs_the_cosine_schedule_of_a_single_process_run(pipe_runs, single_runs):
    pipe, single = _rows(pipe_runs / "cosine", "train"), _rows(single_runs["cosine"]["run_dir"], "train")
    assert [row["lr"] for row in pipe] == [row["lr"] for row in single]
    assert len({row["lr"] for row in pipe}) == 5  # the rate really moved every epoch
    assert [row["loss"] for row in pipe] == pytest.approx([row["loss"] for row in single], rel=1e-4)
    summary = json.loads((pipe_runs / "cosine" / "summary.json").read_text())
    assert summary["parallel"]["world_size"] == 2 and summary["communication_bytes_all_ranks"]["train/pipe_forward"] > 0


@pytest.mark.data
def test_pipe_trains_with_the_configured_optimizer(pipe_runs, single_runs):
    """SGD's trajectory, not Adam's: the engine's optimizer comes from train.optimizer."""
    pipe, single = _rows(pipe_runs / "sgd", "train"), _rows(single_runs["sgd"]["run_dir"], "train")
    assert [row["loss"] for row in pipe] == pytest.approx([row["loss"] for row in single], rel=1e-4)


@pytest.mark.data
@pytest.mark.parametrize("name", ["patience", "window_mean"])
def test_pipe_stops_early_like_a_single_process_run(pipe_runs, single_runs, name):
    summary = json.loads((pipe_runs / name / "summary.json").read_text())
    single = single_runs[name]
    assert single["status"] == "early_stopped"  # else the comparison would test nothing
    assert (summary["status"], summary["epochs_run"]) == (single["status"], single["epochs_run"])
    assert summary["epochs_run"] == {"patience": 3, "window_mean": 5}[name]


@pytest.mark.data
def test_interrupted_pipe_run_resumes_exactly(pipe_runs):
    from graphrec.train.checkpoint import load_checkpoint

    for rank in (0, 1):
        straight = load_checkpoint(pipe_runs / "straight" / "parallel" / f"rank{rank}-epoch4.pt")["engine"]
        resumed = load_checkpoint(pipe_runs / "resumed" / "parallel" / f"rank{rank}-epoch4.pt")["engine"]
        for name, value in straight["params"].items():
            torch.testing.assert_close(resumed["params"][name], value, rtol=0, atol=0, msg=name)
    assert [row["lr"] for row in _rows(pipe_runs / "resumed", "train")] == \
        [row["lr"] for row in _rows(pipe_runs / "straight", "train")]


def test_ddp_runs_through_the_trainer_and_resumes_exactly(tmp_path):
    """fit_ddp on 2 ranks through the same loop: the schedule is logged, and a run stopped after
    2 epochs then resumed ends with the uninterrupted run's weights."""
    from graphrec.train.checkpoint import load_checkpoint

    assert _launch_this_file("ddp", str(tmp_path)) == 0, "the 2-rank run failed"
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert summary["data_parallel"]["world_size"] == 2 and summary["epochs_run"] == 4
    lrs = [row["lr"] for row in _rows(tmp_path / "straight", "train")]
    assert len(lrs) == 4 and lrs[0] == 0.01 and lrs == sorted(lrs, reverse=True)
    assert [row["lr"] for row in _rows(tmp_path / "resumed", "train")] == lrs
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")["model_state"]
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")["model_state"]
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


def test_engine_optimizer_comes_from_make_optimizer():
    from graphrec.config import TrainConfig
    from graphrec.models import create_model
    from graphrec.parallel.engine import ParallelConfig, PipelineEngine

    torch.manual_seed(0)
    x, y = torch.randn(10, 4), torch.randint(0, 2, (10,))
    edge_index = torch.tensor([[i for i in range(9)] + [i + 1 for i in range(9)],
                               [i + 1 for i in range(9)] + [i for i in range(9)]])
    masks = {name: torch.ones(10, dtype=torch.bool) for name in ("train", "valid", "test")}
    model = create_model("gcnii", num_features=4, num_classes=2, num_layers=2, hidden_channels=8)
    engine = PipelineEngine(model, x, edge_index, y, masks, ParallelConfig(mode="single"),
                            optimizer_config=TrainConfig(optimizer="sgd", lr=0.1, weight_decay=1e-3))
    assert type(engine.optimizer) is torch.optim.SGD
    assert engine.optimizer.param_groups[0]["weight_decay"] == 1e-3
    assert all(p.requires_grad for p in model.parameters())  # only hidden for the optimizer's construction


@pytest.mark.parametrize("setting", [{"sampling.mode": "sampled"}, {"train.class_weighted_loss": True},
                                     {"train.monitor": "macro_f1"}])
def test_settings_a_pipeline_cannot_honour_are_refused(setting):
    from graphrec.config import build_run_config
    from graphrec.parallel.engine import ParallelConfig
    from graphrec.parallel.fit import check_parallel_config

    config = build_run_config("gcnii", "cora", None, None, setting)
    with pytest.raises(ValueError, match="cannot run with"):
        check_parallel_config(config, ParallelConfig(mode="pipe"))


if __name__ == "__main__":
    _ddp_worker(sys.argv[2]) if sys.argv[1] == "ddp" else _worker(sys.argv[1])
