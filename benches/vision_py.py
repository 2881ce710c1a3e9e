#!/usr/bin/env python3
"""The Python side of `cargo bench --bench vision`: the same models, frames and work through
`ai-edge-litert`'s Interpreter, so the Rust figures have a baseline.

    python3 benches/vision_py.py --frame FILE:WIDTH:HEIGHT [--frame ...] --iters N --warmup W
        [--gallery G] [--threads 1] [--cpu C] [--preproc numpy|opencv]

Each FILE is a packed RGB8 frame. Per frame, as the Rust engine does it: letterbox into 192x192
with the same area-averaged bilinear taps and scale to [-1, 1] (numpy), one detector invoke,
BlazeFace decode + weighted NMS, then for each face a keypoint-aligned 112x112 crop (least-squares
similarity, bilinear), (x - 127.5) / 128, one embedder invoke, L2 normalisation, and a cosine top-1
against a gallery of G unit vectors. Prints one JSON object on stdout (times in ms, means per
frame); `ai_edge_litert` missing is exit code 3 with the install command on stderr.

`--preproc opencv` does the letterbox with cv2.resize and the alignment with cv2.warpAffine, as
FaceCV itself does (pip install opencv-python-headless==4.10.0.84): the fair peer; numpy is the
default.
"""

import argparse
import json
import os
import resource
import sys
import threading
import time

try:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
except ImportError as e:  # pragma: no cover - reported by the Rust bench
    print(
        f"vision_py: {e}; install with: pip install ai-edge-litert==2.3.0 numpy",
        file=sys.stderr,
    )
    sys.exit(3)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
INPUT = 192
GRID = 48
THRESHOLD = 0.6
NMS_IOU = 0.3
# ArcFace's 112x112 template for right eye, left eye, nose tip, mouth centre (src/vision/align.rs).
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [56.1396, 92.2848]],
    dtype=np.float32,
)
ANCHORS = np.stack(
    np.meshgrid((np.arange(GRID) + 0.5) / GRID, (np.arange(GRID) + 0.5) / GRID), axis=-1
).reshape(-1, 2).astype(np.float32)


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def threads():
    return len(os.listdir("/proc/self/task"))


class Model:
    def __init__(self, name, num_threads):
        self.it = Interpreter(model_path=os.path.join(MODELS, name), num_threads=num_threads)
        self.it.allocate_tensors()
        self.input = self.it.get_input_details()[0]["index"]
        self.outputs = self.it.get_output_details()
        self.invoke_s = 0.0

    def run(self, x):
        self.it.set_tensor(self.input, x)
        t = time.perf_counter()
        self.it.invoke()
        self.invoke_s += time.perf_counter() - t
        return [self.it.get_tensor(o["index"]) for o in self.outputs]


def bilinear(img, ys, xs):
    """Bilinear samples of img (h, w, 3 uint8) at the points (ys, xs) (any equal shapes)."""
    h, w = img.shape[:2]
    x = np.clip(xs, 0, w - 1)
    y = np.clip(ys, 0, h - 1)
    x0 = x.astype(np.int32)
    y0 = y.astype(np.int32)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def letterbox(img):
    """src/vision/detector.rs fill_input: [1,192,192,3] float32 in [-1, 1], border 0.

    The same samples (taps x taps bilinear taps per input pixel, averaged), computed the way numpy
    does it fast: the sample grid is separable, and so is bilinear interpolation and the average,
    so one horizontal pass over the frame's rows and one vertical pass give the same values as the
    Rust loop's per-pixel taps (up to float rounding)."""
    h, w = img.shape[:2]
    scale = INPUT / max(w, h)
    pad_x = (INPUT - w * scale) / 2
    pad_y = (INPUT - h * scale) / 2
    taps = int(min(max(np.ceil(1 / scale), 1), 4))
    step = 1 / (scale * taps)
    offs = (np.arange(taps, dtype=np.float32) + 0.5) * step - 0.5
    u0 = (np.arange(INPUT, dtype=np.float32) - pad_x) / scale
    v0 = (np.arange(INPUT, dtype=np.float32) - pad_y) / scale
    cols = np.nonzero((u0 >= 0) & (u0 < w))[0]
    rows = np.nonzero((v0 >= 0) & (v0 < h))[0]
    x = np.clip((u0[cols][:, None] + offs[None, :]).reshape(-1), 0, w - 1)
    y = np.clip((v0[rows][:, None] + offs[None, :]).reshape(-1), 0, h - 1)
    x0 = x.astype(np.int32)
    y0 = y.astype(np.int32)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0)[None, :, None]
    fy = (y - y0)[:, None, None]
    # Horizontal: every frame row at the x taps, then the x taps averaged.
    left = np.take(img, x0, axis=1).astype(np.float32)  # (h, cols*taps, 3)
    right = np.take(img, x1, axis=1).astype(np.float32)
    right -= left
    right *= fx
    left += right
    horiz = left.reshape(h, len(cols), taps, 3).mean(axis=2)
    # Vertical: the y taps from those rows, then averaged.
    top = np.take(horiz, y0, axis=0)  # (rows*taps, cols, 3)
    bottom = np.take(horiz, y1, axis=0)
    bottom -= top
    bottom *= fy
    top += bottom
    mean = top.reshape(len(rows), taps, len(cols), 3).mean(axis=1)
    out = np.zeros((1, INPUT, INPUT, 3), dtype=np.float32)
    out[0, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = mean / 127.5 - 1
    return out, (scale, pad_x, pad_y)


def decode(outputs, lb, w, h):
    """BlazeFace decode and MediaPipe's weighted NMS; faces as (bbox, keypoints) in pixels."""
    scores = next(o for o in outputs if o.shape[-1] == 1).reshape(-1)
    regs = next(o for o in outputs if o.shape[-1] == 16).reshape(-1, 16)
    min_logit = np.log(THRESHOLD / (1 - THRESHOLD))
    idx = np.nonzero(scores > min_logit)[0]
    s = 1 / (1 + np.exp(-np.clip(scores[idx], -100, 100)))
    r = regs[idx] / INPUT
    a = ANCHORS[idx]
    c = r[:, 0:2] + a
    half = r[:, 2:4] / 2
    boxes = np.concatenate([c - half, c + half], axis=1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
    order = np.argsort(-s)
    s, boxes, kps = s[order], boxes[order], kps[order]
    alive = np.ones(len(s), dtype=bool)
    scale, pad_x, pad_y = lb
    pad = np.array([pad_x, pad_y], dtype=np.float32)
    faces = []
    for i in range(len(s)):
        if not alive[i]:
            continue
        b = boxes[i]
        iw = np.clip(np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]), 0, None)
        ih = np.clip(np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]), 0, None)
        inter = iw * ih
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = (b[2] - b[0]) * (b[3] - b[1]) + area - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0)
        group = alive & (iou > NMS_IOU)
        wts = s[group]
        box = (boxes[group] * wts[:, None]).sum(0) / wts.sum()
        kp = (kps[group] * wts[:, None, None]).sum(0) / wts.sum()
        alive &= ~group
        to_px = lambda p: (p * INPUT - pad) / scale  # noqa: E731
        box = np.concatenate([to_px(box[:2]), to_px(box[2:])])
        box = np.clip(box, 0, [w, h, w, h])
        faces.append((box, to_px(kp)))
        if len(faces) == 16:
            break
    return faces


