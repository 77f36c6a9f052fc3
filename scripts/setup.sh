#!/usr/bin/env bash
# One-time set-up of a fresh Debian/Ubuntu machine for building flowercam:
# the C libraries the camera stack needs (nokhwa: libclang for bindgen, nasm for its SIMD JPEG),
# and python3-venv for the project's Python environment (scripts/venv.sh).
#   --libtorch  also the CPU libtorch for the trainer's `tch` build (~0.9 GB download)
#   --tests     also what the tests drive for real: Debian's chromium (the live page, headless),
#               ffmpeg (recordings and RTSP as sources) and mosquitto (the MQTT broker for events)
set -euo pipefail
libtorch=false
need=()
for pkg in libclang-dev nasm pkg-config python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
for arg in "$@"; do
  case "$arg" in
    --libtorch) libtorch=true; dpkg -s patchelf >/dev/null 2>&1 || need+=(patchelf) ;;
    --tests) for pkg in chromium ffmpeg mosquitto; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done ;;
    *) echo "scripts/setup.sh: unknown option $arg (expected --libtorch or --tests)" >&2; exit 2 ;;
  esac
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi
if $libtorch; then
  "$(dirname "$0")/setup-libtorch.sh"
fi
