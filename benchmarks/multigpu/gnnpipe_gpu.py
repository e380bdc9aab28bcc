"""Multi-GPU scenarios (NCCL), one command each; results to benchmarks/results/gnnpipe_gpu_<scenario>_<N>gpu.json.

    python benchmarks/multigpu/gnnpipe_gpu.py --scenario single              # 1 GPU reference
    python benchmarks/multigpu/gnnpipe_gpu.py --scenario pipe   --nproc 4    # GNNPipe, 4 stages
    python benchmarks/multigpu/gnnpipe_gpu.py --scenario graph  --nproc 4    # METIS graph parallelism
    python benchmarks/multigpu/gnnpipe_gpu.py --scenario hybrid --nproc 4 --stages 2
    python benchmarks/multigpu/gnnpipe_gpu.py --scenario ddp-lightgcn --nproc 4 --dataset gowalla

Each records the median epoch time (epochs 3+), the exact communication bytes per training epoch
(summed over ranks, counted at our send layer) and the accuracy (test at the epoch of lowest
validation loss, exact one-chunk evaluation). Node-classification scenarios run GCNII
(``--layers``, default 32) on ``--dataset`` (default cora; any registered node-classification set).
Multi-node: run the same worker under ``torchrun --nnodes ... -m graphrec.parallel.scenarios SPEC``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def node_classification(args) -> dict:
    from graphrec.parallel.launch import launch_module
    from graphrec.parallel.scenarios import run

    parallel = {"single": {"mode": "single"}, "pipe": {"mode": "pipe", "chunks": args.chunks},
                "graph": {"mode": "graph"},
                "hybrid": {"mode": "hybrid", "stages": args.stages, "chunks": args.chunks}}[args.scenario]
    parallel["backend"] = "nccl"
    with tempfile.TemporaryDirectory() as folder:
        spec = {"data_dir": args.data_dir, "dataset": args.dataset, "model": "gcnii", "device": "cuda",
                "model_kwargs": {"num_layers": args.layers, "hidden_channels": args.hidden, "dropout": 0.6},
                "epochs": args.epochs, "eval_every": 10, "lr": 0.01, "weight_decay": 5e-4, "seed": args.seed,
                "parallel": parallel, "out": f"{folder}/result.json"}
        if args.scenario == "single":
            result = run(spec, device="cuda")
        else:
            Path(folder, "spec.json").write_text(json.dumps(spec))
            if launch_module("graphrec.parallel.scenarios", [f"{folder}/spec.json"], args.nproc):
                raise SystemExit("run failed")
            result = json.loads(Path(folder, "result.json").read_text())
    per_rank = result.get("epochs_per_rank", [result["epochs"]])
    volume: dict[str, float] = {}
    for rows in per_rank:
        for phase, value in rows[-1]["bytes_sent_this_rank"].items():
            volume[phase] = volume.get(phase, 0.0) + value
    seconds = [r["seconds"] for r in result["epochs"][2:]]
    return {"epoch_s_median": statistics.median(seconds), "bytes_per_epoch": volume,
            "selected_test_accuracy": result["best"]["test"]["accuracy"], "best_epoch": result["best"]["epoch"],
            "layout": result["layout"]}


def recommender(args) -> dict:
    model = args.scenario.split("-", 1)[1]
    run_dir = ROOT / "runs" / f"multigpu-{model}-{args.dataset}-{args.nproc}gpu-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [sys.executable, "-m", "graphrec", "fit", "--model", model, "--data", args.dataset, "--device", "cuda",
               "--epochs", str(args.epochs), "--seed", str(args.seed), "--run-dir", str(run_dir),
               "--data-dir", args.data_dir, "--parallel", "ddp", "--nproc", str(args.nproc)]
    subprocess.run(command, check=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["seconds"] for r in rows if r.get("split") == "train"][2:]
    return {"epoch_s_median": statistics.median(seconds) if seconds else None, "results": summary["results"],
            "run_dir": str(run_dir)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", required=True,
                        choices=["single", "pipe", "graph", "hybrid", "ddp-lightgcn", "ddp-ultragcn"])
    parser.add_argument("--nproc", type=int, default=1)
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("GRAPHREC_DATA", str(ROOT.parent / "shared" / "data")))
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < args.nproc:
        raise SystemExit(f"needs {args.nproc} CUDA device(s); found {torch.cuda.device_count()}")
    started = time.time()
    result = recommender(args) if args.scenario.startswith("ddp-") else node_classification(args)
    result.update({"scenario": args.scenario, "nproc": args.nproc, "args": vars(args),
                   "gpus": [torch.cuda.get_device_name(i) for i in range(args.nproc)],
                   "wall_s": round(time.time() - started, 1), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                   "command": "python benchmarks/multigpu/gnnpipe_gpu.py " + " ".join(argv or sys.argv[1:])})
    out = ROOT / "benchmarks" / "results" / f"gnnpipe_gpu_{args.scenario}_{args.nproc}gpu.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
