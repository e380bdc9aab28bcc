"""One Trainer for every model and task."""
from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numba
import torch
from torch import nn

from graphrec.config import TrainConfig
from graphrec.models.interfaces import OwnParameterGroups
from graphrec.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from graphrec.train.lazy_adam import LazyAdam
from graphrec.train.progress import Progress
from graphrec.train.runlock import RunFolderLock, check_fresh_start, check_resumable
from graphrec.train.runlog import RunLog
from graphrec.train.schedule import apply_lr
from graphrec.train.strategy import SingleProcess, TrainingStrategy
from graphrec.train.task import Task


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over the model's trainable parameters.

    A model that defines ``parameter_groups(weight_decay) -> list[dict]`` (torch optimizer
    parameter groups, e.g. no weight decay on biases and embeddings;
    :class:`~graphrec.models.interfaces.OwnParameterGroups`) gets exactly those groups;
    ``config.weight_decay`` is passed to it and stays the default of any group without its own.
    """
    if isinstance(model, OwnParameterGroups):
        params = [{**group, "params": [p for p in group["params"] if p.requires_grad]}
                  for group in model.parameter_groups(config.weight_decay)]
        params = [group for group in params if group["params"]]
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    if not params:  # a model with nothing to train (pop): one empty group, since torch refuses an empty list
        params = [{"params": []}]
    name = config.optimizer.lower()
    # The fused (single-kernel) Adam: same update, 3-4x faster per step on CPU for an
    # embedding table of Gowalla's size (10 ms against 39 ms for 4.5M parameters, one
    # thread), where the dense per-step update is a fifth of a LightGCN or UltraGCN step.
    fused = _fusable(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "sparse_adam":
        # Lazy Adam: only rows with a gradient this step move, so a step costs the batch's rows, not
        # the whole table; the first step equals Adam's. Needs sparse gradients (sampled mode).
        if config.weight_decay:
            raise ValueError("train.optimizer=sparse_adam has no weight decay: set train.weight_decay=0 (LightGCN's "
                             "L2 on the batch rows is model.reg_weight)")
        return LazyAdam(params, lr=config.lr)
    raise ValueError(f"unknown optimizer {config.optimizer!r}: use adam, adamw, sgd or sparse_adam")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load ``state`` but keep ``optimizer``'s implementation (fused / foreach).

    torch's ``load_state_dict`` copies every group option from the checkpoint, so a checkpoint
    written by a non-fused optimizer would silently switch the fused one back. The options
    say how to compute the update, not what it is: the current ones win. So does the configured
    base rate (``initial_lr``, from which the schedule sets each epoch's rate): resuming with the
    same config changes nothing, and resuming with ``--set train.lr=...`` really uses the new rate.
    """
    implementation = [{**{key: group[key] for key in ("fused", "foreach") if key in group},
                       "initial_lr": group.get("initial_lr", group["lr"])}
                      for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, keep in zip(optimizer.param_groups, implementation):
        group.update(keep)
        if group.get("fused"):  # the fused kernels want their step counters beside the parameters
            for param in group["params"]:
                param_state = optimizer.state.get(param, {})
                if torch.is_tensor(param_state.get("step")):
                    param_state["step"] = param_state["step"].to(param.device, torch.float32)


def _fusable(params: list) -> bool | None:
    """True when every parameter can take torch's fused Adam (floating point, on CPU or CUDA)."""
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    ok = bool(tensors) and all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)
    return True if ok else None  # None: torch's default implementation


