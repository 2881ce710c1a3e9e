#!/usr/bin/env bash
# Cross-builds the aarch64 release (scripts/build-release.sh aarch64) and runs it under qemu-user:
# `--version`, `check-config` on the shipped board config, and `detect` on a photo with LiteRT's
# aarch64 library, from the unpacked tarball's layout (so it also proves the binary finds
# <bin>/../lib/libLiteRt.so and <bin>/../share/facecv/models by itself). Fails if the stripped
# binary is over 15 MB, or (in build-release.sh) needs a newer glibc than the board has.
#
#   scripts/cross-smoke.sh [--board BOARD]     (default: aarch64, the generic release)
#
# A tuned board's build runs on the CPU qemu emulates for it (qemu_cpu in cross/boards.toml).
#
# Installs its Debian packages when run as root: the cross gcc, arm64 libc/libstdc++ for qemu's
# loader prefix, and qemu-user-static from bookworm-backports (10.x; bookworm's 7.2 crashes in
# LiteRT's XNNPACK because it shows the host's x86 /proc/cpuinfo to the guest).
# shellcheck disable=SC2153  # BOARD, ARCH, TRIPLE, GLIBC... are set by eval of cross/board.sh
set -euo pipefail
cd "$(dirname "$0")/.."
max_bytes=$((15 * 1000 * 1000))

board=aarch64
case "${1:-}" in
  '') ;;
  --board) [ $# -eq 2 ] || { echo "usage: scripts/cross-smoke.sh [--board BOARD]" >&2; exit 2; }; board="$2" ;;
  *) echo "usage: scripts/cross-smoke.sh [--board BOARD]" >&2; exit 2 ;;
esac
# TRIPLE, ARCH, GLIBC, QEMU_CPU, ARTIFACT (cross/board.sh fails on an unknown board).
settings="$(cross/board.sh "$board")"
eval "$settings"
if [ "$ARCH" != aarch64 ] || [ -z "$QEMU_CPU" ]; then
  echo "cross-smoke: board $BOARD is not an aarch64 board with a qemu_cpu (cross/boards.toml)" >&2
  exit 2
fi

qemu_ok() { command -v qemu-aarch64-static >/dev/null \
  && [ "$(qemu-aarch64-static --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')" -ge 8 ]; }
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-arm64-cross)
ls /usr/aarch64-linux-gnu/lib/libstdc++.so.6 >/dev/null 2>&1 || need+=(libstdc++6-arm64-cross)
if [ ${#need[@]} -gt 0 ] || ! qemu_ok; then
  [ "$(id -u)" = 0 ] || { echo "cross-smoke: run as root to install ${need[*]} qemu-user-static (bookworm-backports)" >&2; exit 1; }
  if ! qemu_ok && ! apt-cache policy 2>/dev/null | grep -q bookworm-backports; then
    cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  apt-get update -qq
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  qemu_ok || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-user-static >/dev/null
fi

scripts/build-release.sh --board "$BOARD"
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
tarball="dist/facecv-${version}-${ARTIFACT}.tar.gz"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
top="$work/facecv-$version"

export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu QEMU_CPU="$QEMU_CPU"
echo "cross-smoke: $BOARD ($tarball) under qemu-aarch64 -cpu $QEMU_CPU"
run() { (cd "$work" && qemu-aarch64-static "$top/bin/facecv" "$@"); }

echo "cross-smoke: facecv --version"
run --version
echo "cross-smoke: facecv check-config (the shipped board config, its /opt/facecv/current paths moved to the tarball's)"
# check-config reads and checks every model the config names, so the installed paths must exist:
# they are the tarball's own files, as deploy.sh lays them out under /opt/facecv/current.
sed "s#/opt/facecv/current#$top#g" "$top/etc/facecv/facecv.toml" >"$work/facecv.toml"
run check-config --config "$work/facecv.toml"
echo "cross-smoke: facecv detect obama.jpg (runtime and models found from the tarball's layout)"
cp tests/data/faces/misc/obama.jpg "$work/"
# QEMU_STRACE logs the guest's syscalls: proof of which library and models were opened (the
# binary also searches the checkout's lib/<arch>/, which exists on this machine).
QEMU_STRACE=1 run detect "$work/obama.jpg" --json 2>"$work/strace" | tee "$work/detect.json"
grep -q "openat(AT_FDCWD,\"$top/lib/libLiteRt.so\",.*) = [0-9]" "$work/strace" \
  || { echo "cross-smoke: libLiteRt.so was not loaded from <bin>/../lib" >&2; grep -i litert "$work/strace" >&2; exit 1; }
grep -q "openat(AT_FDCWD,\"$top/bin/../share/facecv/models/blazeface_full_int8.tflite\",.*) = [0-9]" "$work/strace" \
  || { echo "cross-smoke: the models were not read from <bin>/../share/facecv/models" >&2; grep -i tflite "$work/strace" >&2; exit 1; }
echo "cross-smoke: loaded $top/lib/libLiteRt.so and $top/bin/../share/facecv/models/*.tflite"
python3 - "$work/detect.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
faces = doc["faces"] if isinstance(doc, dict) else doc
assert len(faces) >= 1, f"no face found: {doc}"
print(f"cross-smoke: {len(faces)} face(s) found")
PY

size="$(stat -c %s "$top/bin/facecv")"
echo "cross-smoke: stripped aarch64 binary: $size bytes ($(file -b "$top/bin/facecv" | cut -d, -f1-2,5-6))"
glibc="$(aarch64-linux-gnu-objdump -T "$top/bin/facecv" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
echo "cross-smoke: newest glibc symbol the binary needs: $glibc ($BOARD has $GLIBC)"
[ "$size" -le "$max_bytes" ] || { echo "cross-smoke: binary over 15 MB" >&2; exit 1; }
echo "cross-smoke: ok"
