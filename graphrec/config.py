"""Typed run configuration: one dataclass per section, recipes, YAML files and ``key=value`` overrides.

A run's settings are five sections, each reachable the same three ways (a YAML file
``{section: {key: value}}``, ``--set section.key=value``, or the Python dataclass):

- ``train``: optimisation (optimizer, lr and its schedule, weight decay, batch size), epochs,
  evaluation cadence and selection (``eval_every``, ``monitor``, ``patience``, early stopping),
  the evaluation protocol and split, and runtime (seed, device, threads, time limit).
- ``sampling``: how training examples and neighbourhoods are drawn (``mode`` full/sampled,
  fan-outs, subgraph edge weights, negatives, user sampling, sampler threads).
- ``parallel``: how a run is spread over ranks (``mode``, ``nproc``, pipeline stages and chunks,
  staleness, warm-up, backend, timeout; :mod:`graphrec.parallel`).
- ``encoder``: image node features (backbone ``name``, ``images``, ``mode``; :mod:`graphrec.encoders`).
- ``model``: the model's hyper-parameters, a dataclass derived from its constructor
  (:mod:`graphrec.models.registry`), so defaults are written once.

Task-specific settings (recommendation: ``protocol``, ``valid_fraction``, ``ks``; node
classification: ``split``, ``split_fractions``, ``normalize_features``, ``class_weighted_loss``)
stay in ``train``: sections follow *what* is configured (optimisation and evaluation, sampler,
ranks, encoder, model), not which task reads it, so a key never changes section with the model.
A task ignores the keys of the other task.

Precedence (lowest first): dataclass defaults < the model's paper recipe < its per-dataset recipe
(both in :mod:`graphrec.recipes`) < ``--config file.yaml`` < ``--set key=value``. Unknown keys are
errors that list the closest valid keys; a key that moved section (``train.fanouts``) names its new
place. Saved run configs of older versions are read with moved keys mapped to their new place.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    """The ``train`` section: optimisation, schedule, evaluation, selection and runtime."""

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
    #: "adam", "adamw", "sgd", or "sparse_adam" (lazy Adam on sparse gradients: sampling.mode=sampled)
    optimizer: str = "adam"
    eval_every: int = 10
    patience: int = 10
    monitor: str = "recall@20"
    monitor_mode: str = "max"
    #: early-stopping rule. "patience": stop after ``patience`` evaluations without a new best.
    #: "window_mean" (the DAGNN/APPNP official code): once more than half of ``epochs`` have run,
    #: stop at the first evaluation whose monitor is worse than the mean of the ``patience``
    #: evaluations before it.
    early_stopping: str = "patience"
    #: recommendation: ranking cut-offs of the evaluation
    ks: tuple[int, ...] = (20,)
    eval_chunk_size: int = 256
    #: recommendation: "validation" (select on a validation split, report test once) or "paper"
    protocol: str = "validation"
    #: recommendation, protocol "validation": share of each user's train items held out
    valid_fraction: float = 0.1
    #: node classification: "public" (the dataset's own split), "random" (seeded by ``seed``:
    #: 20 per class for train, then 500 valid and 1000 test from the rest) or "stratified"
    #: (seeded by ``seed``: ``split_fractions`` of every class, e.g. CatGCN's 80/10/10)
    #: Datasets that ship labels-per-class splits (HeCo's ACM/Freebase: 20, 40, 60) also take that
    #: count, e.g. "20"; "public" is then their first (20).
    split: str = "public"
    #: node classification, split "stratified": fractions of every class's labelled nodes for
    #: train, valid, test (seeded by ``seed``; unlabelled nodes, y = -1, are in no split)
    split_fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    #: node classification: scale every node's features to sum to 1 (GCN/DAGNN preprocessing)
    normalize_features: bool = True
    #: node classification: weight the cross-entropy by n / (C * count_c) over the train labels
    #: (CatGCN's "weight balanced" NLL); valid/test losses use the same weights
    class_weighted_loss: bool = False
    seed: int = 2020
    max_batches_per_epoch: int = 0
    time_limit_s: float = 0.0
    device: str = "cpu"
    #: CPU threads for torch and for graphrec's numba kernels alike (0: their defaults, every core)
    num_threads: int = 0

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


@dataclass
class SamplingConfig:
    """The ``sampling`` section: how batches, negatives and neighbourhoods are drawn."""

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
    #: mode "sampled", recommendation: with fewer fan-outs than layers, the layers past the sampled
    #: hops come from a full-graph propagation (no autograd) repeated this many times per epoch:
    #: historical layers, epoch time linear in the data (docs/scaling.md). 0: every layer sampled
    history_refreshes: int = 0
    #: recommendation: a triple's user is drawn "uniform" over users or by "interaction" (every
    #: train interaction once per epoch)
    user_sampling: str = "uniform"
    #: recommendation: negatives per positive
    num_negatives: int = 1
    #: recommendation: one negative set per batch, uniform over all items, shared by the batch's rows
    #: (UltraGCN-style negative sharing); off: ``num_negatives`` per positive
    shared_negatives: bool = False

    def __post_init__(self):
        if self.mode not in ("full", "sampled"):
            raise ValueError(f"sampling mode must be 'full' or 'sampled', got {self.mode!r}")
        if self.subgraph_normalization not in ("unbiased", "full", "subgraph"):
            raise ValueError("subgraph_normalization must be 'unbiased', 'full' or 'subgraph', "
                             f"got {self.subgraph_normalization!r}")
        if any(int(f) == 0 or int(f) < -1 for f in self.fanouts):
            raise ValueError(f"fanouts must be positive or -1 (all neighbours), got {self.fanouts!r}")
        if self.user_sampling not in ("uniform", "interaction"):
            raise ValueError(f"user_sampling must be 'uniform' or 'interaction', got {self.user_sampling!r}")
        if self.num_negatives < 1 or self.sampler_workers < 0:
            raise ValueError("num_negatives must be >= 1 and sampler_workers >= 0")
        if self.history_refreshes < 0:
            raise ValueError(f"history_refreshes must be >= 0 (0: off), got {self.history_refreshes}")
        if self.history_refreshes and self.mode != "sampled":
            raise ValueError("sampling.history_refreshes needs sampling.mode=sampled (with fewer fan-outs than "
                             "layers, e.g. sampling.fanouts=[10])")


#: ``parallel.mode``: "none" (one process), "ddp" (data-parallel recommenders) or a
#: :class:`~graphrec.parallel.PipelineEngine` layout ("single": the engine on one process)
PARALLEL_MODES = ("none", "ddp", "single", "pipe", "graph", "hybrid")


@dataclass
class ParallelConfig:
    """The ``parallel`` section: how a run is spread over ranks (see :mod:`graphrec.parallel`)."""

    mode: str = "none"
    #: ranks started on this machine (as ``torchrun --nproc-per-node``); 1: run in this process
    nproc: int = 1
    #: pipeline stages in hybrid mode (pipe: world size; graph/single: 1)
    stages: int = 2
    #: chunks per partition flowing through the pipeline (graph mode: always 1)
    chunks: int = 4
    #: False: one chunk, no history (exact). True: ``chunks`` chunks with historical embeddings
    staleness: bool = True
    warmup_epochs: int = 0
    #: epochs from this one on (0-based; 0 = never) run the exact one-chunk schedule: a staleness-free
    #: finish, so the selected weights are fine-tuned without historical embeddings
    exact_from_epoch: int = 0
    #: permute the chunk order every epoch (seeded by seed and epoch)
    shuffle_chunks: bool = True
    metis_seed: int = 0
    #: "" = gloo on CPU, nccl on CUDA
    backend: str = ""
    #: every blocking communication fails after this many seconds (dead or hung peer)
    timeout_s: float = 60.0

    def __post_init__(self):
        if self.mode not in PARALLEL_MODES:
            raise ValueError(f"parallel mode {self.mode!r} is not one of {', '.join(PARALLEL_MODES)}")
        if self.chunks < 1 or self.stages < 1 or self.warmup_epochs < 0 or self.timeout_s <= 0 or self.nproc < 1:
            raise ValueError("chunks, stages and nproc must be >= 1, warmup_epochs >= 0 and timeout_s > 0")

    @property
    def enabled(self) -> bool:
        """Whether the run goes through :mod:`graphrec.parallel` (a mode, or more than one rank)."""
        return self.mode != "none" or self.nproc > 1

    def layout(self, world_size: int) -> tuple[int, int]:
        """(stages, parts) of the pipeline engine for ``world_size`` ranks."""
        if self.mode == "single":
            if world_size != 1:
                raise ValueError("mode 'single' runs on one process")
            return 1, 1
        if self.mode == "pipe":
            return world_size, 1
        if self.mode == "graph":
            return 1, world_size
        if self.mode != "hybrid":
            raise ValueError(f"parallel mode {self.mode!r} has no pipeline layout: use pipe, graph or hybrid "
                             "(--parallel) for node classification")
        if world_size % self.stages:
            raise ValueError(f"hybrid: world size {world_size} is not a multiple of stages={self.stages}")
        return self.stages, world_size // self.stages

    def num_chunks(self) -> int:
        return 1 if self.mode in ("graph", "single") or not self.staleness else self.chunks


@dataclass
class EncoderConfig:
    """The ``encoder`` section: image node features (:mod:`graphrec.encoders`); off without ``name``.

    Recommenders get item image features; node classifiers ``[x, f(images)]``.
    """

    #: image backbone (native unireplknet_*/vanillanet_*/simplenet*, or a timm model name)
    name: str | None = None
    #: a folder of images named by node id (<id>.png, ...) or a CSV/TSV of node,path
    images: str | None = None
    #: "frozen" (encode once, cached on disk) or "end_to_end" (train the backbone)
    mode: str = "frozen"
    #: load the backbone's pretrained weights (timm models)
    pretrained: bool = False
    #: images per encoder forward
    batch_size: int = 64

    def __post_init__(self):
        if bool(self.name) != bool(self.images):
            raise ValueError("--node-encoder and --images go together (encoder.name and encoder.images: "
                             "a backbone name and an image folder/table)")
        if self.mode not in ("frozen", "end_to_end"):
            raise ValueError(f"encoder.mode must be 'frozen' or 'end_to_end', got {self.mode!r}")
        if self.batch_size < 1:
            raise ValueError("encoder.batch_size must be >= 1")


#: section name -> its dataclass (``model`` is per model, from the registry)
SECTIONS: dict[str, type] = {"train": TrainConfig, "sampling": SamplingConfig, "parallel": ParallelConfig,
                             "encoder": EncoderConfig}

#: keys that moved section, old -> new (user input naming the old key is refused with the new one;
#: saved run configs are mapped)
MOVED_KEYS = {
    **{f"train.{name}": f"sampling.{name}" for name in (
        "mode", "fanouts", "subgraph_normalization", "sampler_workers", "user_sampling", "num_negatives",
        "shared_negatives")},
    "node_encoder": "encoder.name", "images": "encoder.images", "node_encoder_mode": "encoder.mode",
}


@dataclass
class RunConfig:
    """One training run: which model on which data, with what settings."""

    model: str
    data: str
    data_dir: str | None = None
    model_config: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "data": self.data, "data_dir": self.data_dir,
            "model_config": dataclasses.asdict(self.model_config) if self.model_config is not None else {},
            **{name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS},
        }


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message says which and suggests fixes."""


