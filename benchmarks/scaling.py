"""How each cost grows with the data: one run per size, every phase in its own process.

For every size (synthetic interactions from :mod:`graphrec.data.synthetic`, plus real anchors) and
every phase below, a child process (forked from this one, so imports are paid once) loads the graph,
measures, and reports; this process watches its resident memory and its time, and kills it past
``--memory-limit-gb`` or ``--phase-time-limit-s``, so a size that breaks records what broke first:
memory or time. A phase that broke at one size is skipped at the larger ones.

Phases (the settings are the papers' Gowalla settings):

- ``generate``: build the synthetic graph (or load the anchor) and cache it for the other phases;
- ``bpr_sampler``: ``graphrec.sampling.BPRSampler`` (batch 2048) triples per second over an epoch;
- ``lightgcn_full``: graphrec LightGCN (dim 64, 3 layers, batch 2048, Adam), full-graph propagation every
  step: adjacency build, step time, projected epoch (steps x batches per epoch);
- ``lightgcn_sampled``: the same model trained on sampled subgraphs (``sampling.mode=sampled``:
  ``LinkNeighborSampler`` with ``--fanouts``, ``LightGCN.subgraph_loss``), sampling and step time;
- ``lightgcn_sampled_sparse``: the same with ``train.optimizer=sparse_adam`` (sparse gradients, ``LazyAdam``:
  a step updates the batch's rows, not the whole table);
- ``lightgcn_history``: the linear path, ``sampling.history_refreshes``: one sampled hop
  (``--history-fanout``) propagated per step, layers 2..K of the batch's nodes read from a table that a
  full-graph propagation (no autograd) refreshes ``--history-refreshes`` times per epoch, lazy Adam;
  epoch = steps x batches + refreshes x the refresh (normalised adjacency built once, timed apart);
- ``bpr_mf``: the floor of any per-batch trainer on this machine: BPR matrix factorisation (no propagation)
  on the same triples with lazy Adam, so a step touches only its ``3 x 2048`` rows; what it adds over 1 is
  the memory hierarchy (tables that fit in cache at 1M do not at 64M);
- ``pyg_csr``: PyG's LightGCN over a precomputed normalised torch CSR (benchmarks/lightgcn_epoch.py's
  ``pyg-csr``), at every size until it breaks a limit (or up to ``--pyg-max-interactions``);
- ``ultragcn``: UltraGCN with shared negatives (batch 512, 1500 negatives), item-item build time
  (``prepare``) and step time, projected epoch;
- ``evaluation``: full-ranking ``RankingEvaluator`` (recall/ndcg@20) on ``--eval-users`` users with
  test items, projected to all of them;
- ``recommend_all``: ``graphrec.recommend_all.write_recommendations`` (top 20, seen excluded, to Parquet)
  for ``--recommend-users`` users against the bare score matmul on the same batches, in scored
  (user, item) pairs per second, projected to every user.

Each phase reports its peak RSS beside a floor computed from the sizes (see ``floors``), and the fit
gives each curve's growth exponent (least squares of log y on log interactions over the synthetic
sizes). Writes ``--out`` (default benchmarks/results/scaling.json) and the plot beside it (.png).

    python benchmarks/scaling.py --sizes 1e6 4e6 16e6 64e6 --anchors gowalla yelp2018
    python benchmarks/scaling.py --quick --sizes 2e5 --out /tmp/scaling.json     # a smoke run
    python benchmarks/scaling.py --merge full.json sampled.json --out benchmarks/results/scaling.json

``--merge`` joins runs made apart (e.g. the slow full-graph phases and the sampled ones) into one
record: the sizes' phases side by side (a later file wins for a phase both measured), each phase
tagged with the index of the run in ``runs`` (its command, date, commit and load), curves refitted.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, git_commit, hardware  # noqa: E402

PHASES = ("generate", "bpr_sampler", "lightgcn_full", "lightgcn_sampled", "lightgcn_sampled_sparse",
          "lightgcn_history", "bpr_mf", "pyg_csr", "ultragcn", "evaluation", "recommend_all")
#: curve name -> (phase, field, unit): what the plot and the exponent fit read.
CURVES = {
    "generate": ("generate", "seconds", "s"),
    "BPR sampler epoch": ("bpr_sampler", "epoch_s", "s"),
    "LightGCN full-graph epoch": ("lightgcn_full", "epoch_s", "s"),
    "LightGCN sampled epoch": ("lightgcn_sampled", "epoch_s", "s"),
    "LightGCN sampled epoch, sparse Adam": ("lightgcn_sampled_sparse", "epoch_s", "s"),
    "LightGCN historical layers epoch": ("lightgcn_history", "epoch_s", "s"),
    "LightGCN history refresh": ("lightgcn_history", "refresh_s", "s"),
    "BPR-MF epoch, lazy Adam (per-batch floor)": ("bpr_mf", "epoch_s", "s"),
    "PyG CSR LightGCN epoch": ("pyg_csr", "epoch_s", "s"),
    "UltraGCN epoch (shared negatives)": ("ultragcn", "epoch_s", "s"),
    "UltraGCN item-item build": ("ultragcn", "item_item_build_s", "s"),
    "full-ranking evaluation": ("evaluation", "all_users_s", "s"),
    "recommend all users": ("recommend_all", "all_users_s", "s"),
    "bare matmul, all users": ("recommend_all", "matmul_all_users_s", "s"),
}
MB = 1 << 20


# ----------------------------------------------------------------------------- settings
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="*", default=[1e6, 4e6, 16e6, 64e6],
                        help="synthetic sizes in interactions")
    parser.add_argument("--anchors", nargs="*", default=[], help="real datasets on the same plot (gowalla yelp2018)")
    parser.add_argument("--data-dir", default=os.environ.get("GRAPHREC_DATA"))
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 warm-up and 2 timed steps, 200 users, 30 s per phase")
    parser.add_argument("--phase-time-limit-s", type=float, default=1800.0)
    parser.add_argument("--memory-limit-gb", type=float, default=24.0)
    parser.add_argument("--threads", type=int, default=0, help="torch and numba threads (0: their defaults)")
    parser.add_argument("--zipf", type=float, default=1.0, help="item popularity exponent of the synthetic data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[5, 5, 5],
                        help="sampled mode's fan-out per layer (results/sampled_lightgcn_gowalla.md's setting)")
    parser.add_argument("--history-fanout", type=int, default=10,
                        help="lightgcn_history: neighbours of the one sampled hop")
    parser.add_argument("--history-refreshes", type=int, default=4,
                        help="lightgcn_history: full-graph refreshes of the historical layers per epoch")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed steps at most per training phase")
    parser.add_argument("--step-budget-s", type=float, default=120.0,
                        help="stop timing steps once they took this long (after one step)")
    parser.add_argument("--sampler-budget-s", type=float, default=120.0, help="BPR sampler: epoch or this long")
    parser.add_argument("--eval-users", type=int, default=5000)
    parser.add_argument("--recommend-users", type=int, default=5000)
    parser.add_argument("--recommend-memory-mb", type=float, default=512.0)
    parser.add_argument("--pyg-max-interactions", type=float, default=math.inf,
                        help="skip PyG above this size (default: none; the limits decide where it fits)")
    parser.add_argument("--cache-dir", default=None,
                        help="where graphs are cached between phases (default: a temp dir)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                        help="join these result files into --out instead of measuring")
    parser.add_argument("--out", default=str(RESULTS / "scaling.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.steps, args.step_budget_s, args.sampler_budget_s = 1, 2, 5.0, 5.0
        args.eval_users = args.recommend_users = 200
        args.phase_time_limit_s = min(args.phase_time_limit_s, 30.0)
    if len(args.fanouts) != args.layers:
        parser.error(f"--fanouts needs one fan-out per layer ({args.layers})")
    return args


# ----------------------------------------------------------------------------- floors
def floors(users: int, items: int, train: int, test: int, args) -> dict[str, dict[str, float]]:
    """The least memory (MB) each phase needs, from the sizes: what must be resident, nothing else.

    - embeddings: (users + items) x dim float32; training adds the dense gradient and Adam's two
      moments (3 more tables: ``gradient_and_adam``, the optimizer state);
    - normalised adjacency: the symmetric bipartite graph, 2 x train entries of float32 value + int32
      column, and an int64 row pointer per node (torch's CSR for PyG: int64 columns too);
    - the train CSR: train x (float32 + int32);
    - full-graph propagation saves layers x nodes x dim float32 for the backward pass (``activations``,
      listed apart: not part of the floor the issue defines).
    """
    nodes, dim = users + items, args.dim
    embeddings = nodes * dim * 4
    adjacency = 2 * train * 8 + (nodes + 1) * 8
    train_csr = train * 8 + (users + 1) * 8
    both_csr = (train + test) * 8 + 2 * (users + 1) * 8
    trained = {"embeddings": embeddings, "gradient_and_adam": 3 * embeddings}
    eval_block = min(users, 256) * min(items, 8192) * 4
    rec_block = args.recommend_memory_mb * MB
    table = {
        "generate": {"train_and_test_csr": both_csr},
        "bpr_sampler": {"train_csr_int64": train * 8 + (users + 1) * 8, "epoch_triples": train * 24},
        "lightgcn_full": {**trained, "adjacency": adjacency},
        "lightgcn_sampled": {**trained, "sampler_csr": 2 * train * 4 + (nodes + 1) * 8},
        "lightgcn_sampled_sparse": {**trained, "sampler_csr": 2 * train * 4 + (nodes + 1) * 8},
        "bpr_mf": {"embeddings": embeddings, "lazy_adam": 2 * embeddings, "train_csr_int64": train * 8},
        "lightgcn_history": {"embeddings": embeddings, "lazy_adam": 2 * embeddings, "history_table": embeddings,
                             "adjacency": adjacency, "sampler_csr": 2 * train * 4 + (nodes + 1) * 8},
        "pyg_csr": {**trained, "adjacency_torch_csr": 2 * train * 12 + (nodes + 1) * 8},
        "ultragcn": {**trained, "item_item_topk": items * 10 * 12, "train_csr": train_csr},
        "evaluation": {"embeddings": embeddings, "exclude_and_targets": both_csr, "score_block": eval_block},
        "recommend_all": {"embeddings": embeddings, "exclude": train_csr, "score_block_bound": rec_block},
    }
    out = {}
    for phase, parts in table.items():
        out[phase] = {name: round(value / MB, 1) for name, value in parts.items()}
        out[phase]["floor_mb"] = round(sum(parts.values()) / MB, 1)
    activations = args.layers * nodes * dim * 4 / MB
    for phase in ("lightgcn_full", "pyg_csr"):
        out[phase]["activations_mb"] = round(activations, 1)
    return out


# ----------------------------------------------------------------------------- graph cache
def save_graph(graph, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"shape": np.array([graph.num_users, graph.num_items])}
    for split in ("train", "test"):
        matrix = getattr(graph, split)
        arrays[f"{split}_indptr"], arrays[f"{split}_indices"] = matrix.indptr, matrix.indices
    np.savez(folder / "graph.npz", **arrays)


def load_graph(folder: Path):
    from graphrec.data.interactions import InteractionGraph

    with np.load(folder / "graph.npz") as arrays:
        users, items = (int(v) for v in arrays["shape"])
        splits = {}
        for split in ("train", "test"):
            indices = arrays[f"{split}_indices"]
            matrix = sp.csr_matrix((np.ones(indices.shape[0], np.float32), indices, arrays[f"{split}_indptr"]),
                                   shape=(users, items))
            matrix.has_sorted_indices = True
            splits[split] = matrix
    return InteractionGraph(users, items, splits["train"], test=splits["test"], name=folder.name)


# ----------------------------------------------------------------------------- the phases (in a child)
class Record(dict):
    """The phase's measurements, rewritten to disk on every update: a killed phase keeps what it measured."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self.path.write_text(json.dumps(self))


def time_steps(step, batches, args, record: Record, sample_apart: bool = False) -> None:
    """Warm up, then time up to ``args.steps`` steps (fewer once they took ``step_budget_s``)."""
    iterator = iter(batches)
    for _ in range(args.warmup):
        batch = next(iterator, None)
        if batch is None:
            break
        step(batch)
    sample_times, step_times = [], []
    while len(step_times) < args.steps:
        started = time.perf_counter()
        batch = next(iterator, None)
        if batch is None:
            break
        sampled = time.perf_counter()
        step(batch)
        sample_times.append(sampled - started)
        step_times.append(time.perf_counter() - sampled)
        per_step = float(np.median(np.add(sample_times, step_times) if sample_apart else step_times))
        record.update(step_s=per_step, timed_steps=len(step_times), epoch_s=per_step * record["batches_per_epoch"],
                      **({"sample_s": float(np.median(sample_times)), "train_step_s": float(np.median(step_times))}
                         if sample_apart else {}))
        if sum(step_times) + sum(sample_times) > args.step_budget_s:
            break


def training_step(optimizer, loss_of):
    def step(batch):
        loss = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def phase_generate(spec, args, record, cache: Path):
    started = time.perf_counter()
    if spec["kind"] == "synthetic":
        from graphrec.data.synthetic import synthetic_interactions

        graph = synthetic_interactions(spec["interactions"], zipf_exponent=args.zipf, seed=args.seed)
    else:
        from graphrec.loaders import load_dataset

        graph = load_dataset(spec["name"], args.data_dir)
    record.update(seconds=time.perf_counter() - started, users=graph.num_users, items=graph.num_items,
                  train=int(graph.train.nnz), test=int(graph.test.nnz),
                  interactions=int(graph.train.nnz + graph.test.nnz))
    save_graph(graph, cache)


def phase_bpr_sampler(graph, args, record):
    from graphrec.sampling import BPRSampler

    sampler = BPRSampler(graph.train, batch_size=args.batch_size, seed=0)
    started, triples = time.perf_counter(), 0
    for batch in sampler.loader(0):
        triples += len(batch)
        elapsed = time.perf_counter() - started
        if elapsed > args.sampler_budget_s:
            break
    elapsed = time.perf_counter() - started
    rate = triples / elapsed
    record.update(triples=triples, seconds=elapsed, triples_per_s=rate, epoch_s=sampler.samples_per_epoch / rate,
                  whole_epoch=triples == sampler.samples_per_epoch)


def phase_lightgcn_full(graph, args, record):
    from graphrec.models import LightGCN
    from graphrec.sampling import BPRSampler

    sampler = BPRSampler(graph.train, batch_size=args.batch_size, seed=0)
    record.update(batches_per_epoch=len(sampler))
    torch.manual_seed(0)
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=args.dim, num_layers=args.layers)
    started = time.perf_counter()
    model.prepare(graph.train)
    record.update(adjacency_build_s=time.perf_counter() - started)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    time_steps(training_step(optimizer, model.loss), sampler.loader(0), args, record)


