"""Bad inputs get one clear line (exit code 2 on the CLI) or a warning with counts, never a traceback.

Table-driven over the cases of issue 21 (points 1, 7, 8, 9), through ``graphrec.cli.main`` and the
Python API, on a tiny synthetic LightGCN-format dataset written to ``tmp_path`` (no real data, seconds).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from graphrec.cli import build_parser, main
from graphrec.config import (ConfigError, RESUME_SAFE_KEYS, apply_resume_overrides, parse_overrides,
                             run_config_from_dict)
from graphrec.data.interactions import InteractionGraph
from graphrec.loaders import get_dataset_spec, load_dataset
from graphrec.loaders.lightgcn_format import read_lightgcn_dataset
from graphrec.loaders.registry import DatasetSpec, register_dataset
from graphrec.train.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint

TOY = "badinputs-toy"
TOY_BAD_SUM = "badinputs-toy-badsum"
USERS, ITEMS = 24, 40
if TOY not in set(__import__("graphrec.loaders", fromlist=["available_datasets"]).available_datasets()):
    register_dataset(DatasetSpec(name=TOY, task="recommendation", files={"train.txt": (), "test.txt": ()},
                                 reader=read_lightgcn_dataset))
    register_dataset(DatasetSpec(name=TOY_BAD_SUM, task="recommendation",
                                 files={"train.txt": ("sha256:" + "0" * 64,), "test.txt": ()},
                                 reader=read_lightgcn_dataset))

#: a short run on the toy data: 3 batches per epoch, evaluated every epoch
FAST = ["--set", "train.batch_size=32", "--set", "train.eval_every=1", "--set", "train.ks=[5]",
        "--set", "train.monitor=recall@5", "--set", "model.embedding_dim=8", "--set", "model.num_layers=1"]


def write_toy(root: Path, name: str = TOY, items: int = ITEMS) -> Path:
    """``root/name/{train,test}.txt``: every user has 6 train and 2 test items, all items in train."""
    rng = np.random.default_rng(0)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for user in range(USERS):
        chosen = rng.choice(items, size=8, replace=False)
        train.append(f"{user} " + " ".join(map(str, sorted(chosen[:6]))))
        test.append(f"{user} " + " ".join(map(str, sorted(chosen[6:]))))
    train.append(f"{USERS} " + " ".join(map(str, range(items))))   # every item is seen in train
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return root


def fit_argv(root: Path, run_dir: Path, *extra: str, epochs: int = 1) -> list[str]:
    return ["fit", "--model", "lightgcn", "--data", TOY, "--data-dir", str(root), "--run-dir", str(run_dir),
            "--epochs", str(epochs), *FAST, *extra]


def error_line(capsys) -> str:
    """The one ``graphrec: error:`` line of stderr (and only one)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("graphrec: error:")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    return write_toy(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def toy_run(toy_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "toy"
    assert main(fit_argv(toy_root, run_dir)) == 0
    return run_dir


@pytest.fixture
def fresh_run(toy_run, tmp_path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(toy_run, run_dir)
    return run_dir


# ----------------------------------------------------------------------------- the CLI, table-driven
def _run_dir_is_file(tmp, root, run):
    (tmp / "afile").write_text("x")
    return fit_argv(root, tmp / "afile")


def _run_dir_under_file(tmp, root, run):
    (tmp / "afile").write_text("x")
    return fit_argv(root, tmp / "afile" / "run")


def _bad_yaml(tmp, root, run):
    return fit_argv(root, tmp / "r", "--set", "train.ks=[10,20")


def _huge_lr(tmp, root, run):
    return fit_argv(root, tmp / "r", "--set", "train.lr=1e30")


def _node_classification_checkpoint(tmp, root, run):
    save_checkpoint({"run_config": {"model": "gcn", "data": "cora"}, "model_state": {}}, tmp / "gcn.pt")
    return ["recommend", "--checkpoint", str(tmp / "gcn.pt"), "--user", "0"]


def _unknown_user(tmp, root, run):
    return ["recommend", "--checkpoint", str(run / "best.pt"), "--data-dir", str(root), "--user", "999"]


def _changed_dataset(tmp, root, run):
    other = write_toy(tmp / "other", items=ITEMS + 2)
    return ["eval", "--checkpoint", str(run / "best.pt"), "--data-dir", str(other)]


def _unsafe_checkpoint(tmp, root, run):
    torch.save({"format": "graphrec-checkpoint", "payload": Evil()}, tmp / "evil.pt")
    return ["eval", "--checkpoint", str(tmp / "evil.pt")]


def _resume_changes_model(tmp, root, run):
    return ["fit", "--resume", str(run), "--data-dir", str(root), "--set", "model.embedding_dim=16"]


def _resume_changes_seed(tmp, root, run):
    return ["fit", "--resume", str(run), "--data-dir", str(root), "--seed", "7"]


def _resume_not_a_run(tmp, root, run):
    (tmp / "empty").mkdir()
    return ["fit", "--resume", str(tmp / "empty")]


class Evil:
    """Not a tensor or plain data: a weights_only load must refuse it."""


CLI_CASES = [
    # (name, argv builder, words the one error line must hold, words it must not)
    ("run-dir is a file", _run_dir_is_file, ["is a file", "--run-dir"], []),
    ("run-dir under a file", _run_dir_under_file, ["which is a file", "--run-dir"], []),
    ("unclosed YAML list", _bad_yaml, ["train.ks", "not a valid YAML value"], []),
    ("non-finite loss", _huge_lr, ["training loss is", "Lower train.lr", "no checkpoint was saved yet"], []),
    ("recommend a node classifier", _node_classification_checkpoint,
     ["checkpoint", "is for gcn, a node-classification model", "recommend needs a recommender"], []),
    ("unknown user id", _unknown_user, ["999", "own user ids"], []),
    ("dataset files changed", _changed_dataset, [f"users + items: {USERS + 1 + ITEMS} in the checkpoint, "
                                                 f"{USERS + 1 + ITEMS + 2} in the data",
                                                 "datasets --verify"], ["size mismatch"]),
    ("unsafe checkpoint", _unsafe_checkpoint, ["refused", "trust"], ["corrupted", "truncated", "weights_only=False"]),
    ("resume changes the model", _resume_changes_model,
     ["cannot change model.embedding_dim when resuming", "saved with model.embedding_dim=8"], []),
    ("resume changes the seed", _resume_changes_seed, ["train.seed", "saved with train.seed=2020"], []),
    ("resume a folder that is no run", _resume_not_a_run, ["not a run folder"], []),
]


@pytest.mark.parametrize("name, build, expected, forbidden", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_clear_line(name, build, expected, forbidden, tmp_path, toy_root, fresh_run, capsys):
    argv = build(tmp_path, toy_root, fresh_run)
    capsys.readouterr()
    assert main(argv) == 2
    line = error_line(capsys)
    for words in expected:
        assert words in line
    for words in forbidden:
        assert words not in line


@pytest.mark.parametrize("k, words", [("-3", "must be a whole number >= 1, got '-3'"),
                                      ("2.5", "must be a whole number >= 1, got '2.5'"),
                                      ("ten", "got 'ten'")])
def test_cli_k_must_be_a_positive_whole_number(k, words, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["recommend", "--checkpoint", "x.pt", "--user", "0", "-k", k])
    assert stop.value.code == 2
    assert words in capsys.readouterr().err


def test_cli_user_help_names_the_id_space():
    recommend = build_parser()._subparsers._group_actions[0].choices["recommend"]
    assert "the user's id as the dataset writes it (its own id, not graphrec's internal index" in \
        " ".join(recommend.format_help().split())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_cuda_without_cuda(tmp_path, toy_root, capsys):
    assert main(fit_argv(toy_root, tmp_path / "r", "--device", "cuda")) == 2
    line = error_line(capsys)
    assert "'cuda'" in line and "--device cpu" in line
    assert not (tmp_path / "r").exists()   # refused before anything is written


def test_cli_read_only_folder(tmp_path, toy_root, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not make a folder read-only")
        assert main(fit_argv(toy_root, folder / "run")) == 2
        assert "read-only" in error_line(capsys)
    finally:
        folder.chmod(0o700)


def test_cli_read_only_file_system(tmp_path, toy_root, capsys, monkeypatch):
    # what a read-only mount looks like to the run: the folder cannot be created
    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    monkeypatch.setattr("graphrec.cli.check_run_dir", lambda path: None)
    assert main(fit_argv(toy_root, tmp_path / "run")) == 2
    line = error_line(capsys)
    assert "read-only file system" in line.lower() and str(tmp_path / "run") in line and "writable folder" in line


def test_cli_disk_full_while_writing_a_checkpoint(tmp_path, toy_root, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("graphrec.train.checkpoint.os.fsync", full)
    assert main(fit_argv(toy_root, tmp_path / "run")) == 2
    line = error_line(capsys)
    assert "disk full" in line and str(tmp_path / "run") in line
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob(".*.tmp"))


def test_cli_recommend_k_beyond_the_items_is_capped_and_strict_json(toy_run, toy_root, capsys):
    capsys.readouterr()
    assert main(["recommend", "--checkpoint", str(toy_run / "best.pt"), "--data-dir", str(toy_root),
                 "--user", "0", "-k", "100000"]) == 0
    captured = capsys.readouterr()
    assert f"more than the {ITEMS} items" in captured.err

    def no_constants(name):
        raise AssertionError(f"{name} is not strict JSON")

    row = json.loads(captured.out, parse_constant=no_constants)
    assert 0 < len(row["items"]) <= ITEMS and -1 not in row["items"]


# ----------------------------------------------------------------------------- resume with overrides
def test_resume_extends_a_finished_run_and_logs_each_change(fresh_run, toy_root, capsys):
    assert main(["fit", "--resume", str(fresh_run), "--data-dir", str(toy_root), "--epochs", "2",
                 "--set", "train.lr=0.002", "--set", "model.embedding_dim=8"]) == 0   # unchanged: fine
    rows = [json.loads(line) for line in (fresh_run / "metrics.jsonl").read_text().splitlines()]
    events = [r for r in rows if r.get("event") == "resume_override"]
    # the toy dataset is no paper dataset: lightgcn's new-data recipe gave it lr 0.01
    assert {(e["key"], e["old"], e["new"]) for e in events} == {("train.epochs", 1, 2), ("train.lr", 0.01, 0.002)}
    assert [r["epoch"] for r in rows if r.get("split") == "train"] == [1, 2]
    assert [r["lr"] for r in rows if r.get("split") == "train"][-1] == pytest.approx(0.002)
    saved = yaml.safe_load((fresh_run / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2 and saved["train"]["lr"] == 0.002
    assert json.loads((fresh_run / "summary.json").read_text())["epochs_run"] == 2


def test_resume_overrides_from_a_config_file(fresh_run, toy_root, tmp_path):
    saved = yaml.safe_load((fresh_run / "config.yaml").read_text())
    (tmp_path / "more.yaml").write_text(yaml.safe_dump({"train": {"patience": 3}, "model": {"num_layers": 1}}))
    config, changes = apply_resume_overrides(saved, str(tmp_path / "more.yaml"), {"train.epochs": 5})
    assert [(c.key, c.new) for c in changes] == [("train.patience", 3), ("train.epochs", 5)]
    assert config.train.patience == 3 and config.train.epochs == 5
    same, changes = apply_resume_overrides(saved, str(fresh_run / "config.yaml"))   # its own file: no change
    assert changes == [] and same.to_dict() == run_config_from_dict(saved).to_dict()


@pytest.mark.parametrize("key, value", [("model.num_layers", 2), ("data", "gowalla"), ("train.seed", 1),
                                        ("sampling.num_negatives", 4), ("train.batch_size", 64),
                                        ("train.valid_fraction", 0.2)])
def test_resume_refuses_shape_changing_keys(fresh_run, key, value):
    saved = yaml.safe_load((fresh_run / "config.yaml").read_text())
    with pytest.raises(ConfigError, match=rf"cannot change {key} when resuming: the run was saved with {key}="):
        apply_resume_overrides(saved, None, {key: value})


def test_resume_safe_keys_are_listed_in_one_place():
    assert {"train.epochs", "train.lr", "train.lr_schedule", "train.eval_every", "train.patience",
            "train.time_limit_s"} <= RESUME_SAFE_KEYS
    assert not any(key.startswith(("model.", "sampling.")) for key in RESUME_SAFE_KEYS)
    assert "train.seed" not in RESUME_SAFE_KEYS


# ----------------------------------------------------------------------------- the Python API
def test_api_bad_yaml_value_names_the_key():
    with pytest.raises(ConfigError, match=r"--set train.ks: '\[10,20' is not a valid YAML value"):
        parse_overrides(["train.ks=[10,20"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_api_cuda_without_cuda():
    from graphrec.config import build_run_config
    from graphrec.devices import DeviceUnavailableError

    with pytest.raises(DeviceUnavailableError, match="use --device cpu"):
        build_run_config("lightgcn", TOY, overrides={"train.device": "cuda"})


def test_api_disk_full_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = save_checkpoint({"model_state": {"w": torch.ones(2)}}, tmp_path / "last.pt")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("graphrec.train.checkpoint.os.fsync", full)
    with pytest.raises(OSError, match=rf"disk full: could not write checkpoint {tmp_path / 'last.pt'}") as info:
        save_checkpoint({"model_state": {"w": torch.zeros(2)}}, target)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(target)["model_state"]["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_api_unsafe_checkpoint_is_refused_not_called_damaged(tmp_path):
    torch.save({"format": "graphrec-checkpoint", "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="was refused") as info:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only=False" not in str(info.value) and "corrupted" not in str(info.value)


def test_api_truncated_checkpoint_never_suggests_unsafe_loading(tmp_path):
    save_checkpoint({"model_state": {"w": torch.ones(100)}}, tmp_path / "x.pt")
    data = (tmp_path / "x.pt").read_bytes()
    (tmp_path / "x.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated") as info:
        load_checkpoint(tmp_path / "x.pt")
    assert "weights_only" not in str(info.value)


def test_api_another_models_checkpoint():
    from torch import nn

    with pytest.raises(CheckpointError, match="checkpoint is for ultragcn, not lightgcn"):
        load_model_state(nn.Linear(2, 2), {"run_config": {"model": "ultragcn"}, "model_state": {}}, "lightgcn")


def test_api_changed_dataset_sizes():
    from torch import nn

    state = {"run_config": {"model": "mf"}, "model_state": {"items.weight": torch.zeros(400, 4)}}
    model = nn.Module()
    model.items = nn.Embedding(412, 4)
    with pytest.raises(CheckpointError, match="items: 400 in the checkpoint, 412 in the data"):
        load_model_state(model, state, "mf", {"users": 10, "items": 412})


def test_api_empty_dataframe():
    from graphrec import Recommender

    empty = pd.DataFrame({"user": [], "item": []})
    with pytest.raises(ValueError, match="the DataFrame is empty"):
        InteractionGraph.from_dataframe(empty)
    with pytest.raises(ValueError, match="the DataFrame is empty"):
        Recommender("lightgcn", epochs=1).fit(empty)


def test_api_nan_timestamps_are_an_error_with_the_count():
    frame = pd.DataFrame({"user": [0, 0, 0, 1, 1, 1], "item": [0, 1, 2, 0, 1, 2],
                          "time": [1.0, np.nan, 3.0, 1.0, 2.0, np.nan]})
    with pytest.raises(ValueError, match=r"2 of 6 rows have no timestamp \(NaN in column 'time'\)"):
        InteractionGraph.from_dataframe(frame, time="time")


def test_api_test_items_never_seen_in_train_warn_with_counts(tmp_path):
    (tmp_path / "train.txt").write_text("0 0 1\n1 1 2\n")
    (tmp_path / "test.txt").write_text("0 3\n1 3 2\n")
    with pytest.warns(UserWarning, match=r"toy: 2 of 3 test interactions \(1 items\) have items never seen in train"):
        read_lightgcn_dataset({"train.txt": tmp_path / "train.txt", "test.txt": tmp_path / "test.txt"}, "toy")


def test_api_files_that_differ_from_the_published_checksum_warn(tmp_path):
    write_toy(tmp_path, TOY_BAD_SUM)
    with pytest.warns(UserWarning, match=r"train.txt differs from the published checksum.*graphrec datasets --verify"):
        load_dataset(TOY_BAD_SUM, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(TOY, write_toy(tmp_path / "ok"))   # no digests declared: nothing to say


def test_api_recommender_k(toy_run, toy_root):
    from graphrec import Recommender

    rec = Recommender.load(toy_run / "best.pt", data_dir=str(toy_root))
    for k in (-3, 0, 2.5, True):
        with pytest.raises(ValueError, match="k must be a whole number >= 1"):
            rec.recommend(0, k=k)
    with pytest.warns(UserWarning, match=f"more than the {ITEMS} items"):
        out = rec.recommend(0, k=100000)
    assert len(out) <= ITEMS and np.isfinite(out["score"]).all()


def test_api_truncated_planetoid_pickle(data_root, tmp_path):
    spec = get_dataset_spec("cora")
    raw = tmp_path / "planetoid" / "raw"
    raw.mkdir(parents=True)
    for name in spec.files:
        shutil.copy(spec.folder(data_root) / name, raw / name)
    damaged = raw / "ind.cora.allx"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the checksum warning is another case
        with pytest.raises(ValueError, match=rf"{damaged}.*re-download it .*checksum"):
            load_dataset("cora", tmp_path)


def test_cli_truncated_planetoid_pickle(data_root, tmp_path, capsys):
    spec = get_dataset_spec("cora")
    raw = tmp_path / "planetoid" / "raw"
    raw.mkdir(parents=True)
    for name in spec.files:
        shutil.copy(spec.folder(data_root) / name, raw / name)
    (raw / "ind.cora.graph").write_bytes((raw / "ind.cora.graph").read_bytes()[:500])
    assert main(["fit", "--model", "gcn", "--data", "cora", "--data-dir", str(tmp_path), "--epochs", "1",
                 "--run-dir", str(tmp_path / "run")]) == 2
    line = error_line(capsys)
    assert "ind.cora.graph" in line and "re-download" in line
