"""Categorical node data: the official CatGCN three-file format, DataFrames, NBA and Income, the
synthetic interaction graph, and `graphrec fit --model catgcn` end to end."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.data.categorical import categorical_graph, interaction_labelled_graph, undirected_edges
from graphrec.loaders import MalformedFileError, get_dataset_spec, load_dataset
from graphrec.loaders.catgcn_format import from_dataframe, quantile_buckets, read_catgcn_files


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- official three-file format
FIELDS = np.array([[0, 3, 5], [1, 3, 6], [0, 4, 5], [2, 4, 7]], dtype=np.int64)  # global ids, V = 8


def write_official(folder, edges="uid,uid2\n0,1\n1,2\n2,1\n3,3\n", target="uid,age\n0,1\n1,0\n2,2\n3,1\n",
                   fields=FIELDS):
    np.save(folder / "user_field.npy", fields)
    (folder / "user_edge.csv").write_text(edges)
    (folder / "user_age.csv").write_text(target)
    return folder / "user_edge.csv", folder / "user_field.npy", folder / "user_age.csv"


def test_official_format_round_trip(tmp_path):
    graph = read_catgcn_files(*write_official(tmp_path), name="toy")
    assert torch.equal(graph.x_fields, torch.from_numpy(FIELDS))
    assert graph.num_field_values == 8 and getattr(graph, "field_offsets", None) is None and graph.name == "toy"
    # 0-1, 1-2 (given twice, once reversed) -> both directions once; the self-loop 3-3 is dropped
    assert graph.edge_index.t().tolist() == [[0, 1], [1, 0], [1, 2], [2, 1]]
    assert graph.y.tolist() == [1, 0, 2, 1]
    expected_x = torch.zeros(4, 8)
    expected_x[torch.arange(4)[:, None], torch.from_numpy(FIELDS)] = 1.0
    assert torch.equal(graph.x, expected_x)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"edges": "a,b\n0,1\n1,x\n"}, r"user_edge\.csv, line 3: node id 'x' is not an integer"),
    ({"edges": "a,b\n0,1\n2\n"}, r"user_edge\.csv, line 3: expected two node ids"),
    ({"edges": "a,b\n0,-1\n"}, r"user_edge\.csv, line 2: node id '-1' is negative"),
    ({"edges": "a,b\n0,1\n1,9\n"}, r"user_edge\.csv: edge #2 names user 9, but user_field\.npy has 4 users"),
    ({"target": "uid,age\n0,1\n1,0\n2,two\n3,1\n"}, r"user_age\.csv, line 4: class id 'two' is not an integer"),
    ({"target": "uid,age\n0,1\n1,0\n"}, r"user_age\.csv: 2 label rows for the 4 users"),
    ({"fields": np.array([1.5, 2.0])}, r"user_field\.npy: expected a 2-D integer users x fields matrix"),
    ({"fields": np.array([[0, 1], [-2, 1], [0, 0], [1, 1]])}, r"user_field\.npy: negative field id in row 1"),
])
def test_official_format_malformed_files_name_file_and_line(tmp_path, kwargs, pattern):
    with pytest.raises(MalformedFileError, match=pattern):
        read_catgcn_files(*write_official(tmp_path, **kwargs))


def test_official_format_rejects_a_file_that_is_not_npy(tmp_path):
    paths = write_official(tmp_path)
    paths[1].write_bytes(b"not an array")
    with pytest.raises(MalformedFileError, match=r"user_field\.npy: not a NumPy \.npy array"):
        read_catgcn_files(*paths)


# ---------------------------------------------------------------- DataFrame loader
def test_from_dataframe_codes_fields_targets_and_edges():
    frame = pd.DataFrame({
        "city": ["paris", "oslo", None, "oslo", "rome"],
        "gender": ["f", "m", "m", "f", "f"],
        "age": [18, 25, 33, 47, 61],
        "label": ["young", "young", None, "old", "unknown"],
    }, index=["u1", "u2", "u3", "u4", "u5"])
    edges = pd.DataFrame({"src": ["u1", "u2", "u4"], "dst": ["u2", "u3", "u1"]})
    graph = from_dataframe(frame, ["city", "gender"], "label", edges, numeric_columns=["age"], num_buckets=5,
                           unlabelled=("unknown",), name="mine")
    # city: oslo 0, paris 1, rome 2, missing 3 (cardinality 4); gender f 0, m 1 (offset 4); age 5 buckets (offset 6)
    assert graph.field_names == ["city", "gender", "age"]
    assert graph.field_offsets.tolist() == [0, 4, 6, 11]
    assert graph.x_fields.tolist() == [[1, 4, 6], [0, 5, 7], [3, 5, 8], [0, 4, 9], [2, 4, 10]]
    assert graph.class_names == ["old", "young"] and graph.y.tolist() == [1, 1, -1, 0, -1]
    assert sorted(map(tuple, graph.edge_index.t().tolist())) == [(0, 1), (0, 3), (1, 0), (1, 2), (2, 1), (3, 0)]
    assert graph.x.shape == (5, 11) and torch.equal(graph.x.sum(1), torch.full((5,), 3.0))
    with pytest.raises(ValueError, match=r"not in the frame's index, e\.g\. \['u9'\]"):
        from_dataframe(frame, ["city"], "label", [("u1", "u9")])
    with pytest.raises(KeyError, match="colour"):
        from_dataframe(frame, ["colour"], "label", [])


def test_quantile_buckets_give_a_heavy_value_its_own_bin():
    gains = [0] * 90 + list(range(1, 11))  # 90% zeros, like capital-gain
    codes = quantile_buckets(gains, 5)
    assert set(codes[:90]) == {0} and set(codes[90:]) == {1}
    spread = quantile_buckets(np.arange(100), 5)
    assert np.bincount(spread).tolist() == [20] * 5
    assert quantile_buckets([1.0, np.nan, 3.0], 2).tolist() == [0, 2, 1]


def test_categorical_graph_validation():
    with pytest.raises(ValueError, match="cardinality"):
        categorical_graph([[0, 3]], torch.zeros(2, 0, dtype=torch.long), [0], cardinalities=[2, 3])
    with pytest.raises(ValueError, match="node ids"):
        undirected_edges(torch.tensor([[0], [5]]), 3)


# ---------------------------------------------------------------- synthetic interaction graph
def test_synthetic_graph_is_reproducible_and_labelled_by_xor():
    first, again, other = (interaction_labelled_graph(num_nodes=300, seed=s) for s in (1, 1, 2))
    assert torch.equal(first.x_fields, again.x_fields) and torch.equal(first.edge_index, again.edge_index)
    assert torch.equal(first.y, again.y)
    assert not torch.equal(first.x_fields, other.x_fields)
    clean = interaction_labelled_graph(num_nodes=400, field_noise=0.0, seed=3)
    local = clean.x_fields - clean.field_offsets[:-1]
    bits = local[:, :4] % 2
    assert torch.equal(bits[:, 0] ^ bits[:, 1], clean.y & 1)
    assert torch.equal(bits[:, 2] ^ bits[:, 3], (clean.y >> 1) & 1)
    # each XOR field alone says nothing about the label: its bit is balanced within every class
    for label in range(4):
        share = bits[clean.y == label].float().mean(0)
        assert bool(((share - 0.5).abs() < 0.15).all())
    registered = load_dataset("catgcn-synthetic")
    assert registered.num_nodes == 2000 and registered.x_fields.shape == (2000, 7)


# ---------------------------------------------------------------- the real substitutes
@pytest.mark.data
def test_nba_counts_from_the_real_files(data_root):
    spec = get_dataset_spec("nba")
    assert spec.folder(data_root) == data_root / "catgcn" / "nba"
    spec.verify(data_root)
    graph = load_dataset("nba", data_root, download=False)
    assert graph.num_nodes == 403
    assert graph.edge_index.shape[1] == 2 * 10621  # distinct undirected follow pairs, both directions
    assert torch.bincount(graph.y + 1).tolist() == [90, 154, 159]  # unlabelled, salary 0, salary 1
    cardinalities = (graph.field_offsets[1:] - graph.field_offsets[:-1]).tolist()
    assert graph.field_names[:4] == ["country", "position", "team", "AGE"] and cardinalities[:4] == [2, 6, 54, 21]
    assert len(graph.field_names) == 38 and graph.num_field_values == 253
    degree = torch.bincount(graph.edge_index[0], minlength=403)
    assert int((degree == 0).sum()) == 3


@pytest.mark.data
def test_income_counts_from_the_real_files(data_root):
    spec = get_dataset_spec("income")
    assert spec.folder(data_root) == data_root / "catgcn" / "income"
    spec.verify(data_root)
    graph = load_dataset("income", data_root, download=False)
    assert graph.num_nodes == 14821
    assert graph.edge_index.shape[1] == 2 * 42831
    assert torch.bincount(graph.y).tolist() == [11611, 3210]
    cardinalities = (graph.field_offsets[1:] - graph.field_offsets[:-1]).tolist()
    # workclass, education, marital-status, occupation, relationship, race, sex, native-country as published
    assert cardinalities[:8] == [9, 16, 7, 15, 6, 2, 2, 38]
    assert graph.field_names[8:] == ["age", "fnlwgt", "capital-gain", "capital-loss", "hours-per-week"]
    assert cardinalities[10] == 2  # capital-gain: zero, or not


# ---------------------------------------------------------------- CLI
@pytest.mark.data
def test_cli_fit_catgcn_on_nba(data_root, tmp_path, capsys):
    from graphrec.cli import main

    run_dir = tmp_path / "run"
    code = main(["fit", "--model", "catgcn", "--data", "nba", "--data-dir", str(data_root), "--epochs", "3",
                 "--run-dir", str(run_dir)])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == 3
    test = summary["results"]["test"]
    assert set(test) >= {"loss", "accuracy", "macro_f1"} and 0.0 <= test["accuracy"] <= 1.0
    printed = json.loads(capsys.readouterr().out)
    assert printed["results"]["test"]["accuracy"] == test["accuracy"]
    config = (run_dir / "config.yaml").read_text()
    assert "class_weighted_loss: true" in config and "split: stratified" in config