def phase_lightgcn_sampled(graph, args, record, sparse: bool = False):
    from graphrec.models import LightGCN
    from graphrec.nn import SubgraphPropagation
    from graphrec.sampling import LinkNeighborSampler
    from graphrec.train.lazy_adam import LazyAdam

    started = time.perf_counter()
    sampler = LinkNeighborSampler(graph.train, list(args.fanouts), batch_size=args.batch_size, num_negatives=1,
                                  seed=0)
    degree = np.diff(sampler.neighbors.relations[("node", "to", "node")].indptr)
    propagation = SubgraphPropagation(degree, self_loops=False)
    record.update(sampler_build_s=time.perf_counter() - started, batches_per_epoch=len(sampler),
                  fanouts=list(args.fanouts))
    torch.manual_seed(0)
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=args.dim, num_layers=args.layers)
    model.sparse_gradients = sparse
    optimizer = (LazyAdam if sparse else torch.optim.Adam)(model.parameters(), lr=1e-3)
    step = training_step(optimizer, lambda batch: model.subgraph_loss(batch, propagation))
    time_steps(step, sampler.loader(0), args, record, sample_apart=True)


def phase_lightgcn_sampled_sparse(graph, args, record):
    phase_lightgcn_sampled(graph, args, record, sparse=True)


