"""Test accuracy against depth: DAGNN (K hops) and a plain GCN (K layers), same data and protocol.

The DAGNN paper's claim (Liu, Gao, Ji, KDD 2020, figures 1 and 5): stacking graph convolutions
(entangled transformation + propagation) loses accuracy quickly with depth, while DAGNN,
which propagates K hops without weights and learns per node how much of each hop to keep,
stays accurate at large receptive fields. This script trains both, through graphrec's
Trainer with each model's registered settings (DAGNN: the official per-dataset values; GCN:
hidden 64, dropout 0.5, weight decay 5e-4), both with the official DAGNN protocol (up to
``--epochs`` epochs, lowest validation loss selected, window-mean early stopping after half
of the epochs), for every depth and seed, on the public split.

Writes ``results/dagnn_depth_<data>.json`` (per depth, model and seed: test accuracy,
macro-F1, selected epoch; mean and std) and ``results/dagnn_depth_<data>.png``.

Usage: python benchmarks/dagnn_depth.py [--data cora] [--depths 1,2,4,8,16,32] [--seeds 3]
       [--epochs 1000] [--data-dir ../shared/data] [--threads 1] [--device cuda]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from report import RESULTS, write_result

DEPTH_KEY = {"dagnn": "model.num_hops", "gcn": "model.num_layers"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="cora")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--depths", default="1,2,4,8,16,32")
    parser.add_argument("--models", default="dagnn,gcn")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 2020, 2021, ... per depth and model")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (train.device of every run)")
    args = parser.parse_args()

    from graphrec import runs
    from graphrec.config import build_run_config
    from graphrec.loaders import load_dataset

    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, args.data_dir or os.environ.get("GRAPHREC_DATA"))
    depths = [int(d) for d in args.depths.split(",")]
    models = args.models.split(",")
    seeds = [2020 + i for i in range(args.seeds)]
    load_before = os.getloadavg()
    started = time.perf_counter()
    results: dict[str, dict[str, dict]] = {m: {} for m in models}
    for depth in depths:
        for model in models:
            rows = []
            for seed in seeds:
                config = build_run_config(model, args.data, overrides={
                    DEPTH_KEY[model]: depth, "train.epochs": args.epochs, "train.seed": seed,
                    "train.device": args.device})
                _, summary = runs.fit(config, None, data=data)
                test = summary["results"]["test"]
                rows.append({"seed": seed, "accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
                             "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
                             "train_seconds": summary["train_seconds"]})
            accuracies = [r["accuracy"] for r in rows]
            results[model][str(depth)] = {
                "accuracy_mean": statistics.fmean(accuracies),
                "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                "runs": rows}
            print(f"{model:>6} depth {depth:>3}: test accuracy {100 * statistics.fmean(accuracies):.2f} "
                  f"± {100 * results[model][str(depth)]['accuracy_std']:.2f}  "
                  f"({sum(r['train_seconds'] for r in rows):.0f} s)", flush=True)
    wall = time.perf_counter() - started
    plot_path = RESULTS / f"dagnn_depth_{args.data}.png"
    plot(results, depths, args.data, len(seeds), plot_path)
    settings = {m: {k: v for k, v in build_run_config(m, args.data).to_dict()["model_config"].items()}
                for m in models}
    path = write_result(f"dagnn_depth_{args.data}", {
        "dataset": args.data, "device": args.device, "split": "public", "depths": depths, "seeds": seeds, "epochs": args.epochs,
        "protocol": "official DAGNN: Adam, lowest validation loss selected, window-mean early stopping "
                    "(patience 100) after half of the epochs; test accuracy at the selected epoch",
        "model_settings": settings, "depth_means": {"dagnn": "num_hops K", "gcn": "num_layers (graph convolutions)"},
        "results": results, "wall_seconds": round(wall, 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "plot": plot_path.name})
    print(f"wrote {path} and {plot_path} in {wall:.0f} s")


def plot(results, depths, data, num_seeds, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"dagnn": "DAGNN (K hops)", "gcn": "GCN (K layers)"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model, by_depth in results.items():
        xs = [d for d in depths if str(d) in by_depth]
        means = [100 * by_depth[str(d)]["accuracy_mean"] for d in xs]
        stds = [100 * by_depth[str(d)]["accuracy_std"] for d in xs]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=labels.get(model, model))
    ax.set_xscale("log", base=2)
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set(xlabel="depth K", ylabel="test accuracy (%)",
           title=f"{data}: accuracy vs depth (public split, {num_seeds} seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
