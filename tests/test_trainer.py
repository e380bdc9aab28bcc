"""The Trainer: selection, checkpoints, exact resume, interrupts, NaN handling, run folder."""
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec.config import TrainConfig
from graphrec.data import InteractionGraph
from graphrec.models import get_model_entry
from graphrec.train import CheckpointError, NonFiniteLossError, RecommendationTask, Trainer, load_checkpoint


def synthetic_graph(seed=0):
    rng = np.random.default_rng(seed)
    matrix = sp.random(60, 40, density=0.15, random_state=rng, format="csr")
    return InteractionGraph.from_scipy(matrix, valid_fraction=0.1, test_fraction=0.2, seed=seed)


def make_trainer(run_dir, epochs=4, **overrides):
    settings = dict(epochs=epochs, batch_size=64, lr=0.01, eval_every=1, patience=0, seed=3)
    config = TrainConfig(**{**settings, **overrides})
    torch.manual_seed(0)
    task = RecommendationTask(synthetic_graph(), config)
    model = task.build_model(get_model_entry("lightgcn"), get_model_entry("lightgcn").config_cls(embedding_dim=8))
    return Trainer(model, task, config, run_dir=run_dir)


def test_fit_writes_the_run_folder(tmp_path):
    trainer = make_trainer(tmp_path)
    summary = trainer.fit()
    assert summary["status"] == "completed" and summary["epochs_run"] == 4
    assert summary["protocol"] == "validation" and summary["selected_on"] == "valid"
    assert set(summary["results"]) == {"valid", "test"}
    for name in ("config.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json", "curves.png"):
        assert (tmp_path / name).exists(), name
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["epoch"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]
    valid_rows = [r for r in rows if r["split"] == "valid"]
    best = max(valid_rows, key=lambda r: r["recall@20"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["results"]["valid"]["recall@20"] == pytest.approx(best["recall@20"])
    # Test is reported once, at the best-validation checkpoint.
    test_rows = [r for r in rows if r["split"] == "test"]
    assert len(test_rows) == 1 and test_rows[0]["final"] and test_rows[0]["epoch"] == best["epoch"]


def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path, stop_at_batch):
    reference = make_trainer(tmp_path / "a")
    reference.fit()

    interrupted = make_trainer(tmp_path / "b")
    per_epoch = interrupted.task.num_batches()
    assert per_epoch >= 3
    stop_at_batch(interrupted, per_epoch + 2)  # second epoch, after its second batch
    result = interrupted.fit()
    assert result["status"] == "interrupted"
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 2)  # one epoch done, two batches into the next

    torch.manual_seed(12345)  # a resumed run must not depend on the fresh process's RNG
    resumed = make_trainer(tmp_path / "b")
    resumed.resume()
    summary = resumed.fit()
    assert summary["status"] == "completed"
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    ref_rows = [json.loads(line) for line in open(tmp_path / "a" / "metrics.jsonl")]
    res_rows = [json.loads(line) for line in open(tmp_path / "b" / "metrics.jsonl")]
    strip = lambda rows: [{k: v for k, v in r.items() if k in ("epoch", "split", "recall@20")} for r in rows]
    assert strip(ref_rows) == strip(res_rows)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, epochs=5)
    original_loss = trainer.task.training_loss
    calls = {"n": 0}
    per_epoch = trainer.task.num_batches()

    def poisoned(model, batch):
        calls["n"] += 1
        loss = original_loss(model, batch)
        return loss * float("nan") if calls["n"] == 2 * per_epoch + 2 else loss

    trainer.task.training_loss = poisoned
    with pytest.raises(NonFiniteLossError, match=r"epoch 3, batch 2.*last good checkpoint"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model_state"].values())


def test_early_stopping_with_patience(tmp_path):
    trainer = make_trainer(tmp_path, epochs=50, patience=2, monitor="recall@20")
    values = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    trainer.task.evaluate = lambda model, split: {"recall@20": next(values)}
    summary = trainer.fit()
    assert summary["status"] == "early_stopped"
    assert summary["epochs_run"] == 4 and summary["best_epoch"] == 2


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        make_trainer(tmp_path).resume()


def test_paper_protocol_selects_on_test(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2, protocol="paper")
    summary = trainer.fit()
    assert summary["selected_on"] == "test" and list(summary["results"]) == ["test"]
    assert "original LightGCN protocol" in summary["protocol_description"]


def test_model_parameter_groups_are_used_by_the_optimizer():
    from graphrec.train.trainer import make_optimizer

    class Grouped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)
            self.frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)

        def parameter_groups(self, weight_decay):
            return [{"params": [self.lin.weight], "weight_decay": weight_decay},
                    {"params": [self.lin.bias, self.frozen], "weight_decay": 0.0}]

    optimizer = make_optimizer(Grouped(), TrainConfig(lr=0.01, weight_decay=0.5))
    groups = optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.5, 0.0]
    assert [len(g["params"]) for g in groups] == [1, 1]   # the frozen parameter is left out
    plain = make_optimizer(torch.nn.Linear(3, 2), TrainConfig(lr=0.01, weight_decay=0.5))
    assert len(plain.param_groups) == 1 and plain.param_groups[0]["weight_decay"] == 0.5


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_optimizer_is_the_fused_kernel_and_updates_like_the_reference(name):
    from graphrec.train.trainer import make_optimizer

    torch.manual_seed(0)
    model = torch.nn.Embedding(50, 8)
    reference = torch.nn.Embedding(50, 8)
    reference.load_state_dict(model.state_dict())
    optimizer = make_optimizer(model, TrainConfig(optimizer=name, lr=0.01, weight_decay=1e-3))
    assert optimizer.param_groups[0]["fused"] is True
    reference_optimizer = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](
        reference.parameters(), lr=0.01, weight_decay=1e-3, foreach=False)
    for step in range(5):
        ids = torch.randint(0, 50, (16,))
        for net, opt in ((model, optimizer), (reference, reference_optimizer)):
            opt.zero_grad()
            net(ids).pow(2).sum().backward()
            opt.step()
    torch.testing.assert_close(model.weight, reference.weight)


