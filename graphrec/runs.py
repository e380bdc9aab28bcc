"""Runs end to end: config -> data -> task -> model -> Trainer -> run folder.

The CLI is a thin shell over these functions; users call them from Python too.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from graphrec.config import RunConfig, run_config_from_dict
from graphrec.data.interactions import InteractionGraph
from graphrec.loaders import get_dataset_spec, load_dataset
from graphrec.models import get_model_entry
from graphrec.train import RecommendationTask, Trainer, load_checkpoint
from graphrec.train.checkpoint import load_model_state, task_sizes
from graphrec.train.hetero_classification import HeteroNodeClassificationTask
from graphrec.train.node_classification import NodeClassificationTask
from graphrec.train.task import Task
from graphrec.train.strategy import TrainingStrategy
from graphrec.train.threads import set_num_threads

#: task name -> factory(data, train, sampling) -> Task (full batch; see make_task for sampling.mode=sampled)
TASKS = {"recommendation": RecommendationTask, "node_classification": NodeClassificationTask,
         # one task for both modes: it samples heterogeneous neighbourhoods itself when sampling.mode=sampled
         "hetero_node_classification": HeteroNodeClassificationTask}
#: tasks with a separate minibatch task for sampling.mode=sampled (imported on first use)
SAMPLED_TASKS = {"recommendation": ("graphrec.train.sampled_recommendation", "SampledRecommendationTask"),
                 "node_classification": ("graphrec.train.sampled_node_classification",
                                         "SampledNodeClassificationTask")}


def load_data(config: RunConfig):
    """Read the run's dataset, after checking that the model and the dataset share a task."""
    entry, spec = get_model_entry(config.model), get_dataset_spec(config.data)
    if spec.task != entry.task:
        raise ValueError(f"model '{config.model}' is for {entry.task} but dataset '{config.data}' is for "
                         f"{spec.task}; pick a {entry.task} dataset")
    return load_dataset(config.data, config.data_dir)


def make_task(config: RunConfig, data=None) -> Task:
    data = load_data(config) if data is None else data
    task = get_model_entry(config.model).task
    if config.sampling.mode == "sampled" and task in SAMPLED_TASKS:   # minibatches over sampled neighbourhoods
        import importlib

        module, name = SAMPLED_TASKS[task]
        return getattr(importlib.import_module(module), name)(data, config.train, config.sampling)
    return TASKS[task](data, config.train, config.sampling)


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    return Path(root) / f"{config.model}-{config.data}-{time.strftime('%Y%m%d-%H%M%S')}"


def fit(config: RunConfig, run_dir: str | Path | None = None, resume: bool = False, data=None,
        strategy: Callable[[nn.Module, Task], TrainingStrategy] | None = None,
        verbose: bool = True) -> tuple[Trainer, dict[str, Any]]:
    """Train ``config`` into ``run_dir`` (resuming from its checkpoint when asked).

    Every run goes through :meth:`Trainer.fit`: ``strategy(model, task)`` makes the strategy of a
    distributed run (:mod:`graphrec.parallel`); None trains on this process. ``run_dir`` belongs to
    one run: a fresh start in a folder that holds one, a second process writing it, or ``resume``
    without its checkpoint raise :class:`~graphrec.train.runlock.RunFolderError`. ``verbose``:
    print the start block, progress and evaluations (to stderr); False prints nothing.
    """
    set_num_threads(config.train.num_threads)
    torch.manual_seed(config.train.seed)
    task = make_task(config, data)
    entry = get_model_entry(config.model)
    model = task.build_model(entry, config.model_config)
    if config.encoder.name:
        from graphrec.encoders.graph import attach_node_encoder

        model = attach_node_encoder(model, task, entry, config)
    chosen = strategy(model, task) if strategy is not None else None
    trainer = Trainer(model, chosen.task if chosen is not None else task, config.train, run_dir=run_dir,
                      run_config=config.to_dict(), strategy=chosen, verbose=verbose)
    if resume:
        trainer.resume()
    summary = trainer.fit()
    return trainer, summary


def load_trained(checkpoint: str | Path | dict, data_dir: str | None = None, data=None):
    """Rebuild (model, task, run config) from a checkpoint (a path or its loaded dict): a run's
    ``best.pt``/``last.pt`` (its dataset is read again) or a ``Recommender.save`` file (it carries
    its interactions)."""
    state = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    if data is None and state.get("interactions") is not None:
        data = InteractionGraph.from_state_dict(state["interactions"])
    raw = dict(state["run_config"])
    if data_dir is not None:
        raw["data_dir"] = data_dir
    config = run_config_from_dict(raw)
    task = make_task(config, data)
    model = task.build_model(get_model_entry(config.model), config.model_config)
    if config.encoder.name:
        from graphrec.encoders.graph import attach_node_encoder

        model = attach_node_encoder(model, task, get_model_entry(config.model), config)
    load_model_state(model, state, config.model, task_sizes(task))
    model.eval()
    return model, task, config


def fit_many(config: RunConfig, runs: int, run_dir: str | Path, data=None, verbose: bool = True) -> dict[str, Any]:
    """Train ``config`` ``runs`` times, with seeds ``seed, seed+1, ...``, and aggregate.

    The data is read once. Run ``i`` goes to ``run_dir/seed-<seed+i>/`` (a complete run
    folder). ``run_dir/runs_summary.json`` holds every run's final metrics and, per report
    split and metric, mean and std over runs (sample std, n-1, as ``torch.std`` in the
    official DAGNN code; 0 for a single run). A stopped run (Ctrl-C) ends the series; the
    summary then covers the runs that finished.
    """
    import dataclasses
    import json
    import statistics

    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    data = load_data(config) if data is None else data
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started, finished, status, hardware = time.perf_counter(), [], "completed", None
    for number in range(runs):
        seed = config.train.seed + number
        seeded = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
        _, summary = fit(seeded, run_dir / f"seed-{seed}", data=data, verbose=verbose)
        if summary["status"] == "interrupted":
            status = "interrupted"
            break
        hardware = summary.get("hardware", hardware)
        finished.append({"seed": seed, "run_dir": str(run_dir / f"seed-{seed}"), "status": summary["status"],
                         "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
                         "train_seconds": summary["train_seconds"], "results": summary["results"]})
    aggregate: dict[str, dict[str, dict[str, float]]] = {}
    for split in (finished[0]["results"] if finished else {}):
        for metric, value in finished[0]["results"][split].items():
            if not isinstance(value, (int, float)):
                continue
            values = [float(r["results"][split][metric]) for r in finished]
            aggregate.setdefault(split, {})[metric] = {
                "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values), "max": max(values)}
    result = {
        "status": status, "model": config.model, "data": config.data, "runs": len(finished),
        "seeds": [r["seed"] for r in finished], "aggregate": aggregate, "per_run": finished,
        "wall_seconds": round(time.perf_counter() - started, 2), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "hardware": hardware, "run_config": config.to_dict(),
    }
    temp = run_dir / ".runs_summary.json.tmp"
    temp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    temp.replace(run_dir / "runs_summary.json")
    return result
