"""Zero-copy row gather: a GPU kernel reads the requested rows straight from pinned host memory.

Why hand-written: the conventional path gathers rows on the CPU into a staging buffer,
then copies that buffer to the GPU (two passes over the data, one of them by the CPU).
Here the host table is page-locked in place and mapped into the GPU's address space,
and the GPU's own threads load the rows over PCIe and write them into a torch tensor:
no CPU gather, no staging copy (PyTorch-Direct, Min et al., "Large Graph Convolutional
Network Training with GPU-Oriented Data Communication Architecture", VLDB 2021).

Alignment, the paper's key detail: PCIe reads from a warp are served in 128-byte
requests, so a warp whose 32 x 4-byte loads straddle two 128-byte lines issues two
requests for one line's worth of data. Each warp copies one row, and it starts at the
128-byte boundary at or before the row's first word: lanes whose word lies before the
row's start stay idle in the first step, so every step of 32 lanes reads exactly one
line. The boundary is computed from the row's absolute address, i.e. from the table's
base address modulo 128 (``base_shift``, in words) plus the row's offset.

Everything works on 4-byte words (``int32`` views), whatever the feature dtype; a row
must be a whole number of words. A hot-row cache in device memory (rows chosen by the
caller, e.g. by degree) is read instead of host memory where ``cache_slot[row] >= 0``.

The kernels run unchanged under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``),
which is how the tests pin the alignment arithmetic without a GPU.
"""
from __future__ import annotations

import os

from numba import cuda

WARP = 32
LINE_BYTES = 128
WORD_BYTES = 4
LINE_WORDS = LINE_BYTES // WORD_BYTES   # 32: one word per lane, one line per warp step
THREADS_PER_BLOCK = 256                 # 8 warps, 8 rows in flight per block


@cuda.jit(device=True)
def row_span(row, width, base_shift):
    """(start, first) word offsets of ``row``: its first word, and the line boundary at or before it."""
    start = row * width
    return start, start - (base_shift + start) % LINE_WORDS


@cuda.jit(device=True)
def row_steps(start, first, width):
    """Warp steps (of 32 words each) from ``first`` to the end of the row: the ragged tail included."""
    return (start + width - first + WARP - 1) // WARP


@cuda.jit(device=True)
def lane_word(start, first, width, step, lane):
    """The table word ``lane`` reads in ``step``, or -1 if it falls outside the row."""
    word = first + step * WARP + lane
    if word < start or word >= start + width:
        return -1
    return word


@cuda.jit
def gather_rows_kernel(table, base_shift, width, ids, out, cache, cache_slot):
    """out[k * width + j] = word j of row ids[k]; one warp per row, grid-stride over rows.

    ``table``: the host table as a flat word array (mapped, zero-copy). ``cache``/
    ``cache_slot``: device-resident rows and the slot of each table row (-1: not cached;
    an empty ``cache_slot`` disables the cache).
    """
    thread = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    lane = cuda.threadIdx.x % WARP
    warps = (cuda.gridDim.x * cuda.blockDim.x) // WARP
    use_cache = cache_slot.shape[0] > 0
    k = thread // WARP
    while k < ids.shape[0]:
        row = ids[k]
        dst = k * width
        slot = -1
        if use_cache:
            slot = cache_slot[row]
        if slot >= 0:
            # device memory: plain coalesced copy
            src = slot * width
            j = lane
            while j < width:
                out[dst + j] = cache[src + j]
                j += WARP
        else:
            start, first = row_span(row, width, base_shift)
            for step in range(row_steps(start, first, width)):
                word = lane_word(start, first, width, step, lane)
                if word >= 0:
                    out[dst + word - start] = table[word]
        k += warps


