"""Pascal VOC: ``Annotations/*.xml`` (one file per image), ``JPEGImages/``, and the splits in
``ImageSets/Main/{train,val,test,trainval}.txt`` (one image id, the file stem, per line).
A flat folder of VOC XML files (LabelImg's default: no ``Annotations/``, images beside the
XML files, in ``images/`` or ``JPEGImages/``, or under ``image_root``) is read too. An image
named ``a.jpg`` that exists only as ``a.png`` (or another image type) is found.

Coordinate convention (``voc_coordinates``)
-------------------------------------------
``"one_based"`` (the VOC devkit's, and Detectron2's): boxes are 1-based and inclusive, so a box
covering pixel columns 0..9 (0-based) is written ``xmin=1, xmax=10``. In the Dataset (COCO
xywh, 0-based, exclusive right edge) that box is ``x = xmin - 1``, ``w = xmax - xmin + 1``
(likewise y / h). The writer in ``tests/io/writers.py`` inverts it (``xmin = x + 1``,
``xmax = x + w``) so boxes round-trip exactly.

``"zero_based"`` (CVAT / Datumaro exports): ``xmin`` is already the 0-based left edge and
``xmax`` the exclusive right edge, so ``x = xmin``, ``w = xmax - xmin``.

``"auto"`` (default): zero-based for a file that says it is a Datumaro/CVAT export (its
``<source>`` holds ``<annotation>Unknown</annotation><image>Unknown</image>``, which only
Datumaro writes), one-based (the devkit convention) otherwise. A load issue (info) says when
a file was read zero-based.

``difficult`` and ``truncated`` are kept as int annotation columns (0 when absent); the image
size comes from ``<size>`` (missing or 0 means unknown: probing fills it from the header).
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    DEFAULT_ANNOTATOR,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    NAME,
    SPLIT,
    SPLITS,
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
    is_dir,
    is_file,
    named_box_annotations,
    parse_xml,
    read_bytes,
)
from qa.paths import is_within, lexically_inside

log = logging.getLogger(__name__)

DIFFICULT = "difficult"
TRUNCATED = "truncated"
IMAGE_DIR = "JPEGImages"
VOC_COORDINATES = ("auto", "one_based", "zero_based")
# Where a flat folder's images may be, relative to it ("" = beside the XML files).
FLAT_IMAGE_DIRS = ("", "images", "JPEGImages")
# Image types tried when the named file is missing (a VOC set with PNG images says .jpg).
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


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
    """image stem -> split, from ImageSets/Main/{train,val,test}.txt (first listed wins); a
    set with only ``trainval.txt`` (no train.txt / val.txt) gets split 'trainval'."""
    out: dict[str, str] = {}
    main = root / "ImageSets" / "Main"
    lists = [(s, main / f"{s}.txt") for s in SPLITS]
    if not any(is_file(f) for s, f in lists if s in ("train", "val")):
        lists.append(("trainval", main / "trainval.txt"))
    for split, f in lists:
        if not is_file(f) or not is_within(root, f):
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


def _is_datumaro(doc) -> bool:
    """Datumaro (CVAT's exporter) writes <source> with annotation and image 'Unknown'."""
    src = doc.find("source")
    return src is not None and _text(src, "annotation") == "Unknown" \
        and _text(src, "image") == "Unknown"


def _image_name(fname: str, root: Path, dirs: tuple[str, ...]) -> str:
    """The file name (relative to ``root``) of the image ``fname`` names: the first of
    ``dirs`` that holds it, or the same stem with another image suffix; else ``dirs[0]/fname``
    (reported missing by validation). A name that leaves the folder is never looked up (the
    path rule of :mod:`qa.paths`; the probe reports it as unsafe_path)."""
    def rel(d: str, name: str) -> str:
        return f"{d}/{name}" if d else name

    stem, suffix = posixpath.splitext(fname)
    for d in dirs:
        base = root / d if d else root
        if lexically_inside(base, fname) is None or not is_within(root, base):
            return rel(dirs[0], fname)
        if suffix and is_file(base / fname):
            return rel(d, fname)
    for d in dirs:
        base = root / d if d else root
        for suf in _IMAGE_SUFFIXES:
            for cand in (stem + suf, stem + suf.upper()):
                if cand != fname and is_file(base / cand):
                    return rel(d, cand)
    first = next((d for d in dirs if is_dir(root / d if d else root)), dirs[0])
    return rel(first, fname if suffix else f"{fname}.jpg")


def _hinted_dirs(doc, xml: Path, root: Path, dirs: tuple[str, ...]) -> tuple[str, ...]:
    """Folders (relative to ``root``) to look for the image of one LabelImg/Roboflow XML
    file, most likely first: the XML's own folder, the ``<folder>`` it names, and the trailing
    folders of its ``<path>`` (written on the labeller's machine: ``/Users/me/raccoon/images/
    a.jpg`` hints ``images/``), then ``dirs``. Hints are only followed inside the root."""
    out = []
    try:
        own = xml.parent.relative_to(root).as_posix()
    except ValueError:
        own = None
    hint_dirs = []
    folder = (_text(doc, "folder") or "").replace("\\", "/").strip("/")
    if folder:
        hint_dirs.append(folder)
    path = (_text(doc, "path") or "").replace("\\", "/")
    parts = [p for p in path.split("/") if p][:-1]
    hint_dirs += ["/".join(parts[k:]) for k in range(len(parts) - 1, -1, -1)][:4]
    if own is not None:
        out.append("" if own == "." else own)
    for d in hint_dirs:
        if lexically_inside(root, d) is not None and is_dir(root / d) and is_within(root, root / d):
            out.append(d)
    return tuple(dict.fromkeys(out + list(dirs)))


def _read_one(xml: Path, root: Path, issues: IssueLog, rows: list, dirs: tuple[str, ...],
              coordinates: str, hints: bool = False):
    """The image record of one annotation file; appends its objects to ``rows``."""
    doc = parse_xml(xml)
    expect(doc.tag == "annotation", xml,
           f"expected a VOC <annotation> root element, got <{doc.tag}>. Is this a VOC file?")
    zero_based = coordinates == "zero_based" or (coordinates == "auto" and _is_datumaro(doc))
    fname = (_text(doc, "filename") or f"{xml.stem}.jpg").replace("\\", "/")
    if hints:
        dirs = _hinted_dirs(doc, xml, root, dirs)
    file_name = _image_name(fname, root, dirs)
    size = doc.find("size")
    w = _int_or(_text(size, "width"), None)
    h = _int_or(_text(size, "height"), None)
    image = {FILE_NAME: file_name, WIDTH: w or None, HEIGHT: h or None, "_stem": xml.stem,
             "_zero_based": zero_based}
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
        # see the module doc: devkit 1-based inclusive, or CVAT's 0-based exclusive
        shift = 0.0 if zero_based else 1.0
        rows.append({
            FILE_NAME: file_name, NAME: name,
            X: xmin - shift, Y: ymin - shift, W: xmax - xmin + shift, H: ymax - ymin + shift,
            DIFFICULT: _int_or(_text(obj, "difficult"), 0),
            TRUNCATED: _int_or(_text(obj, "truncated"), 0),
        })
    return image


def _annotation_files(path: Path) -> tuple[list[Path], bool, dict[Path, str]]:
    """(XML files, flat?, XML -> split) of a VOC folder: the devkit's ``Annotations/``;
    LabelImg's ``annotations/`` (any case) with the images in ``images/``; Roboflow's split
    folders holding each image's XML beside it; or the XML files of the folder itself."""
    from qa.io._splits import split_folders
    from qa.io.layout import found as found_here

    def xmls_in(d: Path) -> list[Path]:
        return [x for x in sorted(d.glob("*.xml")) if is_within(path, x)]

    ann_dir = path / "Annotations"
    if is_dir(ann_dir):
        xmls = xmls_in(ann_dir)
        expect(bool(xmls), ann_dir, "no *.xml annotation files in Annotations/. "
                                    + found_here(path))
        return xmls, False, {}
    other = [d for d in sorted(path.iterdir()) if is_dir(d) and d.name.lower() == "annotations"]
    for d in other:
        if xmls_in(d):
            return xmls_in(d), True, {}
    by_split = {x: s for s, d in split_folders(path) for x in xmls_in(d)}
    if by_split:
        return list(by_split), True, by_split
    xmls = xmls_in(path)
    expect(bool(xmls), path, "no VOC XML files in Annotations/, annotations/, split folders "
                             "(train/*.xml) or the folder itself. "
                             + found_here(path))
    return xmls, True, {}


def read(path: Path | str, *, image_root=None, voc_coordinates: str = "auto") -> Dataset:
    """Read a Pascal VOC folder (``Annotations/``, or a flat folder of XML files) or one
    annotation .xml into a Dataset. ``voc_coordinates``: see the module doc."""
    if voc_coordinates not in VOC_COORDINATES:
        raise ValueError(f"voc_coordinates must be one of {VOC_COORDINATES}, got "
                         f"{voc_coordinates!r}.")
    path = Path(path)
    issues = IssueLog()
    hints = False
    xml_split: dict[Path, str] = {}
    if path.is_file():
        xmls = [path]
        root = path.parent.parent if path.parent.name == "Annotations" else path.parent
        flat = path.parent.name != "Annotations"
        hints = flat
    elif path.is_dir():
        xmls, flat, xml_split = _annotation_files(path)
        hints = flat
        root = path
    else:
        raise DatasetError(f"{path}: no such file or directory. Check the path.")
    dirs = (IMAGE_DIR,) if is_dir(root / IMAGE_DIR) and not flat else (
        FLAT_IMAGE_DIRS if flat else ("",))
    splits = _splits(root, issues)
    rows: list[dict] = []
    images = []
    for x in xmls:
        im = _read_one(x, root, issues, rows, dirs, voc_coordinates, hints=hints)
        im["_split"] = xml_split.get(x)
        images.append(im)
    n_zero = sum(im["_zero_based"] for im in images)
    if n_zero and voc_coordinates == "auto":
        issues.add("info", "voc_coordinates",
                   f"{root}: {n_zero} of {len(images)} annotation files are CVAT/Datumaro "
                   "exports and were read with 0-based coordinates (x = xmin); the others with "
                   "the VOC devkit's 1-based ones (x = xmin - 1). Pass "
                   "voc_coordinates='one_based' or 'zero_based' to choose.")
    imgs = pd.DataFrame(images, columns=[FILE_NAME, WIDTH, HEIGHT, "_stem", "_split"])
    dup = imgs[FILE_NAME].duplicated(keep="first")
    for fn in imgs.loc[dup, FILE_NAME].head(20):
        issues.warning("duplicate_image",
                       f"{root}: several annotation files name the image {fn!r}; their objects "
                       "are all kept on one image. Give each image one annotation file.")
    imgs = imgs[~dup]
    ids = ids_by_file_name(imgs[FILE_NAME])
    imgs.insert(0, IMAGE_ID, imgs[FILE_NAME].map(ids).astype("int64"))
    from_lists = imgs["_stem"].map(splits).astype("object")
    imgs[SPLIT] = from_lists.where(from_lists.notna(), imgs["_split"].astype("object"))
    imgs = imgs.drop(columns=["_stem", "_split"]).sort_values(IMAGE_ID, ignore_index=True)

    cat_ids, cats = categories_by_name(sorted({r[NAME] for r in rows}))
    a = pd.DataFrame(rows, columns=[FILE_NAME, NAME, X, Y, W, H, DIFFICULT, TRUNCATED])
    anns = named_box_annotations(a, ids, cat_ids, annotator=DEFAULT_ANNOTATOR)
    anns[DIFFICULT] = a[DIFFICULT].astype("int64")
    anns[TRUNCATED] = a[TRUNCATED].astype("int64")
    root = Path(image_root) if image_root is not None else root
    if path.is_dir():
        from qa.io._splits import note_unlisted_images

        note_unlisted_images(imgs, root, issues, lambda d: "any XML file")
    return Dataset(images=imgs, categories=cats, annotations=anns, root=root, format="voc",
                   name=path.stem if path.is_file() else path.name,
                   annotators=(DEFAULT_ANNOTATOR,), load_issues=issues.frame())
