#!/usr/bin/env bash
# The board's build, checked on this x86-64 host under qemu's user-mode emulation: the shared
# library's unit tests (preprocessing, bundle reading, the Winograd convolutions against direct
# ones and against tract on a VGG block), then the cross-built `edge selftest` on the edge's
# fixture bundles (tract's plan with the Winograd operator, end to end). Once per board class's
# instruction set: Cortex-A72 (Raspberry Pi 4: NEON only), Cortex-A76 (Raspberry Pi 5, like the
# Jetson Orin's A78: dot products too) and qemu's `max` (SVE2). tract picks its kernels from the
# CPU's features at run time, so each runs other code for tract's operators; gemm's f32 products
# (the Winograd convolutions') are its NEON ones on all three. Not covered: fp16, which tract
# reads from /proc/cpuinfo, and qemu shows the host's. Part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
AARCH64_EXTRA_PACKAGES=qemu-user . scripts/aarch64-env.sh
target=aarch64-unknown-linux-gnu
cargo test --release -p flowercam-shared --lib --target "$target" --no-run
cargo build --release -p flowercam-edge --target "$target"
edge="${CARGO_TARGET_DIR:-target}/$target/release/edge"
for cpu in cortex-a72 cortex-a76 max; do
  echo "== aarch64 under qemu, -cpu $cpu"
  export QEMU_CPU="$cpu"
  cargo test --release -p flowercam-shared --lib --target "$target"
  for bundle in edge/tests/fixtures/*.bundle; do
    # The runner cargo uses for the tests (scripts/aarch64-env.sh): qemu with the Arm libraries.
    $CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER "$edge" selftest --model "$bundle"
  done
done
