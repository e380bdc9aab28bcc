"""GPU feature fetch: zero-copy against the pinned copy ceiling, CPU gather + copy and torch's UVA gather.

The table lives in host memory; each batch asks for random rows. For every row width
(``--widths``, bytes: 128 B / 512 B / 2 KB) and batch size (``--batch-ids``: 1k / 8k / 64k and
a large batch), on one run and the same ids:

- zero-copy: ``FeatureStore.fetch(ids, "cuda")``: the table pinned in place, graphrec's kernel
  reads the rows over PCIe with 128-byte aligned warp reads (graphrec.kernels.cuda_gather);
- zero-copy-misaligned: the same kernel told a base alignment 64 bytes off, so every warp step
  straddles two 128-byte lines (what the alignment buys);
- zero-copy-cpu-ids: zero-copy with the ids starting on the host (their copy included);
- torch-uva: ``torch.index_select`` on a CUDA tensor aliasing the same pinned, mapped table
  (what PyTorch-Direct's unified tensor and DGL's UVA gather do: the torch-native zero-copy);
- cpu-gather+copy: ``FeatureStore.fetch`` on the CPU (all cores) into pinned staging, then an
  async host-to-device copy; two staging buffers alternate and each is refilled only after the
  event recorded behind its previous copy has completed (the gather of batch i+1 overlaps the
  copy of batch i, and no copy reads a buffer being rewritten);
- index_select+copy: ``torch.index_select`` on the CPU, then ``.to("cuda")`` (what most code does);
- all-in-gpu: the table in GPU memory, ``index_select`` there (the bound when it fits; small tables).

The ceiling is measured, not assumed: the best of large pinned host-to-device copies
(``copy_GBps.h2d_pinned``). Each width/batch row prints GB/s of useful bytes and the ratios
side by side: zero-copy / ceiling, zero-copy / cpu-gather+copy, zero-copy / torch-uva; consecutive
rows at the largest batch tell host-side page effects (IOMMU) from the kernel.
``--big-table-gb 32`` adds a >= 32 GB table at 512 B rows (aligned vs misaligned, torch-uva,
cpu-gather+copy), the issue's target setting. Then a power-law id set with a hot-row cache,
and the overlap test: a small MLP per batch with serial fetches against ``Prefetcher``.

Usage (one command, on a machine with a CUDA GPU):
    python benchmarks/gpu_feature_fetch.py [--table-gb 2] [--widths 128 512 2048]
        [--batch-ids 1024 8192 65536 400000] [--big-table-gb 32] [--out benchmarks/results/gpu_fetch.json]
Without CUDA it exits with status 2 and says so; ``--dry-run`` instead runs the CPU side
(tables, ids, the CPU gather into double-buffered staging, the report) on tiny sizes.
numba compiles the kernel with NVVM: install graphrec's ``gpu`` extra (``numba-cuda[cu13]``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from report import RESULTS, git_commit, hardware

ZERO_COPY = "zero-copy"


# ------------------------------------------------------------------------------------------ timing
def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, batches, device, rounds) -> float:
    """Best seconds per batch over ``rounds``: all batches queued, one synchronisation at the end."""
    fn(batches[0])                       # warm-up (kernel compile, allocator)
    synchronize(device)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for ids in batches:
            fn(ids)
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / len(batches))
    return best


def copy_ceiling(device, nbytes: int, repeats: int) -> dict[str, float]:
    """GB/s of large copies: pinned and pageable host-to-device, pinned device-to-host, device-to-device."""
    pinned = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True).fill_(1)
    pageable = torch.ones(nbytes, dtype=torch.uint8)
    on_device = torch.empty(nbytes, dtype=torch.uint8, device=device)
    other = torch.empty(nbytes, dtype=torch.uint8, device=device)
    items = [None] * repeats
    seconds = {
        "h2d_pinned": timed(lambda _: on_device.copy_(pinned, non_blocking=True), items, device, 3),
        "d2h_pinned": timed(lambda _: pinned.copy_(on_device, non_blocking=True), items, device, 3),
        "h2d_pageable": timed(lambda _: on_device.copy_(pageable), items[:2], device, 2),
    }
    result = {key: nbytes / s / 1e9 for key, s in seconds.items()}
    result["d2d_read_plus_write"] = 2 * nbytes / timed(lambda _: other.copy_(on_device), items, device, 3) / 1e9
    return result


# ------------------------------------------------------------------------------------------ contenders
class DoubleBufferedCopy:
    """CPU gather into one of two pinned staging buffers, then an async copy to the device.

    A buffer is refilled only after the event recorded behind its previous copy has completed, so
    the CPU gather of the next batch overlaps the copy of this one and never races it.
    """

    def __init__(self, store, max_ids: int, device):
        self.store, self.device = store, device
        pin = device.type == "cuda"
        self.buffers = [torch.empty(max_ids, store.dim, dtype=store.dtype, pin_memory=pin) for _ in range(2)]
        self.copied: list = [None, None]
        self.turn = 0

    def __call__(self, ids, out):
        k, self.turn = self.turn, self.turn ^ 1
        if self.copied[k] is not None:
            self.copied[k].synchronize()
        n = ids.shape[0]
        staging = self.store.fetch(ids, out=self.buffers[k][:n])
        out[:n].copy_(staging, non_blocking=True)
        if self.device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
            self.copied[k] = event
        return out[:n]


class MappedView:
    """``__cuda_array_interface__`` over the device address of a mapped host table (for torch.as_tensor)."""

    def __init__(self, mapped, rows: int, dim: int, typestr: str):
        pointer = mapped.words.__cuda_array_interface__["data"][0]
        self.owner = mapped
        self.__cuda_array_interface__ = {"shape": (rows, dim), "typestr": typestr, "data": (pointer, False),
                                         "strides": None, "version": 3}


def torch_uva_view(store, mapped, device) -> torch.Tensor:
    """A CUDA tensor aliasing the pinned host table: torch kernels read the rows over PCIe."""
    view = torch.as_tensor(MappedView(mapped, store.num_rows, store.dim, "<f4"), device=device)
    assert view.device.type == "cuda" and view.data_ptr() != 0
    return view


def make_table(rows: int, dim: int) -> torch.Tensor:
    """A float32 host table whose rows differ (column 0 holds the row number), filled on all cores."""
    table = torch.empty(rows, dim, dtype=torch.float32)
    table.fill_(0.5)
    table[:, 0] = torch.arange(rows, dtype=torch.float32)
    table[:, -1] = torch.arange(rows, dtype=torch.float32).neg_()
    return table


# ------------------------------------------------------------------------------------------ one table
def measure_table(store, widths_label: str, batch_ids: list[int], args, device, ceiling, rng,
                  with_all_in_gpu: bool, with_index_select: bool = True) -> dict:
    """Every contender at every batch size on one table; GB/s of useful bytes and the three ratios."""
    from graphrec.kernels.cuda_gather import gather_zero_copy

    cuda = device.type == "cuda"
    rows, dim = store.num_rows, store.dim
    row_bytes = dim * store.table.element_size()
    started = time.perf_counter()
    mapped = store.pin(device.index) if cuda else None
    pin_s = time.perf_counter() - started
    largest = max(batch_ids)
    out = torch.empty(largest, dim, device=device)
    staged = DoubleBufferedCopy(store, largest, device)
    contenders = {"cpu-gather+copy": lambda ids_cpu, ids_dev: staged(ids_cpu, out)}
    if with_index_select:
        contenders["index_select+copy"] = lambda ids_cpu, ids_dev: torch.index_select(store.table, 0, ids_cpu).to(device)
    if cuda:
        misaligned = types.SimpleNamespace(words=mapped.words, width=mapped.width,
                                           base_shift=(mapped.base_shift + 16) % 32)
        uva = torch_uva_view(store, mapped, device)
        contenders = {
            ZERO_COPY: lambda ids_cpu, ids_dev: store.fetch(ids_dev, device, out=out[:ids_dev.shape[0]]),
            "zero-copy-misaligned": lambda ids_cpu, ids_dev: gather_zero_copy(misaligned, ids_dev,
                                                                              out[:ids_dev.shape[0]]),
            "zero-copy-cpu-ids": lambda ids_cpu, ids_dev: store.fetch(ids_cpu, device, out=out[:ids_cpu.shape[0]]),
            "torch-uva": lambda ids_cpu, ids_dev: torch.index_select(uva, 0, ids_dev, out=out[:ids_dev.shape[0]]),
            **contenders,
        }
        if with_all_in_gpu:
            on_device = store.table.to(device)
            contenders["all-in-gpu"] = lambda ids_cpu, ids_dev: torch.index_select(on_device, 0, ids_dev)

    entry = {"rows": rows, "row_bytes": row_bytes, "table_gb": rows * row_bytes / 1e9, "pin_s": pin_s,
             "base_shift_words": mapped.base_shift if cuda else None, "batches": {}}
    for n in batch_ids:
        count = args.batches if n >= 65536 else args.batches * 5     # small batches: more of them
        ids_cpu = [torch.from_numpy(rng.integers(0, rows, n)) for _ in range(count)]
        ids_dev = [ids.to(device) for ids in ids_cpu]
        pairs = list(zip(ids_cpu, ids_dev))
        probe_cpu, probe_dev = ids_cpu[0], ids_dev[0]
        reference = store.table[probe_cpu].to(device)
        seconds = {}
        for key, fn in contenders.items():
            got = fn(probe_cpu, probe_dev)
            assert torch.equal(got[:n], reference), f"{key} differs from indexing ({widths_label}, {n} ids)"
            rounds = 1 if key == "index_select+copy" else args.rounds
            seconds[key] = timed(lambda pair, fn=fn: fn(*pair), pairs, device, rounds)
        gbps = {key: n * row_bytes / s / 1e9 for key, s in seconds.items()}
        ratios = {}
        if ZERO_COPY in gbps:
            ratios = {"zero-copy/ceiling": gbps[ZERO_COPY] / ceiling if ceiling else None,
                      "zero-copy/cpu-gather+copy": gbps[ZERO_COPY] / gbps["cpu-gather+copy"],
                      "zero-copy/torch-uva": gbps[ZERO_COPY] / gbps["torch-uva"],
                      "aligned/misaligned": gbps[ZERO_COPY] / gbps["zero-copy-misaligned"]}
        entry["batches"][str(n)] = {"ids": n, "batches_timed": count, "ms_per_batch": {k: v * 1e3 for k, v in seconds.items()},
                                    "GBps": gbps, "ratios": ratios}
        line = "  ".join(f"{k} {v:7.2f}" for k, v in gbps.items())
        ratio_text = "  ".join(f"{k} {v:.2f}" for k, v in ratios.items() if v is not None)
        print(f"{widths_label:>14} {n:>7} ids | GB/s: {line}\n{'':>28}| {ratio_text or 'no CUDA: zero-copy not measured'}",
              flush=True)
    if cuda:
        # consecutive rows, the largest batch: separates the host side (IOMMU/IOTLB misses of random pages)
        # from the kernel when random rows fall short of the ceiling
        windows = [torch.arange(k * largest, (k + 1) * largest, device=device) % rows for k in range(args.batches)]
        sequential = {"zero-copy": timed(lambda ids: store.fetch(ids, device, out=out[:largest]), windows, device,
                                         args.rounds),
                      "torch-uva": timed(lambda ids: torch.index_select(uva, 0, ids, out=out[:largest]), windows,
                                         device, args.rounds)}
        entry["sequential_rows_GBps"] = {k: largest * row_bytes / v / 1e9 for k, v in sequential.items()}
        print(f"{widths_label:>14} {largest:>7} consecutive ids | GB/s: "
              + "  ".join(f"{k} {v:7.2f}" for k, v in entry["sequential_rows_GBps"].items()), flush=True)
        del uva
    store.close()
    return entry


def power_law_and_overlap(store, args, device, rng) -> dict:
    """Skewed ids (weight ~ rank^-0.9, the skew neighbour sampling produces) with and without a hot-row
    cache; then an MLP per batch with serial fetches against the Prefetcher (fetch i+1 while i computes)."""
    from graphrec.sampling.feature_store import Prefetcher

    rows, dim = store.num_rows, store.dim
    n = max(args.batch_ids)
    weights = np.arange(1, rows + 1, dtype=np.float64) ** -0.9
    weights /= weights.sum()
    heavy = rng.permutation(rows)
    batches = [torch.from_numpy(heavy[rng.choice(rows, n, p=weights)]).to(device) for _ in range(args.batches)]
    out = torch.empty(n, dim, device=device)
    fetch = lambda ids: store.fetch(ids, device, out=out)  # noqa: E731
    result = {"ids": n, "cache_fraction": args.cache_fraction,
              "ms_per_batch": {"zero-copy": timed(fetch, batches, device, args.rounds) * 1e3}}
    store.cache_rows(torch.from_numpy(heavy[: int(args.cache_fraction * rows)]), device)
    assert torch.equal(fetch(batches[0]).cpu(), store.table[batches[0].cpu()]), "cached fetch differs"
    result["ms_per_batch"]["zero-copy+cache"] = timed(fetch, batches, device, args.rounds) * 1e3
    store.close()

    model = torch.nn.Sequential(torch.nn.Linear(dim, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                                torch.nn.ReLU(), torch.nn.Linear(1024, 64)).to(device)
    uniform = [types.SimpleNamespace(n_id=torch.from_numpy(rng.integers(0, rows, n))) for _ in range(args.batches)]

    def serial():
        for batch in uniform:
            model(store.fetch(batch.n_id, device)).sum()

    def prefetched():
        for _, features in Prefetcher(uniform, store, device, depth=2):
            model(features).sum()

    def compute_only():
        for _ in uniform:
            model(out).sum()

    overlap = {}
    with torch.no_grad():
        for key, fn in (("fetch-then-compute", serial), ("prefetcher", prefetched), ("compute-only", compute_only)):
            overlap[key] = timed(lambda _, fn=fn: fn(), [None], device, args.rounds) / len(uniform) * 1e3
    store.close()
    result["overlap_ms_per_batch"] = overlap
    print("power-law ms/batch: " + ", ".join(f"{k} {v:.2f}" for k, v in result["ms_per_batch"].items()))
    print("overlap ms/batch: " + ", ".join(f"{k} {v:.2f}" for k, v in overlap.items()), flush=True)
    return result


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table-gb", type=float, default=2.0, help="host table size per row width (GB)")
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512, 2048], help="row bytes (float32 rows)")
    parser.add_argument("--batch-ids", type=int, nargs="+", default=[1024, 8192, 65536, 400000])
    parser.add_argument("--big-table-gb", type=float, default=0.0,
                        help="also a table of this many GB at 512 B rows (e.g. 32; 0: none)")
    parser.add_argument("--batches", type=int, default=10, help="batches timed per size (x5 below 64k ids)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache-fraction", type=float, default=0.1)
    parser.add_argument("--ceiling-mb", type=float, default=256.0, help="bytes per copy for the ceiling")
    parser.add_argument("--out", default=str(RESULTS / "gpu_fetch.json"))
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU needed: the CPU side on tiny sizes (tables, ids, CPU gather, report)")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.table_gb, args.batch_ids, args.big_table_gb = min(args.table_gb, 0.002), [64, 512], 0.0
        args.batches, args.rounds = 1, 1
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("gpu_feature_fetch: no CUDA device here (torch.cuda.is_available() is False): nothing measured. "
              "Run it on a GPU machine (benchmarks/gpu/device_check.sh), or pass --dry-run for the CPU side.",
              file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda", torch.cuda.current_device())

    from graphrec.sampling.feature_store import FeatureStore

    rng = np.random.default_rng(0)
    record = {"benchmark": "gpu_feature_fetch", "command": "python " + " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": git_commit(), "hardware": hardware(),
              "dry_run": args.dry_run, "args": vars(args), "id_distribution": "uniform", "dtype": "float32"}
    ceiling = None
    if device.type == "cuda":
        record["device"] = torch.cuda.get_device_properties(device).name
        record["copy_GBps"] = copy_ceiling(device, int(args.ceiling_mb * 2**20), repeats=10)
        ceiling = record["copy_GBps"]["h2d_pinned"]
        print("copies GB/s: " + ", ".join(f"{k} {v:.1f}" for k, v in record["copy_GBps"].items()), flush=True)
    record["ceiling_GBps"] = ceiling
    record["tables"] = {}
    for width in args.widths:
        dim = width // 4
        rows = max(int(args.table_gb * 1e9 / width), max(args.batch_ids))
        store = FeatureStore(make_table(rows, dim))
        label = f"{width} B x {rows * width / 1e9:.1f} GB"
        record["tables"][f"{width}B"] = measure_table(store, label, args.batch_ids, args, device, ceiling, rng,
                                                      with_all_in_gpu=True)
        if device.type == "cuda" and width == 512:
            record["power_law_and_overlap"] = power_law_and_overlap(store, args, device, rng)
        del store
    if args.big_table_gb > 0:
        rows = int(args.big_table_gb * 1e9 / 512)
        started = time.perf_counter()
        store = FeatureStore(make_table(rows, 128))
        fill_s = time.perf_counter() - started
        big = [n for n in args.batch_ids if n >= 65536] or args.batch_ids
        entry = measure_table(store, f"512 B x {args.big_table_gb:.0f} GB", big, args, device, ceiling, rng,
                              with_all_in_gpu=False, with_index_select=False)
        entry["fill_s"] = fill_s
        record["tables"][f"512B-{args.big_table_gb:g}GB"] = entry
        del store
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
