"""Sampled-subgraph LightGCN (``sampling.mode=sampled``) against full-graph LightGCN on Gowalla.

Both contenders train through ``graphrec.runs.fit`` (the same Trainer, the same BPR triples
batch for batch: the sampled mode draws its triples with the full mode's sampler and seed)
under the validation protocol: validation recall@20 every epoch, test once at the selected
epoch. The only difference is the propagation of each step: the whole graph (full) or the
sampled K-hop neighbourhood of the batch's users and items (sampled, ``sampling.fanouts``, full-graph
degrees with the unbiased d/s rescaling; see graphrec/nn/subgraph.py). Same wall-clock budget
for both (``--budget-s``, the Trainer's ``time_limit_s``: an epoch in progress finishes), so the
curves also give the comparison at equal epochs.

One contender per process (run both at once, one thread each, so machine load hits them alike),
then ``--combine`` writes ``results/sampled_lightgcn_gowalla.json`` and ``.md``:

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/sampled_lightgcn.py --mode full --budget-s 900 &
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/sampled_lightgcn.py --mode sampled --fanouts 5 5 5 --budget-s 900 &
    wait; python benchmarks/sampled_lightgcn.py --combine
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time

import torch

from report import RESULTS, write_result

NAME = "sampled_lightgcn_gowalla"


class LoadRecorder:
    """1-minute load average every ``every`` seconds while a run goes on (the machine is shared)."""

    def __init__(self, every: float = 30.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every):
        while not self._stop.is_set():
            self.samples.append(round(os.getloadavg()[0], 2))
            self._stop.wait(every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [os.getloadavg()[0]]
        return {"min": min(s), "mean": round(sum(s) / len(s), 2), "max": max(s), "samples": len(s)}


def run_one(args) -> None:
    from graphrec import runs
    from graphrec.config import build_run_config

    torch.set_num_threads(args.threads)
    overrides = {"train.protocol": "validation", "train.eval_every": 1, "train.epochs": 1000,
                 "train.patience": 1000, "train.time_limit_s": args.budget_s, "train.seed": args.seed,
                 "sampling.mode": args.mode, "train.num_threads": args.threads,
                 "train.max_batches_per_epoch": args.max_batches}
    if args.mode == "sampled":
        overrides["sampling.fanouts"] = list(args.fanouts)
        overrides["sampling.sampler_workers"] = args.sampler_workers
    config = build_run_config("lightgcn", "gowalla", data_dir=args.data_dir or os.environ.get("GRAPHREC_DATA"),
                              overrides=overrides)
    run_dir = os.path.join(args.runs_root, f"{NAME}-{args.mode}")
    started = time.perf_counter()
    with LoadRecorder() as load:
        trainer, summary = runs.fit(config, run_dir)
    curve = [{"epoch": r["epoch"], "recall@20": r["recall@20"], "ndcg@20": r["ndcg@20"], "elapsed_s": r["elapsed_s"]}
             for r in trainer.history if r["split"] == "valid"]
    epochs = [r for r in trainer.history if r["split"] == "train"]
    part = {"mode": args.mode, "fanouts": list(args.fanouts) if args.mode == "sampled" else None,
            "status": summary["status"], "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
            "valid_at_best": summary["results"]["valid"], "test_at_best": summary["results"]["test"],
            "train_seconds": summary["train_seconds"], "seconds_per_epoch": round(
                sum(r["seconds"] for r in epochs) / max(len(epochs), 1), 1),
            "train_loss": [round(r["loss"], 5) for r in epochs], "valid_curve": curve,
            "wall_seconds": round(time.perf_counter() - started, 1), "load_average": load.summary(),
            "run_dir": run_dir, "run_config": summary["run_config"],
            "command": "python " + " ".join(os.sys.argv)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f".{NAME}-{args.mode}.part.json").write_text(json.dumps(part, indent=2) + "\n")
    print(json.dumps({k: part[k] for k in ("mode", "epochs_run", "best_epoch", "test_at_best", "seconds_per_epoch")}))


def combine(args) -> None:
    parts = {}
    for mode in ("full", "sampled"):
        path = RESULTS / f".{NAME}-{mode}.part.json"
        if path.exists():
            parts[mode] = json.loads(path.read_text())
    if not parts:
        raise SystemExit("no part results: run --mode full and --mode sampled first")
    common = min(p["epochs_run"] for p in parts.values())
    at_common = {m: next((r for r in p["valid_curve"] if r["epoch"] == common), None) for m, p in parts.items()}
    payload = {"protocol": "validation (10% per-user validation split of train, seed 2020; selection on valid "
                           "recall@20 every epoch; test once at the selected epoch)",
               "equal_budget": "same wall-clock budget (train.time_limit_s) per contender, run concurrently with one "
                               "thread each on a shared 2-core machine",
               "contenders": parts, "common_epochs": common,
               "valid_at_common_epoch": {m: r for m, r in at_common.items()}}
    path = write_result(NAME, payload)
    lines = ["# Sampled-subgraph LightGCN vs full-graph LightGCN (Gowalla)", "",
             f"Written by `python benchmarks/sampled_lightgcn.py --combine` from the runs below ({path.name}).",
             "Protocol: validation (selection on a seeded 10% validation split every epoch, test once at the selected",
             "epoch); LightGCN paper settings (dim 64, 3 layers, batch 2048, Adam lr 1e-3, L2 1e-4), seed 2020; the",
             "same wall-clock budget per contender, both run at the same time with one thread each on the shared",
             "2-core VM (timings are depressed and noisy; load averages below).", "",
             "| mode | fan-outs | epochs in budget | s/epoch | best epoch | valid recall@20 | test recall@20 | test ndcg@20 "
             f"| valid recall@20 at epoch {common} | load avg (mean / max) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, p in parts.items():
        c = at_common[mode]
        lines.append(f"| {mode} | {p['fanouts'] or 'whole graph'} | {p['epochs_run']} | {p['seconds_per_epoch']} | "
                     f"{p['best_epoch']} | {p['valid_at_best']['recall@20']:.4f} | {p['test_at_best']['recall@20']:.4f} | "
                     f"{p['test_at_best']['ndcg@20']:.4f} | {c['recall@20']:.4f} | "
                     f"{p['load_average']['mean']} / {p['load_average']['max']} |" if c else f"| {mode} | ... |")
    lines += ["", "Reading: the budget is the Trainer's time limit, checked between epochs (an epoch in progress "
              "finishes), so a contender may overrun it by up to one epoch. At this load the seconds per epoch "
              "measure the machine's contention more than the modes (each process got a fraction of a core); the "
              "accuracy comparison is the per-epoch curve below, at equal epochs and equal triples.",
              "", "Validation recall@20 per epoch:", "", "| epoch | " + " | ".join(parts) + " |",
              "|---|" + "---|" * len(parts)]
    for epoch in range(1, max(p["epochs_run"] for p in parts.values()) + 1):
        cells = []
        for p in parts.values():
            r = next((r for r in p["valid_curve"] if r["epoch"] == epoch), None)
            cells.append(f"{r['recall@20']:.4f} ({r['elapsed_s']:.0f} s)" if r else "")
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    lines += ["", "Commands:", ""] + [f"- `{p['command']}`" for p in parts.values()]
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["full", "sampled"])
    parser.add_argument("--combine", action="store_true")
    parser.add_argument("--fanouts", type=int, nargs="+", default=[5, 5, 5])
    parser.add_argument("--budget-s", type=float, default=900)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sampler-workers", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-batches", type=int, default=0, help="batches per epoch (0: all; smoke tests)")
    parser.add_argument("--runs-root", default=os.path.join("..", "runs"))
    args = parser.parse_args()
    if args.combine:
        combine(args)
    elif args.mode:
        run_one(args)
    else:
        parser.error("give --mode full|sampled, or --combine")


if __name__ == "__main__":
    main()
