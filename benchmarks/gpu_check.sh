#!/usr/bin/env bash
# One command for a machine with a GPU (under 8 minutes on an H100): training and PGD-10
# throughput (eager and torch.compile), then the cpu-profile benchmark slice on the GPU.
# Results land in benchmarks/gpu/ (CSV + logs); commit them with the machine named.
#   bash benchmarks/gpu_check.sh            (expects SURVEY_DATA_DIR to hold the data)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
out=benchmarks/gpu
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$PY benchmarks/throughput.py --batch 512 --out "$out/throughput_eager.csv"
$PY benchmarks/throughput.py --batch 512 --compile --out "$out/throughput_compile.csv"
start=$(date +%s)
SURVEY_RUNS_DIR=${SURVEY_RUNS_DIR:-/tmp/survey_runs} timeout 300 \
  $PY -m survey_lib benchmark --profile cpu --datasets pneumoniamnist --results "$out/grid" \
  2>&1 | tail -5 | tee "$out/grid.log" || echo "grid slice stopped at its 300 s limit (resumable)" | tee -a "$out/grid.log"
echo "grid slice wall seconds: $(( $(date +%s) - start ))" | tee -a "$out/grid.log"
