"""Full-batch seconds per epoch on Cora: graphrec's DAGNN against PyG's APPNP, side by side.

APPNP (Klicpera et al., ICLR 2019) is PyG's closest built-in decoupled model: the same MLP
(dropout, Linear, ReLU, dropout, Linear) followed by K hops of weight-free propagation; it
mixes hops with a fixed teleport ``alpha`` where DAGNN learns per-node retention scores.
Same K, hidden size, dropout, optimiser and data for every contender; one epoch is what the
official training loops do per epoch: one training step (forward, cross-entropy on the train
nodes, backward, Adam step) and one evaluation forward over the whole graph.

Contenders:

- graphrec-dagnn: :class:`graphrec.models.DAGNN` fed as graphrec's node-classification task
  feeds it (features as a sparse COO tensor, cached ``A_hat``, ``torch.sparse.mm`` hops);
- graphrec-dagnn-dense-x: the same model fed the dense feature matrix (the same input APPNP gets);
- pyg-appnp: the MLP + ``torch_geometric.nn.APPNP(K, alpha=0.1, cached=True)``, dense features,
  as PyG's examples write it.

With ``--gcnii-layers 16 32`` (``--models`` including gcnii), deep GCNII as well:

- graphrec-gcniiL: :class:`graphrec.models.GCNII`, L layers, fed as graphrec's task feeds it
  (``edge_index``; normalised every forward);
- pyg-gcn2convL: PyG's own GCNII example (``examples/gcn2_cora.py``): the same layers of
  ``GCN2Conv`` with the normalised adjacency computed once (a torch sparse CSR tensor).

Epochs of the contenders are interleaved in rounds so that load changes on a shared machine
hit all of them alike; the median epoch time is reported. ``--device cuda`` runs everything on
the GPU (each epoch synchronised before its clock stops); a CUDA run writes
``results/gpu_train_node_classification.json`` (``--out`` to choose).

Usage: python benchmarks/node_classification_speed.py [--data cora] [--hops 10] [--rounds 10]
       [--epochs-per-round 10] [--threads 1] [--data-dir ../shared/data]
       python benchmarks/node_classification_speed.py --device cuda --data cora citeseer --gcnii-layers 16 32
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from report import write_result


class APPNPNet(nn.Module):
    """The MLP DAGNN also uses, then PyG's APPNP propagation."""

    def __init__(self, num_features, num_classes, hidden, hops, dropout, alpha=0.1):
        super().__init__()
        from torch_geometric.nn import APPNP

        self.lin1 = nn.Linear(num_features, hidden)
        self.lin2 = nn.Linear(hidden, num_classes)
        self.prop = APPNP(K=hops, alpha=alpha, cached=True)
        self.dropout = dropout

    def forward(self, x, edge_index):
        x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.lin1(x))
        x = F.dropout(x, self.dropout, self.training)
        return self.prop(self.lin2(x), edge_index)


class GCN2ConvNet(nn.Module):
    """PyG's GCNII example (examples/gcn2_cora.py): GCN2Conv layers over an adjacency normalised once."""

    def __init__(self, num_features, num_classes, hidden, layers, alpha, theta, dropout):
        super().__init__()
        from torch_geometric.nn import GCN2Conv

        self.lin_in = nn.Linear(num_features, hidden)
        self.convs = nn.ModuleList(GCN2Conv(hidden, alpha, theta, layer + 1, shared_weights=True, normalize=False)
                                   for layer in range(layers))
        self.lin_out = nn.Linear(hidden, num_classes)
        self.dropout = dropout

    def forward(self, x, adj_t):
        x = F.dropout(x, self.dropout, self.training)
        x = x_0 = F.relu(self.lin_in(x))
        for conv in self.convs:
            x = F.dropout(x, self.dropout, self.training)
            x = F.relu(conv(x, x_0, adj_t))
        x = F.dropout(x, self.dropout, self.training)
        return self.lin_out(x)


