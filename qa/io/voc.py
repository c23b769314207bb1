"""Pascal VOC: ``Annotations/*.xml`` (one file per image), ``JPEGImages/``, and the splits in
``ImageSets/Main/{train,val,test}.txt`` (one image id, the file stem, per line).

Coordinate convention
---------------------
VOC boxes are 1-based and inclusive: a box covering pixel columns 0..9 (0-based) is written
``xmin=1, xmax=10``. In the Dataset (COCO xywh, 0-based, exclusive right edge) that box is
``x = xmin - 1``, ``w = xmax - xmin + 1`` (likewise y / h). The writer in
``tests/io/writers.py`` inverts it (``xmin = x + 1``, ``xmax = x + w``) so boxes round-trip
exactly.

``difficult`` and ``truncated`` are kept as int annotation columns (0 when absent); the image
size comes from ``<size>`` (missing or 0 means unknown: probing fills it from the header).
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    DEFAULT_ANNOTATOR,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    NAME,
    SPLIT,
    SPLITS,
    SUPERCATEGORY,
    WIDTH,
    Dataset,
    DatasetError,
    H,
    W,
    X,
    Y,
)
from qa.io._common import IssueLog, expect, ids_by_file_name, parse_xml, read_bytes
from qa.paths import is_within, lexically_inside

log = logging.getLogger(__name__)

DIFFICULT = "difficult"
TRUNCATED = "truncated"
IMAGE_DIR = "JPEGImages"


def _text(el, tag: str) -> str | None:
    if el is None:
        return None
    c = el.find(tag)
    if c is None or c.text is None:
        return None
    return c.text.strip() or None


def _int_or(v: str | None, default):
    if v is None:
        return default
    try:
        f = float(v)
    except ValueError:
        return default
    return int(f) if np.isfinite(f) else default


def _splits(root: Path, issues: IssueLog) -> dict[str, str]:
    """image stem -> split, from ImageSets/Main/{train,val,test}.txt (first listed wins)."""
    out: dict[str, str] = {}
    main = root / "ImageSets" / "Main"
    for split in SPLITS:
        f = main / f"{split}.txt"
        if not f.is_file():
            continue
        for ln in read_bytes(f).decode("utf-8", errors="replace").splitlines():
            parts = ln.split()
            if not parts:
                continue
            stem = parts[0]
            if stem in out and out[stem] != split:
                issues.warning("image_in_two_splits",
                               f"{f}: image {stem!r} is also listed in {out[stem]}.txt; kept "
                               f"in '{out[stem]}'. Remove it from one split.")
                continue
            out[stem] = split
    return out


def _read_one(xml: Path, root: Path, issues: IssueLog, rows: list, has_image_dir: bool):
    """The image record of one annotation file; appends its objects to ``rows``."""
    doc = parse_xml(xml)
    expect(doc.tag == "annotation", xml,
           f"expected a VOC <annotation> root element, got <{doc.tag}>. Is this a VOC file?")
    fname = _text(doc, "filename") or f"{xml.stem}.jpg"
    fname = fname.replace("\\", "/")
    # the path rule: a name that leaves the image folder is never looked up on disk (the
    # probe then reports it as unsafe_path)
    safe = has_image_dir and lexically_inside(root / IMAGE_DIR, fname) is not None \
        and is_within(root, root / IMAGE_DIR)
    if not Path(fname).suffix and safe:  # some tools write the id without extension
        found = sorted((root / IMAGE_DIR).glob(f"{glob.escape(fname)}.*"))
        fname = found[0].relative_to(root / IMAGE_DIR).as_posix() if found else f"{fname}.jpg"
    file_name = f"{IMAGE_DIR}/{fname}" if has_image_dir else fname
    size = doc.find("size")
    w = _int_or(_text(size, "width"), None)
    h = _int_or(_text(size, "height"), None)
    image = {FILE_NAME: file_name, WIDTH: w or None, HEIGHT: h or None, "_stem": xml.stem}
    for k, obj in enumerate(doc.findall("object")):
        name = _text(obj, "name")
        bb = obj.find("bndbox")
        what = f"{xml}: object {k} ({name or 'no name'})"
        if name is None:
            issues.error("malformed_annotation",
                         f"{what} has no <name>; quarantined. Add the class name.")
            continue
        if bb is None:
            issues.error("malformed_annotation",
                         f"{what} has no <bndbox>; quarantined. Add xmin, ymin, xmax, ymax.")
            continue
        vals, bad = [], []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            t = _text(bb, tag)
            try:
                v = float(t) if t is not None else None
            except ValueError:
                v = None
            if v is None or not np.isfinite(v):
                bad.append(f"<{tag}> ({t!r})")
            vals.append(v)
        if bad:
            issues.error("malformed_annotation",
                         f"{what}: <bndbox> needs numeric " + ", ".join(bad)
                         + "; quarantined. Fix those values.")
            continue
        xmin, ymin, xmax, ymax = vals
        rows.append({
            FILE_NAME: file_name, NAME: name,
            # 1-based inclusive -> 0-based xywh (see the module doc)
            X: xmin - 1.0, Y: ymin - 1.0, W: xmax - xmin + 1.0, H: ymax - ymin + 1.0,
            DIFFICULT: _int_or(_text(obj, "difficult"), 0),
            TRUNCATED: _int_or(_text(obj, "truncated"), 0),
        })
    return image


def read(path: Path | str, *, image_root=None) -> Dataset:
    """Read a Pascal VOC folder (or one annotation .xml) into a Dataset."""
    path = Path(path)
    issues = IssueLog()
    if path.is_file():
        xmls = [path]
        root = path.parent.parent if path.parent.name == "Annotations" else path.parent
    elif path.is_dir():
        ann_dir = path / "Annotations"
        expect(ann_dir.is_dir(), path, "no Annotations/ folder: not a Pascal VOC dataset.")
        xmls = sorted(ann_dir.glob("*.xml"))
        expect(bool(xmls), ann_dir, "no *.xml annotation files found.")
        root = path
    else:
        raise DatasetError(f"{path}: no such file or directory. Check the path.")
    has_image_dir = (root / IMAGE_DIR).is_dir()
    splits = _splits(root, issues)
    rows: list[dict] = []
    images = []
    for x in xmls:
        images.append(_read_one(x, root, issues, rows, has_image_dir))
    imgs = pd.DataFrame(images, columns=[FILE_NAME, WIDTH, HEIGHT, "_stem"])
    dup = imgs[FILE_NAME].duplicated(keep="first")
    for fn in imgs.loc[dup, FILE_NAME].head(20):
        issues.warning("duplicate_image",
                       f"{root}: several annotation files name the image {fn!r}; their objects "
                       "are all kept on one image. Give each image one annotation file.")
    imgs = imgs[~dup]
    ids = ids_by_file_name(imgs[FILE_NAME])
    imgs.insert(0, IMAGE_ID, imgs[FILE_NAME].map(ids).astype("int64"))
    imgs[SPLIT] = imgs["_stem"].map(splits)
    imgs = imgs.drop(columns="_stem").sort_values(IMAGE_ID, ignore_index=True)

    names = sorted({r[NAME] for r in rows})
    cat_ids = {n: i + 1 for i, n in enumerate(names)}
    cats = pd.DataFrame({CATEGORY_ID: list(cat_ids.values()), NAME: names,
                         SUPERCATEGORY: [None] * len(names)})
    a = pd.DataFrame(rows, columns=[FILE_NAME, NAME, X, Y, W, H, DIFFICULT, TRUNCATED])
    anns = pd.DataFrame({
        ANN_ID: np.arange(1, len(a) + 1, dtype=np.int64),
        IMAGE_ID: a[FILE_NAME].map(ids).astype("int64"),
        CATEGORY_ID: a[NAME].map(cat_ids).astype("int64"),
        ANNOTATOR: DEFAULT_ANNOTATOR,
        X: a[X].astype("float64"), Y: a[Y].astype("float64"),
        W: a[W].astype("float64"), H: a[H].astype("float64"),
        DIFFICULT: a[DIFFICULT].astype("int64"), TRUNCATED: a[TRUNCATED].astype("int64"),
    })
    root = Path(image_root) if image_root is not None else root
    return Dataset(images=imgs, categories=cats, annotations=anns, root=root, format="voc",
                   name=path.stem if path.is_file() else path.name,
                   annotators=(DEFAULT_ANNOTATOR,), load_issues=issues.frame())
