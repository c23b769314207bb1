"""Deterministic generator of the bundled demo dataset (``sample_data/``) with planted issues.

``python -m qa.sample OUTDIR`` writes about 300 synthetic JPEG scenes of five shape classes,
three annotators' COCO files, one detector's COCO results and ``PLANTED.json``: the exact ids of
every issue planted on purpose (rare class, near and exact duplicates, out-of-distribution
photos, label errors of four kinds, empty images, a corrupt and a missing file). Every
analysis of dataset-qa is scored against that manifest, so the issues are exact, not
statistical: the generator knows the ground truth of every box.

Determinism: all randomness comes from numpy Generators seeded from ``SEED`` (one stream per
scene, one per annotator, one for the model), drawing is PIL, JSON is written with sorted keys,
and the JPEG encoder (libjpeg-turbo, integer DCT) gives the same bytes for the same pixels. Two
runs with the same ``--n-images`` and ``--seed`` give byte-identical folders;
``MANIFEST.sha256`` lists the sha256 of every file written. The bytes depend on the Pillow and
numpy versions only through PIL's resampling and JPEG encoder and numpy's random streams.

Layout written::

    OUTDIR/images/{train,val,test}/000123.jpg   file name = image id, folder = split
    OUTDIR/annotations/{alice,bob,carol}.json    one COCO file per annotator, same images
    OUTDIR/predictions/detector.json             COCO results list
    OUTDIR/PLANTED.json  README.md  MANIFEST.sha256
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

GENERATOR = "qa.sample"
FORMAT_VERSION = 1
SEED = 20240607
N_IMAGES = 300
# Fewer images cannot hold every planted issue with the clean images around them.
MIN_IMAGES = 120
# Quality of ordinary JPEGs: small files, no visible blocking on flat shapes.
JPEG_QUALITY = 82
# The "re-compressed" near-duplicates: visibly blocky, still the same picture.
LOW_JPEG_QUALITY = 22
SIZES = ((320, 240), (400, 300), (480, 360), (640, 480), (360, 480))
SIZE_P = (0.30, 0.25, 0.20, 0.17, 0.08)
SPLIT_FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))

# category_id, name, fill colour (RGB). "star" is the planted rare class.
CLASSES = (
    (1, "circle", (220, 40, 40)),
    (2, "square", (40, 80, 220)),
    (3, "triangle", (40, 170, 60)),
    (4, "star", (245, 205, 20)),
    (5, "ring", (150, 50, 190)),
)
CLASS_P = (0.29, 0.25, 0.24, 0.03, 0.19)
CAT_NAME = {c: n for c, n, _ in CLASSES}
CAT_ID = {n: c for c, n, _ in CLASSES}
RARE_CLASS = "star"
# COCO's size buckets (area in px^2): small < 32^2 <= medium < 96^2 <= large.
SMALL_AREA, LARGE_AREA = 32 ** 2, 96 ** 2
SMALL_SIDE = 32  # carol misses boxes whose longer side is below this

N_EMPTY = 7
N_OOD = 10
N_ERRORS_PER_KIND = 6
ERROR_KINDS = ("wrong_class", "missing_box", "bad_box", "spurious_box")
# (kind, copy crosses splits) for the near-duplicate pairs; 5 of 10 leak train -> val/test.
NEAR_DUPLICATES = (
    ("resized", True), ("recompressed", True), ("flipped", True), ("resized", True),
    ("recompressed", True), ("resized", False), ("flipped", False), ("recompressed", False),
    ("resized", False), ("flipped", False),
)
EXACT_DUPLICATES = (True, False, False)  # cross-split?
RESIZE_SCALES = (0.5, 0.625, 0.75, 1.25)
# Real photographs that load from scikit-image without a download (checked offline);
# skimage.data.cat is the same photo as chelsea, so it is left out.
OOD_SOURCES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "horse",
               "hubble_deep_field", "immunohistochemistry", "moon")
TEXTURES = ("brick", "grass", "gravel")

ANNOTATORS = ("alice", "bob", "carol")
# Disjoint annotation-id ranges per annotator file, so the COCO loader never renumbers them
# and the ann_ids in PLANTED.json are the ids a loaded Dataset carries.
ANN_ID_BASE = {"alice": 100_000, "bob": 200_000, "carol": 300_000}
BOB_SIDE_SHIFT = (0.08, 0.16)  # fraction of the box size each side moves
BOB_OUTWARD_P = 0.85
CAROL_DROP_SMALL_P = 0.85
CAROL_CONFUSION = ("ring", "circle", 0.40)  # (true class, label given, rate)
MODEL = "detector"
# Detector: true objects are found with these scores; false positives stay below
# FP_MAX_SCORE, so at a 0.5 threshold it disagrees with the labels only at planted errors
# and at its listed misses.
TP_SCORE = (0.60, 0.99)
ERROR_TP_SCORE = (0.85, 0.99)
FP_SCORE = (0.05, 0.35)
DETECT_P = {"small": 0.88, "medium": 0.98, "large": 0.99}
FP_PER_IMAGE = 0.12

Box = tuple[float, float, float, float]  # COCO xywh


# ============================================================================ data holders
@dataclass
class Obj:
    """A true object: class and tight box (integer xywh, from the drawn pixels)."""

    category_id: int
    box: Box


@dataclass
class Label:
    """One annotation before ids are assigned. ``gt`` = index of the true object it marks
    (None for a spurious box); ``error`` = planted error index, or None."""

    category_id: int
    box: Box
    gt: int | None
    error: int | None = None
    confused: bool = False
    ann_id: int | None = None


@dataclass
class Spec:
    kind: str  # scene | near_dup | exact_dup | ood
    split: str
    width: int = 0
    height: int = 0
    index: int = 0  # position in the spec list
    image_id: int = 0
    role: str | None = None  # empty | missing | corrupt | error | source
    source: int | None = None  # spec index of the original, for copies
    dup_kind: str | None = None
    ood_name: str | None = None
    objects: list[Obj] = field(default_factory=list)
    pixels: np.ndarray | None = None
    data: bytes | None = None
    labels: list[Label] = field(default_factory=list)  # the (possibly wrong) source labels

    @property
    def file_name(self) -> str:
        return f"{self.split}/{self.image_id:06d}.jpg"


# ============================================================================ pictures
def _muted(rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(70, 200, 3)
    return 0.45 * c + 0.55 * c.mean()


def _load_textures() -> dict[str, np.ndarray]:
    import skimage.data

    out = {}
    for name in TEXTURES:
        t = getattr(skimage.data, name)().astype(np.float32)
        t = (t - t.mean()) / (t.std() + 1e-6)
        # mirror-tile so any crop up to 1024 px is seamless
        t = np.concatenate([t, t[:, ::-1]], axis=1)
        out[name] = np.concatenate([t, t[::-1]], axis=0)
    return out


def _background(rng: np.random.Generator, w: int, h: int, textures) -> np.ndarray:
    kind = rng.choice(["gradient", "clouds", "texture", "tiles"], p=[0.3, 0.25, 0.3, 0.15])
    if kind == "gradient":
        c1, c2 = _muted(rng), _muted(rng)
        th = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(th) + yy * np.sin(th)
        t = (t - t.min()) / (t.max() - t.min() + 1e-6)
        img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    elif kind == "clouds":
        gh, gw = int(rng.integers(3, 8)), int(rng.integers(4, 10))
        grid = np.stack([_muted(rng) for _ in range(gh * gw)]).reshape(gh, gw, 3)
        small = Image.fromarray(grid.clip(0, 255).astype(np.uint8))
        img = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    elif kind == "texture":
        name = TEXTURES[int(rng.integers(len(TEXTURES)))]
        tex = textures[name]
        y0 = int(rng.integers(0, tex.shape[0] - h + 1))
        x0 = int(rng.integers(0, tex.shape[1] - w + 1))
        t = tex[y0:y0 + h, x0:x0 + w]
        img = _muted(rng) + t[..., None] * rng.uniform(14, 26) * rng.uniform(0.8, 1.2, 3)
    else:
        c1, c2 = _muted(rng), _muted(rng)
        s = int(rng.integers(16, 64))
        yy, xx = np.mgrid[0:h, 0:w]
        chk = ((xx // s + yy // s) % 2).astype(np.float32)[..., None]
        img = c1 * (1 - chk) + c2 * chk
    return img.clip(0, 255).astype(np.uint8)


def _shape_polygon(cid: int, cx: float, cy: float, r: float, th: float) -> list[tuple]:
    if CAT_NAME[cid] == "triangle":
        angles = th + np.array([0, 2, 4]) * np.pi / 3
        return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]
    pts = []  # star: 5 outer, 5 inner points
    for k in range(10):
        rr = r if k % 2 == 0 else 0.45 * r
        a = th + k * np.pi / 5 - np.pi / 2
        pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a)))
    return pts


def _draw_object(draws, cid: int, x0: int, y0: int, bw: int, bh: int, th: float,
                 fill, outline, value: int) -> None:
    """Draw one shape inside the box (x0, y0, bw, bh) on the picture and on the id mask."""
    name = CAT_NAME[cid]
    x1, y1 = x0 + bw - 1, y0 + bh - 1
    for draw, f, o in ((draws[0], fill, outline), (draws[1], value, value)):
        if name == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=f, outline=o, width=1)
        elif name == "square":
            draw.rectangle((x0, y0, x1, y1), fill=f, outline=o, width=1)
        elif name == "ring":
            draw.ellipse((x0, y0, x1, y1), outline=f, width=max(2, round(0.2 * min(bw, bh))))
        else:
            r = min(bw, bh) / 2
            draw.polygon(_shape_polygon(cid, x0 + bw / 2, y0 + bh / 2, r, th), fill=f,
                         outline=o)


def _sample_side(rng: np.random.Generator, w: int, h: int) -> int:
    bucket = rng.choice(3, p=[0.30, 0.50, 0.20])
    if bucket == 0:
        return int(rng.integers(10, 29))
    if bucket == 1:
        return int(rng.integers(36, 91))
    return int(rng.integers(100, max(101, int(0.55 * min(w, h))) + 1))


def _overlaps(a, b, margin: float = 0) -> bool:
    return not (a[0] + a[2] + margin <= b[0] or b[0] + b[2] + margin <= a[0]
                or a[1] + a[3] + margin <= b[1] or b[1] + b[3] + margin <= a[1])


def _render_scene(rng: np.random.Generator, w: int, h: int, n_objects: int, textures):
    """Picture (uint8 HxWx3) and its true objects, boxes taken from the drawn pixels."""
    img = Image.fromarray(_background(rng, w, h, textures))
    mask = Image.new("L", (w, h), 0)
    draws = (ImageDraw.Draw(img), ImageDraw.Draw(mask))
    placed: list[Box] = []
    cids = []
    for k in range(n_objects):
        cid = int(rng.choice(len(CLASSES), p=CLASS_P)) + 1
        side = _sample_side(rng, w, h)
        if CAT_NAME[cid] in ("triangle", "star"):
            bw = bh = side
        else:
            other = max(8, int(round(side * rng.uniform(0.75, 1.0))))
            bw, bh = (side, other) if rng.random() < 0.5 else (other, side)
        for _ in range(60):
            x0 = int(rng.integers(2, max(3, w - bw - 2)))
            y0 = int(rng.integers(2, max(3, h - bh - 2)))
            cand = (x0, y0, bw, bh)
            if x0 + bw <= w - 2 and y0 + bh <= h - 2 and not any(
                    _overlaps(cand, p, 6) for p in placed):
                break
        else:
            continue
        placed.append(cand)
        base = np.array(CLASSES[cid - 1][2], dtype=float)
        fill = tuple(int(v) for v in (base + rng.uniform(-18, 18, 3)).clip(0, 255))
        outline = tuple(int(v * 0.6) for v in fill)
        _draw_object(draws, cid, x0, y0, bw, bh, float(rng.uniform(0, 2 * np.pi)), fill,
                     outline, len(cids) + 1)
        cids.append(cid)
    m = np.asarray(mask)
    objects = []
    for k, cid in enumerate(cids):
        ys, xs = np.nonzero(m == k + 1)
        objects.append(Obj(cid, (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                 int(ys.max() - ys.min() + 1))))
    return np.asarray(img), objects


def _encode(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def _ood_picture(name: str, w: int, h: int) -> np.ndarray:
    import skimage.data

    a = getattr(skimage.data, name)()
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    a = a[..., :3]
    ih, iw = a.shape[:2]
    if iw * h > ih * w:  # too wide: crop width
        cw = ih * w // h
        a = a[:, (iw - cw) // 2:(iw - cw) // 2 + cw]
    else:
        ch = iw * h // w
        a = a[(ih - ch) // 2:(ih - ch) // 2 + ch]
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize(
        (w, h), Image.Resampling.LANCZOS))


# ============================================================================ boxes
def _bucket(box: Box) -> str:
    area = box[2] * box[3]
    return "small" if area < SMALL_AREA else ("medium" if area < LARGE_AREA else "large")


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _clip(x1, y1, x2, y2, w, h) -> Box:
    x1, x2 = min(max(x1, 0.0), w - 1.0), min(max(x2, 1.0), float(w))
    y1, y2 = min(max(y1, 0.0), h - 1.0), min(max(y2, 1.0), float(h))
    return (x1, y1, max(x2 - x1, 1.0), max(y2 - y1, 1.0))


def _round_box(box: Box) -> list[float]:
    return [round(float(v), 2) for v in box]


def _transform_box(box: Box, spec: Spec, src: Spec) -> Box:
    """A box of ``src`` as it lies in its copy ``spec`` (resized or flipped)."""
    x, y, w, h = box
    if spec.dup_kind == "flipped":
        return (src.width - x - w, y, w, h)
    if spec.dup_kind == "resized":
        sx, sy = spec.width / src.width, spec.height / src.height
        return (x * sx, y * sy, w * sx, h * sy)
    return box


def _free_box(rng: np.random.Generator, spec: Spec, avoid: list[Box]) -> Box | None:
    for _ in range(300):
        bw, bh = int(rng.integers(30, 80)), int(rng.integers(30, 80))
        if bw >= spec.width - 4 or bh >= spec.height - 4:
            continue
        cand = (int(rng.integers(2, spec.width - bw - 2)),
                int(rng.integers(2, spec.height - bh - 2)), bw, bh)
        if not any(_overlaps(cand, b, 8) for b in avoid):
            return cand
    return None


# ============================================================================ planning
def _plan(n_images: int, seed: int, rng: np.random.Generator, textures) -> list[Spec]:
    n_base = n_images - N_OOD - len(NEAR_DUPLICATES) - len(EXACT_DUPLICATES)
    splits = _split_list(n_base, rng)
    empty = set(rng.choice(n_base, N_EMPTY, replace=False).tolist())
    specs: list[Spec] = []
    for i in range(n_base):
        srng = np.random.default_rng([seed, 1, i])  # a scene depends only on (seed, i)
        w, h = SIZES[int(srng.choice(len(SIZES), p=SIZE_P))]
        n_obj = 0 if i in empty else int(srng.integers(1, 8))
        pixels, objects = _render_scene(srng, w, h, n_obj, textures)
        specs.append(Spec("scene", splits[i], w, h, index=i, objects=objects, pixels=pixels,
                          role="empty" if i in empty else None))
    free = [s for s in specs if s.role is None and s.objects]
    order = [free[k] for k in rng.permutation(len(free))]

    def take(pred, n, role):
        got = [s for s in order if s.role is None and pred(s)][:n]
        if len(got) < n:
            raise RuntimeError(f"sample plan: only {len(got)} scenes fit role {role!r}, need "
                               f"{n}; use more images (n_images >= {MIN_IMAGES}).")
        for s in got:
            s.role = role
        return got

    # copies' sources: two or more objects, train when the copy leaks into val/test
    for j, (kind, cross) in enumerate(NEAR_DUPLICATES):
        src = take(lambda s, c=cross: len(s.objects) >= 2 and (s.split == "train" or not c),
                   1, "source")[0]
        split = ("val" if j % 2 else "test") if cross else src.split
        w, h = src.width, src.height
        if kind == "resized":
            sc = RESIZE_SCALES[int(rng.integers(len(RESIZE_SCALES)))]
            w, h = int(round(src.width * sc)), int(round(src.height * sc))
        specs.append(Spec("near_dup", split, w, h, index=len(specs), source=src.index,
                          dup_kind=kind))
    for cross in EXACT_DUPLICATES:
        src = take(lambda s, c=cross: len(s.objects) >= 1 and (s.split == "train" or not c),
                   1, "source")[0]
        split = ("test" if src.split != "test" else "val") if cross else src.split
        specs.append(Spec("exact_dup", split, src.width, src.height, index=len(specs),
                          source=src.index, dup_kind="exact"))
    take(lambda s: True, 1, "missing")
    take(lambda s: True, 1, "corrupt")
    for k, name in enumerate(OOD_SOURCES[:N_OOD]):
        w, h = SIZES[int(rng.choice(4))]
        specs.append(Spec("ood", _split_list(1, rng, random=True)[0], w, h, index=len(specs),
                          ood_name=name))
    # image ids scatter copies and photos among the scenes
    perm = rng.permutation(len(specs))
    for s, p in zip(specs, perm):
        s.image_id = int(p) + 1
    return specs


def _split_list(n: int, rng: np.random.Generator, random: bool = False) -> list[str]:
    if random:
        return [str(rng.choice([s for s, _ in SPLIT_FRACTIONS],
                               p=[f for _, f in SPLIT_FRACTIONS])) for _ in range(n)]
    n_train = int(round(n * SPLIT_FRACTIONS[0][1]))
    n_val = int(round(n * SPLIT_FRACTIONS[1][1]))
    out = ["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val)
    return [out[k] for k in rng.permutation(n)]


def _plant_label_errors(specs: list[Spec], rng: np.random.Generator) -> list[dict]:
    """Set every scene's source labels (truth, except at planted errors) and return the
    error records. One error per image; erroneous boxes are never small, so every annotator
    keeps them."""
    for s in specs:
        if s.kind == "scene":
            s.labels = [Label(o.category_id, o.box, gt=k) for k, o in enumerate(s.objects)]
    scenes = [specs[k] for k in rng.permutation(len(specs)) if specs[k].kind == "scene"]
    errors: list[dict] = []
    for kind in ERROR_KINDS:
        n = 0
        for s in scenes:
            if n == N_ERRORS_PER_KIND:
                break
            if s.role is not None or not s.objects:
                continue
            rec = _plant_one(kind, s, rng, len(errors))
            if rec is None:
                continue
            errors.append(rec)
            s.role = "error"
            n += 1
        if n < N_ERRORS_PER_KIND:
            raise RuntimeError(f"sample plan: could only plant {n} {kind} errors; use more "
                               "images.")
    return errors


def _plant_one(kind: str, s: Spec, rng: np.random.Generator, err: int) -> dict | None:
    """Plant one error of ``kind`` into scene ``s``'s source labels; None if it does not fit."""
    big = [k for k, o in enumerate(s.objects) if max(o.box[2:]) >= SMALL_SIDE]
    boxes = [o.box for o in s.objects]
    rec: dict = {"kind": kind, "spec": s.index, "index": err}
    if kind == "spurious_box":
        box = _free_box(rng, s, boxes)
        if box is None:
            return None
        cid = int(rng.choice([c for c, n, _ in CLASSES if n in ("circle", "square",
                                                                  "triangle")]))
        s.labels.append(Label(cid, box, gt=None, error=err))
        rec.update(gt=None, true_category_id=None, true_bbox=None, labelled_category_id=cid,
                   labelled_bbox=list(box))
        return rec
    if not big or (kind == "missing_box" and len(s.objects) < 2):
        return None  # a missing box leaves other labels, so the image is not "empty"
    k = big[int(rng.integers(len(big)))]
    o = s.objects[k]
    rec.update(gt=k, true_category_id=o.category_id, true_bbox=list(o.box))
    if kind == "missing_box":
        s.labels = [lb for lb in s.labels if lb.gt != k]
        rec.update(labelled_category_id=None, labelled_bbox=None)
        return rec
    lab = next(lb for lb in s.labels if lb.gt == k)
    if kind == "wrong_class":
        # never the rare class (keeps its count exact) nor carol's confused pair
        choices = [c for c, n, _ in CLASSES if n in ("circle", "square", "triangle")
                   and c != o.category_id and not (n == "circle" and CAT_NAME[o.category_id]
                                                   == "ring")]
        lab.category_id = int(rng.choice(choices))
    else:  # bad_box: moved by 60-85 % of its size, onto background, inside the image
        x, y, w, h = o.box
        others = [b for j, b in enumerate(boxes) if j != k]
        for _ in range(40):
            fx, fy = rng.uniform(0.6, 0.85, 2)
            mode = int(rng.integers(3))  # 0: x only, 1: y only, 2: both
            dx = fx * w * rng.choice([-1, 1]) if mode != 1 else 0.0
            dy = fy * h * rng.choice([-1, 1]) if mode != 0 else 0.0
            nb = (int(round(x + dx)), int(round(y + dy)), w, h)
            if (nb[0] >= 0 and nb[1] >= 0 and nb[0] + w <= s.width and nb[1] + h <= s.height
                    and not any(_overlaps(nb, b, 2) for b in others)
                    and max(abs(nb[0] - x) / w, abs(nb[1] - y) / h) > 0.5):
                break
        else:
            return None
        lab.box = nb
    lab.error = err
    rec.update(labelled_category_id=lab.category_id, labelled_bbox=list(lab.box))
    return rec


