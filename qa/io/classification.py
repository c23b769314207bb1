"""Image classification datasets: image-level labels (annotations with NaN boxes).

* :func:`read_imagefolder`: ``root/[split/]class/.../img.jpg`` (torchvision's ImageFolder).
  The split level is detected when every top folder is a split name (train/val/test, also
  valid/validation). Empty class folders are kept as categories with no images.
* :func:`read_csv`: one row per (image, annotator) label with columns ``image`` (or
  ``file_name``/``filename``/``path``/``file``), ``label`` (or ``class``/``category``), and
  optionally ``annotator`` and ``split``. Several rows per image give several annotators
  (or several labels). File names are relative to the CSV's folder (or ``image_root``).
  A row with an empty image or label is quarantined with its ``file:line``.

Categories are ids 1..n in sorted name order; image ids 1..n in sorted file-name order.
"""

from __future__ import annotations

import csv
import io
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
    IMAGE_EXTENSIONS,
    IssueLog,
    categories_by_name,
    expect,
    ids_by_file_name,
    list_images,
    read_bytes,
    refuse_outside,
)
from qa.io.coco import split_from_name
from qa.paths import is_within

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "file_name", "filename", "path", "file", "image_path", "img")
LABEL_COLUMNS = ("label", "class", "category", "class_name", "category_name")
SPLIT_DIRS = ("train", "val", "valid", "validation", "test")
MAX_ISSUES = 100


def _dataset(rows: list[tuple], class_names, *, root: Path, fmt: str, name: str,
             splits: dict[str, str | None], issues: IssueLog, annotators=(),
             sizes: dict[str, tuple] | None = None) -> Dataset:
    """Build the Dataset from (file_name, label, annotator) rows; ``sizes``: file name ->
    (width, height) where the source gives them."""
    file_names = sorted(set(splits) | {r[0] for r in rows})
    ids = ids_by_file_name(file_names)
    cat_ids, cats = categories_by_name(sorted(set(class_names) | {r[1] for r in rows}))
    n = len(rows)
    nan = np.full(n, np.nan)
    images = pd.DataFrame({IMAGE_ID: [ids[f] for f in file_names], FILE_NAME: file_names,
                           SPLIT: [splits.get(f) for f in file_names]})
    if sizes:
        for k, col in enumerate((WIDTH, HEIGHT)):
            images[col] = pd.array([sizes.get(f, (None, None))[k] for f in file_names],
                                   dtype="Int64")
    anns = pd.DataFrame({
        ANN_ID: np.arange(1, n + 1, dtype=np.int64),
        IMAGE_ID: np.array([ids[r[0]] for r in rows], dtype=np.int64),
        CATEGORY_ID: np.array([cat_ids[r[1]] for r in rows], dtype=np.int64),
        ANNOTATOR: [r[2] for r in rows],
        X: nan, Y: nan, W: nan, H: nan,
    })
    return Dataset(images=images, categories=cats, annotations=anns, root=root, format=fmt,
                   name=name, annotators=tuple(annotators), load_issues=issues.frame())


