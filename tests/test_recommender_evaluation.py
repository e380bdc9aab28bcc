"""Recommender.evaluate, split_by_time, Ctrl-C in fit, the pop baseline and the new-data recipes."""
import json
import math
import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec import Recommender
from graphrec.config import build_run_config
from graphrec.data import split_by_time
from graphrec.models import get_model_entry
from graphrec.train.recommendation import RecommendationTask


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Per user, the latest row goes to validation (valid_fraction 0.34 of 3 rows = 1), the rest to train.
# Train counts: A 3, B 2, C 1, D 0, E 0 (item indices A0..E4, first appearance).
FITTED = pd.DataFrame([("u1", "A", 1), ("u1", "B", 2), ("u1", "C", 3), ("u2", "A", 1), ("u2", "C", 2),
                       ("u2", "D", 3), ("u3", "B", 1), ("u3", "A", 2), ("u3", "E", 3)],
                      columns=["user", "item", "t"])
# u1 -> E, u2 -> E and B, u3 -> D; F is an unknown item, zz an unknown user, (u1, A) was fitted on.
HELD_OUT = pd.DataFrame([("u1", "E"), ("u2", "E"), ("u2", "B"), ("u3", "D"), ("u3", "F"), ("zz", "A"),
                         ("u1", "A")], columns=["user", "item"])


@pytest.fixture(scope="module")
def pop():
    return Recommender("pop").fit(FITTED, time="t", valid_fraction=0.34, verbose=False)


def test_pop_scores_are_train_counts(pop):
    users, items = pop.model.embeddings()
    assert (users @ items.T)[0].tolist() == [3.0, 2.0, 1.0, 0.0, 0.0]
    assert not [p for p in pop.model.parameters() if p.requires_grad]
    assert pop.summary["epochs_run"] == 1 and pop.summary["status"] == "completed"


def test_evaluate_equals_hand_computed_metrics(pop):
    # Candidates best first (seen items masked, ties to the lower index): u1 [D, E], u2 [B, E], u3 [C, D].
    with pytest.warns(UserWarning, match="1 rows with a user .*1 rows with an item .*1 pairs the model was fitted"):
        metrics = pop.evaluate(HELD_OUT, ks=(1, 2))
    third = 1 / math.log2(3)
    assert metrics["recall@1"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert metrics["ndcg@1"] == pytest.approx(1 / 3)
    assert metrics["precision@1"] == pytest.approx(1 / 3)
    assert metrics["hit@1"] == pytest.approx(1 / 3)
    assert metrics["recall@2"] == pytest.approx(1.0)
    assert metrics["ndcg@2"] == pytest.approx((third + 1.0 + third) / 3)
    assert metrics["precision@2"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    with pytest.warns(UserWarning):
        assert pop.evaluate(HELD_OUT, k=2)["recall@2"] == pytest.approx(1.0)


def test_evaluate_with_baseline_shows_the_lift(pop):
    with pytest.warns(UserWarning):
        table = pop.evaluate(HELD_OUT, k=2, baseline=True)
    assert list(table.index) == ["pop", "pop", "lift"]
    assert table.iloc[0].equals(table.iloc[1]) and (table.loc["lift"] == 1.0).all()


def test_evaluate_refuses_nothing_to_evaluate(pop):
    with pytest.raises(ValueError, match="no interaction left"), pytest.warns(UserWarning):
        pop.evaluate(pd.DataFrame({"user": ["zz"], "item": ["A"]}))
    with pytest.raises(KeyError, match="columns"):
        pop.evaluate(HELD_OUT, user="listener")
    for bad in (-3, 0, 2.5):
        with pytest.raises(ValueError, match="k must be a whole number"):
            pop.evaluate(HELD_OUT, k=bad)


def test_summary_carries_the_popularity_baseline(pop):
    baseline = pop.summary["baseline"]
    assert baseline["model"] == "pop"
    assert baseline["results"]["valid"] == pytest.approx(pop.summary["results"]["valid"])


# ------------------------------------------------------------------ split_by_time
def test_split_by_time_holds_out_each_users_latest_rows():
    frame = pd.DataFrame({"user": ["a", "b", "a", "a", "b", "c", "a"], "item": range(7),
                          "t": [5.0, 1.0, 2.0, 9.0, 3.0, 4.0, 9.0]})
    train, test = split_by_time(frame, time="t", last_n=1)
    # a's latest are the two rows at t=9: the later row (position 6) goes; c keeps its only row
    assert test["item"].tolist() == [4, 6] and train["item"].tolist() == [0, 1, 2, 3, 5]
    train, test = split_by_time(frame, time="t", test_fraction=0.5)
    assert test["item"].tolist() == [3, 4, 6]
    again = split_by_time(frame.copy(), time="t", test_fraction=0.5)
    pd.testing.assert_frame_equal(again[1], test)
    assert len(train) + len(test) == len(frame)


def test_split_by_time_refuses_missing_times_and_bad_arguments():
    frame = pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 3], "t": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match="1 of 3 rows have no 't'"):
        split_by_time(frame, time="t", last_n=1)
    with pytest.raises(ValueError, match="exactly one"):
        split_by_time(frame, time="t")
    with pytest.raises(ValueError, match="last_n"):
        split_by_time(frame.dropna(), time="t", last_n=-1)


