"""UltraGCN's new-data recipe on all of Gowalla for a few epochs at a given lr (validation recall@20 per
epoch beside ``pop``): the check behind benchmarks/results/new_data_defaults.md's full-data rows.

    GRAPHREC_DATA=/work/shared/data PYTHONPATH=. python benchmarks/new_data_defaults_full_gowalla.py 1e-2
"""
import dataclasses
import json
import sys
import time

from graphrec import runs
from graphrec.config import build_run_config
from graphrec.loaders import load_dataset

lr = float(sys.argv[1])
graph = load_dataset("gowalla")
config = build_run_config("ultragcn", "dataframe", overrides={
    "train.lr": lr, "train.epochs": 3, "train.eval_every": 1, "train.num_threads": 1, "train.time_limit_s": 100})
config = dataclasses.replace(config, data="gowalla")
started = time.perf_counter()
trainer, summary = runs.fit(config, None, data=graph, verbose=False)
print(json.dumps({"lr": lr, "valid": [(r["epoch"], round(r["recall@20"], 4)) for r in trainer.history
                                      if r.get("split") == "valid"],
                  "baseline_valid": round(summary["baseline"]["results"]["valid"]["recall@20"], 4),
                  "train_s": summary["train_seconds"], "wall_s": round(time.perf_counter() - started, 1)}))