# ============================================================================ annotators
def _annotate(name: str, labels: list[Label], s: Spec, rng: np.random.Generator) -> list[Label]:
    """One annotator's labels of a scene, from its source labels and the annotator's habits.
    Planted errors are copied as they are (apart from box noise): they come from the
    labelling guideline, so all three annotators make them."""
    out = []
    for lb in labels:
        x, y, w, h = lb.box
        x2, y2 = x + w, y + h
        cid, confused = lb.category_id, False
        if name == "bob":
            sides = []
            for size in (w, h, w, h):
                d = size * rng.uniform(*BOB_SIDE_SHIFT)
                sides.append(d if rng.random() < BOB_OUTWARD_P else -d)
            box = _clip(x - sides[0], y - sides[1], x2 + sides[2], y2 + sides[3], s.width,
                        s.height)
            box = tuple(round(v, 1) for v in box)
        else:
            n = rng.integers(-1, 2, 4)
            box = _clip(x + n[0], y + n[1], x2 + n[2], y2 + n[3], s.width, s.height)
        if name == "carol" and lb.error is None:
            if max(w, h) < SMALL_SIDE and rng.random() < CAROL_DROP_SMALL_P:
                continue
            src, dst, rate = CAROL_CONFUSION
            if cid == CAT_ID[src] and rng.random() < rate:
                cid, confused = CAT_ID[dst], True
        out.append(Label(cid, box, gt=lb.gt, error=lb.error, confused=confused))
    return out


