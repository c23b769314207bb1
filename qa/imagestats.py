"""The one pixel pass: every image decoded once, for hashes and quality statistics.

:func:`compute_image_stats` reads each image through :mod:`qa.images` (root-confined, EXIF
orientation, bomb cap), in parallel, and records per image

* ``sha256``: the SHA-256 of the file's bytes (same bytes = exact duplicate);
* ``pixel_hash``: a BLAKE2b digest of the decoded RGB pixels and their size (same pixels under
  another encoding, or with other metadata = exact duplicate too);
* ``phash`` / ``dhash``: 64-bit perceptual hashes (imagehash's pHash and dHash), and
  ``phash_flip`` / ``dhash_flip``, the same hashes of the left-right mirrored picture, so a
  flipped copy is found by the same Hamming search;
* quality statistics on the luminance (ITU-R 601 luma, 0..255): ``brightness`` (mean),
  ``contrast`` (standard deviation), ``blur`` (variance of the 4-neighbour Laplacian: low =
  blurred), ``entropy`` (Shannon entropy of the 256-bin histogram, bits: low = near-blank),
  ``dark_share`` / ``bright_share`` (share of pixels under 20 / over 235), ``is_grayscale``
  (R, G and B never differ by more than a few levels), ``colorfulness`` (mean |R-G| + |G-B|),
  ``width``, ``height``, ``aspect`` (width / height, after EXIF orientation);
* ``error``: why an image could not be read (the other columns are then NaN / NA).

Records are kept in the content-addressed store (:mod:`qa.store`) under the file's SHA-256 and
``RECORD_KIND`` (which carries a version: a change of any formula bumps it), so a second run
reads no pixels at all: only the memoised file hashes.

Statistics are computed on the picture reduced by a whole factor to between :data:`STATS_SIDE`
and twice that on its long side (the perceptual hashes shrink to 32 x 32 anyway; blur and
entropy are then comparable between a 640 px and a 6000 px image); the pixel hash is taken on
the full decode.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qa.dataset import FILE_NAME, IMAGE_ID, SPLIT, Dataset

log = logging.getLogger(__name__)

# Version of the record: bump when a statistic's formula changes, so old records are ignored.
RECORD_KIND = "imagestats/v4"
# Statistics are computed on the image reduced by the largest whole factor that keeps its long
# side at least STATS_SIDE (a fast box filter): blur (Laplacian variance) depends on scale, so a
# working size within 1x-2x of 512 keeps it comparable across resolutions, and a 640 px
# picture is used as is.
STATS_SIDE = 512
# Luma levels under/over which a pixel counts as black / blown out (the 16..235 video range,
# with a little margin).
DARK_LEVEL, BRIGHT_LEVEL = 20, 235
# R, G and B within this many levels in all but GRAY_OUTLIER_SHARE of the pixels: a grey
# picture saved as RGB (JPEG chroma noise reaches a few levels).
GRAY_TOLERANCE = 6
GRAY_OUTLIER_SHARE = 0.001
COLOR_SIDE = 160  # long side of the reduced copy the colour statistics are taken on
# Clipped pixels: luma at most CLIP_DARK (crushed black) or at least CLIP_BRIGHT (blown out).
CLIP_DARK, CLIP_BRIGHT = 8, 247
# The picture is also summarised on a GRID x GRID grid of cells (mean luma, log sharpness,
# clipped shares), so quality can judge the labelled objects, or the best part of the picture,
# from the cached record without reading pixels again.
GRID = 16
# Sharpness of a cell: log10(1 + Laplacian variance) x SHARP_QUANT, stored as a byte.
SHARP_QUANT = 50.0

HASH_COLUMNS = ("phash", "dhash", "phash_flip", "dhash_flip")
STAT_COLUMNS = ("brightness", "contrast", "blur", "entropy", "dark_share", "bright_share",
                "colorfulness", "luma_p02", "luma_p98", "clip_dark", "clip_bright", "sharpness")
# Per-cell grids (GRID x GRID bytes, hex): mean luma, sharpness (log-quantised), shares of
# crushed and blown pixels (x 255).
GRID_COLUMNS = ("grid_luma", "grid_sharp", "grid_dark", "grid_bright")
COLUMNS = (IMAGE_ID, FILE_NAME, SPLIT, "sha256", "pixel_hash", *HASH_COLUMNS, *STAT_COLUMNS,
           *GRID_COLUMNS, "is_grayscale", "width", "height", "aspect", "error")

ProgressFn = Callable[..., None]


@dataclass(frozen=True, eq=False)
class ImageStats:
    """Per-image hashes and statistics: ``table`` has one row per image of the dataset, in its
    order, with :data:`COLUMNS` (hashes as uint64, ``pixel_hash``/``sha256`` as hex strings,
    None for unreadable images). ``n_computed`` images were decoded by this call,
    ``n_cached`` came from the store."""

    table: pd.DataFrame
    n_computed: int = 0
    n_cached: int = 0

    def __len__(self) -> int:
        return len(self.table)

    @property
    def readable(self) -> pd.DataFrame:
        """The rows of images that could be decoded."""
        return self.table[self.table["error"].isna()]


def compute_image_stats(dataset: Dataset, *, progress: ProgressFn | None = None,
                        workers: int | None = None, store=None, ray: str | None = None,
                        layout=None) -> ImageStats:
    """Decode every image of ``dataset`` once (or take its record from the store) and return
    :class:`ImageStats`. ``progress`` is called as ``progress(fraction, message)`` (the
    :mod:`qa.analyses` convention). Never raises for a bad image: its row has ``error``.
    ``ray="auto"`` or a cluster address decodes on a Ray cluster (:mod:`qa.distributed`,
    results also kept in the cluster ``layout``); the same records either way."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"compute_image_stats() needs a qa.Dataset, got {type(dataset).__name__}")
    from qa.images import DEFAULT_WORKERS
    from qa.store import default_store

    remote = None
    if ray is not None:
        from qa.distributed import cluster_run

        remote = cluster_run(ray, layout=layout)
    return _compute_image_stats(dataset, progress=progress or (lambda frac, msg: None),
                                workers=workers or DEFAULT_WORKERS,
                                store=store if store is not None else default_store(),
                                remote=remote)