def read_imagefolder(path: Path | str, *, image_root=None) -> Dataset:
    """Read ``root/[split/]class/img`` folders into a classification Dataset."""
    root = Path(path)
    expect(root.is_dir(), root, "not a folder: an image-folder dataset is root/class/img.jpg.")
    issues = IssueLog()
    top = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    expect(bool(top), root, "no sub-folders: expected root/class/img.jpg or "
                            "root/split/class/img.jpg.")
    split_level = all(d.name.lower() in SPLIT_DIRS for d in top)
    groups = [(split_from_name(d.name), d) for d in top] if split_level else [(None, root)]
    rows, classes, splits = [], set(), {}
    for split, base in groups:
        if not is_within(root, base):  # the path rule (qa.paths): a linked split folder
            refuse_outside(issues, base, root)
            continue
        for f in sorted(base.iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                issues.warning("unlabelled_image",
                               f"{f}: image is not inside a class folder; it is loaded with no "
                               "label. Move it into a class folder.")
                splits[f.relative_to(root).as_posix()] = split
        for cdir in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
            if not is_within(root, cdir):
                refuse_outside(issues, cdir, root)
                continue
            classes.add(cdir.name)
            for img in list_images(cdir, root=root, issues=issues):
                fn = img.relative_to(root).as_posix()
                splits[fn] = split
                rows.append((fn, cdir.name, DEFAULT_ANNOTATOR))
    return _dataset(rows, classes, root=Path(image_root) if image_root else root,
                    fmt="imagefolder", name=root.name, splits=splits, issues=issues,
                    annotators=(DEFAULT_ANNOTATOR,))


def _pick(header: list[str], choices: tuple[str, ...]) -> int | None:
    low = [h.strip().lower() for h in header]
    for c in choices:
        if c in low:
            return low.index(c)
    return None


def read_csv(path: Path | str, *, image_root=None) -> Dataset:
    """Read a classification CSV (image, label[, annotator][, split]) into a Dataset."""
    path = Path(path)
    issues = IssueLog()
    raw = read_bytes(path)
    text, delim = _decode_csv(path, raw, issues)
    if delim == "," and path.suffix.lower() == ".tsv":
        delim = "\t"
    if delim == "," and text[:4096].count(";") > text[:4096].count(","):
        delim = ";"
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{path}: the CSV is empty. Expected a header 'image,label'.") \
            from None
    except csv.Error as exc:
        raise DatasetError(f"{path}:1: malformed CSV ({exc}). Fix the file.") from None
    low = {h.strip().lower() for h in header}
    if {"imageid", "labelname"} <= low:
        raise DatasetError(
            f"{path}: this is an Open Images CSV (ImageID, LabelName ...), which dataset-qa does "
            "not read: its labels are machine ids (/m/...) and its boxes are normalised. "
            "Convert it to COCO (e.g. with FiftyOne) and load that.")
    ci, cl = _pick(header, IMAGE_COLUMNS), _pick(header, LABEL_COLUMNS)
    if ci is None or cl is None:
        raise DatasetError(
            f"{path}: the header {header[:10]} needs an image column (one of "
            f"{list(IMAGE_COLUMNS)}) and a label column (one of {list(LABEL_COLUMNS)}). "
            "Rename the columns, e.g. 'image,label,annotator,split'.")
    ca, cs = _pick(header, ("annotator", "user", "labeler", "rater")), _pick(header, ("split",))
    cw, chh = _pick(header, WIDTH_COLUMNS), _pick(header, HEIGHT_COLUMNS)
    rows, splits, sizes = [], {}, {}
    n_bad = 0
    line = 1

    def bad(msg: str) -> None:
        nonlocal n_bad
        n_bad += 1
        if n_bad <= MAX_ISSUES:
            issues.error("malformed_row", f"{path}:{line}: {msg}; the row is quarantined.")

    while True:
        start = reader.line_num + 1
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num}: malformed CSV ({exc}). Fix the "
                               "file.") from None
        line = reader.line_num
        if not rec or not any(c.strip() for c in rec):
            continue
        if any("\n" in c or "\r" in c for c in rec):
            line = start
            bad(f"a quote (\") opened on this line is not closed, so lines {start}..{reader.line_num} "
                "were read as one value. Close or remove the quote")
            continue
        get = lambda i: rec[i].strip() if i is not None and i < len(rec) else ""  # noqa: E731
        fn, lab = get(ci).replace("\\", "/"), get(cl)
        if not fn or not lab:
            missing = "image" if not fn else "label"
            bad(f"row {rec[:5]} has an empty {missing}. Fill in the {missing}")
            continue
        ctrl = next((c for c in fn + lab if ord(c) < 32 or ord(c) == 127), None)
        if ctrl is not None:
            bad(f"row {rec[:5]} holds a control character ({ctrl!r}, e.g. a NUL byte) in its "
                "image or label. Remove it")
            continue
        who = get(ca) or DEFAULT_ANNOTATOR
        sp = get(cs)
        split = split_from_name(sp) if sp else None
        if fn not in splits or splits[fn] is None:
            splits[fn] = split
        if cw is not None or chh is not None:
            wh = (_int_cell(get(cw)), _int_cell(get(chh)))
            if fn not in sizes or sizes[fn] == (None, None):
                sizes[fn] = wh
        rows.append((fn, lab, who))
    if n_bad > MAX_ISSUES:
        issues.error("malformed_row", f"{path}: {n_bad - MAX_ISSUES} more malformed rows.")
    root = Path(image_root) if image_root is not None else path.parent
    return _dataset(rows, (), root=root, fmt="csv", name=path.stem, splits=splits,
                    issues=issues, sizes=sizes)


WIDTH_COLUMNS = ("width", "image_width", "img_width", "w")
HEIGHT_COLUMNS = ("height", "image_height", "img_height", "h")


def _int_cell(v: str) -> int | None:
    try:
        f = float(v)
    except ValueError:
        return None
    return int(f) if 0 < f < 2**31 and f == int(f) else None


def _decode_csv(path: Path, raw: bytes, issues: IssueLog) -> tuple[str, str]:
    """(text, delimiter) of a CSV's bytes: UTF-8 (BOM allowed), UTF-16 with a BOM (Excel's
    'Unicode text', tab-separated), else Windows-1252 (Excel's plain 'CSV' on Windows) with
    a warning; anything else is a DatasetError naming the first bad byte."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "\t"
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: damaged UTF-16 text at byte {exc.start}. Save the "
                               "file as 'CSV UTF-8'.") from None
    try:
        return raw.decode("utf-8-sig"), ","
    except UnicodeDecodeError as exc:
        first = exc.start
    line = raw.count(b"\n", 0, first) + 1
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}:{line}: byte {first} is not UTF-8 (nor Windows-1252) "
                           "text. Save the file as 'CSV UTF-8'.") from None
    issues.warning("encoding",
                   f"{path}:{line}: the file is not UTF-8; it was read as Windows-1252 (what "
                   "Excel writes for 'CSV'), so e.g. 'caf\\xe9' reads as 'café'. Check the "
                   "names, and save as 'CSV UTF-8' to be sure.")
    return text, ","
