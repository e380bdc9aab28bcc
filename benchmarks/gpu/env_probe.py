"""Versions, paths and the device attributes zero-copy depends on, as JSON (stdout and ``argv[1]``).

    python benchmarks/gpu/env_probe.py OUT.json
"""
from __future__ import annotations

import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version

#: CUDA device attributes that decide whether a pinned host table can be read in place
ZERO_COPY_ATTRIBUTES = ("CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM", "HOST_REGISTER_READ_ONLY_SUPPORTED",
                        "PAGEABLE_MEMORY_ACCESS", "PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES",
                        "CAN_MAP_HOST_MEMORY", "UNIFIED_ADDRESSING", "HOST_REGISTER_SUPPORTED")


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def probe() -> dict:
    import numba
    import torch

    info = {"python": sys.version.split()[0], "executable": sys.executable, "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "numba": numba.__version__, "numba_cuda": package_version("numba-cuda"),
            "torch_geometric": package_version("torch-geometric"), "pymetis": package_version("pymetis")}
    try:
        import graphrec
        import graphrec.kernels.cuda_gather as cuda_gather

        info["graphrec_file"] = graphrec.__file__
        cuda_gather.locate_cuda_toolkit()
        info["CUDA_HOME"] = os.environ.get("CUDA_HOME")
    except Exception as error:  # recorded, not fatal: the probe reports what it finds
        info["numba_cuda_import_error"] = repr(error)
    if not torch.cuda.is_available():
        return info
    properties = torch.cuda.get_device_properties(0)
    info.update(gpu=properties.name, sm=f"{properties.major}.{properties.minor}",
                gpu_mem_gb=round(properties.total_memory / 2**30, 1),
                multiprocessors=properties.multi_processor_count, device_count=torch.cuda.device_count())
    try:
        from numba import cuda

        device = cuda.get_current_device()
        for name in ZERO_COPY_ATTRIBUTES:
            try:
                info["attr_" + name] = int(getattr(device, name))
            except Exception as error:
                info["attr_" + name] = f"n/a ({type(error).__name__})"
        info["numba_cc"] = list(device.compute_capability)
    except Exception as error:
        info["numba_device_error"] = repr(error)
    try:
        from numba.cuda.cudadrv.libs import get_cudalib

        info["nvvm_lib"] = get_cudalib("nvvm")
    except Exception as error:
        info["nvvm_lib"] = repr(error)[:300]
    return info


if __name__ == "__main__":
    result = probe()
    print(json.dumps(result, indent=1))
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as handle:
            json.dump(result, handle, indent=1)
