"""Epoch time and accuracy on CPU (gloo): single process / graph / pipe / hybrid, same model, seed and masks.

Deep GCNII on Cora (public split), one torch thread per process. Every layout trains the same
number of epochs from the same initial weights with the same per-epoch dropout masks, so accuracy
differences come from staleness (pipe/hybrid with chunks) alone; evaluation is exact (one chunk).
Selection: the epoch of lowest validation loss among evaluations every ``--eval-every`` epochs.

Epoch time on a 2-core VM shared with other jobs says little about GPUs (see benchmarks/multigpu/
for the projection): 2 ranks on 2 cores compete with everything else, and 4 ranks (hybrid 2x2)
oversubscribe the cores. The load average is recorded before and after.

    python benchmarks/gnnpipe_epoch.py --data-dir ../shared/data --layers 16 --epochs 200
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("GRAPHREC_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--dropout", type=float, default=0.6)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layouts", nargs="+", default=["single", "graph", "pipe", "hybrid"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gnnpipe_epoch_cpu"))
    args = parser.parse_args(argv)

    from graphrec.parallel.launch import launch_module
    from graphrec.parallel.scenarios import run

    base = {"data_dir": args.data_dir, "model": "gcnii", "seed": args.seed, "threads": 1, "epochs": args.epochs,
            "eval_every": args.eval_every, "lr": args.lr, "weight_decay": 5e-4,
            "model_kwargs": {"num_layers": args.layers, "dropout": args.dropout}}
    layouts = {"single": (1, {"mode": "single"}), "graph": (2, {"mode": "graph"}),
               "pipe": (2, {"mode": "pipe", "chunks": args.chunks}),
               "pipe-exact": (2, {"mode": "pipe", "chunks": 1}),
               "hybrid": (4, {"mode": "hybrid", "stages": 2, "chunks": args.chunks})}
    rows, started = [], time.time()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.layouts:
            ranks, parallel = layouts[name]
            load_before = os.getloadavg()[0]
            out = f"{folder}/{name}.json"
            spec = {**base, "parallel": parallel, "out": out}
            if ranks == 1:
                result = run(spec)
            else:
                Path(folder, "spec.json").write_text(json.dumps(spec))
                if launch_module("graphrec.parallel.scenarios", [str(Path(folder, "spec.json"))], ranks):
                    raise SystemExit(f"{name} failed")
                result = json.loads(Path(out).read_text())
            seconds = [r["seconds"] for r in result["epochs"][2:]]  # skip warm-up epochs
            rows.append({"layout": name, "ranks": ranks, "parallel": parallel,
                         "epoch_s_median": statistics.median(seconds), "epoch_s_mean": statistics.fmean(seconds),
                         "best_epoch": result["best"]["epoch"], "selected_test_accuracy": result["best"]["test"]["accuracy"],
                         "selected_valid_accuracy": result["best"]["valid"]["accuracy"],
                         "final_test_accuracy": result["final"]["test"]["accuracy"],
                         "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)})
            print(json.dumps(rows[-1]), flush=True)
    lines = [f"# GCNII-{args.layers} on Cora, CPU + gloo: epoch time and accuracy per layout", "",
             "| layout | ranks | median epoch s | test acc (selected on valid loss) | final test acc | load avg before/after |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layout']} | {r['ranks']} | {r['epoch_s_median']:.3f} | {100 * r['selected_test_accuracy']:.1f} "
                     f"(epoch {r['best_epoch']}) | {100 * r['final_test_accuracy']:.1f} | {r['load_before']} / {r['load_after']} |")
    lines += ["", f"Command: `python benchmarks/gnnpipe_epoch.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
              f"(seed {args.seed}, {args.epochs} epochs, lr {args.lr}, dropout {args.dropout}, chunks {args.chunks}); "
              f"{platform.node()}, {os.cpu_count()} cores, one thread per process, wall {time.time() - started:.0f} s, "
              f"{time.strftime('%Y-%m-%d %H:%M')}."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
