#!/usr/bin/env bash
# graphrec GPU device check: ONE prepared run on a one-GPU machine (NVIDIA H200), about 9 minutes, everything it
# measures written under $OUT as three files (log.txt, summary.json, results.tgz; the device tool returns at most 8).
#
# Phases, in order (PHASES picks a subset; each has a time limit, and a phase that no longer fits BUDGET_S is
# skipped, never started). Issue 23 = "GPU half, part 1" (CUDA paths, zero-copy fetch); issue 24 = "part 2"
# (training side by side with PyG, time to accuracy, deep GNNs).
#   env           23+24  versions, the zero-copy device attributes           benchmarks/gpu/env_probe.py
#   pytest        23+24  every test marked `cuda` (tests/test_cuda_device.py and the other files' CUDA tests),
#                        then the zero-copy unit tests on the device image
#   fetch         23     zero-copy against the pinned copy ceiling, CPU gather + double-buffered copy, torch UVA;
#                        128 B / 512 B / 2 KB rows, 1k / 8k / 64k / 400k ids, a 32 GB table at 512 B rows
#                                                                          benchmarks/gpu_feature_fetch.py
#   sage          23     a minibatch GraphSAGE epoch, features in pinned host memory (2M nodes x 512 B rows):
#                        zero-copy vs CPU gather + copy, with and without the Prefetcher
#                                                                          benchmarks/gpu/minibatch_epoch_gpu.py
#   lightgcn      24     LightGCN on Gowalla s/epoch, batch 2048 and 8192, against PyG (edge_index, CSR), peak
#                        GPU memory                                        benchmarks/lightgcn_epoch.py --device
#   eval          24     full-ranking evaluation on the GPU against the bare GPU matmul, metrics = CPU evaluator's
#                                                                          benchmarks/evaluation.py --device
#   nodeclass     24     DAGNN and GCNII-16/32 on Cora/CiteSeer epoch times against PyG APPNP / GCN2Conv
#                                                                          benchmarks/node_classification_speed.py
#   tta_lightgcn  24     time to recall@20 0.15/0.17/0.18, LightGCN fast cosine recipe (batch 8192, lr 1e-2 cosine
#                        over 400 epochs), stopped by its time budget      benchmarks/time_to_accuracy.py
#   tta_ultragcn  24     the same for UltraGCN, shared negatives, lr 1e-3
#   multigpu      24     GNNPipe GCNII-32 single-GPU reference, its per-layer GPU times projected to 2-8 GPUs
#                                                                          benchmarks/multigpu/*.py
#   ddp           (opt.) LightGCN through --parallel ddp on one GPU (not in the default PHASES)
#
# Three modes:
#   bash benchmarks/gpu/device_check.sh --prepare REPO
#        on the development machine (no GPU needed): stage the data and the pymetis wheel into REPO/.devcheck/
#        (ignored through REPO/.git/info/exclude, < 20 MB) and print the device call to make.
#   bash benchmarks/gpu/device_check.sh
#        on the device machine, from the repository root (the default mode).
#   bash benchmarks/gpu/device_check.sh --dry-run REPO
#        on a CPU machine: every phase on tiny sizes and a generated tiny Gowalla (CI: tests/test_device_check.py).
#        A GPU-only phase exits 77 there and is recorded as "skipped (no CUDA)".
#
# Environment: PHASES (a subset reruns only those), BUDGET_S (device default 550 s), PY (default python3),
# OUT (default /tmp/devcheck_out; the device tool sets it), TTA_LGCN_BUDGET / TTA_UGCN_BUDGET (seconds each time-to-
# accuracy run may train, default 100 / 70: in the default run they reach the early thresholds; a second call such as
# PHASES=tta_lightgcn TTA_LGCN_BUDGET=480 BUDGET_S=540 measures the time to 0.18 of the fast recipe on its own).
#
# Facts this rests on (the device tool's notes): the device machine reaches no network; its image has python3
# (Python 3.12, torch 2.11+cu130, numba + numba-cuda, the CUDA 13 toolkit with NVVM, torch-geometric, pytest);
# pymetis is not there (it travels as a cp312 wheel in .devcheck/whl/); ../shared/data does not travel (gowalla
# and planetoid are copied into .devcheck/data/); graphrec is not installed there (the setuptools package map,
# graphrec.kernels -> kernels/ and graphrec.loaders -> loaders/, is reproduced with two links).
set -u