def phase_lightgcn_history(graph, args, record):
    from graphrec.models import LightGCN
    from graphrec.nn import SubgraphPropagation
    from graphrec.sampling import LinkNeighborSampler
    from graphrec.train.lazy_adam import LazyAdam

    started = time.perf_counter()
    sampler = LinkNeighborSampler(graph.train, [args.history_fanout], batch_size=args.batch_size, num_negatives=1,
                                  seed=0)
    degree = np.diff(sampler.neighbors.relations[("node", "to", "node")].indptr)
    propagation = SubgraphPropagation(degree, self_loops=False)
    record.update(sampler_build_s=time.perf_counter() - started, batches_per_epoch=len(sampler),
                  fanouts=[args.history_fanout], refreshes_per_epoch=args.history_refreshes)
    torch.manual_seed(0)
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=args.dim, num_layers=args.layers)
    model.sparse_gradients = True
    started = time.perf_counter()
    model.prepare(graph.train)
    record.update(adjacency_build_s=time.perf_counter() - started)
    started = time.perf_counter()
    history = model.deep_layer_sum(2)
    record.update(refresh_s=time.perf_counter() - started)
    optimizer = LazyAdam(model.parameters(), lr=1e-3)

    rows_touched = []  # distinct layer-0 rows per step: what overlapping neighbourhoods save on small graphs

    def loss_of(batch):
        rows_touched.append(int(batch.n_id.shape[0]))
        return model.subgraph_loss(batch, propagation, history[batch.n_id[: int(batch.batch_size)]])

    time_steps(training_step(optimizer, loss_of), sampler.loader(0), args, record, sample_apart=True)
    record.update(steps_epoch_s=record["epoch_s"],
                  epoch_s=record["epoch_s"] + args.history_refreshes * record["refresh_s"],
                  rows_per_step=float(np.median(rows_touched)))


