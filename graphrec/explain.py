"""Interpretability of heterogeneous models: LATTE's relation weights (beta) per node type and layer.

LATTE's selling point (Tran & Gao 2020, section 5.4 and its figure of relation attention) is that
every node's embedding is a convex combination of its meta-path aggregates and itself, with
weights beta that the model learns per node. Averaged over the nodes of a type, they say which
(t-order) meta-paths that type relies on at each layer. :func:`relation_weights` computes them
on a whole graph; :func:`plot_relation_weights` draws the paper-style figure;
``graphrec explain --checkpoint runs/<run>/best.pt --plot betas.png`` does both from a run.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def relation_weights(model: nn.Module, graph) -> list[dict[str, dict[str, dict[str, float]]]]:
    """Per layer, node type -> relation name -> ``{"mean", "std"}`` of beta over the type's nodes.

    ``graph`` has ``x_dict``, ``edge_index_dict`` and ``n_id_dict`` (a
    :class:`~graphrec.train.hetero_classification.HeteroBatch`, e.g. ``task.graph``). The last
    relation of every type is the type itself (the weight of the node's own embedding). The
    means of one type and layer sum to 1.
    """
    if not hasattr(model, "relation_weights"):
        raise ValueError(f"{type(model).__name__} has no relation weights to explain (LATTE has)")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(graph.x_dict, graph.edge_index_dict, graph.n_id_dict)
    finally:
        model.train(was_training)
    out = []
    for layer in model.relation_weights():
        out.append({t: {name: {"mean": float(beta.mean()), "std": float(beta.std()) if beta.numel() > 1 else 0.0}
                        for name, beta in relations.items()} for t, relations in layer.items()})
    return out


def format_relation_weights(weights: list[dict]) -> str:
    """A plain-text table: layer, node type, relation, mean beta, std."""
    lines = [f"{'layer':<6}{'node type':<12}{'relation (meta-path)':<32}{'beta mean':>10}{'std':>8}"]
    for number, layer in enumerate(weights, start=1):
        for node_type, relations in layer.items():
            for name, stats in relations.items():
                shown = f"{name} (self)" if name == node_type else name
                lines.append(f"{number:<6}{node_type:<12}{shown:<32}{stats['mean']:>10.3f}{stats['std']:>8.3f}")
    return "\n".join(lines)


def plot_relation_weights(weights: list[dict], path: str | Path, title: str = "LATTE relation weights") -> Path:
    """One panel per layer, one group of bars per node type: mean beta (± std) per relation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    node_types = list(weights[0])
    fig, axes = plt.subplots(len(weights), len(node_types), squeeze=False,
                             figsize=(4.2 * len(node_types), 2.6 * len(weights) + 0.6))
    for row, layer in enumerate(weights):
        for col, node_type in enumerate(node_types):
            ax = axes[row][col]
            relations = layer.get(node_type, {})
            names = [f"{n} (self)" if n == node_type else n for n in relations]
            means = [s["mean"] for s in relations.values()]
            stds = [s["std"] for s in relations.values()]
            ax.barh(range(len(names)), means, xerr=stds, color="tab:blue", alpha=0.8, capsize=2)
            ax.set_yticks(range(len(names)))
            ax.set_yticklabels(names, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_title(f"layer {row + 1}: {node_type}", fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"{title} (mean over nodes ± std)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def explain_checkpoint(checkpoint: str | Path, data_dir: str | None = None, plot: str | Path | None = None):
    """Relation weights of a trained run's model on its whole dataset (and the plot, if asked)."""
    from graphrec import runs

    model, task, config = runs.load_trained(checkpoint, data_dir)
    if not hasattr(task, "graph") or not hasattr(task.graph, "n_id_dict"):
        raise ValueError(f"{config.model} on {config.data} is not a heterogeneous run: nothing to explain")
    weights = relation_weights(model, task.graph)
    if plot is not None:
        plot_relation_weights(weights, plot, title=f"{config.model} on {config.data}")
    return weights
