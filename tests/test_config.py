"""graphrec.config: layered run configuration, overrides and their errors."""
import dataclasses
import inspect
import json
from pathlib import Path

import pytest
from torch import nn

from graphrec.config import (
    ConfigError,
    EncoderConfig,
    ParallelConfig,
    RunConfig,
    SamplingConfig,
    TrainConfig,
    build_run_config,
    coerce_value,
    load_yaml,
    parse_overrides,
    run_config_from_dict,
)
from graphrec.models import available_models, get_model_entry, register_model
from graphrec.recipes import RECIPES, Recipe

TOY = "_test_config_toy"


def _check_toy(dim: int, **_) -> None:
    if dim < 1:
        raise ValueError("dim must be >= 1")


if TOY not in available_models():
    @register_model(TOY, task="recommendation", validate=_check_toy)
    class ToyModel(nn.Module):
        """A registered stand-in whose defaults differ at every layer."""

        def __init__(self, num_users: int, num_items: int, dim: int = 4, scale: float = 1.0,
                     seed: int = 0,   # clashes with train.seed: a bare "seed" is ambiguous
                     tags: tuple[int, ...] = ()):
            super().__init__()

ToyConfig = get_model_entry(TOY).config_cls


@pytest.fixture(autouse=True)
def toy_recipe(monkeypatch):
    monkeypatch.setitem(RECIPES, TOY, Recipe(
        paper={"train": {"lr": 0.5, "batch_size": 111, "epochs": 7, "patience": 2}},
        datasets={"toyset": {"train": {"batch_size": 222, "epochs": 8, "patience": 3}, "model": {"dim": 9}}}))


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
    assert cfg.train.lr == 0.5                     # the model's paper recipe beats dataclass
    assert cfg.train.batch_size == 222             # the dataset recipe beats the paper recipe
    assert cfg.model_config.dim == 9               # the dataset recipe reaches the model section
    assert cfg.train.epochs == 9                   # YAML beats the dataset recipe
    assert cfg.model_config.scale == 2.5           # YAML model section
    assert cfg.train.patience == 5                 # overrides beat YAML


def test_dataset_recipe_only_applies_to_its_dataset():
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
    sampled = build_run_config("lightgcn", "gowalla", config_file=str(recipe.with_name("lightgcn-gowalla-sampled.yaml")))
    assert (sampled.sampling.mode, sampled.sampling.fanouts) == ("sampled", (5, 5, 5))
    assert sampled.train == build_run_config("lightgcn", "gowalla").train
    large = build_run_config("lightgcn", "gowalla", config_file=str(recipe.with_name("lightgcn-large-graph.yaml")))
    assert (large.sampling.mode, large.sampling.fanouts, large.sampling.history_refreshes) == ("sampled", (10,), 4)
    assert (large.train.optimizer, large.train.weight_decay) == ("sparse_adam", 0.0)
    pipe = build_run_config("gcnii", "cora", config_file=str(recipe.with_name("gcnii-cora-pipe.yaml")))
    assert (pipe.parallel.mode, pipe.parallel.nproc, pipe.parallel.chunks, pipe.parallel.warmup_epochs) == ("pipe", 2, 4, 10)
    assert (pipe.model_config.num_layers, pipe.train.epochs, pipe.train.eval_every) == (16, 200, 5)


# ------------------------------------------------------------------ sections
def test_every_section_is_settable_from_yaml(tmp_path):
    config_file = _yaml(tmp_path, """
train: {lr: 0.01}
sampling: {mode: sampled, fanouts: [5, 3], num_negatives: 2}
parallel: {mode: pipe, chunks: 8, staleness: false, nproc: 2, timeout_s: 30}
encoder: {name: vanillanet_tiny_test, images: imgs/, mode: end_to_end, batch_size: 16}
model: {dim: 6}
""")
    cfg = build_run_config(TOY, "otherset", config_file=config_file)
    assert cfg.train.lr == 0.01
    assert cfg.sampling == SamplingConfig(mode="sampled", fanouts=(5, 3), num_negatives=2)
    assert (cfg.parallel.mode, cfg.parallel.chunks, cfg.parallel.staleness, cfg.parallel.nproc) == ("pipe", 8, False, 2)
    assert cfg.parallel.timeout_s == 30.0 and cfg.parallel.enabled
    assert cfg.encoder == EncoderConfig(name="vanillanet_tiny_test", images="imgs/", mode="end_to_end", batch_size=16)
    assert cfg.model_config.dim == 6


