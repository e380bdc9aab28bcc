"""Side-by-side time to accuracy: two ``time_to_accuracy.py`` records, one table of ratios.

Run the two models *at the same time* on the same machine (one thread each, one per core), so that
both see the same load, then compare their records::

    python benchmarks/time_to_accuracy.py --model lightgcn --eval-every 2 --set train.num_threads=1 \\
        --tag faithful ... &
    python benchmarks/time_to_accuracy.py --model ultragcn --set train.num_threads=1 \\
        --set sampling.shared_negatives=true --set train.lr=1e-3 --tag shared-lr1e-3 ... &
    wait
    python benchmarks/time_to_accuracy_compare.py \\
        benchmarks/results/time_to_accuracy-lightgcn-gowalla-faithful.json \\
        benchmarks/results/time_to_accuracy-ultragcn-gowalla-shared-lr1e-3.json

The first record is the baseline. For each recall level both reached, the ratio is baseline clock /
contender clock (above 1: the contender got there sooner). The clock is the Trainer's train +
evaluation seconds, which stays right across ``--resume``d sessions; data loading (2-3 s) is left out.
Whether the two runs overlapped in time is read from the records' ``started_at`` / ``finished_at``
(or, for older records, the run folders' metrics logs while they still exist) and printed, because a
ratio of runs made under different loads says little.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def run_span(record: dict) -> tuple[float, float] | None:
    """(first, last) Unix time of a record's run, all sessions of a resumed one included.

    From the evaluation times in its curve, widened by its start and end when the record covers the
    whole run (not ``--resume``d); older records have neither, so their run folder's metrics log is read.
    """
    times = [float(point["time"]) for point in record.get("curve", []) if point.get("time") is not None]
    if times:
        first, last = min(times), max(times)
        if record.get("started_at") and not record.get("resumed"):
            first = min(first, float(record["started_at"]))
        if record.get("finished_at"):
            last = max(last, float(record["finished_at"]))
        return first, last
    log = Path(record.get("run_dir") or "") / "metrics.jsonl"
    if not log.is_file():
        return None
    times = []
    with open(log) as handle:
        for line in handle:
            try:
                times.append(float(json.loads(line)["time"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return (min(times), max(times)) if times else None


def overlap_fraction(a: tuple[float, float] | None, b: tuple[float, float] | None) -> float | None:
    """Share of the shorter run's span during which the other one was running too."""
    if a is None or b is None:
        return None
    shared = min(a[1], b[1]) - max(a[0], b[0])
    shorter = min(a[1] - a[0], b[1] - b[0])
    return max(shared, 0.0) / shorter if shorter > 0 else None


def name(record: dict) -> str:
    train = record["run_config"]["train"]
    details = [f"lr {train['lr']:g}", f"batch {train['batch_size']}"]
    # records written before the sampling section kept shared_negatives under train
    if record["run_config"].get("sampling", train).get("shared_negatives"):
        details.append("negative sharing")
    return f"{record['model']} ({', '.join(details)})"


def compare(baseline: dict, contender: dict) -> dict:
    """The comparison as a record: per level, both runs' epoch and clock, and the clock ratio."""
    if baseline["metric"] != contender["metric"] or baseline["data"] != contender["data"]:
        raise ValueError(f"records measure different things: {baseline['metric']} on {baseline['data']} vs "
                         f"{contender['metric']} on {contender['data']}")
    levels = sorted(set(baseline["reached"]) | set(contender["reached"]), key=float)
    rows = []
    for level in levels:
        a, b = baseline["reached"].get(level), contender["reached"].get(level)
        ratio = round(a["train_eval_s"] / b["train_eval_s"], 2) if a and b else None
        rows.append({"level": level,
                     "baseline": {"epoch": a["epoch"], "train_eval_s": a["train_eval_s"]} if a else None,
                     "contender": {"epoch": b["epoch"], "train_eval_s": b["train_eval_s"]} if b else None,
                     "speedup": ratio})
    span = overlap_fraction(run_span(baseline), run_span(contender))
    return {"benchmark": "time_to_accuracy_compare", "data": baseline["data"], "metric": baseline["metric"],
            "baseline": name(baseline), "contender": name(contender),
            "baseline_command": baseline["command"], "contender_command": contender["command"],
            "epoch_train_s": {"baseline": baseline["mean_epoch_train_s"],
                              "contender": contender["mean_epoch_train_s"]},
            "overlap": None if span is None else round(span, 3),
            "best": {"baseline": baseline.get("best"), "contender": contender.get("best")},
            "rows": rows}


def markdown(result: dict) -> str:
    metric = result["metric"]
    overlap = ("not recorded (compare with care: the runs may have seen different loads)"
               if result["overlap"] is None else
               f"{100 * result['overlap']:.0f}% of the shorter run's time (same machine, same load)")
    lines = [f"# Time to accuracy side by side on {result['data']}: {result['contender']} vs {result['baseline']}",
             "", f"- baseline: `{result['baseline_command']}`", f"- contender: `{result['contender_command']}`",
             f"- both runs in progress at once: {overlap}",
             f"- training s per epoch: baseline {result['epoch_train_s']['baseline']}, "
             f"contender {result['epoch_train_s']['contender']}", "",
             f"| {metric} | baseline epoch | baseline train + eval s | contender epoch | contender train + eval s "
             "| contender sooner by |", "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        a, b = row["baseline"], row["contender"]
        cells = [row["level"],
                 str(a["epoch"]) if a else "not reached", str(a["train_eval_s"]) if a else "",
                 str(b["epoch"]) if b else "not reached", str(b["train_eval_s"]) if b else "",
                 f"**{row['speedup']}x**" if row["speedup"] is not None else "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    for role in ("baseline", "contender"):
        best = result["best"][role]
        if best:
            lines.append(f"\nBest {role}: {metric} {best[metric]:.4f} at epoch {best['epoch']} "
                         f"(train + eval {best['train_eval_s']} s).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", help="time_to_accuracy JSON record of the baseline run")
    parser.add_argument("contender", help="time_to_accuracy JSON record of the run compared with it")
    parser.add_argument("--out", default=None, help="write <out>.json and <out>.md (default: print only)")
    args = parser.parse_args(argv)
    records = []
    for path in (args.baseline, args.contender):
        try:
            records.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(f"{path}: not a readable time_to_accuracy record ({error})")
    result = compare(*records)
    result["command"] = " ".join(["python", *sys.argv])
    text = markdown(result)
    print(text, end="")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
