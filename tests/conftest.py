"""Shared fixtures: where the real datasets live, Gowalla loaded once per session, and the test-only
tiny encoders registered (``tests/tiny_encoders.py``).

Tests that read the real data carry the ``data`` marker (added automatically to every test that
uses the ``data_root`` or ``gowalla`` fixture). Without the data folder they are skipped with the
reason; with ``GRAPHREC_REQUIRE_DATA=1`` (CI sets it) a missing folder fails them instead, so a
data test can never be skipped silently where the data is supposed to be.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiny_encoders  # noqa: F401  (registers vanillanet_tiny_test, unireplknet_tiny_test)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_FIXTURES = {"data_root", "gowalla"}


def _data_root() -> Path:
    env = os.environ.get("GRAPHREC_DATA")
    if env:
        return Path(env).expanduser()
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def _missing_data_reason() -> str | None:
    root = _data_root()
    if root.is_dir():
        return None
    return f"real datasets not found at {root}: set GRAPHREC_DATA to the folder holding gowalla/, planetoid/, ..."


def pytest_collection_modifyitems(config, items):
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


def pytest_runtest_setup(item):
    if item.get_closest_marker("data") is None:
        return
    reason = _missing_data_reason()
    if reason is None:
        return
    if os.environ.get("GRAPHREC_REQUIRE_DATA") == "1":
        pytest.fail(f"{reason} (GRAPHREC_REQUIRE_DATA=1: data tests must run here)", pytrace=False)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter):
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if "real datasets not found" in str(report.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} data tests skipped: {_missing_data_reason()}")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder holding ``<dataset>/<file>``: $GRAPHREC_DATA, else ``<repo>/../shared/data``."""
    return _data_root()


@pytest.fixture(scope="session")
def gowalla(data_root):
    """The real Gowalla LightGCN split, read once (never downloaded: download=False)."""
    from graphrec.loaders import load_dataset

    return load_dataset("gowalla", data_dir=data_root, download=False)


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one thread avoids OpenMP oversubscription stalls on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def stop_at_batch():
    """``arm(trainer, n)``: the trainer is asked to stop (as by Ctrl-C) when its ``n``-th training batch runs."""
    def arm(trainer, number: int) -> None:
        original, calls = trainer.task.training_loss, {"n": 0}

        def loss_then_stop(model, batch):
            calls["n"] += 1
            if calls["n"] == number:
                trainer.request_stop()
            return original(model, batch)

        trainer.task.training_loss = loss_then_stop

    return arm