def build_run_config(model: str, data: str, data_dir: str | None = None, config_file: str | None = None,
                     overrides: dict[str, Any] | None = None) -> RunConfig:
    """Resolve a run's configuration through all layers of defaults and overrides.

    The device is checked here, so ``--device cuda`` on a machine without CUDA fails before any
    data is read (:class:`~graphrec.devices.DeviceUnavailableError`).
    """
    from graphrec.devices import resolve_device
    from graphrec.recipes import recipe_settings

    settings = recipe_settings(model, data)
    if config_file:
        settings.update(flatten(load_yaml(config_file)))
    settings.update(overrides or {})
    config = config_from_settings(model, data, settings, data_dir)
    resolve_device(config.train.device)
    return config


#: settings a resumed run may change: optimisation rate and schedule, run length, evaluation
#: cadence and patience, and runtime. They change neither the model's shapes nor the batches
#: already drawn, so the checkpoint stays valid; every other key is fixed by the saved run.
RESUME_SAFE_KEYS = frozenset({
    "train.epochs", "train.lr", "train.lr_schedule", "train.lr_min", "train.lr_decay_epochs",
    "train.lr_milestones", "train.lr_gamma", "train.eval_every", "train.patience", "train.early_stopping",
    "train.time_limit_s", "train.eval_chunk_size", "train.device", "train.num_threads",
    "parallel.nproc", "parallel.timeout_s",
})


