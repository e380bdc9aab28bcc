"""The graphrec command line, end to end on real Gowalla (a few batches)."""
import json
import subprocess
import sys

import pytest

from graphrec.cli import main


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_root):
    run_dir = tmp_path_factory.mktemp("run")
    code = main(["fit", "--model", "lightgcn", "--data", "gowalla", "--data-dir", str(data_root),
                 "--epochs", "2", "--set", "train.max_batches_per_epoch=5", "--set", "eval_every=1",
                 "--set", "model.embedding_dim=16", "--run-dir", str(run_dir)])
    assert code == 0
    return run_dir


def test_fit_reports_protocol_and_results(trained_run, capsys):
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["protocol"] == "validation" and summary["epochs_run"] == 2
    assert summary["data"]["users"] == 29858 and summary["data"]["items"] == 40981
    assert summary["data"]["train"] + summary["data"]["valid"] == 810128
    assert 0.0 < summary["results"]["test"]["recall@20"] < 1.0
    assert summary["run_config"]["model_config"]["embedding_dim"] == 16


def test_resume_of_a_finished_run_is_a_no_op(trained_run, data_root):
    before = (trained_run / "metrics.jsonl").read_text()
    assert main(["fit", "--resume", str(trained_run), "--data-dir", str(data_root)]) == 0
    after = (trained_run / "metrics.jsonl").read_text()
    assert [json.loads(x)["epoch"] for x in before.splitlines() if '"train"' in x] == \
           [json.loads(x)["epoch"] for x in after.splitlines() if '"train"' in x]


def test_eval_and_recommend_from_checkpoint(trained_run, data_root, capsys):
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(trained_run / "best.pt"), "--data-dir", str(data_root)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert metrics["recall@20"] == pytest.approx(summary["results"]["test"]["recall@20"])
    assert main(["recommend", "--checkpoint", str(trained_run / "best.pt"), "--data-dir", str(data_root),
                 "--user", "0", "-k", "5"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["user"] == "0" and len(line["items"]) == 5
    assert main(["recommend", "--checkpoint", str(trained_run / "best.pt"), "--data-dir", str(data_root),
                 "--user", "99999999"]) == 2


def test_recommend_all_users_to_parquet(trained_run, data_root, capsys, tmp_path):
    import pyarrow.parquet as pq

    common = ["recommend", "--checkpoint", str(trained_run / "best.pt"), "--data-dir", str(data_root), "-k", "5"]
    capsys.readouterr()
    assert main([*common, "--all", "--out", str(tmp_path / "recs.parquet"), "--max-memory-mb", "64"]) == 0
    report = json.loads(capsys.readouterr().out)
    table = pq.read_table(tmp_path / "recs.parquet").to_pandas()
    assert report["rows"] == len(table) == report["users"] * 5
    assert main([*common, "--user", "0"]) == 0
    line = json.loads(capsys.readouterr().out)
    first = table[table.user.astype(str) == "0"].sort_values("rank")
    assert [str(item) for item in first["item"]] == [str(item) for item in line["items"]]
    assert main([*common, "--all"]) == 2                      # --all needs --out
    assert "--out" in capsys.readouterr().err


def test_recommender_loads_a_cli_run_checkpoint(trained_run, data_root, capsys):
    from graphrec import Recommender

    rec = Recommender.load(trained_run / "best.pt", data_dir=str(data_root))
    capsys.readouterr()
    assert main(["recommend", "--checkpoint", str(trained_run / "best.pt"), "--data-dir", str(data_root),
                 "--user", "0", "-k", "5"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert rec.recommend(0, k=5)["item"].tolist() == line["items"]


def test_listing_commands(data_root, capsys):
    assert main(["datasets", "--data-dir", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "gowalla" in out and "amazon-book" in out
    assert main(["models"]) == 0
    assert "lightgcn" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["fit", "--model", "lightgnc", "--data", "gowalla"], "Did you mean 'lightgcn'"),
    (["fit", "--model", "lightgcn", "--data", "gowala"], "Did you mean 'gowalla'"),
    (["fit", "--model", "lightgcn", "--data", "gowalla", "--set", "train.lrr=1"], "train.lr"),
    (["fit", "--model", "lightgcn", "--data", "gowalla", "--set", "lr"], "key=value"),
    (["eval", "--checkpoint", "/nonexistent/best.pt"], "does not exist"),
])
def test_errors_are_clear(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_python_dash_m_and_help():
    result = subprocess.run([sys.executable, "-m", "graphrec", "fit", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--protocol" in result.stdout and "examples:" in result.stdout
