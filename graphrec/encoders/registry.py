"""The encoder registry: one name -> a backbone builder, and :func:`create_encoder` over it and timm.

Native backbones (UniRepLKNet, VanillaNet, SimpleNet) register here with
``@register_encoder``. Any other name is looked up in timm (the optional ``graphrec[vision]``
extra), imported only when such a name is asked for, so the core package never needs it.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from graphrec.registry import Registry

VISION_EXTRA_HINT = "pip install graphrec[vision]"


@dataclass(frozen=True)
class EncoderEntry:
    """A native backbone: ``builder(**kwargs)`` returns an ``nn.Module`` whose ``forward_features``
    maps images ``(N, 3, H, W)`` to pooled features ``(N, num_features)``."""

    name: str
    builder: Callable[..., nn.Module]
    description: str = ""


_REGISTRY: Registry[EncoderEntry] = Registry("encoder")


def register_encoder(name: str, description: str = ""):
    """Function decorator: ``@register_encoder("vanillanet_5")`` on a ``(**kwargs) -> nn.Module`` builder."""

    def decorator(builder):
        summary = description or (builder.__doc__ or "").strip().split("\n")[0]
        _REGISTRY.add(name, EncoderEntry(name, builder, summary))
        return builder

    return decorator


def native_encoders() -> list[str]:
    """Names of the backbones graphrec implements itself (always available)."""
    _import_native()
    return _REGISTRY.names()


def available_encoders(pattern: str | None = None, include_timm: bool = True) -> list[str]:
    """Native names, plus timm's model names when timm is installed (``pattern``: a glob, e.g. ``"convnext*"``)."""
    import fnmatch

    names = native_encoders()
    if include_timm and timm_available():
        import timm

        names = names + [n for n in timm.list_models() if n not in names]
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def get_encoder_entry(name: str) -> EncoderEntry:
    _import_native()
    return _REGISTRY.get(name)


def timm_available() -> bool:
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


def build_backbone(name: str, pretrained: bool = False, **kwargs) -> tuple[nn.Module, str]:
    """``(backbone, source)``: a native backbone when ``name`` is registered, else timm's.

    ``timm/<name>`` forces timm. Unknown names list the closest native names (and, with timm
    installed, timm's); asking for a timm name without timm says how to install it.
    """
    _import_native()
    force_timm = name.startswith("timm/")
    model_name = name[len("timm/"):] if force_timm else name
    if not force_timm and model_name in _REGISTRY:
        if pretrained:
            raise ValueError(f"no pretrained weights are bundled for the native encoder '{name}'; load a "
                             "state_dict you trained into encoder.backbone, or use a timm model")
        return _REGISTRY.get(model_name).builder(**kwargs), "native"
    if not timm_available():
        close = difflib.get_close_matches(model_name, _REGISTRY.names(), n=3, cutoff=0.5)
        hint = f" Closest native encoders: {', '.join(close)}." if close else ""
        raise ImportError(f"encoder '{name}' is not a native graphrec encoder and timm is not installed: "
                          f"`{VISION_EXTRA_HINT}` for every timm model (native ones: "
                          f"{', '.join(_REGISTRY.names())}).{hint}")
    from graphrec.encoders.timm_backend import create_timm_backbone

    return create_timm_backbone(model_name, pretrained=pretrained, **kwargs), "timm"


_NATIVE_LOADED = False


def _import_native() -> None:
    # The native modules register on import; importing them here (not at package import)
    # keeps the registry complete whichever entry point is used first.
    global _NATIVE_LOADED
    if not _NATIVE_LOADED:
        _NATIVE_LOADED = True
        from graphrec.encoders import simplenet, unireplknet, vanillanet  # noqa: F401