@cuda.jit
def read_plan_kernel(ids, width, base_shift, steps, plan):
    """plan[k, step, lane] = the table word lane reads for row ids[k] in that step (-1: idle).

    The gather kernel's own address arithmetic (:func:`row_span`, :func:`row_steps`,
    :func:`lane_word`) laid out for inspection: tests check every step stays within
    one 128-byte line and that the steps cover the row exactly once.
    """
    thread = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    lane = cuda.threadIdx.x % WARP
    k = thread // WARP
    if k < ids.shape[0]:
        start, first = row_span(ids[k], width, base_shift)
        for step in range(steps):
            plan[k, step, lane] = -1
        for step in range(row_steps(start, first, width)):
            plan[k, step, lane] = lane_word(start, first, width, step, lane)


def launch_shape(num_rows: int, max_blocks: int = 65535) -> tuple[int, int]:
    """(blocks, threads per block): one warp per row, capped (the kernel strides over the rest)."""
    warps_per_block = THREADS_PER_BLOCK // WARP
    blocks = max(1, min(max_blocks, -(-num_rows // warps_per_block)))
    return blocks, THREADS_PER_BLOCK


# ---------------------------------------------------------------------- host side (real CUDA only)
_HOST_REGISTER_PORTABLE = 1    # cudaHostRegisterPortable: pinned for every context
_HOST_REGISTER_MAPPED = 2      # cudaHostRegisterMapped: give it a device address
_HOST_REGISTER_READ_ONLY = 8   # cudaHostRegisterReadOnly: for read-only (e.g. mmap'd) tables


def locate_cuda_toolkit() -> None:
    """Point numba at NVVM when only the pip CUDA wheels are installed.

    numba's CUDA target compiles kernels with NVVM from a CUDA toolkit found through
    conda, ``CUDA_HOME`` or ``/usr/local/cuda``. Torch's wheels bring no NVVM, but the
    ``nvidia-cuda-nvcc-cu12`` wheel does: when nothing else is configured and that
    wheel is installed, use it. Must run before numba compiles its first kernel.
    """
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or os.path.isdir("/usr/local/cuda/nvvm"):
        return
    try:
        import nvidia.cuda_nvcc as wheel
    except ImportError:
        return
    root = list(wheel.__path__)[0]
    if os.path.isdir(os.path.join(root, "nvvm")):
        os.environ["CUDA_HOME"] = root


def prepare_numba_cuda() -> None:
    """Everything numba-cuda needs before its first compile: NVVM, and NumPy names it still expects.

    numba-cuda 0.30 registers an overload for ``np.row_stack`` while loading its typing
    registries, and NumPy removed that alias of ``np.vstack``; its first kernel compile then
    fails with an AttributeError (seen on the H200 image: numba-cuda 0.30.4). Restoring the
    alias changes nothing else.
    """
    import numpy

    locate_cuda_toolkit()
    restore_numpy_aliases(numpy)


def restore_numpy_aliases(numpy_module) -> None:
    """Give ``numpy_module`` back the removed aliases numba-cuda still names (``row_stack``)."""
    if not hasattr(numpy_module, "row_stack"):
        numpy_module.row_stack = numpy_module.vstack


def _clear_last_cuda_error() -> None:
    """Read out the CUDA runtime's last error, so torch's next launch check does not report ours.

    A failed ``cudaHostRegister`` leaves "invalid argument" as the runtime's last error, and torch's
    next kernel-launch check would raise it as its own (seen: a LightGCN step failing right after a
    refused registration). The runtime is the one torch loaded, found among the mapped libraries.
    """
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libcudart.so" in line}
    except OSError:
        return
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            ctypes.CDLL(path).cudaGetLastError()
        except (OSError, AttributeError):
            continue


def use_torch_context(device_index: int):
    """Make numba run on the CUDA context torch uses on ``device_index`` (its primary context).

    ``torch.cuda.set_device`` makes the device's primary context current on this thread;
    numba then attaches to that current context instead of creating its own, so device
    pointers, streams and events are shared with torch.
    """
    import torch

    torch.cuda.set_device(device_index)
    context = cuda.current_context()
    if context.device.id != device_index:
        raise RuntimeError(f"numba attached to device {context.device.id}, torch uses {device_index}")
    return context


class MappedHostTable:
    """A CPU tensor page-locked in place and mapped into the GPU address space: no copy.

    ``torch.cuda.cudart().cudaHostRegister`` pins the tensor's own pages (portable,
    mapped); numba resolves the device address of those pages in torch's context
    (``cuPointerGetAttribute``) and wraps them as a flat ``int32`` word array for
    :func:`gather_rows_kernel`. The tensor must stay alive and unmoved until :meth:`close`.
    """

    def __init__(self, table, device_index: int = 0, read_only: bool = False):
        import torch

        if table.device.type != "cpu" or table.dim() != 2 or not table.is_contiguous():
            raise ValueError("the host table must be a C-contiguous 2-D CPU tensor")
        row_bytes = table.shape[1] * table.element_size()
        if row_bytes % WORD_BYTES:
            raise ValueError(f"rows of {row_bytes} bytes are not whole 4-byte words")
        prepare_numba_cuda()
        use_torch_context(device_index)
        self.table = table
        self.device_index = device_index
        self.pointer = table.data_ptr()
        self.nbytes = table.numel() * table.element_size()
        self.width = row_bytes // WORD_BYTES
        self.base_shift = (self.pointer % LINE_BYTES) // WORD_BYTES
        flags = _HOST_REGISTER_PORTABLE | _HOST_REGISTER_MAPPED | (_HOST_REGISTER_READ_ONLY if read_only else 0)
        cudart = torch.cuda.cudart()
        error = cudart.cudaHostRegister(self.pointer, self.nbytes, flags)
        if error != cudart.cudaError.success:
            _clear_last_cuda_error()
            raise RuntimeError(
                f"cudaHostRegister of {self.nbytes} bytes failed: {cudart.cudaGetErrorString(error)}. A writable "
                "file mapping (FeatureStore.from_file(..., writable=True)) cannot be pinned on some file systems: "
                "open it read-only, or load the table into memory first")
        self._registered = True
        self.words = cuda.from_cuda_array_interface(
            {"shape": (self.nbytes // WORD_BYTES,), "typestr": "<i4", "data": (self.pointer, read_only),
             "strides": None, "version": 3}, owner=table, sync=False)

    def close(self) -> None:
        if getattr(self, "_registered", False):
            import torch

            torch.cuda.cudart().cudaHostUnregister(self.pointer)
            self._registered = False

    def __del__(self):
        try:
            self.close()
        except Exception:   # interpreter shutdown: CUDA may already be gone
            pass


def gather_zero_copy(host: MappedHostTable, ids, out, cache=None, cache_slot=None, stream=None):
    """Launch the gather of rows ``ids`` (CUDA int64 tensor) into ``out`` (CUDA tensor) on ``stream``.

    Asynchronous, like any torch op: it is queued on ``stream`` (default: torch's current
    stream), so it orders with torch work on that stream and overlaps with work on
    others. ``cache``/``cache_slot``: optional device tensors (rows as int32 words, and
    the slot of each table row or -1). Returns ``out``.
    """
    import torch

    if ids.shape[0] == 0:
        return out
    device = out.device
    use_torch_context(device.index if device.index is not None else torch.cuda.current_device())
    stream = torch.cuda.current_stream(device) if stream is None else stream
    numba_stream = cuda.external_stream(stream.cuda_stream)

    def words(tensor):
        return cuda.as_cuda_array(tensor, sync=False)  # no host sync: same stream ordering

    if cache is None:
        cache = torch.empty(0, dtype=torch.int32, device=device)
        cache_slot = torch.empty(0, dtype=torch.int32, device=device)
    out_words = out.view(torch.int32).reshape(-1)
    blocks, threads = launch_shape(int(ids.shape[0]))
    gather_rows_kernel[blocks, threads, numba_stream](
        host.words, host.base_shift, host.width, words(ids), words(out_words), words(cache.reshape(-1)),
        words(cache_slot))
    return out
