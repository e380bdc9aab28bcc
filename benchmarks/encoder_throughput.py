"""Frozen encoding throughput: ``ImageNodeEncoder.precompute`` vs the bare timm model's forward.

Both encode the same images in the same batches with the same settings (channels-last, the same
compute dtype, inference mode, one thread); the bare loop is ``model(batch)`` over pre-built
batches, the encoder path is everything ``precompute`` does (batch loading in a thread, dtype
choice, writing the feature table, progress bar, weights digest for the cache key; no disk cache
here). Passes alternate and each side keeps its fastest pass. Wall time and process CPU time
(all threads: the encoder's loader thread counts) are both recorded; on a shared, oversubscribed
machine the CPU-time ratio is the stabler measure of the encoder's extra work.

    python benchmarks/encoder_throughput.py --model convnext_atto --images 1024 --size 64
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import torch

from graphrec.encoders import ImageNodeEncoder, NodeImages, create_encoder
from report import git_commit, hardware, print_and_save


def bare_pass(model, batches, dtype) -> tuple[float, float]:
    """``model(batch)`` over batches built beforehand (channels-last): the strict baseline."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == torch.bfloat16 else contextlib.nullcontext()
    started, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode(), autocast:
        for batch in batches:
            model(batch)
    return time.perf_counter() - started, time.process_time() - cpu


def bare_slicing_pass(model, data, batch_size, dtype) -> tuple[float, float]:
    """The same, with each batch sliced from the image tensor and made channels-last in the loop
    (what any loop over a node-image table must do)."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == torch.bfloat16 else contextlib.nullcontext()
    started, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode(), autocast:
        for start in range(0, data.shape[0], batch_size):
            model(data[start:start + batch_size].contiguous(memory_format=torch.channels_last))
    return time.perf_counter() - started, time.process_time() - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="convnext_atto")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--autocast", default="auto", choices=["auto", "bf16", "off"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    encoder = create_encoder(args.model).eval()
    data = torch.randn(args.images, 3, args.size, args.size)
    images = NodeImages.from_tensor(data, normalized=True)       # pre-normalised: no per-image work on either side
    node = ImageNodeEncoder(encoder, images, mode="frozen", batch_size=args.batch_size, autocast=args.autocast,
                            progress=True)
    # warm-up and the dtype choice (the CPU probe times fp32 vs bf16 once)
    node.precompute()
    dtype = node.compute_dtype
    model = encoder.backbone.model.to(memory_format=torch.channels_last)
    batches = [data[i:i + args.batch_size].contiguous(memory_format=torch.channels_last)
               for i in range(0, args.images, args.batch_size)]
    bare_pass(model, batches[:1], dtype)
    # the probe ran in the warm-up: time the encoder path with the chosen dtype fixed
    node.autocast = "bf16" if dtype == torch.bfloat16 else "off"
    bare_times, encoder_times, bare_cpu, encoder_cpu, slicing_times, slicing_cpu = [], [], [], [], [], []
    for _ in range(args.passes):
        wall, cpu = bare_pass(model, batches, dtype)
        bare_times.append(wall)
        bare_cpu.append(cpu)
        wall, cpu = bare_slicing_pass(model, data, args.batch_size, dtype)
        slicing_times.append(wall)
        slicing_cpu.append(cpu)
        node.store = None
        started, cpu = time.perf_counter(), time.process_time()
        node.precompute()
        encoder_times.append(time.perf_counter() - started)
        encoder_cpu.append(time.process_time() - cpu)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == torch.bfloat16 else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        reference = model(batches[0]).float()
    difference = float((node.store.table[: args.batch_size] - reference).abs().max())
    same = difference <= 1e-4 * max(1.0, float(reference.abs().max()))
    fp32_bare = bare_pass(model, batches, torch.float32)[0] if dtype == torch.bfloat16 else min(bare_times)
    best_bare, best_encoder = min(bare_times), min(encoder_times)
    result = {
        "command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        "model": args.model, "images": args.images, "image_size": args.size, "batch_size": args.batch_size,
        "compute_dtype": str(dtype), "channels_last": True, "threads": args.threads,
        "bare_images_per_s": args.images / best_bare, "encoder_images_per_s": args.images / best_encoder,
        "overhead_percent": 100.0 * (best_encoder / best_bare - 1.0),
        "cpu_overhead_percent": 100.0 * (min(encoder_cpu) / min(bare_cpu) - 1.0),
        "median_overhead_percent": 100.0 * (statistics.median(encoder_times) / statistics.median(bare_times) - 1.0),
        "median_cpu_overhead_percent": 100.0 * (statistics.median(encoder_cpu) / statistics.median(bare_cpu) - 1.0),
        "bare_slicing_images_per_s": args.images / min(slicing_times),
        "overhead_vs_slicing_percent": 100.0 * (best_encoder / min(slicing_times) - 1.0),
        "median_cpu_overhead_vs_slicing_percent":
            100.0 * (statistics.median(encoder_cpu) / statistics.median(slicing_cpu) - 1.0),
        "bare_slicing_seconds": slicing_times, "bare_slicing_cpu_seconds": slicing_cpu,
        "bare_cpu_seconds": bare_cpu, "encoder_cpu_seconds": encoder_cpu,
        "bare_fp32_images_per_s": args.images / fp32_bare,
        "bare_seconds": bare_times, "encoder_seconds": encoder_times, "features_match_bare": bool(same), "max_abs_difference": difference,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "hardware": hardware(), "commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    print_and_save(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
