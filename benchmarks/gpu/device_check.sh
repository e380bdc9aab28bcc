#!/usr/bin/env bash
# graphrec GPU device check: ONE prepared run on a one-GPU machine (NVIDIA H200), about 6-8 minutes, everything
# it measures written under $OUT (log.txt, summary.json, results.tgz: at most 3 files, as the device tool allows).
#
# Facts this script is built on (read from the device tool's own notes, not guesses):
#   * the device machine reaches NO network: nothing can be pip-installed there from a registry. Its image has
#     python3 = /opt/torch/.venv (Python 3.12, torch 2.11.0+cu130, numba + numba-cuda, cuda-bindings, CuPy,
#     torch-geometric, scipy, pandas), the CUDA 13.0 toolkit (nvcc; NVVM for numba) and driver 580.
#     The project's pins (torch 2.14.1) do not apply there; this run tests graphrec on that image.
#   * pymetis (graphrec[parallel]) is NOT in the image: it travels as a cp312 wheel in .devcheck/whl/.
#   * the data (../shared/data) does not travel: gowalla and planetoid are copied into .devcheck/data/.
#   * graphrec is not installed there: the setuptools package map (graphrec.kernels -> kernels/,
#     graphrec.loaders -> loaders/) is reproduced with two symlinks in the device's throw-away copy.
#
# Three modes:
#   bash device_check.sh --prepare REPO
#        on the development machine (no GPU needed): stage this script, the data and the pymetis wheel into
#        REPO/.devcheck/ (ignored through REPO/.git/info/exclude, < 20 MB) and print the device call to make:
#        run(command="bash .devcheck/device_check.sh", carry=[".devcheck"], timeout_s=540)
#   bash .devcheck/device_check.sh
#        on the device machine, from the repository root (the default mode).
#   bash device_check.sh --dry-run REPO
#        on a CPU machine: every phase with its CPU fallback (syntax, argument parsing, imports, CPU paths).
#
# Environment: PHASES (default "env tests fetch extra lightgcn multigpu pytest": a subset reruns only those),
# BUDGET_S (default 480: phases that no longer fit are skipped, never started), PY (default python3).
set -u

MODE=device
case "${1:-}" in
  --prepare) MODE=prepare; REPO=${2:?--prepare REPO}; shift 2 ;;
  --dry-run) MODE=dry; REPO=${2:-$PWD}; shift; [ $# -gt 0 ] && shift ;;
  "") ;;
  *) echo "usage: $0 [--prepare REPO | --dry-run REPO]" >&2; exit 64 ;;
esac

