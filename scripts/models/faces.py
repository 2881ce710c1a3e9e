"""The appliance's face pipeline in numpy, for calibrating and comparing models outside Rust.

It mirrors src/vision: letterbox into BlazeFace's 192x192 input, decode the 48x48 anchors, weighted
NMS, pad tight crops 2x when nothing is found, and align to ArcFace's template by a least-squares
similarity. Quantization is calibrated on what the appliance really feeds the networks, and two
model files are compared on the same crops, so both need the same steps as the Rust code.
"""
import glob
import os

import numpy as np
from PIL import Image

SIZE, GRID, THRESHOLD, NMS_IOU, PAD = 192, 48, 0.6, 0.3, 2.0
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014],
                        [56.0252, 71.7366], [56.1396, 92.2848]], np.float64)
FACERES_ZOOM = 0.9  # src/vision/align.rs: FaceRes's template, loosened about the centre


def photos(repo):
    """`(person, path, RGB image)` for the test photos tests/vision.rs uses, in its order."""
    root = os.path.join(repo, "tests/data/faces")
    out = []
    for path in sorted(glob.glob(f"{root}/johns/*/*.jpg")):
        out.append((os.path.basename(os.path.dirname(path)), path))
    for name, person in (("obama.jpg", "Barack_Obama"), ("obama2.jpg", "Barack_Obama"),
                         ("biden.jpg", "Joe_Biden")):
        out.append((person, f"{root}/misc/{name}"))
    if len(out) < 10:
        raise SystemExit(f"faces: expected the test photos under {root}, found {len(out)}")
    return [(p, f, np.asarray(Image.open(f).convert("RGB"))) for p, f in out]


def pad_image(rgb, factor=PAD):
    """Centre on a grey canvas `factor` times the size; returns (canvas, (ox, oy))."""
    h, w = rgb.shape[:2]
    ph, pw = max(h, round(h * factor)), max(w, round(w * factor))
    oy, ox = (ph - h) // 2, (pw - w) // 2
    out = np.full((ph, pw, 3), 128, np.uint8)
    out[oy:oy + h, ox:ox + w] = rgb
    return out, (ox, oy)


def letterbox(rgb):
    """The detector input: fit into 192x192 on mid grey, scaled to [-1, 1]; and (scale, px, py)."""
    h, w = rgb.shape[:2]
    scale = SIZE / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px, py = (SIZE - nw) / 2, (SIZE - nh) / 2
    canvas = Image.new("RGB", (SIZE, SIZE), (128, 128, 128))
    canvas.paste(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR), (int(px), int(py)))
    x = np.asarray(canvas, np.float32)[None] / 127.5 - 1.0
    return x, (scale, int(px), int(py))


class Model:
    """One .tflite file under TensorFlow's interpreter, float in and out whatever is inside."""

    def __init__(self, path):
        import tensorflow as tf
        self.path = path
        self.interp = tf.lite.Interpreter(model_path=path, num_threads=1)
        self.interp.allocate_tensors()
        self.inputs = self.interp.get_input_details()
        self.outputs = self.interp.get_output_details()

    def __call__(self, x):
        d = self.inputs[0]
        if d["dtype"] != np.float32:  # quantized input: the float values are what it means
            scale, zero = d["quantization"]
            x = np.clip(np.round(x / scale + zero), np.iinfo(d["dtype"]).min,
                        np.iinfo(d["dtype"]).max)
        self.interp.set_tensor(d["index"], x.astype(d["dtype"]))
        self.interp.invoke()
        outs = []
        for o in self.outputs:
            y = self.interp.get_tensor(o["index"])
            if o["dtype"] != np.float32:
                scale, zero = o["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            outs.append(y)
        return outs


def detect_once(model, rgb):
    x, (scale, px, py) = letterbox(rgb)
    outs = model(x)
    scores = next(o for o in outs if o.shape[-1] == 1).reshape(-1)
    regs = next(o for o in outs if o.shape[-1] == 16).reshape(-1, 16) / SIZE
    keep = np.nonzero(1 / (1 + np.exp(-np.clip(scores, -100, 100))) > THRESHOLD)[0]
    cands = []
    for i in keep:
        ax, ay = (i % GRID + 0.5) / GRID, (i // GRID + 0.5) / GRID
        r = regs[i]
        cx, cy, w, h = r[0] + ax, r[1] + ay, r[2], r[3]
        kps = r[4:16].reshape(6, 2) + [ax, ay]
        score = 1 / (1 + np.exp(-np.clip(scores[i], -100, 100)))
        cands.append([score, np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]), kps])
    cands.sort(key=lambda c: -c[0])
    faces = []
    for i, top in enumerate(cands):
        if top[0] < 0:
            continue
        wsum, box, kps, score = 0.0, np.zeros(4), np.zeros((6, 2)), top[0]
        for c in cands[i:]:
            if c[0] < 0 or iou(top[1], c[1]) <= NMS_IOU:
                continue
            wsum += c[0]
            box += c[1] * c[0]
            kps += c[2] * c[0]
            c[0] = -1.0
        to_px = lambda v, pad: (v / wsum * SIZE - pad) / scale
        box = np.array([to_px(box[0], px), to_px(box[1], py), to_px(box[2], px), to_px(box[3], py)])
        kps = np.stack([to_px(kps[:, 0], px), to_px(kps[:, 1], py)], 1)
        faces.append({"score": float(score), "box": box, "keypoints": kps})
    return faces


def detect(model, rgb):
    """Faces in `rgb`, padding a tight crop 2x and retrying as enrolment does (analyze_still)."""
    faces = detect_once(model, rgb)
    if faces:
        return faces
    canvas, (ox, oy) = pad_image(rgb)
    faces = detect_once(model, canvas)
    for f in faces:
        f["box"] -= [ox, oy, ox, oy]
        f["keypoints"] -= [ox, oy]
    return faces


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def align(rgb, face, size):
    """The crop the embedder sees: right eye, left eye, nose, mouth fitted to ArcFace's template
    (at 0.9 of its size for FaceRes's 224x224 input, as src/vision/align.rs does)."""
    zoom = 1.0 if size == 112 else FACERES_ZOOM
    dst = ((ARCFACE_112 - 56.0) * zoom + 56.0) * (size / 112.0)
    src = face["keypoints"][:4].astype(np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    norm = (s ** 2).sum()
    a = (s * d).sum() / norm
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / norm
    tx, ty = md[0] - (a * ms[0] - b * ms[1]), md[1] - (b * ms[0] + a * ms[1])
    # PIL wants the inverse map: crop pixel -> photo pixel.
    det = a * a + b * b
    ia, ib = a / det, -b / det
    itx, ity = -(ia * tx - ib * ty), -(ib * tx + ia * ty)
    img = Image.fromarray(rgb).transform((size, size), Image.AFFINE,
                                         (ia, -ib, itx, ib, ia, ity), Image.BILINEAR,
                                         fillcolor=(128, 128, 128))
    return np.asarray(img)


def embedder_input(crop, size):
    """MobileFaceNet takes (x - 127.5) / 128; FaceRes takes raw 0..255 values."""
    x = crop.astype(np.float32)[None]
    return (x - 127.5) / 128.0 if size == 112 else x


def aligned_crops(detector, repo, size):
    """`(person, path, crop)` for every test photo with one face, aligned for a `size` input."""
    out = []
    for person, path, rgb in photos(repo):
        faces = detect(detector, rgb)
        if faces:
            best = max(faces, key=lambda f: f["score"])
            out.append((person, path, align(rgb, best, size)))
    return out