MODE=device
case "${1:-}" in
  --prepare) MODE=prepare; REPO=${2:?--prepare REPO} ;;
  --dry-run) MODE=dry; REPO=${2:-$PWD} ;;
  "") ;;
  *) echo "usage: $0 [--prepare REPO | --dry-run REPO]" >&2; exit 64 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
ALL_PHASES="env pytest fetch sage lightgcn eval nodeclass tta_lightgcn tta_ultragcn multigpu"

# ------------------------------------------------------------------------------------------------ prepare
if [ "$MODE" = prepare ]; then
  set -e
  REPO=$(cd "$REPO" && pwd)
  DATA=${GRAPHREC_DATA:-$(cd "$REPO/.." && pwd)/shared/data}
  DC=$REPO/.devcheck
  mkdir -p "$DC/data" "$DC/whl"
  grep -qx '/.devcheck/' "$REPO/.git/info/exclude" 2>/dev/null || echo '/.devcheck/' >> "$REPO/.git/info/exclude"
  for d in gowalla planetoid; do rm -rf "${DC:?}/data/$d"; cp -r "$DATA/$d" "$DC/data/$d"; done
  rm -f "$DC/whl/"*.whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DC/whl" "pymetis==2025.2.2" 2>&1 | grep -v '^WARNING: Location' || true
  ls -la "$DC/whl"; du -sh "$DC"
  echo
  echo 'staged. Device call (one command, from the repo root; leaves time for one partial rerun):'
  echo '  run(command="bash benchmarks/gpu/device_check.sh", carry=[".devcheck"], timeout_s=590)'
  echo 'partial rerun, same warm machine only (phases by name):'
  echo '  run(command="PHASES=\"fetch\" BUDGET_S=200 bash benchmarks/gpu/device_check.sh", carry=[".devcheck"], timeout_s=230)'
  exit 0
fi

# ------------------------------------------------------------------------------------------------ common setup
if [ "$MODE" = dry ]; then
  cd "$REPO" || exit 1
  OUT=${OUT:-/tmp/devcheck_dry_out}
  BUDGET_S=${BUDGET_S:-600}
  WORK=${WORK:-$(mktemp -d /tmp/devcheck_dry_work.XXXXXX)}
else
  OUT=${OUT:-/tmp/devcheck_out}
  BUDGET_S=${BUDGET_S:-550}
  WORK=/tmp/devcheck_work
fi
ROOT=$(pwd)
[ -d "$ROOT/graphrec" ] && [ -d "$ROOT/kernels" ] || { echo "run from the graphrec repository root" >&2; exit 1; }
DC=$ROOT/.devcheck
PY=${PY:-python3}
PHASES=${PHASES:-$ALL_PHASES}
rm -rf "$WORK"; mkdir -p "$WORK" "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
TEEPID=$!
START=$(date +%s)
echo "graphrec device check, mode=$MODE, $(date -u '+%F %T') UTC, commit $(git rev-parse --short HEAD 2>/dev/null), budget ${BUDGET_S}s, phases: $PHASES"

export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH=$ROOT:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}
if [ "$MODE" = dry ]; then
  # A tiny Gowalla in the LightGCN format (200 users x 300 items; files are read, not checksummed) so that the
  # recommendation phases run in seconds; planetoid is small already and is linked from the real data.
  REAL_DATA=${GRAPHREC_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}
  export GRAPHREC_DATA=$WORK/data
  mkdir -p "$GRAPHREC_DATA/gowalla"
  ln -sfn "$REAL_DATA/planetoid" "$GRAPHREC_DATA/planetoid"
  awk 'BEGIN { srand(7); for (u = 0; u < 200; u++) { tr = u; te = u;
         for (k = 0; k < 12; k++) tr = tr " " int(rand() * 300); for (k = 0; k < 3; k++) te = te " " int(rand() * 300);
         print tr > "'"$GRAPHREC_DATA"'/gowalla/train.txt"; print te > "'"$GRAPHREC_DATA"'/gowalla/test.txt" } }'
  echo "dry run: tiny Gowalla in $GRAPHREC_DATA/gowalla, planetoid from $REAL_DATA"
else
  export GRAPHREC_DATA=${GRAPHREC_DATA:-$DC/data}
  [ -d "$GRAPHREC_DATA/gowalla" ] || GRAPHREC_DATA=$(cd "$ROOT/.." && pwd)/shared/data
