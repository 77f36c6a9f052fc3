#!/usr/bin/env bash
# Builds the flowercam-edge .deb: /usr/bin/edge, the systemd unit, the default config
# /etc/flowercam/edge.toml (a conffile), and the scripts that make the `flowercam` system user
# (in the `video` group) and its state folder /var/lib/flowercam.
#
#   scripts/package-deb.sh [--arch amd64|arm64] [--binary PATH] [--out DIR]
#
# amd64 builds `edge` here, arm64 cross-builds it (scripts/build-aarch64.sh), unless --binary
# names one already built. Writes DIR/flowercam-edge_VERSION_ARCH.deb (DIR: target/deb).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=amd64 binary="" out=target/deb
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "scripts/package-deb.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  case "$arch" in
    amd64) cargo build --release -p flowercam-edge; binary="${CARGO_TARGET_DIR:-target}/release/edge" ;;
    arm64) scripts/build-aarch64.sh; binary="${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/release/edge" ;;
    *) echo "scripts/package-deb.sh: --arch must be amd64 or arm64" >&2; exit 2 ;;
  esac
fi
[ -x "$binary" ] || { echo "scripts/package-deb.sh: $binary is not an executable" >&2; exit 1; }
version=$(sed -n '/^version = "/{s/^version = "\(.*\)"/\1/p;q}' Cargo.toml)
# The newest glibc symbol version the binary needs is the package's libc6 dependency.
glibc=$(grep -aoE 'GLIBC_2\.[0-9]+' "$binary" | sed 's/GLIBC_//' | sort -V | tail -1)

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$binary" "$root/usr/bin/edge"
install -D -m 0644 packaging/flowercam-edge.service "$root/lib/systemd/system/flowercam-edge.service"
install -D -m 0640 packaging/edge.toml "$root/etc/flowercam/edge.toml"
install -D -m 0644 README.md "$root/usr/share/doc/flowercam-edge/README.md"
install -d "$root/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
echo /etc/flowercam/edge.toml > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/libc6 (>= 2.35)/libc6 (>= ${glibc:-2.35})/" \
  packaging/debian/control.in > "$root/DEBIAN/control"
mkdir -p "$out"
deb="$out/flowercam-edge_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
