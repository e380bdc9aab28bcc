"""Recording benchmark results: every result file says how it was produced and on what."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numba
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def hardware() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "numba_threads": numba.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_result(name: str, payload: dict, path: str | Path | None = None) -> Path:
    """Write ``results/<name>.json`` (or ``path``) with the command, hardware, date and commit added."""
    record = {"benchmark": name, "command": "python " + " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": git_commit(),
              "hardware": hardware(), **payload}
    path = Path(path) if path else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def print_and_save(record: dict, out: str | Path | None) -> None:
    """Print ``record`` as JSON and, when ``out`` is given, write it there (for scripts that name their file)."""
    text = json.dumps(record, indent=2) + "\n"
    print(text, end="")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)


def load_gowalla(data_dir: str | None):
    from graphrec.loaders import load_dataset

    return load_dataset("gowalla", data_dir=data_dir or os.environ.get("GRAPHREC_DATA"))