def image_record(root, file_name: str) -> dict:
    """The stored record of one image file (see the module docstring), or ``{"error": why}``:
    the unit of work of the pixel pass, here and on a cluster's nodes."""
    from qa.images import read_image

    read = read_image(root, file_name)
    if not read.ok:
        return {"error": read.error}
    return _stats_of(read.image, read.size)


def _compute_image_stats(ds: Dataset, *, progress, workers: int, store,
                         remote=None) -> ImageStats:
    from qa.images import NO_ROOT, iter_images

    images = ds.images
    names = images[FILE_NAME].astype(str).tolist()
    n = len(names)
    if ds.root is None:
        hashed = pd.DataFrame({"file_name": names, "sha256": [None] * n, "error": [NO_ROOT] * n})
    else:
        progress(0.0, "hashing files")
        hashed = store.hash_files(ds.root, names, workers=workers,
                                  progress=lambda d, t: progress(0.3 * d / max(t, 1),
                                                                 "hashing files"),
                                  hasher=remote.hash_files if remote is not None else None)
    shas = [s if isinstance(s, str) else None for s in hashed["sha256"].tolist()]
    errors = [e if isinstance(e, str) else None for e in hashed["error"].tolist()]
    known = sorted({s for s in shas if s})
    records = store.get_records(RECORD_KIND, known) if known else {}
    todo: dict[str, int] = {}  # sha -> first row index with that content
    for i, s in enumerate(shas):
        if s and s not in records and s not in todo:
            todo[s] = i
    n_cached = sum(1 for s in shas if s and s in records)

    def one(i: int) -> dict:
        return image_record(ds.root, names[i])

    fresh: dict[str, dict] = {}
    rows = list(todo.values())
    total = len(rows)
    if remote is not None and rows:  # a cluster computes them (or its layout has them)
        results = remote.image_records(ds.root, [names[i] for i in rows], list(todo),
                                       RECORD_KIND)
    else:
        results = iter_images(rows, one, workers=workers)
    for k, (sha, rec) in enumerate(zip(todo, results)):
        # an undecodable file stays undecodable: its reason is cached like any record
        fresh[sha] = rec
        if "error" in rec:
            errors[todo[sha]] = rec["error"]
        records[sha] = rec
        if (k + 1) % 64 == 0 or k + 1 == total:
            progress(0.3 + 0.7 * (k + 1) / total, f"reading pixels {k + 1:,}/{total:,}")
    if fresh:
        store.put_records(RECORD_KIND, fresh)
    progress(1.0, "image statistics done")
    table = _table(ds, shas, errors, records)
    return ImageStats(table=table, n_computed=len(todo), n_cached=n_cached)