@dataclass
class ResumeChange:
    """One setting a resumed run changes (logged as a ``resume_override`` event)."""

    key: str
    old: Any
    new: Any


def apply_resume_overrides(saved: dict, config_file: str | None = None,
                           overrides: dict[str, Any] | None = None) -> tuple[RunConfig, list[ResumeChange]]:
    """The saved run config (``config.yaml`` as a dict) with the safe overrides of a resume applied.

    ``config_file`` (a YAML file by section) then ``overrides`` (``"section.key"`` -> value) are
    applied like for a new run; a key in :data:`RESUME_SAFE_KEYS` may change, any other key must
    keep its saved value (a file holding the whole original config is fine) or a
    :class:`ConfigError` names the key and the saved value. Returns the new config and the changes.
    """
    from graphrec.devices import resolve_device

    config = run_config_from_dict(saved)
    requested = flatten(load_yaml(config_file)) if config_file else {}
    requested.update(overrides or {})
    if not requested:
        resolve_device(config.train.device)   # a run saved on a GPU machine, resumed on another
        return config, []
    sections = {name: getattr(config, name) for name in SECTIONS}
    sections["model"] = config.model_config
    current = {f"{section}.{f.name}": getattr(obj, f.name)
               for section, obj in sections.items() for f in dataclasses.fields(obj)}
    changes, settings = [], {}
    for key, value in requested.items():
        if key.startswith("model_config."):   # a run's own config.yaml passed back with --config
            key = "model." + key.split(".", 1)[1]
        if key == "data_dir":   # where the files are, not what they are (--data-dir)
            continue
        if key in ("model", "data"):
            if value != getattr(config, key):
                raise ConfigError(f"cannot change {key} when resuming: the run was saved with {key}="
                                  f"{getattr(config, key)!r}; start a new run for {value!r}")
            continue
        section, name = _resolve_key(key, sections)
        full = f"{section}.{name}"
        new = coerce_value(value, typing.get_type_hints(type(sections[section])).get(name, Any), full)
        old = current[full]
        if _same_value(new, old):
            continue
        if full not in RESUME_SAFE_KEYS:
            raise ConfigError(
                f"cannot change {full} when resuming: the run was saved with {full}={_plain(old)!r} "
                f"(asked: {_plain(new)!r}), and it shapes the model, the data or the batches. Resume "
                f"without it, or start a new run. Resume may change: {', '.join(sorted(RESUME_SAFE_KEYS))}")
        settings[full] = new
        changes.append(ResumeChange(full, _plain(old), _plain(new)))
    if not changes:
        resolve_device(config.train.device)
        return config, []
    merged = {**current, **settings}
    config = config_from_settings(config.model, config.data, merged, config.data_dir)
    resolve_device(config.train.device)
    return config, changes


