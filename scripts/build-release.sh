#!/usr/bin/env bash
# Build a release tarball for a board (or this machine):
#
#   scripts/build-release.sh [aarch64|x86_64]      (default: this machine's architecture)
#
# -> dist/facecv-<version>-<arch>.tar.gz and dist/SHA256SUMS. Inside, under facecv-<version>/:
#   bin/facecv                  the `dist` profile (opt-level "s", thin LTO, stripped)
#   lib/libLiteRt.so            LiteRT's runtime (scripts/fetch-litert.sh); the binary finds it in <bin>/../lib
#   share/facecv/models/        the .tflite models, their README and LICENSES.md (provenance, terms)
#   share/doc/facecv/README.md
#   etc/facecv/facecv.toml      the board's default config (systemd/facecv.toml)
#   systemd/                    facecv.service, facecv.sysusers, facecv.tmpfiles, facecv.modules-load
# Install it on a board with scripts/deploy.sh.
#
# aarch64 needs `rustup target add aarch64-unknown-linux-gnu` and Debian's gcc-aarch64-linux-gnu
# (the linker is set in .cargo/config.toml); the script installs both when it can (root).
# The tarball is reproducible: sorted names, root-owned, files dated at the last commit.
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${1:-$(uname -m)}"
case "$arch" in
  aarch64 | arm64) arch=aarch64 ;;
  x86_64 | amd64) arch=x86_64 ;;
  *) echo "build-release: unsupported architecture '$arch' (aarch64 or x86_64)" >&2; exit 2 ;;
esac
triple="${arch}-unknown-linux-gnu"
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
name="facecv-${version}"
target_dir="${CARGO_TARGET_DIR:-target}"

if [ "$arch" = aarch64 ] && [ "$(uname -m)" != aarch64 ]; then
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
  if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu >/dev/null
    else
      echo "build-release: needs gcc-aarch64-linux-gnu (sudo apt-get install gcc-aarch64-linux-gnu)" >&2
      exit 1
    fi
  fi
  # bindgen (v4l2-sys) needs nothing more: clang --target=aarch64-... finds the cross headers in
  # /usr/aarch64-linux-gnu/include through gcc-aarch64-linux-gnu's install.
fi

echo "build-release: cargo build --profile dist --target $triple" >&2
cargo build --locked --profile dist --target "$triple" --bin facecv
bin="$target_dir/$triple/dist/facecv"

scripts/fetch-litert.sh "$arch" "lib/$arch" >&2

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
install -d "$root/bin" "$root/lib" "$root/share/facecv/models" "$root/share/doc/facecv" \
  "$root/etc/facecv" "$root/systemd"
install -m 0755 "$bin" "$root/bin/facecv"
install -m 0644 "lib/$arch/libLiteRt.so" "$root/lib/libLiteRt.so"
install -m 0644 models/*.tflite models/README.md models/LICENSES.md "$root/share/facecv/models/"
install -m 0644 README.md "$root/share/doc/facecv/README.md"
install -m 0644 systemd/facecv.toml "$root/etc/facecv/facecv.toml"
install -m 0644 systemd/facecv.service systemd/facecv.sysusers systemd/facecv.tmpfiles \
  systemd/facecv.modules-load "$root/systemd/"
printf '%s\n' "$version" >"$root/VERSION"
printf '%s\n' "$arch" >"$root/ARCH"

epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
mkdir -p dist
tarball="dist/${name}-${arch}.tar.gz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$stage" -cf - "$name" \
  | gzip -9n >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"

# One SHA256SUMS for every tarball in dist/ (`sha256sum -c SHA256SUMS` on the receiving side).
(cd dist && sha256sum -- *.tar.gz >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)

size() { stat -c %s "$1"; }
echo "build-release: $tarball ($(size "$tarball") bytes)"
echo "  bin/facecv      $(size "$bin") bytes ($(file -b "$bin" | cut -d, -f1-2))"
echo "  lib/libLiteRt.so $(size "lib/$arch/libLiteRt.so") bytes"
grep " ${name}-${arch}.tar.gz\$" dist/SHA256SUMS
