"""A minibatch GraphSAGE epoch on the GPU with node features in host memory: zero-copy against the CPU gather.

PyTorch-Direct's headline setting: a large graph whose features stay in (pinned) host memory while the
model trains on the GPU. The same synthetic power-law graph, features, labels, fan-outs and batches as
``benchmarks/minibatch_epoch.py`` (graphrec's ``NeighborSampler`` on the CPU); only how a batch's feature
rows reach the GPU differs:

- zero-copy+prefetcher: ``Prefetcher(loader, store, "cuda")``: the GPU reads the rows from the pinned
  table on a side stream while the previous batch trains;
- zero-copy: ``store.fetch(n_id, "cuda")`` in turn with training;
- cpu-gather+copy+prefetcher: ``Prefetcher(loader, store)`` gathers on the CPU in a background thread,
  then the rows are copied to the GPU;
- cpu-gather+copy: gather on the CPU, copy, train, in turn.

One epoch = sample, fetch features, forward, backward, step for every batch of the train nodes; the
clock stops after the device has finished. Contenders alternate for ``--rounds`` rounds and keep their
best epoch. Without CUDA the zero-copy contenders exit the script with status 77 unless ``--dry-run``
(the CPU-gather contenders, on the CPU, tiny sizes).

    python benchmarks/gpu/minibatch_epoch_gpu.py [--nodes 2000000] [--edges 20000000] [--dim 128] [--out FILE]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import RESULTS, write_result  # noqa: E402
from sampling_throughput import power_law_graph  # noqa: E402

NO_CUDA_EXIT = 77


def feature_batches(name, sampler, store, train_nodes, batch_size, epoch, device):
    """(global ids, features on ``device``, edge_index on ``device``, seeds) per batch, as ``name`` fetches them."""
    loader = sampler.loader(train_nodes, batch_size=batch_size, shuffle=True, epoch=epoch)
    from graphrec.sampling import Prefetcher

    if name == "zero-copy+prefetcher":
        pairs = Prefetcher(loader, store, device)
    elif name == "cpu-gather+copy+prefetcher":
        pairs = ((batch, x.to(device)) for batch, x in Prefetcher(loader, store))
    elif name == "zero-copy":
        pairs = ((batch, store.fetch(batch.n_id, device)) for batch in loader)
    else:
        pairs = ((batch, store.fetch(batch.n_id).to(device)) for batch in loader)
    for batch, x in pairs:
        yield batch.n_id, x, batch.edge_index.to(device, non_blocking=True), batch.batch_size


def train_epoch(model, optimizer, batches, y, device) -> dict:
    start = time.perf_counter()
    count = 0
    for n_id, x, edge_index, batch_size in batches:
        out = model(x, edge_index)[:batch_size]
        loss = F.cross_entropy(out, y[n_id[:batch_size].to(device, non_blocking=True)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        count += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"seconds": time.perf_counter() - start, "batches": count, "loss_last": float(loss.detach())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=2_000_000)
    parser.add_argument("--edges", type=int, default=20_000_000)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[15, 10, 5])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--train-nodes", type=int, default=32 * 1024)
    parser.add_argument("--dim", type=int, default=128, help="float32 features per node (128: 512 B rows)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "gpu_fetch_minibatch_epoch.json"))
    parser.add_argument("--dry-run", action="store_true", help="no GPU: the CPU-gather contenders on the CPU")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        print("minibatch_epoch_gpu: no CUDA device here; --dry-run runs the CPU side", file=sys.stderr)
        return NO_CUDA_EXIT
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")

    from torch_geometric.nn.models import GraphSAGE

    from graphrec.sampling import FeatureStore, NeighborSampler
    from graphrec.data.csr import CSRGraph

    started = time.perf_counter()
    edge_index = power_law_graph(args.nodes, args.edges, seed=args.seed)
    sampler = NeighborSampler(CSRGraph.from_edge_index(edge_index, args.nodes), args.fanouts, seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    store = FeatureStore(torch.randn(args.nodes, args.dim, generator=generator))
    y = torch.randint(0, 8, (args.nodes,), generator=generator).to(device)
    train_nodes = torch.from_numpy(np.random.default_rng(args.seed).permutation(args.nodes)[: args.train_nodes])
    setup_s = time.perf_counter() - started
    pin_s = None
    if cuda:
        started = time.perf_counter()
        store.pin(device.index)
        pin_s = time.perf_counter() - started
    print(f"graph, features ({args.nodes * args.dim * 4 / 1e9:.2f} GB host table) ready in {setup_s:.1f} s; "
          f"pinned in {pin_s} s", flush=True)

    names = ["cpu-gather+copy+prefetcher", "cpu-gather+copy"]
    if cuda:
        names = ["zero-copy+prefetcher", "zero-copy"] + names
    best: dict[str, dict] = {}
    for name in names:      # warm-up: kernels compiled, allocator primed, outside the timings
        next(iter(feature_batches(name, sampler, store, train_nodes, args.batch_size, 0, device)))
    for round_ in range(args.rounds):
        for name in names:
            torch.manual_seed(args.seed)
            model = GraphSAGE(args.dim, 64, num_layers=len(args.fanouts), out_channels=8).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            result = train_epoch(model, optimizer, feature_batches(name, sampler, store, train_nodes, args.batch_size,
                                                                   round_, device), y, device)
            print(f"round {round_} {name:28s} {result['seconds']:7.2f} s/epoch ({result['batches']} batches)", flush=True)
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
    ratios = {}
    if cuda:
        ratios = {"cpu-gather+copy+prefetcher/zero-copy+prefetcher":
                  best["cpu-gather+copy+prefetcher"]["seconds"] / best["zero-copy+prefetcher"]["seconds"],
                  "cpu-gather+copy/zero-copy": best["cpu-gather+copy"]["seconds"] / best["zero-copy"]["seconds"],
                  "zero-copy/zero-copy+prefetcher": best["zero-copy"]["seconds"] / best["zero-copy+prefetcher"]["seconds"]}
    for key, value in ratios.items():
        print(f"  {key}: {value:.2f}x")
    store.close()
    path = write_result("gpu_fetch_minibatch_epoch", {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu", "dry_run": args.dry_run,
        "nodes": args.nodes, "edges": args.edges, "fanouts": args.fanouts, "batch_size": args.batch_size,
        "train_nodes": args.train_nodes, "feature_dim": args.dim, "setup_s": setup_s, "pin_s": pin_s,
        "model": f"torch_geometric GraphSAGE, {len(args.fanouts)} layers, hidden 64, 8 classes, Adam 1e-3",
        "rounds": args.rounds, "results": best, "ratios": ratios}, args.out)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
