"""Start N ranks on this machine (``graphrec fit --nproc N``), torchrun-compatible, with a watchdog.

Workers are plain subprocesses given torchrun's environment contract (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so the worker code path is
the same whether this launcher or ``torchrun --nproc-per-node N -m graphrec fit ...`` started it;
multi-node runs are torchrun's normal usage.

Faults, two layers:
    1. inside the workers, every communication has the process group's timeout and a closed
       connection fails at once (:class:`~graphrec.parallel.comm.PeerFailure`);
    2. here, the watchdog polls the workers; when one exits with an error (or is killed) the others
       get SIGTERM, then SIGKILL after ``grace_s``, and the launcher returns the first failure's exit
       code with a message naming the rank. No hang: the bound is the poll interval plus ``grace_s``.
    Training then resumes from the last complete checkpoint (``graphrec fit --resume RUN_DIR``).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_env(rank: int, world_size: int, port: int, threads: int | None = 1) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    if threads:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    return env


def launch(command: list[str], nproc: int, grace_s: float = 5.0, poll_s: float = 0.1,
           port: int | None = None, log=sys.stderr) -> int:
    """Run ``command`` (an argv list) as ``nproc`` ranks; 0 when all succeed, else the first failure's code."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    port = port or free_port()
    procs = [subprocess.Popen(command, env=worker_env(rank, nproc, port)) for rank in range(nproc)]
    failed: tuple[int, int] | None = None
    try:
        while True:
            codes = [proc.poll() for proc in procs]
            bad = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
            if bad:
                failed = bad[0]
                break
            if all(code == 0 for code in codes):
                return 0
            time.sleep(poll_s)
    except KeyboardInterrupt:
        failed = (-1, 130)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rank, code = failed
    who = "interrupted" if rank < 0 else f"rank {rank} exited with code {code}"
    print(f"graphrec launch: {who}; stopped the other {nproc - 1} rank(s). Resume with "
          "`graphrec fit --resume RUN_DIR` (same --nproc/--parallel).", file=log)
    return code if code > 0 else 1


def launch_module(module: str, args: list[str], nproc: int, **kwargs) -> int:
    """``python -m module args...`` as ``nproc`` ranks."""
    return launch([sys.executable, "-m", module, *args], nproc, **kwargs)


def distributed_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment variables (1 process without them)."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(backend: str = "", timeout_s: float = 60.0, device: str = "cpu") -> tuple[int, int, str]:
    """Join the default process group from the environment. Returns (rank, world_size, device).

    Backend: gloo on CPU, NCCL when ``device`` is CUDA (each rank takes GPU ``LOCAL_RANK``).
    ``timeout_s`` bounds every blocking operation: a dead or hung peer fails the others in bounded time.
    """
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    rank, world_size, local_rank = distributed_env()
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if device.startswith("cuda") else "gloo")
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s))
    return rank, world_size, device


if __name__ == "__main__":  # python -m graphrec.parallel.launch N module args...
    raise SystemExit(launch_module(sys.argv[2], sys.argv[3:], int(sys.argv[1])))
