"""``train.num_threads`` limits torch's pool and numba's kernels alike."""
from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec import runs
from graphrec.config import build_run_config
from graphrec.data.interactions import InteractionGraph
from graphrec.train.threads import set_num_threads


@pytest.fixture
def restore_threads():
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    yield
    numba.set_num_threads(numba_threads)
    torch.set_num_threads(torch_threads)


def test_one_thread_means_one_in_torch_and_in_numba(restore_threads):
    set_num_threads(1)
    assert torch.get_num_threads() == 1
    assert numba.get_num_threads() == 1


def test_zero_leaves_both_pools_alone(restore_threads):
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    set_num_threads(0)
    assert (torch.get_num_threads(), numba.get_num_threads()) == (torch_threads, numba_threads)


def test_more_than_numba_has_is_capped_not_an_error(restore_threads):
    set_num_threads(numba.config.NUMBA_NUM_THREADS + 3)
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert torch.get_num_threads() == numba.config.NUMBA_NUM_THREADS + 3


def test_fit_applies_num_threads_to_numba(restore_threads):
    # numba kernels (propagation, sampling, ranking) run inside fit: a 1-thread run must not
    # start a second busy thread (two such runs would fight over a 2-core machine).
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    rng = np.random.default_rng(0)
    dense = rng.random((20, 25)) < 0.3
    dense[np.arange(20), rng.integers(0, 25, 20)] = True
    dense[rng.integers(0, 20, 25), np.arange(25)] = True
    graph = InteractionGraph.from_scipy(sp.csr_matrix(dense.astype(np.float32)), seed=0)
    config = build_run_config("lightgcn", "gowalla", overrides={
        "train.epochs": 1, "train.batch_size": 16, "train.num_threads": 1,
        "model.embedding_dim": 8, "model.num_layers": 2})
    runs.fit(config, None, data=graph)
    assert numba.get_num_threads() == 1
    assert torch.get_num_threads() == 1
