"""Seconds per Adam step over a recommender's embedding tables: torch's default against the fused kernel.

LightGCN and UltraGCN on Gowalla update every row of a (29,858 + 40,981) x 64 table each step
(LightGCN's propagation and UltraGCN's L2 over all embeddings make the gradient dense), so the
optimizer step is a fixed cost per batch: 396 steps per LightGCN epoch, 1,583 per UltraGCN
epoch. graphrec's Trainer (``make_optimizer``) uses ``torch.optim.Adam(..., fused=True)``;
this measures what that buys, both implementations in one run on the same tensors.

    python benchmarks/optimizer_step.py [--threads 1] [--steps 30]
    python benchmarks/optimizer_step.py --sparse-rows 40000     # sparse_adam: torch's SparseAdam vs LazyAdam

``--sparse-rows R``: the sampled-mode step instead (``train.optimizer=sparse_adam``): a sparse gradient on
``R`` distinct random rows of the stacked Gowalla table, new rows every step; torch's ``SparseAdam``
against graphrec's ``LazyAdam`` (same update), written to ``optimizer_step_sparse.json``.
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


def seconds_per_sparse_step(optimizer_cls, rows: int, steps: int) -> float:
    torch.manual_seed(0)
    table = (sum(r for r, _ in TABLES.values()), 64)
    param = torch.nn.Parameter(torch.randn(*table))
    optimizer = optimizer_cls([param], lr=1e-3)
    grads = [torch.sparse_coo_tensor(torch.randperm(table[0])[:rows][None], torch.randn(rows, table[1]), table)
             for _ in range(steps + 3)]
    elapsed = 0.0
    for number, grad in enumerate(grads):
        param.grad = grad
        started = time.perf_counter()
        optimizer.step()
        if number >= 3:  # after the state is allocated
            elapsed += time.perf_counter() - started
    return elapsed / steps


def sparse_main(args) -> None:
    from graphrec.train.lazy_adam import LazyAdam

    results = {name: {"seconds_per_step": seconds_per_sparse_step(cls, args.sparse_rows, args.steps)}
               for name, cls in (("torch SparseAdam", torch.optim.SparseAdam), ("graphrec LazyAdam", LazyAdam))}
    ours = results["graphrec LazyAdam"]["seconds_per_step"]
    for row in results.values():
        row["ratio_to_lazy_adam"] = round(row["seconds_per_step"] / ours, 2)
    path = write_result("optimizer_step_sparse", {"rows_per_step": args.sparse_rows, "threads": args.threads,
                                                  "steps": args.steps, "load_average": os.getloadavg()[0],
                                                  "results": results})
    print(json.dumps(results, indent=2))
    print(f"written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sparse-rows", type=int, default=0, help="measure the sparse step instead (see above)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.sparse_rows:
        sparse_main(args)
        return
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
