"""DGL interop: graphrec graphs and batches <-> ``dgl.DGLGraph``.

graphrec's graphs are PyG ``Data``/``HeteroData`` (what the samplers return), :class:`CSRGraph`
(what they sample from) or dicts of relations. These converters move them to DGL and back so a
user's DGL model runs on our batches and a DGL graph feeds our samplers. DGL is imported only
when a converter is called: the core never needs it, and DGL wheels pin old torch releases (see
``benchmarks/setup_dgl_env.sh`` for an environment where it imports).

Conventions (both directions):

- edges keep their direction and order: PyG ``edge_index[0]`` (source) -> ``edge_index[1]``
  (target) is DGL's ``(src, dst)``, edge ``e`` of one is edge ``e`` of the other;
- node tensors (first dimension = number of nodes) go to ``ndata``, edge tensors (first
  dimension = number of edges) to ``edata``, under the same names, except that a batch's
  ``n_id``/``e_id`` become DGL's ``dgl.NID``/``dgl.EID`` (``"_ID"``: what DGL's own samplers and
  ``dgl.node_subgraph`` write) and come back as ``n_id``/``e_id``;
- heterogeneous relations are canonical ``(src_type, relation, dst_type)`` triples in both;
- other attributes (a batch's ``batch_size``, ``num_sampled_nodes``...) have no place in a
  ``DGLGraph``; :func:`to_dgl` returns the graph only, and a batch's seeds stay its first
  ``batch_size`` nodes (``input_index`` maps requested seeds to them).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from graphrec.data.csr import CSRGraph

_NID, _EID = "_ID", "_ID"   # dgl.NID / dgl.EID (checked against dgl at call time)


def _dgl():
    try:
        import dgl
    except Exception as error:  # ImportError, or DGL's own errors beside an unsupported torch
        raise ImportError(
            "graphrec's DGL converters need DGL, which did not import here "
            f"({type(error).__name__}: {error}). DGL's newest wheels for Python 3.11 (2.1.0) import only beside "
            "torch 2.0.0-2.2.1: make such an environment with `bash benchmarks/setup_dgl_env.sh`.") from error
    assert dgl.NID == _NID and dgl.EID == _EID
    return dgl


def _pyg():
    from torch_geometric.data import Data, HeteroData

    return Data, HeteroData


# --------------------------------------------------------------------------- to DGL
def to_dgl(graph, num_nodes: Mapping[str, int] | None = None):
    """A ``dgl.DGLGraph`` (homogeneous or heterogeneous) from a graphrec graph or batch.

    ``graph``: a PyG ``Data`` (e.g. a :class:`~graphrec.sampling.NeighborSampler` batch) or
    ``HeteroData``; a homogeneous :class:`CSRGraph` (row ``v`` lists the sources of ``v``'s
    in-edges, so ``v``'s DGL in-edges are that row; its ``edge_ids`` become ``edata[dgl.EID]``);
    or a dict ``{(src_type, relation, dst_type): CSRGraph or scipy CSR}`` with
    ``num_nodes={type: count}`` (the input of a heterogeneous ``NeighborSampler``).
    """
    dgl = _dgl()
    Data, HeteroData = _pyg()
    if isinstance(graph, HeteroData):
        relations = {tuple(et): (graph[et].edge_index[0], graph[et].edge_index[1]) for et in graph.edge_types}
        sizes = {t: int(graph[t].num_nodes) for t in graph.node_types}
        g = dgl.heterograph(relations, num_nodes_dict=sizes)
        for t in graph.node_types:
            _copy_attributes(graph[t], g.nodes[t].data, sizes[t], "n_id", _NID)
        for et in graph.edge_types:
            _copy_attributes(graph[et], g.edges[tuple(et)].data, int(graph[et].edge_index.shape[1]), "e_id", _EID,
                             skip=("edge_index",))
        return g
    if isinstance(graph, Data):
        n = int(graph.num_nodes)
        g = dgl.graph((graph.edge_index[0], graph.edge_index[1]), num_nodes=n)
        _copy_attributes(graph, g.ndata, n, "n_id", _NID, skip=("edge_index",))
        _copy_attributes(graph, g.edata, int(graph.edge_index.shape[1]), "e_id", _EID, skip=("edge_index",))
        return g
    if isinstance(graph, Mapping):
        if num_nodes is None:
            raise ValueError("a dict of relations needs num_nodes={node_type: count}")
        relations, edge_ids = {}, {}
        for et, adjacency in graph.items():
            csr = adjacency if isinstance(adjacency, CSRGraph) else CSRGraph.from_scipy(adjacency)
            src, dst = _csr_edges(csr)
            relations[tuple(et)] = (src, dst)
            if csr.edge_ids is not None:
                edge_ids[tuple(et)] = torch.from_numpy(csr.edge_ids)
        g = dgl.heterograph(relations, num_nodes_dict={t: int(n) for t, n in num_nodes.items()})
        for et, ids in edge_ids.items():
            g.edges[et].data[_EID] = ids
        return g
    csr = graph if isinstance(graph, CSRGraph) else CSRGraph.from_scipy(graph)
    if csr.num_sources != csr.num_targets:
        raise ValueError(f"a homogeneous CSRGraph must be square, got ({csr.num_targets}, {csr.num_sources}); "
                         "pass bipartite relations as a dict {(src_type, relation, dst_type): csr} with num_nodes")
    src, dst = _csr_edges(csr)
    g = dgl.graph((src, dst), num_nodes=csr.num_targets)
    if csr.edge_ids is not None:
        g.edata[_EID] = torch.from_numpy(csr.edge_ids)
    return g


def _csr_edges(csr: CSRGraph) -> tuple[torch.Tensor, torch.Tensor]:
    dst = np.repeat(np.arange(csr.num_targets, dtype=np.int64), np.diff(csr.indptr))
    return torch.from_numpy(np.ascontiguousarray(csr.indices, dtype=np.int64)), torch.from_numpy(dst)


def _copy_attributes(store, target, count: int, id_name: str, dgl_id: str, skip=()) -> None:
    for key, value in store.items():
        if key in skip or not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != count:
            continue
        target[dgl_id if key == id_name else key] = value


# --------------------------------------------------------------------------- from DGL
def from_dgl(g):
    """A PyG ``Data`` (one node and edge type) or ``HeteroData`` from a ``dgl.DGLGraph``.

    ``ndata``/``edata`` become node/edge attributes (``dgl.NID``/``dgl.EID`` as ``n_id``/``e_id``),
    so a subgraph DGL sampled keeps its global ids. The result feeds graphrec's samplers
    (``NeighborSampler(from_dgl(g), fanouts)``) and PyG layers. DGL message-flow blocks
    (``g.is_block``) have distinct source and destination node sets: convert them with
    :func:`blocks_to_batch`.
    """
    _dgl()
    Data, HeteroData = _pyg()
    if g.is_block:
        raise ValueError("a DGL block (message-flow graph) has separate source and destination nodes: "
                         "use blocks_to_batch(blocks)")
    if len(g.ntypes) == 1 and len(g.canonical_etypes) == 1:
        src, dst = g.edges(order="eid")
        data = Data(edge_index=torch.stack([src, dst]).long(), num_nodes=g.num_nodes())
        for key, value in g.ndata.items():
            data["n_id" if key == _NID else key] = value
        for key, value in g.edata.items():
            data["e_id" if key == _EID else key] = value
        return data
    data = HeteroData()
    for t in g.ntypes:
        data[t].num_nodes = g.num_nodes(t)
        for key, value in g.nodes[t].data.items():
            data[t]["n_id" if key == _NID else key] = value
    for et in g.canonical_etypes:
        src, dst = g.edges(order="eid", etype=et)
        data[et].edge_index = torch.stack([src, dst]).long()
        for key, value in g.edges[et].data.items():
            data[et]["e_id" if key == _EID else key] = value
    return data


def blocks_to_batch(blocks):
    """A homogeneous PyG batch (graphrec/PyG ``NeighborLoader`` layout) from DGL's sampled blocks.

    ``blocks`` are what ``dgl.dataloading.NeighborSampler.sample_blocks`` returns (input layer
    first). DGL keeps every layer's destination nodes as the first source nodes of the block,
    so the last block's source nodes enumerate the whole batch with the seeds first: they
    become ``n_id``; every block's edges, mapped to those local ids, are concatenated from the
    seeds' layer outward (hop 0 first, as in our batches). Unlike graphrec and PyG, DGL samples
    neighbours of *every* node of a layer, not only of the nodes new at that hop, so a DGL
    batch can repeat an edge in several hops; ``num_sampled_edges`` counts per hop.
    """
    Data, _ = _pyg()
    outer = blocks[0]                          # input layer: its src nodes are all the batch's nodes
    n_id = outer.srcdata[_NID]
    index = torch.full((int(n_id.max()) + 1,), -1, dtype=torch.long)
    index[n_id] = torch.arange(n_id.shape[0])
    rows, cols, e_ids, per_hop = [], [], [], []
    for block in reversed(blocks):             # seeds' layer first
        src, dst, eid = block.edges(form="all", order="eid")
        rows.append(index[block.srcdata[_NID][src]])
        cols.append(index[block.dstdata[_NID][dst]])
        e_ids.append(block.edata[_EID][eid] if _EID in block.edata else eid)
        per_hop.append(int(src.shape[0]))
    seeds = int(blocks[-1].num_dst_nodes())
    return Data(edge_index=torch.stack([torch.cat(rows), torch.cat(cols)]), n_id=n_id, e_id=torch.cat(e_ids),
                num_nodes=int(n_id.shape[0]), batch_size=seeds, num_sampled_edges=per_hop)
