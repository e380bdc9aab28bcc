"""Typed run configuration: dataclasses, paper defaults, YAML files and ``key=value`` overrides.

Precedence (lowest first): dataclass defaults < the model's paper defaults <
its per-dataset defaults < ``--config file.yaml`` < ``--set key=value``.
Unknown keys are errors that list the closest valid keys.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    """How a model is trained and selected (shared by every model and task)."""

    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    #: learning-rate schedule over epochs (graphrec.train.schedule): "constant", "cosine"
    #: (down to ``lr_min`` over ``lr_decay_epochs``, 0: over ``epochs``) or "step" (times
    #: ``lr_gamma`` at each of ``lr_milestones``, in completed epochs)
    lr_schedule: str = "constant"
    lr_min: float = 0.0
    lr_decay_epochs: int = 0
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    optimizer: str = "adam"
    eval_every: int = 10
    patience: int = 10
    monitor: str = "recall@20"
    monitor_mode: str = "max"
    ks: tuple[int, ...] = (20,)
    protocol: str = "validation"
    valid_fraction: float = 0.1
    seed: int = 2020
    user_sampling: str = "uniform"
    num_negatives: int = 1
    max_batches_per_epoch: int = 0
    time_limit_s: float = 0.0
    eval_chunk_size: int = 256
    device: str = "cpu"
    #: CPU threads for torch and for graphrec's numba kernels alike (0: their defaults, every core)
    num_threads: int = 0
    # One negative set per batch, uniform over all items, shared by the batch's rows
    # (UltraGCN-style negative sharing); off: num_negatives per positive.
    shared_negatives: bool = False
    #: early-stopping rule. "patience": stop after ``patience`` evaluations without a new best.
    #: "window_mean" (the DAGNN/APPNP official code): once more than half of ``epochs`` have run,
    #: stop at the first evaluation whose monitor is worse than the mean of the ``patience``
    #: evaluations before it.
    early_stopping: str = "patience"
    #: node classification: "public" (the dataset's own split), "random" (seeded by ``seed``:
    #: 20 per class for train, then 500 valid and 1000 test from the rest) or "stratified"
    #: (seeded by ``seed``: ``split_fractions`` of every class, e.g. CatGCN's 80/10/10)
    #: Datasets that ship labels-per-class splits (HeCo's ACM/Freebase: 20, 40, 60) also take that
    #: count, e.g. "20"; "public" is then their first (20).
    split: str = "public"
    #: node classification: scale every node's features to sum to 1 (GCN/DAGNN preprocessing)
    normalize_features: bool = True
    #: node classification, split "stratified": fractions of every class's labelled nodes for
    #: train, valid, test (seeded by ``seed``; unlabelled nodes, y = -1, are in no split)
    split_fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    #: node classification: weight the cross-entropy by n / (C * count_c) over the train labels
    #: (CatGCN's "weight balanced" NLL); valid/test losses use the same weights
    class_weighted_loss: bool = False
    #: "full": every step propagates over the whole graph; "sampled": each minibatch propagates
    #: only over the sampled K-hop neighbourhood of its nodes (graphrec.train.sampled_*: LightGCN
    #: on BPR triples, CatGCN on its train nodes), so training memory follows the subgraph
    mode: str = "full"
    #: mode "sampled": neighbours per hop, one per propagation layer (-1: all); empty: all, every hop
    fanouts: tuple[int, ...] = ()
    #: mode "sampled": edge weights on the subgraph, "unbiased" (full-graph degrees, rescaled by
    #: degree / sampled: exact with every neighbour), "full" or "subgraph" (graphrec.models.subgraph)
    subgraph_normalization: str = "unbiased"
    #: mode "sampled": threads sampling whole batches ahead (same batches for any count)
    sampler_workers: int = 0

    def __post_init__(self):
        if self.protocol not in ("validation", "paper"):
            raise ValueError(f"protocol must be 'validation' or 'paper', got {self.protocol!r}")
        if self.monitor_mode not in ("max", "min"):
            raise ValueError(f"monitor_mode must be 'max' or 'min', got {self.monitor_mode!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("epochs, batch_size and eval_every must be >= 1")
        if self.lr_schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"lr_schedule must be 'constant', 'cosine' or 'step', got {self.lr_schedule!r}")
        if self.lr <= 0 or not 0 <= self.lr_min <= self.lr or self.lr_decay_epochs < 0 or self.lr_gamma <= 0:
            raise ValueError("need lr > 0, 0 <= lr_min <= lr, lr_decay_epochs >= 0 and lr_gamma > 0, got "
                             f"lr={self.lr}, lr_min={self.lr_min}, lr_decay_epochs={self.lr_decay_epochs}, "
                             f"lr_gamma={self.lr_gamma}")
        if self.early_stopping not in ("patience", "window_mean"):
            raise ValueError(f"early_stopping must be 'patience' or 'window_mean', got {self.early_stopping!r}")
        if self.split not in ("public", "random", "stratified") and not str(self.split).isdigit():
            raise ValueError(f"split must be 'public', 'random', 'stratified' or a labels-per-class count the "
                             f"dataset ships (e.g. '20' for ACM: train.split=20), got {self.split!r}")
        if len(self.split_fractions) != 3 or min(self.split_fractions) < 0 or sum(self.split_fractions) > 1 + 1e-9:
            raise ValueError(f"split_fractions must be three fractions (train, valid, test) summing to at most 1, "
                             f"got {self.split_fractions!r}")
        if self.mode not in ("full", "sampled"):
            raise ValueError(f"mode must be 'full' or 'sampled', got {self.mode!r}")
        if self.subgraph_normalization not in ("unbiased", "full", "subgraph"):
            raise ValueError("subgraph_normalization must be 'unbiased', 'full' or 'subgraph', "
                             f"got {self.subgraph_normalization!r}")
        if any(int(f) == 0 or int(f) < -1 for f in self.fanouts):
            raise ValueError(f"fanouts must be positive or -1 (all neighbours), got {self.fanouts!r}")


@dataclass
class RunConfig:
    """One training run: which model on which data, with what settings."""

    model: str
    data: str
    data_dir: str | None = None
    model_config: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)
    #: image node features (``--node-encoder NAME --images PATH``, graphrec.encoders): backbone name,
    #: images (a folder named by node id or a node,path table) and "frozen" or "end_to_end"
    node_encoder: str | None = None
    images: str | None = None
    node_encoder_mode: str = "frozen"

    def to_dict(self) -> dict:
        out = {
            "model": self.model, "data": self.data, "data_dir": self.data_dir,
            "model_config": dataclasses.asdict(self.model_config) if self.model_config is not None else {},
            "train": dataclasses.asdict(self.train),
        }
        if self.node_encoder:   # only when used: runs without images keep their exact config files
            out.update(node_encoder=self.node_encoder, images=self.images, node_encoder_mode=self.node_encoder_mode)
        return out


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message says which and suggests fixes."""


