"""Seconds per Adam step over a recommender's embedding tables: torch's default against the fused kernel.

LightGCN and UltraGCN on Gowalla update every row of a (29,858 + 40,981) x 64 table each step
(LightGCN's propagation and UltraGCN's L2 over all embeddings make the gradient dense), so the
optimizer step is a fixed cost per batch: 396 steps per LightGCN epoch, 1,583 per UltraGCN
epoch. graphrec's Trainer (``make_optimizer``) uses ``torch.optim.Adam(..., fused=True)``;
this measures what that buys, both implementations in one run on the same tensors.

    python benchmarks/optimizer_step.py [--threads 1] [--steps 30]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from report import write_result

TABLES = {"gowalla users": (29858, 64), "gowalla items": (40981, 64)}


def seconds_per_step(implementation: dict, steps: int) -> float:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(*shape)) for shape in TABLES.values()]
    optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4, **implementation)
    for param in params:
        param.grad = torch.randn_like(param)
    for _ in range(3):  # allocate the state, warm the caches
        optimizer.step()
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    contenders = {"default (foreach)": {}, "per-tensor loop": {"foreach": False}, "fused (graphrec Trainer)": {"fused": True}}
    results = {name: {"seconds_per_step": seconds_per_step(kwargs, args.steps)} for name, kwargs in contenders.items()}
    fused = results["fused (graphrec Trainer)"]["seconds_per_step"]
    for name, row in results.items():
        row["ratio_to_fused"] = round(row["seconds_per_step"] / fused, 2)
        row["lightgcn_epoch_s"] = round(row["seconds_per_step"] * 396, 1)   # batch 2048
        row["ultragcn_epoch_s"] = round(row["seconds_per_step"] * 1583, 1)  # batch 512
    parameters = sum(rows * cols for rows, cols in TABLES.values())
    path = write_result("optimizer_step", {"parameters": parameters, "threads": args.threads, "steps": args.steps,
                                           "load_average": os.getloadavg()[0], "results": results})
    print(json.dumps(results, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