def _table(ds: Dataset, shas, errors, records) -> pd.DataFrame:
    n = len(shas)
    cols: dict[str, list] = {c: [None] * n for c in COLUMNS[3:]}
    for i, s in enumerate(shas):
        rec = records.get(s) if s else None
        cols["sha256"][i] = s
        if rec is None or "error" in rec:
            cols["error"][i] = (rec or {}).get("error") or errors[i] or "not read"
            continue
        for c in COLUMNS[4:-1]:
            cols[c][i] = rec.get(c)
    out = pd.DataFrame({IMAGE_ID: ds.images[IMAGE_ID].to_numpy(dtype=np.int64),
                        FILE_NAME: ds.images[FILE_NAME].astype(str).to_numpy(),
                        SPLIT: ds.images[SPLIT].to_numpy() if SPLIT in ds.images else None})
    for c in COLUMNS[3:]:
        v = cols[c]
        if c in HASH_COLUMNS:
            arr = np.array([int(x, 16) if x else 0 for x in v], dtype=np.uint64)
            out[c] = arr
        elif c in STAT_COLUMNS or c == "aspect":
            out[c] = pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").astype(float)
        elif c in ("width", "height"):
            out[c] = pd.array(v, dtype="Int64")
        elif c == "is_grayscale":
            out[c] = pd.array(v, dtype="boolean")
        else:
            out[c] = pd.Series(v, dtype=object)
    return out


