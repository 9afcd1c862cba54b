#!/usr/bin/env bash
# The survey's recipe on a GPU (issue 15), in one command: training / PGD-20 / forward throughput
# of the paper's ResNet-18 (eager vs torch.compile and CUDA graphs, batch 32 and 512, vmapped
# models), 1 vs 4 workers on a grid slice, fp32-vs-bf16 attack agreement, and the projected wall
# time of the paper grid. Writes benchmarks/gpu/{throughput,workers,precision,projection,runs}.csv
# and gpu_check.md (see README.md beside this file). Extra options go to gpu_check.py.
#   SURVEY_DATA_DIR=<data dir> bash benchmarks/gpu/gpu_check.sh
#   SURVEY_WHEELS=<wheel dir>  ...  installs those wheels first (an offline machine without medmnist)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
PY=${PY:-python3}
: "${SURVEY_DATA_DIR:?set SURVEY_DATA_DIR to the folder whose medmnist/ holds the .npz files (see benchmarks/gpu/README.md)}"
for flag in breastmnist pneumoniamnist retinamnist; do
  [ -f "$SURVEY_DATA_DIR/medmnist/$flag.npz" ] ||
    { echo "gpu_check: $SURVEY_DATA_DIR/medmnist/$flag.npz is missing (see benchmarks/gpu/README.md)" >&2; exit 2; }
done
export SURVEY_OFFLINE=${SURVEY_OFFLINE:-1} PYTHONUNBUFFERED=1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${SURVEY_WHEELS:-}" ]; then
  site="$(mktemp -d)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$SURVEY_WHEELS"/*.whl
  export PYTHONPATH="$PYTHONPATH:$site"
fi
mkdir -p results
"$PY" benchmarks/gpu/gpu_check.py "$@" 2>&1 | tee results/gpu_check.log
