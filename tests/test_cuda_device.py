"""Real-GPU checks of what the simulator tests cannot reach, run by ``benchmarks/gpu/device_check.sh``.

Pinning in place (cudaHostRegister), the mapped device pointer, the zero-copy kernel on a real SM,
streams, the hot-row cache, the Prefetcher, file-backed and shared tables, 64-bit addressing; and
CPU-vs-CUDA agreement of LightGCN, the ranking evaluator and the single-rank GNN engine.
Every test is skipped without CUDA. Each one stands alone: an autouse fixture reads out the CUDA
runtime's last error before and after it, so a refused registration in one test cannot surface as
"invalid argument" in the next one's first kernel launch.
"""
from __future__ import annotations

import os
import time
import types

import numpy as np
import pytest
import torch

CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")]

#: size of the >8 GiB table test (word offsets beyond 2^31); 0 skips it
BIG_TABLE_GB = float(os.environ.get("GRAPHREC_CUDA_BIG_TABLE_GB", "9"))


@pytest.fixture(autouse=True)
def independent_cuda_state():
    from graphrec.kernels.cuda_gather import _clear_last_cuda_error

    _clear_last_cuda_error()
    yield
    try:
        torch.cuda.synchronize()
    finally:
        _clear_last_cuda_error()


@pytest.fixture
def dev():
    return torch.device("cuda", 0)


def fetch_equal(store, table, ids, dev, **kw):
    out = store.fetch(ids, dev, **kw)
    torch.cuda.synchronize()
    ids_cpu = ids.cpu() if isinstance(ids, torch.Tensor) else torch.as_tensor(ids)
    # bitwise: tables of random bytes hold NaNs in float16/bfloat16, and NaN != NaN
    assert torch.equal(out.cpu().contiguous().view(torch.uint8), table[ids_cpu.long()].contiguous().view(torch.uint8)), \
        "zero-copy fetch differs from indexing"
    return out


def file_system_of(path: str) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            if path.startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def test_first_fetch_compiles_kernel_fp32_512_byte_rows(dev):
    from graphrec.sampling.feature_store import FeatureStore

    table = torch.randn(1000, 128)
    store = FeatureStore(table)
    started = time.perf_counter()
    fetch_equal(store, table, torch.randint(0, 1000, (5000,)), dev)
    print(f"compile and first fetch: {time.perf_counter() - started:.2f} s, base shift {store.pin(0).base_shift} words")
    store.close()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.uint8])
