"""Recommend-all at a given shape (default 1M users x 1M items): scored pairs per second, side by side
with the bare score matmul, on a slice of the users, projected to all of them.

Embeddings are random (dim 64); every user has ``--seen`` seen items (uniform, excluded from the
recommendations) so masking costs what it costs on real data of that density. The slice is the first
``--measure-users`` users in batches of the size ``write_recommendations`` picks from
``--max-memory-mb``: the per-user cost does not depend on which users, so the projection to every user is
the slice's time times users / slice. Peak RSS is the process's.

    PYTHONPATH=. python benchmarks/recommend_all_throughput.py --users 1e6 --items 1e6 --measure-users 20000
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import git_commit, hardware, print_and_save  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=float, default=1e6)
    parser.add_argument("--items", type=float, default=1e6)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seen", type=int, default=34, help="seen items per user (Gowalla: 27 train)")
    parser.add_argument("--measure-users", type=int, default=20_000, help="users actually scored")
    parser.add_argument("--max-memory-mb", type=float, default=512.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON record (default: print only)")
    return parser.parse_args(argv)


def seen_items(users: int, items: int, per_user: int, seed: int = 0) -> sp.csr_matrix:
    """``per_user`` distinct uniform items per user (a CSR of ones)."""
    rng = np.random.default_rng(seed)
    columns = np.sort(rng.integers(0, items, size=(users, per_user), dtype=np.int64), axis=1)
    keep = np.ones_like(columns, dtype=bool)
    keep[:, 1:] = columns[:, 1:] != columns[:, :-1]
    counts = keep.sum(1)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix((np.ones(int(indptr[-1]), np.float32), columns[keep].astype(np.int32), indptr),
                         shape=(users, items))


def main(argv=None) -> dict:
    from graphrec.recommend_all import write_recommendations

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    users, items = int(args.users), int(args.items)
    measured = min(args.measure_users, users)
    torch.manual_seed(0)
    user_emb = torch.randn(users, args.dim) * 0.1
    item_emb = torch.randn(items, args.dim) * 0.1
    exclude = seen_items(users, items, args.seen)
    chosen = np.arange(measured, dtype=np.int64)
    with tempfile.TemporaryDirectory() as folder:
        report = write_recommendations(Path(folder) / "recs.parquet", user_emb, item_emb, k=args.k, exclude=exclude,
                                       users=chosen, max_memory_mb=args.max_memory_mb, progress=False)
        parquet_bytes = (Path(folder) / "recs.parquet").stat().st_size
    item_t = item_emb.t().contiguous()
    started = time.perf_counter()
    for start in range(0, measured, report.batch_size):
        torch.mm(user_emb[start: start + report.batch_size], item_t)
    matmul_s = time.perf_counter() - started
    scale = users / measured
    record = {
        "benchmark": "recommend_all_throughput", "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": git_commit(), "hardware": hardware(), "shape": {"users": users, "items": items, "dim": args.dim},
        "k": args.k, "seen_per_user": args.seen, "threads": args.threads, "max_memory_mb": args.max_memory_mb,
        "measured_users": measured, "batch_users": report.batch_size, "rows_written": report.rows,
        "parquet_bytes_per_row": round(parquet_bytes / max(report.rows, 1), 2),
        "seconds": round(report.seconds, 2), "items_per_s": report.items_per_s(items),
        "matmul_seconds": round(matmul_s, 2), "matmul_items_per_s": measured * items / matmul_s,
        "ratio_vs_matmul": round(matmul_s / report.seconds, 3),
        "all_users_projected_s": round(report.seconds * scale, 1),
        "load_average": {"at_start": [round(v, 2) for v in load_start],
                         "at_end": [round(v, 2) for v in os.getloadavg()]},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "note": "items_per_s counts scored (user, item) pairs; ratio_vs_matmul above 1: faster than the bare matmul",
    }
    print_and_save(record, args.out)
    return record


if __name__ == "__main__":
    main()
