"""Neighbour-sampling throughput: graphrec's NeighborSampler against PyG's NeighborLoader, one run.

Same graph, same fan-outs, same batch size, same seeds per batch for every contender;
throughput is seeds/s and sampled edges/s over whole batches (``Data`` out, no
features). Graphs: Gowalla's user-item graph (symmetric, users then items) and a seeded
synthetic power-law graph (Chung-Lu: a few million nodes, tens of millions of edges).
Contenders run in alternating rounds and each keeps its best round, so load from other
processes hits them alike.

- graphrec: ``NeighborSampler.loader(num_workers=0)`` (the calling thread only);
- graphrec-threads: ``num_workers=2`` (whole batches on 2 threads, the kernels drop the GIL);
- pyg: ``torch_geometric.loader.NeighborLoader`` (num_workers=0), when PyG has a sampling
  backend (pyg-lib or torch-sparse). Without one the script says how to build it
  (``benchmarks/setup_peer_env.sh``) and records graphrec alone;
- dgl: ``dgl.dataloading.DataLoader`` over ``dgl.dataloading.NeighborSampler`` (num_workers=0),
  when DGL imports (its own environment: ``benchmarks/setup_dgl_env.sh``; DGL needs torch
  <= 2.2.1 while the PyG peer's torch-sparse is built against the base torch, so PyG and DGL
  run in two environments, each beside graphrec). DGL's fan-outs are given input layer first,
  so ours are reversed for it; DGL re-samples the neighbours of *every* node of a layer (a
  block's destination nodes include the previous layers'), not only of the nodes new at that
  hop as graphrec and PyG do, so its batches hold more edges: compare seeds/s first.

Usage: python benchmarks/sampling_throughput.py [--data-dir ../shared/data] [--batches 20]
       [--nodes 2000000] [--edges 20000000] [--fanouts 15 10 5] [--graphs gowalla synthetic]
       [--peers pyg dgl] [--tag NAME]   (results/sampling_throughput[-NAME].json)
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from report import load_gowalla, write_result

from graphrec.data.csr import CSRGraph, bipartite_adjacency
from graphrec.sampling.neighbor import NeighborSampler


def pyg_backend() -> str | None:
    import torch_geometric.typing as pyg_typing

    if pyg_typing.WITH_PYG_LIB:
        return "pyg-lib"
    if pyg_typing.WITH_TORCH_SPARSE:
        return "torch-sparse " + __import__("torch_sparse").__version__
    return None


def power_law_graph(num_nodes: int, num_edges: int, exponent: float = 2.1, seed: int = 0):
    """Seeded Chung-Lu graph: both endpoints drawn with weight ~ rank^(-1/(exponent-1)).

    Degrees follow a power law with the given exponent; node ids are shuffled so hubs
    are spread over the id range. Returns a (2, E) int64 source -> target edge_index.
    """
    rng = np.random.default_rng(seed)
    weights = np.arange(1, num_nodes + 1, dtype=np.float64) ** (-1.0 / (exponent - 1.0))
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    relabel = rng.permutation(num_nodes)
    edges = np.empty((2, num_edges), dtype=np.int64)
    chunk = 1 << 22
    for begin in range(0, num_edges, chunk):
        end = min(num_edges, begin + chunk)
        for side in (0, 1):
            edges[side, begin:end] = relabel[np.searchsorted(cdf, rng.random(end - begin), side="right")]
    np.minimum(edges, num_nodes - 1, out=edges)
    return edges


def batches_of(num_nodes: int, batch_size: int, count: int, seed: int = 0) -> list[torch.Tensor]:
    order = np.random.default_rng(seed).permutation(num_nodes)[: batch_size * count]
    return [torch.from_numpy(order[i * batch_size:(i + 1) * batch_size]) for i in range(count)]


def time_graphrec(sampler: NeighborSampler, seed_batches, num_workers: int) -> dict:
    seeds = torch.cat(seed_batches)
    batch_size = seed_batches[0].shape[0]
    start = time.perf_counter()
    n_seeds = n_edges = 0
    for data in sampler.loader(seeds, batch_size=batch_size, shuffle=False, num_workers=num_workers):
        n_seeds += data.batch_size
        n_edges += data.edge_index.shape[1]
    return _rates(time.perf_counter() - start, n_seeds, n_edges, len(seed_batches))


def time_pyg(loader_data, fanouts, seed_batches, replace: bool) -> dict:
    from torch_geometric.loader import NeighborLoader

    seeds = torch.cat(seed_batches)
    loader = NeighborLoader(loader_data, num_neighbors=list(fanouts), input_nodes=seeds,
                            batch_size=seed_batches[0].shape[0], shuffle=False, replace=replace)
    start = time.perf_counter()
    n_seeds = n_edges = 0
    for data in loader:
        n_seeds += data.batch_size
        n_edges += data.edge_index.shape[1]
    return _rates(time.perf_counter() - start, n_seeds, n_edges, len(seed_batches))


def dgl_version() -> str | None:
    try:
        import dgl
    except Exception:  # not installed, or beside a torch it cannot load
        return None
    return dgl.__version__


def time_dgl(g, fanouts, seed_batches, replace: bool) -> dict:
    import dgl

    seeds = torch.cat(seed_batches)
    sampler = dgl.dataloading.NeighborSampler(list(reversed(fanouts)), replace=replace)
    loader = dgl.dataloading.DataLoader(g, seeds, sampler, batch_size=seed_batches[0].shape[0], shuffle=False,
                                        drop_last=False, num_workers=0)
    start = time.perf_counter()
    n_seeds = n_edges = 0
    for _, output_nodes, blocks in loader:
        n_seeds += output_nodes.shape[0]
        n_edges += sum(block.num_edges() for block in blocks)
    return _rates(time.perf_counter() - start, n_seeds, n_edges, len(seed_batches))


def _rates(seconds, n_seeds, n_edges, n_batches) -> dict:
    return {"seconds": seconds, "seeds_per_s": n_seeds / seconds, "edges_per_s": n_edges / seconds,
            "edges_per_batch": n_edges / n_batches}


def run_graph(name, edge_index, csr: CSRGraph, num_nodes, args, backend, dgl_ready=None) -> dict:
    sampler = NeighborSampler(csr, args.fanouts, replace=args.replace, seed=0)
    seed_batches = batches_of(num_nodes, args.batch_size, args.batches)
    sampler.sample(seed_batches[0][:8])   # compile / load the kernels outside the timings
    contenders = {
        "graphrec": lambda: time_graphrec(sampler, seed_batches, 0),
        "graphrec-threads": lambda: time_graphrec(sampler, seed_batches, 2),
    }
    if backend is not None:
        from torch_geometric.data import Data

        pyg_data = Data(edge_index=torch.from_numpy(edge_index), num_nodes=num_nodes)
        contenders["pyg"] = lambda: time_pyg(pyg_data, args.fanouts, seed_batches, args.replace)
        contenders["pyg"]()                      # builds PyG's CSC once, like ours above
    if dgl_ready is not None:
        import dgl

        g = dgl.graph((torch.from_numpy(edge_index[0]), torch.from_numpy(edge_index[1])), num_nodes=num_nodes)
        g.create_formats_()                      # DGL's CSC built once, outside the timings
        contenders["dgl"] = lambda: time_dgl(g, args.fanouts, seed_batches, args.replace)
        contenders["dgl"]()
    best: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for key, run in contenders.items():
            result = run()
            if key not in best or result["seconds"] < best[key]["seconds"]:
                best[key] = result
    out = {"num_nodes": num_nodes, "num_edges": int(edge_index.shape[1]), "results": best}
    for peer in ("pyg", "dgl"):
        if peer in best:
            ratios = out.setdefault("ratios", {})
            ours = [k for k in best if k.startswith("graphrec")]
            ratios.update({f"{k}/{peer} (seeds/s)": best[k]["seeds_per_s"] / best[peer]["seeds_per_s"] for k in ours})
            ratios.update({f"{k}/{peer} (edges/s)": best[k]["edges_per_s"] / best[peer]["edges_per_s"] for k in ours})
    print(f"\n{name}: {num_nodes:,} nodes, {edge_index.shape[1]:,} edges, fan-outs {args.fanouts}, "
          f"batch {args.batch_size}, {args.batches} batches, best of {args.rounds} rounds")
    for key, result in best.items():
        print(f"  {key:18s} {result['seeds_per_s']:12,.0f} seeds/s {result['edges_per_s']:14,.0f} edges/s "
              f"({result['edges_per_batch']:,.0f} edges/batch)")
    for key, ratio in out.get("ratios", {}).items():
        print(f"  {key:32s} {ratio:6.2f}x")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--graphs", nargs="+", default=["gowalla", "synthetic"])
    parser.add_argument("--nodes", type=int, default=2_000_000)
    parser.add_argument("--edges", type=int, default=20_000_000)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[15, 10, 5])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replace", action="store_true")
    parser.add_argument("--peers", nargs="*", default=["pyg", "dgl"], help="peers to run where they import")
    parser.add_argument("--tag", default=None, help="results/sampling_throughput-TAG.json (one file per env)")
    args = parser.parse_args()

    backend = pyg_backend() if "pyg" in args.peers else None
    dgl_ready = dgl_version() if "dgl" in args.peers else None
    if "dgl" in args.peers and dgl_ready is None:
        print("DGL does not import here: its peer needs the environment of benchmarks/setup_dgl_env.sh")
    if "pyg" in args.peers and backend is None:
        print("PyG has no sampling backend here (neither pyg-lib nor torch-sparse imports), so its\n"
              "NeighborLoader cannot run. Build one in a separate environment and rerun there:\n"
              "    bash benchmarks/setup_peer_env.sh /path/to/peer-venv\n"
              "    /path/to/peer-venv/bin/python benchmarks/sampling_throughput.py\n"
              "Measuring graphrec alone.")
    graphs = {}
    for name in args.graphs:
        if name == "gowalla":
            graph = load_gowalla(args.data_dir)
            csr = bipartite_adjacency(graph.train)
            num_nodes = csr.num_targets
            rows = np.repeat(np.arange(num_nodes), np.diff(csr.indptr))
            edge_index = np.stack([csr.indices, rows])     # source -> target, the same edges
        elif name == "synthetic":
            start = time.perf_counter()
            edge_index = power_law_graph(args.nodes, args.edges)
            num_nodes = args.nodes
            csr = CSRGraph.from_edge_index(edge_index, num_nodes)
            print(f"synthetic graph built in {time.perf_counter() - start:.1f}s "
                  f"(max in-degree {np.diff(csr.indptr).max():,})")
        else:
            raise SystemExit(f"unknown graph {name!r}")
        graphs[name] = run_graph(name, edge_index, csr, num_nodes, args, backend, dgl_ready)
        del edge_index, csr
    write_result("sampling_throughput" + (f"-{args.tag}" if args.tag else ""), {
        "python_executable": sys.executable, "pyg_backend": backend, "dgl": dgl_ready, "fanouts": args.fanouts, "batch_size": args.batch_size,
        "batches": args.batches, "rounds": args.rounds, "replace": args.replace,
        "synthetic": {"nodes": args.nodes, "edges": args.edges, "exponent": 2.1, "seed": 0},
        "graphs": graphs,
    })


if __name__ == "__main__":
    main()