fi
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
pack() { tar czf "$OUT/results.tgz" -C "$WORK" --exclude=./data --exclude='*.pt' . 2>/dev/null; }
# phase NAME LIMIT_S COMMAND_STRING: runs only if NAME is in PHASES and at least 25 s of budget are left.
# Exit status 77 from a command means "this phase needs CUDA and there is none" (dry run).
phase() {
  local name=$1 limit=$2 cmd=$3 left t0 rc
  case " $PHASES " in *" $name "*) ;; *) echo "== $name: not in PHASES"; return 0 ;; esac
  left=$(remaining)
  if [ "$left" -lt 25 ]; then echo "== $name: SKIPPED, ${left}s of budget left"; echo "$name skipped-budget 0" >> "$WORK/phases.txt"; return 0; fi
  [ "$limit" -gt $((left - 5)) ] && limit=$((left - 5))
  echo; echo "== phase $name (limit ${limit}s) $(date -u +%T)"
  t0=$(date +%s)
  timeout -k 5 "$limit" bash -c "$cmd"; rc=$?
  echo "== phase $name rc=$rc in $(( $(date +%s) - t0 ))s$([ $rc = 124 ] && echo ' (TIMED OUT)')$([ $rc = 77 ] && echo ' (skipped: no CUDA)')"
  echo "$name $rc $(( $(date +%s) - t0 ))" >> "$WORK/phases.txt"
  pack
}

# ------------------------------------------------------------------------------------------------ sizes
D=$GRAPHREC_DATA
if [ "$MODE" = dry ]; then
  DEVICE=cpu
  PYTEST_TARGETS="tests/test_cuda_device.py"
  FETCH_ARGS="--dry-run"
  SAGE_ARGS="--dry-run --nodes 5000 --edges 50000 --dim 16 --train-nodes 256 --batch-size 128 --fanouts 5 5 --rounds 1"
  LGCN_ARGS="--batch-sizes 256 --batches 1 --documented-batches 1 --warmup 1"
  EVAL_ARGS="--repeats 1"
  NODE_ARGS="--data cora --hops 2 --gcnii-layers 2 --rounds 1 --epochs-per-round 1 --warmup 1"
  TTA_COMMON="--eval-every 1 --set train.epochs=1 --set train.max_batches_per_epoch=2 --set train.batch_size=256"
  TTA_LGCN_BUDGET=60; TTA_UGCN_BUDGET=60
  PROJ="--layers 2 --ranks 2 --chunks 2 --repeats 1"
else
  DEVICE=cuda
  PYTEST_TARGETS=$(grep -l "mark.cuda" tests/test_*.py | tr '\n' ' ')   # only the files with CUDA tests are imported
  FETCH_ARGS="--table-gb 2 --widths 128 512 2048 --batch-ids 1024 8192 65536 400000 --big-table-gb 32 --batches 10 --rounds 3"
  SAGE_ARGS="--nodes 2000000 --edges 20000000 --dim 128 --train-nodes 16384 --batch-size 1024 --rounds 2"
  LGCN_ARGS="--batch-sizes 2048 8192 --batches 30 --documented-batches 10 --warmup 3 --full-epoch"
  EVAL_ARGS="--repeats 3"
  NODE_ARGS="--data cora citeseer --hops 10 --gcnii-layers 16 32 --rounds 5 --epochs-per-round 10 --warmup 5"
  TTA_COMMON=""
  TTA_LGCN_BUDGET=${TTA_LGCN_BUDGET:-100}; TTA_UGCN_BUDGET=${TTA_UGCN_BUDGET:-70}
  PROJ="--layers 32 --ranks 2 4 8 --chunks 16 --repeats 5"
fi

# ------------------------------------------------------------------------------------------------ phases
phase env 30 "nvidia-smi 2>&1 | head -20; nvidia-smi -q 2>/dev/null | grep -iE -A3 'PCIe Generation|Link Width' | head -20;
  free -g | head -2; $PY '$HERE/env_probe.py' '$WORK/env.json'"

# the >8 GiB table test runs in the device mode only (it pins 9 GiB)
phase pytest 90 "GRAPHREC_CUDA_BIG_TABLE_GB=$([ $MODE = dry ] && echo 0 || echo 9) \
  $PY -m pytest -q -p no:cacheprovider -m cuda -rs --junitxml='$WORK/pytest_cuda.xml' $PYTEST_TARGETS 2>&1 | tail -30;
  rc=\${PIPESTATUS[0]};
  if [ $MODE = device ]; then
    $PY -m pytest -q -p no:cacheprovider --junitxml='$WORK/pytest_zero_copy.xml' tests/test_cuda_gather.py tests/test_feature_store.py 2>&1 | tail -8;
    [ \${PIPESTATUS[0]} = 0 ] || rc=1;
  fi; exit \$rc"