class Trainer:
    """Fits a model on a :class:`Task` with evaluation, early stopping and exact resume.

    In the run folder: ``config.yaml``, ``metrics.jsonl`` (one JSON object per epoch and
    per evaluation), ``last.pt`` (everything needed to continue: model, optimizer, epoch,
    batch, early-stopping state, RNG), ``best.pt`` (the selected model), ``summary.json``
    and ``curves.png``. Checkpoints are written atomically; Ctrl-C or SIGTERM saves
    ``last.pt``, writes the summary (status ``interrupted``, the best so far) and returns
    cleanly; a NaN loss raises before the step is applied and leaves the last good
    checkpoint untouched.

    One writer per folder: ``fit`` holds ``run.lock`` (:mod:`graphrec.train.runlock`) while it
    runs, refuses a fresh start in a folder that already holds a run, and :meth:`resume`
    refuses a folder whose checkpoint is gone. ``verbose``: the start block, progress bars
    (plain lines when stderr is not a terminal) and one line per evaluation
    (:mod:`graphrec.train.progress`); False prints nothing.

    This is the only training loop: ``strategy`` (a :class:`~graphrec.train.strategy.TrainingStrategy`,
    default :class:`~graphrec.train.strategy.SingleProcess` over ``task`` and ``optimizer``) runs
    the steps, on this process or across ranks (:mod:`graphrec.parallel`); with several ranks only
    the strategy's writer touches the run folder.
    """

    def __init__(self, model: nn.Module, task: Task, config: TrainConfig, run_dir: str | Path | None = None,
                 run_config: dict | None = None, optimizer: torch.optim.Optimizer | None = None,
                 strategy: TrainingStrategy | None = None, verbose: bool = True):
        self.strategy = strategy or SingleProcess(model, task, optimizer or make_optimizer(model, config))
        self.model = model
        self.task = task
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.log = RunLog(self.run_dir) if self.run_dir is not None and self.strategy.is_writer else None
        self.run_config = run_config or {"train": dataclasses.asdict(config)}
        self.epoch = 0  # completed epochs
        self.step = 0  # completed batches of the current epoch
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.bad_evals = 0
        self.elapsed = 0.0
        self._stop_requested = False
        self._resumed = False
        self._eval_seconds: float | None = None  # the last evaluation's duration (the run's estimate)
        self._folder_opened = False  # checked (fresh or resumed) by an earlier fit() of this Trainer
        self.progress = Progress(verbose and self.strategy.is_writer)
        self.history: list[dict] = []
        self.monitor_history: list[float] = []  # every evaluated monitor value (window_mean stopping)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.strategy.optimizer

    # ----------------------------------------------------------------- control
    def request_stop(self) -> None:
        """Ask the loop to save and return after the current batch (what Ctrl-C does)."""
        self._stop_requested = True

    @property
    def last_path(self) -> Path | None:
        return self.strategy.checkpoint_path(self.run_dir) if self.run_dir else None

    @property
    def best_path(self) -> Path | None:
        return self.run_dir / "best.pt" if self.run_dir else None

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "run_config": self.run_config,
            **self.strategy.state_dict(),
            "epoch": self.epoch, "step": self.step,
            "best_value": self.best_value, "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics, "bad_evals": self.bad_evals,
            "elapsed": self.elapsed, "monitor_history": list(self.monitor_history),
            "torch_rng": torch.get_rng_state(),
            **({"task_state": task_state} if (task_state := self.task.state_dict()) else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.best_metrics = dict(state["best_metrics"])
        self.bad_evals = int(state["bad_evals"])
        self.elapsed = float(state["elapsed"])
        self.monitor_history = [float(v) for v in state.get("monitor_history", [])]
        torch.set_rng_state(state["torch_rng"])
        self.task.load_state_dict(state.get("task_state", {}))

    def resume(self, path: str | Path | None = None) -> None:
        """Continue from ``last.pt`` (or ``path``): the run proceeds exactly as if never stopped."""
        if path is not None:
            state = load_checkpoint(path)
        elif self.run_dir is not None:
            check_resumable(self.run_dir, self.last_path)
            state = self.strategy.read_checkpoint(self.run_dir)
        else:
            raise ValueError("resume needs a run folder or a checkpoint path")
        saved, own = (state.get("run_config") or {}).get("model"), self.run_config.get("model")
        if saved and own and saved != own:
            raise CheckpointError(f"checkpoint is for {saved}, not {own}: resume from a {own} checkpoint")
        self.load_state_dict(state)
        self._resumed = True  # fit() drops the metrics rows after this epoch once it holds the lock

    def save(self, path: Path | None = None, final: bool = True) -> None:
        """Write the checkpoint (``path``, else the strategy's place in the run folder; ``final``:
        the loop returns next, so a strategy that checkpoints every few epochs writes now too)."""
        if path is not None:
            save_checkpoint(self.state_dict(), path)
        elif self.run_dir is not None:
            self.strategy.write_checkpoint(self.state_dict(), self.run_dir, self.epoch, final)

    # ----------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        """Train until ``epochs``, early stopping, a time limit or a stop request.

        Raises :class:`~graphrec.train.runlock.RunFolderError` when another process writes the run
        folder, or when this is a fresh start in a folder that already holds a run.
        """
        lock = RunFolderLock(self.run_dir) if self.log is not None else None
        if lock is not None:
            lock.acquire()
        try:
            self._open_run_folder()
            return self._fit()
        finally:
            self.progress.close()
            if lock is not None:
                lock.release()

    def _open_run_folder(self) -> None:
        """A fresh start gets an unused folder; a continued run drops the rows it will redo."""
        if self.log is None or self._folder_opened:
            return
        if self._resumed or self.epoch or self.step:
            self.log.truncate_after(self.epoch)
        else:
            check_fresh_start(self.run_dir, self.last_path)
            self.log.write_config(self.run_config)
        self._folder_opened = True

    def _fit(self) -> dict[str, Any]:
        config = self.config
        status = "completed"
        self.progress.start(self._start_facts() if self.progress.verbose else {}, config.epochs, self.epoch)
        # the estimate follows the first whole epoch of this session
        first_epoch, self._eval_seconds = self.epoch + (2 if self.step else 1), None
        with _StopOnSignals(self):
            while self.epoch < config.epochs:
                status = self._run_epoch()
                if status != "running":
                    break
                if self._evaluation_due() and self._evaluate_and_select():
                    status = "early_stopped"
                if self.epoch == first_epoch and status == "running" and self.epoch < config.epochs:
                    self._print_estimate()
                stop, time_up = self.strategy.any_rank(
                    self._stop_requested, bool(config.time_limit_s) and self.elapsed >= config.time_limit_s)
                if status == "running":
                    status = ("interrupted" if stop else "time_limit" if time_up
                              else "completed" if self.epoch >= config.epochs else "running")
                self.save(final=status != "running")
                if status != "running":
                    break
        if status == "interrupted":
            return self._interrupted()
        return self._finish(status)

    def _start_facts(self) -> dict[str, Any]:
        """The start block: what runs, on what, how long, where."""
        config, described = self.config, self.task.describe()
        name = self.run_config.get("model") or type(self.model).__name__
        parameters = sum(p.numel() for p in self.model.parameters())
        data = described.get("data") or {}
        data_line = ", ".join(f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}"
                              for key, value in data.items() if key != "name")
        split = self.task.selection_split
        every = "every epoch" if config.eval_every == 1 else f"every {config.eval_every} epochs"
        cadence = (f"{every} on {split}, monitor {config.monitor} "
                   f"({config.monitor_mode}), " + (f"patience {config.patience}" if config.patience > 0
                                                   else "no early stopping"))
        facts = {
            "model": f"{name} ({parameters:,} parameters)",
            "data": f"{data.get('name', self.run_config.get('data', '?'))}: {data_line}" if data_line
            else self.run_config.get("data", "?"),
            "protocol": described.get("protocol", "?"),
            "epochs": f"{config.epochs}, {_plural(self.strategy.num_batches(), 'batch', 'batches')} each"
                      + (f" (time limit {config.time_limit_s:g} s)" if config.time_limit_s else ""),
            "evaluation": cadence,
            "device": config.device,
            "threads": "torch {}, numba {}".format(*_thread_counts()),
            "run folder": str(self.run_dir) if self.run_dir is not None else "none (nothing is written)",
        }
        if self.epoch or self.step:
            facts["resuming"] = f"after epoch {self.epoch}" + (f", batch {self.step}" if self.step else "")
        return facts

    def _print_estimate(self) -> None:
        config = self.config
        row = next((r for r in reversed(self.history) if r.get("split") == "train"), {})
        evals_left = sum(1 for e in range(self.epoch + 1, config.epochs + 1)
                         if e % config.eval_every == 0 or e == config.epochs)
        self.progress.estimate(row.get("seconds", 0.0), config.epochs - self.epoch, self._eval_seconds,
                               evals_left, config.time_limit_s, self.elapsed)

    def _interrupted(self) -> dict[str, Any]:
        """The summary of a stopped run: where it stopped and the best so far (no final evaluation)."""
        split = self.task.selection_split
        summary = {
            "status": "interrupted", "epoch": self.epoch, "step": self.step,
            "checkpoint": str(self.last_path) if self.last_path else None,
            "epochs_run": self.epoch, "best_epoch": self.best_epoch,
            "monitor": f"{split}/{self.config.monitor}", "selected_on": split,
            "results": {split: self.best_metrics} if self.best_epoch is not None else {},
            "train_seconds": round(self.elapsed, 2), "run_config": self.run_config, **self.task.describe(),
            **self.strategy.describe(), "hardware": _hardware(),
        }
        if self.log is not None:
            self.log.write_summary(summary)
            self.log.plot(self.config.monitor)
        best = (f"; best {split} {self.config.monitor} {self.best_value:.4f} at epoch {self.best_epoch}"
                if self.best_epoch is not None else "")
        self.progress.write(f"interrupted after epoch {self.epoch}" + (f", batch {self.step}" if self.step else "")
                            + best)
        return summary

    def _run_epoch(self) -> str:
        strategy = self.strategy
        self.model.train()
        lr = apply_lr(strategy.optimizer, self.config, self.epoch)
        total_loss, total_samples, batches = 0.0, 0, 0
        started = time.perf_counter()
        progress, num_batches = self.progress, strategy.num_batches()
        progress.epoch_start(self.epoch + 1, num_batches, self.step)
        for batch in strategy.batches(self.epoch, start=self.step):
            value = strategy.train_step(batch)
            if not math.isfinite(value):
                progress.epoch_abandoned()
                kept = (f"the last good checkpoint ({self.last_path}) is kept"
                        if self.last_path is not None and self.last_path.exists() else "no checkpoint was saved yet")
                raise NonFiniteLossError(
                    f"training loss is {value} at epoch {self.epoch + 1}, batch {self.step + 1}; {kept}. "
                    "Lower train.lr, check the input data, or resume from the checkpoint with other settings.")
            samples = strategy.batch_samples(batch)
            total_loss += value * samples
            total_samples += samples
            batches += 1
            self.step += 1
            rate = total_samples / max(time.perf_counter() - started, 1e-9)
            progress.batch_done(self.epoch + 1, self.step, num_batches, total_loss / max(total_samples, 1), rate,
                                refresh=batches % 10 == 0 or batches == 1)
            if strategy.stops_mid_epoch and self._stop_requested and self.step < num_batches:
                progress.epoch_abandoned()
                self.elapsed += time.perf_counter() - started
                self.save()
                return "interrupted"
        seconds = time.perf_counter() - started
        self.elapsed += seconds
        self.epoch += 1
        self.step = 0
        progress.epoch_end(self.epoch, total_loss / max(total_samples, 1), seconds)
        row = {"epoch": self.epoch, "split": "train", "loss": total_loss / max(total_samples, 1), "lr": lr,
               "seconds": round(seconds, 3), "samples_per_s": round(total_samples / max(seconds, 1e-9), 1),
               "elapsed_s": round(self.elapsed, 3)}
        self._record(row)
        return "running"

    def _evaluation_due(self) -> bool:
        return self.epoch % self.config.eval_every == 0 or self.epoch == self.config.epochs

    def _evaluate_and_select(self) -> bool:
        """Evaluate the selection split; returns True when patience has run out."""
        config, split = self.config, self.task.selection_split
        started = time.perf_counter()
        metrics = self.strategy.evaluate(split)
        if config.monitor not in metrics:
            raise KeyError(f"monitor '{config.monitor}' is not among the metrics {sorted(metrics)}; "
                           "set train.monitor to one of them")
        self._eval_seconds = time.perf_counter() - started
        row = {"epoch": self.epoch, "split": split, **metrics,
               "eval_seconds": round(self._eval_seconds, 3), "elapsed_s": round(self.elapsed, 3)}
        self._record(row)
        value = metrics[config.monitor]
        window = self.monitor_history[-config.patience:] if config.patience > 0 else []
        self.monitor_history.append(float(value))
        better = self.best_value is None or (
            value > self.best_value if config.monitor_mode == "max" else value < self.best_value)
        if better:
            self.best_value, self.best_epoch, self.best_metrics = value, self.epoch, metrics
            self.bad_evals = 0
            state = self.strategy.model_state()  # on every rank: gathering the model may be a collective
            saved = self.best_path is not None and self.strategy.is_writer
            if saved:
                save_checkpoint({"run_config": self.run_config, "model_state": state,
                                 "epoch": self.epoch, "metrics": metrics}, self.best_path)
            self.strategy.remember_best(saved)
        else:
            self.bad_evals += 1
        self.progress.evaluation(self.epoch, split, config.monitor, value, self.best_value, self.best_epoch)
        if config.early_stopping == "window_mean":
            if not window or self.epoch <= config.epochs // 2:
                return False
            mean = sum(window) / len(window)
            return value > mean if config.monitor_mode == "min" else value < mean
        return config.patience > 0 and self.bad_evals >= config.patience

    def _finish(self, status: str) -> dict[str, Any]:
        if self.best_epoch is None:
            self._evaluate_and_select()
        self.strategy.barrier()  # the writer's best.pt is complete before anyone reads it
        self.strategy.restore_best(self.best_path)
        results = {}
        for split in self.task.report_splits:
            results[split] = (self.best_metrics if split == self.task.selection_split
                              else self.strategy.evaluate(split))
        summary = {
            "status": status, "epochs_run": self.epoch, "best_epoch": self.best_epoch,
            "monitor": f"{self.task.selection_split}/{self.config.monitor}",
            "selected_on": self.task.selection_split, "results": results,
            "train_seconds": round(self.elapsed, 2), "run_config": self.run_config, **self.task.describe(),
            **self.strategy.describe(), "hardware": _hardware(),
        }
        for split, metrics in results.items():
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))
            self.progress.write(f"{status}: {split} at epoch {self.best_epoch}  {shown}")
        if self.log is not None:
            for split, metrics in results.items():
                if split != self.task.selection_split:
                    self.log.log(epoch=self.best_epoch, split=split, final=True, **metrics)
            self.log.write_summary(summary)
            self.log.plot(self.config.monitor)
        return summary

    def _record(self, row: dict) -> None:
        self.history.append(row)
        if self.log is not None:
            self.log.log(**row)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _thread_counts() -> tuple[int, int]:
    """torch's and numba's thread counts. Asking numba starts its pool, which resets torch's count
    to every core: the caller's torch setting is put back."""
    torch_threads = torch.get_num_threads()
    numba_threads = numba.get_num_threads()
    torch.set_num_threads(torch_threads)
    return torch_threads, numba_threads


def _hardware() -> dict:
    import os
    import platform

    torch_threads, numba_threads = _thread_counts()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch_threads, "numba_threads": numba_threads,
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


class _StopOnSignals:
    """Turns SIGINT/SIGTERM into ``trainer.request_stop()`` while the loop runs."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.trainer._stop_requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.trainer.progress.write(
            f"{signal.Signals(signum).name}: saving a checkpoint after this batch (again to abort)")
        self.trainer.request_stop()

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False
