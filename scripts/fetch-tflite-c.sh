#!/usr/bin/env bash
# Fetch a classic TFLite C library (libtensorflowlite_c.so) and its C headers.
#
#   scripts/fetch-tflite-c.sh [x86_64|aarch64] [DEST]
#
# ARCH defaults to this machine's, DEST to ./lib/<arch>/ (git-ignored). The headers go to
# DEST/include/ (tensorflow/lite/c/*.h).
#
# Why: external delegates (Edge TPU, vendor NPUs, Arm NN) plug into the classic Interpreter C API,
# which LiteRT's libLiteRt.so does not export. Point `vision.runtime.library` at the file this
# installs to use `vision.runtime.external_delegate`. The only registry package that ships a
# prebuilt libtensorflowlite_c.so for Linux on both x86_64 and aarch64 is npm's `tfjs-tflite-node`
# (from the TensorFlow.js repository): it is TFLite 2.9.0, needs glibc >= 2.29 and nothing beyond
# libc, libm, libdl, libpthread, libstdc++ and libgcc_s. Its XNNPACK refuses the float MobileFaceNet
# (the appliance then runs that model on TFLite's own kernels); the int8 models run under XNNPACK.
# The vision tests use it, so scripts/test.sh calls this.
set -euo pipefail

prog="fetch-tflite-c"
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PACKAGE="tfjs-tflite-node"
VERSION="0.0.2"

arch="${1:-$(uname -m)}"
case "$arch" in
  x86_64 | amd64) arch="x86_64"; npm_dir="linux_amd64" ;;
  aarch64 | arm64) arch="aarch64"; npm_dir="linux_arm64" ;;
  *)
    echo "fetch-tflite-c: unsupported architecture '$arch' (x86_64 or aarch64)" >&2
    exit 2
    ;;
esac
dest="${2:-lib/$arch}"

# sha256 recorded from the first download of tfjs-tflite-node 0.0.2.
tgz_sha="3be1632328a76a2475e5b6833253763c802c859433becb4d879ee1860e3b5284"
header_sha="b19c1f2ae6fd049ed159fc857e4d0e214d72fe6c0a12e69739078c01a5a7e5be" # c/common.h
case "$arch" in
  x86_64) lib_sha="dc89b4cd86d956516570bd483668e6dd98907f49901d0567dedc69a29a56b7f7" ;;
  aarch64) lib_sha="ec0dee4fb3418e680d010248ac1e304d9656cc5c8de54caaf91d666712e2f633" ;;
esac

common_h="$dest/include/tensorflow/lite/c/common.h"
if [ -f "$dest/libtensorflowlite_c.so" ] && check "$dest/libtensorflowlite_c.so" "$lib_sha" 2>/dev/null \
  && [ -f "$common_h" ] && check "$common_h" "$header_sha" 2>/dev/null; then
  echo "fetch-tflite-c: $dest/libtensorflowlite_c.so is present and verified"
  exit 0
fi

command -v npm >/dev/null || { echo "fetch-tflite-c: npm is needed (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# `npm pack` downloads the package tarball without installing it or running any of its scripts.
(cd "$work" && npm pack --silent "${PACKAGE}@${VERSION}" >/dev/null)
tgz="$work/${PACKAGE}-${VERSION}.tgz"
check "$tgz" "$tgz_sha"

tar -xzf "$tgz" -C "$work" "package/cc_deps/$npm_dir/libtensorflowlite_c.so" package/cc_deps/include
check "$work/package/cc_deps/$npm_dir/libtensorflowlite_c.so" "$lib_sha"
check "$work/package/cc_deps/include/tensorflow/lite/c/common.h" "$header_sha"

mkdir -p "$dest/include"
install -m 0644 "$work/package/cc_deps/$npm_dir/libtensorflowlite_c.so" "$dest/libtensorflowlite_c.so"
cp -r "$work/package/cc_deps/include/tensorflow" "$dest/include/"
echo "fetch-tflite-c: installed libtensorflowlite_c.so (TFLite 2.9.0 from npm ${PACKAGE} ${VERSION}, ${arch}) and its headers into ${dest}"