def align(img, keypoints, size=112):
    """src/vision/align.rs: least-squares similarity to the template, bilinear, uint8 crop."""
    src = keypoints[:4].astype(np.float32)
    dst = TEMPLATE * (size / 112)
    ms, md = src.mean(0), dst.mean(0)
    xs, xd = src - ms, dst - md
    norm = (xs**2).sum()
    a = (xs * xd).sum() / norm
    b = (xs[:, 0] * xd[:, 1] - xs[:, 1] * xd[:, 0]).sum() / norm
    tx = md[0] - (a * ms[0] - b * ms[1])
    ty = md[1] - (b * ms[0] + a * ms[1])
    d = a * a + b * b  # inverse: crop pixels -> frame pixels
    ia, ib = a / d, -b / d
    itx, ity = -(ia * tx - ib * ty), -(ib * tx + ia * ty)
    taps = 2 if np.hypot(ia, ib) > 2 else 1
    offs = (np.arange(taps, dtype=np.float32) + 0.5) / taps - 0.5
    g = np.arange(size, dtype=np.float32)
    u = (g[:, None] + offs[None, :]).reshape(-1)
    v = u
    uu, vv = np.meshgrid(u, v)
    x = ia * uu - ib * vv + itx
    y = ib * uu + ia * vv + ity
    h, w = img.shape[:2]
    outside = (x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5)
    px = bilinear(img, y, x).reshape(size, taps, size, taps, 3).mean(axis=(1, 3))
    out = np.clip(np.round(px), 0, 255).astype(np.uint8)
    out_mask = outside.reshape(size, taps, size, taps).any(axis=(1, 3))
    out[out_mask] = 128
    return out


def letterbox_cv2(img):
    """The detector's letterbox as FaceCV makes it: cv2.resize (INTER_AREA, which averages when
    shrinking, like the Rust taps) into the middle of a canvas whose border is 0, as the Rust one."""
    h, w = img.shape[:2]
    scale = INPUT / max(w, h)
    pad_x = (INPUT - w * scale) / 2
    pad_y = (INPUT - h * scale) / 2
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((1, INPUT, INPUT, 3), dtype=np.float32)
    x0, y0 = int(round(pad_x)), int(round(pad_y))
    out[0, y0 : y0 + nh, x0 : x0 + nw] = small.astype(np.float32) / 127.5 - 1
    return out, (scale, pad_x, pad_y)


def align_cv2(img, keypoints, size=112):
    """The 112x112 alignment as FaceCV makes it: the same similarity, cv2.warpAffine (bilinear),
    grey outside the frame."""
    src = keypoints[:4].astype(np.float32)
    dst = TEMPLATE * (size / 112)
    ms, md = src.mean(0), dst.mean(0)
    xs, xd = src - ms, dst - md
    norm = (xs**2).sum()
    a = (xs * xd).sum() / norm
    b = (xs[:, 0] * xd[:, 1] - xs[:, 1] * xd[:, 0]).sum() / norm
    tx = md[0] - (a * ms[0] - b * ms[1])
    ty = md[1] - (b * ms[0] + a * ms[1])
    m = np.array([[a, -b, tx], [b, a, ty]], dtype=np.float32)
    return cv2.warpAffine(
        img, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(128, 128, 128)
    )


