"""The GPU device check's dry run (CI): every phase of ``benchmarks/gpu/device_check.sh`` on the CPU.

The device check is run by hand on a lent GPU, rarely; this keeps its phases from rotting in between:
each phase runs its CPU path on tiny sizes (a generated 200-user Gowalla, Cora, 1 epoch, 2 batches) and
must exit 0, or 77 where it needs CUDA ("skipped (no CUDA)"), and summary.json must be written.
About 75 s of CPU on 2 idle cores (most of it Python imports and numba compiles, once per phase).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu" / "device_check.sh"
PHASES = "env pytest fetch sage lightgcn eval nodeclass tta_lightgcn tta_ultragcn multigpu"


def test_phase_statuses_are_read_from_exit_codes():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from summary import phase_status
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert phase_status("0") == "ok"
    assert phase_status("77") == "skipped (no CUDA)"
    assert phase_status("124") == "timed out"
    assert phase_status("1") == "failed (rc 1)"
    assert phase_status("skipped-budget") == "skipped (budget)"


def test_cpu_gather_staging_alternates_and_waits_for_each_buffers_copy(monkeypatch):
    """The CPU-gather+copy baseline never refills a staging buffer its previous copy may still read."""
    import torch

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from gpu_feature_fetch import DoubleBufferedCopy

    from graphrec.sampling.feature_store import FeatureStore

    table = torch.randn(100, 8)
    staged = DoubleBufferedCopy(FeatureStore(table), 16, torch.device("cpu"))
    events = []

    class Copied:
        def __init__(self, buffer):
            self.buffer = buffer

        def synchronize(self):
            events.append(("waited", self.buffer))

    original_fetch = staged.store.fetch

    def fetch(ids, out):
        events.append(("filled", next(k for k, b in enumerate(staged.buffers) if b.data_ptr() == out.data_ptr())))
        return original_fetch(ids, out=out)

    monkeypatch.setattr(staged.store, "fetch", fetch)
    out = torch.empty(16, 8)
    for step in range(4):
        ids = torch.randint(0, 100, (10 + step,))
        assert torch.equal(staged(ids, out), table[ids])
        staged.copied[step % 2] = Copied(step % 2)     # what a CUDA copy's event would be
    assert events == [("filled", 0), ("filled", 1), ("waited", 0), ("filled", 0), ("waited", 1), ("filled", 1)]


def test_unknown_mode_is_refused():
    done = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 64 and "usage" in done.stderr


@pytest.mark.data
def test_dry_run_every_phase_passes_on_cpu(data_root, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "PY": sys.executable, "OUT": str(out), "WORK": str(work), "KEEP_WORK": "1",
           "GRAPHREC_DATA": str(data_root), "PHASES": PHASES}
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(REPO)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    log = (out / "log.txt").read_text() if (out / "log.txt").exists() else done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "dry"
    statuses = {name: row["status"] for name, row in summary["phases"].items()}
    assert sorted(statuses) == sorted(PHASES.split()), (statuses, log[-4000:])
    bad = {name: s for name, s in statuses.items() if s not in ("ok", "skipped (no CUDA)")}
    assert not bad, (bad, log[-6000:])
    # what each phase measured reached the summary
    assert summary["pytest"]["pytest_cuda"]["failures"] == 0 and summary["pytest"]["pytest_cuda"]["tests"] > 0
    assert summary["fetch"]["tables"], summary.get("fetch")
    assert summary["sage"]["results"]["cpu-gather+copy+prefetcher"]["batches"] == 2
    assert summary["lightgcn"]["results"] and summary["eval"]["seconds"]["graphrec"] > 0
    assert {"graphrec-dagnn", "pyg-appnp", "graphrec-gcnii2", "pyg-gcn2conv2"} <= set(
        summary["nodeclass"]["datasets"]["cora"]["results"])
    assert any(key.startswith("time_to_accuracy-lightgcn") for key in summary)
    assert any(key.startswith("time_to_accuracy-ultragcn") for key in summary)
    assert any(key.startswith("proj_") for key in summary)
    # at most 8 files come back from the device: the run leaves three, and no checkpoints in the archive
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "results.tgz", "summary.json"]
    with tarfile.open(out / "results.tgz") as archive:
        names = archive.getnames()
    assert "./phases.txt" in names and not any(name.endswith(".pt") for name in names)