# ------------------------------------------------------------------------------------------------ prepare
if [ "$MODE" = prepare ]; then
  set -e
  REPO=$(cd "$REPO" && pwd)
  DATA=${GRAPHREC_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
  DC=$REPO/.devcheck
  mkdir -p "$DC/data" "$DC/whl"
  grep -qx '/.devcheck/' "$REPO/.git/info/exclude" 2>/dev/null || echo '/.devcheck/' >> "$REPO/.git/info/exclude"
  cp "$0" "$DC/device_check.sh"
  for d in gowalla planetoid; do rm -rf "$DC/data/$d"; cp -r "$DATA/$d" "$DC/data/$d"; done
  rm -f "$DC/whl/"*.whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DC/whl" "pymetis==2025.2.2" 2>&1 | grep -v '^WARNING: Location' || true
  ls -la "$DC/whl"; du -sh "$DC"
  echo
  echo 'staged. Device call (one command, from the repo root; leaves time for one partial rerun):'
  echo '  run(command="bash .devcheck/device_check.sh", carry=[".devcheck"], timeout_s=540)'
  echo 'partial rerun, same warm machine only (it is given back 30 s after a call):'
  echo '  run(command="PHASES=\"fetch extra\" BUDGET_S=240 bash .devcheck/device_check.sh", carry=[".devcheck"], timeout_s=280)'
  exit 0
fi

# ------------------------------------------------------------------------------------------------ common setup
if [ "$MODE" = dry ]; then
  cd "$REPO" || exit 1
  OUT=${OUT:-/tmp/devcheck_dry_out}
  BUDGET_S=${BUDGET_S:-900}
else
  OUT=${OUT:-/tmp/devcheck_out}
  BUDGET_S=${BUDGET_S:-500}
fi
ROOT=$(pwd)
[ -d "$ROOT/graphrec" ] && [ -d "$ROOT/kernels" ] || { echo "run from the graphrec repository root" >&2; exit 1; }
DC=$ROOT/.devcheck
PY=${PY:-python3}
PHASES=${PHASES:-env tests fetch extra lightgcn multigpu pytest}
WORK=/tmp/devcheck_work
rm -rf "$WORK"; mkdir -p "$WORK/py" "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
TEEPID=$!
START=$(date +%s)
echo "graphrec device check, mode=$MODE, $(date -u '+%F %T') UTC, budget ${BUDGET_S}s, phases: $PHASES"

export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
export GRAPHREC_DATA=${GRAPHREC_DATA:-$DC/data}
[ -d "$GRAPHREC_DATA/gowalla" ] || GRAPHREC_DATA=$(cd "$ROOT/.." && pwd)/shared/data
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
# graphrec importable without a build (no network there; setuptools' package map done with two links)
if ! $PY -c "import graphrec.kernels.gather, graphrec.loaders" >/dev/null 2>&1; then
  ln -sfn ../kernels graphrec/kernels && ln -sfn ../loaders graphrec/loaders && echo "linked graphrec/kernels, graphrec/loaders"
fi
# pymetis (graph partitions, chunks): from the carried wheel when the image lacks it
if ! $PY -c "import pymetis" >/dev/null 2>&1; then
  if ls "$DC"/whl/pymetis-*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/devcheck_site "$DC"/whl/*.whl \
      && export PYTHONPATH=$PYTHONPATH:/tmp/devcheck_site && echo "pymetis from the carried wheel"
  else
    echo "WARNING: no pymetis: projection/partitioned scenarios will fail"
  fi
fi

remaining() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
pack() { tar czf "$OUT/results.tgz" -C "$WORK" --exclude=py . 2>/dev/null; }
# phase NAME LIMIT_S COMMAND_STRING: runs only if NAME is in PHASES and at least 25 s of budget are left
phase() {
  local name=$1 limit=$2 cmd=$3 left t0 rc
  case " $PHASES " in *" $name "*) ;; *) echo "== $name: not in PHASES"; return 0 ;; esac
  left=$(remaining)
  if [ "$left" -lt 25 ]; then echo "== $name: SKIPPED, ${left}s of budget left"; echo "$name skipped-budget 0" >> "$WORK/phases.txt"; return 0; fi
  [ "$limit" -gt $((left - 5)) ] && limit=$((left - 5))
  echo; echo "== phase $name (limit ${limit}s) $(date -u +%T)"
  t0=$(date +%s)
  timeout -k 5 "$limit" bash -c "$cmd"; rc=$?
  echo "== phase $name rc=$rc in $(( $(date +%s) - t0 ))s$([ $rc = 124 ] && echo ' (TIMED OUT)')"
  echo "$name $rc $(( $(date +%s) - t0 ))" >> "$WORK/phases.txt"
  pack
}

# ------------------------------------------------------------------------------------------------ python helpers
cat > "$WORK/py/env_probe.py" <<'PY'
"""Versions, paths and the device attributes zero-copy depends on."""
import json, os, platform, sys
info = {"python": sys.version.split()[0], "executable": sys.executable, "cpus": os.cpu_count()}
import torch
info.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
import numba
info["numba"] = numba.__version__
try:
    from importlib.metadata import version
    info["numba_cuda"] = version("numba-cuda")
except Exception as error:
    info["numba_cuda"] = f"not installed ({type(error).__name__})"
try:
    import graphrec, graphrec.kernels.cuda_gather as cg
    info["graphrec_file"] = graphrec.__file__
    from numba import cuda
    info["numba_cuda_implementation"] = getattr(cuda, "implementation", "?")
    cg.locate_cuda_toolkit()
    info["CUDA_HOME"] = os.environ.get("CUDA_HOME")
except Exception as error:
    info["numba_cuda_import_error"] = repr(error)
try:
    import pymetis
    info["pymetis"] = getattr(pymetis, "__version__", "present")
except Exception as error:
    info["pymetis"] = repr(error)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, sm=f"{p.major}.{p.minor}", gpu_mem_gb=round(p.total_memory / 2**30, 1),
                multiprocessors=p.multi_processor_count, device_count=torch.cuda.device_count())
    try:
        from numba import cuda
        dev = cuda.get_current_device()
        for name in ("CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM", "HOST_REGISTER_READ_ONLY_SUPPORTED",
                     "PAGEABLE_MEMORY_ACCESS", "PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES",
                     "CAN_MAP_HOST_MEMORY", "UNIFIED_ADDRESSING", "HOST_REGISTER_SUPPORTED"):
            try:
                info["attr_" + name] = int(getattr(dev, name))
            except Exception as error:
                info["attr_" + name] = f"n/a ({type(error).__name__})"
        info["numba_cc"] = list(dev.compute_capability)
    except Exception as error:
        info["numba_device_error"] = repr(error)
    try:
        from numba.cuda.cudadrv.libs import get_cudalib
        info["nvvm_lib"] = get_cudalib("nvvm")
    except Exception as error:
        info["nvvm_lib"] = repr(error)[:300]
print(json.dumps(info, indent=1))
json.dump(info, open(sys.argv[1], "w"), indent=1)
PY

cat > "$WORK/py/device_tests.py" <<'PY'
"""Real-GPU checks of the paths the simulator tests cannot reach: pinning (cudaHostRegister), the mapped device
pointer, the kernel on a real SM, streams, the hot cache, Prefetcher, file-backed and shared tables, 64-bit
addressing; and CPU-vs-CUDA agreement of LightGCN, the ranking evaluator and the single-rank GNN engine.
Every check is independent: one failure is recorded and the others still run. Without CUDA only the
CPU-side checks run (dry run)."""
import argparse, json, os, sys, tempfile, time, traceback, types
import numpy as np
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--big-gb", type=float, default=9.0, help="table size for the >8 GiB (2^31 words) check; 0: skip")
args = parser.parse_args()
CUDA = torch.cuda.is_available()
dev = torch.device("cuda", 0) if CUDA else torch.device("cpu")
results = {}


def check(name, needs_cuda=True, cpu_ok=False):
    """cpu_ok: without CUDA the check still runs with dev = cpu (dry run: exercises its code, compares CPU with CPU)."""
    def wrap(fn):
        if needs_cuda and not CUDA and not cpu_ok:
            results[name] = {"status": "skipped (no CUDA)"}
            print(f"SKIP {name}")
            return fn
        started = time.perf_counter()
        try:
            note = fn()
            results[name] = {"status": "pass", "s": round(time.perf_counter() - started, 3), "note": note}
            print(f"PASS {name} ({time.perf_counter() - started:.2f}s){' ' + str(note) if note else ''}")
        except Exception as error:
            results[name] = {"status": "FAIL", "s": round(time.perf_counter() - started, 3),
                             "error": f"{type(error).__name__}: {error}"[:1500],
                             "trace": traceback.format_exc()[-3000:]}
            print(f"FAIL {name}: {type(error).__name__}: {error}")
            traceback.print_exc()
        if CUDA:
            try:
                torch.cuda.synchronize()
            except Exception as error:           # a sticky CUDA error: record it, later checks will say more
                results[name]["sync_error"] = repr(error)[:500]
        json.dump(results, open(args.out, "w"), indent=1)   # written after every check: a timeout keeps the rest
        return fn
    return wrap


from graphrec.sampling.feature_store import FeatureStore, Prefetcher  # noqa: E402


def fs_type(path):
    best, kind = "", "?"
    for line in open("/proc/mounts"):
        parts = line.split()
        if path.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def fetch_equal(store, table, ids, **kw):
    out = store.fetch(ids, dev, **kw)
    torch.cuda.synchronize()
    ids_cpu = ids.cpu() if isinstance(ids, torch.Tensor) else torch.as_tensor(ids)
    assert torch.equal(out.cpu(), table[ids_cpu.long()]), "zero-copy fetch differs from indexing"
    return out


@check("first zero-copy fetch (compiles the kernel), fp32 512-byte rows")
def _():
    table = torch.randn(1000, 128)
    store = FeatureStore(table)
    started = time.perf_counter()
    fetch_equal(store, table, torch.randint(0, 1000, (5000,)))
    compile_s = time.perf_counter() - started
    mapped = store.pin(0)
    note = {"compile_and_first_fetch_s": round(compile_s, 2), "base_shift_words": mapped.base_shift}
    store.close()
    return note


@check("row widths x base misalignment x dtypes (one pinned view at a time)")
def _():
    rng = np.random.default_rng(0)
    done = 0
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.uint8):
        esize = torch.tensor([], dtype=dtype).element_size()
        for width_words in (1, 5, 32, 33, 100, 128, 257):
            cols = width_words * 4 // esize
            rows = 300
            flat = torch.empty(rows * cols + 64 * 4 // esize, dtype=dtype)
            flat.view(torch.uint8).copy_(torch.from_numpy(rng.integers(0, 255, flat.numel() * esize, dtype=np.uint8)))
            for shift_words in (0, 1, 17, 31):
                offset = shift_words * 4 // esize
                table = flat[offset: offset + rows * cols].view(rows, cols)
                store = FeatureStore(table)
                ids = torch.from_numpy(rng.integers(0, rows, 777))
                ids[:3] = torch.tensor([0, rows - 1, 0])
                fetch_equal(store, table, ids)
                store.close()
                done += 1
    return f"{done} combinations"


@check("ids as a CUDA int32 tensor, empty ids, odd row bytes rejected")
def _():
    table = torch.randn(500, 64)
    store = FeatureStore(table)
    fetch_equal(store, table, torch.randint(0, 500, (999,), dtype=torch.int32, device=dev))
    empty = store.fetch(torch.empty(0, dtype=torch.long), dev)
    assert empty.shape == (0, 64) and empty.device.type == "cuda"
    store.close()
    try:
        FeatureStore(torch.zeros(10, 3, dtype=torch.float16)).pin(0)
    except ValueError:
        return "6-byte rows -> ValueError"
    raise AssertionError("6-byte rows were accepted")


@check("hot-row cache in device memory")
def _():
    table = torch.randn(20000, 96)
    store = FeatureStore(table)
    store.cache_rows(torch.arange(0, 20000, 7), dev)
    ids = torch.randint(0, 20000, (50000,))
    fetch_equal(store, table, ids)
    store.close()


@check("fetch on a side stream, consumer waits on an event (no host sync)")
def _():
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
    total = out.sum()            # ordered after the fetch on the default stream
    torch.cuda.synchronize()
    assert torch.allclose(total.cpu(), table[ids].sum(), rtol=1e-3)
    store.close()


@check("Prefetcher on CUDA: 30 batches of varying size, each equal to indexing")
def _():
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


@check("close() unpins; fetching again re-pins")
def _():
    table = torch.randn(4096, 32)
    store = FeatureStore(table)
    ids = torch.randint(0, 4096, (1000,))
    fetch_equal(store, table, ids)
    store.close()
    fetch_equal(store, table, ids)
    store.close()


@check("share_memory() table (what torch.multiprocessing workers map)")
def _():
    table = torch.randn(30000, 64)
    store = FeatureStore(table).share_memory()
    fetch_equal(store, store.table, torch.randint(0, 30000, (10000,)))
    store.close()


@check("from_file, read-only mmap (cudaHostRegisterReadOnly)")
def _():
    with tempfile.TemporaryDirectory() as folder:
        table = torch.randn(20000, 64)
        FeatureStore(table).save(f"{folder}/t.npy")
        store = FeatureStore.from_file(f"{folder}/t.npy")
        fetch_equal(store, table, torch.randint(0, 20000, (8000,)))
        store.close()
        return {"fs": fs_type(folder)}


@check("from_file, writable mmap (file-backed MAP_SHARED pages)")
def _():
    with tempfile.TemporaryDirectory() as folder:
        table = torch.randn(20000, 64)
        FeatureStore(table).save(f"{folder}/t.npy")
        store = FeatureStore.from_file(f"{folder}/t.npy", writable=True)
        print("  temp dir file system:", fs_type(folder))
        fetch_equal(store, table, torch.randint(0, 20000, (8000,)))
        store.close()
        return {"fs": fs_type(folder)}


@check("two small tables pinned at the same time (pages shared by neighbouring heap allocations)")
def _():
    a, b = torch.randn(200, 16), torch.randn(200, 16)     # 12.8 kB each: likely adjacent on the malloc heap
    page = 4096
    shared_page = (a.data_ptr() // page <= (b.data_ptr() + b.numel() * 4 - 1) // page and
                   b.data_ptr() // page <= (a.data_ptr() + a.numel() * 4 - 1) // page)
    sa, sb = FeatureStore(a), FeatureStore(b)
    fetch_equal(sa, a, torch.randint(0, 200, (100,)))
    fetch_equal(sb, b, torch.randint(0, 200, (100,)))
    sa.close(); sb.close()
    return {"pages_shared": bool(shared_page)}


def tiny_interactions(users=300, items=400, per_user=12, seed=0):
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(users), per_user)
    cols = rng.integers(0, items, rows.size)
    m = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(users, items))
    m.data[:] = 1.0
    return m


@check("LightGCN: CUDA loss and gradients equal the CPU fused kernels", cpu_ok=True)
def _():
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
    return {"loss": float(loss_cpu)}


@check("RankingEvaluator: CUDA embeddings give the CPU metrics", cpu_ok=True)
def _():
    from graphrec.metrics import RankingEvaluator
    train, test = tiny_interactions(seed=1), tiny_interactions(per_user=3, seed=2)
    torch.manual_seed(1)
    u, i = torch.randn(300, 32), torch.randn(400, 32)
    ev = RankingEvaluator(train, test, ks=(10, 20))
    a, b = ev.evaluate(u, i), ev.evaluate(u.to(dev), i.to(dev))
    for k in a:
        assert abs(a[k] - b[k]) < 1e-6, (k, a[k], b[k])
    return {"recall@20": a["recall@20"]}


@check("GNN engine, mode single, GCNII-4 on Cora: CUDA losses track CPU (3 epochs)", cpu_ok=True)
def _():
    from graphrec.parallel.scenarios import run
    spec = {"data_dir": os.environ.get("GRAPHREC_DATA"), "dataset": "cora", "model": "gcnii",
            "model_kwargs": {"num_layers": 4, "hidden_channels": 32, "dropout": 0.5}, "epochs": 3, "seed": 3,
            "lr": 0.01, "weight_decay": 5e-4, "parallel": {"mode": "single"}}
    cpu = [row["loss"] for row in run(spec, device="cpu")["epochs"]]
    gpu = [row["loss"] for row in run(spec, device=str(dev))["epochs"]]
    assert max(abs(x - y) for x, y in zip(cpu, gpu)) < 1e-3, (cpu, gpu)
    return {"cpu": cpu, "cuda": gpu}


@check("table larger than 8 GiB (word offsets beyond 2^31)")
def _():
    if args.big_gb <= 0:
        return "skipped (--big-gb 0)"
    dim = 128
    rows = int(args.big_gb * 2**30 / (dim * 4))
    table = torch.empty(rows, dim)              # untouched pages; cudaHostRegister faults them in
    ids = torch.cat([torch.arange(rows - 2000, rows), torch.randint(0, rows, (2000,))])
    table[ids] = torch.randn(ids.numel(), dim)
    started = time.perf_counter()
    store = FeatureStore(table)
    store.pin(0)
    pin_s = time.perf_counter() - started
    fetch_equal(store, table, ids)
    store.close()
    return {"rows": rows, "gib": round(rows * dim * 4 / 2**30, 2), "pin_s": round(pin_s, 2)}


@check("CPU-side imports and FeatureStore CPU fetch (dry-run sanity)", needs_cuda=False)
def _():
    import graphrec.kernels.cuda_gather  # noqa: F401  (numba.cuda importable)
    table = torch.randn(100, 8)
    assert torch.equal(FeatureStore(table).fetch([3, 1, 3]), table[[3, 1, 3]])


failed = [k for k, v in results.items() if v["status"] == "FAIL"]
print(f"\n{sum(v['status'] == 'pass' for v in results.values())} passed, {len(failed)} failed")
json.dump(results, open(args.out, "w"), indent=1)
sys.exit(1 if failed else 0)
PY

cat > "$WORK/py/fetch_extra.py" <<'PY'
"""What gpu_feature_fetch.py leaves out: the PCIe ceiling (pinned copies), a torch-native zero-copy baseline
(torch.index_select on a CUDA tensor aliasing the same pinned+mapped host table: what PyTorch-Direct's
unified tensor / DGL's UVA gather do without graphrec's per-warp line alignment), sequential vs random rows
(separates IOMMU/IOTLB effects of this VM from the kernel), row width, and small batches (launch overhead)."""
import argparse, json, sys, time
import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--gb", type=float, default=2.0, help="host table size per row width")
p.add_argument("--dims", type=int, nargs="+", default=[32, 128, 512], help="float32 columns: 128 B, 512 B, 2 KB rows")
p.add_argument("--batch-mb", type=float, default=200.0, help="bytes gathered per batch")
p.add_argument("--batches", type=int, default=5)
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--small", type=int, nargs="+", default=[1024, 8192, 65536])
p.add_argument("--gb-dim", nargs="*", default=[], help="DIM=GB: a larger table for that row width (e.g. 128=32)")
p.add_argument("--out", required=True)
args = p.parse_args()
GB_BY_DIM = {int(k): float(v) for k, v in (item.split("=") for item in args.gb_dim)}
if not torch.cuda.is_available():
    print("fetch_extra: no CUDA here; arguments parsed:", vars(args))
    json.dump({"skipped": "no CUDA", "args": vars(args)}, open(args.out, "w"))
    sys.exit(0)

from graphrec.sampling.feature_store import FeatureStore

dev = torch.device("cuda", 0)
res = {"args": vars(args)}


def per_call(fn, items, rounds=args.rounds, sync_each=False):
    fn(items[0]); torch.cuda.synchronize()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for item in items:
            fn(item)
            if sync_each:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / len(items))
    return best


# 1. ceilings
n = 256 * 2**20
pinned = torch.empty(n, dtype=torch.uint8, pin_memory=True)
pageable = torch.empty(n, dtype=torch.uint8); pageable.fill_(1)
g = torch.empty(n, dtype=torch.uint8, device=dev)
g2 = torch.empty(n, dtype=torch.uint8, device=dev)
res["copy_GBps"] = {
    "h2d_pinned": n / per_call(lambda _: g.copy_(pinned, non_blocking=True), [0] * 10) / 1e9,
    "d2h_pinned": n / per_call(lambda _: pinned.copy_(g, non_blocking=True), [0] * 10) / 1e9,
    "h2d_pageable": n / per_call(lambda _: g.copy_(pageable), [0] * 4) / 1e9,
    "d2d_read_plus_write": 2 * n / per_call(lambda _: g2.copy_(g), [0] * 20) / 1e9,
}
print("copies GB/s:", {k: round(v, 1) for k, v in res["copy_GBps"].items()}, flush=True)
del pinned, pageable, g, g2


class Mapped:
    """A CUDA-array-interface view of the mapped host table, for torch.as_tensor (no copy)."""
    def __init__(self, ptr, shape):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (ptr, False),
                                         "strides": None, "version": 3}


rng = np.random.default_rng(0)
for dim in args.dims:
    row_bytes = dim * 4
    rows = int(GB_BY_DIM.get(dim, args.gb) * 1e9 / row_bytes)
    table = torch.empty(rows, dim)
    table.uniform_()
    store = FeatureStore(table)
    t = time.perf_counter(); store.pin(0); pin_s = time.perf_counter() - t
    uva = torch.as_tensor(Mapped(table.data_ptr(), (rows, dim)), device=dev)
    nids = int(min(rows, args.batch_mb * 1e6 / row_bytes))
    ids_cpu = [torch.from_numpy(rng.integers(0, rows, nids)) for _ in range(args.batches)]
    ids_gpu = [i.to(dev) for i in ids_cpu]
    seq_gpu = [torch.arange(k * nids, (k + 1) * nids, device=dev) % rows for k in range(args.batches)]
    out = torch.empty(nids, dim, device=dev)
    staging = torch.empty(nids, dim, pin_memory=True)
    assert uva.device.type == "cuda" and torch.equal(uva[ids_gpu[0][:4096]].cpu(), table[ids_cpu[0][:4096]])
    assert torch.equal(store.fetch(ids_gpu[0], dev, out=out).cpu(), table[ids_cpu[0]])

    def cpu_gather_copy(ids):
        store.fetch(ids, out=staging)
        out.copy_(staging, non_blocking=True)

    timings = {
        "zero-copy (graphrec, aligned)": per_call(lambda i: store.fetch(i, dev, out=out), ids_gpu),
        "zero-copy sequential rows": per_call(lambda i: store.fetch(i, dev, out=out), seq_gpu),
        "torch-uva index_select": per_call(lambda i: torch.index_select(uva, 0, i, out=out), ids_gpu),
        "torch-uva sequential rows": per_call(lambda i: torch.index_select(uva, 0, i, out=out), seq_gpu),
        "cpu-gather+pinned copy (synced)": per_call(cpu_gather_copy, ids_cpu, sync_each=True),
        "index_select+copy": per_call(lambda i: torch.index_select(table, 0, i).to(dev), ids_cpu, rounds=1),
    }
    entry = {"rows": rows, "row_bytes": row_bytes, "ids_per_batch": nids, "pin_s": pin_s,
             "ms": {k: v * 1e3 for k, v in timings.items()},
             "GBps": {k: nids * row_bytes / v / 1e9 for k, v in timings.items()}}
    res[f"dim{dim}"] = entry
    print(f"\nrow {row_bytes} B, {nids:,} ids/batch, pin {pin_s:.2f}s")
    for k, v in timings.items():
        print(f"  {k:34s} {v * 1e3:8.2f} ms {entry['GBps'][k]:7.2f} GB/s")
    if dim == 128:
        small = {}
        for m in args.small:
            ig = [torch.from_numpy(rng.integers(0, rows, m)).to(dev) for _ in range(20)]
            ic = [i.cpu() for i in ig]
            small[m] = {
                "zero-copy gpu ids us": per_call(lambda i: store.fetch(i, dev, out=out[:m]), ig) * 1e6,
                "zero-copy cpu ids us": per_call(lambda i: store.fetch(i, dev, out=out[:m]), ic) * 1e6,
                "torch-uva us": per_call(lambda i: torch.index_select(uva, 0, i, out=out[:m]), ig) * 1e6,
                "index_select+copy us": per_call(lambda i: torch.index_select(table, 0, i).to(dev), ic) * 1e6,
            }
            print(f"  small batch {m:6d}: " + ", ".join(f"{k} {v:.0f}" for k, v in small[m].items()))
        res["small_batches_dim128"] = small
    del uva
    store.close()
    del table, staging, out
json.dump(res, open(args.out, "w"), indent=1)
PY

cat > "$WORK/py/lightgcn_gpu.py" <<'PY'
"""LightGCN on Gowalla (3 layers, dim 64, batch 2048, Adam 1e-3): one GPU epoch against CPU batches (all cores),
then full-ranking evaluation: graphrec's evaluator on CUDA and on CPU embeddings, and a torch-native GPU ranking."""
import argparse, json, os, sys, time
import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
p.add_argument("--gpu-batches", type=int, default=0, help="0: the whole epoch")
p.add_argument("--cpu-batches", type=int, default=20)
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--eval-repeats", type=int, default=2)
p.add_argument("--out", required=True)
args = p.parse_args()

import numba
from graphrec.loaders import load_dataset
from graphrec.metrics import RankingEvaluator
from graphrec.models import LightGCN
from graphrec.sampling import BPRSampler

torch.set_num_threads(args.threads)
numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
res = {"args": vars(args), "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads()}
t = time.perf_counter()
graph = load_dataset("gowalla", data_dir=os.environ.get("GRAPHREC_DATA"))
res["load_s"] = time.perf_counter() - t
sampler = BPRSampler(graph.train, batch_size=2048, seed=0)
t = time.perf_counter()
batches = list(sampler.batches(0))
res["sample_epoch_s"] = time.perf_counter() - t
res["batches_per_epoch"] = len(batches)
print(f"gowalla {graph.num_users} users x {graph.num_items} items, {len(batches)} batches/epoch, "
      f"sampling {res['sample_epoch_s']:.2f}s", flush=True)


def trainer(device):
    torch.manual_seed(0)
    model = LightGCN(graph.num_users, graph.num_items, 64, 3)
    model.prepare(graph.train)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step(batch):
        loss = model.loss(batch.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return model, step


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# CPU reference (all cores, graphrec's fused numba kernels)
model_c, step_c = trainer("cpu")
first_cpu = float(step_c(batches[0]).detach())
for b in batches[1:3]:
    step_c(b)
t = time.perf_counter()
for b in batches[3:3 + args.cpu_batches]:
    step_c(b)
cpu_s = (time.perf_counter() - t) / args.cpu_batches
res["cpu"] = {"s_per_batch": cpu_s, "s_per_epoch_est": cpu_s * len(batches), "first_loss": first_cpu}
print(f"cpu  ({res['torch_threads']} threads): {cpu_s * 1e3:.1f} ms/batch, {cpu_s * len(batches):.1f} s/epoch (est.)",
      flush=True)

if args.device != "cpu":
    model_g, step_g = trainer(args.device)
    first_gpu = float(step_g(batches[0]).detach())
    for b in batches[1:5]:
        step_g(b)
    sync(args.device)
    run = batches if args.gpu_batches <= 0 else batches[:args.gpu_batches]
    t = time.perf_counter()
    for b in run:
        step_g(b)
    sync(args.device)
    gpu_s = time.perf_counter() - t
    res["gpu"] = {"s_epoch_measured": gpu_s if args.gpu_batches <= 0 else None, "batches_timed": len(run),
                  "s_per_batch": gpu_s / len(run), "first_loss": first_gpu,
                  "speedup_vs_cpu_per_batch": cpu_s / (gpu_s / len(run)),
                  "epoch_incl_sampling_s": gpu_s * len(batches) / len(run) + res["sample_epoch_s"]}
    print(f"gpu: {gpu_s / len(run) * 1e3:.2f} ms/batch, epoch {gpu_s * len(batches) / len(run):.2f} s "
          f"(+ {res['sample_epoch_s']:.2f} s CPU sampling); first loss cpu {first_cpu:.6f} gpu {first_gpu:.6f}",
          flush=True)
    model = model_g
else:
    model = model_c

# evaluation on the trained embeddings
with torch.no_grad():
    users, items = model.embeddings()
evaluator = RankingEvaluator(graph.train, graph.test, ks=(20,))


def best(fn, repeats):
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        sync(args.device)
        times.append(time.perf_counter() - t)
    return min(times), out


def torch_gpu_ranking(u, i, k=20, chunk=4096):
    """Full ranking on the device: scores, train items to -inf, topk, hits against test; recall@k."""
    device = u.device
    train, test = graph.train, graph.test
    eval_users = np.flatnonzero(np.diff(test.indptr) > 0)
    it = i.t().contiguous()
    recall = torch.zeros((), dtype=torch.float64, device=device)
    for s in range(0, eval_users.size, chunk):
        rows = eval_users[s: s + chunk]
        scores = u[torch.from_numpy(rows).to(device)] @ it
        m = train[rows].tocoo()
        scores[torch.from_numpy(m.row.astype(np.int64)).to(device),
               torch.from_numpy(m.col.astype(np.int64)).to(device)] = -float("inf")
        top = torch.topk(scores, k).indices
        tc = test[rows].tocoo()
        truth = torch.zeros_like(scores, dtype=torch.bool)
        truth[torch.from_numpy(tc.row.astype(np.int64)).to(device), torch.from_numpy(tc.col.astype(np.int64)).to(device)] = True
        hits = truth.gather(1, top).sum(1).double()
        recall += (hits / torch.from_numpy(np.diff(test[rows].indptr)).to(device)).sum()
    return float(recall) / eval_users.size


ev = {}
evaluator.evaluate(users.cpu(), items.cpu())           # compile the numba kernels once
ev["graphrec_cpu_embeddings_s"], m_cpu = best(lambda: evaluator.evaluate(users.cpu(), items.cpu()), args.eval_repeats)
if args.device != "cpu":
    ev["graphrec_cuda_embeddings_s"], m_gpu = best(lambda: evaluator.evaluate(users, items), args.eval_repeats)
    torch_gpu_ranking(users, items)
    ev["torch_gpu_topk_s"], r_gpu = best(lambda: torch_gpu_ranking(users, items), args.eval_repeats)
    ev["recall@20"] = {"graphrec_cpu": m_cpu["recall@20"], "graphrec_cuda": m_gpu["recall@20"], "torch_gpu": r_gpu}
    assert abs(m_gpu["recall@20"] - m_cpu["recall@20"]) < 1e-6
    ev["torch_gpu_agrees"] = abs(r_gpu - m_cpu["recall@20"]) < 1e-4   # ties at the k-th score may differ
else:
    # no GPU (dry run): the torch ranking runs on the CPU, to check it against graphrec's metrics
    ev["torch_cpu_topk_s"], r_cpu = best(lambda: torch_gpu_ranking(users, items), 1)
    ev["recall@20"] = {"graphrec_cpu": m_cpu["recall@20"], "torch_on_cpu": r_cpu}
    assert abs(r_cpu - m_cpu["recall@20"]) < 1e-4, ev
res["eval"] = ev
print("evaluation:", json.dumps(ev), flush=True)
json.dump(res, open(args.out, "w"), indent=1)
PY

cat > "$WORK/py/summary.py" <<'PY'
"""One summary.json from the phase files (whatever exists)."""
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
summary = {}
def load(name):
    path = os.path.join(work, name)
    try:
        return json.load(open(path))
    except Exception:
        return None
phases = {}
if os.path.exists(os.path.join(work, "phases.txt")):
    for line in open(os.path.join(work, "phases.txt")):
        name, rc, s = line.split()
        phases[name] = {"rc": rc, "s": int(s)}
summary["phases"] = phases
summary["env"] = load("env.json")
tests = load("device_tests.json")
if tests:
    summary["device_tests"] = {k: v["status"] + (f": {v.get('error', '')[:300]}" if v["status"] == "FAIL" else "")
                               for k, v in tests.items()}
fetch = load("gpu_feature_fetch.json")
if fetch:
    summary["gpu_feature_fetch"] = {"results": fetch.get("results"), "overlap_ms_per_batch": fetch.get("overlap_ms_per_batch"),
                                    "pin_seconds": fetch.get("pin_seconds")}
extra = load("fetch_extra.json")
if extra:
    summary["fetch_extra"] = {k: (v if k in ("copy_GBps", "small_batches_dim128") else v.get("GBps") if isinstance(v, dict) else v)
                              for k, v in extra.items() if k != "args"}
summary["lightgcn"] = load("lightgcn_gpu.json")
for name in ("gnnpipe_gpu_single_1gpu.json", "gnnpipe_gpu_ddp-lightgcn_1gpu.json"):
    summary[name] = load(name)
for name in sorted(os.listdir(work)):
    if name.startswith("proj_") and name.endswith(".json"):
        data = load(name)
        summary[name] = {"rows": data.get("rows"), "device": data.get("device")} if data else None
json.dump(summary, open(out, "w"), indent=1, default=str)
print(json.dumps({k: v for k, v in summary.items() if k in ("phases", "device_tests")}, indent=1))
PY

# ------------------------------------------------------------------------------------------------ phases
if [ "$MODE" = dry ]; then
  FETCH_ARGS="--rows 200000 --ids 20000 --batches 2 --rounds 1"
  EXTRA_ARGS="--gb 0.05 --dims 32 128 --gb-dim 128=0.1 --batches 2 --rounds 1"
  LGCN_ARGS="--cpu-batches 3 --eval-repeats 1"
  BIG_GB=0
  PROJ_REPEATS=1
  POWERLAW=synthetic-powerlaw-20000-20
else
  FETCH_ARGS="--rows 8000000 --dim 128 --ids 400000 --batches 10 --rounds 3"
  EXTRA_ARGS="--gb 2 --dims 32 128 512 --gb-dim 128=32 --batches 5 --rounds 3"
  LGCN_ARGS="--cpu-batches 20 --eval-repeats 2"
  BIG_GB=9
  PROJ_REPEATS=5
  POWERLAW=synthetic-powerlaw-100000-20
fi

phase env 60 "nvidia-smi 2>&1 | head -20; nvidia-smi -q 2>/dev/null | grep -iE -A3 'PCIe Generation|Link Width' | head -20;
  ls /usr/local/cuda/nvvm/lib64 2>&1 | head -3; free -g | head -2;
  $PY '$WORK/py/env_probe.py' '$WORK/env.json'"

phase tests 170 "$PY '$WORK/py/device_tests.py' --out '$WORK/device_tests.json' --big-gb $BIG_GB"

phase fetch 150 "$PY benchmarks/gpu_feature_fetch.py $FETCH_ARGS; rc=\$?;
  cp benchmarks/results/gpu_feature_fetch.json '$WORK/' 2>/dev/null; exit \$rc"

phase extra 170 "$PY '$WORK/py/fetch_extra.py' $EXTRA_ARGS --out '$WORK/fetch_extra.json'"

phase lightgcn 150 "$PY '$WORK/py/lightgcn_gpu.py' $LGCN_ARGS --out '$WORK/lightgcn_gpu.json'"

# one GPU: the single-rank reference runs for real; N-rank NCCL layouts cannot (NCCL refuses two ranks on one
# GPU and init_distributed maps rank r to cuda:r), so their epoch times are projected from per-layer GPU times
# measured here plus the exactly counted volumes (projection.py); ddp-lightgcn with --nproc 1 is the CLI path.
phase multigpu 170 "set -x;
  $PY benchmarks/multigpu/gnnpipe_gpu.py --scenario single --layers 32 --epochs 60 --data-dir '$GRAPHREC_DATA';
  cp benchmarks/results/gnnpipe_gpu_single_1gpu.json '$WORK/' 2>/dev/null;
  $PY benchmarks/multigpu/projection.py --data-dir '$GRAPHREC_DATA' --layers 32 --ranks 2 4 8 --chunks 4 --repeats $PROJ_REPEATS --out '$WORK/proj_cora_c4';
  $PY benchmarks/multigpu/projection.py --data-dir '$GRAPHREC_DATA' --layers 32 --ranks 2 4 8 --chunks 16 --repeats $PROJ_REPEATS --bandwidth 50e9 --out '$WORK/proj_cora_c16_pcie5';
  $PY benchmarks/multigpu/projection.py --data-dir '$GRAPHREC_DATA' --dataset $POWERLAW --layers 32 --ranks 2 4 8 --chunks 16 --repeats $PROJ_REPEATS --bandwidth 50e9 --out '$WORK/proj_powerlaw_c16_pcie5';
  $PY benchmarks/multigpu/gnnpipe_gpu.py --scenario ddp-lightgcn --nproc 1 --dataset gowalla --epochs 4 --data-dir '$GRAPHREC_DATA';
  cp benchmarks/results/gnnpipe_gpu_ddp-lightgcn_1gpu.json '$WORK/' 2>/dev/null; true"

phase pytest 90 "$PY -m pytest -q -p no:cacheprovider tests/test_cuda_gather.py tests/test_feature_store.py 2>&1 | tail -15"

$PY "$WORK/py/summary.py" "$WORK" "$OUT/summary.json" || true
pack
echo; echo "done in $(( $(date +%s) - START ))s; files in $OUT:"; ls -la "$OUT"
exec 1>&- 2>&-
wait "$TEEPID" 2>/dev/null
exit 0
