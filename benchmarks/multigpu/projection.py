"""Project the epoch time of GNNPipe and graph parallelism on N GPUs from one device's measurements.

Measured (on the one device available: a GPU when lent, else this CPU, and the output says which):
    ``T_l``: forward + backward time of each message-passing layer over the whole graph, and of the
    input/output layers (median of ``--repeats``).
Counted (exact, from the same METIS plans the engine runs): bytes each layout moves per epoch.

Model (stated assumptions: homogeneous devices, one link of bandwidth ``B`` bytes/s and latency
``a`` s per message between any two devices, compute of a row block proportional to its rows,
no compute/communication overlap, so these are upper bounds for our schedule):

* **pipe** (S = N stages, C chunks, GPipe-style fill and drain, forward then backward pipeline):
  ``t_s = sum_{l in block s} T_l / C`` per chunk per stage;
  ``T_pipe = (C + S - 1) * (max_s t_s + a + bytes_chunk / B)``, ``bytes_chunk = 2 (N_nodes / C) w 4``
  (activations forward and gradients backward of one chunk across one boundary, ``w`` = hidden
  width plus carried columns).
* **graph** (P = N partitions): ``T_graph = imbalance * sum_l T_l / P + 2 (L - 1) (a + h_max d 4 / B)
  + 2 (P - 1) / P * param_bytes / B``, with ``h_max`` the largest per-rank halo (rows received per
  layer) and ``imbalance`` the largest partition's share of edges times P.

    python benchmarks/multigpu/projection.py --data-dir ../shared/data --layers 32 --ranks 2 4 8
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def layer_times(staged, plan, x, hidden, repeats, device) -> tuple[list[float], float]:
    """Forward+backward seconds of every conv over the whole graph, and of input+output layers."""
    from graphrec.parallel.stages import DropoutMasks

    chunk = plan.chunks[0]
    n = plan.num_owned
    drop = DropoutMasks(0.0, 0, n)
    ids = plan.global_ids.to(device)

    def timed(fn):
        values = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            values.append(time.perf_counter() - started)
        return statistics.median(values)

    h = torch.randn(n, hidden, device=device, requires_grad=True)
    carried = torch.randn(n, hidden, device=device)

    def conv(layer):
        out = staged.conv(layer, h, chunk.src, chunk.dst, chunk.weight, n, carried, ids, drop)
        out.sum().backward()

    def ends():
        first, _ = staged.first_input(x, ids, drop)
        staged.output(first if first.shape[1] == hidden else h, ids, drop).sum().backward()

    convs = [timed(lambda layer=layer: conv(layer)) if layer > 0 else None for layer in range(staged.num_convs)]
    convs[0] = convs[1] if staged.num_convs > 1 else timed(lambda: conv(0))
    return convs, timed(ends)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("GRAPHREC_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--bandwidth", type=float, default=25e9, help="bytes/s per link (PCIe 4.0 x16 ~25e9; NVLink ~150e9+)")
    parser.add_argument("--latency", type=float, default=20e-6, help="seconds per message")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gnnpipe_projection"))
    args = parser.parse_args(argv)

    from graphrec.models.gcnii import GCNII
    from graphrec.parallel.engine import ParallelConfig, PipelineEngine
    from graphrec.parallel.partition import build_rank_plans, partition_and_chunk
    from graphrec.parallel.scenarios import load_task

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(1) if device.type == "cpu" else None
    task = load_task({"data_dir": args.data_dir, "dataset": args.dataset})
    torch.manual_seed(0)
    model = GCNII(task.num_features, task.num_classes, args.hidden, args.layers, dropout=0.0).to(device)
    engine = PipelineEngine(model, task.x, task.edge_index, task.y, task.masks, ParallelConfig(mode="single"),
                            lr=0.01, weight_decay=0.0, device=str(device))
    times, ends = layer_times(engine.staged, engine.exact_plan, engine.x_local, args.hidden, args.repeats, device)
    total_compute = sum(times) + ends
    width = engine.staged.hidden + engine.staged.carry
    nodes, params = task.num_nodes, sum(p.numel() for p in model.parameters())
    rows = []
    for ranks in args.ranks:
        # pipe
        from graphrec.parallel.stages import split_layers

        if ranks <= args.layers:
            blocks = split_layers(args.layers, ranks)
            per_stage = [sum(times[a:b]) / args.chunks for a, b in blocks]
            per_stage[0] += ends / args.chunks
            chunk_bytes = 2 * (nodes / args.chunks) * width * 4
            t_pipe = (args.chunks + ranks - 1) * (max(per_stage) + args.latency + chunk_bytes / args.bandwidth)
            pipe_bytes = 2 * (ranks - 1) * nodes * width * 4
        else:
            t_pipe, pipe_bytes = float("nan"), float("nan")
        # graph
        parts, chunks = partition_and_chunk(task.edge_index, nodes, ranks, 1)
        plans = build_rank_plans(task.edge_index, nodes, parts, chunks)
        edges = [int(p.chunks[0].src.numel()) for p in plans]
        imbalance = max(edges) * ranks / sum(edges)
        halo_max = max(p.num_local - p.num_owned for p in plans)
        halo_total = sum(p.num_local - p.num_owned for p in plans)
        t_graph = (imbalance * total_compute / ranks + 2 * (args.layers - 1) * (args.latency + halo_max * args.hidden * 4
                                                                                / args.bandwidth)
                   + 2 * (ranks - 1) / ranks * params * 4 / args.bandwidth)
        graph_bytes = 2 * (args.layers - 1) * halo_total * args.hidden * 4
        rows.append({"ranks": ranks, "pipe_epoch_s": t_pipe, "graph_epoch_s": t_graph, "pipe_bytes": pipe_bytes,
                     "graph_p2p_bytes": graph_bytes, "imbalance": imbalance, "halo_max": halo_max})
    device_name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, 1 thread)"
    lines = [f"# Projection: GCNII-{args.layers} on {args.dataset}, measured on {device_name}", "",
             f"Measured single-device forward+backward: {total_compute * 1e3:.1f} ms per epoch "
             f"(median conv layer {statistics.median(times) * 1e3:.2f} ms, input+output {ends * 1e3:.2f} ms). "
             f"Link {args.bandwidth / 1e9:.0f} GB/s, {args.latency * 1e6:.0f} us per message, {args.chunks} chunks.", "",
             "| devices | pipe epoch (proj.) | graph epoch (proj.) | pipe MB/epoch | graph p2p MB/epoch | graph imbalance |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['ranks']} | {r['pipe_epoch_s'] * 1e3:.2f} ms | {r['graph_epoch_s'] * 1e3:.2f} ms | "
                     f"{r['pipe_bytes'] / 1e6:.2f} | {r['graph_p2p_bytes'] / 1e6:.2f} | {r['imbalance']:.2f} |")
    lines += ["", "Model and assumptions: see the docstring of benchmarks/multigpu/projection.py. "
              f"Command: `python benchmarks/multigpu/projection.py {' '.join(argv if argv is not None else sys.argv[1:])}`."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps({"rows": rows, "layer_seconds": times, "ends_seconds": ends,
                                                    "device": device_name, "args": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
