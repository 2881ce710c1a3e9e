#!/usr/bin/env python3
"""Compare two folders of FaceCV Edge models: are the rebuilt files equivalent to the shipped ones?

    compare-models.py OLD_DIR NEW_DIR [--repo REPO]

int8 files from another TensorFlow or another calibration set are never byte-identical, so this
compares what matters, file by file: tensor names, shapes, dtypes, quantization and op set; then
outputs on the test photos (tests/data/faces). Detector: faces found by each, box IoU and keypoint
distance of matched faces. Embedders: both embed the same keypoint-aligned crop (aligned with the
OLD detector's keypoints, so only the embedder differs) and the cosine similarity of the two
embeddings is reported; an int8 file with a float sibling (MobileFaceNet) is also compared with
the OLD float file, since two int8 calibrations each lose a little in their own direction. Exits
non-zero when a file is missing, its interface differs (quantization scales by more than 25%), the
detectors find different numbers of faces, a new int8 file strays from the float model by 0.05
more than the old one did, or another embedder's cosine falls below --min-cosine.

Needs TensorFlow (make-models.sh's venv has it).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "models"))
import faces  # noqa: E402

DETECTOR = "blazeface_full_int8.tflite"
EMBEDDERS = {"mobilefacenet_expo_f32.tflite": 112, "mobilefacenet_expo_int8.tflite": 112,
             "faceres_hse_int8_iou8.tflite": 224}
# An int8 file with a float sibling is judged by how close each int8 file stays to the float one:
# two int8 calibrations can each lose a little in different directions.
FLOAT_REFERENCE = {"mobilefacenet_expo_int8.tflite": "mobilefacenet_expo_f32.tflite"}


def interface(model):
    """(name, shape, dtype, (scale, zero point)) of each input and output, and the op set."""
    tensors = [(d["name"], tuple(int(x) for x in d["shape"]), d["dtype"].__name__, d["quantization"])
               for d in model.inputs + model.outputs]
    ops = sorted({o["op_name"] for o in model.interp._get_ops_details()} - {"DELEGATE"})
    return tensors, ops


def check_interface(name, old, new):
    """Problems (strings) where the two files' tensors or ops differ; quantization within 25%."""
    (t_old, ops_old), (t_new, ops_new) = interface(old), interface(new)
    problems = []
    if ops_old != ops_new:
        problems.append(f"ops differ: {ops_old} vs {ops_new}")
    if len(t_old) != len(t_new):
        return problems + [f"{len(t_old)} vs {len(t_new)} tensors"], ops_old, []
    quant = []
    for a, b in zip(t_old, t_new):
        if a[:3] != b[:3]:
            problems.append(f"tensor {a[:3]} vs {b[:3]}")
        (sa, za), (sb, zb) = a[3], b[3]
        if sa or sb:
            quant.append(f"{a[0]} {sa:.6g}/{za} vs {sb:.6g}/{zb}")
            if za != zb or not (sa and sb and abs(sa - sb) / sa <= 0.25):
                problems.append(f"quantization of {a[0]}: {sa:.6g}/{za} vs {sb:.6g}/{zb}")
    return problems, ops_old, quant


def compare_detector(old, new, pics):
    """Faces each finds (with the 2x pad retry), matched by IoU; IoU and keypoint distance as a
    share of the face's width."""
    found_old = found_new = 0
    ious, kps, problems = [], [], []
    for _, path, rgb in pics:
        a, b = faces.detect(old, rgb), faces.detect(new, rgb)
        found_old, found_new = found_old + len(a), found_new + len(b)
        if len(a) != len(b):
            problems.append(f"{os.path.basename(path)}: {len(a)} vs {len(b)} faces")
        for fa in a:
            best = max(b, key=lambda fb: faces.iou(fa["box"], fb["box"]), default=None)
            if best is None or faces.iou(fa["box"], best["box"]) < 0.5:
                continue
            ious.append(faces.iou(fa["box"], best["box"]))
            width = fa["box"][2] - fa["box"][0]
            kps.append(np.linalg.norm(fa["keypoints"] - best["keypoints"], axis=1).mean() / width)
    return {"faces": f"{found_old} / {found_new}", "matched": len(ious),
            "iou min/mean": f"{min(ious):.3f} / {np.mean(ious):.3f}" if ious else "-",
            "kp dist max/mean (x face width)": f"{max(kps):.4f} / {np.mean(kps):.4f}" if kps else "-"
            }, problems


