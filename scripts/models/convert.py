"""Rebuild and quantize the four shipped models from the originals in the current folder.

    python convert.py REPO OUT_DIR

Expects face_detection_full_range.tflite, MobileFaceNet.tflite and faceres/faceres.{json,bin}
(make-models.sh downloads and checks them). The representative set for int8 calibration is what
the appliance feeds each network on the test photos: letterboxed detector inputs (tight crops
also padded 2x, as enrolment retries them) and keypoint-aligned face crops.
"""
import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faces  # noqa: E402
import tflite2tf  # noqa: E402
import tfjs2tf  # noqa: E402

repo, out = sys.argv[1], sys.argv[2]


def convert(fn, dst, data=None, in_type=tf.float32, out_type=tf.float32):
    """float32 when `data` is None, else full-integer with `data` as the representative set."""
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    if data is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([d] for d in data)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type, conv.inference_output_type = in_type, out_type
    path = os.path.join(out, dst)
    with open(path, "wb") as f:
        f.write(conv.convert())
    print("convert: wrote", path, flush=True)


original_detector = faces.Model("face_detection_full_range.tflite")

# BlazeFace full-range: what the detector sees, a letterboxed photo in [-1, 1]; both passes.
pics = faces.photos(repo)
det_data = []
for _, _, rgb in pics:
    det_data.append(faces.letterbox(rgb)[0])
    det_data.append(faces.letterbox(faces.pad_image(rgb)[0])[0])
convert(tflite2tf.build("face_detection_full_range.tflite"), "blazeface_full_int8.tflite", det_data)

# MobileFaceNet at batch 1 (the original is fixed at batch 2): keypoint-aligned 112x112 crops.
mfn = tflite2tf.build("MobileFaceNet.tflite", batch=1)
crops = faces.aligned_crops(original_detector, repo, 112)
print(f"convert: {len(crops)} aligned 112x112 crops for calibration", flush=True)
convert(mfn, "mobilefacenet_expo_f32.tflite")
convert(mfn, "mobilefacenet_expo_int8.tflite", [faces.embedder_input(c, 112) for *_, c in crops])

# FaceRes: raw RGB in (uint8, so scale 1 / zero point 0 when the crops span 0..255), the
# 1024-d descriptor (global_pooling/Mean) out as int8; the age and gender heads are left out.
faceres = tfjs2tf.load("faceres/faceres.json", "input_1", "global_pooling/Mean", [1, 224, 224, 3])
crops = faces.aligned_crops(original_detector, repo, 224)
data = [faces.embedder_input(c, 224) for *_, c in crops]
lo, hi = min(float(d.min()) for d in data), max(float(d.max()) for d in data)
if (lo, hi) != (0.0, 255.0):
    raise SystemExit(f"convert: FaceRes calibration spans {lo}..{hi}, not 0..255: the uint8 "
                     "input would not be raw RGB")
convert(faceres, "faceres_hse_int8_iou8.tflite", data, tf.uint8, tf.int8)
