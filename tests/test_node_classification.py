"""The node-classification task, its splits, window-mean early stopping, and the CLI end to end."""
import json
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from graphrec import runs
from graphrec.cli import main
from graphrec.config import TrainConfig, build_run_config
from graphrec.data.splits import planetoid_random_split
from graphrec.loaders import load_dataset
from graphrec.train import Trainer
from graphrec.train.node_classification import NodeClassificationTask
from graphrec.train.task import Task

DATA = Path(os.environ.get("GRAPHREC_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="module")
def cora():
    return load_dataset("cora", DATA, download=False)


# ---------------------------------------------------------------- random splits
@pytest.mark.data
def test_random_split_sizes_on_cora(cora):
    masks = planetoid_random_split(cora.y, seed=7)
    assert [int(masks[s].sum()) for s in ("train", "valid", "test")] == [140, 500, 1000]
    assert torch.bincount(cora.y[masks["train"]], minlength=7).tolist() == [20] * 7
    assert not bool((masks["train"] & masks["valid"]).any() | (masks["train"] & masks["test"]).any()
                    | (masks["valid"] & masks["test"]).any())
    # not the public split
    assert not torch.equal(masks["train"], cora.train_mask)


def test_random_split_is_reproducible_and_seed_dependent():
    y = torch.arange(3000) % 6
    first, again, other = (planetoid_random_split(y, seed=s) for s in (3, 3, 4))
    for split in ("train", "valid", "test"):
        assert torch.equal(first[split], again[split])
    assert not torch.equal(first["test"], other["test"])
    assert torch.bincount(y[first["train"]]).tolist() == [20] * 6
    # the global RNG is neither used nor disturbed
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    planetoid_random_split(y, seed=3)
    assert torch.equal(torch.rand(3), expected)


def test_random_split_rejects_too_small_graphs():
    with pytest.raises(ValueError, match="class 1"):
        planetoid_random_split(torch.tensor([0] * 30 + [1] * 5), seed=0)
    with pytest.raises(ValueError, match="valid"):
        planetoid_random_split(torch.arange(600) % 3, seed=0)


# ---------------------------------------------------------------- the task
def toy_graph():
    x = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 1.0],
                      [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    masks = [torch.tensor(m, dtype=torch.bool) for m in
             ([1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1])]
    return Data(x=x, edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2])


class FixedLogits(nn.Module):
    """Predicts class (node id) % 3 with logit 2 for every node: nodes 0..5 -> 0 1 2 0 1 2."""

    def __init__(self, predictions):
        super().__init__()
        self.predictions = torch.tensor(predictions)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x, edge_index):
        return 2.0 * nn.functional.one_hot(self.predictions, 3).float() + self.bias


def test_task_preprocesses_features_and_uses_public_masks():
    task = NodeClassificationTask(toy_graph(), TrainConfig())
    sums = task.x.sum(dim=1)
    torch.testing.assert_close(sums, torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0]))  # zero row stays zero
    torch.testing.assert_close(task.x[3], torch.tensor([0.75, 0.0, 0.25]))
    assert [int(task.masks[s].sum()) for s in ("train", "valid", "test")] == [3, 2, 3]
    assert task.num_classes == 3 and task.num_features == 3
    raw = NodeClassificationTask(toy_graph(), TrainConfig(normalize_features=False))
    torch.testing.assert_close(raw.x, toy_graph().x)


