#!/usr/bin/env bash
# tract (`edge bench`) against onnxruntime on the same bundle's ONNX, alternating runs, same
# thread count. Prints one JSON line per run; medians go into the README.
# usage: bench/edge_vs_ort.sh MODEL.bundle [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=$1; threads=${2:-1}; rounds=${3:-3}
onnx="${bundle%.bundle}.onnx"
[ -f "$onnx" ] || { echo "$onnx not found (trainer writes it beside the bundle)" >&2; exit 1; }
python3 -c "import onnxruntime" 2>/dev/null || python3 -m pip install -q onnxruntime numpy
edge=target/release/edge
[ -x "$edge" ] || cargo build --release -p flowercam-edge
for round in $(seq "$rounds"); do
  "$edge" --threads "$threads" bench --model "$bundle" --json | tr -d '\n ' | sed 's/^{/{"engine":"tract",/'; echo
  python3 bench/ort_bench.py "$onnx" --threads "$threads"
done