phase fetch 150 "$PY benchmarks/gpu_feature_fetch.py $FETCH_ARGS --out '$WORK/gpu_fetch.json'"

phase sage 60 "$PY benchmarks/gpu/minibatch_epoch_gpu.py $SAGE_ARGS --out '$WORK/gpu_fetch_minibatch_epoch.json'"

phase lightgcn 75 "$PY benchmarks/lightgcn_epoch.py --device $DEVICE --data-dir '$D' $LGCN_ARGS --out '$WORK/gpu_train_lightgcn_epoch.json'"

phase eval 40 "$PY benchmarks/evaluation.py --device $DEVICE --data-dir '$D' $EVAL_ARGS --out '$WORK/gpu_train_evaluation.json'"

phase nodeclass 60 "$PY benchmarks/node_classification_speed.py --device $DEVICE --data-dir '$D' $NODE_ARGS --out '$WORK/gpu_train_node_classification.json'"

# time budgets inside the phase limits: the run stops itself, writes its thresholds reached, and the phase ends
phase tta_lightgcn $((TTA_LGCN_BUDGET + 25)) "$PY benchmarks/time_to_accuracy.py --model lightgcn --data gowalla --data-dir '$D' \
  --time-budget $TTA_LGCN_BUDGET --eval-every 2 --thresholds 0.15 0.17 0.18 --set train.device=$DEVICE \
  --set train.batch_size=8192 --set train.lr=1e-2 --set train.lr_schedule=cosine --set train.epochs=400 $TTA_COMMON \
  --tag gpu-fast-cosine400 --run-dir '$WORK/run_tta_lightgcn' --out '$WORK/tta'"

phase tta_ultragcn $((TTA_UGCN_BUDGET + 25)) "$PY benchmarks/time_to_accuracy.py --model ultragcn --data gowalla --data-dir '$D' \
  --time-budget $TTA_UGCN_BUDGET --eval-every 1 --thresholds 0.15 0.17 0.18 --set train.device=$DEVICE \
  --set sampling.shared_negatives=true --set train.lr=1e-3 $TTA_COMMON \
  --tag gpu-shared-lr1e-3 --run-dir '$WORK/run_tta_ultragcn' --out '$WORK/tta'"

# one GPU: the single-rank GNNPipe reference runs for real; N-rank NCCL layouts cannot (NCCL refuses two ranks on
# one GPU), so their epoch times are projected from per-layer GPU times plus the exactly counted volumes.
# Without CUDA (dry run) only the projection runs, on the CPU and shrunk.
phase multigpu 100 "set -x; rc=0;
  if [ $DEVICE = cuda ]; then
    $PY benchmarks/multigpu/gnnpipe_gpu.py --scenario single --layers 32 --epochs 60 --data-dir '$D' || rc=1;
    cp benchmarks/results/gnnpipe_gpu_single_1gpu.json '$WORK/' 2>/dev/null;
    $PY benchmarks/multigpu/projection.py --data-dir '$D' --dataset synthetic-powerlaw-100000-20 $PROJ --bandwidth 50e9 --out '$WORK/proj_powerlaw_c16_pcie5' || rc=1;
  fi;
  $PY benchmarks/multigpu/projection.py --data-dir '$D' $PROJ --bandwidth 50e9 --out '$WORK/proj_cora_pcie5' || rc=1;
  if [ $DEVICE = cuda ]; then
    $PY benchmarks/multigpu/projection.py --data-dir '$D' $PROJ --bandwidth 450e9 --latency 5e-6 --out '$WORK/proj_cora_nvlink' || rc=1;
  fi;
  exit \$rc"

phase ddp 60 "[ $DEVICE = cuda ] || exit 77;
  $PY benchmarks/multigpu/gnnpipe_gpu.py --scenario ddp-lightgcn --nproc 1 --dataset gowalla --epochs 4 --data-dir '$D' &&
  cp benchmarks/results/gnnpipe_gpu_ddp-lightgcn_1gpu.json '$WORK/'"

$PY "$HERE/summary.py" "$WORK" "$OUT/summary.json" --mode "$MODE" --phases "$PHASES" || echo "summary.py failed"
pack
echo; echo "done in $(( $(date +%s) - START ))s; files in $OUT:"; ls -la "$OUT"
[ "$MODE" = dry ] && [ -z "${KEEP_WORK:-}" ] && rm -rf "$WORK"
exec 1>&- 2>&-
wait "$TEEPID" 2>/dev/null
exit 0