def _predict(s: Spec, truth: list[Obj], protected: set[int], rng: np.random.Generator,
             avoid: list[Box]) -> list[dict]:
    """The detector's output on one picture: true objects (noisy boxes, high scores), a few
    misses and low-score false positives on the background."""
    out = []
    for k, o in enumerate(truth):
        if k not in protected and rng.random() > DETECT_P[_bucket(o.box)]:
            out.append({"miss": k})
            continue
        x, y, w, h = o.box
        n = rng.normal(0, 0.03, 4) * np.array([w, h, w, h])
        box = _clip(x + n[0], y + n[1], x + w + n[2], y + h + n[3], s.width, s.height)
        lo, hi = ERROR_TP_SCORE if k in protected else TP_SCORE
        score = rng.uniform(lo, hi)
        if s.dup_kind == "recompressed":
            score *= 0.95
        out.append({"gt": k, "category_id": o.category_id, "bbox": box, "score": score})
    n_fp = int(rng.poisson(FP_PER_IMAGE if s.kind != "ood" else 1.0))
    for _ in range(n_fp):
        box = _free_box(rng, s, avoid)
        if box is not None:
            cid = int(rng.integers(1, len(CLASSES) + 1))
            out.append({"fp": True, "category_id": cid, "bbox": box,
                        "score": rng.uniform(*FP_SCORE)})
    return out