def test_a_checkpoint_from_an_unfused_optimizer_keeps_the_fused_kernel():
    from graphrec.train.trainer import load_optimizer_state, make_optimizer

    model = torch.nn.Embedding(10, 4)
    old = torch.optim.Adam(model.parameters(), lr=0.01)  # as written by earlier graphrec versions
    model(torch.tensor([1, 2])).sum().backward()
    old.step()
    optimizer = make_optimizer(model, TrainConfig(lr=0.01))
    load_optimizer_state(optimizer, old.state_dict())
    assert optimizer.param_groups[0]["fused"] is True
    torch.testing.assert_close(optimizer.state[model.weight]["exp_avg"], old.state[model.weight]["exp_avg"])
    optimizer.step()  # runs with the loaded state


def test_unknown_monitor_names_the_available_metrics(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, monitor="recal@20")
    with pytest.raises(KeyError, match="recall@20"):
        trainer.fit()


SIGNAL_SCRIPT = r'''
import json, sys
sys.path.insert(0, {tests!r})
from test_trainer import make_trainer
trainer = make_trainer({run_dir!r}, epochs=100000)
print(json.dumps(trainer.fit()), flush=True)
'''


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = SIGNAL_SCRIPT.format(tests=os.path.dirname(__file__), run_dir=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 60
    while not (tmp_path / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "interrupted"
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step"]) == (result["epoch"], result["step"])
    assert state["epoch"] >= 1


def test_lr_schedule_is_applied_per_epoch_logged_and_resumed_exactly(tmp_path, stop_at_batch):
    schedule = dict(lr_schedule="cosine", lr_min=0.001)
    reference = make_trainer(tmp_path / "a", **schedule)
    reference.fit()
    rows = [json.loads(line) for line in open(tmp_path / "a" / "metrics.jsonl")]
    logged = [r["lr"] for r in rows if r["split"] == "train"]
    # cosine from 0.01 to 0.001 over the 4 epochs, one rate per epoch starting at the full rate
    expected = [0.001 + 0.009 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert logged == pytest.approx(expected)
    constant = make_trainer(tmp_path / "c")
    constant.fit()
    assert not all(torch.equal(v, constant.model.state_dict()[k]) for k, v in reference.model.state_dict().items())

    interrupted = make_trainer(tmp_path / "b", **schedule)
    stop_at_batch(interrupted, 2 * interrupted.task.num_batches() + 1)  # a batch into the third epoch
    assert interrupted.fit()["status"] == "interrupted"
    resumed = make_trainer(tmp_path / "b", **schedule)
    resumed.resume()
    resumed.fit()
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_resume_with_a_new_lr_uses_it(tmp_path):
    first = make_trainer(tmp_path, epochs=1)
    first.fit()
    resumed = make_trainer(tmp_path, epochs=2, lr=0.002)
    resumed.resume()
    resumed.fit()
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["lr"] for r in rows if r["split"] == "train"] == pytest.approx([0.01, 0.002])