def test_every_section_is_settable_with_set():
    overrides = parse_overrides(["parallel.chunks=3", "parallel.mode=hybrid", "parallel.stages=2",
                                 "sampling.fanouts=[10,10]", "sampling.shared_negatives=true",
                                 "encoder.name=simplenet_test", "encoder.images=a.csv", "encoder.pretrained=yes",
                                 "model.scale=0.25", "train.epochs=3"])
    cfg = build_run_config(TOY, "otherset", overrides=overrides)
    assert (cfg.parallel.mode, cfg.parallel.chunks, cfg.parallel.stages) == ("hybrid", 3, 2)
    assert cfg.sampling.fanouts == (10, 10) and cfg.sampling.shared_negatives is True
    assert (cfg.encoder.name, cfg.encoder.images, cfg.encoder.pretrained) == ("simplenet_test", "a.csv", True)
    assert cfg.model_config.scale == 0.25 and cfg.train.epochs == 3
    # bare keys owned by one section still work; one in two sections is ambiguous
    bare = build_run_config(TOY, "otherset", overrides={"fanouts": [4], "chunks": 5})
    assert bare.sampling.fanouts == (4,) and bare.parallel.chunks == 5
    with pytest.raises(ConfigError, match="ambiguous.*sampling.mode.*parallel.mode"):
        build_run_config(TOY, "otherset", overrides={"mode": "sampled"})


def test_defaults_of_the_new_sections():
    cfg = build_run_config(TOY, "otherset")
    assert cfg.sampling == SamplingConfig() and cfg.sampling.mode == "full"
    assert cfg.parallel == ParallelConfig() and cfg.parallel.mode == "none" and not cfg.parallel.enabled
    assert cfg.encoder == EncoderConfig() and cfg.encoder.name is None


@pytest.mark.parametrize("key, value, moved_to", [
    ("train.fanouts", [5, 5], "sampling.fanouts"), ("train.mode", "sampled", "sampling.mode"),
    ("train.num_negatives", 4, "sampling.num_negatives"), ("train.shared_negatives", True, "sampling.shared_negatives"),
    ("node_encoder", "x", "encoder.name")])
def test_moved_key_names_its_new_place(key, value, moved_to):
    with pytest.raises(ConfigError, match=f"{key} moved to {moved_to}"):
        build_run_config(TOY, "otherset", overrides={key: value})


def test_moved_key_in_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="train.fanouts moved to sampling.fanouts"):
        build_run_config(TOY, "otherset", config_file=_yaml(tmp_path, "train:\n  fanouts: [5, 5]\n"))


def test_run_config_saved_before_the_sections_still_loads():
    old = {"model": TOY, "data": "otherset", "data_dir": None, "model_config": {"dim": 5},
           "train": {"lr": 0.1, "mode": "sampled", "fanouts": [2, 2], "num_negatives": 3},
           "node_encoder": "simplenet_test", "images": "imgs/", "node_encoder_mode": "end_to_end"}
    cfg = run_config_from_dict(old)
    assert cfg.train.lr == 0.1 and cfg.model_config.dim == 5
    assert (cfg.sampling.mode, cfg.sampling.fanouts, cfg.sampling.num_negatives) == ("sampled", (2, 2), 3)
    assert (cfg.encoder.name, cfg.encoder.images, cfg.encoder.mode) == ("simplenet_test", "imgs/", "end_to_end")


def test_section_values_are_validated():
    with pytest.raises(ValueError, match="sampling mode"):
        build_run_config(TOY, "otherset", overrides={"sampling.mode": "sampeld"})
    with pytest.raises(ValueError, match="parallel mode"):
        build_run_config(TOY, "otherset", overrides={"parallel.mode": "sideways"})
    with pytest.raises(ValueError, match="--node-encoder and --images go together"):
        build_run_config(TOY, "otherset", overrides={"encoder.images": "imgs/"})
    with pytest.raises(ValueError, match="encoder.mode"):
        EncoderConfig(name="a", images="b", mode="thawed")


def test_coerce_value_is_public():
    assert coerce_value("1e-3", float, "train.lr") == 0.001
    assert coerce_value([1, 2], tuple[int, ...], "sampling.fanouts") == (1, 2)
    assert coerce_value(None, str | None, "encoder.name") is None
    with pytest.raises(ConfigError, match="train.epochs"):
        coerce_value("many", int, "train.epochs")