# ============================================================================ the generator
def build(n_images: int = N_IMAGES, *, seed: int = SEED) -> dict[str, bytes]:
    """Every file of the sample dataset as {relative path: bytes}, computed in memory."""
    if not isinstance(n_images, int) or n_images < MIN_IMAGES:
        raise ValueError(f"n_images must be an integer >= {MIN_IMAGES} (room for every planted "
                         f"issue), got {n_images!r}.")
    rng = np.random.default_rng([seed, 0])
    log.info("rendering %d images", n_images)
    specs = _plan(n_images, seed, rng, _load_textures())
    errors = _plant_label_errors(specs, rng)
    by_id = sorted(specs, key=lambda s: s.image_id)

    # ---------------------------------------------------------------- pixels and bytes
    for s in specs:
        if s.kind == "scene":
            s.data = _encode(s.pixels)
        elif s.kind == "ood":
            s.data = _encode(_ood_picture(s.ood_name, s.width, s.height))
    for s in specs:
        if s.kind in ("near_dup", "exact_dup"):
            src = specs[s.source]
            if s.kind == "exact_dup":
                s.data = src.data
            elif s.dup_kind == "recompressed":
                s.data = _encode(np.asarray(_decode(src.data)), LOW_JPEG_QUALITY)
            elif s.dup_kind == "flipped":
                s.data = _encode(np.asarray(_decode(src.data).transpose(
                    Image.Transpose.FLIP_LEFT_RIGHT)))
            else:
                s.data = _encode(np.asarray(_decode(src.data).resize(
                    (s.width, s.height), Image.Resampling.LANCZOS)))
            s.objects = [Obj(o.category_id, _transform_box(o.box, s, src))
                         for o in src.objects]

    # ---------------------------------------------------------------- annotators
    ann: dict[str, dict[int, list[Label]]] = {a: {} for a in ANNOTATORS}
    for j, a in enumerate(ANNOTATORS):
        arng = np.random.default_rng([seed, 2, j])
        for s in by_id:
            if s.kind == "scene":
                ann[a][s.index] = _annotate(a, s.labels, s, arng)
        for s in by_id:  # copies carry the labels of their original, transformed
            if s.kind in ("near_dup", "exact_dup"):
                src = specs[s.source]
                ann[a][s.index] = [Label(lb.category_id, _transform_box(lb.box, s, src),
                                         gt=lb.gt, confused=lb.confused)
                                   for lb in ann[a][src.index]]
        nxt = ANN_ID_BASE[a]
        for s in by_id:
            for lb in ann[a].get(s.index, []):
                nxt += 1
                lb.ann_id = nxt

    # ---------------------------------------------------------------- model
    mrng = np.random.default_rng([seed, 3])
    preds: list[dict] = []
    misses, fps = [], []
    raw_preds: dict[int, list[dict]] = {}  # spec index -> model output, reused for exact copies
    err_gt = {(e["spec"], e["gt"]) for e in errors if e["gt"] is not None}
    seen = [s for s in by_id if s.role not in ("missing", "corrupt")]  # pictures it ran on
    for s in seen:
        if s.kind != "exact_dup":
            protected = {k for (si, k) in err_gt if si == s.index}
            avoid = [o.box for o in s.objects] + [lb.box for lb in s.labels]
            raw_preds[s.index] = _predict(s, s.objects, protected, mrng, avoid)
    for s in seen:
        # the same bytes give the same output
        out = raw_preds[s.source if s.kind == "exact_dup" else s.index]
        for p in out:
            if "miss" in p:
                o = s.objects[p["miss"]]
                misses.append({"image_id": s.image_id, "category_id": o.category_id,
                               "bbox": _round_box(o.box), "ann_ids": {
                                   a: next((lb.ann_id for lb in ann[a].get(s.index, [])
                                            if lb.gt == p["miss"]), None)
                                   for a in ANNOTATORS}})
                continue
            row = {"image_id": s.image_id, "category_id": int(p["category_id"]),
                   "bbox": _round_box(p["bbox"]), "score": round(float(p["score"]), 4)}
            if p.get("fp"):  # pred_id: the 1-based position qa.io.predictions gives it
                fps.append(dict(row, pred_index=len(preds), pred_id=len(preds) + 1))
            preds.append(row)

    # ---------------------------------------------------------------- files
    files: dict[str, bytes] = {}
    for s in by_id:
        if s.role == "missing":
            continue
        data = s.data
        if s.role == "corrupt":  # header garbled and the rest cut: no decoder can open it
            data = bytes(b ^ 0x5A for b in data[:64]) + data[64:len(data) * 2 // 5]
        files[f"images/{s.file_name}"] = data
    images_json = [{"id": s.image_id, "file_name": s.file_name, "width": s.width,
                    "height": s.height, "split": s.split} for s in by_id]
    cats_json = [{"id": c, "name": n, "supercategory": "shape"} for c, n, _ in CLASSES]
    for a in ANNOTATORS:
        rows = []
        for s in by_id:
            for lb in ann[a].get(s.index, []):
                b = _round_box(lb.box)
                rows.append({"id": lb.ann_id, "image_id": s.image_id,
                             "category_id": int(lb.category_id), "bbox": b,
                             "area": round(b[2] * b[3], 2), "iscrowd": 0})
        doc = {"info": {"description": f"dataset-qa sample data, annotator {a}",
                        "version": str(FORMAT_VERSION), "contributor": a},
               "licenses": [], "images": images_json, "categories": cats_json,
               "annotations": rows}
        files[f"annotations/{a}.json"] = _json_bytes(doc)
    files[f"predictions/{MODEL}.json"] = _json_bytes(preds)
    planted = _planted(specs, by_id, errors, ann, misses, fps, preds, n_images, seed)
    files["PLANTED.json"] = _json_bytes(planted)
    files["README.md"] = _readme(planted).encode()
    files["MANIFEST.sha256"] = _manifest(files).encode()
    return files


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1) + "\n").encode()