def normalized_adjacency(edge_index, num_nodes):
    """``D^-1/2 (A + I) D^-1/2`` as a torch sparse CSR tensor (what PyG's GCNNorm + ToSparseTensor give)."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.utils import to_torch_csr_tensor

    edge_index, weight = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
    # message passing reads adj_t (rows = targets): transpose the (source, target) pairs
    return to_torch_csr_tensor(edge_index.flip(0), weight, size=(num_nodes, num_nodes))


def epoch_fn(model, x, edge_index, y, train_mask, val_mask, lr, weight_decay):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    cuda = x.device.type == "cuda"

    def epoch() -> tuple[float, float]:
        started = time.perf_counter()
        model.train()
        loss = F.cross_entropy(model(x, edge_index)[train_mask], y[train_mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize(x.device)
        trained = time.perf_counter()
        model.eval()
        with torch.no_grad():
            F.cross_entropy(model(x, edge_index)[val_mask], y[val_mask]).item()
        return trained - started, time.perf_counter() - trained

    return epoch


def contenders_for(data_name, args, device):
    """Epoch functions of every contender on one dataset, all on ``device``."""
    from graphrec.config import TrainConfig, build_run_config
    from graphrec.loaders import load_dataset
    from graphrec.models import create_model
    from graphrec.train.node_classification import NodeClassificationTask

    data = load_dataset(data_name, args.data_dir or os.environ.get("GRAPHREC_DATA"))
    task = NodeClassificationTask(data, TrainConfig(device=str(device)))
    sizes = {"num_features": task.num_features, "num_classes": task.num_classes}
    common = (task.edge_index, task.y, task.masks["train"], task.masks["valid"])
    contenders, settings = {}, {}
    if "dagnn" in args.models:
        config = build_run_config("dagnn", data_name, overrides={"model.num_hops": args.hops})
        hidden, dropout = config.model_config.hidden_channels, config.model_config.dropout
        lr, weight_decay = config.train.lr, config.train.weight_decay
        settings["dagnn"] = {"hops": args.hops, "hidden": hidden, "dropout": dropout, "lr": lr,
                             "weight_decay": weight_decay, "appnp_alpha": 0.1}
        dagnn = create_model("dagnn", **sizes, hidden_channels=hidden, num_hops=args.hops, dropout=dropout).to(device)
        dagnn_dense = create_model("dagnn", **sizes, hidden_channels=hidden, num_hops=args.hops,
                                   dropout=dropout).to(device)
        appnp = APPNPNet(task.num_features, task.num_classes, hidden, args.hops, dropout).to(device)
        contenders["graphrec-dagnn"] = epoch_fn(dagnn, task.features(dagnn), *common, lr, weight_decay)
        contenders["graphrec-dagnn-dense-x"] = epoch_fn(dagnn_dense, task.x, *common, lr, weight_decay)
        contenders["pyg-appnp"] = epoch_fn(appnp, task.x, *common, lr, weight_decay)
    if "gcnii" in args.models:
        adj_t = normalized_adjacency(task.edge_index, task.num_nodes)
        for layers in args.gcnii_layers:
            config = build_run_config("gcnii", data_name, overrides={"model.num_layers": layers})
            mc = config.model_config
            lr, weight_decay = config.train.lr, config.train.weight_decay
            settings[f"gcnii{layers}"] = {"layers": layers, "hidden": mc.hidden_channels, "alpha": mc.alpha,
                                          "theta": mc.theta, "dropout": mc.dropout, "lr": lr,
                                          "weight_decay": weight_decay}
            torch.manual_seed(0)
            ours = create_model("gcnii", **sizes, hidden_channels=mc.hidden_channels, num_layers=layers,
                                alpha=mc.alpha, theta=mc.theta, dropout=mc.dropout).to(device)
            peer = GCN2ConvNet(task.num_features, task.num_classes, mc.hidden_channels, layers, mc.alpha, mc.theta,
                               mc.dropout).to(device)
            contenders[f"graphrec-gcnii{layers}"] = epoch_fn(ours, task.x, *common, lr, weight_decay)
            contenders[f"pyg-gcn2conv{layers}"] = epoch_fn(peer, task.x, adj_t, *common[1:], lr, weight_decay)
    return contenders, settings


def measure(contenders, args) -> dict:
    for epoch in contenders.values():
        for _ in range(args.warmup):
            epoch()
    times = {name: {"train": [], "eval": []} for name in contenders}
    for _ in range(args.rounds):
        for name, epoch in contenders.items():
            for _ in range(args.epochs_per_round):
                train_s, eval_s = epoch()
                times[name]["train"].append(train_s)
                times[name]["eval"].append(eval_s)
    results = {}
    for name, recorded in times.items():
        totals = [a + b for a, b in zip(recorded["train"], recorded["eval"])]
        results[name] = {"ms_per_epoch": 1000 * statistics.median(totals),
                         "ms_train_step": 1000 * statistics.median(recorded["train"]),
                         "ms_eval_forward": 1000 * statistics.median(recorded["eval"]),
                         "epochs_timed": len(totals)}
    return results


def ratios_of(results) -> dict:
    ratios = {}
    if "graphrec-dagnn" in results:
        base = results["graphrec-dagnn"]["ms_per_epoch"]
        ratios.update({f"{name}/graphrec-dagnn": results[name]["ms_per_epoch"] / base
                       for name in ("graphrec-dagnn-dense-x", "pyg-appnp")})
        ratios["pyg-appnp/graphrec-dagnn-dense-x"] = (results["pyg-appnp"]["ms_per_epoch"]
                                                      / results["graphrec-dagnn-dense-x"]["ms_per_epoch"])
    for name in results:
        if name.startswith("graphrec-gcnii"):
            layers = name[len("graphrec-gcnii"):]
            ratios[f"pyg-gcn2conv{layers}/{name}"] = (results[f"pyg-gcn2conv{layers}"]["ms_per_epoch"]
                                                      / results[name]["ms_per_epoch"])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["cora"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models", nargs="+", default=["dagnn"], choices=["dagnn", "gcnii"])
    parser.add_argument("--hops", type=int, default=10)
    parser.add_argument("--gcnii-layers", type=int, nargs="*", default=[],
                        help="GCNII depths to time against PyG's GCN2Conv example (adds gcnii to --models)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epochs-per-round", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--out", default=None, help="result file (default results/node_classification_speed_<data>"
                                                    ".json, results/gpu_train_node_classification.json for CUDA)")
    args = parser.parse_args()
    if args.gcnii_layers and "gcnii" not in args.models:
        args.models.append("gcnii")
    if "gcnii" in args.models and not args.gcnii_layers:
        args.gcnii_layers = [16]
    from graphrec.devices import DeviceUnavailableError, resolve_device

    try:
        device = resolve_device(args.device)
    except DeviceUnavailableError as error:
        raise SystemExit(str(error)) from None

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    by_data = {}
    for data_name in args.data:
        torch.manual_seed(0)
        contenders, settings = contenders_for(data_name, args, device)
        results = measure(contenders, args)
        ratios = ratios_of(results)
        print(f"{data_name} on {device}, {args.threads} thread(s): {settings}")
        for name, row in results.items():
            print(f"  {name:<24} {row['ms_per_epoch']:8.2f} ms/epoch  (train step {row['ms_train_step']:.2f}, "
                  f"eval forward {row['ms_eval_forward']:.2f})")
        for name, ratio in ratios.items():
            print(f"  ratio {name}: {ratio:.2f}x")
        by_data[data_name] = {"settings": settings, "results": results, "ratios": ratios}
    timing = {"epoch": "one training step (forward, cross-entropy on train nodes, backward, Adam) + one eval forward",
              "timing": f"median over {args.rounds} interleaved rounds x {args.epochs_per_round} epochs, "
                        f"after {args.warmup} warm-up epochs each", "seed": 0,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
    if device.type == "cpu" and args.data == ["cora"] and args.models == ["dagnn"]:
        # the CPU record's layout, unchanged
        only = by_data["cora"]
        path = write_result("node_classification_speed_cora", {
            "dataset": "cora", **only["settings"]["dagnn"], **timing, "results": only["results"],
            "ratios": only["ratios"]}, args.out)
    else:
        name = "gpu_train_node_classification" if device.type == "cuda" else "node_classification_speed_" + "_".join(args.data)
        path = write_result(name, {"datasets": by_data, **timing}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
