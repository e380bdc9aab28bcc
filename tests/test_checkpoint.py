"""graphrec.train.checkpoint: atomic save, safe (weights_only) load, clear errors."""
import os
from collections import OrderedDict

import pytest
import torch

from graphrec.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class NotAllowed:
    """A plain custom class: weights_only loading must refuse it."""

    def __init__(self, value=1):
        self.value = value


class Touches:
    """Unpickling this would create a file: proof that arbitrary code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _state():
    return {
        "model": OrderedDict(weight=torch.randn(4, 3), index=torch.arange(5), flag=torch.tensor([True, False])),
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.01, "params": [0]}]},
        "epoch": 7,
        "metrics": {"recall@20": 0.1234, "ndcg@20": 0.05},
        "ks": (10, 20),
        "config": {"model": "lightgcn", "data_dir": None, "train": {"lr": 1e-3, "device": "cpu"}},
        "history": [1, 2.5, "three", None, True],
    }


def test_round_trip_tensors_and_plain_data(tmp_path):
    state = _state()
    path = save_checkpoint(state, tmp_path / "run" / "best.pt")  # parent folder is created
    assert path == tmp_path / "run" / "best.pt" and path.is_file()
    loaded = load_checkpoint(path)
    assert loaded["format"] == "graphrec-checkpoint" and loaded["version"] == 1
    for name, tensor in state["model"].items():
        assert loaded["model"][name].dtype == tensor.dtype
        assert torch.equal(loaded["model"][name], tensor)
    assert torch.equal(loaded["optimizer"]["state"][0]["step"], torch.tensor(3.0))
    for key in ("epoch", "metrics", "ks", "config", "history"):
        assert loaded[key] == state[key]
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]


def test_load_accepts_str_path_and_overwrites(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, str(path))
    save_checkpoint({"epoch": 2}, path)
    assert load_checkpoint(str(path))["epoch"] == 2


def test_atomic_write_leaves_no_temp_files(tmp_path):
    save_checkpoint(_state(), tmp_path / "a.pt")
    save_checkpoint(_state(), tmp_path / "a.pt")
    save_checkpoint({"epoch": 0}, tmp_path / "b.pt")
    assert sorted(os.listdir(tmp_path)) == ["a.pt", "b.pt"]


def test_failed_save_keeps_previous_checkpoint_and_no_temp(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)
    with pytest.raises(Exception):
        save_checkpoint({"epoch": 2, "bad": lambda x: x}, path)  # lambdas cannot be pickled
    assert os.listdir(tmp_path) == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_custom_class_instances_are_refused(tmp_path):
    path = save_checkpoint({"epoch": 1, "extra": NotAllowed(3)}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_loading_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "pwned"
    path = save_checkpoint({"payload": Touches(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file_is_checkpoint_error(tmp_path, fraction):
    path = save_checkpoint(_state(), tmp_path / "c.pt")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "corrupted or truncated" in str(info.value)


@pytest.mark.parametrize("content", [b"\x00" * 100, bytes(range(256)) * 4, b"hello world\n", b"{\"epoch\": 1}\n"],
                         ids=["zeros", "bytes", "text", "json"])
def test_garbage_file_is_checkpoint_error(tmp_path, content):
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_file_is_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path)  # a folder is not a checkpoint file


def test_plain_torch_file_is_not_a_graphrec_checkpoint(tmp_path):
    torch.save({"epoch": 1}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a graphrec checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a graphrec checkpoint"):
        load_checkpoint(tmp_path / "list.pt")


def test_newer_format_version_is_refused(tmp_path):
    torch.save({"format": "graphrec-checkpoint", "version": 99}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(tmp_path / "new.pt")


def test_former_recommender_layout_loads_as_a_run_checkpoint(tmp_path):
    def csr(rows):   # rows: one sorted item list per user
        indptr = torch.tensor([0] + [len(r) for r in rows]).cumsum(0)
        return {"indptr": indptr, "indices": torch.tensor([i for r in rows for i in r], dtype=torch.long)}

    train, seen = [[0, 2], [1], [3]], [[0, 1, 2], [1], [0, 3, 4]]
    path = save_checkpoint({"kind": "recommender", "model": "lightgcn", "model_config": {"embedding_dim": 4},
                            "train_config": {"lr": 0.01}, "model_state": {"w": torch.ones(2)},
                            "user_ids": ["a", "b", "c"], "item_ids": [10, 11, 12, 13, 14],
                            "train": csr(train), "seen": csr(seen)}, tmp_path / "old.pt")
    state = load_checkpoint(path)
    assert "kind" not in state and state["run_config"]["model"] == "lightgcn"
    assert state["run_config"]["model_config"] == {"embedding_dim": 4} and state["run_config"]["train"]["lr"] == 0.01
    assert torch.equal(state["model_state"]["w"], torch.ones(2))
    interactions = state["interactions"]
    assert interactions["user_ids"] == ["a", "b", "c"] and interactions["item_ids"] == [10, 11, 12, 13, 14]
    assert torch.equal(interactions["train"]["indices"], csr(train)["indices"])
    valid = csr([[1], [], [0, 4]])   # seen minus train, per user
    assert torch.equal(interactions["valid"]["indptr"], valid["indptr"])
    assert torch.equal(interactions["valid"]["indices"], valid["indices"])
