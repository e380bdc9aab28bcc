"""timm backbones (the optional ``graphrec[vision]`` extra), imported only when a timm name is asked for.

Weights are never downloaded: ``pretrained=True`` loads them only from a local file (``weights_file=``)
or from the local Hugging Face / torch-hub caches where timm would find them, and otherwise fails
with an error that says where to put the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from graphrec.encoders.registry import VISION_EXTRA_HINT


def _timm():
    try:
        import timm
    except ImportError as error:
        raise ImportError(f"timm backbones need the vision extra: `{VISION_EXTRA_HINT}` ({error})") from None
    return timm


class TimmBackbone(nn.Module):
    """A timm model built with ``num_classes=0``: ``forward_features(images) -> (N, num_features)``
    pooled pre-logits features (timm's own pooling), plus the normalisation its weights expect."""

    def __init__(self, model: nn.Module, name: str, weights_tag: str):
        super().__init__()
        self.model = model
        self.name = name
        self.weights_tag = weights_tag
        # With num_classes=0, timm's forward returns the pre-logits: head_hidden_size wide when the
        # model has a hidden head layer (MobileNetV3, ...), num_features wide otherwise.
        self.num_features = int(getattr(model, "head_hidden_size", None) or model.num_features)
        cfg = dict(getattr(model, "pretrained_cfg", None) or {})
        self.mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
        self.input_size = tuple(cfg.get("input_size", (3, 224, 224)))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def local_weights(name: str) -> Path | None:
    """The file timm would load for ``name``'s default pretrained tag, if it is already on this
    machine (Hugging Face hub cache, then torch hub checkpoints); None otherwise. Never downloads."""
    timm = _timm()
    cfg = timm.models.get_pretrained_cfg(name) if hasattr(timm.models, "get_pretrained_cfg") else None
    if cfg is None:
        return None
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    if cfg.get("file") and Path(cfg["file"]).is_file():
        return Path(cfg["file"])
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo, _, revision = hub_id.partition("@")
            for filename in (cfg.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin"):
                if filename:
                    found = try_to_load_from_cache(repo, filename, revision=revision or None)
                    if isinstance(found, str) and os.path.isfile(found):
                        return Path(found)
    url = cfg.get("url")
    if url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
        if candidate.is_file():
            return candidate
    return None


def create_timm_backbone(name: str, pretrained: bool = False, weights_file: str | None = None,
                         **kwargs) -> TimmBackbone:
    """``timm.create_model(name, num_classes=0, ...)`` with weights from local files only."""
    timm = _timm()
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        raise KeyError(f"unknown encoder '{name}': neither a native graphrec encoder nor a timm model."
                       + (f" Did you mean {', '.join(close)}?" if close else "")
                       + " See graphrec.encoders.available_encoders('pattern*').")
    overlay = {}
    weights_tag = "random-init"
    if weights_file is not None or pretrained:
        path = Path(weights_file) if weights_file is not None else local_weights(name)
        if path is None or not path.is_file():
            where = f"{weights_file}" if weights_file is not None else (
                "the Hugging Face cache ($HF_HOME/hub) or torch hub checkpoints "
                f"({Path(torch.hub.get_dir()) / 'checkpoints'})")
            raise FileNotFoundError(f"no local pretrained weights for timm model '{name}' (looked in {where}); "
                                    "graphrec never downloads weights: put the file there or pass "
                                    "weights_file=PATH, or use pretrained=False")
        overlay = {"file": str(path)}
        pretrained = True
        cfg = getattr(timm.models.get_pretrained_cfg(name), "tag", None) if hasattr(
            timm.models, "get_pretrained_cfg") else None
        weights_tag = f"{name}.{cfg}" if cfg else str(path.name)
    model = timm.create_model(name, pretrained=pretrained, num_classes=0,
                              **({"pretrained_cfg_overlay": overlay} if overlay else {}), **kwargs)
    return TimmBackbone(model, name, weights_tag)


def list_timm_models(pattern: str = "*") -> list[str]:
    return _timm().list_models(pattern)
