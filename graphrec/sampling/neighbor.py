"""Multi-hop neighbour sampling: PyG ``Data``/``HeteroData`` minibatches from CSR graphs.

A batch has the layout of PyG's ``NeighborLoader`` output, so a user's own PyG model
runs on it unchanged: ``n_id`` (global id of every local node, seeds first),
``batch_size`` (the number of seeds; their outputs are ``out[:batch_size]``),
``edge_index`` in local ids with row = source (the sampled neighbour) and col = target
(the node it feeds), ``e_id``, and per-hop ``num_sampled_nodes``/``num_sampled_edges``
(for ``trim_to_layer``). Hop ``h`` samples ``fanouts[h]`` neighbours of the nodes first
reached in hop ``h - 1`` (the seeds for hop 0), as PyG does.

Graphs are CSR adjacencies where row ``v`` lists the nodes ``v`` receives messages from
(the CSC of ``edge_index`` by target, PyG's sampling layout). A batch depends only on
``(seed, epoch, batch number)``: the draws are counter-based (see
``graphrec.kernels.neighbor_sampling``), so the thread count never changes them.
"""
from __future__ import annotations

import threading
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from graphrec.data.csr import CSRGraph
from graphrec.kernels.neighbor_sampling import (relabel, reset_node_map, sample_hop, sample_hop_serial,
                                                sample_multihop)
from graphrec.sampling.base import NodeSeeds, Sampler, as_ids, sample_batches

EdgeType = tuple[str, str, str]


def _pyg_data_classes():
    # Imported on use: torch_geometric takes seconds to import, and feature stores or
    # worker processes that only import graphrec.sampling should not pay for it.
    from torch_geometric.data import Data, HeteroData

    return Data, HeteroData


def _hop_seed(seed: int, hop: int, relation: int = 0) -> np.uint64:
    return np.random.SeedSequence([seed, hop, relation]).generate_state(1, np.uint64)[0]


