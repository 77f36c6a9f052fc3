#!/usr/bin/env python3
"""Cross-check exported models in onnxruntime: every NAME.onnx in FOLDER is run on the images
of NAME.checks.json (written by the end-to-end tests from the bundle's self-checks) and must
give the same class and reproduce the recorded probabilities (and, where the graph has it, the
open-set `unknown_score`) within the bundle's tolerance (1e-4 for f32; the int8 tolerance for int8
graphs, whose requantization rounding is each runtime's own).
Exits non-zero if any differs, or if the folder holds no model (a check that checked nothing must
not pass)."""
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort


def main(folder: pathlib.Path) -> int:
    models = sorted(folder.glob("*.onnx"))
    if not models:
        print(f"onnxruntime check: no .onnx files in {folder}", file=sys.stderr)
        return 1
    failed_models = 0
    for model in models:
        failed = 0
        recorded = json.loads(model.with_suffix(".checks.json").read_text())
        checks, tolerance = recorded["checks"], recorded["tolerance"]
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        outputs = [o.name for o in session.get_outputs()]
        worst = 0.0
        for check in checks:
            image = np.array(check["rgb"], dtype=np.uint8).reshape(check["shape"])
            results = dict(zip(outputs, session.run(outputs, {"image": image})))
            probabilities = results["probabilities"]
            expected = np.array(check["expected"], dtype=np.float32)
            diff = float(np.max(np.abs(probabilities[0] - expected)))
            if ("unknown_score" in results) != (check.get("expected_unknown_score") is not None):
                print(f"FAIL {model.name} {check['name']}: unknown_score output and bundle disagree", file=sys.stderr)
                failed += 1
            elif "unknown_score" in results:
                diff = max(diff, abs(float(results["unknown_score"][0][0]) - check["expected_unknown_score"]))
            worst = max(worst, diff)
            if diff > tolerance or int(np.argmax(probabilities[0])) != int(np.argmax(expected)):
                print(f"FAIL {model.name} {check['name']}: max |diff| {diff:.2e}", file=sys.stderr)
                failed += 1
        print(f"onnxruntime {ort.__version__}: {model.name} ({recorded['precision']}): {len(checks)} images, max |diff| {worst:.2e} (tolerance {tolerance:g})")
        failed_models += 1 if failed or not checks else 0
    print(f"{len(models) - failed_models} passed, {failed_models} failed")
    return 1 if failed_models else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/onnx-check")))