def _manifest(files: dict[str, bytes]) -> str:
    return "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n"
                   for p in sorted(files) if p != "MANIFEST.sha256")


def _planted(specs, by_id, errors, ann, misses, fps, preds, n_images, seed) -> dict:
    def img(s: Spec) -> dict:
        return {"image_id": s.image_id, "file_name": s.file_name, "split": s.split}

    # --- label errors with the ann_id each annotator file gave them
    err_rows = []
    for e in errors:
        s = specs[e["spec"]]
        ids = {a: next((lb.ann_id for lb in ann[a][s.index] if lb.error is not None
                        and _is_error(lb, e)), None) for a in ANNOTATORS}
        err_rows.append({
            **img(s), "kind": e["kind"], "ann_ids": ids,
            "annotators": [a for a in ANNOTATORS] if e["kind"] != "missing_box" else [],
            "true_category_id": e["true_category_id"],
            "true_category": CAT_NAME.get(e["true_category_id"]),
            "true_bbox": e["true_bbox"],
            "labelled_category_id": e["labelled_category_id"],
            "labelled_category": CAT_NAME.get(e["labelled_category_id"]),
            "labelled_bbox": e["labelled_bbox"],
        })
    err_rows.sort(key=lambda r: (r["kind"], r["image_id"]))

    # --- instance counts (truth and per annotator)
    scenes_and_copies = [s for s in by_id if s.kind in ("scene", "near_dup", "exact_dup")]
    gt_counts = {n: 0 for _, n, _ in CLASSES}
    buckets = {"small": 0, "medium": 0, "large": 0}
    for s in scenes_and_copies:
        for o in s.objects:
            gt_counts[CAT_NAME[o.category_id]] += 1
            buckets[_bucket(o.box)] += 1
    ann_counts = {a: {n: 0 for _, n, _ in CLASSES} for a in ANNOTATORS}
    for a in ANNOTATORS:
        for labs in ann[a].values():
            for lb in labs:
                ann_counts[a][CAT_NAME[lb.category_id]] += 1
    most = max(gt_counts, key=gt_counts.get)

    # --- annotator agreement with the truth, outside planted errors
    profiles = _profiles()
    for a in ANNOTATORS:
        ious, n_truth, dropped, confused = [], 0, [], []
        for s in scenes_and_copies:
            labs = {lb.gt: lb for lb in ann[a].get(s.index, []) if lb.gt is not None
                    and lb.error is None}
            bad = {e["gt"] for e in errors if e["spec"] == s.index and e["gt"] is not None}
            for k, o in enumerate(s.objects):
                if k in bad:
                    continue
                n_truth += 1
                lb = labs.get(k)
                if lb is None:
                    dropped.append({"image_id": s.image_id, "category_id": o.category_id,
                                    "bbox": _round_box(o.box)})
                    continue
                ious.append(_iou(lb.box, o.box))
                if lb.confused:
                    confused.append(lb.ann_id)
        profiles[a]["measured"] = {
            "mean_iou_vs_truth": round(float(np.mean(ious)), 4),
            "median_iou_vs_truth": round(float(np.median(ious)), 4),
            "recall_vs_truth": round(1 - len(dropped) / max(n_truth, 1), 4),
            "n_annotations": sum(len(v) for v in ann[a].values()),
        }
        if a == "carol":
            profiles[a]["dropped_small_objects"] = dropped
            profiles[a]["confused_ann_ids"] = sorted(confused)

    near = []
    for s in by_id:
        if s.kind == "near_dup":
            src = specs[s.source]
            near.append({"a": src.image_id, "b": s.image_id, "kind": s.dup_kind,
                         "file_a": src.file_name, "file_b": s.file_name, "split_a": src.split,
                         "split_b": s.split, "cross_split": src.split != s.split,
                         "size_a": [src.width, src.height], "size_b": [s.width, s.height]})
    exact = []
    for s in by_id:
        if s.kind == "exact_dup":
            src = specs[s.source]
            exact.append({"a": src.image_id, "b": s.image_id, "file_a": src.file_name,
                          "file_b": s.file_name, "split_a": src.split, "split_b": s.split,
                          "cross_split": src.split != s.split,
                          "sha256": hashlib.sha256(s.data).hexdigest()})
    near.sort(key=lambda r: r["a"])
    exact.sort(key=lambda r: r["a"])
    ood = [dict(img(s), source=f"skimage.data.{s.ood_name}", labelled=False)
           for s in by_id if s.kind == "ood"]
    corrupt = next(s for s in by_id if s.role == "corrupt")
    missing = next(s for s in by_id if s.role == "missing")
    splits = {sp: sum(1 for s in by_id if s.split == sp) for sp, _ in SPLIT_FRACTIONS}
    return {
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "n_images": n_images,
        "regenerate": "python -m qa.sample sample_data",
        "classes": [{"category_id": c, "name": n, "colour_rgb": list(col)}
                    for c, n, col in CLASSES],
        "splits": splits,
        "instances": {"truth": gt_counts, "per_annotator": ann_counts,
                      "truth_size_buckets": buckets},
        "rare_class": {"name": RARE_CLASS, "category_id": CAT_ID[RARE_CLASS],
                       "count": gt_counts[RARE_CLASS], "most_common": most,
                       "most_common_count": gt_counts[most],
                       "ratio": round(gt_counts[RARE_CLASS] / gt_counts[most], 4)},
        "near_duplicates": near,
        "exact_duplicates": exact,
        "ood_images": ood,
        "label_errors": err_rows,
        "empty_images": [img(s) for s in by_id if s.role == "empty"],
        "corrupt_file": img(corrupt) | {"how": "first 64 bytes XOR 0x5A, cut to 40 %"},
        "missing_file": img(missing),
        "annotators": profiles,
        "model": {
            "name": MODEL, "file": f"predictions/{MODEL}.json", "n_predictions": len(preds),
            "follows": "the true objects: at every planted label error it predicts the truth "
                       f"with score >= {ERROR_TP_SCORE[0]}",
            "true_positive_score": list(TP_SCORE),
            "false_positive_max_score": FP_SCORE[1],
            "no_predictions_for": [corrupt.image_id, missing.image_id],
            "misses": misses,
            "false_positives": fps,
        },
    }


