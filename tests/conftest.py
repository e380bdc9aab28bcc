"""Shared fixtures: where the real datasets live, Gowalla loaded once per session, and the test-only
tiny encoders registered (``tests/tiny_encoders.py``)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiny_encoders  # noqa: F401  (registers vanillanet_tiny_test, unireplknet_tiny_test)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("GRAPHREC_DATA")
    if env:
        return Path(env).expanduser()
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder holding ``<dataset>/<file>``: $GRAPHREC_DATA, else ``<repo>/../shared/data``."""
    root = _data_root()
    assert root.is_dir(), f"dataset folder {root} not found: set GRAPHREC_DATA"
    return root


@pytest.fixture(scope="session")
def gowalla(data_root):
    """The real Gowalla LightGCN split, read once (never downloaded: download=False)."""
    from graphrec.loaders import load_dataset

    return load_dataset("gowalla", data_dir=data_root, download=False)
