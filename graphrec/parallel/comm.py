"""Counted point-to-point communication over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Every byte the engine moves between ranks goes through :class:`Comm`, which counts it at the
sender, per phase (``pipe_forward``, ``pipe_backward``, ``halo_forward``, ``halo_backward``,
``allreduce``, ``eval``...). Counting at the sender once per message makes the figures exact and
independent of hardware and backend: they are the numbers the communication-volume benchmark
compares (GNNPipe against graph parallelism).

Collectives (gradient all-reduce among the replicas of a stage, metric reductions) are counted
with the bandwidth-optimal ring model, ``2 (k - 1) / k`` times the tensor's bytes per rank for a
group of ``k`` ranks, since their actual traffic depends on the backend's algorithm.

Failures: every blocking wait has the process group's timeout (``ParallelConfig.timeout_s``); a
peer that dies surfaces as a ``RuntimeError``/``DistBackendError`` from gloo (connection closed)
or as the timeout, which :func:`guarded` turns into a :class:`PeerFailure` naming this rank, the
operation and the elapsed time.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch
import torch.distributed as dist


class PeerFailure(RuntimeError):
    """A communication with another rank failed or timed out (a rank died, hung or was killed)."""


@contextmanager
def guarded(rank: int, what: str):
    started = time.monotonic()
    try:
        yield
    except PeerFailure:
        raise
    except (RuntimeError, ConnectionError) as error:  # DistBackendError subclasses RuntimeError
        raise PeerFailure(f"rank {rank}: {what} failed after {time.monotonic() - started:.1f}s: a peer rank "
                          f"died, hung or timed out ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
                          ) from None


class Comm:
    """Counted p2p sends/receives and collectives of one rank (no-op shell when ``world_size == 1``)."""

    def __init__(self, rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu"):
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        self.bytes: dict[str, float] = defaultdict(float)
        self.messages: dict[str, int] = defaultdict(int)
        self._pending: list = []

    def reset(self) -> None:
        self.bytes.clear()
        self.messages.clear()

    def snapshot(self) -> dict[str, float]:
        return dict(self.bytes)

    def _count(self, phase: str, tensor: torch.Tensor, factor: float = 1.0) -> None:
        self.bytes[phase] += tensor.numel() * tensor.element_size() * factor
        self.messages[phase] += 1

    # ------------------------------------------------------------------ p2p
    def isend(self, tensor: torch.Tensor, dst: int, phase: str) -> None:
        """Non-blocking send; the request is kept (with the tensor) until :meth:`flush`."""
        tensor = tensor.detach().contiguous()
        self._count(phase, tensor)
        with guarded(self.rank, f"send to rank {dst} ({phase})"):
            self._pending.append((dist.isend(tensor, dst), tensor))

    def recv(self, shape, src: int, phase: str, dtype=torch.float32) -> torch.Tensor:
        out = torch.empty(shape, dtype=dtype, device=self.device)
        with guarded(self.rank, f"receive from rank {src} ({phase})"):
            dist.recv(out, src)
        return out

    def exchange(self, sends: dict[int, torch.Tensor], recv_shapes: dict[int, tuple], phase: str,
                 ) -> dict[int, torch.Tensor]:
        """All sends and receives with several peers at once (halo exchange); empty messages are
        skipped on both sides (sizes are known to both from the plan)."""
        operations, received = [], {}
        for peer, tensor in sends.items():
            if tensor.numel():
                tensor = tensor.detach().contiguous()
                self._count(phase, tensor)
                operations.append(dist.P2POp(dist.isend, tensor, peer))
        for peer, shape in recv_shapes.items():
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            received[peer] = out
            if out.numel():
                operations.append(dist.P2POp(dist.irecv, out, peer))
        if operations:
            # One batch: NCCL can deadlock when each rank posts all its sends before its receives
            # as separate calls (NVIDIA/nccl#479); batch_isend_irecv groups them (gloo accepts it too).
            with guarded(self.rank, f"halo exchange ({phase})"):
                for request in dist.batch_isend_irecv(operations):
                    request.wait()
        return received

    def flush(self) -> None:
        """Wait for every pending non-blocking send."""
        with guarded(self.rank, "completing sends"):
            for request, _ in self._pending:
                request.wait()
        self._pending.clear()

    # ------------------------------------------------------------ collectives
    def all_reduce(self, tensor: torch.Tensor, phase: str, group=None, group_size: int | None = None,
                   op=None) -> torch.Tensor:
        size = group_size or self.world_size
        if size <= 1:
            return tensor
        self._count(phase, tensor, 2.0 * (size - 1) / size)
        with guarded(self.rank, f"all-reduce ({phase})"):
            dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM, group=group)
        return tensor

    def volume_all_ranks(self) -> dict[str, float]:
        """Bytes per phase summed over all ranks (a collective: call on every rank).

        The sum travels as a tensor on this rank's device: an NCCL-only group has no CPU tensors.
        """
        phases = sorted(self.bytes)
        if self.world_size > 1:
            names = [None] * self.world_size
            dist.all_gather_object(names, phases)
            phases = sorted({p for group in names for p in group})
        values = torch.tensor([self.bytes.get(p, 0.0) for p in phases], dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            with guarded(self.rank, "summing communication volumes"):
                dist.all_reduce(values)
        return dict(zip(phases, values.cpu().tolist()))

    def barrier(self, what: str = "barrier") -> None:
        if self.world_size > 1:
            with guarded(self.rank, what):
                dist.barrier()


class HaloExchange(torch.autograd.Function):
    """Rows of a chunk's owned nodes -> the same chunk's halo rows owned by peers, differentiable.

    Forward sends each peer the rows it lists in its halo and receives ours; backward sends the
    halo rows' gradients back to their owners and adds the gradients received for the rows we
    sent. Every rank of a stage group runs the same sequence of exchanges (same loops, same
    autograd graph shape), so the backward exchanges pair up in the same order on all of them.
    """

    @staticmethod
    def forward(ctx, own, comm: Comm, plan, peers: dict[int, int], phase: str):
        # peers: partition -> global rank of that partition in this stage group
        ctx.comm, ctx.plan, ctx.peers, ctx.phase, ctx.num_own = comm, plan, peers, phase, own.shape[0]
        width = own.shape[1]
        ctx.width = width
        sends = {rank: own.index_select(0, plan.send_pos[part]) for part, rank in peers.items()}
        shapes = {rank: (plan.recv_pos[part].numel(), width) for part, rank in peers.items()}
        received = comm.exchange(sends, shapes, f"{phase}_forward")
        halo = own.new_zeros(plan.halo.stop - plan.halo.start, width)
        for part, rank in peers.items():
            if plan.recv_pos[part].numel():
                halo[plan.recv_pos[part]] = received[rank]
        return halo

    @staticmethod
    def backward(ctx, grad_halo):
        plan, peers = ctx.plan, ctx.peers
        grad_halo = grad_halo.contiguous()
        sends = {rank: grad_halo.index_select(0, plan.recv_pos[part]) for part, rank in peers.items()}
        shapes = {rank: (plan.send_pos[part].numel(), ctx.width) for part, rank in peers.items()}
        received = ctx.comm.exchange(sends, shapes, f"{ctx.phase}_backward")
        grad_own = grad_halo.new_zeros(ctx.num_own, ctx.width)
        for part, rank in peers.items():
            if plan.send_pos[part].numel():
                grad_own.index_add_(0, plan.send_pos[part], received[rank])
        return grad_own, None, None, None, None
