"""`graphrec fit --node-encoder NAME --images PATH`, end to end on a small generated image folder."""
import json

import numpy as np
import pytest

from graphrec.cli import main

PIL = pytest.importorskip("PIL.Image")


def test_fit_and_eval_with_image_node_features(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAPHREC_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for node in range(0, 2000, 40):   # 50 of the 2000 nodes have an image; the rest get zeros
        PIL.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{node}.png")
    run_dir = tmp_path / "run"
    code = main(["fit", "--model", "dagnn", "--data", "catgcn-synthetic", "--epochs", "2",
                 "--set", "train.split=stratified", "--set", "model.num_hops=2",
                 "--node-encoder", "vanillanet_tiny_test", "--images", str(folder), "--run-dir", str(run_dir)])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert list((tmp_path / "cache" / "image-features").glob("vanillanet_tiny_test-*.npy"))
    assert main(["eval", "--checkpoint", str(run_dir / "best.pt")]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_images_without_encoder_is_a_clear_error(tmp_path, capsys):
    assert main(["fit", "--model", "dagnn", "--data", "catgcn-synthetic", "--images", str(tmp_path)]) == 2
    assert "--node-encoder and --images go together" in capsys.readouterr().err


def test_catgcn_with_images_in_sampled_mode(tmp_path, monkeypatch, capsys):
    # Sampled subgraphs used to train CatGCN without its images (or fail on the wrapper): now the batch
    # nodes' image features enter their initial representation.
    monkeypatch.setenv("GRAPHREC_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for node in range(0, 2000, 40):
        PIL.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{node}.png")
    code = main(["fit", "--model", "catgcn", "--data", "catgcn-synthetic", "--epochs", "2",
                 "--set", "sampling.mode=sampled", "--set", "sampling.fanouts=[5]", "--set", "model.num_hops=1",
                 "--node-encoder", "vanillanet_tiny_test", "--images", str(folder), "--run-dir", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