def phase_bpr_mf(graph, args, record):
    import torch.nn.functional as F

    from graphrec.nn import bpr_loss
    from graphrec.sampling import BPRSampler
    from graphrec.train.lazy_adam import LazyAdam

    sampler = BPRSampler(graph.train, batch_size=args.batch_size, seed=0)
    record.update(batches_per_epoch=len(sampler))
    torch.manual_seed(0)
    users = graph.num_users
    weight = torch.nn.Parameter(torch.randn(users + graph.num_items, args.dim) * 0.1)
    optimizer = LazyAdam([weight], lr=1e-3)

    def loss_of(batch):
        rows = torch.cat([batch.users, batch.pos_items + users, batch.neg_items.reshape(-1) + users])
        x, size = F.embedding(rows, weight, sparse=True), batch.users.shape[0]
        return bpr_loss(x[:size], x[size: 2 * size], x[2 * size:], x, 1e-4)

    time_steps(training_step(optimizer, loss_of), sampler.loader(0), args, record, sample_apart=True)


def phase_pyg_csr(graph, args, record):
    from lightgcn_epoch import pyg_step_fn

    from graphrec.sampling import BPRSampler

    sampler = BPRSampler(graph.train, batch_size=args.batch_size, seed=0)
    record.update(batches_per_epoch=len(sampler))
    torch.manual_seed(0)
    started = time.perf_counter()
    step = pyg_step_fn(graph, args.dim, args.layers, "csr", torch.device("cpu"))
    record.update(adjacency_build_s=time.perf_counter() - started)
    time_steps(step, sampler.loader(0), args, record)