def _same_value(a, b) -> bool:
    return _plain(a) == _plain(b)


def _plain(value):
    """A setting as YAML/JSON writes it (tuples as lists)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def config_from_settings(model: str, data: str, settings: dict[str, Any], data_dir: str | None = None,
                         ) -> RunConfig:
    """The one config builder: section defaults with ``settings`` (``"section.key"`` or a bare
    key owned by one section -> value) applied, coerced to the field types and validated."""
    from graphrec.models import get_model_entry

    entry = get_model_entry(model)
    sections = {name: cls() for name, cls in SECTIONS.items()}
    sections["model"] = entry.config_cls()
    for key, value in settings.items():
        section, name = _resolve_key(key, sections)
        _set_field(sections[section], name, value, f"{section}.{name}")
    for obj in sections.values():   # validate now that every value is set
        if hasattr(obj, "__post_init__"):
            obj.__post_init__()
    model_config = sections.pop("model")
    return RunConfig(model=model, data=data, data_dir=data_dir, model_config=model_config, **sections)


def run_config_from_dict(raw: dict) -> RunConfig:
    """Inverse of :meth:`RunConfig.to_dict` (used when resuming or loading checkpoints).

    Run configs saved before a key moved section are read with the key at its new place.
    """
    settings = {f"model.{k}": v for k, v in (raw.get("model_config") or {}).items()}
    for section in SECTIONS:
        for key, value in (raw.get(section) or {}).items():
            name = f"{section}.{key}"
            settings[MOVED_KEYS.get(name, name)] = value
    for old in ("node_encoder", "images", "node_encoder_mode"):
        if raw.get(old) is not None:
            settings[MOVED_KEYS[old]] = raw[old]
    return config_from_settings(raw["model"], raw["data"], settings, raw.get("data_dir"))


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
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigError(f"--set {key.strip()}: {value!r} is not a valid YAML value ({problem}); "
                              "e.g. --set \"train.ks=[10,20]\" (quote lists for the shell)") from None
    return out


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}`` (the form of ``--set`` keys)."""
    out = {}
    for key, value in mapping.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{full}."))
        else:
            out[full] = value
    return out


