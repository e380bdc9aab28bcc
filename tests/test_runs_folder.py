"""One run per folder (lock, fresh start, resume without a checkpoint), what a run prints, and the
summary of an interrupted run."""
import io
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from graphrec.config import TrainConfig
from graphrec.models import get_model_entry
from graphrec.train import NonFiniteLossError, RecommendationTask, Trainer
from graphrec.train.runlock import LOCK_NAME, RunFolderError, RunFolderLock

from test_trainer import synthetic_graph


def make_trainer(run_dir, epochs=2, verbose=True, **overrides):
    config = TrainConfig(**{**dict(epochs=epochs, batch_size=64, lr=0.01, eval_every=1, patience=0, seed=3),
                            **overrides})
    torch.manual_seed(0)
    task = RecommendationTask(synthetic_graph(), config)
    entry = get_model_entry("lightgcn")
    model = task.build_model(entry, entry.config_cls(embedding_dim=8))
    return Trainer(model, task, config, run_dir=run_dir, verbose=verbose)


def write_lock(run_dir, pid):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "then"}))


@pytest.fixture
def live_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


# ----------------------------------------------------------------- lock
def test_a_second_writer_is_refused_naming_the_first(tmp_path, live_process):
    write_lock(tmp_path, live_process.pid)
    with pytest.raises(RunFolderError, match=rf"in use by another run \(pid {live_process.pid} on"):
        make_trainer(tmp_path).fit()
    assert not (tmp_path / "metrics.jsonl").exists()  # nothing written beside the other run
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == live_process.pid  # its lock kept


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, live_process):
    live_process.kill()
    live_process.wait()
    write_lock(tmp_path, live_process.pid)
    with pytest.warns(RuntimeWarning, match=rf"stale lock of pid {live_process.pid}"):
        summary = make_trainer(tmp_path, verbose=False).fit()
    assert summary["status"] == "completed"
    assert not (tmp_path / LOCK_NAME).exists()  # released at the end


def test_the_lock_holds_this_pid_while_fitting_and_is_released_on_errors(tmp_path):
    trainer = make_trainer(tmp_path, verbose=False, monitor="recal@20")  # fails at the first evaluation
    seen = []
    original = trainer.task.training_loss

    def loss(model, batch):
        seen.append(json.loads((tmp_path / LOCK_NAME).read_text())["pid"])
        return original(model, batch)

    trainer.task.training_loss = loss
    with pytest.raises(KeyError):
        trainer.fit()
    assert seen and set(seen) == {os.getpid()}
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process identities are read from /proc")
def test_a_lock_whose_pid_now_belongs_to_another_process_is_stale(tmp_path, live_process):
    write_lock(tmp_path, live_process.pid)
    lock = json.loads((tmp_path / LOCK_NAME).read_text())
    (tmp_path / LOCK_NAME).write_text(json.dumps({**lock, "process": "another-boot:123"}))  # pid reused
    with pytest.warns(RuntimeWarning, match="stale lock"):
        with RunFolderLock(tmp_path):
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_second_ctrl_c_aborts_and_still_releases_the_lock(tmp_path):
    trainer = make_trainer(tmp_path, verbose=False)

    def abort(model, batch):
        raise KeyboardInterrupt  # what the signal handler raises on a second Ctrl-C

    trainer.task.training_loss = abort
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(RunFolderError, match="pid 1 on elsewhere.example"):
        RunFolderLock(tmp_path).acquire()


def test_a_lock_in_another_process_refuses_this_one(tmp_path):
    """The real thing: a child process holds the lock; this process is refused; after the child
    exits, the lock is free again."""
    script = ("import sys, time; from graphrec.train.runlock import RunFolderLock; "
              f"lock = RunFolderLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); "
              "sys.stdin.readline(); lock.release()")
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"pid {child.pid}"):
            RunFolderLock(tmp_path).acquire()
    finally:
        child.communicate("\n", timeout=60)
    with RunFolderLock(tmp_path):
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


# ----------------------------------------------------------------- one run per folder
def test_a_fresh_start_in_a_folder_that_holds_a_run_is_refused(tmp_path):
    make_trainer(tmp_path, verbose=False).fit()
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(RunFolderError, match="holds a run .*pass --resume to continue it or choose another --run-dir"):
        make_trainer(tmp_path, verbose=False).fit()
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_a_folder_with_metrics_but_no_checkpoint_is_neither_restarted_nor_resumed(tmp_path):
    make_trainer(tmp_path, verbose=False).fit()
    (tmp_path / "last.pt").unlink()
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(RunFolderError, match="last.pt is gone"):
        make_trainer(tmp_path, verbose=False).resume()
    with pytest.raises(RunFolderError, match="no last.pt to resume from"):
        make_trainer(tmp_path, verbose=False).fit()
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_resume_of_an_empty_folder_says_there_is_nothing_to_resume(tmp_path):
    with pytest.raises(RunFolderError, match="nothing to resume"):
        make_trainer(tmp_path).resume()


