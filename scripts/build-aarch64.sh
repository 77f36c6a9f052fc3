#!/usr/bin/env bash
# Cross-builds `edge` for 64-bit Arm Linux boards (Raspberry Pi 4/5 on Pi OS Bookworm, Jetson)
# from an x86-64 Debian/Ubuntu host. Output: target/aarch64-unknown-linux-gnu/release/edge
# (needs glibc 2.35+ on the board; see README for older boards).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in gcc-aarch64-linux-gnu libc6-dev-arm64-cross libclang-dev nasm; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi
rustup target add aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
# bindgen (V4L2 bindings) must parse the Arm headers, not the host's.
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=/usr/aarch64-linux-gnu -I/usr/aarch64-linux-gnu/include"
cargo build --release -p flowercam-edge --target aarch64-unknown-linux-gnu "$@"
echo "built target/aarch64-unknown-linux-gnu/release/edge"
