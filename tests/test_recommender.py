"""The DataFrame-in, ids-out recommender API."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec import Recommender
from graphrec.cli import main
from graphrec.train import CheckpointError, save_checkpoint


@pytest.fixture(scope="module")
def interactions():
    # Two taste groups: users "a*" like "rock-*" songs, users "b*" like "jazz-*" songs.
    rng = np.random.default_rng(0)
    rows = []
    for group, genre in (("a", "rock"), ("b", "jazz")):
        for u in range(30):
            for i in rng.choice(15, size=8, replace=False):
                rows.append((f"{group}{u}", f"{genre}-{i}"))
    return pd.DataFrame(rows, columns=["listener", "song"])


@pytest.fixture(scope="module")
def fitted(interactions):
    return Recommender("lightgcn", epochs=30, train={"batch_size": 128, "lr": 0.02, "eval_every": 5},
                       embedding_dim=16).fit(interactions, user="listener", item="song")


def test_recommends_in_users_own_ids_excluding_seen(fitted, interactions):
    out = fitted.recommend(["a0", "b3"], k=5)
    assert list(out.columns) == ["user", "rank", "item", "score"]
    assert out.groupby("user")["rank"].apply(list).to_dict() == {"a0": [1, 2, 3, 4, 5], "b3": [1, 2, 3, 4, 5]}
    for user in ("a0", "b3"):
        seen = set(interactions.loc[interactions.listener == user, "song"])
        recommended = out.loc[out.user == user, "item"]
        assert not seen & set(recommended)
        scores = out.loc[out.user == user, "score"].to_numpy()
        assert np.all(np.diff(scores) <= 0)
    # The model learned the two groups: rock listeners get rock songs first.
    assert out.loc[out.user == "a0", "item"].str.startswith("rock").sum() >= 4
    assert out.loc[out.user == "b3", "item"].str.startswith("jazz").sum() >= 4


def test_save_and_load_give_identical_recommendations(fitted, tmp_path):
    path = fitted.save(tmp_path / "rec.pt")
    loaded = Recommender.load(path)
    pd.testing.assert_frame_equal(loaded.recommend(["a1", "b2"], k=4), fitted.recommend(["a1", "b2"], k=4))


def test_saved_file_is_a_run_checkpoint(fitted, tmp_path):
    path = fitted.save(tmp_path / "rec.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert "kind" not in state and state["format"] == "graphrec-checkpoint"
    assert state["run_config"]["model"] == "lightgcn"
    assert state["run_config"]["model_config"]["embedding_dim"] == 16
    assert state["run_config"]["train"]["lr"] == 0.02
    assert set(fitted.model.state_dict()) == set(state["model_state"])
    assert state["interactions"]["user_ids"][:2] == ["a0", "a1"]
    assert state["epoch"] == fitted.summary["best_epoch"]


def test_cli_eval_and_recommend_read_a_saved_recommender(fitted, tmp_path, capsys):
    path = fitted.save(tmp_path / "rec.pt")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(path), "--split", "valid"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["recall@20"] == pytest.approx(fitted.summary["results"]["valid"]["recall@20"])
    assert main(["recommend", "--checkpoint", str(path), "--user", "a1", "-k", "4"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["items"] == fitted.recommend("a1", k=4)["item"].tolist()


def test_file_of_the_former_recommender_layout_still_loads(fitted, tmp_path):
    def csr(matrix):
        return {"indptr": torch.from_numpy(matrix.indptr.astype(np.int64)),
                "indices": torch.from_numpy(matrix.indices.astype(np.int64))}

    path = save_checkpoint({
        "kind": "recommender", "model": "lightgcn", "model_config": dataclasses.asdict(fitted.model_config),
        "train_config": {k: (list(v) if isinstance(v, tuple) else v)
                         for k, v in dataclasses.asdict(fitted.train_config).items()},
        "model_state": fitted.model.state_dict(),
        "user_ids": fitted.user_map.ids.tolist(), "item_ids": fitted.item_map.ids.tolist(),
        "train": csr(fitted.graph.train), "seen": csr(fitted.seen)}, tmp_path / "old.pt")
    loaded = Recommender.load(path)
    assert (loaded.graph.valid != fitted.graph.valid).nnz == 0 and (loaded.graph.train != fitted.graph.train).nnz == 0
    pd.testing.assert_frame_equal(loaded.recommend(["a1", "b2"], k=4), fitted.recommend(["a1", "b2"], k=4))


def test_integer_ids_round_trip(tmp_path):
    frame = pd.DataFrame({"user": np.repeat([100, 205, 317], 6), "item": np.tile([7, 9, 11, 13, 15, 17], 3)})
    frame = frame.iloc[[i for i in range(18) if i not in (5, 10, 12)]]
    rec = Recommender("lightgcn", epochs=2, train={"batch_size": 8}, embedding_dim=4).fit(frame)
    out = rec.recommend(100, k=3)
    assert set(out["item"]) <= {17} and out["item"].dtype.kind == "i"  # only the unseen item remains
    loaded = Recommender.load(rec.save(tmp_path / "rec.pt"))
    pd.testing.assert_frame_equal(loaded.recommend(100, k=3), out)


def test_errors_name_the_fix(interactions, tmp_path):
    with pytest.raises(KeyError, match="Did you mean 'lightgcn'"):
        Recommender("lightgnc")
    with pytest.raises(TypeError, match="embedding_dim"):
        Recommender("lightgcn", embeding_dim=3)
    with pytest.raises(RuntimeError, match="fit"):
        Recommender("lightgcn").recommend(["a0"])
    rec = Recommender("lightgcn", epochs=1, train={"batch_size": 256}, embedding_dim=4).fit(
        interactions, user="listener", item="song")
    with pytest.raises(KeyError, match="unknown ids"):
        rec.recommend(["nobody"])
    with pytest.raises(KeyError, match="columns"):
        Recommender("lightgcn").fit(interactions, user="user")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        Recommender.load(tmp_path / "bad.pt")


def test_sampling_settings_have_their_own_section():
    assert Recommender("lightgcn", sampling={"num_negatives": 3}).sampling_config.num_negatives == 3
    with pytest.raises(TypeError, match="train.num_negatives moved to sampling.num_negatives"):
        Recommender("lightgcn", train={"num_negatives": 3})


def test_files_saved_before_the_sampling_section_still_load(fitted, tmp_path):
    import torch

    path = fitted.save(tmp_path / "rec.pt")
    state = torch.load(path, weights_only=True)
    run_config = state["run_config"]
    from graphrec.config import MOVED_KEYS

    sampling = run_config.pop("sampling")   # the older layout: its keys (those that existed then) under train
    run_config["train"].update({k: v for k, v in sampling.items() if f"train.{k}" in MOVED_KEYS})
    torch.save(state, path)
    loaded = Recommender.load(path)
    assert loaded.sampling_config == fitted.sampling_config and loaded.train_config == fitted.train_config
    pd.testing.assert_frame_equal(loaded.recommend(["a1"], k=4), fitted.recommend(["a1"], k=4))


def test_recommend_all_writes_every_users_recommend_rows(fitted, tmp_path):
    import pyarrow.parquet as pq

    report = fitted.recommend_all(tmp_path / "recs.parquet", k=5, progress=False)
    table = pq.read_table(tmp_path / "recs.parquet").to_pandas()
    assert report.users == len(fitted.user_map) and set(table.user) == set(fitted.user_map.ids)
    for user in ("a0", "b3"):   # the same rows, ranks and scores as recommend() in the users' own ids
        expected = fitted.recommend([user], k=5)
        got = table[table.user == user].reset_index(drop=True)
        assert got["item"].tolist() == expected["item"].tolist()
        assert got["rank"].tolist() == expected["rank"].tolist()
        np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-6)