def _resolve_key(key: str, sections: dict[str, Any]) -> tuple[str, str]:
    """``train.lr`` -> ("train", "lr"); a bare ``lr`` works when only one section has it."""
    all_keys = [f"{s}.{f.name}" for s, obj in sections.items() for f in dataclasses.fields(obj)]
    if "." in key:
        section, name = key.split(".", 1)
        if section in sections and name in {f.name for f in dataclasses.fields(sections[section])}:
            return section, name
    else:
        owners = [s for s, obj in sections.items() if key in {f.name for f in dataclasses.fields(obj)}]
        if len(owners) == 1:
            return owners[0], key
        if len(owners) > 1:
            raise ConfigError(f"key '{key}' is ambiguous: use one of {[f'{o}.{key}' for o in owners]}")
    if key in MOVED_KEYS:
        raise ConfigError(f"{key} moved to {MOVED_KEYS[key]} (set {MOVED_KEYS[key]}=... instead)")
    close = difflib.get_close_matches(key, all_keys, n=3, cutoff=0.4)
    close += [k for k in difflib.get_close_matches(key.split(".")[-1], [k.split(".", 1)[1] for k in all_keys], n=3, cutoff=0.6)]
    hint = f" Did you mean: {', '.join(dict.fromkeys(close))}?" if close else ""
    raise ConfigError(f"unknown config key '{key}'.{hint} Valid keys: {', '.join(all_keys)}")


def _set_field(obj, name: str, value, label: str) -> None:
    """``obj.name = value`` coerced to the field's annotated type (errors name ``label``)."""
    hints = typing.get_type_hints(type(obj))
    setattr(obj, name, coerce_value(value, hints.get(name, Any), label))


def coerce_value(value, annotation, label: str):
    """``value`` (from YAML or ``--set``) as ``annotation``: "1e-3" -> 0.001, [10, 20] -> (10, 20), ...

    Raises :class:`ConfigError` naming ``label`` when the value does not fit the type.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce_value(value, arg, label)
            except ConfigError:
                continue
        raise ConfigError(f"{label}: cannot use {value!r} as {annotation}")
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        inner = args[0] if args else Any
        return tuple(coerce_value(v, inner, label) for v in items)
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