def phase_ultragcn(graph, args, record):
    from graphrec.models.ultragcn import UltraGCN
    from graphrec.sampling import BPRSampler

    sampler = BPRSampler(graph.train, batch_size=512, num_negatives=1500, user_sampling="interaction", seed=0,
                         shared_negatives=True)
    record.update(batches_per_epoch=len(sampler), batch_size=512, num_negatives=1500)
    torch.manual_seed(0)
    model = UltraGCN(graph.num_users, graph.num_items, embedding_dim=args.dim)
    started = time.perf_counter()
    model.prepare(graph.train)
    record.update(item_item_build_s=time.perf_counter() - started)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    time_steps(training_step(optimizer, model.loss), sampler.loader(0), args, record)


def _random_embeddings(graph, dim):
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(graph.num_users, dim, generator=generator) * 0.1,
            torch.randn(graph.num_items, dim, generator=generator) * 0.1)


def phase_evaluation(graph, args, record):
    from graphrec.metrics import RankingEvaluator

    with_targets = np.flatnonzero(np.diff(graph.test.indptr) > 0)
    chosen = np.sort(np.random.default_rng(0).choice(with_targets, min(args.eval_users, with_targets.shape[0]),
                                                     replace=False))
    keep = np.zeros(graph.num_users, dtype=np.float32)
    keep[chosen] = 1.0
    targets = sp.diags(keep).dot(graph.test).tocsr()
    user_emb, item_emb = _random_embeddings(graph, args.dim)
    started = time.perf_counter()
    evaluator = RankingEvaluator(graph.train, targets, ks=(20,))
    record.update(setup_s=time.perf_counter() - started)
    started = time.perf_counter()
    evaluator.evaluate(user_emb, item_emb)
    seconds = time.perf_counter() - started
    record.update(users=int(chosen.shape[0]), seconds=seconds,
                  all_users_s=seconds * with_targets.shape[0] / max(chosen.shape[0], 1),
                  users_per_s=chosen.shape[0] / seconds)


def phase_recommend_all(graph, args, record, cache: Path):
    from graphrec.recommend_all import write_recommendations

    chosen = np.sort(np.random.default_rng(0).choice(graph.num_users, min(args.recommend_users, graph.num_users),
                                                     replace=False))
    user_emb, item_emb = _random_embeddings(graph, args.dim)
    report = write_recommendations(cache / "recommendations.parquet", user_emb, item_emb, k=20, exclude=graph.train,
                                   users=chosen, max_memory_mb=args.recommend_memory_mb, progress=False)
    scale = graph.num_users / chosen.shape[0]
    record.update(users=report.users, rows=report.rows, batch_size=report.batch_size, seconds=report.seconds,
                  items_per_s=report.items_per_s(graph.num_items), all_users_s=report.seconds * scale,
                  parquet_bytes_per_row=report.path.stat().st_size / max(report.rows, 1))
    item_t = item_emb.t().contiguous()
    started = time.perf_counter()
    for start in range(0, chosen.shape[0], report.batch_size):
        torch.mm(user_emb[torch.from_numpy(chosen[start: start + report.batch_size])], item_t)
    seconds = time.perf_counter() - started
    record.update(matmul_seconds=seconds, matmul_items_per_s=chosen.shape[0] * graph.num_items / seconds,
                  matmul_all_users_s=seconds * scale,
                  slowdown_vs_matmul=report.seconds / seconds)


