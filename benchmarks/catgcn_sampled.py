"""CatGCN trained on sampled neighbourhoods (``sampling.mode=sampled``) against full-batch CatGCN.

Same datasets, same seeded stratified 80/10/10 splits, same registered CatGCN settings
(official: Adam lr 0.1, weight decay 1e-4, dropout 0.3, class-balanced NLL, selection on
validation loss with patience 10), both through graphrec's Trainer. The depth is set to
``--hops`` (default 2, so that fan-outs actually sample: with CatGCN's 6 hops the neighbourhood of
any batch is the whole of these small graphs) for both contenders. Contenders:

- ``full``: one full-batch step per epoch (the registered mode);
- ``sampled``: minibatches of ``--batch-size`` train nodes, each with its sampled
  ``--fanouts`` neighbourhood (full-graph degrees, unbiased d/s rescaling; evaluation on the
  full graph, as in full mode).

Reported per dataset: test accuracy and macro-F1 (mean ± sample std over ``--seeds``), epochs to
the early stop, training seconds. Writes ``results/catgcn_sampled.json`` and ``.md``.

Usage: python benchmarks/catgcn_sampled.py [--datasets catgcn-synthetic,nba,income] [--seeds 3]
       [--hops 2] [--fanouts 10 10] [--batch-size 512] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from report import RESULTS, write_result

FIRST_SEED = 2020
#: per-dataset settings shared by both contenders (nba: lr 0.01, chosen on validation in catgcn_vs_mean.md)
DATASET_OVERRIDES = {"nba": {"train.lr": 0.01}}


def train(dataset: str, data, seed: int, overrides: dict) -> dict:
    from graphrec import runs
    from graphrec.config import build_run_config

    config = build_run_config("catgcn", dataset, overrides={**overrides, "train.seed": seed})
    _, summary = runs.fit(config, None, data=data)
    test = summary["results"]["test"]
    return {"seed": seed, "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
            "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
            "train_seconds": round(summary["train_seconds"], 2)}


def mean_std(values):
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="catgcn-synthetic,nba,income")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hops", type=int, default=2)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[10, 10])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    if len(args.fanouts) != args.hops:
        parser.error("give one fan-out per hop")
    torch.set_num_threads(args.threads)
    from graphrec.loaders import load_dataset

    contenders = {
        "full": {},
        "sampled": {"sampling.mode": "sampled", "sampling.fanouts": list(args.fanouts), "train.batch_size": args.batch_size},
    }
    started, load_before = time.perf_counter(), os.getloadavg()
    seeds = list(range(FIRST_SEED, FIRST_SEED + args.seeds))
    results = {}
    for dataset in args.datasets.split(","):
        data = load_dataset(dataset, args.data_dir or os.environ.get("GRAPHREC_DATA"))
        base = {"model.num_hops": args.hops, **DATASET_OVERRIDES.get(dataset, {})}
        rows = {name: [train(dataset, data, seed, {**base, **extra}) for seed in seeds]
                for name, extra in contenders.items()}
        results[dataset] = {
            "nodes": int(data.num_nodes), "edges": int(data.edge_index.shape[1]), "overrides": base,
            "per_seed": rows,
            "summary": {name: {key: mean_std([r[key] for r in runs_])
                               for key in ("test_accuracy", "test_macro_f1", "epochs_run", "train_seconds")}
                        for name, runs_ in rows.items()}}
        for name, s in results[dataset]["summary"].items():
            print(f"{dataset:18s} {name:8s} acc {100 * s['test_accuracy']['mean']:.2f} ± {100 * s['test_accuracy']['std']:.2f}"
                  f"  macro-F1 {100 * s['test_macro_f1']['mean']:.2f} ± {100 * s['test_macro_f1']['std']:.2f}"
                  f"  epochs {s['epochs_run']['mean']:.1f}  train {s['train_seconds']['mean']:.1f} s", flush=True)
    wall = round(time.perf_counter() - started, 1)
    load_after = os.getloadavg()
    path = write_result("catgcn_sampled", {
        "seeds": seeds, "hops": args.hops, "fanouts": args.fanouts, "batch_size": args.batch_size,
        "contenders": contenders, "results": results, "wall_seconds": wall,
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)]})
    lines = ["# CatGCN: sampled-neighbourhood minibatches vs full batch", "",
             f"Command: `python benchmarks/catgcn_sampled.py --datasets {args.datasets} --seeds {args.seeds} --hops {args.hops} "
             f"--fanouts {' '.join(map(str, args.fanouts))} --batch-size {args.batch_size} --threads {args.threads}` "
             f"({path.name}); seeds {seeds[0]}-{seeds[-1]}; wall {wall} s on the shared 2-core VM "
             f"(load average {load_before[0]:.1f} before, {load_after[0]:.1f} after).",
             f"Both: registered CatGCN settings with K = {args.hops} hops, same stratified 80/10/10 split per seed, "
             "early stopping on validation loss (patience 10), test at the selected epoch.",
             f"Sampled: {args.batch_size} train nodes per batch, fan-outs {args.fanouts}, full-graph degrees with the "
             "unbiased d/s rescaling (graphrec/nn/subgraph.py).", "",
             "| dataset | mode | test accuracy | test macro-F1 | epochs | train s |", "|---|---|---|---|---|---|"]
    for dataset, r in results.items():
        for name, s in r["summary"].items():
            lines.append(f"| {dataset} | {name} | {100 * s['test_accuracy']['mean']:.2f} ± {100 * s['test_accuracy']['std']:.2f} | "
                         f"{100 * s['test_macro_f1']['mean']:.2f} ± {100 * s['test_macro_f1']['std']:.2f} | "
                         f"{s['epochs_run']['mean']:.1f} | {s['train_seconds']['mean']:.1f} |")
    (RESULTS / "catgcn_sampled.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
