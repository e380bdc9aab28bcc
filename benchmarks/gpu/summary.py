"""One ``summary.json`` from a device check's work folder: every phase's status and its headline figures.

    python benchmarks/gpu/summary.py WORK OUT.json [--mode device|dry] [--phases "env pytest ..."]

A phase's status is "ok" (exit 0), "skipped (no CUDA)" (exit 77: a GPU-only phase on a CPU machine),
"skipped (budget)", "timed out" (exit 124) or "failed (rc N)". Result files that are missing are left out.
"""
from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

NO_CUDA_EXIT = 77


def phase_status(rc: str) -> str:
    if rc == "skipped-budget":
        return "skipped (budget)"
    code = int(rc)
    return {0: "ok", NO_CUDA_EXIT: "skipped (no CUDA)", 124: "timed out", 137: "timed out"}.get(code, f"failed (rc {code})")


def read_phases(work: Path) -> dict:
    phases = {}
    path = work / "phases.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            name, rc, seconds = line.split()
            phases[name] = {"rc": rc, "s": int(seconds), "status": phase_status(rc)}
    return phases


def load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def junit(path: Path) -> dict | None:
    """Counts and the failing/skipped tests of a pytest --junitxml file."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    failing, skip_reasons = [], set()
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        for child in case:
            if child.tag in ("failure", "error"):
                failing.append({"test": name, "message": (child.get("message") or "")[:300]})
            elif child.tag == "skipped":
                skip_reasons.add((child.get("message") or "")[:200])
    return {**counts, "failing": failing, "skip_reasons": sorted(skip_reasons)}


def fetch_headline(record: dict) -> dict:
    """GB/s of the zero-copy contenders and the three ratios, per table and batch size."""
    out = {"ceiling_GBps": record.get("ceiling_GBps"), "copy_GBps": record.get("copy_GBps"), "tables": {}}
    for table, entry in (record.get("tables") or {}).items():
        out["tables"][table] = {ids: {"GBps": row["GBps"], "ratios": row["ratios"]}
                                for ids, row in entry.get("batches", {}).items()}
    if "power_law_and_overlap" in record:
        out["power_law_and_overlap"] = record["power_law_and_overlap"]
    return out


def summarize(work: Path, mode: str = "device", phases_run: str = "") -> dict:
    summary: dict = {"mode": mode, "phases_requested": phases_run.split(), "phases": read_phases(work),
                     "env": load(work / "env.json")}
    tests = {name: junit(work / f"{name}.xml") for name in ("pytest_cuda", "pytest_zero_copy")}
    summary["pytest"] = {k: v for k, v in tests.items() if v is not None}
    fetch = load(work / "gpu_fetch.json")
    if fetch:
        summary["fetch"] = fetch_headline(fetch)
    for key, name in (("lightgcn", "gpu_train_lightgcn_epoch.json"), ("eval", "gpu_train_evaluation.json"),
                      ("nodeclass", "gpu_train_node_classification.json")):
        record = load(work / name)
        if record:
            summary[key] = {k: v for k, v in record.items() if k not in ("hardware",)}
    for path in sorted((work / "tta").glob("time_to_accuracy-*.json")) if (work / "tta").is_dir() else []:
        record = load(path)
        if record:
            summary[path.stem] = {k: record.get(k) for k in ("command", "stopped_because", "total_wall_s", "setup_s",
                                                             "epochs", "mean_epoch_train_s", "reached", "best")}
    for path in sorted(work.glob("gnnpipe_gpu_*.json")):
        summary[path.stem] = load(path)
    for path in sorted(work.glob("proj_*.json")):
        record = load(path) or {}
        summary[path.stem] = {"rows": record.get("rows"), "device": record.get("device")}
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work")
    parser.add_argument("out")
    parser.add_argument("--mode", default="device")
    parser.add_argument("--phases", default="")
    args = parser.parse_args(argv)
    summary = summarize(Path(args.work), args.mode, args.phases)
    Path(args.out).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(json.dumps({"phases": summary["phases"], "pytest": summary["pytest"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
