"""Paper recipe against new-data recipe (graphrec.recipes) on a Gowalla user subsample, beside ``pop``.

Each setting trains on the subsample's train interactions, selects on a seeded per-user validation
split (10%), and reports the best validation recall@20 / ndcg@20 within ``--epochs`` epochs and a
time limit. Small on purpose (a shared 2-core machine): evidence for a default, not a benchmark.

    GRAPHREC_DATA=/work/shared/data python benchmarks/new_data_defaults.py --users 2000 --epochs 40
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from graphrec import runs
from graphrec.config import build_run_config, parse_overrides
from graphrec.data.interactions import InteractionGraph, interaction_matrix
from graphrec.loaders import load_dataset

SETTINGS = [("pop", "new data", "dataframe"), ("lightgcn", "paper", "gowalla"), ("lightgcn", "new data", "dataframe"),
            ("ultragcn", "paper", "gowalla"), ("ultragcn", "new data", "dataframe")]


def subsample(users: int, seed: int) -> InteractionGraph:
    """``users`` random Gowalla users with their train items (items nobody kept are dropped)."""
    full = load_dataset("gowalla").train
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(full.shape[0], size=users, replace=False))
    sub = full[rows]
    items = np.flatnonzero(np.asarray(sub.sum(0)).ravel() > 0)
    sub = sub[:, items].tocoo()
    graph = InteractionGraph(users, len(items), interaction_matrix(sub.row, sub.col, users, len(items)),
                             name=f"gowalla-{users}-users")
    return graph.with_validation(0.1, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--time-limit", type=float, default=110.0, help="seconds of training per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, metavar="MODEL:RECIPE",
                        help="run only these settings, e.g. 'ultragcn:new data'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra setting for every run (e.g. train.lr=1e-2)")
    args = parser.parse_args()
    extra = parse_overrides(args.set)
    graph = subsample(args.users, args.seed)
    print(graph)
    rows = []
    for model, recipe, data in SETTINGS:
        if args.only is not None and f"{model}:{recipe}" not in args.only:
            continue
        overrides = {"train.num_threads": 1, "train.time_limit_s": args.time_limit, **extra}
        if model != "pop":
            overrides["train.epochs"] = args.epochs
        config = build_run_config(model, data, overrides=overrides)
        config = dataclasses.replace(config, data=graph.name)
        started = time.perf_counter()
        trainer, summary = runs.fit(config, None, data=graph)
        valid = summary["results"]["valid"]
        rows.append({"model": model, "recipe": recipe, "lr": config.train.lr, "batch_size": config.train.batch_size,
                     "negatives": config.sampling.num_negatives, "shared": config.sampling.shared_negatives,
                     "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
                     "train_s": summary["train_seconds"], "wall_s": round(time.perf_counter() - started, 1),
                     "recall@20": round(valid["recall@20"], 4), "ndcg@20": round(valid["ndcg@20"], 4)})
        print(json.dumps(rows[-1]), flush=True)
    print("| model | recipe | lr | batch | negatives | epochs run | best epoch | train s | valid recall@20 "
          "| valid ndcg@20 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        negatives = f"{r['negatives']}{' shared' if r['shared'] else ''}"
        print(f"| {r['model']} | {r['recipe']} | {r['lr']:g} | {r['batch_size']} | {negatives} | {r['epochs_run']} "
              f"| {r['best_epoch']} | {r['train_s']} | {r['recall@20']} | {r['ndcg@20']} |")


if __name__ == "__main__":
    main()
