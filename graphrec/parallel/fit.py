"""``graphrec fit --parallel pipe|graph|hybrid``: a run folder from a distributed node-classification run.

Why not the :class:`~graphrec.train.Trainer`: its loop owns ``loss.backward()`` and
``optimizer.step()`` on one process, while here every stage owns different parameters and backward
is a schedule of sends and receives across ranks (:meth:`PipelineEngine.train_epoch`). The loop below
keeps the Trainer's contract where it applies: evaluation every ``eval_every`` epochs on the validation
split, selection on ``train.monitor`` (``loss`` or ``accuracy``), patience, ``time_limit_s``, a run folder
with ``config.yaml``, ``metrics.jsonl``, ``best.pt`` (the *full* model, gathered, loadable by
``graphrec eval``) and ``summary.json`` written by rank 0, and exact resume.

Checkpoints: every ``checkpoint_every`` epochs each rank atomically writes
``parallel/rank<r>-epoch<e>.pt`` (its parameters, optimizer, history tables, loop state); after a
barrier rank 0 atomically writes ``parallel/last.json`` naming epoch ``e``. ``--resume`` loads the
epoch the manifest names, so a crash between two ranks' writes never mixes epochs; files older than
two generations are deleted. Dropout masks derive from (seed, epoch), so a resumed run continues
exactly as an uninterrupted one.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from graphrec.parallel.comm import PeerFailure
from graphrec.parallel.engine import ParallelConfig, PipelineEngine, comm_volume
from graphrec.parallel.launch import init_distributed


def fit_parallel(config, parallel: ParallelConfig, run_dir: str | Path, resume: bool = False,
                 checkpoint_every: int = 10) -> dict[str, Any]:
    """Train ``config`` (a :class:`~graphrec.config.RunConfig`) as this process's rank."""
    from graphrec.models import get_model_entry
    from graphrec.runs import make_task
    from graphrec.train.checkpoint import load_checkpoint, save_checkpoint
    from graphrec.train.runlog import RunLog
    from graphrec.train.threads import set_num_threads

    train = config.train
    rank, world_size, device = init_distributed(parallel.backend, parallel.timeout_s, train.device)
    set_num_threads(train.num_threads)
    torch.manual_seed(train.seed)
    task = make_task(config)
    if get_model_entry(config.model).task != "node_classification":
        raise ValueError(f"--parallel {parallel.mode} trains node-classification models (gcn, gcnii); "
                         f"'{config.model}' is a {get_model_entry(config.model).task} model: use --parallel ddp")
    model = task.build_model(get_model_entry(config.model), config.model_config)
    engine = PipelineEngine(model, task.x.cpu(), task.edge_index.cpu(), task.y.cpu(),
                            {k: v.cpu() for k, v in task.masks.items()}, parallel, lr=train.lr,
                            weight_decay=train.weight_decay, seed=train.seed, rank=rank, world_size=world_size,
                            device=device)
    run_dir = Path(run_dir)
    folder = run_dir / "parallel"
    log = RunLog(run_dir) if rank == 0 else None
    loop = {"epoch": 0, "best_value": None, "best_epoch": None, "best_metrics": {}, "bad_evals": 0,
            "elapsed": 0.0}
    best_state = None
    if resume and (folder / "last.json").exists():
        epoch = json.loads((folder / "last.json").read_text())["epoch"]
        state = load_checkpoint(folder / f"rank{rank}-epoch{epoch}.pt")
        engine.load_state_dict(state["engine"])
        loop = dict(state["loop"])
        best_state = state.get("best_state")
        if log is not None:
            log.truncate_after(loop["epoch"])
    elif log is not None:
        log.write_config(config.to_dict())
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "parallel.json").write_text(json.dumps({**vars(parallel), "world_size": world_size}, indent=1))
    status = "completed"
    sign = 1.0 if train.monitor_mode == "min" else -1.0
    try:
        while loop["epoch"] < train.epochs:
            started = time.perf_counter()
            loss = engine.train_epoch(loop["epoch"])
            seconds = time.perf_counter() - started
            loop["epoch"] += 1
            loop["elapsed"] += seconds
            epoch = loop["epoch"]
            if log is not None:
                log.log(epoch=epoch, split="train", loss=loss, seconds=round(seconds, 4),
                        elapsed_s=round(loop["elapsed"], 3))
            stop = False
            if epoch % train.eval_every == 0 or epoch == train.epochs:
                metrics = engine.evaluate()
                valid = metrics["valid"]
                if train.monitor not in valid:
                    raise KeyError(f"monitor '{train.monitor}' is not among {sorted(valid)} for parallel runs")
                if log is not None:
                    log.log(epoch=epoch, split="valid", **valid)
                value = valid[train.monitor]
                if loop["best_value"] is None or sign * value < sign * loop["best_value"]:
                    loop.update(best_value=value, best_epoch=epoch, best_metrics=metrics, bad_evals=0)
                    best_state = engine.owned_state()
                else:
                    loop["bad_evals"] += 1
                    stop = train.patience > 0 and loop["bad_evals"] >= train.patience
            if epoch % checkpoint_every == 0 or epoch == train.epochs or stop:
                save_checkpoint({"engine": engine.state_dict(), "loop": loop, "best_state": best_state},
                                folder / f"rank{rank}-epoch{epoch}.pt")
                engine.comm.barrier("checkpoint barrier")
                if rank == 0:
                    temp = folder / ".last.json.tmp"
                    temp.write_text(json.dumps({"epoch": epoch, "world_size": world_size}))
                    os.replace(temp, folder / "last.json")
                for old in folder.glob(f"rank{rank}-epoch*.pt"):
                    if int(old.stem.split("epoch")[1]) < epoch - 2 * checkpoint_every:
                        old.unlink(missing_ok=True)
            if stop:
                status = "early_stopped"
                break
            if train.time_limit_s and loop["elapsed"] >= train.time_limit_s:
                status = "time_limit"
                break
    except PeerFailure as error:
        raise RuntimeError(f"{error}. Resume with `graphrec fit --resume {run_dir}` "
                           f"(last complete checkpoint: {folder / 'last.json'})") from None
    # the selected model, gathered on rank 0 into the single-process module's state
    if best_state is not None:
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in best_state.items():
                named[name].copy_(value)
    full_state = engine.gather_model_state()
    volume = comm_volume(engine)
    summary = {"status": status, "epochs_run": loop["epoch"], "best_epoch": loop["best_epoch"],
               "monitor": f"valid/{train.monitor}", "selected_on": "valid",
               "results": {k: v for k, v in loop["best_metrics"].items() if k in ("valid", "test")},
               "train_seconds": round(loop["elapsed"], 2), "parallel": {**vars(parallel), "world_size": world_size,
                                                                        **engine.layout_summary()},
               "communication_bytes_all_ranks": volume, **task.describe()}
    if rank == 0:
        save_checkpoint({"run_config": config.to_dict(), "model_state": full_state, "epoch": loop["best_epoch"],
                         "metrics": loop["best_metrics"].get("valid", {})}, run_dir / "best.pt")
        log.write_summary(summary)
    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    summary["rank"] = rank
    return summary


