"""graphrec.config: layered run configuration, overrides and their errors."""
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from torch import nn

from graphrec.config import (
    ConfigError,
    RunConfig,
    TrainConfig,
    build_run_config,
    load_yaml,
    parse_overrides,
    run_config_from_dict,
)
from graphrec.models import available_models, register_model

TOY = "_test_config_toy"


@dataclass
class ToyConfig:
    dim: int = 4
    scale: float = 1.0
    seed: int = 0  # clashes with train.seed: a bare "seed" is ambiguous
    tags: tuple[int, ...] = ()

    def __post_init__(self):
        if self.dim < 1:
            raise ValueError("dim must be >= 1")


if TOY not in available_models():
    @register_model(
        TOY, config=ToyConfig, task="recommendation",
        train_defaults={"lr": 0.5, "batch_size": 111, "epochs": 7, "patience": 2},
        dataset_defaults={"toyset": {"train.batch_size": 222, "train.epochs": 8, "train.patience": 3,
                                     "model.dim": 9}},
    )
    class ToyModel(nn.Module):
        """A registered stand-in whose defaults differ at every layer."""


def _yaml(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return str(path)


def test_precedence_of_all_layers(tmp_path):
    config_file = _yaml(tmp_path, "train:\n  epochs: 9\n  patience: 4\nmodel:\n  scale: 2.5\n")
    cfg = build_run_config(TOY, "toyset", data_dir="/d", config_file=config_file,
                           overrides={"train.patience": 5})
    assert isinstance(cfg, RunConfig) and isinstance(cfg.model_config, ToyConfig)
    assert (cfg.model, cfg.data, cfg.data_dir) == (TOY, "toyset", "/d")
    assert cfg.train.weight_decay == 0.0 and cfg.train.eval_every == 10  # dataclass defaults
    assert cfg.train.lr == 0.5                     # model train_defaults beat dataclass
    assert cfg.train.batch_size == 222             # dataset_defaults beat model defaults
    assert cfg.model_config.dim == 9               # dataset_defaults reach the model section
    assert cfg.train.epochs == 9                   # YAML beats dataset_defaults
    assert cfg.model_config.scale == 2.5           # YAML model section
    assert cfg.train.patience == 5                 # overrides beat YAML


def test_dataset_defaults_only_apply_to_their_dataset():
    cfg = build_run_config(TOY, "otherset")
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.epochs, cfg.train.patience) == (0.5, 111, 7, 2)
    assert cfg.model_config.dim == 4


def test_plain_defaults_without_model_layers():
    cfg = build_run_config(TOY, "otherset")
    plain = TrainConfig()
    for name in ("weight_decay", "optimizer", "monitor", "ks", "protocol", "seed"):
        assert getattr(cfg.train, name) == getattr(plain, name)


def test_parse_overrides_types():
    parsed = parse_overrides(["train.lr=0.01", "epochs=5", "ks=[10,20]", "optimizer=sgd",
                              "model.scale=2", "monitor=ndcg@20", "data_dir=", "x=a=b"])
    assert parsed == {"train.lr": 0.01, "epochs": 5, "ks": [10, 20], "optimizer": "sgd",
                      "model.scale": 2, "monitor": "ndcg@20", "data_dir": "", "x": "a=b"}
    assert type(parsed["train.lr"]) is float and type(parsed["epochs"]) is int
    assert parse_overrides(None) == {}


@pytest.mark.parametrize("item", ["train.lr", "=3", " =3"])
def test_parse_overrides_rejects_non_assignments(item):
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides([item])


def test_overrides_are_coerced_to_field_types():
    overrides = parse_overrides(["lr=1e-3", "train.epochs=5", "ks=[10,20]", "model.scale=2",
                                 "model.tags=[1,2]", "time_limit_s=30"])
    cfg = build_run_config(TOY, "otherset", overrides=overrides)
    assert cfg.train.lr == 0.001 and type(cfg.train.lr) is float  # YAML reads "1e-3" as a string
    assert cfg.train.epochs == 5 and type(cfg.train.epochs) is int
    assert cfg.train.ks == (10, 20)
    assert cfg.model_config.scale == 2.0 and type(cfg.model_config.scale) is float
    assert cfg.model_config.tags == (1, 2)
    assert cfg.train.time_limit_s == 30.0 and type(cfg.train.time_limit_s) is float
    single = build_run_config(TOY, "otherset", overrides=parse_overrides(["ks=20"]))
    assert single.train.ks == (20,)


def test_bare_keys_resolve_to_their_only_section():
    cfg = build_run_config(TOY, "otherset", overrides={"lr": 0.02, "dim": 16, "scale": 3.0})
    assert cfg.train.lr == 0.02
    assert cfg.model_config.dim == 16 and cfg.model_config.scale == 3.0