def build_run_config(model: str, data: str, data_dir: str | None = None, config_file: str | None = None,
                     overrides: dict[str, Any] | None = None) -> RunConfig:
    """Resolve a run's configuration through all layers of defaults and overrides."""
    from graphrec.models import get_model_entry

    entry = get_model_entry(model)
    settings: dict[str, Any] = {f"train.{k}": v for k, v in entry.train_defaults.items()}
    settings.update(entry.dataset_defaults.get(data, {}))
    if config_file:
        settings.update(_flatten(load_yaml(config_file)))
    settings.update(overrides or {})

    model_config = entry.config_cls()
    train = TrainConfig()
    targets = {"model": model_config, "train": train}
    for key, value in settings.items():
        section, name = _resolve_key(key, targets)
        _set_field(targets[section], name, value, f"{section}.{name}")
    # Re-run validation now that values are set.
    train.__post_init__()
    if hasattr(model_config, "__post_init__"):
        model_config.__post_init__()
    return RunConfig(model=model, data=data, data_dir=data_dir, model_config=model_config, train=train)


def run_config_from_dict(raw: dict) -> RunConfig:
    """Inverse of :meth:`RunConfig.to_dict` (used when resuming or loading checkpoints)."""
    overrides = {f"model.{k}": v for k, v in raw.get("model_config", {}).items()}
    overrides.update({f"train.{k}": v for k, v in raw.get("train", {}).items()})
    config = build_run_config(raw["model"], raw["data"], raw.get("data_dir"), overrides=overrides)
    if raw.get("node_encoder"):
        config.node_encoder, config.images = raw["node_encoder"], raw.get("images")
        config.node_encoder_mode = raw.get("node_encoder_mode", "frozen")
    return config


def load_yaml(path: str | Path) -> dict:
    try:
        with open(path) as handle:
            content = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return content


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.lr=0.01", "model.num_layers=2"]`` -> dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.lr=0.01)")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def _flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in mapping.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{full}."))
        else:
            out[full] = value
    return out


def _resolve_key(key: str, targets: dict[str, Any]) -> tuple[str, str]:
    """``train.lr`` -> ("train", "lr"); a bare ``lr`` works when only one section has it."""
    all_keys = [f"{s}.{f.name}" for s, obj in targets.items() for f in dataclasses.fields(obj)]
    if "." in key:
        section, name = key.split(".", 1)
        if section in targets and name in {f.name for f in dataclasses.fields(targets[section])}:
            return section, name
    else:
        owners = [s for s, obj in targets.items() if key in {f.name for f in dataclasses.fields(obj)}]
        if len(owners) == 1:
            return owners[0], key
        if len(owners) > 1:
            raise ConfigError(f"key '{key}' is ambiguous: use one of {[f'{o}.{key}' for o in owners]}")
    close = difflib.get_close_matches(key, all_keys, n=3, cutoff=0.4)
    close += [k for k in difflib.get_close_matches(key.split(".")[-1], [k.split(".", 1)[1] for k in all_keys], n=3, cutoff=0.6)]
    hint = f" Did you mean: {', '.join(dict.fromkeys(close))}?" if close else ""
    raise ConfigError(f"unknown config key '{key}'.{hint} Valid keys: {', '.join(all_keys)}")


def _set_field(obj, name: str, value, label: str) -> None:
    hints = typing.get_type_hints(type(obj))
    setattr(obj, name, _coerce(value, hints.get(name, Any), label))


def _coerce(value, annotation, label: str):
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, label)
            except ConfigError:
                continue
        raise ConfigError(f"{label}: cannot use {value!r} as {annotation}")
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, label) for v in items)
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label}: expected {annotation.__name__}, got {value!r}") from None
    return value
