"""Minibatch GNN epoch time on the synthetic power-law graph: graphrec's loader vs PyG's NeighborLoader.

The same model (PyG ``GraphSAGE``, ``len(fanouts)`` layers, hidden 64, mean aggregation), the
same graph (seeded Chung-Lu power-law graph of ``benchmarks/sampling_throughput.py``), node
features (seeded normal ``[N, 64]`` float32, a host table) and labels (8 random classes), the
same train nodes, fan-outs and batch size, the same optimiser; one epoch = one pass over the
train nodes (sample, gather features, forward, backward, step). Only the input pipeline differs:

- ``graphrec``: ``NeighborSampler.loader`` + ``FeatureStore`` gather through a ``Prefetcher``
  (a background thread samples and gathers batch i+1 while batch i trains);
- ``graphrec-sync``: the same without the prefetcher (sample, gather, train in turn);
- ``pyg``: ``torch_geometric.loader.NeighborLoader`` on a ``Data(x, y, edge_index)``
  (num_workers=0; PyG's sampling backend is torch-sparse in the peer environment:
  ``benchmarks/setup_peer_env.sh``).

Contenders alternate for ``--rounds`` rounds, each keeps its best epoch; ratios to PyG are
printed. Each round also times the input pipelines alone (the same batches, no model), which
shows how much of the epoch the loader is: on one CPU thread the 3-layer model dominates. The model's work is the same in every pipeline up to the sampled edges (every
pipeline's batches have the same size law), so the ratio shows what the loader saves per epoch.

Usage: PEER_VENV/bin/python benchmarks/minibatch_epoch.py [--nodes 2000000] [--edges 20000000]
       [--fanouts 15 10 5] [--batch-size 1024] [--train-nodes 32768] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from report import write_result
from sampling_throughput import power_law_graph, pyg_backend

from graphrec.data.csr import CSRGraph
from graphrec.sampling import FeatureStore, NeighborSampler, Prefetcher


def make_model(dim, classes, layers, seed):
    from torch_geometric.nn.models import GraphSAGE

    torch.manual_seed(seed)
    return GraphSAGE(dim, 64, num_layers=layers, out_channels=classes)


def train_epoch(model, optimizer, batches, y) -> dict:
    """``batches`` yields (global ids of the batch's nodes, features, edge_index, batch_size)."""
    start = time.perf_counter()
    n_batches = n_edges = n_seeds = 0
    for n_id, x, edge_index, batch_size in batches:
        out = model(x, edge_index)[:batch_size]
        loss = F.cross_entropy(out, y[n_id[:batch_size]])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n_batches += 1
        n_edges += int(edge_index.shape[1])
        n_seeds += int(batch_size)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "batches": n_batches, "seeds_per_s": n_seeds / seconds,
            "edges_per_batch": n_edges / max(n_batches, 1), "loss_last": float(loss.detach())}


def graphrec_batches(sampler, store, train_nodes, batch_size, epoch, prefetch: bool):
    loader = sampler.loader(train_nodes, batch_size=batch_size, shuffle=True, epoch=epoch)
    if prefetch:
        for batch, x in Prefetcher(loader, store):
            yield batch.n_id, x, batch.edge_index, batch.batch_size
    else:
        for batch in loader:
            yield batch.n_id, store.fetch(batch.n_id), batch.edge_index, batch.batch_size


