"""LATTE against PyG's HAN and HGT on HeCo's ACM: macro/micro-F1 over seeds, for the 20/40/60 splits.

Every model gets the same data (``load_dataset("acm")``: 0/1 paper and author bag-of-words,
learned subject embeddings), the same split files, the same neighbour sampling
(``sampling.mode=sampled``, ``sampling.fanouts`` neighbours per relation and hop, evaluation on
neighbourhoods drawn once per split with a fixed seed) and the same selection rule: early
stopping on validation loss, test reported at the best-validation epoch. Every model samples its
exact receptive field (``HOPS``: 3 hops for LATTE-2, 2 for HAN and HGT). Hyper-parameters are
each model's registered defaults (LATTE: official run.py and its optimizer parameter groups;
HAN: official HAN; HGT: LATTE's run.py settings for HGT), except dropout 0.5 for ``latte+prox``
(chosen on validation macro-F1, seeds 2020-2022, splits 20 and 60).

Runs are seed-major (every split and model for seed s before seed s+1), so a run cut short
still has the same seeds for every cell. Every finished run is appended to
``<out>.jsonl`` at once; the table (``<out>.md``) and aggregate (``<out>.json``) are
rewritten after every seed.

    OMP_NUM_THREADS=1 python benchmarks/latte_acm.py --seeds 10 --out benchmarks/results/latte_acm
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from graphrec import runs
from graphrec.config import build_run_config
from graphrec.loaders import load_dataset

#: benchmark row -> (registered model, overrides); "latte+prox" is the paper's LATTE-2 with the proximity
#: loss, with dropout 0.5 (official 0.2): chosen on validation macro-F1 (seeds 2020-2022, splits 20 and 60)
VARIANTS = {"latte": ("latte", {}), "latte+prox": ("latte", {"model.use_proximity": True, "model.dropout": 0.5}),
            "han": ("han", {}), "hgt": ("hgt", {})}
#: sampled hops per row = the model's exact receptive field: LATTE-2 (2 layers, the second over 2-order
#: meta-paths) needs 3 hops, HAN (one layer over 2-hop meta-paths) and HGT (2 layers) need 2
HOPS = {"latte": 3, "latte+prox": 3, "han": 2, "hgt": 2}
MODELS = tuple(VARIANTS)
SPLITS = ("20", "40", "60")


def one_run(model: str, split: str, seed: int, data, fanouts, data_dir, extra: dict) -> dict:
    registered, variant = VARIANTS[model]
    fanouts = [fanouts[min(hop, len(fanouts) - 1)] for hop in range(HOPS[model])]
    overrides = {"train.split": split, "train.seed": seed, "train.num_threads": 1, "sampling.mode": "sampled",
                 "sampling.fanouts": list(fanouts), **variant, **extra.get(model, {})}
    config = build_run_config(registered, "acm", data_dir, overrides=overrides)
    started = time.perf_counter()
    _, summary = runs.fit(config, None, data=data)
    test, valid = summary["results"]["test"], summary["results"]["valid"]
    return {"model": model, "split": split, "seed": seed, "macro_f1": test["macro_f1"], "micro_f1": test["micro_f1"],
            "test_loss": test["loss"], "valid_loss": valid["loss"], "valid_macro_f1": valid["macro_f1"],
            "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
            "train_seconds": summary["train_seconds"], "wall_seconds": round(time.perf_counter() - started, 2),
            "load_average": os.getloadavg(), "model_config": summary["run_config"]["model_config"],
            "train_config": {**{k: summary["run_config"]["train"][k] for k in
                                ("lr", "weight_decay", "epochs", "patience", "monitor", "batch_size")},
                             "fanouts": summary["run_config"]["sampling"]["fanouts"]}}


def aggregate(rows: list[dict]) -> dict:
    table = {}
    for model in MODELS:
        for split in SPLITS:
            cell = [r for r in rows if r["model"] == model and r["split"] == split]
            if not cell:
                continue

            def stat(key):
                values = [100 * r[key] for r in cell]
                return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}

            table[f"{model}/{split}"] = {"model": model, "split": split, "runs": len(cell),
                                         "seeds": [r["seed"] for r in cell], "macro_f1": stat("macro_f1"),
                                         "micro_f1": stat("micro_f1"),
                                         "epochs_run_mean": statistics.fmean(r["epochs_run"] for r in cell),
                                         "best_epoch_mean": statistics.fmean(r["best_epoch"] for r in cell),
                                         "seconds_per_run": statistics.fmean(r["wall_seconds"] for r in cell)}
    return table


def markdown(table: dict, meta: dict) -> str:
    lines = ["# LATTE vs HAN vs HGT on ACM (HeCo), test macro/micro-F1 (%) at the best-validation-loss epoch", "",
             f"Date {meta['date']}; {meta['hardware']}; load average (1 min) {meta['load_average']}; "
             f"wall time {meta['wall_seconds']:.0f} s; fan-outs {meta['fanouts']} per relation and hop (sampled "
             f"training and evaluation); seeds {meta['seeds']}.", "",
             f"Command: `{meta['command']}`", "",
             "| split (labels/class) | model | macro-F1 | micro-F1 | runs | mean epochs run (best) | s/run |",
             "|---|---|---|---|---|---|---|"]
    for split in SPLITS:
        for model in MODELS:
            cell = table.get(f"{model}/{split}")
            if cell is None:
                continue
            lines.append(f"| {split} | {model} | {cell['macro_f1']['mean']:.2f} ± {cell['macro_f1']['std']:.2f} | "
                         f"{cell['micro_f1']['mean']:.2f} ± {cell['micro_f1']['std']:.2f} | {cell['runs']} | "
                         f"{cell['epochs_run_mean']:.0f} ({cell['best_epoch_mean']:.0f}) | {cell['seconds_per_run']:.1f} |")
    return "\n".join(lines) + "\n"


def merge(args) -> None:
    rows, seen = [], set()
    for path in args.merge:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            key = (row["model"], row["split"], row["seed"])
            if line.strip() and key not in seen:
                seen.add(key)
                rows.append(row)
    seeds = sorted({r["seed"] for r in rows})
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": "OMP_NUM_THREADS=1 python benchmarks/latte_acm.py --seeds N --first-seed S (one process per "
                       f"seed range), then --merge {' '.join(args.merge)} --out {args.out}",
            "fanouts": sorted({tuple(r["train_config"]["fanouts"]) for r in rows}),
            "seeds": seeds, "wall_seconds": sum(r["wall_seconds"] for r in rows),
            "load_average": sorted({round(r["load_average"][0], 1) for r in rows})[::max(1, len(rows) // 8)],
            "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
                        f"{torch.__version__}, 1 thread per run, no GPU; wall time = sum of the runs' wall times"}
    out = Path(args.out)
    table = aggregate(rows)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "table": table, "runs": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(table, meta))
    print(markdown(table, meta))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=2020)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[10, 10],
                        help="neighbours per relation for hop 1, 2, ...; the last value repeats for the extra hops "
                             "of models with a deeper receptive field (HOPS: LATTE 3, HAN and HGT 2)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="benchmarks/results/latte_acm")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="MODEL:KEY=VALUE",
                        help="per-model override, e.g. latte:model.use_proximity=true")
    parser.add_argument("--merge", nargs="+", metavar="JSONL",
                        help="train nothing: tabulate the runs of these .jsonl files (e.g. two halves of the seeds "
                             "run as two processes) into --out .md/.json; a (model, split, seed) seen twice keeps "
                             "the first")
    args = parser.parse_args()
    if args.merge:
        merge(args)
        return
    torch.set_num_threads(1)
    extra: dict[str, dict] = {}
    for item in args.overrides:
        import yaml

        model, _, setting = item.partition(":")
        key, _, value = setting.partition("=")
        extra.setdefault(model, {})[key] = yaml.safe_load(value)
    data = load_dataset("acm", args.data_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".jsonl")
    log.write_text("")
    rows, started = [], time.perf_counter()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    command = "OMP_NUM_THREADS=1 python benchmarks/latte_acm.py " + " ".join(
        [f"--seeds {args.seeds}", f"--fanouts {' '.join(map(str, args.fanouts))}", f"--out {args.out}"]
        + [f"--set {o}" for o in args.overrides])
    for seed in seeds:
        for split in args.splits:
            for model in args.models:
                row = one_run(model, split, seed, data, args.fanouts, args.data_dir, extra)
                rows.append(row)
                with log.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"seed {seed} split {split} {model}: macro {100 * row['macro_f1']:.2f} micro "
                      f"{100 * row['micro_f1']:.2f} epochs {row['epochs_run']} ({row['wall_seconds']:.1f} s)", flush=True)
        table = aggregate(rows)
        meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": command, "fanouts": args.fanouts,
                "seeds": sorted({r["seed"] for r in rows}), "wall_seconds": time.perf_counter() - started,
                "hops": {m: HOPS[m] for m in args.models},
                "load_average": [round(v, 2) for v in os.getloadavg()],
                "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
                            f"{torch.__version__}, 1 thread, no GPU" if not torch.cuda.is_available() else "cuda"}
        out.with_suffix(".json").write_text(json.dumps({"meta": meta, "table": table, "runs": rows}, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(table, meta))
    print(markdown(aggregate(rows), meta))


if __name__ == "__main__":
    main()
