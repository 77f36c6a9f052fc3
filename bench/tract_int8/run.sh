#!/usr/bin/env bash
# tract's int8 convolution on 1 and 2 threads against f32 and onnxruntime, on one VGG16 convolution:
# the minimal reproducer behind BENCHMARKS.md "tract's int8 path on one convolution".
# usage: bench/tract_int8/run.sh [ROUNDS (3)] [RUNS (30)]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3} runs=${2:-30} out=target/tract-int8
python=$(scripts/venv.sh)
"$python" -m pip install -q --disable-pip-version-check onnx onnxruntime numpy
"$python" bench/tract_int8/make_models.py "$out"
cargo build -q --release -p flowercam-edge --example tract_threads
grep -m1 "model name" /proc/cpuinfo || true
for round in $(seq "$rounds"); do
  for model in conv_f32 conv_int8; do
    for threads in 1 2; do
      echo -n "round $round tract       "; target/release/examples/tract_threads "$out/$model.onnx" "$threads" "$runs"
      echo -n "round $round onnxruntime "; "$python" - "$out/$model.onnx" "$threads" "$runs" <<'PY'
import sys, time, numpy as np, onnxruntime as ort
model, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
x = np.full(s.get_inputs()[0].shape, 0.5, np.float32)
s.run(None, {"x": x})
t = []
for _ in range(runs):
    a = time.perf_counter(); s.run(None, {"x": x}); t.append((time.perf_counter() - a) * 1e3)
print(f"{model} threads {threads}: median {sorted(t)[runs // 2]:.2f} ms over {runs} runs")
PY
    done
  done
done