def test_row_widths_and_base_misalignment(dtype, dev):
    from graphrec.sampling.feature_store import FeatureStore

    rng = np.random.default_rng(0)
    esize = torch.tensor([], dtype=dtype).element_size()
    for width_words in (1, 5, 32, 33, 100, 128, 257):
        cols, rows = width_words * 4 // esize, 300
        flat = torch.empty(rows * cols + 64 * 4 // esize, dtype=dtype)
        flat.view(torch.uint8).copy_(torch.from_numpy(rng.integers(0, 255, flat.numel() * esize, dtype=np.uint8)))
        for shift_words in (0, 1, 17, 31):
            offset = shift_words * 4 // esize
            table = flat[offset: offset + rows * cols].view(rows, cols)
            store = FeatureStore(table)       # one pinned view at a time: views share pages
            ids = torch.from_numpy(rng.integers(0, rows, 777))
            ids[:3] = torch.tensor([0, rows - 1, 0])
            try:
                fetch_equal(store, table, ids, dev)
            finally:
                store.close()


def test_cuda_int32_ids_and_empty_ids(dev):
    from graphrec.sampling.feature_store import FeatureStore

    table = torch.randn(500, 64)
    store = FeatureStore(table)
    fetch_equal(store, table, torch.randint(0, 500, (999,), dtype=torch.int32, device=dev), dev)
    empty = store.fetch(torch.empty(0, dtype=torch.long), dev)
    assert empty.shape == (0, 64) and empty.device.type == "cuda"
    store.close()


def test_rows_of_odd_bytes_are_rejected():
    from graphrec.sampling.feature_store import FeatureStore

    with pytest.raises(ValueError):
        FeatureStore(torch.zeros(10, 3, dtype=torch.float16)).pin(0)


def test_hot_row_cache_in_device_memory(dev):
    from graphrec.sampling.feature_store import FeatureStore

    table = torch.randn(20000, 96)
    store = FeatureStore(table)
    store.cache_rows(torch.arange(0, 20000, 7), dev)
    fetch_equal(store, table, torch.randint(0, 20000, (50000,)), dev)
    store.close()


def test_fetch_on_side_stream_consumer_waits_on_event(dev):
    from graphrec.sampling.feature_store import FeatureStore

    table = torch.randn(100000, 128)
    store = FeatureStore(table)
    side = torch.cuda.Stream()
    ids = torch.randint(0, 100000, (200000,))
    out = torch.empty(200000, 128, device=dev)
    with torch.cuda.stream(side):
        store.fetch(ids, dev, out=out, stream=side)
        event = torch.cuda.Event()
        event.record(side)
    torch.cuda.current_stream().wait_event(event)
    total = out.sum()            # ordered after the fetch through the event, no host sync
    torch.cuda.synchronize()
    assert torch.allclose(total.cpu(), table[ids].sum(), rtol=1e-3)
    store.close()


def test_prefetcher_on_cuda_batches_of_varying_size(dev):
    from graphrec.sampling.feature_store import FeatureStore, Prefetcher

    table = torch.randn(50000, 64)
    store = FeatureStore(table)
    gen = torch.Generator().manual_seed(0)
    batches = [types.SimpleNamespace(n_id=torch.randint(0, 50000, (int(n),), generator=gen))
               for n in torch.randint(1000, 40000, (30,), generator=gen)]
    count = 0
    for batch, features in Prefetcher(batches, store, dev, depth=2):
        assert torch.equal(features.cpu(), table[batch.n_id]), f"batch {count} differs"
        count += 1
    assert count == 30
    store.close()


def test_close_unpins_and_fetching_again_repins(dev):
    from graphrec.sampling.feature_store import FeatureStore

    table = torch.randn(4096, 32)
    store = FeatureStore(table)
    ids = torch.randint(0, 4096, (1000,))
    fetch_equal(store, table, ids, dev)
    store.close()
    fetch_equal(store, table, ids, dev)
    store.close()


def test_shared_memory_table(dev):
    from graphrec.sampling.feature_store import FeatureStore

    store = FeatureStore(torch.randn(30000, 64)).share_memory()
    fetch_equal(store, store.table, torch.randint(0, 30000, (10000,)), dev)
    store.close()


def test_read_only_file_mapping(dev, tmp_path):
    from graphrec.sampling.feature_store import FeatureStore

    table = torch.randn(20000, 64)
    FeatureStore(table).save(tmp_path / "t.npy")
    store = FeatureStore.from_file(tmp_path / "t.npy")
    print("file system:", file_system_of(str(tmp_path)))
    fetch_equal(store, table, torch.randint(0, 20000, (8000,)), dev)
    store.close()


def test_writable_file_mapping_pins_or_names_the_fix(dev, tmp_path):
    """Some file systems refuse to register MAP_SHARED file pages; the error must then say what to do."""
    from graphrec.sampling.feature_store import FeatureStore

    table = torch.randn(20000, 64)
    FeatureStore(table).save(tmp_path / "t.npy")
    store = FeatureStore.from_file(tmp_path / "t.npy", writable=True)
    try:
        fetch_equal(store, table, torch.randint(0, 20000, (8000,)), dev)
    except RuntimeError as error:
        assert "read-only" in str(error), error
        print(f"refused on {file_system_of(str(tmp_path))}: {error}")
    finally:
        store.close()
    # a refused registration must not poison the next launch
    assert float(torch.ones(4, device=dev).sum()) == 4.0


def test_two_small_tables_pinned_at_once(dev):
    from graphrec.sampling.feature_store import FeatureStore

    a, b = torch.randn(200, 16), torch.randn(200, 16)     # 12.8 kB each: likely neighbours on the heap
    sa, sb = FeatureStore(a), FeatureStore(b)
    fetch_equal(sa, a, torch.randint(0, 200, (100,)), dev)
    fetch_equal(sb, b, torch.randint(0, 200, (100,)), dev)
    sa.close()
    sb.close()


def tiny_interactions(users=300, items=400, per_user=12, seed=0):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(users), per_user)
    cols = rng.integers(0, items, rows.size)
    matrix = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(users, items))
    matrix.data[:] = 1.0
    return matrix