def import_phase_modules() -> None:
    """Import what the phases use once, before forking: children then start with it loaded, and their
    RSS at start (``rss_at_start_mb``) is the interpreter's footprint, not the phase's."""
    import lightgcn_epoch  # noqa: F401
    import torch_geometric.nn.models  # noqa: F401

    import graphrec.data.synthetic  # noqa: F401
    import graphrec.loaders  # noqa: F401
    import graphrec.metrics  # noqa: F401
    import graphrec.models  # noqa: F401
    import graphrec.nn  # noqa: F401
    import graphrec.recommend_all  # noqa: F401
    import graphrec.sampling  # noqa: F401
    import graphrec.train.threads  # noqa: F401


def _measure(phase: str, graph, args, record: Record, cache: Path) -> None:
    if phase == "recommend_all":
        phase_recommend_all(graph, args, record, cache)
    else:
        globals()[f"phase_{phase}"](graph, args, record)


def warm_up_kernels(phase: str, args, cache: Path) -> None:
    """Run the phase once on a tiny graph: numba loads (or compiles) its kernels here, not in the timing."""
    from graphrec.data.synthetic import synthetic_interactions

    tiny = argparse.Namespace(**{**vars(args), "warmup": 0, "steps": 1, "eval_users": 20, "recommend_users": 20})
    _measure(phase, synthetic_interactions(3_000, seed=1), tiny, Record(cache / f"{phase}.warm.json"), cache)


def run_phase(phase: str, spec: dict, args, cache: Path, result_path: Path) -> None:
    """Child body: measure one phase, leaving the record (and the peak RSS) in ``result_path``."""
    record = Record(result_path)
    record.update(rss_at_start_mb=_rss_mb(os.getpid())[0])
    try:
        from graphrec.train.threads import set_num_threads

        set_num_threads(args.threads)
        if phase == "generate":
            phase_generate(spec, args, record, cache)
        else:
            warm_up_kernels(phase, args, cache)
            graph = load_graph(cache)
            record.update(graph_loaded_rss_mb=_rss_mb(os.getpid())[0])
            _measure(phase, graph, args, record, cache)
        record.update(status="ok")
    except MemoryError:
        record.update(status="memory", error="MemoryError")
    except Exception as error:  # noqa: BLE001 - any failure is recorded, the run goes on
        record.update(status="error", error=f"{type(error).__name__}: {error}",
                      traceback=traceback.format_exc(limit=4))
    record.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# ----------------------------------------------------------------------------- the parent