def pyg_batches(loader):
    for batch in loader:
        yield batch.n_id, batch.x, batch.edge_index, batch.batch_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=2_000_000)
    parser.add_argument("--edges", type=int, default=20_000_000)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[15, 10, 5])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--train-nodes", type=int, default=32 * 1024)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    backend = pyg_backend()
    if backend is None:
        raise SystemExit("PyG has no sampling backend here: run in the peer environment (benchmarks/setup_peer_env.sh)")

    started = time.perf_counter()
    edge_index = power_law_graph(args.nodes, args.edges, seed=args.seed)
    csr = CSRGraph.from_edge_index(edge_index, args.nodes)
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.nodes, args.dim, generator=generator)
    y = torch.randint(0, 8, (args.nodes,), generator=generator)
    train_nodes = torch.from_numpy(np.random.default_rng(args.seed).permutation(args.nodes)[: args.train_nodes])
    print(f"graph and features ready in {time.perf_counter() - started:.0f} s", flush=True)

    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader

    sampler = NeighborSampler(csr, args.fanouts, seed=args.seed)
    store = FeatureStore(x)
    pyg_data = Data(x=x, y=y, edge_index=torch.from_numpy(edge_index), num_nodes=args.nodes)
    pyg_loader = NeighborLoader(pyg_data, num_neighbors=list(args.fanouts), input_nodes=train_nodes,
                                batch_size=args.batch_size, shuffle=True)
    layers = len(args.fanouts)
    contenders = {
        "graphrec": lambda epoch: graphrec_batches(sampler, store, train_nodes, args.batch_size, epoch, True),
        "graphrec-sync": lambda epoch: graphrec_batches(sampler, store, train_nodes, args.batch_size, epoch, False),
        "pyg": lambda epoch: pyg_batches(pyg_loader),
    }
    # Warm-up: kernels compiled, PyG's CSC built, outside the timings.
    next(iter(contenders["graphrec"](0)))
    next(iter(contenders["pyg"](0)))
    best: dict[str, dict] = {}
    loads = [round(os.getloadavg()[0], 2)]
    for round_ in range(args.rounds):
        for name, batches in contenders.items():
            model = make_model(args.dim, 8, layers, args.seed)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            result = train_epoch(model, optimizer, batches(round_), y)
            print(f"round {round_} {name:14s} {result['seconds']:7.1f} s/epoch "
                  f"({result['edges_per_batch']:,.0f} edges/batch)", flush=True)
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
            loads.append(round(os.getloadavg()[0], 2))
        for name in ("graphrec-sync", "pyg"):       # the input pipeline alone: sample + gather, no model
            start = time.perf_counter()
            for _ in contenders[name](round_):
                pass
            seconds = time.perf_counter() - start
            print(f"round {round_} {name:14s} {seconds:7.1f} s/epoch input pipeline only", flush=True)
            key = f"{name} (input pipeline only)"
            if key not in best or seconds < best[key]["seconds"]:
                best[key] = {"seconds": seconds, "seeds_per_s": args.train_nodes / seconds}
    ratios = {f"pyg/{k} (epoch time)": best["pyg"]["seconds"] / best[k]["seconds"]
              for k in ("graphrec", "graphrec-sync")}
    ratios["pyg/graphrec (input pipeline only)"] = (best["pyg (input pipeline only)"]["seconds"]
                                                    / best["graphrec-sync (input pipeline only)"]["seconds"])
    print(f"\nsynthetic {args.nodes:,} nodes, {args.edges:,} edges; {layers}-layer GraphSAGE, fan-outs {args.fanouts}, "
          f"batch {args.batch_size}, {args.train_nodes:,} train nodes per epoch; best of {args.rounds}")
    for name, result in best.items():
        print(f"  {name:14s} {result['seconds']:8.1f} s/epoch {result['seeds_per_s']:10,.0f} seeds/s")
    for key, ratio in ratios.items():
        print(f"  {key:32s} {ratio:5.2f}x")
    write_result("minibatch_epoch", {
        "python_executable": sys.executable, "pyg_backend": backend, "nodes": args.nodes, "edges": args.edges,
        "exponent": 2.1, "graph_seed": args.seed, "fanouts": args.fanouts, "batch_size": args.batch_size,
        "train_nodes": args.train_nodes, "feature_dim": args.dim, "model": f"torch_geometric GraphSAGE, {layers} layers, "
        "hidden 64, 8 classes, Adam 1e-3", "rounds": args.rounds, "results": best, "ratios": ratios,
        "load_average_samples": loads, "torch_threads": torch.get_num_threads(),
        "numba_threads": int(os.environ.get("NUMBA_NUM_THREADS", "0")) or None})


if __name__ == "__main__":
    main()