def test_evaluate_against_hand_computed_values():
    task = NodeClassificationTask(toy_graph(), TrainConfig())
    # test nodes 3,4,5 with targets 0,1,2; predictions 0,2,2 -> accuracy 2/3
    model = FixedLogits([0, 1, 2, 0, 2, 2])
    metrics = task.evaluate(model, "test")
    right = -math.log(math.exp(2) / (math.exp(2) + 2))
    wrong = -math.log(1 / (math.exp(2) + 2))
    assert metrics["loss"] == pytest.approx((2 * right + wrong) / 3, rel=1e-6)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["micro_f1"] == pytest.approx(2 / 3)
    # F1: class 0 = 1, class 1 = 0 (never predicted, 1 missed), class 2 = 2/(2+1) -> macro 5/9
    assert metrics["macro_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert set(task.evaluate(model, "valid")) == {"loss", "accuracy", "macro_f1", "micro_f1"}
    with pytest.raises(KeyError):
        task.evaluate(model, "val")


def test_one_full_batch_per_epoch_and_train_loss_on_train_nodes():
    task = NodeClassificationTask(toy_graph(), TrainConfig())
    assert task.num_batches() == 1
    batches = list(task.train_batches(epoch=0))
    assert len(batches) == 1 and batches[0] is task.graph
    assert list(task.train_batches(epoch=0, start=1)) == []
    assert task.batch_samples(batches[0]) == 3
    model = FixedLogits([0, 1, 0, 0, 0, 0])  # train nodes 0,1,2: right, right, wrong
    right = -math.log(math.exp(2) / (math.exp(2) + 2))
    wrong = -math.log(1 / (math.exp(2) + 2))
    assert float(task.training_loss(model, batches[0]).detach()) == pytest.approx((2 * right + wrong) / 3, rel=1e-6)


def test_sparse_features_only_for_models_that_take_them():
    from graphrec.models import create_model

    task = NodeClassificationTask(toy_graph(), TrainConfig(split="public"))
    dagnn = create_model("dagnn", num_features=3, num_classes=3)
    assert task.features(FixedLogits([0] * 6)).layout == torch.strided
    # the toy features are 50% non-zero: above the density limit, dense even for DAGNN
    assert task.features(dagnn).layout == torch.strided
    sparse_graph = toy_graph()
    sparse_graph.x = torch.zeros(6, 40)
    sparse_graph.x[torch.arange(6), torch.arange(6)] = 1.0
    sparse_task = NodeClassificationTask(sparse_graph, TrainConfig())
    features = sparse_task.features(dagnn)
    assert features.is_sparse and features is sparse_task.features(dagnn)  # converted once
    torch.testing.assert_close(features.to_dense(), sparse_task.x)


def test_random_split_option_and_errors():
    graph = Data(x=torch.rand(1800, 4), edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.arange(1800) % 3)
    task = NodeClassificationTask(graph, TrainConfig(split="random", seed=5))
    assert [int(task.masks[s].sum()) for s in ("train", "valid", "test")] == [60, 500, 1000]
    again = NodeClassificationTask(graph, TrainConfig(split="random", seed=5))
    assert torch.equal(task.masks["test"], again.masks["test"])
    with pytest.raises(ValueError, match="train_mask"):
        NodeClassificationTask(graph, TrainConfig(split="public"))
    with pytest.raises(ValueError, match="validation"):
        NodeClassificationTask(toy_graph(), TrainConfig(protocol="paper"))
    with pytest.raises(ValueError, match="split"):
        TrainConfig(split="full")


# ---------------------------------------------------------------- window-mean early stopping
class ScriptedTask(Task):
    """Validation losses come from a script, one per evaluation."""

    report_splits = ("valid",)

    def __init__(self, losses):
        self.losses = list(losses)
        self.calls = 0

    def build_model(self, entry, model_config):
        raise NotImplementedError

    def num_batches(self):
        return 1

    def train_batches(self, epoch, start=0):
        if start == 0:
            yield "all"

    def training_loss(self, model, batch):
        return model.weight.square().sum()

    def batch_samples(self, batch):
        return 1

    def evaluate(self, model, split):
        value = self.losses[min(self.calls, len(self.losses) - 1)]
        self.calls += 1
        return {"loss": value}


LOSSES = [5.0, 4.0, 9.0, 3.0, 2.0, 1.0, 1.5, 2.5, 0.5, 0.4]


def scripted_fit(rule):
    config = TrainConfig(epochs=10, eval_every=1, patience=3, monitor="loss", monitor_mode="min",
                         early_stopping=rule, lr=0.01)
    trainer = Trainer(nn.Linear(1, 1), ScriptedTask(LOSSES), config)
    return trainer, trainer.fit()


def test_window_mean_stops_like_the_official_dagnn_code():
    trainer, summary = scripted_fit("window_mean")
    # epoch 3 (9.0) is worse than the mean before it but within the first half: no stop;
    # epoch 6: 1.0 < mean(9,3,2); epoch 7: 1.5 < mean(3,2,1) = 2; epoch 8: 2.5 > mean(2,1,1.5) = 1.5 -> stop
    assert summary["status"] == "early_stopped"
    assert summary["epochs_run"] == 8 and summary["best_epoch"] == 6
    assert trainer.monitor_history == LOSSES[:8]
    restored = Trainer(nn.Linear(1, 1), ScriptedTask(LOSSES), trainer.config)
    restored.load_state_dict(trainer.state_dict())
    assert restored.monitor_history == LOSSES[:8]


def test_patience_rule_is_unchanged():
    _, summary = scripted_fit("patience")
    # bad evaluations at 7 and 8 only, then new bests: runs to the end
    assert summary["status"] == "completed" and summary["epochs_run"] == 10 and summary["best_epoch"] == 10


# ---------------------------------------------------------------- end to end
@pytest.mark.data
def test_same_seed_same_result(cora):
    config = build_run_config("dagnn", "cora", overrides={"train.epochs": 4})
    _, first = runs.fit(config, None, data=cora)
    _, second = runs.fit(config, None, data=cora)
    assert first["results"] == second["results"]


@pytest.mark.data
def test_cli_fit_and_eval_smoke(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["fit", "--model", "dagnn", "--data", "cora", "--data-dir", str(DATA), "--epochs", "5",
                 "--run-dir", str(run_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == 5 and summary["task"] == "node_classification"
    assert summary["data"]["nodes"] == 2708 and summary["split"] == "public"
    for split in ("valid", "test"):
        assert set(printed["results"][split]) == {"loss", "accuracy", "macro_f1", "micro_f1"}
        assert 0.0 < printed["results"][split]["accuracy"] <= 1.0
    assert (run_dir / "best.pt").exists() and (run_dir / "metrics.jsonl").exists()
    assert main(["eval", "--checkpoint", str(run_dir / "best.pt"), "--split", "test", "--data-dir", str(DATA)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(printed["results"]["test"]["accuracy"])


@pytest.mark.data
def test_cli_runs_aggregates_over_seeds(tmp_path, capsys):
    run_dir = tmp_path / "many"
    assert main(["fit", "--model", "dagnn", "--data", "cora", "--data-dir", str(DATA), "--epochs", "3",
                 "--seed", "11", "--runs", "2", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "test over 2 seeds: accuracy" in out
    result = json.loads((run_dir / "runs_summary.json").read_text())
    assert result["seeds"] == [11, 12] and result["runs"] == 2
    values = [r["results"]["test"]["accuracy"] for r in result["per_run"]]
    stats = result["aggregate"]["test"]["accuracy"]
    assert stats["mean"] == pytest.approx(sum(values) / 2)
    assert stats["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    assert {"accuracy", "macro_f1", "micro_f1", "loss"} <= set(result["aggregate"]["test"])
    for seed in (11, 12):
        summary = json.loads((run_dir / f"seed-{seed}" / "summary.json").read_text())
        assert summary["run_config"]["train"]["seed"] == seed
