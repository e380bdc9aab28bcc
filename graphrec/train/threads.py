"""One knob (``train.num_threads``) for every CPU thread pool a run uses.

graphrec's CPU work runs in two pools: torch's intra-op pool and numba's (the ``prange``
kernels in ``kernels/``: propagation, pair scores, sampling, ranking). Setting only torch's
leaves numba on every core, so two "one-thread" runs side by side each run two busy
threads; numba's OpenMP workers spin while they wait, and on a 2-core machine that made a
neighbouring run up to 4x slower. Both pools follow the same setting.
"""
from __future__ import annotations

import numba
import torch


def set_num_threads(num_threads: int) -> None:
    """Use ``num_threads`` threads in torch and in numba's kernels (0 or less: leave the defaults).

    numba's count is per calling thread and capped by the size of its pool
    (``NUMBA_NUM_THREADS``, all cores by default); call this from the thread that trains.
    """
    if num_threads <= 0:
        return
    # numba first: starting its OpenMP pool resets torch's intra-op count to every core.
    numba.set_num_threads(min(num_threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(num_threads)