# ------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_restores_the_best_weights_and_raises(monkeypatch):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame([(u, i) for u in range(20) for i in rng.choice(30, size=6, replace=False)],
                         columns=["user", "item"])
    snapshots, calls = [], {"batches": 0}

    def evaluate(self, model, split):   # the first evaluation is the best; later ones are worse
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"recall@20": 1.0 / len(snapshots)}

    def training_loss(self, model, batch):
        calls["batches"] += 1
        if calls["batches"] == 7:   # in the fourth epoch (2 batches each): what Ctrl-C sends
            os.kill(os.getpid(), signal.SIGINT)
        return model.loss(batch)

    monkeypatch.setattr(RecommendationTask, "evaluate", evaluate)
    monkeypatch.setattr(RecommendationTask, "training_loss", training_loss)
    rec = Recommender("lightgcn", epochs=20, train={"batch_size": 64, "eval_every": 1, "lr": 0.05},
                      embedding_dim=8)
    with pytest.raises(KeyboardInterrupt, match="best weights so far .epoch 1"):
        rec.fit(frame, verbose=False)
    assert len(snapshots) == 3
    state = rec.model.state_dict()
    assert all(torch.equal(state[k], snapshots[0][k]) for k in state)
    assert any(not torch.equal(state[k], snapshots[-1][k]) for k in state)
    assert rec.recommend(0, k=3).shape[0] == 3


def test_fit_prints_progress_unless_silenced(capsys):
    frame = FITTED[["user", "item"]]
    Recommender("lightgcn", epochs=2, embedding_dim=4).fit(frame, valid_fraction=0.34)
    assert "lightgcn" in capsys.readouterr().err
    Recommender("lightgcn", epochs=2, embedding_dim=4).fit(frame, valid_fraction=0.34, verbose=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


# ------------------------------------------------------------------ recipes for new data
def test_new_data_recipe_applies_to_dataframes_and_yields_to_explicit_settings():
    ultra = Recommender("ultragcn")
    assert ultra.train_config.lr == 1e-3 and ultra.sampling_config.shared_negatives
    assert Recommender("ultragcn", train={"lr": 5e-4}).train_config.lr == 5e-4
    assert not Recommender("ultragcn", sampling={"shared_negatives": False}).sampling_config.shared_negatives
    light = Recommender("lightgcn")
    assert (light.train_config.lr, light.train_config.batch_size) == (1e-2, 8192)
    paper = build_run_config("ultragcn", "gowalla")
    assert paper.train.lr == 1e-4 and not paper.sampling.shared_negatives
    assert build_run_config("lightgcn", "yelp2018").train.batch_size == 2048
    assert build_run_config("lightgcn", "my-own-dataset").train.batch_size == 8192
    assert build_run_config("pop", "gowalla").train.epochs == 1


# ------------------------------------------------------------------ graphrec fit --model pop
def test_cli_fit_pop_on_a_tiny_dataset(tmp_path, capsys):
    from graphrec.cli import main
    from graphrec.data.interactions import InteractionGraph, interaction_matrix
    from graphrec.loaders import DatasetSpec, available_datasets, register_dataset

    def read(paths, name):
        rng = np.random.default_rng(0)
        users = np.repeat(np.arange(30), 6)
        items = np.concatenate([rng.choice(40, size=6, replace=False) for _ in range(30)])
        test = np.arange(180) % 6 == 0
        return InteractionGraph(30, 40, interaction_matrix(users[~test], items[~test], 30, 40),
                                test=interaction_matrix(users[test], items[test], 30, 40), name=name)

    if "tiny-recommendation-test" not in available_datasets():
        register_dataset(DatasetSpec(name="tiny-recommendation-test", task="recommendation", files={}, reader=read))
    code = main(["fit", "--model", "pop", "--data", "tiny-recommendation-test", "--run-dir", str(tmp_path / "run")])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == "completed" and printed["best_epoch"] == 1
    assert printed["baseline"]["results"]["test"] == pytest.approx(printed["results"]["test"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["baseline"]["model"] == "pop" and (tmp_path / "run" / "best.pt").exists()


def test_describing_a_task_evaluates_no_baseline_before_the_model_is_evaluated():
    from graphrec.config import SamplingConfig, TrainConfig
    from graphrec.data.interactions import InteractionGraph

    graph = InteractionGraph.from_dataframe(FITTED, time="t", valid_fraction=0.34, test_fraction=0.0)
    task = RecommendationTask(graph, TrainConfig(), SamplingConfig())
    assert task.describe()["baseline"]["results"] == {}
    model = task.build_model(get_model_entry("pop"), None)
    metrics = task.evaluate(model, "valid")
    assert task.describe()["baseline"]["results"] == {"valid": pytest.approx(metrics)}