def _is_error(lb: Label, e: dict) -> bool:
    return lb.error is not None and (lb.gt == e["gt"] if e["gt"] is not None else lb.gt is None)


def _profiles() -> dict:
    src, dst, rate = CAROL_CONFUSION
    return {
        "alice": {"summary": "careful: every object, boxes within +-1 px of the truth",
                  "box_noise_px": 1, "drops": None, "class_confusion": None},
        "bob": {"summary": "loose: every object, each box side moved by "
                           f"{int(BOB_SIDE_SHIFT[0] * 100)}-{int(BOB_SIDE_SHIFT[1] * 100)} % of "
                           f"the box size, outward with p={BOB_OUTWARD_P}",
                "side_shift_fraction": list(BOB_SIDE_SHIFT), "outward_p": BOB_OUTWARD_P,
                "drops": None, "class_confusion": None},
        "carol": {"summary": f"tight boxes (+-1 px) but drops {int(CAROL_DROP_SMALL_P * 100)} % "
                             f"of objects whose longer side is < {SMALL_SIDE} px and labels "
                             f"{int(rate * 100)} % of '{src}' as '{dst}'",
                  "box_noise_px": 1,
                  "drops": {"max_side_below_px": SMALL_SIDE, "p": CAROL_DROP_SMALL_P},
                  "class_confusion": {"true": src, "labelled": dst, "rate": rate}},
    }


