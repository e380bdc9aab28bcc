"""graphrec.kernels.cuda_gather on numba's CUDA simulator (no GPU needed).

The kernels run in a subprocess started with NUMBA_ENABLE_CUDASIM=1 (the variable must
be set before numba is imported); it saves what they produced, and the tests here
compare that with numpy: the gather equals indexing for several row widths, base
misalignments, ragged tails, out-of-order and repeated ids, with and without the hot
cache; and every warp step reads exactly one 128-byte line, starting at the boundary.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

WIDTHS = [1, 5, 32, 33, 100, 128]           # words per row: 4 to 512 bytes
BASE_SHIFTS = [0, 1, 17, 31]                 # the table's base address modulo 128, in words
NUM_ROWS = 24
IDS = np.array([5, 0, 23, 5, 17, 1, 1, 22, 9, 0, 12], dtype=np.int64)   # out of order, repeats, both ends

_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba import cuda
    assert cuda.is_available() and cuda.simulator_init is not None   # the simulator, not a GPU
    from graphrec.kernels.cuda_gather import gather_rows_kernel, launch_shape, read_plan_kernel

    spec = json.loads(sys.argv[1])
    ids = np.array(spec["ids"], dtype=np.int64)
    n_rows, results = spec["num_rows"], {}
    no_cache, no_slot = np.zeros(0, np.int32), np.zeros(0, np.int32)
    for width in spec["widths"]:
        table = np.arange(n_rows * width, dtype=np.int32) * 3 + 1
        for shift in spec["base_shifts"]:
            out = np.full(ids.size * width, -7, dtype=np.int32)
            # 1 block of 2 warps for 11 rows: the grid-stride loop must cover the rest
            gather_rows_kernel[1, 64](table, shift, width, ids, out, no_cache, no_slot)
            results[f"gather/{width}/{shift}"] = out
            steps = (width + 31) // 32 + 1
            plan = np.full((ids.size, steps, 32), -9, dtype=np.int64)
            read_plan_kernel[(ids.size + 1) // 2, 64](ids, width, shift, steps, plan)
            results[f"plan/{width}/{shift}"] = plan
        # hot cache: rows 5 and 22 live in device memory with distinguishable contents
        slot = np.full(n_rows, -1, dtype=np.int32)
        slot[5], slot[22] = 1, 0
        cache = np.concatenate([-table[22 * width:23 * width], -table[5 * width:6 * width]]).astype(np.int32)
        out = np.full(ids.size * width, -7, dtype=np.int32)
        gather_rows_kernel[3, 64](table, 3, width, ids, out, cache, slot)
        results[f"cached/{width}"] = out
    results["launch_shapes"] = np.array([launch_shape(n) for n in (1, 17, 10 ** 9)])
    np.savez(spec["path"], **results)
""")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cudasim") / "results.npz")
    spec = {"ids": IDS.tolist(), "num_rows": NUM_ROWS, "widths": WIDTHS, "base_shifts": BASE_SHIFTS,
            "path": path}
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    run = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(spec)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(np.load(path))


def _table(width):
    return (np.arange(NUM_ROWS * width, dtype=np.int32) * 3 + 1).reshape(NUM_ROWS, width)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("shift", BASE_SHIFTS)
def test_gather_equals_indexing(simulated, width, shift):
    out = simulated[f"gather/{width}/{shift}"].reshape(IDS.size, width)
    np.testing.assert_array_equal(out, _table(width)[IDS])


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("shift", BASE_SHIFTS)
def test_every_warp_step_reads_one_aligned_line(simulated, width, shift):
    plan = simulated[f"plan/{width}/{shift}"]
    for k, row in enumerate(IDS):
        start = row * width
        words = []
        lines_touched = set(range((shift + start) // 32, (shift + start + width - 1) // 32 + 1))
        steps_used = 0
        for step in range(plan.shape[1]):
            lanes = plan[k, step]
            valid = lanes[lanes >= 0]
            if valid.size == 0:
                assert (lanes == -1).all()
                continue
            steps_used += 1
            absolute = shift + valid
            assert np.unique(absolute // 32).size == 1           # one 128-byte line per step
            assert ((absolute % 32) == np.flatnonzero(lanes >= 0)).all()   # lane i reads word i of the line
            words.extend(valid.tolist())
        assert sorted(words) == list(range(start, start + width))        # the row, each word once
        assert steps_used == len(lines_touched)                          # no extra request, ragged tail included


@pytest.mark.parametrize("width", WIDTHS)
def test_hot_cache_rows_come_from_device_memory(simulated, width):
    out = simulated[f"cached/{width}"].reshape(IDS.size, width)
    expected = _table(width)[IDS].copy()
    expected[IDS == 5] *= -1    # the cache holds negated copies, so the source is visible
    expected[IDS == 22] *= -1
    np.testing.assert_array_equal(out, expected)


def test_launch_shape_gives_each_row_a_warp_up_to_the_grid_limit(simulated):
    one, seventeen, huge = simulated["launch_shapes"]
    assert tuple(one) == (1, 256) and tuple(seventeen) == (3, 256) and tuple(huge) == (65535, 256)



def test_numpy_alias_numba_cuda_expects_is_restored():
    # numba-cuda 0.30 overloads np.row_stack while loading; NumPy removed that alias (the H200
    # image's first zero-copy compile failed on exactly this). A NumPy without it gets it back.
    import types

    from graphrec.kernels.cuda_gather import restore_numpy_aliases

    without = types.SimpleNamespace(vstack=np.vstack)
    restore_numpy_aliases(without)
    assert without.row_stack is np.vstack
    current = np.vstack
    restore_numpy_aliases(np)       # a NumPy that still has it is left alone
    assert np.vstack is current and hasattr(np, "row_stack")