def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pid`` in MB, from /proc (0 when it is gone)."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key = line.split(":", 1)[0]
                if key in values:
                    values[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


def watch_phase(phase: str, spec: dict, args, cache: Path) -> dict:
    """Run one phase in a forked child under the time and memory limits; its record with a status."""
    cache.mkdir(parents=True, exist_ok=True)
    result_path = cache / f"{phase}.json"
    result_path.unlink(missing_ok=True)
    context = multiprocessing.get_context("fork")
    child = context.Process(target=run_phase, args=(phase, spec, args, cache, result_path))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    child.start()
    broke, peak = None, 0.0
    limit_mb = args.memory_limit_gb * 1024
    while child.is_alive():
        rss, hwm = _rss_mb(child.pid)
        peak = max(peak, hwm)
        if rss > limit_mb:
            broke = "memory"
        elif time.perf_counter() - started > args.phase_time_limit_s:
            broke = "time"
        if broke:
            child.kill()
            break
        child.join(0.1)
    child.join()
    record = json.loads(result_path.read_text()) if result_path.exists() else {}
    if broke:
        limit = f"{args.memory_limit_gb} GB" if broke == "memory" else f"{args.phase_time_limit_s} s"
        record.update(status=broke, error=f"killed past the {broke} limit ({limit})")
    elif child.exitcode != 0 and record.get("status") in (None, "ok"):
        # SIGKILL from outside: the kernel's out-of-memory killer.
        record.update(status="memory" if child.exitcode == -9 else "error", error=f"exit code {child.exitcode}")
    record.setdefault("status", "error")
    record["peak_rss_mb"] = round(max(record.get("peak_rss_mb", 0.0), peak), 1)
    record["wall_s"] = round(time.perf_counter() - started, 2)
    record["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return record


def fit_exponent(x, y) -> float | None:
    """Slope of log y against log x (least squares); None with fewer than two positive points."""
    points = [(a, b) for a, b in zip(x, y) if a and b and a > 0 and b > 0]
    if len(points) < 2 or len({a for a, _ in points}) < 2:
        return None
    xs, ys = np.log([a for a, _ in points]), np.log([b for _, b in points])
    return round(float(np.polyfit(xs, ys, 1)[0]), 3)


def curves(sizes: list[dict]) -> dict:
    out = {}
    named = {f"peak RSS: {phase}": (phase, "peak_rss_mb", "MB") for phase in PHASES}
    for name, (phase, field, unit) in {**CURVES, **named}.items():
        synthetic = [(s["interactions"], s["phases"].get(phase, {}).get(field)) for s in sizes
                     if s["kind"] == "synthetic"]
        synthetic = [(x, y) for x, y in synthetic if y is not None]
        anchors = {s["name"]: [s["interactions"], s["phases"].get(phase, {}).get(field)] for s in sizes
                   if s["kind"] == "anchor" and s.get("interactions")  # None: the anchor failed to load
                   and s["phases"].get(phase, {}).get(field) is not None}
        if not synthetic and not anchors:
            continue
        out[name] = {"phase": phase, "field": field, "unit": unit,
                     "interactions": [x for x, _ in synthetic], "values": [y for _, y in synthetic],
                     "anchors": anchors, "exponent": fit_exponent(*zip(*synthetic)) if synthetic else None}
    return out


def plot(curve_table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times, memory) = plt.subplots(1, 2, figsize=(15, 6))
    colours = plt.get_cmap("tab20")  # more curves than the default cycle's 10 colours
    for number, (name, curve) in enumerate(curve_table.items()):
        axis = memory if curve["unit"] == "MB" else times
        exponent = curve["exponent"]
        label = f"{name} (slope {exponent:.2f})" if exponent is not None else name
        line = None
        if curve["values"]:
            (line,) = axis.plot(curve["interactions"], curve["values"], marker="o", label=label,
                                color=colours(number % 20), linestyle="-" if number < 20 else "--")
        for anchor, (x, y) in curve["anchors"].items():
            axis.scatter([x], [y], marker="*", s=120, color=line.get_color() if line else None,
                         label=None if line else f"{name} ({anchor})")
            axis.annotate(anchor, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    xs = sorted({x for curve in curve_table.values() for x in curve["interactions"]})
    if len(xs) > 1:  # a slope-1 guide through the smallest size, so "linear" can be read off the plot
        times.plot([xs[0], xs[-1]], [1.0, xs[-1] / xs[0]], color="grey", linestyle=":", label="slope 1 (guide)")
    for axis, ylabel in ((times, "seconds"), (memory, "peak RSS (MB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("interactions")
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    times.set_title("time per epoch / per pass (stars: real datasets)")
    memory.set_title("peak resident memory per phase")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def merge_records(paths: list[str]) -> dict:
    """One record from several runs: phases joined per size (later files win), curves refitted."""
    runs, sizes = [], {}
    for index, path in enumerate(paths):
        record = json.loads(Path(path).read_text())
        runs.append({key: record.get(key) for key in ("command", "date", "commit", "hardware", "load_average",
                                                      "wall_s", "settings", "model_settings")})
        for size in record["sizes"]:
            entry = sizes.setdefault(size["name"], {**size, "phases": {}})
            for key in ("users", "items", "train", "test", "interactions", "floors"):
                if size.get(key) is not None:
                    entry[key] = size[key]
            for phase, measured in size["phases"].items():
                if phase == "generate" and entry["phases"].get("generate", {}).get("status") == "ok":
                    continue  # one graph per size: the first run that built it
                entry["phases"][phase] = {**measured, "run": index}
            if size.get("broke_first"):
                entry["broke_first"] = size["broke_first"]
    ordered = sorted(sizes.values(), key=lambda s: (s["kind"] != "synthetic", s.get("interactions") or 0))
    first = json.loads(Path(paths[0]).read_text())
    return {"benchmark": "scaling", "command": "python benchmarks/scaling.py --merge " + " ".join(paths),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "runs": runs, "floors_doc": first.get("floors_doc"),
            "sizes": ordered, "curves": curves(ordered)}


def write_record(record: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
    plot(record["curves"], out.with_suffix(".png"))
    print(f"written {out} and {out.with_suffix('.png')}")
    for name, curve in record["curves"].items():
        print(f"  {name}: exponent {curve['exponent']}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.merge:
        write_record(merge_records(args.merge), Path(args.out))
        return 0
    specs = [{"kind": "synthetic", "name": f"synthetic-{int(n)}", "interactions": int(n)} for n in args.sizes]
    specs += [{"kind": "anchor", "name": name, "interactions": None} for name in args.anchors]
    import_phase_modules()
    own_cache = args.cache_dir is None
    cache_root = Path(tempfile.mkdtemp(prefix="graphrec-scaling-") if own_cache else args.cache_dir)
    load_start, started = os.getloadavg(), time.perf_counter()
    broken: dict[str, tuple[str, str]] = {}  # phase -> (size, limit) it broke at: skipped at larger sizes
    sizes = []
    try:
        for spec in specs:
            cache = cache_root / spec["name"]
            entry = {**spec, "phases": {}}
            sizes.append(entry)
            for phase in ["generate"] + [p for p in args.phases if p != "generate"]:
                if phase == "pyg_csr" and (entry["interactions"] or 0) > args.pyg_max_interactions:
                    entry["phases"][phase] = {"status": "skipped", "reason": "above --pyg-max-interactions"}
                    continue
                if phase in broken and spec["kind"] == "synthetic":
                    at, limit = broken[phase]
                    entry["phases"][phase] = {"status": "skipped", "reason": f"broke ({limit}) at {at}"}
                    entry.setdefault("broke_first", {"phase": phase, "limit": limit, "at_smaller_size": at})
                    if phase == "generate":
                        break
                    continue
                print(f"[{spec['name']}] {phase} ...", flush=True)
                record = watch_phase(phase, spec, args, cache)
                entry["phases"][phase] = record
                print(f"[{spec['name']}] {phase}: {_summary(record)}", flush=True)
                if record["status"] in ("memory", "time"):
                    entry.setdefault("broke_first", {"phase": phase, "limit": record["status"]})
                    broken.setdefault(phase, (spec["name"], record["status"]))
                if phase == "generate":
                    if record["status"] != "ok":
                        break
                    entry.update({k: record[k] for k in ("users", "items", "train", "test", "interactions")})
                    entry["floors"] = floors(entry["users"], entry["items"], entry["train"], entry["test"], args)
                phase_floor = entry.get("floors", {}).get(phase)
                if phase_floor and record.get("peak_rss_mb"):
                    own = record["peak_rss_mb"] - record.get("rss_at_start_mb", 0.0)
                    record.update(floor=phase_floor, own_peak_mb=round(own, 1),
                                  own_peak_over_floor=round(own / max(phase_floor["floor_mb"], 1e-3), 2))
            entry.setdefault("broke_first", None)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        if own_cache:
            shutil.rmtree(cache_root, ignore_errors=True)
    curve_table = curves(sizes)
    out = Path(args.out)
    record = {
        "benchmark": "scaling", "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": git_commit(),
        "hardware": hardware(),
        "load_average": {"at_start": [round(v, 2) for v in load_start],
                         "at_end": [round(v, 2) for v in os.getloadavg()]},
        "wall_s": round(time.perf_counter() - started, 1),
        "settings": {k: None if isinstance(v, float) and math.isinf(v) else v  # strict JSON has no Infinity
                     for k, v in vars(args).items() if k not in ("out", "cache_dir", "data_dir")},
        "model_settings": {"lightgcn": f"dim {args.dim}, {args.layers} layers, batch {args.batch_size}, Adam 1e-3",
                           "ultragcn": "Gowalla's official settings: batch 512, 1500 shared negatives, Adam 1e-4",
                           "evaluation": "recall/ndcg@20, train masked, random embeddings",
                           "recommend_all": "top 20, train masked, random embeddings, Parquet (snappy)"},
        "floors_doc": floors.__doc__.strip(),
        "sizes": sizes, "curves": curve_table,
    }
    write_record(record, out)
    return 0


def _summary(record: dict) -> str:
    keys = ("status", "seconds", "epoch_s", "step_s", "item_item_build_s", "all_users_s", "items_per_s",
            "triples_per_s", "peak_rss_mb", "wall_s", "error")
    return ", ".join(f"{k}={_short(record[k])}" for k in keys if k in record)


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


if __name__ == "__main__":
    raise SystemExit(main())
