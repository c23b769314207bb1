"""CVAT for images 1.1 XML.

``<annotations><meta><task>`` (or ``<job>`` / ``<project>``) holds the ``<labels>``, the
``<owner><username>`` and the ``<subset>``; each ``<image id name width height [subset]>``
holds ``<box label xtl ytl xbr ybr occluded>``, ``<polygon label points="x,y;x,y...">`` and
``<tag label>`` (an image-level label). CVAT coordinates are continuous pixels, so a box is
``x = xtl, w = xbr - xtl``. A polygon keeps its points as a COCO ``segmentation``
(``[[x1, y1, x2, y2, ...]]``) and its bbox from the points. ``occluded`` is kept as an int
column.

A folder (``annotations/*.xml`` or ``*.xml``) holds one file per annotator or job: the file
stem names the annotator. A single file is attributed to the task owner's username, else to
``"annotator"``. Images are matched across files by name; ids are 1..n by name.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    ANNOTATOR,
    DEFAULT_ANNOTATOR,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    NAME,
    SEGMENTATION,
    SPLIT,
    WIDTH,
    Dataset,
    DatasetError,
    H,
    W,
    X,
    Y,
)
from qa.io._common import (
    IssueLog,
    categories_by_name,
    expect,
    ids_by_file_name,
    named_box_annotations,
    parse_xml,
)
from qa.io.coco import _guess_root, split_from_name

log = logging.getLogger(__name__)

OCCLUDED = "occluded"
_SUPPORTED = ("box", "polygon", "tag")


def _float(v: str | None) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return f if np.isfinite(f) else None


def _int(v: str | None) -> int | None:
    f = _float(v)
    return int(f) if f is not None else None


def _meta(doc):
    """(label names, owner username, subset) from <meta>."""
    meta = doc.find("meta")
    labels, owner, subset = [], None, None
    if meta is None:
        return labels, owner, subset
    for lab in meta.iter("label"):
        n = lab.findtext("name")
        if n and n.strip():
            labels.append(n.strip())
    for node in ("task", "job", "project"):
        t = meta.find(node)
        if t is None:
            continue
        owner = owner or (t.findtext("owner/username") or "").strip() or None
        sub = (t.findtext("subset") or "").strip()
        subset = subset or (split_from_name(sub) if sub else None)
    return labels, owner, subset


def _read_file(path: Path, annotator: str | None, issues: IssueLog):
    """(images, rows, label names, owner) of one CVAT XML file."""
    doc = parse_xml(path)
    expect(doc.tag == "annotations", path,
           f"expected a CVAT <annotations> root element, got <{doc.tag}>. Export the task as "
           "'CVAT for images 1.1'.")
    labels, owner, subset = _meta(doc)
    known = set(labels)  # empty when the file has no <meta>: then every label is accepted
    who = annotator or owner or DEFAULT_ANNOTATOR
    image_els = doc.findall("image")
    if not image_els and doc.find("track") is not None:
        raise DatasetError(f"{path}: this is a 'CVAT for video' export (<track> elements). "
                           "Export the task as 'CVAT for images 1.1'.")
    images, rows = [], []
    skipped: dict[str, list] = {}  # unsupported shape -> [count, first item]
    for k, im in enumerate(image_els):
        name = (im.get("name") or "").strip().replace("\\", "/")
        if not name:
            issues.error("malformed_image",
                         f"{path}: <image> #{k} (id {im.get('id')!r}) has no name; skipped "
                         "with its shapes.")
            continue
        sub = im.get("subset")
        images.append({FILE_NAME: name, WIDTH: _int(im.get("width")),
                       HEIGHT: _int(im.get("height")),
                       SPLIT: split_from_name(sub) if sub else subset})
        for j, sh in enumerate(im):
            tag = sh.tag
            label = (sh.get("label") or "").strip()
            item = f"{path}: image {name!r} <{tag}> #{j}"
            if tag not in _SUPPORTED:
                skipped.setdefault(tag, [0, item])[0] += 1
                continue
            if not label:
                issues.error("malformed_annotation",
                             f"{item} has no label; quarantined. Give it a label.")
                continue
            if known and label not in known:
                close = difflib.get_close_matches(label, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                issues.error("unknown_category",
                             f"{item}: label {label!r} is not among the file's <labels> "
                             f"({', '.join(sorted(known)[:10])}); quarantined. {hint}Fix the "
                             "label, or add it to the task's labels and export again.")
                continue
            seg = None
            if tag == "tag":
                box = (np.nan, np.nan, np.nan, np.nan)
            elif tag == "box":
                v = [_float(sh.get(a)) for a in ("xtl", "ytl", "xbr", "ybr")]
                if any(t is None for t in v):
                    issues.error("malformed_annotation",
                                 f"{item} ({label}) needs numeric xtl, ytl, xbr, ybr; "
                                 "quarantined. Fix those attributes.")
                    continue
                box = (v[0], v[1], v[2] - v[0], v[3] - v[1])
            else:
                try:
                    pts = np.array([[float(c) for c in p.split(",")]
                                    for p in (sh.get("points") or "").split(";") if p.strip()],
                                   dtype=np.float64)
                    ok = pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 3 and \
                        np.isfinite(pts).all()
                except ValueError:
                    ok = False
                if not ok:
                    issues.error("malformed_annotation",
                                 f"{item} ({label}) needs points 'x1,y1;x2,y2;...' with at "
                                 "least 3 numeric points; quarantined.")
                    continue
                x0, y0 = pts.min(axis=0)
                x1, y1 = pts.max(axis=0)
                box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
                seg = [pts.ravel().tolist()]
            rows.append({FILE_NAME: name, ANNOTATOR: who, NAME: label, X: box[0], Y: box[1],
                         W: box[2], H: box[3], OCCLUDED: _int(sh.get("occluded")) or 0,
                         SEGMENTATION: seg})
    for tag, (n, first) in skipped.items():
        issues.warning("unsupported_shape",
                       f"{path}: {n} CVAT <{tag}> shape{'s' if n != 1 else ''} skipped (first: "
                       f"{first.split(': ', 1)[1]}); box, polygon and tag are read. Export "
                       f"the {tag}s as polygons to check them here.")
    return images, rows, labels, who


def read(path: Path | str, *, image_root=None) -> Dataset:
    """Read a CVAT for images 1.1 file, or a folder of one file per annotator."""
    path = Path(path)
    issues = IssueLog()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        ann_dir = path / "annotations" if (path / "annotations").is_dir() else path
        files = sorted(ann_dir.glob("*.xml"))
        if not files:
            from qa.io.layout import found

            raise DatasetError(f"{path}: no CVAT *.xml files found (looked in annotations/ and "
                               f"the folder itself). {found(path)}")
    else:
        raise DatasetError(f"{path}: no such file or directory. Check the path.")
    images: dict[str, dict] = {}
    rows: list[dict] = []
    labels: list[str] = []
    annotators: list[str] = []
    for f in files:
        imgs, r, labs, who = _read_file(f, f.stem if len(files) > 1 else None, issues)
        annotators.append(who)
        for im in imgs:
            cur = images.setdefault(im[FILE_NAME], dict(im))
            for k in (WIDTH, HEIGHT, SPLIT):
                if cur[k] is None:
                    cur[k] = im[k]
                elif im[k] is not None and cur[k] != im[k] and k != SPLIT:
                    issues.warning("size_mismatch",
                                   f"{f}: image {im[FILE_NAME]!r} has {k} {im[k]} but another "
                                   f"file says {cur[k]}; the first is kept.")
        rows += r
        labels += labs
    ids = ids_by_file_name(images)
    fns = sorted(images)
    imgs = pd.DataFrame({
        IMAGE_ID: [ids[f] for f in fns], FILE_NAME: fns,
        WIDTH: pd.array([images[f][WIDTH] for f in fns], dtype="Int64"),
        HEIGHT: pd.array([images[f][HEIGHT] for f in fns], dtype="Int64"),
        SPLIT: [images[f][SPLIT] for f in fns],
    })
    cat_ids, cats = categories_by_name(sorted(set(labels) | {r[NAME] for r in rows}))
    a = pd.DataFrame(rows, columns=[FILE_NAME, ANNOTATOR, NAME, X, Y, W, H, OCCLUDED,
                                    SEGMENTATION])
    anns = named_box_annotations(a, ids, cat_ids)
    anns[OCCLUDED] = a[OCCLUDED].astype("int64")
    if a[SEGMENTATION].notna().any():
        anns[SEGMENTATION] = a[SEGMENTATION].tolist()
    root = _guess_root(files[0], fns, image_root)
    return Dataset(images=imgs, categories=cats, annotations=anns, root=root, format="cvat",
                   name=path.stem if path.is_file() else path.name,
                   annotators=tuple(dict.fromkeys(annotators)), load_issues=issues.frame())
