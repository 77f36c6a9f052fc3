#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, one release build with every feature CI covers
# (flex + libtorch), the tests, the Arm build under qemu, and the onnxruntime cross-check of
# exported models.
# Real-data tests run when FLOWERCAM_DATA / FLOWERCAM_BACKBONE are set (CI sets them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --libtorch --tests
. scripts/env.sh
export FLOWERCAM_ONNX_CHECK_DIR="$PWD/target/onnx-check"
rm -rf "$FLOWERCAM_ONNX_CHECK_DIR"
features="flowercam-trainer/tch"
cargo build --release --workspace --features "$features"
# A feature spelling that names nothing is silently ignored by cargo: make sure libtorch is in.
trainer_binary="${CARGO_TARGET_DIR:-target}/release/trainer"
# Not `grep -q`: it stops reading at the first match, ldd then dies of SIGPIPE and pipefail fails the check.
if ! ldd "$trainer_binary" | grep libtorch >/dev/null; then
  echo "scripts/test.sh: $trainer_binary is not linked to libtorch: --features $features did not enable it" >&2
  exit 1
fi
cargo test --release --workspace --features "$features" --no-fail-fast
# The tallies issue 12 asks CI to show: the bad-input corpus (run again for its count, ~5 s) and the fuzzing.
cargo test --release --workspace --features "$features" --test bad_inputs every_bad_input -- --nocapture 2>&1 | grep "bad-input corpus"
echo "fuzzing: ${FLOWERCAM_FUZZ_CASES:-10000} generated cases per reader (bundle, result log, MJPEG splitter, checkpoint, feature cache)"
# The board's build: cross-built for 64-bit Arm and run under qemu (scripts/test-aarch64.sh).
scripts/test-aarch64.sh
# The exported ONNX files must also run in onnxruntime, the other runtime users pick.
# In the project's virtual environment: a stock system python3 refuses pip installs (PEP 668).
python=$(scripts/venv.sh)
"$python" -m pip install -q --disable-pip-version-check onnxruntime numpy
"$python" scripts/check_onnxruntime.py "$FLOWERCAM_ONNX_CHECK_DIR"