def test_lightgcn_cuda_loss_and_gradients_equal_cpu(dev):
    from graphrec.models import LightGCN

    train = tiny_interactions()
    torch.manual_seed(0)
    cpu = LightGCN(300, 400, 32, 3)
    cpu.prepare(train)
    gpu = LightGCN(300, 400, 32, 3)
    gpu.load_state_dict(cpu.state_dict())
    gpu.prepare(train)
    gpu = gpu.to(dev)
    users, pos, neg = torch.randint(0, 300, (256,)), torch.randint(0, 400, (256,)), torch.randint(0, 400, (256,))
    loss_cpu = cpu.recommendation_loss(users, pos, neg)
    loss_cpu.backward()
    loss_gpu = gpu.recommendation_loss(users.to(dev), pos.to(dev), neg.to(dev))
    loss_gpu.backward()
    torch.testing.assert_close(loss_gpu.detach().cpu(), loss_cpu.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gpu.embedding.weight.grad.cpu(), cpu.embedding.weight.grad, rtol=1e-3, atol=1e-6)


def test_ranking_evaluator_cuda_embeddings_give_cpu_metrics(dev):
    from graphrec.metrics import RankingEvaluator

    train, test = tiny_interactions(seed=1), tiny_interactions(per_user=3, seed=2)
    torch.manual_seed(1)
    users, items = torch.randn(300, 32), torch.randn(400, 32)
    evaluator = RankingEvaluator(train, test, ks=(10, 20))
    on_cpu, on_gpu = evaluator.evaluate(users, items), evaluator.evaluate(users.to(dev), items.to(dev))
    for key in on_cpu:
        assert abs(on_cpu[key] - on_gpu[key]) < 1e-6, (key, on_cpu[key], on_gpu[key])


@pytest.mark.data
def test_gnn_engine_single_gcnii4_on_cora_cuda_tracks_cpu(data_root):
    from graphrec.parallel.scenarios import run

    spec = {"data_dir": str(data_root), "dataset": "cora", "model": "gcnii",
            "model_kwargs": {"num_layers": 4, "hidden_channels": 32, "dropout": 0.5}, "epochs": 3, "seed": 3,
            "lr": 0.01, "weight_decay": 5e-4, "parallel": {"mode": "single"}}
    cpu = [row["loss"] for row in run(spec, device="cpu")["epochs"]]
    gpu = [row["loss"] for row in run(spec, device="cuda:0")["epochs"]]
    assert max(abs(x - y) for x, y in zip(cpu, gpu)) < 1e-3, (cpu, gpu)


@pytest.mark.skipif(BIG_TABLE_GB <= 0, reason="GRAPHREC_CUDA_BIG_TABLE_GB=0")
def test_table_larger_than_8_gib(dev):
    """Word offsets beyond 2^31: the kernel's address arithmetic must be 64-bit."""
    from graphrec.sampling.feature_store import FeatureStore

    dim = 128
    rows = int(BIG_TABLE_GB * 2**30 / (dim * 4))
    table = torch.empty(rows, dim)              # untouched pages; cudaHostRegister faults them in
    ids = torch.cat([torch.arange(rows - 2000, rows), torch.randint(0, rows, (2000,))])
    table[ids] = torch.randn(ids.numel(), dim)
    store = FeatureStore(table)
    started = time.perf_counter()
    store.pin(0)
    print(f"pinned {rows * dim * 4 / 2**30:.2f} GiB in {time.perf_counter() - started:.2f} s")
    try:
        fetch_equal(store, table, ids, dev)
    finally:
        store.close()
