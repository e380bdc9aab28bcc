"""Training recipes, in one place: each model's paper settings and its per-dataset overrides.

A recipe is a mapping of sections to settings, the shape of a ``--config`` YAML file
(``{"train": {"lr": 0.01}, "model": {"num_hops": 20}}``). :func:`recipe_settings` flattens the
model's ``paper`` recipe, then (on data the paper did not use: a DataFrame given to
:class:`graphrec.Recommender`, any dataset outside ``paper_data``) its ``new_data`` recipe, then its
``datasets[data]`` recipe over it, into the ``section.key`` settings that
:func:`graphrec.config.build_run_config` applies first:

    section defaults < paper recipe < new-data recipe < per-dataset recipe < --config file < --set

The new-data recipes are the fast ones (the paper's are slow, and UltraGCN's sits at the popularity level
for a long time); benchmarks/results/new_data_defaults.md has the evidence that they beat the popularity
baseline (``pop``), where it does not show that yet (UltraGCN on small data), and its limits.

Model hyper-parameter defaults are not here: they are the constructors' (``graphrec.models``).
A user's own model gets a recipe with ``RECIPES["mymodel"] = Recipe(paper={...})``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphrec.config import flatten

Settings = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Recipe:
    """``paper``: the settings of the paper / official code; ``datasets[name]``: overrides on one dataset;
    ``new_data``: overrides on any data outside ``paper_data`` (the datasets the paper settings were made
    for), e.g. a DataFrame."""

    paper: Settings = field(default_factory=dict)
    datasets: dict[str, Settings] = field(default_factory=dict)
    new_data: Settings = field(default_factory=dict)
    paper_data: tuple[str, ...] = ()


#: the datasets of the LightGCN / UltraGCN papers, where their paper recipes apply unchanged
_RECOMMENDATION_PAPER_DATA = ("gowalla", "yelp2018", "amazon-book")


_NODE_CLASSIFICATION_LOSS_SELECTION = {"eval_every": 1, "monitor": "loss", "monitor_mode": "min"}

RECIPES: dict[str, Recipe] = {
    # Official code (gusye1234/LightGCN-PyTorch): Adam lr 1e-3, batch 2048, 1000 epochs, test every 10.
    # On new data: the fast Gowalla recipe (examples/configs/lightgcn-gowalla-fast.yaml), evaluated
    # every 5 epochs so that early stopping ends a short run sooner.
    "lightgcn": Recipe(paper={"train": {"lr": 1e-3, "batch_size": 2048, "epochs": 1000, "eval_every": 10}},
                       new_data={"train": {"lr": 1e-2, "batch_size": 8192, "eval_every": 5}},
                       paper_data=_RECOMMENDATION_PAPER_DATA),
    # Official code (xue-pai/UltraGCN): Adam, every train interaction once per epoch in a shuffled
    # order, max_epoch 2000, test every epoch from epoch 50 on (every 5 before), early stop after
    # early_stop_epoch tests without a better recall@20. Gowalla's values otherwise. Per dataset:
    # config/ultragcn_{gowalla,yelp18,amazon}_m1.ini.
    # On new data: one shared set of negatives per batch and lr 1e-3 (the paper's 1500 negatives per
    # positive at lr 1e-4 stay at the popularity level for ~140 epochs on Gowalla).
    "ultragcn": Recipe(
        paper={"train": {"lr": 1e-4, "batch_size": 512, "epochs": 2000, "eval_every": 1, "patience": 150},
               "sampling": {"num_negatives": 1500, "user_sampling": "interaction"}},
        new_data={"train": {"lr": 1e-3, "eval_every": 5, "patience": 10},
                  "sampling": {"shared_negatives": True}},
        paper_data=_RECOMMENDATION_PAPER_DATA,
        datasets={
            "gowalla": {"train": {"lr": 1e-4, "batch_size": 512, "patience": 150},
                        "sampling": {"num_negatives": 1500},
                        "model": {"negative_weight": 300.0, "w1": 1e-6, "w2": 1.0, "w3": 1e-6, "w4": 1.0,
                                  "item_constraint_weight": 5e-4, "l2_weight": 1e-4, "init_std": 1e-4}},
            "yelp2018": {"train": {"lr": 1e-3, "batch_size": 1024, "patience": 15},
                         "sampling": {"num_negatives": 800},
                         "model": {"negative_weight": 300.0, "w1": 1e-8, "w2": 1.0, "w3": 1e-8, "w4": 1.0,
                                   "item_constraint_weight": 5e-4, "l2_weight": 1e-4, "init_std": 1e-4}},
            "amazon-book": {"train": {"lr": 1e-3, "batch_size": 1024, "patience": 15},
                            "sampling": {"num_negatives": 500},
                            "model": {"negative_weight": 500.0, "w1": 1e-8, "w2": 1.0, "w3": 1.0, "w4": 1e-8,
                                      "item_constraint_weight": 2.75, "l2_weight": 1e-4, "init_std": 1e-4}},
        }),
    # Most popular: nothing to train; one epoch of one (no-op) batch, then its one evaluation.
    "pop": Recipe(paper={"train": {"epochs": 1, "max_batches_per_epoch": 1}}),
    # Official code (mengliu1998/DeeperGNN dagnn.py / train_eval.py): Adam lr 0.01, up to 1000
    # epochs, evaluated every epoch, the epoch of lowest validation loss selected; after half of
    # the epochs, stop when the validation loss exceeds the mean of the previous 100. Per dataset:
    # the official run.sh.
    "dagnn": Recipe(
        paper={"train": {"lr": 0.01, "weight_decay": 5e-3, "epochs": 1000, "patience": 100,
                         **_NODE_CLASSIFICATION_LOSS_SELECTION, "early_stopping": "window_mean",
                         "normalize_features": True}},
        datasets={
            "cora": {"model": {"num_hops": 10, "dropout": 0.8}, "train": {"weight_decay": 5e-3}},
            "citeseer": {"model": {"num_hops": 10, "dropout": 0.5}, "train": {"weight_decay": 2e-2}},
            "pubmed": {"model": {"num_hops": 20, "dropout": 0.8}, "train": {"weight_decay": 5e-3}},
        }),
    # Kipf & Welling: Adam lr 0.01, weight decay 5e-4, early stopping on validation loss. Trained
    # with DAGNN's protocol (1000 epochs, window-mean stopping after half) so depth comparisons
    # differ in the model only.
    "gcn": Recipe(paper={"train": {"lr": 0.01, "weight_decay": 5e-4, "epochs": 1000, "patience": 100,
                                   **_NODE_CLASSIFICATION_LOSS_SELECTION, "early_stopping": "window_mean",
                                   "normalize_features": True}}),
    # Official code (chennnM/GCNII train.py): Adam lr 0.01, weight decay 0.01 on the convolutions and
    # 5e-4 on the dense layers (one value here: the convolutions'), patience 100 on validation loss.
    "gcnii": Recipe(paper={"train": {"lr": 0.01, "weight_decay": 5e-4, "epochs": 1500, "patience": 100,
                                     **_NODE_CLASSIFICATION_LOSS_SELECTION, "normalize_features": True}}),
    # Official code (TachiChan/CatGCN main.py, parser.py, sh/txn_age/CatGCN.sh): Adam lr 0.1, weight
    # decay 1e-4, validation loss every epoch, patience 10, epochs 9999, class-balanced NLL
    # (weights n / (C * count_c)), random 80/10/10 split.
    "catgcn": Recipe(paper={"train": {"lr": 0.1, "weight_decay": 1e-4, "epochs": 9999, "patience": 10,
                                      **_NODE_CLASSIFICATION_LOSS_SELECTION, "early_stopping": "patience",
                                      "split": "stratified", "split_fractions": (0.8, 0.1, 0.1),
                                      "class_weighted_loss": True, "normalize_features": False}}),
    # Official HAN (Jhy1993/HAN): Adam lr 0.005, weight decay 0.001; early stopping on validation loss.
    "han": Recipe(paper={"train": {"lr": 5e-3, "weight_decay": 1e-3, "epochs": 200, "patience": 20,
                                   **_NODE_CLASSIFICATION_LOSS_SELECTION, "normalize_features": False}}),
    # HGT as LATTE's official run.py trains its baselines.
    "hgt": Recipe(paper={"train": {"lr": 1e-3, "weight_decay": 1e-2, "epochs": 250, "patience": 10,
                                   **_NODE_CLASSIFICATION_LOSS_SELECTION, "normalize_features": False}}),
    # Official run.py / models.py (JonnyTran/LATTE): Adam lr 1e-3, weight decay 1e-2, early stopping on
    # val_loss with patience 10, at most 250 epochs, evaluated every epoch.
    "latte": Recipe(paper={"train": {"lr": 1e-3, "weight_decay": 1e-2, "epochs": 250, "patience": 10,
                                     **_NODE_CLASSIFICATION_LOSS_SELECTION, "normalize_features": False}}),
}


def recipe_settings(model: str, data: str | None = None) -> dict[str, Any]:
    """``model``'s paper recipe, its new-data recipe when ``data`` is not among its paper datasets,
    and its ``data`` recipe, each over the one before, as ``{"section.key": value}``."""
    recipe = RECIPES.get(model)
    if recipe is None:
        return {}
    settings = flatten(recipe.paper)
    if data is not None:
        if data not in recipe.paper_data and data not in recipe.datasets:
            settings.update(flatten(recipe.new_data))
        settings.update(flatten(recipe.datasets.get(data, {})))
    return settings
