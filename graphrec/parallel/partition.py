"""Graph partitions and chunks (METIS) and the per-rank index plans the engine runs on.

Two levels, both METIS (``pymetis``, the maintained binding of METIS 5; a home-made partitioner
would make the graph-parallel baseline look worse than it is):

* **partitions** (graph parallelism): the nodes are split into ``P`` parts; a rank owns one part,
  computes its rows and receives the rows of remote in-neighbours ("halo") every layer.
* **chunks** (GNNPipe): each partition's nodes are split again into ``C`` chunks with METIS on the
  partition's induced subgraph. Chunks flow through the pipeline one after the other; chunk ``c``
  sees its neighbours in other chunks through the historical-embedding tables.

A :class:`RankPlan` holds everything one rank (one partition) needs, in *local* ids: owned nodes
first (ordered by chunk, then global id, so every chunk is a contiguous slice), then halo nodes
ordered by (chunk of their owner, owner, global id) so that the halo rows of one chunk are also a
contiguous slice and the rows received from one peer for one chunk are contiguous within it.
Edges carry the symmetric GCN normalisation with self loops computed on the *whole* graph, so a
partitioned layer computes exactly the rows a single-process layer computes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def metis_parts(edge_index: torch.Tensor, num_nodes: int, num_parts: int, seed: int = 0) -> np.ndarray:
    """Part id per node: METIS (k-way, edge-cut objective) on the symmetrised graph without self loops.

    ``num_parts == 1`` returns zeros without calling METIS. METIS is seeded (``Options(seed=...)``),
    so every rank computes the same partition; the engine still broadcasts rank 0's to be safe.
    """
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1, got {num_parts}")
    if num_parts == 1 or num_nodes == 0:
        return np.zeros(num_nodes, dtype=np.int64)
    if num_parts > num_nodes:
        raise ValueError(f"cannot split {num_nodes} nodes into {num_parts} parts")
    import pymetis
    import scipy.sparse as sp

    src, dst = edge_index.cpu().numpy()
    keep = src != dst
    adjacency = sp.coo_matrix((np.ones(int(keep.sum()), dtype=np.int8), (src[keep], dst[keep])),
                              shape=(num_nodes, num_nodes)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).tocsr()
    adjacency.sort_indices()
    result = pymetis.part_graph(num_parts, adjacency=pymetis.CSRAdjacency(adjacency.indptr.astype(np.int64),
                                                                          adjacency.indices.astype(np.int64)),
                                options=pymetis.Options(seed=seed))
    parts = np.asarray(result.vertex_part, dtype=np.int64)
    # METIS may leave a part empty on tiny or disconnected graphs: fill it from the largest part so
    # every rank and every chunk has work (keeps the pipeline schedule uniform).
    for part in range(num_parts):
        if not (parts == part).any():
            largest = np.bincount(parts, minlength=num_parts).argmax()
            members = np.flatnonzero(parts == largest)
            parts[members[: max(1, members.size // 2)]] = part
    return parts


def partition_and_chunk(edge_index: torch.Tensor, num_nodes: int, num_parts: int, num_chunks: int,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(part, chunk) per node: METIS into ``num_parts``, then METIS of each part's induced subgraph into
    ``num_chunks`` chunks (chunk ids are local to the part: 0..num_chunks-1 in every part)."""
    parts = metis_parts(edge_index, num_nodes, num_parts, seed)
    chunks = np.zeros(num_nodes, dtype=np.int64)
    if num_chunks > 1:
        src, dst = edge_index.cpu().numpy()
        for part in range(num_parts):
            members = np.flatnonzero(parts == part)
            local = np.full(num_nodes, -1, dtype=np.int64)
            local[members] = np.arange(members.size)
            inside = (local[src] >= 0) & (local[dst] >= 0)
            sub = torch.from_numpy(np.stack([local[src[inside]], local[dst[inside]]]))
            chunks[members] = metis_parts(sub, members.size, num_chunks, seed)
    return parts, chunks


