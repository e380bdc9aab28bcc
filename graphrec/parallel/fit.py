"""``graphrec fit --parallel pipe|graph|hybrid``: the Trainer's loop over a :class:`PipelineEngine`.

:class:`PipelineStrategy` is the engine as a :class:`~graphrec.train.strategy.TrainingStrategy`: one
step per epoch (the whole graph through the pipeline), evaluation across ranks, per-rank state.
Everything else (schedule, optimizer, evaluation cadence, selection, early stopping, the run folder
written by rank 0, ``best.pt`` gathered into the plain model) is :meth:`Trainer.fit
<graphrec.train.Trainer.fit>`'s, as in a single-process run. Checkpoints: every ``checkpoint_every``
epochs (and when the loop returns) each rank atomically writes ``parallel/rank<r>-epoch<e>.pt``; after
a barrier rank 0 atomically writes ``parallel/last.json`` naming epoch ``e``, which ``--resume``
reads, so ranks never mix epochs. Design and measurements: docs/parallel.md.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist

from graphrec.parallel.comm import PeerFailure
from graphrec.parallel.engine import ParallelConfig, PipelineEngine, comm_volume
from graphrec.parallel.launch import init_distributed
from graphrec.train.checkpoint import load_checkpoint, save_checkpoint
from graphrec.train.runlock import check_fresh_start
from graphrec.train.strategy import TrainingStrategy

#: metrics the engine computes across ranks (the only possible train.monitor values)
PARALLEL_METRICS = ("loss", "accuracy")


class PipelineStrategy(TrainingStrategy):
    """One rank of a pipe/graph/hybrid run for the Trainer (see the module docstring)."""

    stops_mid_epoch = False  # one step per epoch

    def __init__(self, engine: PipelineEngine, task, checkpoint_every: int = 10):
        self.engine, self.task, self.model = engine, task, engine.model
        self.optimizer = engine.optimizer
        self.is_writer = engine.rank == 0
        self.checkpoint_every = checkpoint_every
        self._best: dict[str, torch.Tensor] | None = None

    def num_batches(self) -> int:
        return 1

    def batches(self, epoch: int, start: int = 0) -> Iterator[int]:
        if start == 0:
            yield epoch  # the engine's step: dropout masks and chunk order derive from the epoch

    def batch_samples(self, batch: int) -> int:
        return self.engine.num_train

    def train_step(self, batch: int) -> float:
        return self.engine.train_epoch(batch)

    def evaluate(self, split: str) -> dict[str, float]:
        return self.engine.evaluate()[split]

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        values = torch.tensor([float(bool(flag)) for flag in flags], dtype=torch.float64, device=self.engine.device)
        self.engine.comm.all_reduce(values, "control")
        return tuple(bool(value > 0) for value in values.tolist())

    def barrier(self) -> None:
        self.engine.comm.barrier("barrier")

    def state_dict(self) -> dict[str, Any]:
        return {"engine": self.engine.state_dict(), "best_state": self._best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state["engine"])
        self._best = state.get("best_state")

    def model_state(self) -> dict[str, torch.Tensor] | None:
        return self.engine.gather_model_state()

    def remember_best(self, saved: bool) -> None:
        self._best = self.engine.owned_state()  # this rank's share: it travels in the rank's checkpoint

    def restore_best(self, path: Path | None) -> None:
        if self._best is None:
            return
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self._best.items():
                named[name].copy_(value)

    def checkpoint_path(self, run_dir: Path) -> Path:
        return run_dir / "parallel" / "last.json"

    def write_checkpoint(self, state: dict[str, Any], run_dir: Path, epoch: int, final: bool) -> None:
        if not final and epoch % self.checkpoint_every:
            return
        folder, rank = run_dir / "parallel", self.engine.rank
        save_checkpoint(state, folder / f"rank{rank}-epoch{epoch}.pt")
        self.engine.comm.barrier("checkpoint barrier")
        if rank == 0:  # the manifest names an epoch only once every rank has written it
            temp = folder / ".last.json.tmp"
            temp.write_text(json.dumps({"epoch": epoch, "world_size": self.engine.world_size}))
            os.replace(temp, folder / "last.json")
        for old in folder.glob(f"rank{rank}-epoch*.pt"):
            if int(old.stem.split("epoch")[1]) < epoch - 2 * self.checkpoint_every:
                old.unlink(missing_ok=True)

    def read_checkpoint(self, run_dir: Path) -> dict[str, Any]:
        folder = run_dir / "parallel"
        epoch = json.loads((folder / "last.json").read_text())["epoch"]
        return load_checkpoint(folder / f"rank{self.engine.rank}-epoch{epoch}.pt")

    def describe(self) -> dict[str, Any]:
        engine = self.engine
        return {"parallel": {**vars(engine.config), "world_size": engine.world_size, **engine.layout_summary()},
                "communication_bytes_all_ranks": comm_volume(engine)}


def check_parallel_config(config, parallel: ParallelConfig) -> None:
    """Refuse, with the reason, every setting a pipe/graph/hybrid run cannot honour."""
    from graphrec.models import get_model_entry

    train, task = config.train, get_model_entry(config.model).task
    if task != "node_classification":
        raise ValueError(f"--parallel {parallel.mode} trains node-classification models (gcn, gcnii); "
                         f"'{config.model}' is a {task} model: use --parallel ddp")
    refusals = {
        "sampling.mode=sampled": (config.sampling.mode == "sampled",
                                  "the pipeline propagates over the whole graph every epoch"),
        "train.class_weighted_loss": (train.class_weighted_loss, "the pipeline's loss is the unweighted cross-entropy"),
        "--node-encoder": (bool(config.encoder.name),
                           "the pipeline's stages take the preprocessed features only"),
        f"train.monitor={train.monitor}": (train.monitor not in PARALLEL_METRICS,
                                           f"evaluation across ranks computes {' and '.join(PARALLEL_METRICS)}"),
    }
    for setting, (refused, reason) in refusals.items():
        if refused:
            raise ValueError(f"--parallel {parallel.mode} cannot run with {setting}: {reason}")


def fit_parallel(config, parallel: ParallelConfig, run_dir: str | Path, resume: bool = False,
                 checkpoint_every: int = 10) -> dict[str, Any]:
    """Train ``config`` (a :class:`~graphrec.config.RunConfig`) as this process's rank."""
    from graphrec import runs

    check_parallel_config(config, parallel)
    train, run_dir = config.train, Path(run_dir)
    owns_group = not dist.is_initialized()  # a caller's own process group stays open
    rank, world_size, device = init_distributed(parallel.backend, parallel.timeout_s, train.device)

    def strategy(model, task) -> PipelineStrategy:
        engine = PipelineEngine(model, task.x.cpu(), task.edge_index.cpu(), task.y.cpu(),
                                {k: v.cpu() for k, v in task.masks.items()}, parallel, seed=train.seed, rank=rank,
                                world_size=world_size, device=device, optimizer_config=train)
        return PipelineStrategy(engine, task, checkpoint_every)

    if rank == 0 and not resume:
        # before parallel.json: a refused run must leave the folder as it was
        check_fresh_start(run_dir, run_dir / "parallel" / "last.json")
        folder = run_dir / "parallel"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "parallel.json").write_text(json.dumps({**vars(parallel), "world_size": world_size}, indent=1))
    try:
        _, summary = runs.fit(config, run_dir, resume=resume, strategy=strategy)
    except PeerFailure as error:
        raise RuntimeError(f"{error}. Resume with `graphrec fit --resume {run_dir}` "
                           f"(last complete checkpoint: {run_dir / 'parallel' / 'last.json'})") from None
    if world_size > 1:
        dist.barrier()
        if owns_group:
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
    if dist.is_initialized():  # joined early by _agree_on: fit_parallel left it open
        dist.destroy_process_group()
    if summary.get("rank", 0) == 0:
        print(json.dumps({k: summary[k] for k in ("status", "best_epoch", "monitor", "results", "train_seconds",
                                                   "parallel") if k in summary}, indent=2, default=str))
        sys.stdout.flush()
    if summary.get("status") == "interrupted":  # as a single-process run: resume with --resume RUN_DIR
        return 130
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
