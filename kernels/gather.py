"""Row gather on CPU: ``out[k] = table[ids[k]]`` for a table far larger than the caches.

Why hand-written: ``torch.index_select``/numpy fancy indexing allocate their output and
copy element-typed rows with generic loops. A random gather from a table that misses
every cache is bound by memory traffic, and the output side counts as much as the
input: plain stores first read each output line into the cache (read-for-ownership),
then write it back. For large outputs :func:`gather_rows_streaming` writes whole
64-byte lines with non-temporal stores, which skip that read (never slower in our
runs; figures in benchmarks/results/README.md, "Kernel design measurements"). Rows are copied as the widest machine word that divides them, threads take
contiguous output ranges, and rows come back in the order asked for.

Tried and dropped (numbers in the ``notes`` of ``benchmarks/results/feature_gather.json``):
visiting rows in id order (a counting sort by id bucket, then scattering rows back to
their output slots) halved throughput, because scattered output writes cost more than
the ordered reads save; software prefetch of rows a few iterations ahead did not help.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numba as nb
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_OPTS = dict(nogil=True, cache=True)
LINE = 64            # bytes per cache line and per streaming store
_TASK_ROWS = 256     # output rows per parallel task: contiguous writes, cheap scheduling


@intrinsic
def _stream_line(typingctx, dst, dst_offset, src, src_offset):
    """Copy 64 bytes ``src[src_offset:]`` -> ``dst[dst_offset:]`` (uint8 arrays, byte offsets).

    An unaligned vector load and a non-temporal aligned store: ``dst + dst_offset`` must
    be 64-byte aligned.
    """
    def codegen(context, builder, signature, args):
        dst_ty, _, src_ty, _ = signature.args
        dst_arr = context.make_array(dst_ty)(context, builder, args[0])
        src_arr = context.make_array(src_ty)(context, builder, args[2])
        line = ir.VectorType(ir.IntType(64), LINE // 8)
        src_ptr = builder.bitcast(builder.gep(src_arr.data, [args[3]]), line.as_pointer())
        dst_ptr = builder.bitcast(builder.gep(dst_arr.data, [args[1]]), line.as_pointer())
        value = builder.load(src_ptr, align=1)
        store = builder.store(value, dst_ptr, align=LINE)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()

    return types.void(dst, dst_offset, src, src_offset), codegen


@intrinsic
def _store_fence(typingctx):
    """Order this thread's non-temporal stores before anything that follows (an mfence)."""
    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@nb.njit(parallel=True, **_OPTS)
def gather_rows(table, ids, out):
    """out[k, :] = table[ids[k], :] with plain stores (``table``/``out`` 2-D, same dtype)."""
    n = ids.shape[0]
    width = table.shape[1]
    n_tasks = (n + _TASK_ROWS - 1) // _TASK_ROWS
    for task in nb.prange(n_tasks):
        for k in range(task * _TASK_ROWS, min(n, (task + 1) * _TASK_ROWS)):
            row = ids[k]
            for j in range(width):
                out[k, j] = table[row, j]


@nb.njit(parallel=True, **_OPTS)
def gather_rows_streaming(table_bytes, row_bytes, ids, out_bytes):
    """Row gather with non-temporal stores, on flat uint8 views.

    ``row_bytes`` must be a multiple of 64 and ``out_bytes`` 64-byte aligned, so every
    output row is whole aligned lines. The table needs no alignment.
    """
    n = ids.shape[0]
    n_tasks = (n + _TASK_ROWS - 1) // _TASK_ROWS
    for task in nb.prange(n_tasks):
        for k in range(task * _TASK_ROWS, min(n, (task + 1) * _TASK_ROWS)):
            src = ids[k] * row_bytes
            dst = k * row_bytes
            for b in range(0, row_bytes, LINE):
                _stream_line(out_bytes, dst + b, table_bytes, src + b)
        _store_fence()


_WORDS = (np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.int16), np.dtype(np.uint8))


def word_view(rows: np.ndarray) -> np.ndarray:
    """A C-contiguous 2-D array seen as rows of the widest integer word dividing a row."""
    row_bytes = rows.shape[1] * rows.dtype.itemsize
    raw = rows.view(np.uint8).reshape(rows.shape[0], row_bytes)
    word = next(w for w in _WORDS if row_bytes % w.itemsize == 0)
    return raw.view(word)


def can_stream(row_bytes: int, out: np.ndarray) -> bool:
    return row_bytes > 0 and row_bytes % LINE == 0 and out.ctypes.data % LINE == 0


def gather(table: np.ndarray, ids: np.ndarray, out: np.ndarray, streaming: bool | None = None) -> np.ndarray:
    """``out[:] = table[ids]`` for C-contiguous 2-D arrays of one dtype; returns ``out``.

    ``streaming=None`` uses non-temporal stores when the output is larger than about a
    core's L2 (4 MiB) and its rows are whole aligned lines: a small output is better
    left in cache for whoever reads it next. ``ids`` must be in range (not checked here).
    """
    row_bytes = table.shape[1] * table.dtype.itemsize
    if streaming is None:
        streaming = out.nbytes >= (4 << 20)
    if streaming and can_stream(row_bytes, out):
        gather_rows_streaming(table.view(np.uint8).reshape(-1), row_bytes, ids, out.view(np.uint8).reshape(-1))
    else:
        gather_rows(word_view(table), ids, word_view(out))
    return out
