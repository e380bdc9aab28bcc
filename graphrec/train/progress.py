"""What a run prints while it trains: a start block, bars or plain lines, evaluations, an estimate.

On a terminal: an overall bar (epochs, with tqdm's ETA) above a per-epoch bar (batches). Elsewhere
(a pipe, a log file, a notebook's captured stream): no bars, one plain line per epoch and one every
``line_every_s`` seconds within a long epoch, so a log shows progress without carriage returns.
Everything goes to stderr (stdout stays for results, e.g. the CLI's JSON summary); ``verbose=False``
prints nothing.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm


class Progress:
    """The Trainer's output; every method is a no-op when not ``verbose``."""

    def __init__(self, verbose: bool = True, line_every_s: float = 60.0):
        self.verbose = verbose
        self.line_every_s = line_every_s
        self.run_bar: tqdm | None = None
        self.epoch_bar: tqdm | None = None
        self.epochs = 0
        self._last_line = 0.0
        self._epoch_started = 0.0
        self._run_started = 0.0
        self._first_epoch = 0

    @property
    def bars(self) -> bool:
        """Bars only where a terminal redraws them (looked up per run: tests and callers swap stderr)."""
        stream = sys.stderr
        return self.verbose and hasattr(stream, "isatty") and stream.isatty()

    def write(self, line: str) -> None:
        if not self.verbose:
            return
        if self.bars:
            tqdm.write(line, file=sys.stderr)  # above the bars, which are redrawn below
        else:
            print(line, file=sys.stderr, flush=True)

    # ----------------------------------------------------------------- the run
    def start(self, facts: dict[str, Any], epochs: int, first_epoch: int) -> None:
        """The start block (``facts``: label -> value) and, on a terminal, the overall bar."""
        self.epochs = epochs
        self._run_started, self._first_epoch = time.perf_counter(), first_epoch
        if not self.verbose:
            return
        width = max(len(label) for label in facts)
        self.write("\n".join(f"{label:<{width}}  {value}" for label, value in facts.items()))
        if self.bars:
            self.run_bar = tqdm(total=epochs, initial=first_epoch, desc="run", unit="epoch", position=0,
                                leave=True, dynamic_ncols=True, file=sys.stderr)

    def estimate(self, seconds_per_epoch: float, epochs_left: int, eval_seconds: float | None,
                 evals_left: int, time_limit_s: float, elapsed_s: float) -> None:
        """One line after the first epoch: how long the whole run should take."""
        total = seconds_per_epoch * epochs_left + (eval_seconds or 0.0) * evals_left
        detail = f"{_count(epochs_left, 'epoch')} at {_duration(seconds_per_epoch)}/epoch"
        if evals_left:
            detail += (f" + {_count(evals_left, 'evaluation')} at {_duration(eval_seconds)}"
                       if eval_seconds is not None else f"; {_count(evals_left, 'evaluation')} not timed yet")
        capped = ""
        if time_limit_s and elapsed_s + total > time_limit_s:
            total, capped = max(time_limit_s - elapsed_s, 0.0), " (capped by train.time_limit_s)"
        self.write(f"estimated run time: {_duration(elapsed_s + total)}, {_duration(total)} left{capped} "
                   f"({detail}; early stopping may end it sooner)")

    def evaluation(self, epoch: int, split: str, monitor: str, value: float, best_value: float | None,
                   best_epoch: int | None) -> None:
        self.write(f"epoch {epoch}/{self.epochs}  {split} {monitor} {value:.4f}  "
                   f"best {best_value:.4f} (epoch {best_epoch})")

    def close(self) -> None:
        for bar in (self.epoch_bar, self.run_bar):
            if bar is not None:
                bar.close()
        self.epoch_bar = self.run_bar = None

    # ----------------------------------------------------------------- one epoch
    def epoch_start(self, epoch: int, batches: int, first_batch: int) -> None:
        """``epoch``: the 1-based number of the epoch starting."""
        self._epoch_started = self._last_line = time.perf_counter()
        if self.bars:
            self.epoch_bar = tqdm(total=batches, initial=first_batch, desc=f"epoch {epoch}", unit="batch",
                                  position=1, leave=False, dynamic_ncols=True, file=sys.stderr)

    def batch_done(self, epoch: int, batch: int, batches: int, loss: float, samples_per_s: float,
                   refresh: bool) -> None:
        """After ``batch`` (1-based) of ``batches``; ``refresh``: update the shown loss and rate."""
        if self.epoch_bar is not None:
            self.epoch_bar.update(1)
            if refresh:
                self.epoch_bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{samples_per_s:,.0f}")
        elif self.verbose and not self.bars and time.perf_counter() - self._last_line >= self.line_every_s:
            self._last_line = time.perf_counter()
            self.write(f"epoch {epoch}/{self.epochs}  batch {batch}/{batches}  loss {loss:.4f}  "
                       f"{samples_per_s:,.0f} samples/s  {_duration(self._last_line - self._epoch_started)}")

    def epoch_end(self, epoch: int, loss: float, seconds: float) -> None:
        """``epoch`` completed: advance the overall bar, or print the epoch's plain line."""
        if self.epoch_bar is not None:
            self.epoch_bar.close()
            self.epoch_bar = None
        if self.run_bar is not None:
            self.run_bar.update(1)
            self.run_bar.set_postfix(loss=f"{loss:.4f}")
        elif self.verbose:
            # wall time per epoch in this session, evaluations included
            rate = (time.perf_counter() - self._run_started) / max(epoch - self._first_epoch, 1)
            self.write(f"epoch {epoch}/{self.epochs}  loss {loss:.4f}  {_duration(seconds)}/epoch  "
                       f"ETA {_duration(rate * (self.epochs - epoch))}")

    def epoch_abandoned(self) -> None:
        if self.epoch_bar is not None:
            self.epoch_bar.close()
            self.epoch_bar = None


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _duration(seconds: float | None) -> str:
    """``3h 05m``, ``4m 10s``, ``12.3 s``, ``0.42 s``."""
    if seconds is None:
        return "?"
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24:02d}h"