class _NodeMaps:
    """Dense ``global -> local`` arrays, one per concurrent batch, kept all -1 between batches."""

    def __init__(self, sizes: Mapping[str, int]):
        self.sizes = dict(sizes)
        self._free: list[dict[str, np.ndarray]] = []
        self._lock = threading.Lock()

    def acquire(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._free:
                return self._free.pop()
        # int32 halves the cache footprint of the one random access per sampled edge.
        return {t: np.full(n, -1, dtype=np.int32) for t, n in self.sizes.items()}

    def release(self, maps: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._free.append(maps)


def _fanouts_by_relation(fanouts, relations: Sequence[EdgeType]) -> tuple[int, dict[EdgeType, list[int]]]:
    if isinstance(fanouts, Mapping):
        table = {tuple(r): [int(f) for f in fanouts[r]] for r in relations if r in fanouts}
        missing = [r for r in relations if r not in table]
        if missing:
            raise ValueError(f"no fan-outs for relations {missing}")
    else:
        table = {r: [int(f) for f in fanouts] for r in relations}
    hops = {len(f) for f in table.values()}
    if len(hops) != 1:
        raise ValueError(f"every relation needs the same number of hops, got {sorted(hops)}")
    return hops.pop(), table


class NeighborSampler(Sampler):
    """Multi-hop neighbour sampling over homogeneous or heterogeneous CSR graphs.

    ``graph`` is one of:

    - a ``scipy.sparse`` matrix or :class:`CSRGraph` (homogeneous; row ``v`` lists the
      neighbours ``v`` aggregates from);
    - a ``torch_geometric.data.Data`` (its ``edge_index``, source -> target);
    - a dict ``{(src_type, relation, dst_type): CSR}`` whose CSR rows are ``dst_type``
      nodes and indices ``src_type`` nodes, with ``num_nodes={type: count}``;
    - a ``torch_geometric.data.HeteroData``.

    ``fanouts``: neighbours per hop (``-1``: all); for heterogeneous graphs either one
    list for every relation or ``{relation: list}``. ``replace``: draw with replacement
    (exactly ``fanout`` per node with any neighbour) or without (``min(fanout, degree)``
    distinct neighbours).

    Not thread-bound: concurrent :meth:`sample` calls each take their own node map.
    """

    def __init__(self, graph, fanouts, replace: bool = False, seed: int = 0, num_nodes=None,
                 parallel_frontier: int = 65536):
        self.replace = bool(replace)
        # Homogeneous batches with fewer seeds are drawn in one pass on the calling thread;
        # otherwise hop by hop, each frontier at least this large split over threads. The
        # draws are the same either way. Starting a parallel region costs more than it
        # saves on small frontiers: loaders parallelise over batches instead.
        self.parallel_frontier = int(parallel_frontier)
        self.seed = int(seed)
        self.heterogeneous, self.relations, sizes = self._read_graph(graph, num_nodes)
        edge_types = list(self.relations)
        self.num_hops, self.fanouts = _fanouts_by_relation(fanouts, edge_types)
        self.num_nodes = sizes
        self._maps = _NodeMaps(sizes)

    # ------------------------------------------------------------------ graph input
    @staticmethod
    def _read_graph(graph, num_nodes):
        Data, HeteroData = _pyg_data_classes()
        if isinstance(graph, HeteroData):
            sizes = {t: int(graph[t].num_nodes) for t in graph.node_types}
            relations = {et: CSRGraph.from_edge_index(graph[et].edge_index, sizes[et[0]], sizes[et[2]])
                         for et in graph.edge_types}
            return True, relations, sizes
        if isinstance(graph, Mapping):
            if num_nodes is None or not isinstance(num_nodes, Mapping):
                raise ValueError("a dict of relations needs num_nodes={node_type: count}")
            sizes = {t: int(n) for t, n in num_nodes.items()}
            relations = {}
            for et, adjacency in graph.items():
                et = tuple(et)
                csr = adjacency if isinstance(adjacency, CSRGraph) else CSRGraph.from_scipy(adjacency)
                if csr.num_targets != sizes[et[2]] or csr.num_sources != sizes[et[0]]:
                    raise ValueError(f"{et}: CSR has shape ({csr.num_targets}, {csr.num_sources}), expected "
                                     f"({sizes[et[2]]}, {sizes[et[0]]}) = (num {et[2]}, num {et[0]})")
                relations[et] = csr
            return True, relations, sizes
        if isinstance(graph, Data):
            n = int(graph.num_nodes)
            csr = CSRGraph.from_edge_index(graph.edge_index, n)
        else:
            csr = graph if isinstance(graph, CSRGraph) else CSRGraph.from_scipy(graph)
            n = csr.num_targets
            if csr.num_sources != n:
                raise ValueError(f"a homogeneous graph needs a square adjacency, got ({n}, {csr.num_sources})")
        return False, {("node", "to", "node"): csr}, {"node": n}

    # ------------------------------------------------------------------ sampling
    def sample(self, seeds, batch_seed: int | None = None, seed_type: str | None = None):
        """One minibatch around ``seeds`` (global ids of ``seed_type``, or a dict type -> ids),
        drawn with ``batch_seed`` (default: the sampler's seed).

        Repeated seeds are merged; ``input_index`` gives each requested seed's local row.
        Returns ``Data`` for homogeneous graphs, ``HeteroData`` otherwise.
        """
        batch_seed_value = self.seed if batch_seed is None else batch_seed
        if isinstance(seeds, Mapping):
            seeds_by_type = {t: as_ids(s) for t, s in seeds.items()}
        else:
            if seed_type is None:
                if self.heterogeneous:
                    raise ValueError("heterogeneous graphs need seed_type or a dict of seeds")
                seed_type = "node"
            seeds_by_type = {seed_type: as_ids(seeds)}
        for t, ids in seeds_by_type.items():
            if t not in self.num_nodes:
                raise KeyError(f"unknown node type {t!r}")
            if ids.size and (ids.min() < 0 or ids.max() >= self.num_nodes[t]):
                raise IndexError(f"seed ids of {t!r} out of range [0, {self.num_nodes[t]})")
        maps = self._maps.acquire()
        if not self.heterogeneous:
            seeds = seeds_by_type.get("node", np.zeros(0, dtype=np.int64))
            if seeds.shape[0] < self.parallel_frontier:
                return self._sample_in_one_pass(seeds, maps, batch_seed_value)
        n_ids: dict[str, list[np.ndarray]] = {t: [] for t in self.num_nodes}
        try:
            return self._sample(seeds_by_type, maps, batch_seed_value, n_ids)
        finally:
            for t, parts in n_ids.items():  # also after an error: the maps must go back all -1
                for nodes in parts:
                    reset_node_map(maps[t], nodes)
            self._maps.release(maps)

    def _sample_in_one_pass(self, seeds, maps, seed_value):
        """Homogeneous batches: every hop in one kernel call on this thread (same batch as hop by hop)."""
        node_map = maps["node"]
        et = ("node", "to", "node")
        csr = self.relations[et]
        fanouts = np.asarray(self.fanouts[et], dtype=np.int64)
        hop_seeds = np.array([_hop_seed(seed_value, hop, 0) for hop in range(self.num_hops)], dtype=np.uint64)
        n_id = None
        try:
            n_id, edge_index, positions, input_index, nodes_per_hop, edges_per_hop = sample_multihop(
                csr.indptr, csr.indices, seeds, fanouts, self.replace, hop_seeds, node_map)
        finally:
            if n_id is not None:
                reset_node_map(node_map, n_id)
            else:   # failed mid-way: clear the whole map rather than leave stale entries
                node_map.fill(-1)
            self._maps.release(maps)
        Data, _ = _pyg_data_classes()
        return Data(edge_index=torch.from_numpy(edge_index), n_id=torch.from_numpy(n_id),
                    e_id=torch.from_numpy(csr.edge_id(positions)), num_nodes=int(n_id.shape[0]),
                    batch_size=int(nodes_per_hop[0]), input_index=torch.from_numpy(input_index),
                    num_sampled_nodes=nodes_per_hop.tolist(), num_sampled_edges=edges_per_hop.tolist())

    def _sample(self, seeds_by_type, maps, seed_value, n_ids):
        """Fills ``n_ids[type]`` with the batch's new nodes hop by hop (the caller resets the maps)."""
        counts = {t: 0 for t in self.num_nodes}
        input_index, frontier = {}, {}
        for t, ids in seeds_by_type.items():
            local, new = relabel(ids, maps[t], 0)
            input_index[t], frontier[t] = local, (new, 0)
            n_ids[t].append(new)
            counts[t] = new.shape[0]
        batch_size = dict(counts)
        nodes_per_hop = {t: [counts[t]] for t in self.num_nodes}
        rows = {et: [] for et in self.relations}
        cols = {et: [] for et in self.relations}
        eids = {et: [] for et in self.relations}
        edges_per_hop = {et: [] for et in self.relations}
        for hop in range(self.num_hops):
            next_frontier = {t: [] for t in self.num_nodes}
            hop_start = dict(counts)
            for r, (et, csr) in enumerate(self.relations.items()):
                src, _, dst = et
                nodes, offset = frontier.get(dst, (None, 0))
                if nodes is None or nodes.shape[0] == 0:
                    edges_per_hop[et].append(0)
                    continue
                draw = sample_hop if nodes.shape[0] >= self.parallel_frontier else sample_hop_serial
                neighbors, targets, positions = draw(
                    csr.indptr, csr.indices, nodes, offset, self.fanouts[et][hop], self.replace,
                    _hop_seed(seed_value, hop, r))
                local, new = relabel(neighbors, maps[src], counts[src])
                counts[src] += new.shape[0]
                n_ids[src].append(new)
                next_frontier[src].append(new)
                rows[et].append(local)
                cols[et].append(targets)
                eids[et].append(csr.edge_id(positions))
                edges_per_hop[et].append(int(local.shape[0]))
            frontier = {}
            for t, parts in next_frontier.items():
                new = np.concatenate(parts) if parts else np.zeros(0, np.int64)
                frontier[t] = (new, hop_start[t])
                nodes_per_hop[t].append(int(new.shape[0]))
        return self._to_pyg({t: _cat(parts) for t, parts in n_ids.items()}, batch_size, input_index, rows, cols, eids, nodes_per_hop,
                            edges_per_hop)

    def _to_pyg(self, n_ids, batch_size, input_index, rows, cols, eids, nodes_per_hop, edges_per_hop):
        Data, HeteroData = _pyg_data_classes()
        def edge_index(et):
            total = sum(part.shape[0] for part in rows[et])
            pairs = np.empty((2, total), dtype=np.int64)   # filled in place: no stack copy
            if total:
                np.concatenate(rows[et], out=pairs[0])
                np.concatenate(cols[et], out=pairs[1])
            return torch.from_numpy(pairs)

        if not self.heterogeneous:
            et = ("node", "to", "node")
            n_id = torch.from_numpy(n_ids["node"])
            return Data(edge_index=edge_index(et), n_id=n_id, e_id=torch.from_numpy(_cat(eids[et])),
                        num_nodes=int(n_id.shape[0]), batch_size=batch_size["node"],
                        input_index=torch.from_numpy(input_index.get("node", np.zeros(0, np.int64))),
                        num_sampled_nodes=nodes_per_hop["node"], num_sampled_edges=edges_per_hop[et])
        data = HeteroData()
        for t in self.num_nodes:
            data[t].n_id = torch.from_numpy(n_ids[t])
            data[t].num_nodes = int(n_ids[t].shape[0])
            data[t].num_sampled_nodes = nodes_per_hop[t]
            if t in input_index:
                data[t].batch_size = batch_size[t]
                data[t].input_index = torch.from_numpy(input_index[t])
        for et in self.relations:
            data[et].edge_index = edge_index(et)
            data[et].e_id = torch.from_numpy(_cat(eids[et]))
            data[et].num_sampled_edges = edges_per_hop[et]
        return data

    # ------------------------------------------------------------------ loaders
    def loader(self, seeds=None, batch_size: int = 1024, shuffle: bool = True, epoch: int = 0,
               seed_type: str | None = None, drop_last: bool = False, num_workers: int = 0,
               start: int = 0) -> Iterator:
        """The epoch's minibatches over ``seeds`` (default: every node of ``seed_type``), from batch
        number ``start`` on (:func:`~graphrec.sampling.base.sample_batches`).

        Batch ``b`` of epoch ``e`` is sampled with ``batch_seed(seed, e, b)``, so ``start`` skips
        batches without drawing them and ``num_workers`` (threads sampling whole batches ahead,
        in parallel: the kernels release the GIL) changes the speed, never the batches or their order.
        """
        if seed_type is None:
            if self.heterogeneous:
                raise ValueError("heterogeneous graphs need seed_type")
            seed_type = "node"
        ids = np.arange(self.num_nodes[seed_type]) if seeds is None else seeds
        schedule = NodeSeeds(ids, batch_size, shuffle=shuffle, drop_last=drop_last, seed=self.seed,
                             node_type=seed_type)
        return sample_batches(self, schedule, epoch, start, num_workers)


def _cat(parts) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
