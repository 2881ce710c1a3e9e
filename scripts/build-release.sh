#!/usr/bin/env bash
# Build a release tarball for a board (or this machine):
#
#   scripts/build-release.sh [aarch64|x86_64]      (default: this machine's architecture)
#   scripts/build-release.sh --board BOARD         a build tuned for one board (cross/boards.toml)
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
# The target settings come from cross/ (cross/README.md): `aarch64` is the generic build that runs on
# every 64-bit board, and the default. `--board pi5` (pi3, zero2w, pi4, jetson-orin; `cross/board.sh
# --list`) adds `-C target-cpu` for that board's CPU, builds in target/board-<board>/ (other rustflags,
# so it would rebuild everything in target/), and makes dist/facecv-<version>-aarch64-<board>.tar.gz
# with a BOARD file inside; deploy.sh never picks such a tarball by default, since it stops with
# SIGILL on an older CPU. Either way the binary and libLiteRt.so must not need a newer glibc or
# libstdc++ than the board has (cross/check-glibc.sh), or the build fails.
#
# aarch64 needs `rustup target add aarch64-unknown-linux-gnu` and Debian's gcc-aarch64-linux-gnu
# (the linker is set in cross/cargo-config.toml); the script installs both when it can (root).
# The tarball is reproducible: sorted names, root-owned, files dated at the last commit.
# shellcheck disable=SC2153  # BOARD, ARCH, TRIPLE, GLIBC... are set by eval of cross/board.sh
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/build-release.sh [--board BOARD] [aarch64|x86_64]" >&2; exit 2; }
board=""
arch=""
while [ $# -gt 0 ]; do
  case "$1" in
    --board) [ $# -ge 2 ] || usage; board="$2"; shift 2 ;;
    --board=*) board="${1#--board=}"; shift ;;
    -h | --help) usage ;;
    -*) echo "build-release: unknown option '$1'" >&2; usage ;;
    *) [ -z "$arch" ] || usage; arch="$1"; shift ;;
  esac
done
if [ -n "$arch" ] || [ -z "$board" ]; then
  arch="${arch:-$(uname -m)}"
  case "$arch" in
    aarch64 | arm64) arch=aarch64 ;;
    x86_64 | amd64) arch=x86_64 ;;
    *) echo "build-release: unsupported architecture '$arch' (aarch64 or x86_64)" >&2; exit 2 ;;
  esac
fi
# TRIPLE, ARCH, TARGET_CPU, GLIBC, GLIBCXX, ARTIFACT (cross/board.sh fails on an unknown board).
settings="$(cross/board.sh "${board:-$arch}")"
eval "$settings"
if [ -n "$arch" ] && [ "$arch" != "$ARCH" ]; then
  echo "build-release: board $BOARD is $ARCH, not $arch" >&2
  exit 2
fi
arch="$ARCH"
triple="$TRIPLE"
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
name="facecv-${version}"
target_dir="${CARGO_TARGET_DIR:-target}"

cargo_args=(--locked --profile dist --target "$triple" --bin facecv --config cross/cargo-config.toml)
if [ -n "$TARGET_CPU" ]; then
  # RUSTFLAGS would replace the target's rustflags below without a word: refuse instead.
  if [ -n "${RUSTFLAGS:-}${CARGO_ENCODED_RUSTFLAGS:-}" ]; then
    echo "build-release: RUSTFLAGS is set and would drop -C target-cpu=$TARGET_CPU; unset it" >&2
    exit 2
  fi
  target_dir="$target_dir/board-$BOARD"
  cargo_args+=(--target-dir "$target_dir"
    --config "target.$triple.rustflags = [\"-C\", \"target-cpu=$TARGET_CPU\"]")
  # The C parts (SQLite, ring) through the cc crate, which reads CFLAGS_<triple>.
  export "CFLAGS_${triple//-/_}=-mcpu=$TARGET_CPU"
fi

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

echo "build-release: $BOARD: cargo build --profile dist --target $triple${TARGET_CPU:+ -C target-cpu=$TARGET_CPU}" >&2
cargo build "${cargo_args[@]}"
bin="$target_dir/$triple/dist/facecv"

scripts/fetch-litert.sh "$arch" "lib/$arch" >&2
cross/check-glibc.sh "$BOARD" "$bin" "lib/$arch/libLiteRt.so"

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
[ -z "$TARGET_CPU" ] || printf '%s\n' "$BOARD" >"$root/BOARD"

epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
mkdir -p dist
tarball="dist/${name}-${ARTIFACT}.tar.gz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$stage" -cf - "$name" \
  | gzip -9n >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"

# One SHA256SUMS for every tarball in dist/ (`sha256sum -c SHA256SUMS` on the receiving side).
(cd dist && sha256sum -- *.tar.gz >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)

size() { stat -c %s "$1"; }
echo "build-release: $tarball ($(size "$tarball") bytes)"
echo "  bin/facecv      $(size "$bin") bytes ($(file -b "$bin" | cut -d, -f1-2))"
echo "  lib/libLiteRt.so $(size "lib/$arch/libLiteRt.so") bytes"
grep " ${name}-${ARTIFACT}.tar.gz\$" dist/SHA256SUMS