def gcn_edge_weights(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges with self loops and their ``D^-1/2 (A + I) D^-1/2`` weights (PyG's ``gcn_norm``)."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    edge_index, weight = gcn_norm(edge_index, None, num_nodes, add_self_loops=True, dtype=torch.float32)
    return edge_index, weight


@dataclass
class ChunkPlan:
    """Index plan of one chunk on one rank (all tensors int64 unless said)."""

    own: slice                      # local rows of the chunk's owned nodes (contiguous)
    halo: slice                     # local rows of halo nodes whose owner put them in this chunk
    src: torch.Tensor               # per edge: row in cat([own rows, halo rows, stale rows])
    dst: torch.Tensor               # per edge: position of the target within ``own``
    weight: torch.Tensor            # per edge: normalisation (float32)
    stale: torch.Tensor             # local rows of in-neighbours in *other* chunks (historical rows)
    first_src: torch.Tensor         # per edge: local row of the source (first layer: features are local)
    recv_pos: list[torch.Tensor] = field(default_factory=list)   # per peer: positions within ``halo``
    send_pos: list[torch.Tensor] = field(default_factory=list)   # per peer: positions within ``own``


@dataclass
class RankPlan:
    """One partition's nodes, halo and per-chunk plans (see the module docstring for the ordering)."""

    part: int
    num_parts: int
    global_ids: torch.Tensor        # local row -> global node id (owned then halo)
    num_owned: int
    chunks: list[ChunkPlan]

    @property
    def num_local(self) -> int:
        return int(self.global_ids.numel())

    @property
    def num_chunks(self) -> int:
        return len(self.chunks)

    @property
    def owned_ids(self) -> torch.Tensor:
        return self.global_ids[: self.num_owned]


def build_rank_plans(edge_index: torch.Tensor, num_nodes: int, parts: np.ndarray, chunks: np.ndarray,
                     merge_chunks: bool = False) -> list[RankPlan]:
    """The plans of all partitions (every rank builds all of them: send lists need the peers' halos).

    ``merge_chunks=True`` gives the exact (staleness-free) plan: one chunk holding every owned node,
    with the *same* local ordering as the chunked plan, so both plans share one set of history
    tables (the engine uses it for warm-up epochs and for evaluation).
    """
    num_parts = int(parts.max()) + 1 if parts.size else 1
    num_chunks = int(chunks.max()) + 1 if chunks.size else 1
    groups = [np.arange(num_chunks)] if merge_chunks else [np.array([c]) for c in range(num_chunks)]
    full, weight = gcn_edge_weights(edge_index, num_nodes)
    src_all, dst_all = full[0].numpy(), full[1].numpy()
    weight_all = weight.numpy()
    owners, halos, locals_ = [], [], []
    for part in range(num_parts):
        owned = np.flatnonzero(parts == part)
        owned = owned[np.lexsort((owned, chunks[owned]))]
        incoming = parts[dst_all] == part
        remote = np.unique(src_all[incoming][parts[src_all[incoming]] != part])
        halo = remote[np.lexsort((remote, parts[remote], chunks[remote]))]
        local = np.full(num_nodes, -1, dtype=np.int64)
        local[np.concatenate([owned, halo])] = np.arange(owned.size + halo.size)
        owners.append(owned)
        halos.append(halo)
        locals_.append(local)
    plans = []
    for part in range(num_parts):
        owned, halo, local = owners[part], halos[part], locals_[part]
        incoming = parts[dst_all] == part
        chunk_plans = []
        for group in groups:
            own_rows = np.flatnonzero(np.isin(chunks[owned], group))
            own = slice(int(own_rows[0]), int(own_rows[-1]) + 1) if own_rows.size else slice(0, 0)
            halo_rows = owned.size + np.flatnonzero(np.isin(chunks[halo], group))
            halo_slice = (slice(int(halo_rows[0]), int(halo_rows[-1]) + 1) if halo_rows.size
                          else slice(owned.size, owned.size))
            mask = incoming & (local[dst_all] >= own.start) & (local[dst_all] < own.stop)
            e_src, e_dst, e_w = local[src_all[mask]], local[dst_all[mask]] - own.start, weight_all[mask]
            in_own = (e_src >= own.start) & (e_src < own.stop)
            in_halo = (e_src >= halo_slice.start) & (e_src < halo_slice.stop)
            stale = np.unique(e_src[~in_own & ~in_halo])
            n_own, n_halo = own.stop - own.start, halo_slice.stop - halo_slice.start
            position = np.empty_like(e_src)
            position[in_own] = e_src[in_own] - own.start
            position[in_halo] = n_own + e_src[in_halo] - halo_slice.start
            other = ~in_own & ~in_halo
            position[other] = n_own + n_halo + np.searchsorted(stale, e_src[other])
            chunk_halo = halo[halo_slice.start - owned.size: halo_slice.stop - owned.size]
            recv_pos = [torch.from_numpy(np.flatnonzero(parts[chunk_halo] == peer)) if peer != part
                        else torch.zeros(0, dtype=torch.long) for peer in range(num_parts)]
            send_pos = []
            for peer in range(num_parts):
                if peer == part:
                    send_pos.append(torch.zeros(0, dtype=torch.long))
                    continue
                theirs = halos[peer]
                wanted = theirs[(parts[theirs] == part) & np.isin(chunks[theirs], group)]
                send_pos.append(torch.from_numpy(local[wanted] - own.start))
            chunk_plans.append(ChunkPlan(
                own=own, halo=halo_slice, src=torch.from_numpy(position), dst=torch.from_numpy(e_dst),
                weight=torch.from_numpy(np.ascontiguousarray(e_w)).float(), stale=torch.from_numpy(stale),
                first_src=torch.from_numpy(e_src), recv_pos=recv_pos, send_pos=send_pos))
        plans.append(RankPlan(part, num_parts, torch.from_numpy(np.concatenate([owned, halo])), int(owned.size),
                              chunk_plans))
    return plans