# ------------------------------------------------------------------------------ one image
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _stats_of(im, size: tuple[int, int]) -> dict:
    """The record of one decoded RGB PIL image (see the module docstring)."""
    import imagehash
    from PIL import Image

    rgb = np.asarray(im)
    h_full, w_full = rgb.shape[:2]
    pixel_hash = hashlib.blake2b(rgb.tobytes(), digest_size=16,
                                 person=b"qa-pixels").hexdigest() + f"-{w_full}x{h_full}"
    factor = max(1, max(im.size) // STATS_SIDE)
    work = im.reduce(factor) if factor > 1 else im  # box filter by a whole factor: fast
    g = work.convert("L")  # ITU-R 601 luma, as PIL and OpenCV compute it
    gray8 = np.asarray(g)
    gray = gray8.astype(np.float32)
    lap = _laplacian_var(gray)
    hist = np.bincount(gray8.ravel(), minlength=256)
    p = hist[hist > 0] / gray8.size
    entropy = float(-(p * np.log2(p)).sum())
    # colour needs no detail: a box-reduced copy of about COLOR_SIDE px is enough (and 20x
    # cheaper than the full picture)
    k = max(1, max(work.size) // COLOR_SIDE)
    c = np.asarray(work.reduce(k) if k > 1 else work).astype(np.int16)
    rg = np.abs(c[..., 0] - c[..., 1])
    gb = np.abs(c[..., 1] - c[..., 2])
    spread = np.maximum(np.maximum(rg, gb), np.abs(c[..., 0] - c[..., 2]))
    is_gray = bool((spread > GRAY_TOLERANCE).mean() <= GRAY_OUTLIER_SHARE)
    colorfulness = float((rg + gb).mean())
    # perceptual hashes: imagehash on one grey thumbnail per hash size, and on its mirror
    small_p = g.resize((32, 32), Image.LANCZOS)  # no reducing_gap: copies of other sizes
    # must shrink the same way, or a resized copy drifts by several bits
    small_d = g.resize((9, 8), Image.LANCZOS)
    mirror = Image.Transpose.FLIP_LEFT_RIGHT
    w, h = size
    grids = _grids(gray, gray8)
    lo, hi = np.percentile(gray8, [2, 98])
    return {
        "luma_p02": float(lo),
        "luma_p98": float(hi),
        "clip_dark": float((gray8 <= CLIP_DARK).mean()),
        "clip_bright": float((gray8 >= CLIP_BRIGHT).mean()),
        "sharpness": grids.pop("sharpness"),
        **grids,
        "pixel_hash": pixel_hash,
        "phash": _hex(imagehash.phash(small_p)),
        "dhash": _hex(imagehash.dhash(small_d)),
        "phash_flip": _hex(imagehash.phash(small_p.transpose(mirror))),
        "dhash_flip": _hex(imagehash.dhash(small_d.transpose(mirror))),
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "blur": lap,
        "entropy": entropy,
        "dark_share": float((gray < DARK_LEVEL).mean()),
        "bright_share": float((gray > BRIGHT_LEVEL).mean()),
        "colorfulness": colorfulness,
        "is_grayscale": is_gray,
        "width": int(w),
        "height": int(h),
        "aspect": float(w / h) if h else None,
    }


def _grids(gray: np.ndarray, gray8: np.ndarray) -> dict:
    """The GRID x GRID cell summaries (hex bytes) and ``sharpness``: the 90th percentile of the
    cells' Laplacian variance, i.e. how sharp the sharpest parts are (a product on a plain
    background is sharp where the product is)."""
    h, w = gray.shape
    ys = np.linspace(0, h, GRID + 1).astype(int)
    xs = np.linspace(0, w, GRID + 1).astype(int)
    luma = np.zeros((GRID, GRID), np.uint8)
    sharp = np.zeros((GRID, GRID), np.uint8)
    dark = np.zeros((GRID, GRID), np.uint8)
    bright = np.zeros((GRID, GRID), np.uint8)
    lap_vars = []
    for i in range(GRID):
        for j in range(GRID):
            c = gray[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            c8 = gray8[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            if not c.size:
                continue
            luma[i, j] = int(round(float(c.mean())))
            v = _laplacian_var(c)
            lap_vars.append(v)
            sharp[i, j] = min(255, int(round(np.log10(v + 1) * SHARP_QUANT)))
            dark[i, j] = int(round(255 * float((c8 <= CLIP_DARK).mean())))
            bright[i, j] = int(round(255 * float((c8 >= CLIP_BRIGHT).mean())))
    return {"grid_luma": luma.tobytes().hex(), "grid_sharp": sharp.tobytes().hex(),
            "grid_dark": dark.tobytes().hex(), "grid_bright": bright.tobytes().hex(),
            # cells of a tiny picture have no interior: its sharpness is the whole picture's
            "sharpness": (float(np.percentile(lap_vars, 90)) if min(h, w) >= 3 * GRID
                          else _laplacian_var(gray))}


def grid_array(value) -> np.ndarray | None:
    """A GRID x GRID uint8 array from a record's hex grid (None when absent)."""
    if not isinstance(value, str) or len(value) != 2 * GRID * GRID:
        return None
    return np.frombuffer(bytes.fromhex(value), np.uint8).reshape(GRID, GRID)


def _laplacian_var(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (OpenCV's ``Laplacian(ksize=1)``) over the
    interior pixels; 0 for an image under 3 x 3."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    lap = (gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
           - 4.0 * gray[1:-1, 1:-1])
    return float(lap.var())


def _hex(h) -> str:
    """A 64-bit imagehash as 16 hex digits (bit order: imagehash's row-major flattening)."""
    return f"{int(''.join('1' if b else '0' for b in h.hash.flatten()), 2):016x}"


def hash_bits(values: np.ndarray) -> np.ndarray:
    """uint64 hashes as (n, 8) uint8 rows (big-endian), the layout faiss binary indexes read."""
    v = np.ascontiguousarray(np.asarray(values, dtype=np.uint64).astype(">u8"))
    return v.view(np.uint8).reshape(-1, 8)
