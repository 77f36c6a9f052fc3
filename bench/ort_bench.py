#!/usr/bin/env python3
"""onnxruntime peer of `edge bench`: the same exported ONNX, the same uint8 input shape, the
same thread count; prints the same JSON fields. A benchmark tool, not part of the product.

usage: ort_bench.py MODEL.onnx --threads N [--runs 20] [--warmup 3]
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape  # ['N', S, S, 3]
    size = int(shape[1])
    x = np.random.default_rng(0).integers(0, 256, size=(1, size, size, 3), dtype=np.uint8)
    for _ in range(a.warmup):
        session.run(None, {"image": x})
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        session.run(None, {"image": x})
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    mean = sum(times) / len(times)
    print(json.dumps({
        "engine": f"onnxruntime {ort.__version__}",
        "input_size": size,
        "threads": a.threads,
        "runs": len(times),
        "min_ms": times[0],
        "median_ms": times[len(times) // 2],
        "p90_ms": times[round((len(times) - 1) * 0.9)],
        "max_ms": times[-1],
        "mean_ms": mean,
        "fps": 1000 / mean,
    }))


if __name__ == "__main__":
    main()
