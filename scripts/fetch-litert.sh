#!/usr/bin/env bash
# Fetch LiteRT's runtime library (libLiteRt.so) for the appliance.
#
#   scripts/fetch-litert.sh [x86_64|aarch64] [DEST]
#
# ARCH defaults to this machine's, DEST to ./lib/<arch>/ (git-ignored; the appliance looks there in a
# dev checkout). Set WITH_GPU=1 to also extract LiteRT's WebGPU accelerator (about 18 MB), which the
# `gpu` accelerator setting needs (it is dlopen'ed by name: put DEST on LD_LIBRARY_PATH).
#
# Why a wheel: PyPI's `ai-edge-litert` is the only registry package that ships a current TFLite
# runtime for both x86_64 and aarch64 Linux. Its libLiteRt.so needs only libc, libm, libdl, librt,
# libpthread, libstdc++ and libgcc_s, so nothing else is extracted. The wheel is tagged
# manylinux_2_27 (not 2_17) and per CPython version; we pin cp311 so the bytes (and so the sha256
# below) are the same whatever python3 runs this script. The aarch64 build still needs glibc >= 2.34
# and GLIBCXX_3.4.30 at run time (Raspberry Pi OS bookworm, JetPack 6).
set -euo pipefail

prog="fetch-litert"
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

VERSION="2.3.0"
PY_TAG="311"

arch="${1:-$(uname -m)}"
case "$arch" in
  x86_64 | amd64) arch="x86_64" ;;
  aarch64 | arm64) arch="aarch64" ;;
  *)
    echo "fetch-litert: unsupported architecture '$arch' (x86_64 or aarch64; LiteRT ships no armv7 wheel)" >&2
    exit 2
    ;;
esac
dest="${2:-lib/$arch}"

# sha256 of the files we ship, recorded from the first download of ai-edge-litert 2.3.0.
case "$arch" in
  x86_64)
    wheel_sha="1f15078a6725d2357d9de9221664c29afa0545d807559c5f7199ce5e40b96b23"
    lib_sha="eec47eb35e2924b3166015887e652a58edc9af823ae38e02bf83bef2548300bb"
    gpu_sha="b67f193ae6eb8ad3a15349f54aba696c97d6f981c92bc2eb1096cbe9e2835b25"
    ;;
  aarch64)
    wheel_sha="853fc608f96da87bd5f3458465dfb9abbf18d5ae6b94eceacead407146f175ae"
    lib_sha="b57687dc234d2b8b0598aef5a9c961ed24263df8f8b3f56adbee1cff618e544b"
    gpu_sha="5f271fa4a36f9dd8d1f8514971b2e80f46bd92b1066509cdd9c0716723d6091a"
    ;;
esac

# Already there and intact: nothing to do (CI calls this before every test run).
if [ -f "$dest/libLiteRt.so" ] && check "$dest/libLiteRt.so" "$lib_sha" 2>/dev/null \
  && { [ "${WITH_GPU:-0}" != 1 ] || check "$dest/libLiteRtWebGpuAccelerator.so" "$gpu_sha" 2>/dev/null; }; then
  echo "fetch-litert: $dest/libLiteRt.so is present and verified"
  exit 0
fi

pip_cmd=(python3 -m pip)
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 \
  || { echo "fetch-litert: python3 with pip is needed (apt-get install python3-pip)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"${pip_cmd[@]}" download --quiet --no-deps --only-binary=:all: \
  --platform "manylinux_2_27_${arch}" --python-version "$PY_TAG" --implementation cp --abi "cp${PY_TAG}" \
  -d "$work" "ai-edge-litert==${VERSION}"

wheel="$(ls "$work"/ai_edge_litert-"${VERSION}"-*.whl)"
check "$wheel" "$wheel_sha"

members=(ai_edge_litert/libLiteRt.so)
[ "${WITH_GPU:-0}" = 1 ] && members+=(ai_edge_litert/libLiteRtWebGpuAccelerator.so)
# A wheel is a zip; python3 is here anyway, so no unzip is needed.
python3 - "$wheel" "$work/x" "${members[@]}" <<'PY'
import sys, zipfile
wheel, dest, *members = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for m in members:
        z.extract(m, dest)
PY

check "$work/x/ai_edge_litert/libLiteRt.so" "$lib_sha"
[ "${WITH_GPU:-0}" = 1 ] && check "$work/x/ai_edge_litert/libLiteRtWebGpuAccelerator.so" "$gpu_sha"

mkdir -p "$dest"
for m in "${members[@]}"; do
  install -m 0644 "$work/x/$m" "$dest/$(basename "$m")"
done
echo "fetch-litert: installed ${members[*]##*/} (ai-edge-litert ${VERSION}, ${arch}) into ${dest}"
