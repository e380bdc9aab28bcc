"""One training scenario per rank, described by a JSON spec: what the tests and benchmarks launch.

``python -m graphrec.parallel.scenarios SPEC.json`` (under :func:`graphrec.parallel.launch.launch`
or ``torchrun``) trains a node-classification model with :class:`~graphrec.parallel.engine.PipelineEngine`
and rank 0 writes ``spec["out"]`` (JSON: per-epoch losses, times and exact communication bytes,
evaluations, layout) and ``spec["out"] + ".pt"`` (the full trained parameters, gathered).
:func:`run` does the same in-process (the single-process reference of the tests).

Spec keys: ``data_dir``, ``dataset`` (default cora), ``model`` (gcn | gcnii), ``model_kwargs``,
``lr``, ``weight_decay``, ``seed``, ``epochs``, ``eval_every`` (0: only at the end), ``parallel``
(:class:`~graphrec.parallel.engine.ParallelConfig` fields), ``threads``; fault injection:
``kill_rank``/``kill_epoch`` (that rank SIGKILLs itself at the start of that epoch) and
``hang_rank`` (that rank sleeps forever at ``kill_epoch``).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch


def load_task(spec: dict):
    from graphrec.config import TrainConfig
    from graphrec.loaders import load_dataset
    from graphrec.train.node_classification import NodeClassificationTask

    name = spec.get("dataset", "cora")
    data = synthetic_graph(name) if name.startswith("synthetic-powerlaw") else load_dataset(name, spec.get("data_dir"),
                                                                                       download=False)
    return NodeClassificationTask(data, TrainConfig(normalize_features=True, seed=spec.get("seed", 0)))


def synthetic_graph(name: str):
    """``synthetic-powerlaw-<nodes>-<mean degree>``: a seeded Chung-Lu graph with power-law expected
    degrees (exponent 2.5, like social graphs such as Reddit, where METIS must cut many edges), 128
    random features, 8 random classes, Planetoid-sized split masks. For communication-volume
    measurements only: the labels carry no signal."""
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce, to_undirected

    _, _, nodes, degree = name.rsplit("-", 3)
    nodes, degree = int(nodes), int(degree)
    generator = torch.Generator().manual_seed(0)
    weights = torch.arange(1, nodes + 1, dtype=torch.float64) ** (-1.0 / 1.5)
    edges = nodes * degree // 2
    src = torch.multinomial(weights, edges, replacement=True, generator=generator)
    dst = torch.multinomial(weights, edges, replacement=True, generator=generator)
    keep = src != dst
    edge_index = coalesce(to_undirected(torch.stack([src[keep], dst[keep]])), num_nodes=nodes)
    masks = torch.zeros(3, nodes, dtype=torch.bool)
    order = torch.randperm(nodes, generator=generator)
    masks[0, order[:160]], masks[1, order[160:660]], masks[2, order[660:1660]] = True, True, True
    return Data(x=torch.rand(nodes, 128, generator=generator), edge_index=edge_index,
                y=torch.randint(0, 8, (nodes,), generator=generator), train_mask=masks[0], val_mask=masks[1],
                test_mask=masks[2], name=name)


def build_model(spec: dict, task):
    from graphrec.models import create_model
    import graphrec.models.gcnii  # noqa: F401  (registers gcnii)

    torch.manual_seed(spec.get("seed", 0))
    return create_model(spec.get("model", "gcnii"), num_features=task.num_features, num_classes=task.num_classes,
                        **spec.get("model_kwargs", {}))


def run(spec: dict, rank: int = 0, world_size: int = 1, device: str = "cpu") -> dict:
    """Train per ``spec`` as ``rank`` of ``world_size`` (process group already initialised when > 1)."""
    from graphrec.parallel.engine import ParallelConfig, PipelineEngine

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    task = load_task(spec)
    model = build_model(spec, task)
    config = ParallelConfig(**spec.get("parallel", {"mode": "single"}))
    engine = PipelineEngine(model, task.x, task.edge_index, task.y, task.masks, config, lr=spec.get("lr", 0.01),
                            weight_decay=spec.get("weight_decay", 5e-4), seed=spec.get("seed", 0), rank=rank,
                            world_size=world_size, device=device)
    epochs, eval_every = int(spec.get("epochs", 1)), int(spec.get("eval_every", 0))
    result = {"spec": spec, "world_size": world_size, "layout": engine.layout_summary(), "epochs": []}
    best = None
    for epoch in range(epochs):
        if spec.get("kill_epoch") == epoch and spec.get("kill_rank") == rank:
            os.kill(os.getpid(), signal.SIGKILL)
        if spec.get("kill_epoch") == epoch and spec.get("hang_rank") == rank:
            time.sleep(3600)
        before = {k: v for k, v in engine.comm.bytes.items()}
        started = time.perf_counter()
        loss = engine.train_epoch(epoch)
        seconds = time.perf_counter() - started
        sent = {k: v - before.get(k, 0.0) for k, v in engine.comm.bytes.items() if k.startswith("train/")}
        row = {"epoch": epoch + 1, "loss": loss, "seconds": seconds, "bytes_sent_this_rank": sent}
        if eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            metrics = engine.evaluate()
            row["eval"] = metrics
            if best is None or metrics["valid"]["loss"] < best["valid"]["loss"]:
                best = {**metrics, "epoch": epoch + 1}
        result["epochs"].append(row)
    result["final"] = engine.evaluate()
    result["best"] = best
    # exact per-epoch volume summed over ranks (every rank reports its sends)
    from graphrec.parallel.engine import comm_volume

    result["bytes_total_all_ranks"] = comm_volume(engine)
    state = engine.gather_model_state()
    # exact eval-mode logits of every node, assembled on rank 0 (the forward-equality tests)
    logits = engine.logits_own()
    owned = (engine.plan.owned_ids, logits) if logits is not None else None
    if world_size > 1:
        pieces = [None] * world_size if rank == 0 else None
        torch.distributed.gather_object(owned, pieces, dst=0)
    else:
        pieces = [owned]
    if rank == 0:
        full = torch.zeros(task.num_nodes, task.num_classes)
        for piece in pieces:
            if piece is not None:
                full[piece[0]] = piece[1].cpu()
        result["logits"] = full
    if world_size > 1:
        gathered = [None] * world_size if rank == 0 else None
        torch.distributed.gather_object(result["epochs"], gathered, dst=0)
        if rank == 0:
            result["epochs_per_rank"] = gathered
    result["state"] = state
    return result


def main(path: str) -> int:
    """Run the spec (or each of ``spec["scenarios"]``, sharing one process group) as this rank."""
    from graphrec.parallel.launch import init_distributed

    spec = json.loads(Path(path).read_text())
    specs = [{**{k: v for k, v in spec.items() if k != "scenarios"}, **one} for one in spec.get("scenarios", [spec])]
    timeout = spec.get("parallel", {}).get("timeout_s", 60.0)
    rank, world_size, device = init_distributed(spec.get("parallel", {}).get("backend", ""), timeout,
                                                spec.get("device", "cpu"))
    for one in specs:
        try:
            result = run(one, rank, world_size, device)
        except Exception as error:  # noqa: BLE001 - report clearly, exit non-zero
            print(f"rank {rank}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            return 3
        if rank == 0:
            torch.save({"state": result.pop("state"), "logits": result.pop("logits")}, one["out"] + ".pt")
            Path(one["out"]).write_text(json.dumps(result, indent=1, default=float))
    if world_size > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