def _readme(p: dict) -> str:
    """sample_data/README.md: the layout, the annotators and the planted issues in prose."""
    le = p["label_errors"]
    kinds = {k: sum(1 for e in le if e["kind"] == k) for k in ERROR_KINDS}
    rc, near, exact = p["rare_class"], p["near_duplicates"], p["exact_duplicates"]
    prof, model = p["annotators"], p["model"]
    inst, b = p["instances"]["truth"], p["instances"]["truth_size_buckets"]
    n_kind = {k: sum(1 for n in near if n["kind"] == k) for k in ("resized", "recompressed",
                                                                    "flipped")}
    miou = {a: prof[a]["measured"]["mean_iou_vs_truth"] for a in ANNOTATORS}
    carol = prof["carol"]
    classes = "".join(f"| {c['category_id']} | {c['name']} | {_LOOKS[c['name']]} | "
                      f"{inst[c['name']]} |\n" for c in p["classes"])
    photos = ", ".join(o["source"].split(".")[-1] for o in p["ood_images"])
    lines = [
        "# sample_data: the demo dataset with planted issues",
        "",
        f"Generated by `{p['regenerate']}` (seed {p['seed']}, {p['n_images']} images).",
        "Do not edit by hand: change `qa/sample.py` and regenerate. Re-running it reproduces",
        "every file byte for byte; `MANIFEST.sha256` lists their hashes",
        "(`sha256sum -c MANIFEST.sha256` inside this folder checks them). Every issue below is",
        "listed with its exact ids in `PLANTED.json`: the tests and the analyses of dataset-qa",
        "are scored against it.",
        "",
        "## Layout",
        "",
        "```",
        "images/{train,val,test}/000123.jpg  pictures; file name = image id, folder = split",
        "annotations/alice.json              one COCO file per annotator (file stem = name):",
        "annotations/bob.json                same images, image ids and categories in all",
        "annotations/carol.json              three; every image has a \"split\" key",
        "predictions/detector.json           one model's COCO results list",
        "                                    [{image_id, category_id, bbox, score}]",
        "PLANTED.json                        the planted issues, with ids",
        "MANIFEST.sha256                     sha256 of every other file",
        "```",
        "",
        "Load it with",
        "`qa.load(\"sample_data\", predictions=\"sample_data/predictions/detector.json\")`.",
        f"Images: {p['splits']['train']} train, {p['splits']['val']} val, "
        f"{p['splits']['test']} test.",
        "Annotation ids are disjoint per annotator file (alice from 100001, bob from 200001,",
        "carol from 300001), so the loader keeps them and the `ann_ids` in `PLANTED.json` are",
        "the ids of the loaded annotations.",
        "",
        "## The pictures",
        "",
        "Synthetic scenes at a few resolutions (320x240 to 640x480, some portrait 360x480) on",
        "gradients, smooth colour clouds, checkerboards and tinted scikit-image textures",
        "(brick, grass, gravel). Objects never overlap; each true box is the tight box of the",
        "drawn pixels.",
        "",
        "| id | class | looks like | true instances |",
        "|---|---|---|---|",
        classes.rstrip("\n"),
        "",
        f"True boxes by COCO size bucket: {b['small']} small (area < 32x32 px), "
        f"{b['medium']} medium, {b['large']} large (area > 96x96 px).",
        "",
        "## The annotators",
        "",
        f"- **alice**, {prof['alice']['summary']}. Mean IoU with the truth {miou['alice']}.",
        f"- **bob**, {prof['bob']['summary']}. Mean IoU with the truth {miou['bob']}: the",
        "  loosest annotator by far.",
        f"- **carol**, {carol['summary']}. Mean IoU with the truth {miou['carol']}, recall",
        f"  {carol['measured']['recall_vs_truth']}: {len(carol['dropped_small_objects'])} "
        f"objects missed and {len(carol['confused_ann_ids'])} rings labelled as circles",
        "  (both listed under `annotators.carol` in `PLANTED.json`).",
        "",
        "There is no ground-truth file: the truth is what the generator drew. It shows through",
        "`PLANTED.json`: the true boxes of every label error, of the model's misses and of",
        "carol's misses.",
        "",
        "## The model",
        "",
        "`predictions/detector.json` follows the true objects: slightly noisy boxes scored",
        f"{model['true_positive_score'][0]} to {model['true_positive_score'][1]}, "
        f"{len(model['misses'])} misses (mostly small objects) and "
        f"{len(model['false_positives'])} false positives on the",
        f"background (also on the photographs), all scored below "
        f"{model['false_positive_max_score']}. At every planted label error",
        f"it predicts the truth with a score of at least {ERROR_TP_SCORE[0]}, so above a 0.5 "
        "threshold it disagrees with",
        "the consensus labels only at the planted errors and at its listed misses (and with",
        "carol alone at her own misses and confusions). It has no predictions for the corrupt",
        "and the missing image.",
        "",
        "## Planted issues",
        "",
        f"- **Rare class**: `{rc['name']}` has {rc['count']} true instances, {rc['ratio']:.1%} "
        f"of the most common class `{rc['most_common']}` ({rc['most_common_count']}).",
        f"- **Near-duplicates**: {len(near)} pairs in `near_duplicates` (a = original, "
        "b = copy):",
        f"  {n_kind['resized']} resized, {n_kind['recompressed']} re-compressed at JPEG quality "
        f"{LOW_JPEG_QUALITY}, {n_kind['flipped']} flipped left-right.",
        "  The copy's labels (every annotator's) are the original's, transformed with the",
        f"  picture. {sum(1 for n in near if n['cross_split'])} copies sit in val or test while "
        "their original is in train:",
        "  split leakage.",
        f"- **Exact duplicates**: {len(exact)} pairs of byte-identical files under different "
        "names and ids",
        f"  ({sum(1 for n in exact if n['cross_split'])} across splits), with the same labels.",
        f"- **Out-of-distribution images**: {len(p['ood_images'])} real photographs from "
        "`skimage.data`",
        f"  ({photos}) among the synthetic scenes, without labels.",
        f"- **Label errors**: {len(le)} errors made identically by all three annotators: "
        "they come from",
        "  the labelling guideline, so agreement between annotators does not reveal them; the",
        f"  model does. {kinds['wrong_class']} wrong class, {kinds['missing_box']} missing "
        f"boxes, {kinds['bad_box']} boxes shifted by more",
        f"  than half their size onto background, {kinds['spurious_box']} spurious boxes on "
        "background. One error",
        "  per image; each entry gives the true and the labelled class and box, and the",
        "  `ann_ids` of the erroneous annotation in each annotator's file (null for a missing",
        "  box). Apart from its error such an image is labelled like any other.",
        f"- **Empty images**: {len(p['empty_images'])} scenes with no objects and no "
        "annotations.",
        f"- **Corrupt file**: `{p['corrupt_file']['file_name']}` (image "
        f"{p['corrupt_file']['image_id']}) has a garbled header and is cut",
        "  short; no decoder opens it.",
        f"- **Missing file**: `{p['missing_file']['file_name']}` (image "
        f"{p['missing_file']['image_id']}) is listed in every annotation",
        "  file but not on disk.",
        "",
        "Copies, photographs, empty, corrupt and missing images never carry planted label",
        "errors, and the originals of duplicates are clean scenes, so each issue can be scored",
        "on its own.",
        "",
    ]
    return "\n".join(lines)


