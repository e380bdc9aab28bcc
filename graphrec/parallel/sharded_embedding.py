"""An embedding table too large for one process, its rows sharded across ranks.

Rank ``r`` holds rows ``offsets[r]:offsets[r + 1]`` (contiguous, balanced blocks). A lookup works on
any ids: each rank sends the ids it needs to the ranks that own them, the owners answer with the
rows, and in backward the rows' gradients travel back to their owners, which add them into their
shard. Three ``all_to_all`` exchanges per step (ids, rows; gradients in backward) plus one of the
per-peer counts, on plain ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Why not torchrec: its sharded embedding collections run on fbgemm-gpu kernels, a separate wheel
built for each torch release (``fbgemm-gpu-cpu`` 1.9.0 is the newest on PyPI, built for an older
torch than this project's 2.14.1), and its planner targets GPUs. Row-wise sharding of one table is
a few collectives; they are written here so every byte they move is counted exactly
(:attr:`ShardedEmbedding.bytes`).
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist
from torch import nn


def row_offsets(num_rows: int, world_size: int) -> list[int]:
    """Block boundaries: rank ``r`` owns ``offsets[r]:offsets[r+1]``; the first ranks take the remainder."""
    base, extra = divmod(num_rows, world_size)
    offsets = [0]
    for rank in range(world_size):
        offsets.append(offsets[-1] + base + (1 if rank < extra else 0))
    return offsets


class ShardedEmbedding(nn.Module):
    """``nn.Embedding(num_embeddings, embedding_dim)`` whose weight is split row-wise over the ranks.

    ``weight`` is this rank's shard (a plain parameter: any optimizer steps it locally). Every rank
    calls ``forward`` at the same time (it is a collective), each with its own ids. ``bytes`` counts,
    per phase, what this rank sends to *other* ranks (its own rows are copied locally and not
    counted): ``counts`` (one int64 per peer), ``ids`` (int64), ``rows`` and ``grads``
    (``embedding_dim`` values of the weight's dtype per row).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int | None = None,
                 world_size: int | None = None, group=None, init_std: float = 0.1, seed: int = 0):
        super().__init__()
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank(group) if distributed else 0)
        self.world_size = world_size if world_size is not None else (dist.get_world_size(group) if distributed else 1)
        if num_embeddings < self.world_size:
            raise ValueError(f"{num_embeddings} rows cannot be split over {self.world_size} ranks")
        self.group = group
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.offsets = row_offsets(num_embeddings, self.world_size)
        self.start, self.stop = self.offsets[self.rank], self.offsets[self.rank + 1]
        # Each shard draws its own rows from a generator seeded by (seed, rank): no rank ever
        # materialises the whole table.
        generator = torch.Generator().manual_seed(seed * 1_000_003 + self.rank)
        self.weight = nn.Parameter(torch.randn(self.stop - self.start, embedding_dim, generator=generator) * init_std)
        self.bytes: dict[str, int] = defaultdict(int)
        self._boundaries = torch.tensor(self.offsets[1:-1], dtype=torch.long)

    def owner(self, ids: torch.Tensor) -> torch.Tensor:
        """The rank owning each id."""
        return torch.bucketize(ids, self._boundaries.to(ids.device), right=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        shape = ids.shape
        ids = ids.reshape(-1).long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_embeddings):
            raise IndexError(f"ids must lie in [0, {self.num_embeddings})")
        rows = _ShardedLookup.apply(ids, self.weight, self)
        return rows.reshape(*shape, self.embedding_dim)

    def _count(self, phase: str, per_peer: list[int], row_bytes: int) -> None:
        self.bytes[phase] += sum(n for peer, n in enumerate(per_peer) if peer != self.rank) * row_bytes

    def _all_to_all(self, tensor: torch.Tensor, send: list[int], recv: list[int]) -> torch.Tensor:
        out = tensor.new_empty((sum(recv), *tensor.shape[1:]))
        if self.world_size == 1:
            out.copy_(tensor)
        else:
            dist.all_to_all_single(out, tensor.contiguous(), recv, send, group=self.group)
        return out

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, rows {self.start}:{self.stop} "
                f"on rank {self.rank} of {self.world_size}")


class _ShardedLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ids, weight, table: ShardedEmbedding):
        owner = table.owner(ids)
        order = torch.argsort(owner, stable=True)
        send = torch.bincount(owner, minlength=table.world_size)
        recv = torch.empty_like(send)
        if table.world_size == 1:
            recv.copy_(send)
        else:
            dist.all_to_all_single(recv, send, group=table.group)
        send, recv = send.tolist(), recv.tolist()
        table._count("counts", [1] * table.world_size, 8)
        asked = table._all_to_all(ids[order], send, recv)             # ids other ranks want from my shard
        table._count("ids", send, 8)
        local = asked - table.start
        answered = table._all_to_all(weight[local], recv, send)      # my rows go back to who asked
        row_bytes = table.embedding_dim * weight.element_size()
        table._count("rows", recv, row_bytes)
        rows = torch.empty_like(answered)
        rows[order] = answered
        ctx.save_for_backward(order, local)
        ctx.table, ctx.send, ctx.recv, ctx.shard_rows = table, send, recv, weight.shape[0]
        return rows

    @staticmethod
    def backward(ctx, grad_rows):
        order, local = ctx.saved_tensors
        table = ctx.table
        grads = table._all_to_all(grad_rows[order], ctx.send, ctx.recv)   # to the rows' owners
        table._count("grads", ctx.send, table.embedding_dim * grad_rows.element_size())
        grad_weight = grad_rows.new_zeros(ctx.shard_rows, table.embedding_dim)
        grad_weight.index_add_(0, local, grads)
        return None, grad_weight, None


__all__ = ["ShardedEmbedding", "row_offsets"]