def cosines(a, b, crops, size):
    """Cosine between the embeddings models `a` and `b` give each crop."""
    cos = []
    for *_, crop in crops:
        x = faces.embedder_input(crop, size)
        u, v = a(x)[0].reshape(-1), b(x)[0].reshape(-1)
        cos.append(float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v))))
    return cos


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old_dir")
    ap.add_argument("new_dir")
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--min-cosine", type=float, default=0.95,
                    help="lowest acceptable cosine between old and new embeddings of one crop")
    args = ap.parse_args()

    failures, rows = [], []
    missing = [f for f in [DETECTOR, *EMBEDDERS]
               for d in (args.old_dir, args.new_dir) if not os.path.isfile(os.path.join(d, f))]
    if missing:
        sys.exit(f"compare-models: missing {', '.join(sorted(set(missing)))} in "
                 f"{args.old_dir} or {args.new_dir}")
    load = lambda d, f: faces.Model(os.path.join(d, f))
    pics = faces.photos(args.repo)

    print(f"{'file':<32} {'bytes old/new':<20} interface")
    for f in [DETECTOR, *EMBEDDERS]:
        old, new = load(args.old_dir, f), load(args.new_dir, f)
        problems, ops, quant = check_interface(f, old, new)
        sizes = f"{os.path.getsize(old.path)}/{os.path.getsize(new.path)}"
        print(f"{f:<32} {sizes:<20} {'same' if not problems else 'DIFFERENT'}: "
              f"{len(ops)} ops, {len(old.inputs)} in, {len(old.outputs)} out")
        for q in quant:
            print(f"{'':<53}quant {q}")
        failures += [f"{f}: {p}" for p in problems]
    if failures:  # outputs of files with other tensors cannot be compared
        report(failures)

    det_old, det_new = load(args.old_dir, DETECTOR), load(args.new_dir, DETECTOR)
    stats, problems = compare_detector(det_old, det_new, pics)
    failures += [f"{DETECTOR}: {p}" for p in problems]
    print(f"\ndetector on {len(pics)} photos (old / new):")
    for k, v in stats.items():
        print(f"  {k:<34} {v}")

    print(f"\n{'embedder, cosine on the same crop':<42} {'crops':>5} {'min':>7} {'mean':>7}")
    crops = {size: faces.aligned_crops(det_old, args.repo, size) for size in set(EMBEDDERS.values())}
    fmt = lambda label, c: print(f"{label:<42} {len(c):>5} {min(c):>7.4f} {np.mean(c):>7.4f}")
    for f, size in EMBEDDERS.items():
        old, new = load(args.old_dir, f), load(args.new_dir, f)
        cos = cosines(old, new, crops[size], size)
        fmt(f"{f} old~new", cos)
        if f in FLOAT_REFERENCE:
            ref = load(args.old_dir, FLOAT_REFERENCE[f])
            to_old, to_new = cosines(ref, old, crops[size], size), cosines(ref, new, crops[size], size)
            fmt("  old int8 ~ old f32", to_old)
            fmt("  new int8 ~ old f32", to_new)
            if min(to_new) < min(to_old) - 0.05:
                failures.append(f"{f}: further from the float model than the old file "
                                f"({min(to_new):.4f} vs {min(to_old):.4f})")
        elif min(cos) < args.min_cosine:
            failures.append(f"{f}: cosine {min(cos):.4f} < {args.min_cosine}")

    report(failures)


def report(failures):
    if failures:
        print("\ncompare-models: NOT equivalent:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("\ncompare-models: equivalent")


if __name__ == "__main__":
    main()
