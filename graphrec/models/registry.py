"""The model registry: one name -> (module class, hyper-parameter dataclass, task).

A model's hyper-parameters are its constructor's keyword arguments with defaults; the
arguments without a default are the sizes that come from the data (``num_users``,
``num_features``, ``metadata``, ...). :func:`register_model` derives the config dataclass from
the constructor's signature, so every default is written once, in ``__init__``. Paper and
per-dataset training recipes live in :mod:`graphrec.recipes`, not here.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from graphrec.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    ``config_cls`` is a dataclass of the constructor's hyper-parameters, derived from its
    signature (everything with a default); ``build`` passes them back with the data sizes.
    """

    name: str
    model_cls: type[nn.Module]
    config_cls: type
    task: str
    description: str = ""

    def build(self, config=None, **sizes) -> nn.Module:
        config = config if config is not None else self.config_cls()
        return self.model_cls(**sizes, **{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})


_REGISTRY: Registry[ModelEntry] = Registry("model")


def hyperparameter_dataclass(model_cls: type, validate: Callable[..., None] | None = None) -> type:
    """A dataclass ``<Model>Config`` of ``model_cls.__init__``'s keyword arguments with defaults.

    Field types come from the constructor's annotations (``Any`` where there is none); a
    ``validate(**hyperparameters)`` function, when given, runs in ``__post_init__``.
    """
    signature = inspect.signature(model_cls.__init__)
    try:
        hints = typing.get_type_hints(model_cls.__init__)
    except (NameError, TypeError):   # an annotation that does not resolve: untyped fields
        hints = {}
    fields = []
    for name, parameter in signature.parameters.items():
        if name == "self" or parameter.default is inspect.Parameter.empty:
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        default = parameter.default
        if default.__hash__ is None:   # a mutable default (list, dict): a fresh copy per config
            spec = dataclasses.field(default_factory=lambda default=default: copy.deepcopy(default))
        else:
            spec = dataclasses.field(default=default)
        fields.append((name, hints.get(name, Any), spec))
    namespace = {"__doc__": f"{model_cls.__name__} hyper-parameters: its constructor's keyword arguments."}
    if validate is not None:
        namespace["__post_init__"] = lambda self: validate(**{f.name: getattr(self, f.name)
                                                              for f in dataclasses.fields(self)})
    config_cls = dataclasses.make_dataclass(f"{model_cls.__name__}Config", fields, namespace=namespace)
    config_cls.__module__ = model_cls.__module__
    config_cls.__qualname__ = config_cls.__name__
    return config_cls


def register_model(name: str, *, task: str, description: str = "",
                   validate: Callable[..., None] | None = None):
    """Class decorator: ``@register_model("lightgcn", task="recommendation")``.

    ``validate(**hyperparameters)`` (optional) raises ``ValueError`` for invalid values; it runs
    whenever a config is built, so a bad ``--set model.x=...`` fails before the data is read.
    """

    def decorator(model_cls):
        summary = description or (model_cls.__doc__ or "").strip().split("\n")[0]
        config_cls = hyperparameter_dataclass(model_cls, validate)
        _REGISTRY.add(name, ModelEntry(name, model_cls, config_cls, task, summary))
        return model_cls

    return decorator


def available_models(task: str | None = None) -> list[str]:
    return _REGISTRY.names(None if task is None else (lambda entry: entry.task == task))


def get_model_entry(name: str) -> ModelEntry:
    return _REGISTRY.get(name)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model: sizes (e.g. ``num_users``) and hyper-parameter overrides as kwargs.

    >>> model = create_model("lightgcn", num_users=10, num_items=20, embedding_dim=32)
    """
    entry = get_model_entry(name)
    names = {f.name for f in dataclasses.fields(entry.config_cls)}
    config = entry.config_cls(**{k: v for k, v in kwargs.items() if k in names})
    sizes = {k: v for k, v in kwargs.items() if k not in names}
    return entry.build(config, **sizes)
