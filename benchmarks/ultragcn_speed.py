"""UltraGCN training speed: faithful per-positive negatives vs negative sharing, side by side.

With Gowalla's official settings (batch 512, 1500 negatives per positive) the faithful
sampler asks for 512 x 1500 (user, item) scores per step. graphrec computes them with a
kernel that reads each item row in place (``kernels/pair_scores.py``); the torch way it
replaces scores every item with one matmul and picks the 1500 (mode ``faithful-matmul``).
Negative sharing draws one set of 1500 items per batch and scores it with a
(512 x 64) @ (64 x 1500) matmul. For each mode
this script trains from the same initialisation (same seed, official hyper-parameters,
Adam) for a fixed budget of *training* seconds, the two modes taking turns in short time
slices so that both see the same machine load, evaluating test recall@20 / ndcg@20
(paper protocol, full ranking) at regular intervals outside the budget, and reports

- seconds per batch, samples per second and seconds per epoch (extrapolated from the
  batches run when the budget ends before a full epoch),
- the negative-sampling share of the step time,
- recall@20 and ndcg@20 reached at the end of the budget.

Writes ``benchmarks/results/ultragcn_speed.json`` (and prints a Markdown table).

    python benchmarks/ultragcn_speed.py --data-dir /work/shared/data --budget-s 600 --threads 1
    python benchmarks/ultragcn_speed.py --data-dir /work/shared/data --budget-s 120 --threads 1 \\
        --modes faithful faithful-matmul shared --out benchmarks/results/ultragcn_negative_scoring.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from graphrec.config import build_run_config
from graphrec.loaders import load_dataset
from graphrec.models import get_model_entry
from graphrec.train.recommendation import RecommendationTask
from graphrec.train.threads import set_num_threads
from graphrec.train.trainer import make_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_to_accuracy import hardware  # noqa: E402


class _Mode:
    """One training setting, advanced a time slice at a time."""

    def __init__(self, graph, data: str, name: str, seed: int):
        shared, scoring, self.label = MODES[name]
        self.name, self.shared = name, shared
        self.config = build_run_config("ultragcn", data, overrides={
            "train.protocol": "paper", "sampling.shared_negatives": shared, "train.seed": seed})
        torch.manual_seed(seed)
        self.task = RecommendationTask(graph, self.config.train, self.config.sampling)
        started = time.perf_counter()
        self.model = self.task.build_model(get_model_entry("ultragcn"), self.config.model_config)
        self.model.negative_scoring = scoring
        self.prepare_s = time.perf_counter() - started
        self.optimizer = make_optimizer(self.model, self.config.train)
        self.train_s = self.sample_s = 0.0
        self.batches = self.samples = self.epoch = 0
        self.iterator = iter(self.task.train_batches(0))
        self.curve: list[dict] = []

    def train_until(self, train_s: float) -> None:
        while self.train_s < train_s:
            t0 = time.perf_counter()
            batch = next(self.iterator, None)
            if batch is None:
                self.epoch += 1
                self.iterator = iter(self.task.train_batches(self.epoch))
                batch = next(self.iterator)
            t1 = time.perf_counter()
            loss = self.model.loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.sample_s += t1 - t0
            self.train_s += time.perf_counter() - t0
            self.batches += 1
            self.samples += len(batch)

    def evaluate(self) -> None:
        metrics = self.task.evaluate(self.model, "test")
        self.curve.append({"train_s": round(self.train_s, 1), "batches": self.batches,
                           "epochs": round(self.batches / len(self.task.sampler), 3),
                           "recall@20": round(metrics["recall@20"], 5), "ndcg@20": round(metrics["ndcg@20"], 5)})
        print(f"  {self.name} {self.curve[-1]}", flush=True)

    def summary(self, budget_s: float) -> dict:
        per_batch = self.train_s / self.batches
        return {
            "mode": self.label, "name": self.name,
            "shared_negatives": self.shared, "num_negatives": self.config.sampling.num_negatives,
            "batch_size": self.config.train.batch_size, "prepare_s": round(self.prepare_s, 2),
            "budget_train_s": budget_s, "batches": self.batches,
            "epochs_done": round(self.batches / len(self.task.sampler), 3),
            "s_per_batch": round(per_batch, 4), "samples_per_s": round(self.samples / self.train_s, 1),
            "s_per_epoch": round(per_batch * len(self.task.sampler), 1),
            "sampling_share": round(self.sample_s / self.train_s, 3),
            "recall@20": self.curve[-1]["recall@20"], "ndcg@20": self.curve[-1]["ndcg@20"], "curve": self.curve,
        }


#: name -> (shared negatives, UltraGCN.negative_scoring, label)
MODES = {
    "faithful": (False, "auto", "faithful (per positive), pair-score kernel"),
    "faithful-matmul": (False, "matmul", "faithful (per positive), torch matmul + gather"),
    "shared": (True, "auto", "negative sharing (one set per batch)"),
}


def run_side_by_side(graph, data: str, budget_s: float, eval_every_s: float, slice_s: float, seed: int,
                     names: list[str]) -> list[dict]:
    """Every mode from the same seed, trained in alternating time slices so that all see the
    same machine load (other jobs may share the cores), evaluated at the same training times."""
    modes = [_Mode(graph, data, name, seed) for name in names]
    trained, next_eval = 0.0, eval_every_s
    while trained < budget_s:
        trained = min(trained + slice_s, budget_s)
        for mode in modes:
            mode.train_until(trained)
        if trained >= min(next_eval, budget_s) - 1e-6:
            for mode in modes:
                mode.evaluate()
            next_eval += eval_every_s
    return [mode.summary(budget_s) for mode in modes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="gowalla")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--budget-s", type=float, default=600.0, help="training seconds per mode")
    parser.add_argument("--eval-every-s", type=float, default=200.0, help="training seconds between evaluations")
    parser.add_argument("--slice-s", type=float, default=20.0, help="training seconds per turn of each mode")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for torch and numba's kernels alike (0: their defaults)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["faithful", "shared"])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ultragcn_speed.json"))
    args = parser.parse_args(argv)
    set_num_threads(args.threads)  # the pair-score kernel is numba: same thread count as torch's matmul
    graph = load_dataset(args.data, args.data_dir)
    load_start = os.getloadavg()[0]
    results = run_side_by_side(graph, args.data, args.budget_s, args.eval_every_s, args.slice_s, args.seed,
                               args.modes)
    report = {
        "benchmark": "ultragcn_speed", "data": args.data,
        "command": " ".join([sys.executable, *sys.argv]), "seed": args.seed,
        "hardware": {**hardware(), "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()[0]},
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text(markdown(report, args.budget_s))
    print(markdown(report, args.budget_s))
    return 0


def markdown(report: dict, budget_s: float) -> str:
    hw = report["hardware"]
    lines = [f"# UltraGCN on {report['data']}: faithful negatives vs negative sharing", "",
             f"- command: `{report['command']}`",
             f"- seed {report['seed']}; {budget_s:.0f} s of training per mode, the modes taking turns; "
             f"{hw['cpu']}, {hw['cores']} cores, {hw['torch_threads']} torch thread(s), "
             f"{hw.get('numba_threads', 'all cores for')} numba thread(s); load average "
             f"{hw['load_average_at_start']:.1f} at start, {hw['load_average_at_end']:.1f} at end", "",
             "| mode | negatives | s/batch | samples/s | s/epoch | sampling share | epochs done | recall@20 | ndcg@20 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['mode']} | {r['num_negatives']} | {r['s_per_batch']} | {r['samples_per_s']} | "
                     f"{r['s_per_epoch']} | {r['sampling_share']:.0%} | {r['epochs_done']} | {r['recall@20']:.4f} | "
                     f"{r['ndcg@20']:.4f} |")
    lines += ["", "Test recall@20 against training seconds:", "",
              "| train s | " + " | ".join(r["mode"] for r in report["results"]) + " |",
              "|---|" + "---|" * len(report["results"])]
    for points in zip(*(r["curve"] for r in report["results"])):
        lines.append(f"| {points[0]['train_s']:.0f} | " + " | ".join(
            f"{p['recall@20']:.4f} ({p['epochs']:.2f} ep)" for p in points) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
