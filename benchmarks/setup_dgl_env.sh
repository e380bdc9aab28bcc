#!/usr/bin/env bash
# A separate virtual environment where DGL imports, for the DGL interop tests and the DGL peer
# of benchmarks/sampling_throughput.py. graphrec's own environment is never touched.
#
# Why a separate environment: PyPI's newest DGL for Python 3.11 is 2.1.0, and its graphbolt
# library is built per torch version, so it imports only beside torch 2.0.0-2.2.1 (2.2.2 fails).
# graphrec itself needs torch >= 2.1, so torch 2.2.1 serves both. numpy stays < 2 (torch 2.2.1
# and DGL 2.1.0 were built against numpy 1.x); numba and torch-geometric are pinned to releases
# that accept that numpy and torch. graphrec is installed editable with --no-deps so that pip
# never swaps the pinned torch for a newer one.
#
# torch: the CPU wheel from download.pytorch.org (~200 MB) when that index answers, else the
# PyPI wheel (a CUDA build, ~2.5 GB with its nvidia-* dependencies; it runs on CPU too).
#
# Usage: bash benchmarks/setup_dgl_env.sh [DGL_VENV]       (default: ../dgl-venv next to the repo)
#   BASE_PYTHON  a Python 3.11 interpreter (default: python3.11, else python3)
# Then:
#   DGL_VENV/bin/python -m pytest -q tests/test_dgl_interop.py
#   DGL_VENV/bin/python benchmarks/sampling_throughput.py --peers dgl
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
DGL_VENV="${1:-${DGL_VENV:-$repo/../dgl-venv}}"
BASE_PYTHON="${BASE_PYTHON:-$(command -v python3.11 || command -v python3)}"
"$BASE_PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "DGL 2.1.0 wheels: use Python 3.11"'

"$BASE_PYTHON" -m venv "$DGL_VENV"
pip=("$DGL_VENV/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip

if ! "${pip[@]}" install "torch==2.2.1" --index-url https://download.pytorch.org/whl/cpu; then
    echo "the CPU index did not answer: installing torch 2.2.1 from PyPI (CUDA build, ~2.5 GB)"
    "${pip[@]}" install "torch==2.2.1"
fi
"${pip[@]}" install "torch==2.2.1" "numpy<2" "dgl==2.1.0" "torchdata==0.7.1" pyyaml pydantic pandas scipy \
    "numba>=0.58,<0.61" "torch-geometric>=2.4,<2.7" tqdm matplotlib pytest
"${pip[@]}" install --no-deps -e "$repo"

"$DGL_VENV/bin/python" - <<'EOF'
import dgl, torch, numpy, graphrec
from graphrec.data.dgl import to_dgl  # noqa: F401  (the converters import here)
g = dgl.graph((torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])))
sampler = dgl.dataloading.NeighborSampler([2])
_, _, blocks = sampler.sample_blocks(g, torch.tensor([0]))
print("DGL environment ready: dgl", dgl.__version__, "torch", torch.__version__, "numpy", numpy.__version__)
EOF
echo "run: $DGL_VENV/bin/python -m pytest -q $repo/tests/test_dgl_interop.py"
