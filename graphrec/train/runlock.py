"""One writer per run folder: a lock file holding the writer's pid, and checks that keep runs apart.

Two ``graphrec fit`` on the same folder would interleave ``metrics.jsonl`` and overwrite each
other's checkpoints; a fresh start in a folder that already holds a run would append to its files.
The Trainer takes :class:`RunFolderLock` for the whole of ``fit`` and refuses both cases with
:class:`RunFolderError` (a ``RuntimeError``: the CLI prints it as a one-line error).
"""
from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

LOCK_NAME = "run.lock"
#: files that mean "a run has written here" (besides the strategy's own checkpoint)
RUN_FILES = ("metrics.jsonl", "last.pt", "best.pt")


class RunFolderError(RuntimeError):
    """The run folder is in use by another writer, or holds a run this start would overwrite."""


class RunFolderLock:
    """``run.lock`` in the run folder, created atomically (``O_CREAT | O_EXCL``) with the pid and host.

    A lock whose pid is no longer alive on this host is stale (a killed run): it is taken over
    with a warning. So is one whose pid now belongs to another process (Linux: the lock records
    the boot and the process's start time, so a pid reused after a reboot is not mistaken for
    the writer). A lock from another host cannot be checked, so it is refused like a live one.
    Use as a context manager, or :meth:`acquire`/:meth:`release`.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False

    def acquire(self) -> "RunFolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                "process": process_identity(os.getpid())}
        for _ in range(2):  # a second try after taking over a stale lock
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
                if not self._is_stale(holder):
                    raise RunFolderError(self._busy_message(holder)) from None
                self._take_over(holder)
                continue
            with os.fdopen(handle, "w") as out:
                out.write(json.dumps(mine) + "\n")
            self.held = True
            return self
        raise RunFolderError(f"could not lock {self.path}: another process took it over at the same time")

    def release(self) -> None:
        if self.held:
            self.held = False
            if self._read().get("pid") == os.getpid():  # never remove a lock another writer took over
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunFolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def _read(self, path: Path | None = None) -> dict:
        try:
            return json.loads((path or self.path).read_text())
        except (OSError, ValueError):
            return {}  # unreadable or half-written: no pid to check

    def _is_stale(self, holder: dict) -> bool:
        pid = holder.get("pid")
        if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
            return False
        if not pid_alive(pid):
            return True
        recorded, current = holder.get("process"), process_identity(pid)
        return bool(recorded and current and recorded != current)  # the pid was reused

    def _take_over(self, holder: dict) -> None:
        # Move the stale lock aside under a unique name, then check it is the one we judged stale:
        # two processes taking over at once must not remove each other's fresh lock.
        aside = self.path.with_name(f".{LOCK_NAME}.stale.{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return  # someone else removed it; try to create ours
        moved = self._read(aside)
        if moved.get("pid") != holder.get("pid"):  # we moved a live writer's fresh lock: put it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            raise RunFolderError(self._busy_message(moved))
        aside.unlink(missing_ok=True)
        warnings.warn(f"{self.path}: taking over a stale lock of pid {holder['pid']} (no longer running; "
                      f"started {holder.get('started', '?')})", RuntimeWarning, stacklevel=4)

    def _busy_message(self, holder: dict) -> str:
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        since = f" since {holder['started']}" if holder.get("started") else ""
        return (f"run folder {self.path.parent} is in use by another run ({who}{since}); wait for it, stop it, "
                f"or choose another --run-dir. If that process is gone, delete {self.path}")


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this host (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would stop the process there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def process_identity(pid: int) -> str | None:
    """``<boot id>:<start time in clock ticks>`` of ``pid`` on Linux (None elsewhere or when unreadable):
    the same pid with another identity is another process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name, in parentheses, may hold spaces
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def run_files(run_dir: Path, checkpoint: Path | None = None) -> list[str]:
    """The files in ``run_dir`` that a run wrote (its metrics and checkpoints)."""
    names = [name for name in RUN_FILES if (run_dir / name).exists()]
    if checkpoint is not None and checkpoint.exists() and checkpoint.name not in names:
        names.append(str(checkpoint.relative_to(run_dir)) if checkpoint.is_relative_to(run_dir) else str(checkpoint))
    return names


def check_fresh_start(run_dir: Path, checkpoint: Path) -> None:
    """Refuse to start a new run where one already wrote its files (it would append to them)."""
    found = run_files(run_dir, checkpoint)
    if not found:
        return
    if checkpoint.exists():
        raise RunFolderError(f"run folder {run_dir} holds a run ({', '.join(found)}): pass --resume to continue "
                             "it or choose another --run-dir")
    raise RunFolderError(f"run folder {run_dir} holds a run ({', '.join(found)}) with no {checkpoint.name} to "
                         "resume from: choose another --run-dir, or delete the folder to start over")


def check_resumable(run_dir: Path, checkpoint: Path) -> None:
    """Refuse to resume from a missing checkpoint (starting over would mix two runs' files)."""
    if checkpoint.exists():
        return
    found = run_files(run_dir)
    if found:
        raise RunFolderError(f"cannot resume {run_dir}: its {checkpoint.name} is gone but {', '.join(found)} "
                             "remain; starting over would mix two runs. Choose another --run-dir, or delete "
                             "the folder to start over")
    raise RunFolderError(f"nothing to resume in {run_dir}: no {checkpoint.name} (start a new run with --run-dir)")
