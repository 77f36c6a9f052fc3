#!/usr/bin/env bash
# Runs on the GPU machine, in the repository's root, once .gpu/trunk and .gpu/run are there
# (bench/gpu/README.md). Writes results.json and the logs to $OUT.
set -uo pipefail
out=${OUT:-/tmp/flowercam-gpu-out}
mkdir -p "$out" /tmp/flowercam-gpu
# The trainer loads the libtorch of this machine's PyTorch (with its CUDA libraries).
# Its own NEEDED entries include libcudart and libcupti: the CUDA wheels' folders go on the path too.
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
site=$(dirname "$(dirname "$torch_lib")")
paths=$torch_lib
for d in "$site"/nvidia/*/lib "$site"/nvidia/*/*/lib /usr/local/cuda/lib64; do [ -d "$d" ] && paths="$paths:$d"; done
export LD_LIBRARY_PATH="$paths${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
trunk=.gpu/trunk/vgg16_imagenet_trunk.onnx
[ -f "$trunk" ] || trunk=/root/flowercam-trunk/vgg16_imagenet_trunk.onnx
trainer=/tmp/flowercam-gpu/trainer
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/run/trainer.xz'), open('$trainer', 'wb'))"
chmod +x "$trainer"
ldd "$trainer" | grep -E 'torch|c10|not found'
"$trainer" --version || exit 1
python3 bench/gpu/run.py --trainer "$trainer" --data2 .gpu/run/data2 --data17 .gpu/run/data17 \
    --backbone "$trunk" --work /tmp/flowercam-gpu --out "$out" --deadline "${DEADLINE:-420}"
