#!/usr/bin/env bash
# Cross-builds `edge` for 64-bit Arm Linux boards (Raspberry Pi 4/5 on Pi OS Bookworm, Jetson)
# from an x86-64 Debian/Ubuntu host. Output: target/aarch64-unknown-linux-gnu/release/edge
# (needs glibc 2.35+ on the board; see README for older boards).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/aarch64-env.sh
cargo build --release -p flowercam-edge --target aarch64-unknown-linux-gnu "$@"
echo "built ${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/release/edge"
