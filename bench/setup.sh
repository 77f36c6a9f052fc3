#!/usr/bin/env bash
# The Python peers the benchmarks compare against, in their own virtual environment
# (.deps/bench-venv): PyTorch 2.9.0 (the PyPI wheel, ~4 GB with its CUDA libraries; it runs on
# the CPU too), onnx (to read the VGG16 trunk), onnxruntime, Pillow, NumPy, matplotlib.
# Not part of the product; the product never runs Python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.deps/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check torch==2.9.0 onnx onnxruntime pillow numpy matplotlib
"$venv/bin/python" -c "import torch, onnxruntime; print('bench peers ready: torch', torch.__version__, '- onnxruntime', onnxruntime.__version__)"