def frame_bench(img, det, emb, gallery, iters, warmup, letterbox=letterbox, align=align):
    h, w = img.shape[:2]
    stages = dict(convert=0.0, detect=0.0, align=0.0, embed=0.0, match=0.0)
    frames, invokes = [], []
    faces_found = embedded = 0
    for it in range(warmup + iters):
        if it == warmup:
            stages = {k: 0.0 for k in stages}
            frames, invokes = [], []
            embedded = 0
            wall0, cpu0 = time.perf_counter(), time.process_time()
        det.invoke_s = emb.invoke_s = 0.0
        t0 = time.perf_counter()
        x, lb = letterbox(img)
        t1 = time.perf_counter()
        faces = decode(det.run(x), lb, w, h)
        t2 = time.perf_counter()
        stages["convert"] += t1 - t0
        stages["detect"] += t2 - t1
        faces_found = len(faces)
        for _box, kp in faces:
            ta = time.perf_counter()
            crop = align(img, kp)
            x = ((crop.astype(np.float32) - 127.5) / 128)[None]
            tb = time.perf_counter()
            e = emb.run(x)[0].reshape(-1)
            e = e / np.linalg.norm(e)
            tc = time.perf_counter()
            best = int(np.argmax(gallery @ e))
            td = time.perf_counter()
            del best
            stages["align"] += tb - ta
            stages["embed"] += tc - tb
            stages["match"] += td - tc
            embedded += 1
        frames.append(time.perf_counter() - t0)
        invokes.append((det.invoke_s, emb.invoke_s))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    ms = lambda s: 1e3 * s / iters  # noqa: E731
    frame_s = np.array(frames)
    det_s, emb_s = np.array(invokes).T
    return dict(
        faces=faces_found,
        embedded_per_frame=embedded / iters,
        iters=iters,
        frame_ms=ms(frame_s.sum()),
        frame_ms_median=1e3 * float(np.median(frame_s)),
        frame_ms_p95=1e3 * float(np.sort(frame_s)[iters * 95 // 100]),
        cpu_ms=ms(cpu),
        cpu_over_wall=cpu / wall,
        stages_ms={k: ms(v) for k, v in stages.items()},
        detect_invoke_ms=ms(det_s.sum()),
        embed_invoke_ms=ms(emb_s.sum()),
        invoke_ms=ms(det_s.sum() + emb_s.sum()),
        invoke_ms_median=1e3 * float(np.median(det_s + emb_s)),
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frame", action="append", required=True, help="FILE:WIDTH:HEIGHT")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--gallery", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    p.add_argument("--detector", default="blazeface_full_int8.tflite")
    p.add_argument("--embedder", default="mobilefacenet_expo_f32.tflite")
    p.add_argument(
        "--preproc",
        choices=["numpy", "opencv"],
        default="numpy",
        help="letterbox and alignment with numpy, or with OpenCV (cv2.resize, cv2.warpAffine) as FaceCV does",
    )
    a = p.parse_args()
    steps = {}
    if a.preproc == "opencv":
        global cv2
        try:
            import cv2
        except ImportError as e:
            sys.exit(
                f"vision_py: {e}; install with: pip install opencv-python-headless==4.10.0.84"
            )
        cv2.setNumThreads(1)
        steps = dict(letterbox=letterbox_cv2, align=align_cv2)
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    rss_start = status_kb("VmRSS")
    det = Model(a.detector, a.threads)
    emb = Model(a.embedder, a.threads)
    rss_loaded = status_kb("VmRSS")
    rng = np.random.default_rng(7)
    gallery = rng.standard_normal((a.gallery, emb.outputs[0]["shape"][-1])).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    results = []
    for spec in a.frame:
        path, w, h = spec.rsplit(":", 2)
        img = np.fromfile(path, dtype=np.uint8).reshape(int(h), int(w), 3)
        r = frame_bench(img, det, emb, gallery, a.iters, a.warmup, **steps)
        r["frame"] = os.path.basename(path)
        results.append(r)
    import ai_edge_litert
    import numpy

    print(
        json.dumps(
            dict(
                python=sys.version.split()[0],
                numpy=numpy.__version__,
                preproc=a.preproc,
                opencv=cv2.__version__ if a.preproc == "opencv" else None,
                litert=getattr(ai_edge_litert, "__version__", "?"),
                num_threads=a.threads,
                affinity=sorted(os.sched_getaffinity(0)),
                threads=threads(),
                python_threads=threading.active_count(),
                rss_start_kb=rss_start,
                rss_loaded_kb=rss_loaded,
                rss_end_kb=status_kb("VmRSS"),
                hwm_kb=status_kb("VmHWM"),
                maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                results=results,
            )
        )
    )


if __name__ == "__main__":
    main()