def test_cli_resume_without_last_pt_is_a_clear_error(tmp_path, data_root, capsys):
    from graphrec.cli import main

    run_dir = tmp_path / "run"
    args = ["--data-dir", str(data_root)]
    assert main(["fit", "--model", "gcn", "--data", "cora", "--epochs", "1", "--run-dir", str(run_dir), *args]) == 0
    assert main(["fit", "--model", "gcn", "--data", "cora", "--epochs", "1", "--run-dir", str(run_dir), *args]) == 2
    assert "pass --resume to continue it" in capsys.readouterr().err
    (run_dir / "last.pt").unlink()
    assert main(["fit", "--resume", str(run_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphrec: error: cannot resume") and "last.pt is gone" in err
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["split"] == "train"] == [1]  # nothing appended


# ----------------------------------------------------------------- what a run prints
def test_without_a_terminal_a_run_prints_plain_lines(tmp_path, capsys):
    make_trainer(tmp_path, epochs=3).fit()
    out, err = capsys.readouterr()
    assert out == ""  # stdout stays for results
    assert "\r" not in err
    for label in ("model", "data", "protocol", "epochs", "evaluation", "device", "threads", "run folder"):
        assert any(line.startswith(label + " ") for line in err.splitlines()), label
    assert f"run folder  {tmp_path}" in err
    assert "epochs      3, " in err and "every epoch on valid, monitor recall@20" in err
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3  loss " in err and f"epoch {epoch}/3  valid recall@20 " in err
    assert "s/epoch  ETA " in err and " best " in err
    assert err.count("estimated run time: ") == 1
    assert "completed: test at epoch" in err


def test_on_a_terminal_a_run_draws_an_overall_and_a_per_epoch_bar(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    trainer = make_trainer(tmp_path, epochs=2)
    trainer.fit()
    text = terminal.getvalue()
    batches = trainer.task.num_batches()
    assert "run: " in text and "2/2 [" in text and "epoch" in text  # epochs i/N with tqdm's ETA
    assert "epoch 1: " in text and f"0/{batches} [" in text  # batches of the total
    assert "epoch 2/2  valid recall@20" in text


def test_a_long_epoch_prints_periodic_lines_without_a_terminal(capsys):
    from graphrec.train.progress import Progress

    progress = Progress(line_every_s=0.0)
    progress.start({"model": "m"}, epochs=3, first_epoch=0)
    progress.epoch_start(1, batches=200, first_batch=0)
    progress.batch_done(1, 50, 200, loss=0.5, samples_per_s=1000.0, refresh=True)
    progress.epoch_end(1, loss=0.4, seconds=2.0)
    err = capsys.readouterr().err
    assert "epoch 1/3  batch 50/200  loss 0.5000  1,000 samples/s" in err
    assert "epoch 1/3  loss 0.4000  2.0 s/epoch  ETA " in err


def test_verbose_false_prints_nothing(tmp_path, capsys, stop_at_batch):
    trainer = make_trainer(tmp_path, epochs=2, verbose=False)
    stop_at_batch(trainer, trainer.task.num_batches() + 1)
    trainer.fit()
    trainer.resume()
    trainer.fit()
    assert capsys.readouterr() == ("", "")


# ----------------------------------------------------------------- interrupted runs
def test_an_interrupted_run_writes_its_summary_with_the_best_so_far(tmp_path, stop_at_batch):
    trainer = make_trainer(tmp_path, epochs=5, verbose=False)
    stop_at_batch(trainer, 2 * trainer.task.num_batches() + 1)  # a batch into the third epoch
    result = trainer.fit()
    assert (result["status"], result["epoch"], result["step"]) == ("interrupted", 2, 1)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_run"] == 2
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    best = max((r for r in rows if r["split"] == "valid"), key=lambda r: r["recall@20"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["results"]["valid"]["recall@20"] == pytest.approx(best["recall@20"])
    assert summary["checkpoint"] == str(tmp_path / "last.pt")
    assert (tmp_path / "curves.png").exists()


def test_a_nan_loss_before_any_checkpoint_does_not_claim_one(tmp_path):
    trainer = make_trainer(tmp_path, verbose=False)
    trainer.task.training_loss = lambda model, batch: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(NonFiniteLossError, match="no checkpoint was saved yet") as error:
        trainer.fit()
    assert "is kept" not in str(error.value)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / LOCK_NAME).exists()
