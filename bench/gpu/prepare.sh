#!/usr/bin/env bash
# Packs what the CUDA training check (bench/gpu/run.py) needs on a GPU machine that has no Rust
# toolchain and cannot reach ../shared or the internet, under .gpu/ (ignored by git):
#   .gpu/run/trainer.xz   the trainer (`--features tch`) built against the libtorch of the GPU
#                         machine's own PyTorch (TORCH_VERSION, default 2.11.0, CUDA 13 wheels):
#                         its C++ ABI must match the libtorch it loads there
#   .gpu/run/data2        daffodil/ and coltsfoot/ as they are
#   .gpu/run/data17       the 17 classes scaled to at most 320 px a side (the trainer takes a
#                         224 px square of each), so that they fit beside the trainer in one call
#   .gpu/trunk            the VGG16 trunk, alone: the device tool carries at most 64 MiB a call,
#                         so it travels in a first call and .gpu/run in a second (bench/gpu/README.md)
#
#   bench/gpu/prepare.sh [SHARED_DIR]     (default ../shared; needs pip, patchelf, xz, and a Python
#                                          with Pillow: PYTHON, default python3; bench/setup.sh's
#                                          .deps/bench-venv/bin/python has it)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=$(cd "${1:-$root/../shared}" && pwd)
version=${TORCH_VERSION:-2.11.0}
python=${PYTHON:-python3}
"$python" -c 'import PIL' 2>/dev/null || { echo "prepare.sh: $python has no Pillow (PYTHON=.deps/bench-venv/bin/python after bench/setup.sh, or pip install pillow)" >&2; exit 2; }
deps="$root/.deps/gpu-torch-$version"
cd "$root"

# The headers and link-time libraries of that PyTorch, without its CUDA libraries (which the GPU
# machine has): the recipe of scripts/setup-libtorch.sh for another version.
if [ ! -f "$deps/libtorch/lib/libtorch.so" ]; then
    mkdir -p "$deps/wheels"
    python3 -m pip download -q --no-deps -d "$deps/wheels" "torch==$version" \
        "nvidia-cuda-runtime>=13.0,<13.1" "nvidia-cuda-cupti>=13.0,<13.1"
    rm -rf "$deps/site" "$deps/libtorch" && mkdir -p "$deps/site" "$deps/libtorch/lib"
    unzip -q -o "$deps"/wheels/torch-*.whl 'torch/include/*' 'torch/lib/*' -d "$deps/site"
    for w in "$deps"/wheels/nvidia_*.whl; do unzip -q -o "$w" -d "$deps/site"; done
    ln -s "$deps/site/torch/include" "$deps/libtorch/include"
    for f in libtorch_cpu.so libc10.so libgomp.so.1 libtorch_global_deps.so; do
        ln -s "$deps/site/torch/lib/$f" "$deps/libtorch/lib/$f"
    done
    find "$deps/site/nvidia" \( -name 'libcudart.so*' -o -name 'libcupti.so*' \) -exec ln -s {} "$deps/libtorch/lib/" \;
    cp "$deps/site/torch/lib/libtorch.so" "$deps/libtorch/lib/"
    patchelf --remove-needed libtorch_cuda.so "$deps/libtorch/lib/libtorch.so"
    # burn-tch builds its CUDA device only when libtorch_cuda.so is there at build time (else
    # `--device cuda` panics), and links two of its symbols. The real one (450 MB, and its CUDA
    # libraries) is on the GPU machine: a stand-in with that SONAME and those symbols links here.
    printf '%s\n' 'struct cublasContext;' 'namespace at { namespace cuda {' \
        'cublasContext *getCurrentCUDABlasHandle() { return nullptr; }' 'int warp_size() { return 32; }' '} }' \
        > "$deps/cuda_stub.cpp"
    g++ -shared -fPIC -Wl,-soname,libtorch_cuda.so -o "$deps/libtorch/lib/libtorch_cuda.so" "$deps/cuda_stub.cpp"
fi
# Its own target folder: another LIBTORCH would otherwise rebuild the Burn stack of target/.
LIBTORCH="$deps/libtorch" LD_LIBRARY_PATH="$deps/libtorch/lib" LIBTORCH_BYPASS_VERSION_CHECK=1 \
    CARGO_TARGET_DIR="$root/target/gpu-torch-$version" cargo build --release -p flowercam-trainer --features tch

rm -rf .gpu && mkdir -p .gpu/trunk .gpu/run/data2 .gpu/run/data17
cp "$shared/weights/vgg16_imagenet_trunk.onnx" .gpu/trunk/
strip -o .gpu/run/trainer "target/gpu-torch-$version/release/trainer"
xz -T2 -6 .gpu/run/trainer
cp -r "$shared/data/flowers17/daffodil" "$shared/data/flowers17/coltsfoot" .gpu/run/data2/
"$python" - "$shared/data/flowers17" .gpu/run/data17 <<'PY'
import os, sys
from PIL import Image
src, dst = sys.argv[1:]
for c in sorted(os.listdir(src)):
    if os.path.isdir(os.path.join(src, c)):
        os.makedirs(os.path.join(dst, c), exist_ok=True)
        for f in sorted(os.listdir(os.path.join(src, c))):
            im = Image.open(os.path.join(src, c, f))
            im.thumbnail((320, 320), Image.LANCZOS)
            im.save(os.path.join(dst, c, f), quality=92)
PY
du -sh .gpu/trunk .gpu/run
