"""Turning a user's device string into a ``torch.device`` that exists, or a clear error."""
from __future__ import annotations

import torch


class DeviceUnavailableError(ValueError):
    """The requested device is not on this machine."""


def resolve_device(spec: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a device this machine has.

    Fails before any data is read, with the fix, instead of deep inside the first ``.to()``.
    """
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise DeviceUnavailableError(f"device {spec!r} is not a device name: use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceUnavailableError(f"device {spec!r}: graphrec runs on cpu or cuda")
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__} was built without CUDA" if torch.version.cuda is None else \
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no CUDA device or driver"
        raise DeviceUnavailableError(f"device {spec!r} was asked for, but {build}: use --device cpu "
                                     "(or --set train.device=cpu), or install a CUDA build of torch on a GPU machine")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceUnavailableError(f"device {spec!r}: this machine has {count} CUDA device(s), "
                                     f"cuda:0 to cuda:{count - 1}")
    return device
