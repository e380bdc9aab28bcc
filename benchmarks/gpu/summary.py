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


def dig(record, *keys):
    """``record[k1][k2]...`` or None when any level is missing."""
    for key in keys:
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


def headlines(summary: dict) -> dict:
    """The figures the issues' targets name, in one place (None where a phase did not produce them)."""
    fetch = summary.get("fetch") or {}
    tables = fetch.get("tables") or {}
    big = next((name for name in tables if name.startswith("512B-")), None)
    big_batches = tables.get(big) or {}
    big_row = big_batches.get(max(big_batches, key=int)) if big_batches else None
    lightgcn = summary.get("lightgcn") or {}
    out = {
        "fetch_ceiling_GBps": fetch.get("ceiling_GBps"),
        "fetch_512B_big_table_largest_batch": big_row,
        "fetch_512B_64k_ids": dig(tables, "512B", "65536"),
        "sage_epoch_ratios": dig(summary, "sage", "ratios"),
        "lightgcn_s_per_epoch": {batch: {name: row.get("seconds_per_epoch") for name, row in rows.items()}
                                 for batch, rows in (lightgcn.get("results") or {}).items() if isinstance(rows, dict)
                                 and all(isinstance(r, dict) for r in rows.values())},
        "lightgcn_ratios": lightgcn.get("ratios"),
        "eval_graphrec_over_bare_matmul": dig(summary, "eval", "ratios", "graphrec/bare_matmul"),
        "nodeclass_ratios": {data: row.get("ratios") for data, row in (dig(summary, "nodeclass", "datasets") or {}).items()},
    }
    for key, value in summary.items():
        if key.startswith("time_to_accuracy-") and isinstance(value, dict):
            out[key] = {level: (hit or {}).get("wall_s") for level, hit in (value.get("reached") or {}).items()}
    return out


def summarize(work: Path, mode: str = "device", phases_run: str = "") -> dict:
    summary: dict = {"mode": mode, "phases_requested": phases_run.split(), "phases": read_phases(work),
                     "env": load(work / "env.json")}
    tests = {name: junit(work / f"{name}.xml") for name in ("pytest_cuda", "pytest_zero_copy")}
    summary["pytest"] = {k: v for k, v in tests.items() if v is not None}
    fetch = load(work / "gpu_fetch.json")
    if fetch:
        summary["fetch"] = fetch_headline(fetch)
    for key, name in (("sage", "gpu_fetch_minibatch_epoch.json"), ("lightgcn", "gpu_train_lightgcn_epoch.json"), ("eval", "gpu_train_evaluation.json"),
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
    summary["headlines"] = headlines(summary)
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
    print(json.dumps({"phases": summary["phases"], "pytest": summary["pytest"], "headlines": summary["headlines"]},
                     indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
