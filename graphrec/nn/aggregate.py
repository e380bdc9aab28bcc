"""Weighted aggregation over an explicit edge list: the row block of ``A_hat @ x`` that a subgraph,
a pipeline chunk or an attention layer needs (``out[i] = sum_{j -> i} w_ji x[j]``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graphrec.kernels.spmm import csr_spmm, csr_spmm_rows_transpose


def aggregate(x_src: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor, num_dst: int,
              gather_limit: int | None = None) -> torch.Tensor:
    """``out[i] = sum_{e: dst[e] = i} weight[e] * x_src[src[e]]`` for ``i < num_dst``.

    ``x_src`` ``[N, d]`` with ``weight`` ``[E]``, or per head: ``[N, H, d]`` with ``[E, H]``.
    Differentiable in ``x_src`` and in ``weight``. Three ways, same sum:

    - constant weights, CPU float32 ``[N, d]``, edges sorted by target (the samplers' and the
      pipeline plans' layout): the edges already are a CSR by target, so graphrec's numba CSR
      kernels run it without materialising the ``[E, d]`` messages;
    - otherwise gather the messages and ``index_add`` them;
    - when ``E x (row size of x_src)`` exceeds ``gather_limit``: one sparse CSR product per head,
      never materialising the messages (``(src, dst)`` pairs must be unique: the CSR backward
      would merge duplicates).
    """
    if (not weight.requires_grad and x_src.dim() == 2 and x_src.device.type == "cpu"
            and x_src.dtype == torch.float32 and src.shape[0] > 0 and bool((dst[1:] >= dst[:-1]).all())):
        return _CSRAggregate.apply(x_src, src, dst, weight.detach(), num_dst)
    if gather_limit is None or src.shape[0] * x_src[0].numel() <= gather_limit:
        messages = x_src.index_select(0, src) * weight.unsqueeze(-1)
        return x_src.new_zeros((num_dst, *x_src.shape[1:])).index_add(0, dst, messages)
    return _csr_product(x_src, src, dst, weight, num_dst)


def _csr_product(x_src, src, dst, weight, num_dst):
    heads = x_src.dim() == 3
    x_src, weight = (x_src, weight) if heads else (x_src.unsqueeze(1), weight.unsqueeze(1))
    key = dst * x_src.shape[0] + src           # CSR wants rows sorted and columns sorted within rows:
    if not bool((key[1:] > key[:-1]).all()):  # its backward maps value gradients by that order
        order = torch.argsort(key)
        dst, src, weight = dst[order], src[order], weight[order]
    crow = torch.zeros(num_dst + 1, dtype=torch.long, device=x_src.device)
    crow[1:] = torch.cumsum(torch.bincount(dst, minlength=num_dst), 0)
    outputs = []
    for head in range(x_src.shape[1]):
        matrix = torch.sparse_csr_tensor(crow, src, weight[:, head], (num_dst, x_src.shape[0]),
                                         check_invariants=False)
        outputs.append(matrix @ x_src[:, head])
    out = torch.stack(outputs, dim=1)
    return out if heads else out[:, 0]


class _CSRAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_src, src, dst, weight, num_dst):
        indptr = np.zeros(num_dst + 1, dtype=np.int64)
        np.cumsum(np.bincount(dst.numpy(), minlength=num_dst), out=indptr[1:])
        indices = np.ascontiguousarray(src.numpy(), dtype=np.int64)
        values = np.ascontiguousarray(weight.numpy(), dtype=np.float32)
        ctx.csr, ctx.shape = (indptr, indices, values), x_src.shape
        out = torch.empty((num_dst, x_src.shape[1]), dtype=torch.float32)
        csr_spmm(indptr, indices, values, x_src.detach().contiguous().numpy(), out.numpy())
        return out

    @staticmethod
    def backward(ctx, grad):
        indptr, indices, values = ctx.csr
        out = torch.zeros(ctx.shape, dtype=torch.float32)
        csr_spmm_rows_transpose(indptr, indices, values, np.arange(indptr.shape[0] - 1, dtype=np.int64),
                                grad.detach().contiguous().numpy(), out.numpy())
        return out, None, None, None, None


@dataclass
class EdgeBlock:
    """A block of ``A_hat``: the weighted edges from some source rows into ``num_dst`` target rows.

    What a model's layer hook takes in place of the whole graph's :class:`~graphrec.nn.NormalizedAdjacency`
    (a pipeline chunk, a sampled hop): both have ``propagate(x)``.
    """

    src: torch.Tensor
    dst: torch.Tensor
    weight: torch.Tensor
    num_dst: int

    def propagate(self, x_src: torch.Tensor) -> torch.Tensor:
        return aggregate(x_src, self.src, self.dst, self.weight, self.num_dst)
