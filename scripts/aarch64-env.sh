# Sourced by scripts/build-aarch64.sh and scripts/test-aarch64.sh: installs what cross-building
# for 64-bit Arm Linux needs on an x86-64 Debian/Ubuntu host (the cross C toolchain, the Rust
# target) and points cargo, cc and bindgen at it. Extra Debian packages: AARCH64_EXTRA_PACKAGES.
need=()
for pkg in gcc-aarch64-linux-gnu libc6-dev-arm64-cross libclang-dev nasm ${AARCH64_EXTRA_PACKAGES:-}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
rustup target add aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
# bindgen (V4L2 bindings) must parse the Arm headers, not the host's.
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=/usr/aarch64-linux-gnu -I/usr/aarch64-linux-gnu/include"
# `cargo test --target aarch64-...` runs the test binaries under user-mode emulation.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