_LOOKS = {"circle": "filled red disc or ellipse", "square": "filled blue square or rectangle",
          "triangle": "filled green triangle, any rotation", "star": "yellow five-point star",
          "ring": "purple hollow ring (annulus)"}


# ============================================================================ writing
def _is_previous_output(out: Path) -> bool:
    try:
        doc = json.loads((out / "PLANTED.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("generator") == GENERATOR


def _old_manifest_paths(out: Path) -> list[str]:
    try:
        lines = (out / "MANIFEST.sha256").read_text().splitlines()
    except OSError:
        return []
    return [ln.split("  ", 1)[1] for ln in lines if "  " in ln]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def generate(outdir: Path | str, *, n_images: int = N_IMAGES, seed: int = SEED,
             force: bool = False) -> dict:
    """Write the sample dataset into ``outdir`` and return its ``PLANTED.json`` content.

    Refuses (``FileExistsError``) a non-empty folder that is not a previous output of this
    generator unless ``force``. Files of a previous output that the new one does not contain
    (those listed in its ``MANIFEST.sha256``) are removed; nothing else is deleted.
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file; give a folder for the sample dataset.")
    previous = out.is_dir() and _is_previous_output(out)
    if out.is_dir() and any(out.iterdir()) and not previous and not force:
        raise FileExistsError(
            f"{out} is not empty and holds no previous sample output (no PLANTED.json from "
            f"{GENERATOR}); choose an empty folder or pass --force to write into it anyway.")
    old = _old_manifest_paths(out) if previous else []
    files = build(n_images, seed=seed)
    for rel in sorted(files):
        _write_atomic(out / rel, files[rel])
    root = out.resolve()
    for rel in old:
        if rel in files:
            continue
        p = (out / rel).resolve()
        if p.is_relative_to(root) and p.is_file():
            p.unlink()
            log.info("removed stale %s", rel)
    log.info("wrote %d files to %s", len(files), out)
    return json.loads(files["PLANTED.json"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qa.sample",
        description="Generate the dataset-qa demo dataset with planted, documented issues.")
    parser.add_argument("outdir", help="folder to write (e.g. sample_data)")
    parser.add_argument("--n-images", type=int, default=N_IMAGES,
                        help=f"number of images (default {N_IMAGES}, at least {MIN_IMAGES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty folder that is not a previous output")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        p = generate(args.outdir, n_images=args.n_images, seed=args.seed, force=args.force)
    except (FileExistsError, NotADirectoryError, ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2
    le = p["label_errors"]
    print(f"{args.outdir}: {p['n_images']} images, {len(p['near_duplicates'])} near-duplicate "
          f"pairs, {len(p['exact_duplicates'])} exact, {len(p['ood_images'])} OOD, {len(le)} "
          f"label errors, rare '{p['rare_class']['name']}' at {p['rare_class']['ratio']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
