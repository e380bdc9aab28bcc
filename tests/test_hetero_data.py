"""HeCo-format heterogeneous datasets (loaders/hetero.py) and the labels-per-class split setting."""
from __future__ import annotations

import pytest
import torch

from graphrec.config import TrainConfig, build_run_config


def test_split_accepts_label_counts_and_still_rejects_unknown_names():
    assert TrainConfig(split="20").split == "20"
    assert build_run_config("latte", "acm", overrides={"train.split": 40}).train.split == "40"   # YAML int -> str
    with pytest.raises(ValueError, match="labels-per-class"):
        TrainConfig(split="full")


def test_cli_split_flag_maps_to_train_split():
    from graphrec.cli import build_parser

    args = build_parser().parse_args(["fit", "--model", "latte", "--data", "acm", "--split", "60"])
    assert args.split == "60"


def test_acm_and_freebase_are_registered_for_hetero_classification():
    from graphrec.loaders import available_datasets, get_dataset_spec

    assert {"acm", "freebase"} <= set(available_datasets("hetero_node_classification"))
    assert get_dataset_spec("acm").subdir == "hetero/acm"


@pytest.mark.data
def test_acm_reads_as_heterodata_with_heco_counts(data_root):
    from graphrec.loaders import get_dataset_spec, load_dataset

    get_dataset_spec("acm").verify(data_root)
    data = load_dataset("acm", data_root, download=False)
    assert data.target_node_type == "paper" and tuple(data.label_splits) == (20, 40, 60)
    assert {t: data[t].num_nodes for t in data.node_types} == {"paper": 4019, "author": 7167, "subject": 60}
    assert data["paper", "to", "author"].edge_index.shape == (2, 13407)
    assert data["subject", "to", "paper"].edge_index.shape == (2, 4019)
    assert torch.equal(data["author", "to", "paper"].edge_index, data["paper", "to", "author"].edge_index.flip(0))
    x = data["paper"].x
    assert x.shape == (4019, 1902) and set(torch.unique(x).tolist()) == {0.0, 1.0}      # 0/1 words recovered
    assert abs(float(x.sum(1).mean()) - 84.7) < 0.1                                      # SOURCE.md: 84.7 a row
    assert data["author"].x.shape == (7167, 1902) and "x" not in data["subject"]
    y = data["paper"].y
    assert torch.bincount(y).tolist() == [1993, 965, 1061]
    for count in (20, 40, 60):
        train, val, test = (data["paper"][f"{s}_mask_{count}"] for s in ("train", "val", "test"))
        assert torch.bincount(y[train]).tolist() == [count] * 3
        assert int(val.sum()) == 1000 and int(test.sum()) == 1000
        assert not bool((train & val).any()) and not bool((train & test).any()) and not bool((val & test).any())


@pytest.mark.data
def test_freebase_has_no_features_and_heco_counts(data_root):
    from graphrec.loaders import load_dataset

    data = load_dataset("freebase", data_root, download=False)
    assert {t: data[t].num_nodes for t in data.node_types} == {"movie": 3492, "actor": 33401, "director": 2502,
                                                                "writer": 4459}
    assert all("x" not in data[t] for t in data.node_types)
    assert data["movie", "to", "actor"].edge_index.shape[1] == 65341
    assert int(data["movie"].train_mask_20.sum()) == 60