def parallel_config_from_args(args, run_dir: Path, resume: bool, config) -> ParallelConfig:
    """The run's :class:`ParallelConfig`: ``parallel/parallel.json`` of a resumed run, else the run
    config's ``parallel`` section (which the ``--parallel``/``--chunks``/... flags write into)."""
    saved = Path(run_dir) / "parallel" / "parallel.json"
    if (resume or getattr(args, "resume", None)) and saved.exists():
        values = json.loads(saved.read_text())
        values.pop("world_size", None)
        return ParallelConfig(**values)
    return config.parallel


def cli_fit(args, config, run_dir: Path, resume: bool, argv: list[str]) -> int:
    """``graphrec fit`` with ``--nproc``/``--parallel``: launch the ranks, or be one of them.

    Outside a distributed environment with ``--nproc N``: start N copies of the same command (with
    ``--run-dir`` pinned so all ranks share one folder) under the watchdog launcher. Inside one
    (``WORLD_SIZE`` set by our launcher or torchrun): join the group and train this rank.
    """
    import sys

    from graphrec.parallel.launch import distributed_env, launch_module

    _, world_size, _ = distributed_env()
    nproc = config.parallel.nproc
    if "WORLD_SIZE" not in os.environ and nproc > 1:
        worker_argv = list(argv)   # workers see WORLD_SIZE and join instead of launching again
        if not args.resume and not args.run_dir:
            worker_argv += ["--run-dir", str(run_dir)]
        return launch_module("graphrec", worker_argv, nproc)
    if config.parallel.mode == "ddp" or config_task(config) == "recommendation":
        from graphrec.parallel.ddp import fit_ddp

        summary = fit_ddp(config, run_dir, resume=resume, backend=config.parallel.backend,
                          timeout_s=config.parallel.timeout_s)
    else:
        parallel = parallel_config_from_args(args, run_dir, resume, config)
        if world_size > 1 and not args.run_dir and not args.resume:
            run_dir = Path(_agree_on(str(run_dir), parallel, config.train.device))
        summary = fit_parallel(config, parallel, run_dir, resume=resume)
    if summary.get("rank", 0) == 0:
        print(json.dumps({k: summary[k] for k in ("status", "best_epoch", "monitor", "results", "train_seconds",
                                                   "parallel") if k in summary}, indent=2, default=str))
        sys.stdout.flush()
    return 0


def config_task(config) -> str:
    from graphrec.models import get_model_entry

    return get_model_entry(config.model).task


def _agree_on(value: str, parallel: ParallelConfig, device: str = "cpu") -> str:
    """Rank 0's value on every rank (torchrun without --run-dir: timestamps may differ by a second)."""
    from graphrec.parallel.launch import init_distributed

    init_distributed(parallel.backend, parallel.timeout_s, device)
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]
