"""Communication volume per training epoch: GNNPipe (layer pipeline) vs graph parallelism (METIS).

Counted exactly at our send/recv layer (:class:`graphrec.parallel.comm.Comm`, bytes at the sender,
summed over ranks), so the figures are hardware-independent; gloo on CPU runs the real schedule.
For every depth and number of ranks one training epoch of each layout is run on the same graph:

* ``pipe``: R stages, whole graph per stage, ``--chunks`` chunks (volume does not depend on chunks:
  every node's rows cross each stage boundary once forward and once backward);
* ``graph``: R METIS partitions, halo rows exchanged at every hidden layer, forward and backward;
  plus the gradient all-reduce of the replicated weights (ring model), reported separately;
* ``hybrid`` (R = 4 only): 2 stages x 2 partitions.

The paper's ratio (8.69x on average, up to 22.89x) compares activation/gradient traffic; we print
``graph p2p / pipe p2p`` and, for completeness, the ratio including graph parallelism's all-reduce.

    python benchmarks/gnnpipe_volume.py --data-dir ../shared/data            # Cora, depth 8/16/32, 2 and 4 ranks
    python benchmarks/gnnpipe_volume.py --dataset synthetic-powerlaw-20000-20  # power-law graph (Reddit-like cuts)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def scenario_bytes(result: dict) -> dict[str, float]:
    """train/* bytes of the first epoch, summed over ranks."""
    total: dict[str, float] = {}
    for rows in result["epochs_per_rank"]:
        for phase, value in rows[0]["bytes_sent_this_rank"].items():
            total[phase] = total.get(phase, 0.0) + value
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("GRAPHREC_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--model", default="gcn", choices=["gcn", "gcnii"])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--out", default=None, help="default benchmarks/results/gnnpipe_volume_<dataset>")
    args = parser.parse_args(argv)
    args.out = args.out or str(ROOT / "benchmarks" / "results" / f"gnnpipe_volume_{args.dataset}")

    from graphrec.parallel.launch import launch_module

    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for ranks in args.ranks:
            scenarios = []
            for depth in args.depths:
                layouts = [("pipe", {"mode": "pipe", "chunks": args.chunks}), ("graph", {"mode": "graph"})]
                if ranks == 4:
                    layouts.append(("hybrid", {"mode": "hybrid", "stages": 2, "chunks": args.chunks}))
                for name, parallel in layouts:
                    scenarios.append({"parallel": parallel, "model_kwargs": {"num_layers": depth, "hidden_channels":
                                                                             args.hidden, "dropout": 0.5},
                                      "out": f"{folder}/{ranks}-{depth}-{name}.json", "tag": [ranks, depth, name]})
            spec = {"data_dir": args.data_dir, "dataset": args.dataset, "model": args.model, "epochs": 1,
                    "seed": 0, "threads": 1, "scenarios": scenarios}
            Path(folder, "spec.json").write_text(json.dumps(spec))
            code = launch_module("graphrec.parallel.scenarios", [str(Path(folder, "spec.json"))], ranks)
            if code:
                raise SystemExit(f"{ranks}-rank run failed with code {code}")
            for scenario in scenarios:
                result = json.loads(Path(scenario["out"]).read_text())
                volume = scenario_bytes(result)
                p2p = sum(v for k, v in volume.items() if "pipe_" in k or "halo_" in k)
                allreduce = volume.get("train/allreduce", 0.0)
                rows.append({"ranks": ranks, "depth": scenario["tag"][1], "layout": scenario["tag"][2],
                             "p2p_bytes": p2p, "allreduce_bytes": allreduce, "phases": volume,
                             "halo_nodes_rank0": result["layout"]["halo_nodes"],
                             "epoch_seconds": result["epochs"][0]["seconds"]})
    lines = [f"# GNNPipe vs graph parallelism: communication volume per training epoch ({args.dataset}, {args.model}, "
             f"hidden {args.hidden}, pipe chunks {args.chunks})", "",
             "| ranks | depth | graph p2p MB | pipe p2p MB | **graph / pipe** | graph p2p+allreduce MB | ratio incl. allreduce "
             "| hybrid 2x2 p2p MB |", "|---|---|---|---|---|---|---|---|"]
    ratios = []
    for ranks in args.ranks:
        for depth in args.depths:
            pick = {r["layout"]: r for r in rows if r["ranks"] == ranks and r["depth"] == depth}
            graph, pipe = pick["graph"], pick["pipe"]
            ratio = graph["p2p_bytes"] / pipe["p2p_bytes"]
            ratio_all = (graph["p2p_bytes"] + graph["allreduce_bytes"]) / (pipe["p2p_bytes"] + pipe["allreduce_bytes"])
            ratios.append(ratio)
            hybrid = f"{pick['hybrid']['p2p_bytes'] / 1e6:.2f}" if "hybrid" in pick else "-"
            lines.append(f"| {ranks} | {depth} | {graph['p2p_bytes'] / 1e6:.2f} | {pipe['p2p_bytes'] / 1e6:.2f} | "
                         f"**{ratio:.2f}x** | {(graph['p2p_bytes'] + graph['allreduce_bytes']) / 1e6:.2f} | "
                         f"{ratio_all:.2f}x | {hybrid} |")
    lines += ["", f"Mean graph/pipe p2p ratio: **{sum(ratios) / len(ratios):.2f}x** (max {max(ratios):.2f}x); paper: "
              "8.69x on average, up to 22.89x (other graphs, GPUs, its own models).", "",
              f"Command: `python benchmarks/gnnpipe_volume.py {' '.join(argv if argv is not None else sys.argv[1:])}`; "
              "bytes counted at the sender, summed over ranks, one epoch (training only), float32.",
              f"Wall time {time.time() - started:.0f} s on {platform.node()} ({os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.1f}); the figures do not depend on the hardware."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps({"rows": rows, "args": vars(args),
                                                    "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