def test_bare_key_in_two_sections_is_ambiguous():
    with pytest.raises(ConfigError) as info:
        build_run_config(TOY, "otherset", overrides={"seed": 1})
    assert "ambiguous" in str(info.value)
    assert "train.seed" in str(info.value) and "model.seed" in str(info.value)
    cfg = build_run_config(TOY, "otherset", overrides={"train.seed": 1, "model.seed": 2})
    assert (cfg.train.seed, cfg.model_config.seed) == (1, 2)


@pytest.mark.parametrize("key, suggestion", [("train.lrr", "train.lr"), ("epoch", "epochs"),
                                             ("model.dimm", "model.dim"), ("trian.lr", "train.lr")])
def test_unknown_key_suggests_close_matches(key, suggestion):
    with pytest.raises(ConfigError) as info:
        build_run_config(TOY, "otherset", overrides={key: 1})
    message = str(info.value)
    assert f"unknown config key '{key}'" in message
    hint = message.split("Did you mean:")[1].split("?")[0]
    assert suggestion in hint


def test_unknown_key_in_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="train.lr"):
        build_run_config(TOY, "otherset", config_file=_yaml(tmp_path, "train:\n  lrr: 0.1\n"))


@pytest.mark.parametrize("key, value", [("train.epochs", "abc"), ("train.epochs", 2.5), ("train.epochs", True),
                                        ("train.lr", "fast"), ("train.ks", [10, "x"])])
def test_bad_value_type_error_names_key(key, value):
    with pytest.raises(ConfigError) as info:
        build_run_config(TOY, "otherset", overrides={key: value})
    assert key in str(info.value)


def test_invalid_values_fail_validation():
    with pytest.raises(ValueError, match="protocol"):
        build_run_config(TOY, "otherset", overrides={"protocol": "leaky"})
    with pytest.raises(ValueError, match="monitor_mode"):
        build_run_config(TOY, "otherset", overrides={"monitor_mode": "up"})
    with pytest.raises(ValueError, match="epochs"):
        build_run_config(TOY, "otherset", overrides={"epochs": 0})
    with pytest.raises(ValueError, match="dim"):
        build_run_config(TOY, "otherset", overrides={"model.dim": 0})  # model config validated too
    with pytest.raises(ValueError, match="protocol"):
        TrainConfig(protocol="test")


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(_yaml(tmp_path, "train: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(_yaml(tmp_path, "- 1\n- 2\n"))
    assert load_yaml(_yaml(tmp_path, "")) == {}


def test_unknown_model_error():
    with pytest.raises(KeyError, match="lightgcn"):
        build_run_config("lightgcnn", "gowalla")


def test_round_trip_through_dict_and_json():
    cfg = build_run_config(TOY, "toyset", data_dir="/data",
                           overrides={"ks": [10, 20], "lr": 0.01, "model.tags": [3], "scale": 0.5})
    raw = cfg.to_dict()
    assert raw["train"]["ks"] == (10, 20) and raw["model_config"]["dim"] == 9
    assert run_config_from_dict(raw) == cfg
    assert run_config_from_dict(json.loads(json.dumps(raw))) == cfg  # lists come back as tuples


def test_round_trip_lightgcn():
    cfg = build_run_config("lightgcn", "gowalla", overrides={"ks": [20, 40], "train.epochs": 3})
    back = run_config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert dataclasses.asdict(back.model_config) == dataclasses.asdict(cfg.model_config)
    assert back.train.ks == (20, 40) and back.train.epochs == 3


def test_shipped_recipe_files_load():
    """The YAML recipes under examples/configs/ resolve (a renamed key would make them unusable)."""
    recipe = Path(__file__).resolve().parents[1] / "examples" / "configs" / "lightgcn-gowalla-fast.yaml"
    config = build_run_config("lightgcn", "gowalla", config_file=str(recipe))
    assert (config.train.batch_size, config.train.lr) == (8192, 1e-2)
    # Only the optimisation changes: the model stays the paper's.
    assert config.model_config == build_run_config("lightgcn", "gowalla").model_config
    for name, epochs in [("lightgcn-gowalla-fast-cosine.yaml", 200), ("lightgcn-gowalla-fast-cosine400.yaml", 400)]:
        cosine = build_run_config("lightgcn", "gowalla", config_file=str(recipe.with_name(name)))
        train = cosine.train
        assert (train.batch_size, train.lr, train.lr_schedule, train.epochs, train.lr_min) == (8192, 1e-2, "cosine", epochs, 0.0)
        assert cosine.model_config == config.model_config
