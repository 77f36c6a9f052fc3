#!/usr/bin/env bash
# Prepares a CPU-only libtorch 2.9.0 for the `tch` (burn-tch) build of the trainer, from PyPI
# wheels, without the ~3 GB of CUDA wheels (recipe measured in ../shared/docs/toolchain.md).
# Usage: scripts/setup-libtorch.sh [DIR]   (default: $LIBTORCH, else .deps/libtorch)
# Afterwards: export LIBTORCH=DIR LD_LIBRARY_PATH=DIR/lib
# On a CUDA host use the full wheel instead: pip install torch==2.9.0, LIBTORCH_USE_PYTORCH=1.
set -euo pipefail
dir=$(realpath -m "${1:-${LIBTORCH:-.deps/libtorch}}")
site="$dir.site"
if [ -f "$dir/lib/libtorch.so" ]; then echo "libtorch already at $dir"; exit 0; fi
command -v patchelf >/dev/null || { echo "patchelf is needed: apt-get install patchelf" >&2; exit 1; }
python=$("$(dirname "$0")/venv.sh")
"$python" -m pip install -q --disable-pip-version-check --no-deps --target "$site" \
  torch==2.9.0 nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cupti-cu12==12.8.90
rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/lib"
ln -s "$site/torch/include" "$dir.tmp/include"
for f in libtorch_cpu.so libc10.so libgomp.so.1 libtorch_global_deps.so; do
  [ -e "$site/torch/lib/$f" ] && ln -s "$site/torch/lib/$f" "$dir.tmp/lib/$f"
done
for f in "$site"/nvidia/cuda_runtime/lib/libcudart.so* "$site"/nvidia/cuda_cupti/lib/libcupti.so*; do
  ln -s "$f" "$dir.tmp/lib/$(basename "$f")"
done
# libtorch.so asks for libtorch_cuda.so, which the CPU-only set does not carry.
cp "$site/torch/lib/libtorch.so" "$dir.tmp/lib/libtorch.so"
patchelf --remove-needed libtorch_cuda.so "$dir.tmp/lib/libtorch.so"
mv "$dir.tmp" "$dir"
echo "libtorch ready at $dir"
