"""Wall time for a registered recommender to reach given recall@20 levels, under the paper protocol.

Trains with :func:`graphrec.runs.fit` (``train.protocol=paper``: test evaluated every
``--eval-every`` epochs, no validation split, as in the LightGCN and UltraGCN papers) and
reads the run's ``metrics.jsonl``. For each threshold it records the first evaluation whose
recall@20 reaches it, with two clocks:

- ``wall_s``: wall-clock seconds from just before ``fit`` was called (data loading, model
  preparation, training, evaluation and checkpointing all included) to the moment that
  evaluation row was written (``null`` for rows written by an earlier session of a
  ``--resume``-d run: that session's wall clock is not this one's);
- ``train_eval_s``: the Trainer's own clocks, training seconds (``elapsed_s``) plus every
  evaluation's ``eval_seconds`` so far.

The run stops when every threshold is reached or after ``--time-budget`` wall seconds
(a SIGTERM to itself: the Trainer saves ``last.pt`` and returns), whichever comes first.
Writes ``time_to_accuracy-<model>-<data>[-<tag>].json`` and ``.md`` to ``--out``.

    python benchmarks/time_to_accuracy.py --model ultragcn --data gowalla \\
        --data-dir /work/shared/data --time-budget 2400 --set sampling.shared_negatives=true --tag shared
    python benchmarks/time_to_accuracy.py --model lightgcn --data gowalla --data-dir /work/shared/data \\
        --time-budget 2400 --eval-every 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numba
import torch

from graphrec import runs
from graphrec.config import build_run_config, parse_overrides

#: Published Gowalla results (recall@20, ndcg@20) for context.
PAPER_RESULTS = {
    "ultragcn": {"source": "Mao et al., CIKM 2021, Table 3 (Gowalla)", "recall@20": 0.1862, "ndcg@20": 0.1580},
    "lightgcn": {"source": "He et al., SIGIR 2020, Table 3 (Gowalla)", "recall@20": 0.1830, "ndcg@20": 0.1554},
}

#: Epochs the authors' own run needed, read off its published per-epoch log, so that a CPU run that
#: cannot afford hundreds of epochs can still be placed on the official curve. Epoch counts are
#: epochs completed (the log numbers them from 0).
OFFICIAL_RUNS = {
    ("ultragcn", "gowalla"): {
        "source": "the UltraGCN authors' Gowalla run log (reczoo/RecZoo, benchmarks/UltraGCN_gowalla_x0.md): "
                  "official code and config, lr 1e-4, batch 512, 1500 negatives, test every epoch, one GPU",
        "epoch_s": 60.0,  # 52 s train + 8 s test per epoch in that log
        "epochs_to": {"0.15": 264, "0.17": 339, "0.18": 415},
        "best": {"epochs": 635, "recall@20": 0.1864, "ndcg@20": 0.1581},
        "plateau": "recall@20 stays at 0.040-0.042 (the item-popularity level) for the first ~140 epochs",
    },
}


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "numba_threads": numba.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_at_start": list(os.getloadavg())}


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    with open(path) as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written
                break
    return rows


def evaluation_curve(rows: list[dict], started: float, metric: str, split: str = "test") -> list[dict]:
    """Evaluation rows with both clocks: wall seconds since ``started`` and Trainer train+eval seconds."""
    curve, eval_total = [], 0.0
    for row in rows:
        if row.get("split") != split or metric not in row or row.get("final"):
            continue
        eval_total += float(row.get("eval_seconds", 0.0))
        # a resumed run's earlier sessions happened before ``started``: no wall time of this session to give
        wall_s = round(row["time"] - started, 1) if row["time"] >= started else None
        curve.append({"epoch": row["epoch"], "time": round(row["time"], 1), "wall_s": wall_s,
                      "train_eval_s": round(float(row["elapsed_s"]) + eval_total, 1),
                      **{k: round(v, 5) for k, v in row.items() if "@" in k}})
    return curve


def first_crossings(curve: list[dict], metric: str, thresholds: list[float]) -> dict[str, dict | None]:
    out: dict[str, dict | None] = {}
    for threshold in thresholds:
        hit = next((point for point in curve if point[metric] >= threshold), None)
        out[f"{threshold:g}"] = hit
    return out


class _Watchdog(threading.Thread):
    """Ends the run (SIGTERM to this process) once all thresholds are reached or the budget is spent."""

    def __init__(self, run_dir: Path, started: float, budget_s: float, metric: str, thresholds: list[float]):
        super().__init__(daemon=True)
        self.run_dir, self.started, self.budget_s = run_dir, started, budget_s
        self.metric, self.thresholds = metric, thresholds
        self.reason: str | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(2.0):
            if not (self.run_dir / "config.yaml").exists():  # Trainer.fit (and its signal handler) not started
                continue
            curve = evaluation_curve(read_rows(self.run_dir / "metrics.jsonl"), self.started, self.metric)
            if curve and max(p[self.metric] for p in curve) >= max(self.thresholds):
                self.reason = "all thresholds reached"
            elif time.time() - self.started >= self.budget_s:
                self.reason = "time budget spent"
            if self.reason:
                os.kill(os.getpid(), signal.SIGTERM)
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="gowalla")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--time-budget", type=float, default=2400.0, help="wall seconds (default 2400)")
    parser.add_argument("--eval-every", type=int, default=1, help="epochs between test evaluations")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.15, 0.17, 0.18])
    parser.add_argument("--metric", default="recall@20")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=[],
                        help="extra settings, e.g. sampling.shared_negatives=true (repeatable)")
    parser.add_argument("--tag", default="", help="suffix of the result files, e.g. 'shared'")
    parser.add_argument("--run-dir", default=None, help="run folder (default: a temporary folder)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir from its last.pt for another --time-budget seconds; "
                             "the table's clock is then the Trainer's own (train + eval s, summed over sessions)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)

    overrides = {"train.protocol": "paper", "train.eval_every": args.eval_every, "train.seed": args.seed,
                 "train.patience": 0, "train.time_limit_s": args.time_budget}
    overrides.update(parse_overrides(args.overrides))
    if args.resume:
        # The Trainer's time limit counts its cumulative clock; the watchdog enforces this session's budget.
        overrides["train.time_limit_s"] = 0.0
    config = build_run_config(args.model, args.data, args.data_dir, overrides=overrides)
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix=f"tta-{args.model}-{args.data}-"))
    if args.resume and not (run_dir / "last.pt").exists():
        raise SystemExit(f"--resume: {run_dir} has no last.pt to continue from")
    if not args.resume and (run_dir / "metrics.jsonl").exists():
        raise SystemExit(f"{run_dir} already holds a run; pass a new --run-dir, or --resume to continue it")
    info = hardware()
    print(f"run folder: {run_dir}", file=sys.stderr)

    started = time.time()
    watchdog = _Watchdog(run_dir, started, args.time_budget, args.metric, sorted(args.thresholds))
    watchdog.start()
    _, summary = runs.fit(config, run_dir, resume=args.resume)
    watchdog.done.set()
    finished = time.time()

    rows = read_rows(run_dir / "metrics.jsonl")
    curve = evaluation_curve(rows, started, args.metric)
    train_rows = [r for r in rows if r.get("split") == "train"]
    config_mtime = (run_dir / "config.yaml").stat().st_mtime
    best = max(curve, key=lambda p: p[args.metric]) if curve else None
    info["load_average_at_end"] = list(os.getloadavg())
    info["torch_threads"] = torch.get_num_threads()  # as the run set it (train.num_threads)
    info["numba_threads"] = numba.get_num_threads()
    result = {
        "benchmark": "time_to_accuracy", "model": args.model, "data": args.data,
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "seed": args.seed, "metric": args.metric, "thresholds": args.thresholds,
        "time_budget_s": args.time_budget, "resumed": args.resume, "stopped_because": watchdog.reason or summary.get("status"),
        "started_at": round(started, 1), "finished_at": round(finished, 1),  # Unix times: did two runs overlap?
        "total_wall_s": round(finished - started, 1),
        # a resumed run's config.yaml was written in its first session: no setup time in this one
        "setup_s": None if args.resume else round(config_mtime - started, 1),
        "epochs": len(train_rows),
        "mean_epoch_train_s": round(sum(r["seconds"] for r in train_rows) / max(len(train_rows), 1), 2),
        "reached": first_crossings(curve, args.metric, args.thresholds),
        "best": best, "paper": PAPER_RESULTS.get(args.model),
        "official_run": OFFICIAL_RUNS.get((args.model, args.data)),
        "hardware": info, "run_config": config.to_dict(), "run_dir": str(run_dir), "curve": curve,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"time_to_accuracy-{args.model}-{args.data}" + (f"-{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    metric = result["metric"]
    lines = [f"# Time to accuracy: {result['model']} on {result['data']}", "",
             f"- command: `{result['command']}`",
             f"- seed {result['seed']}, protocol paper (test evaluated every "
             f"{result['run_config']['train']['eval_every']} epoch(s)), budget {result['time_budget_s']:.0f} s, "
             f"stopped: {result['stopped_because']}",
             f"- hardware: {result['hardware']['cpu']}, {result['hardware']['cores']} cores, "
             f"torch {result['hardware']['torch']} ({result['hardware']['torch_threads']} threads{_numba(result)}); load average "
             f"at start {result['hardware']['load_average_at_start'][0]:.1f}, at end "
             f"{result['hardware']['load_average_at_end'][0]:.1f} (the end figure counts this run's own threads)",
             *(["- resumed from the run folder's last.pt: the run spans sessions, so read the train + eval "
                "clock (the Trainer's, summed over sessions); wall s counts from this session's start"]
               if result.get("resumed") else []),
             f"- setup (data + model preparation) {result['setup_s'] if result['setup_s'] is not None else 'n/a'} s; "
             f"{result['epochs']} epochs, "
             f"{result['mean_epoch_train_s']} s of training per epoch; total {result['total_wall_s']} s", "",
             f"| {metric} reached | epoch | wall s (all included) | train + eval s | {metric} | ndcg@20 |",
             "|---|---|---|---|---|---|"]
    for threshold, point in result["reached"].items():
        if point is None:
            lines.append(f"| {threshold} | not reached | | | | |")
        else:
            lines.append(f"| {threshold} | {point['epoch']} | {_wall(point)} | {point['train_eval_s']} | "
                         f"{point[metric]:.4f} | {point.get('ndcg@20', float('nan')):.4f} |")
    best = result["best"]
    if best:
        lines += ["", f"Best: {metric} {best[metric]:.4f}, ndcg@20 {best.get('ndcg@20', float('nan')):.4f} "
                      f"at epoch {best['epoch']} ({_wall(best)} s wall)."]
    if result.get("paper"):
        paper = result["paper"]
        lines.append(f"Paper ({paper['source']}): recall@20 {paper['recall@20']}, ndcg@20 {paper['ndcg@20']}.")
    official = result.get("official_run")
    if official:
        lines += ["", official_run_note(official, result["mean_epoch_train_s"], metric)]
    return "\n".join(lines) + "\n"


def _numba(result: dict) -> str:
    # older records did not note numba's pool (it then used every core for graphrec's kernels)
    threads = result["hardware"].get("numba_threads")
    return f", numba kernels {threads}" if threads is not None else ""


def _wall(point: dict) -> str:
    return "earlier session" if point["wall_s"] is None else str(point["wall_s"])


def official_run_note(official: dict, epoch_s: float, metric: str) -> str:
    """Where the authors' run crossed each threshold, and what those epochs cost at this run's epoch time."""
    reached = ", ".join(f"{level} after {epochs} epochs" for level, epochs in official["epochs_to"].items())
    best = official["best"]
    hours = {level: epochs * epoch_s / 3600 for level, epochs in official["epochs_to"].items()}
    projected = ", ".join(f"{level} ~{h:.1f} h" for level, h in hours.items())
    return (f"Official run ({official['source']}): {metric} {reached}; best {best[metric]} after "
            f"{best['epochs']} epochs; {official['plateau']}. At this run's {epoch_s} s of training per "
            f"epoch, the same number of epochs would take (training only, a projection, not a measurement): "
            f"{projected}.")


if __name__ == "__main__":
    raise SystemExit(main())
