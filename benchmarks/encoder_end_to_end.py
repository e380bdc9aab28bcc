"""End-to-end image-feature training: unique-node encoding vs naive per-occurrence encoding.

LightGCN with item images (``ImageNodeEncoder``, ``mode="end_to_end"``, gradients into the
backbone) on a synthetic user-item graph whose item popularity is Zipf-distributed, so BPR
minibatches touch popular items many times. One "epoch" is ``--batches`` minibatches, the same
batches (same seed) for both variants; the only difference is ``unique=True`` (each distinct item of
a batch is encoded once, features gathered back) vs ``unique=False`` (the backbone runs on every
occurrence). Both give the same loss and gradients (tests/test_image_node_encoder.py).

    python benchmarks/encoder_end_to_end.py --model convnext_atto --size 32
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.encoders import ImageNodeEncoder, NodeImages, create_encoder
from report import git_commit, hardware, print_and_save
from graphrec.models import LightGCN
from graphrec.sampling import BPRSampler


def zipf_interactions(users: int, items: int, per_user: int, exponent: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** exponent
    popularity /= popularity.sum()
    rows, cols = [], []
    for user in range(users):
        chosen = rng.choice(items, size=per_user, replace=False, p=popularity)
        rows.extend([user] * per_user)
        cols.extend(chosen.tolist())
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, items))


def epoch(model, optimizer, batches) -> float:
    started = time.perf_counter()
    for batch in batches:
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="convnext_atto")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    train = zipf_interactions(args.users, args.items, args.per_user, args.zipf, seed=0)
    sampler = BPRSampler(train, batch_size=args.batch_size, seed=0)
    batches = []
    for number, batch in enumerate(sampler.loader(0)):
        if number >= args.batches:
            break
        batches.append(batch)
    touched = [torch.cat([b.pos_items, b.neg_items.reshape(-1)]) for b in batches]
    occurrences = sum(t.numel() for t in touched)
    distinct = sum(torch.unique(t).numel() for t in touched)
    images = NodeImages.from_tensor(torch.randn(args.items, 3, args.size, args.size), normalized=True)
    times = {}
    for unique in (True, False):
        torch.manual_seed(0)
        model = LightGCN(args.users, args.items, embedding_dim=64, num_layers=3)
        model.prepare(train)
        encoder = create_encoder(args.model)
        model.attach_item_images(ImageNodeEncoder(encoder, images, out_dim=64, mode="end_to_end", unique=unique,
                                                  progress=False))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        epoch(model, optimizer, batches[:1])   # warm-up
        times["unique" if unique else "per_occurrence"] = [epoch(model, optimizer, batches) for _ in range(args.repeats)]
    best = {k: min(v) for k, v in times.items()}
    result = {
        "command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        "model": args.model, "image_size": args.size, "batch_size": args.batch_size, "batches_per_epoch": args.batches,
        "items_per_epoch": {"occurrences": occurrences, "distinct_per_batch_summed": distinct,
                            "repeat_factor": occurrences / distinct},
        "epoch_seconds": best, "speedup": best["per_occurrence"] / best["unique"], "all_epoch_seconds": times,
        "threads": args.threads, "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "hardware": hardware(), "commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    print_and_save(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