# ------------------------------------------------------------------ CLI shortcuts
def test_cli_flags_are_shortcuts_into_the_sections():
    from graphrec.cli import build_parser, flag_overrides

    args = build_parser().parse_args([
        "fit", "--model", TOY, "--data", "otherset", "--epochs", "4", "--split", "random", "--parallel", "hybrid",
        "--stages", "2", "--chunks", "6", "--warmup-epochs", "1", "--no-staleness", "--nproc", "4",
        "--node-encoder", "simplenet_test", "--images", "imgs/", "--node-encoder-mode", "end_to_end"])
    cfg = build_run_config(TOY, "otherset", overrides=flag_overrides(args))
    assert (cfg.train.epochs, cfg.train.split) == (4, "random")
    assert cfg.parallel == ParallelConfig(mode="hybrid", stages=2, chunks=6, warmup_epochs=1, staleness=False,
                                          nproc=4)
    assert cfg.encoder == EncoderConfig(name="simplenet_test", images="imgs/", mode="end_to_end")
    # no flags: nothing overridden, so --config and --set values stand
    assert flag_overrides(build_parser().parse_args(["fit", "--model", TOY, "--data", "otherset"])) == {}


# ------------------------------------------------------------------ model configs and recipes
@pytest.mark.parametrize("name", [m for m in available_models() if not m.startswith("_")])
def test_model_config_defaults_equal_constructor_defaults(name):
    entry = get_model_entry(name)
    signature = inspect.signature(entry.model_cls.__init__)
    defaults = {k: p.default for k, p in signature.parameters.items()
                if k != "self" and p.default is not inspect.Parameter.empty}
    assert defaults or name == "pop", f"{name} has no hyper-parameters"   # pop: counts only, nothing to set
    assert dataclasses.asdict(entry.config_cls()) == defaults
    assert entry.config_cls.__name__ == f"{entry.model_cls.__name__}Config"
    assert build_run_config(name, "no-such-dataset").model_config == entry.config_cls()  # recipes tune train only


def test_public_config_class_names_are_the_derived_ones():
    from graphrec import models

    for name in available_models():
        if name.startswith("_"):
            continue
        entry = get_model_entry(name)
        assert getattr(models, entry.config_cls.__name__) is entry.config_cls


def test_model_validation_runs_when_the_config_is_built():
    with pytest.raises(ValueError, match="item_weighting"):
        build_run_config("ultragcn", "gowalla", overrides={"model.item_weighting": "cosine"})
    with pytest.raises(ValueError, match="heads dividing"):
        build_run_config("latte", "acm", overrides={"model.heads": 3})


def test_dataset_recipe_is_applied_and_overridden_by_set(tmp_path):
    pubmed = build_run_config("dagnn", "pubmed")
    assert (pubmed.model_config.num_hops, pubmed.model_config.dropout, pubmed.train.weight_decay) == (20, 0.8, 5e-3)
    assert (pubmed.train.lr, pubmed.train.early_stopping, pubmed.train.monitor) == (0.01, "window_mean", "loss")
    citeseer = build_run_config("dagnn", "citeseer")
    assert (citeseer.model_config.dropout, citeseer.train.weight_decay) == (0.5, 2e-2)
    config_file = _yaml(tmp_path, "model:\n  num_hops: 7\n")
    tuned = build_run_config("dagnn", "pubmed", config_file=config_file,
                             overrides=parse_overrides(["train.weight_decay=1e-4", "model.dropout=0.1"]))
    assert (tuned.model_config.num_hops, tuned.model_config.dropout, tuned.train.weight_decay) == (7, 0.1, 1e-4)
    yelp = build_run_config("ultragcn", "yelp2018", overrides={"sampling.num_negatives": 10})
    assert (yelp.train.lr, yelp.sampling.num_negatives, yelp.sampling.user_sampling) == (1e-3, 10, "interaction")


def test_every_recipe_names_a_registered_model_and_valid_keys():
    for name, recipe in RECIPES.items():
        if name.startswith("_"):
            continue
        assert name in available_models()
        for dataset in [None, *recipe.datasets]:
            build_run_config(name, dataset or "no-such-dataset")   # unknown keys would raise ConfigError
