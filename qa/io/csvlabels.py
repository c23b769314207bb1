"""CSV label files, recognised by their columns, never guessed into another kind.

A CSV with box columns is a detection dataset; one without is a classification dataset; one
whose columns cannot be placed is refused with its columns named. The kinds:

* **boxes** (the TensorFlow Object Detection CSV, Roboflow's ``_annotations.csv``, the CSVs of
  LabelImg's ``xml_to_csv``): ``filename,width,height,class,xmin,ymin,xmax,ymax``, one box per
  row; other spellings of the box columns (``x1,y1,x2,y2``, ``x_min ...``, ``left,top,right,
  bottom``; or ``x,y,w,h`` / ``bbox_x,bbox_y,bbox_width,bbox_height`` for top-left + size) are
  read the same way. Coordinates are pixel edges: ``x = xmin``, ``w = xmax - xmin`` (what TF's
  ``generate_tfrecord`` and Roboflow do). A row with an empty box and class is an image with no
  objects.
* **retinanet** (keras-retinanet's CSV, Roboflow's "RetinaNet" export): no header,
  ``path,x1,y1,x2,y2,class``; ``path,,,,,`` is an image without objects. The class list comes
  from ``classes.csv`` / ``_classes.csv`` beside it (``name,id`` lines) when there is one.
* **onehot** (Roboflow's classification CSV, ``_classes.csv``): ``filename,<class 1>,<class
  2>,...`` with a 0/1 per class; several 1s are several labels (multi-label), none is an image
  with no label.
* **labels**: ``image,label[,annotator][,split]`` rows (:func:`qa.io.classification.read_csv`).

A folder is read as one dataset: split folders (``train/ valid/ test/``) each holding a CSV,
or CSV files named for their splits (``train_labels.csv``, ``test_labels.csv``). File names
are relative to the CSV's folder, or to the first of its ``images/``, its parent and the
parent's ``images/`` that holds them (the raccoon set's ``data/*.csv`` name ``images/``
files), or to ``image_root``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    CATEGORY_ID,
    DEFAULT_ANNOTATOR,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    NAME,
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
    ids_by_file_name,
    is_file,
    named_box_annotations,
    read_bytes,
)
from qa.io._splits import combine_splits, note_unlisted_images, split_folders, split_of_folder
from qa.io.classification import IMAGE_COLUMNS, LABEL_COLUMNS, _dataset, _decode_csv
from qa.io.coco import _guess_root

log = logging.getLogger(__name__)

# Box column sets, in the order tried: (names of x1, y1, x2|w, y2|h, "xyxy"|"xywh").
BOX_COLUMN_SETS = (
    ("xmin", "ymin", "xmax", "ymax", "xyxy"),
    ("x_min", "y_min", "x_max", "y_max", "xyxy"),
    ("x1", "y1", "x2", "y2", "xyxy"),
    ("left", "top", "right", "bottom", "xyxy"),
    ("bbox_x", "bbox_y", "bbox_width", "bbox_height", "xywh"),
    ("x", "y", "w", "h", "xywh"),
)
# Any of these in a header means the file is about boxes: it is never read as image labels.
# ("w" and "h" alone are also read as an image's size by the classification reader.)
BOX_WORDS = frozenset({c for s in BOX_COLUMN_SETS for c in s[:4]} - {"w", "h"} | {
    "bbox", "box", "boxes", "x", "y", "xcenter", "ycenter", "x_center", "y_center", "cx", "cy",
    "bbox_w", "bbox_h", "points", "polygon", "coordinates"})
IMAGE_WIDTH_COLUMNS = ("width", "image_width", "img_width")
IMAGE_HEIGHT_COLUMNS = ("height", "image_height", "img_height")
# Names of the labels file in a split folder, in the order looked for (Roboflow's first).
SPLIT_CSV_NAMES = ("_annotations.csv", "_classes.csv")
CLASS_MAP_NAMES = ("_classes.csv", "classes.csv")
MAX_ISSUES = 100
ONE_HOT_VALUES = frozenset({"0", "1", "0.0", "1.0"})

KINDS = ("boxes", "retinanet", "onehot", "labels")

_HOW_TO = (
    "dataset-qa reads a detection CSV with an image column (filename), a class column (class) "
    "and box columns (xmin,ymin,xmax,ymax: the TensorFlow Object Detection CSV), a headerless "
    "RetinaNet CSV (path,x1,y1,x2,y2,class), a classification CSV 'image,label' or Roboflow's "
    "'filename,<class 1>,<class 2>,...' with 0/1 per class. Rename the columns to one of these")


# ----------------------------------------------------------------------------- reading rows
def _rows(path: Path) -> tuple[list[tuple[int, list[str]]], IssueLog]:
    """Every non-blank record of the CSV with its line number (header included)."""
    issues = IssueLog()
    text, delim = _decode_csv(path, read_bytes(path), issues)
    if delim == "," and path.suffix.lower() == ".tsv":
        delim = "\t"
    if delim == "," and text[:4096].count(";") > text[:4096].count(","):
        delim = ";"
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    out = []
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num}: malformed CSV ({exc}). Fix the "
                               "file.") from None
        if rec and any(c.strip() for c in rec):
            out.append((reader.line_num, rec))
    if not out:
        raise DatasetError(f"{path}: the CSV is empty. Expected a header such as "
                           "'filename,width,height,class,xmin,ymin,xmax,ymax' or 'image,label'.")
    return out, issues


def _num(v: str) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _is_image_path(v: str) -> bool:
    return v.strip().lower().endswith(IMAGE_EXTENSIONS)


def _retinanet_row(rec: list[str]) -> bool:
    """``path,x1,y1,x2,y2,class`` with numbers (or an empty box and class)."""
    if len(rec) != 6 or not _is_image_path(rec[0]):
        return False
    box = [c.strip() for c in rec[1:5]]
    if all(c == "" for c in box) and rec[5].strip() == "":
        return True
    return all(_num(c) is not None for c in box) and _num(rec[5]) is None


# ----------------------------------------------------------------------------- kinds
def classify_columns(path: Path, rows: list[tuple[int, list[str]]]) -> tuple[str, dict]:
    """(kind, column positions) of a CSV from its header and rows; DatasetError naming the
    columns when they cannot be placed. See the module doc for the kinds."""
    header = rows[0][1]
    low = [h.strip().lower() for h in header]

    def pos(names) -> int | None:
        return next((low.index(n) for n in names if n in low), None)

    if {"imageid", "labelname"} <= set(low):
        raise DatasetError(
            f"{path}: this is an Open Images CSV (ImageID, LabelName ...), which dataset-qa does "
            "not read: its labels are machine ids (/m/...) and its boxes are normalised. "
            "Convert it to COCO (e.g. with FiftyOne) and load that.")
    shown = [h.strip() for h in header[:12]] + (["..."] if len(header) > 12 else [])
    img, lab = pos(IMAGE_COLUMNS), pos(LABEL_COLUMNS)
    for *names, how in BOX_COLUMN_SETS:
        if all(n in low for n in names):
            missing = [w for w, p in (("an image column (e.g. filename)", img),
                                      ("a class column (e.g. class)", lab)) if p is None]
            if missing:
                raise DatasetError(
                    f"{path}: the header {shown} has box columns ({', '.join(names)}) but not "
                    f"{' nor '.join(missing)}, so its boxes cannot be placed. {_HOW_TO}.")
            return "boxes", {"image": img, "label": lab, "box": [low.index(n) for n in names],
                             "how": how, "width": pos(IMAGE_WIDTH_COLUMNS),
                             "height": pos(IMAGE_HEIGHT_COLUMNS)}
    boxy = [h.strip() for h, lw in zip(header, low) if lw in BOX_WORDS]
    if boxy:
        raise DatasetError(
            f"{path}: the header {shown} has box-like columns ({', '.join(boxy)}) but no "
            "complete set of box columns (xmin,ymin,xmax,ymax; x1,y1,x2,y2; or x,y,w,h); it is "
            f"not read as image labels. {_HOW_TO}.")
    if img is None and lab is None and _retinanet_row(header):
        bad = [ln for ln, r in rows[:50] if not _retinanet_row(r)]
        if not bad:
            return "retinanet", {}
    if img is not None and lab is not None:
        return "labels", {}
    if img is not None and len(header) >= 2:
        cls_cols = [i for i in range(len(header)) if i != img]
        ok = all(all((r[i].strip() if i < len(r) else "") in ONE_HOT_VALUES for i in cls_cols)
                 for _, r in rows[1:])
        if ok and len(rows) > 1:
            return "onehot", {"image": img, "classes": cls_cols}
        if len(rows) > 1:
            eg = next((ln, r) for ln, r in rows[1:] if not all(
                (r[i].strip() if i < len(r) else "") in ONE_HOT_VALUES for i in cls_cols))
            raise DatasetError(
                f"{path}: the header {shown} has an image column but no label column, and "
                f"line {eg[0]} ({eg[1][:6]}) is not 0/1 per class, so it is neither "
                f"'image,label' nor a one-hot classification CSV. {_HOW_TO}.")
    if img is None and lab is None and len(header) >= 2 and _is_image_path(header[0]):
        raise DatasetError(
            f"{path}: the first line {shown} is data, not a header, and not a RetinaNet row "
            f"'path,x1,y1,x2,y2,class'. Add a header line. {_HOW_TO}.")
    need = []
    if img is None:
        need.append(f"an image column (one of {list(IMAGE_COLUMNS)})")
    if lab is None:
        need.append(f"a label column (one of {list(LABEL_COLUMNS)})")
    raise DatasetError(f"{path}: the header {shown} needs {' and '.join(need)}; none of its "
                       f"columns could be placed. {_HOW_TO}, e.g. 'image,label'.")


# ----------------------------------------------------------------------------- one file
def read_file(path: Path | str, *, image_root=None, split: str | None = None,
              note_unlisted: bool = True) -> Dataset:
    """One CSV file of any kind (see the module doc) as a Dataset."""
    from qa.io.classification import read_csv

    path = Path(path)
    rows, issues = _rows(path)
    kind, cols = classify_columns(path, rows)
    if kind == "labels":
        ds = read_csv(path, image_root=image_root)
    elif kind == "boxes":
        ds = _read_boxes(path, rows, cols, issues, image_root)
    elif kind == "retinanet":
        ds = _read_retinanet(path, rows, issues, image_root)
    else:
        ds = _read_onehot(path, rows, cols, issues, image_root)
    if split is not None and ds.images[SPLIT].isna().all():
        ds = dataclasses.replace(ds, images=ds.images.assign(**{SPLIT: split}))
    if note_unlisted and kind != "labels":
        ds = _with_unlisted(ds, path)
    return ds


def _with_unlisted(ds: Dataset, label_file: Path) -> Dataset:
    issues = IssueLog()
    if note_unlisted_images(ds.images, ds.root, issues, lambda d: label_file.name):
        return dataclasses.replace(ds, load_issues=pd.concat(
            [x for x in (ds.load_issues, issues.frame()) if len(x)], ignore_index=True))
    return ds


class _Quarantine:
    def __init__(self, path: Path, issues: IssueLog):
        self.path, self.issues, self.n = path, issues, 0

    def __call__(self, line: int, msg: str) -> None:
        self.n += 1
        if self.n <= MAX_ISSUES:
            self.issues.error("malformed_row", f"{self.path}:{line}: {msg}; the row is "
                                               "quarantined.")

    def close(self) -> None:
        if self.n > MAX_ISSUES:
            self.issues.error("malformed_row",
                              f"{self.path}: {self.n - MAX_ISSUES} more malformed rows.")


def _cell(rec: list[str], i: int | None) -> str:
    return rec[i].strip() if i is not None and i < len(rec) else ""


def _box_dataset(path: Path, files: list[str], boxes: list[tuple], class_names, issues,
                 image_root, sizes: dict[str, tuple] | None = None) -> Dataset:
    """A detection Dataset from file names (every image, with or without boxes) and
    (file_name, class, x, y, w, h) boxes."""
    ids = ids_by_file_name(files)
    cat_ids, cats = categories_by_name(class_names)
    a = pd.DataFrame(boxes, columns=[FILE_NAME, NAME, X, Y, W, H])
    anns = named_box_annotations(a, ids, cat_ids, annotator=DEFAULT_ANNOTATOR)
    fns = sorted(ids)
    images = pd.DataFrame({IMAGE_ID: [ids[f] for f in fns], FILE_NAME: fns})
    if sizes:
        for k, col in enumerate((WIDTH, HEIGHT)):
            images[col] = pd.array([sizes.get(f, (None, None))[k] for f in fns], dtype="Int64")
    root = _guess_root(path, fns, image_root)
    return Dataset(images=images, categories=cats, annotations=anns, root=root, format="csv",
                   name=path.stem, annotators=(DEFAULT_ANNOTATOR,), load_issues=issues.frame())


def _size(v: str) -> int | None:
    f = _num(v)
    return int(f) if f is not None and 0 < f < 2**31 and f == int(f) else None


def _read_boxes(path: Path, rows, cols: dict, issues: IssueLog, image_root) -> Dataset:
    bad = _Quarantine(path, issues)
    files, boxes, sizes = [], [], {}
    xi, yi, zi, wi = cols["box"]
    for line, rec in rows[1:]:
        fn = _cell(rec, cols["image"]).replace("\\", "/")
        if not fn:
            bad(line, f"row {rec[:8]} has no image file name")
            continue
        files.append(fn)
        if cols["width"] is not None or cols["height"] is not None:
            wh = (_size(_cell(rec, cols["width"])), _size(_cell(rec, cols["height"])))
            if sizes.get(fn, (None, None)) == (None, None):
                sizes[fn] = wh
        label = _cell(rec, cols["label"])
        raw = [_cell(rec, i) for i in (xi, yi, zi, wi)]
        if not label and all(c == "" for c in raw):
            continue  # an image listed without objects
        vals = [_num(c) for c in raw]
        if not label or any(v is None for v in vals):
            what = "no class" if not label else f"non-numeric box values {raw}"
            bad(line, f"row {rec[:8]} has {what}")
            continue
        x1, y1, a, b = vals
        w, h = (a - x1, b - y1) if cols["how"] == "xyxy" else (a, b)
        boxes.append((fn, label, x1, y1, w, h))
    bad.close()
    names = sorted({b[1] for b in boxes})
    return _box_dataset(path, files, boxes, names, issues, image_root, sizes)


def _class_map(path: Path) -> list[str] | None:
    """Class names of a RetinaNet ``classes.csv`` beside ``path`` (``name,id`` lines), in id
    order; None when there is none (or it is not one: Roboflow's one-hot ``_classes.csv``)."""
    for n in CLASS_MAP_NAMES:
        p = path.parent / n
        if p == path or not is_file(p):
            continue
        try:
            recs = [r for r in csv.reader(io.StringIO(read_bytes(p).decode("utf-8-sig")))
                    if r and any(c.strip() for c in r)]
        except (UnicodeDecodeError, csv.Error):
            return None
        if recs and all(len(r) == 2 and _num(r[1]) is not None for r in recs):
            return [r[0].strip() for r in sorted(recs, key=lambda r: float(r[1]))]
    return None


def _read_retinanet(path: Path, rows, issues: IssueLog, image_root) -> Dataset:
    bad = _Quarantine(path, issues)
    files, boxes = [], []
    for line, rec in rows:
        if not _retinanet_row(rec):
            bad(line, f"row {rec[:6]} is not 'path,x1,y1,x2,y2,class' (or 'path,,,,,' for an "
                      "image without objects)")
            continue
        fn = rec[0].strip().replace("\\", "/")
        files.append(fn)
        if rec[5].strip() == "":
            continue
        x1, y1, x2, y2 = (float(c) for c in rec[1:5])
        boxes.append((fn, rec[5].strip(), x1, y1, x2 - x1, y2 - y1))
    bad.close()
    declared = _class_map(path) or []
    names = list(dict.fromkeys(declared + sorted({b[1] for b in boxes} - set(declared))))
    return _box_dataset(path, files, boxes, names, issues, image_root)


def _read_onehot(path: Path, rows, cols: dict, issues: IssueLog, image_root) -> Dataset:
    header = rows[0][1]
    classes = {i: header[i].strip() for i in cols["classes"]}
    bad = _Quarantine(path, issues)
    labels, splits = [], {}
    for line, rec in rows[1:]:
        fn = _cell(rec, cols["image"]).replace("\\", "/")
        if not fn:
            bad(line, f"row {rec[:6]} has no image file name")
            continue
        splits.setdefault(fn, None)
        labels += [(fn, name, DEFAULT_ANNOTATOR) for i, name in classes.items()
                   if _num(_cell(rec, i)) == 1]
    bad.close()
    root = _guess_root(path, sorted(splits), image_root)
    return _dataset(labels, list(classes.values()), root=root, fmt="csv", name=path.stem,
                    splits=splits, issues=issues, annotators=(DEFAULT_ANNOTATOR,))


# ----------------------------------------------------------------------------- folders
def csv_files_of_splits(folder: Path) -> list[tuple[str, Path]]:
    """(split, labels CSV) of each split folder that holds one (``_annotations.csv`` before
    ``_classes.csv``, else its only CSV)."""
    out = []
    for split, d in split_folders(folder):
        named = [d / n for n in SPLIT_CSV_NAMES if is_file(d / n)]
        found = named[:1] or sorted(p for p in d.glob("*.csv") if is_file(p))
        if len(found) == 1:
            out.append((split, found[0]))
    return out


def read(path: Path | str, *, image_root=None) -> Dataset:
    """A CSV file, or a folder of them (see the module doc), as a Dataset."""
    path = Path(path)
    if not path.is_dir():
        return read_file(path, image_root=image_root)
    per_split = csv_files_of_splits(path)
    if per_split:
        parts = [(s, read_file(f, image_root=image_root, split=s, note_unlisted=False))
                 for s, f in per_split]
        return _noted(combine_splits(path, parts, fmt="csv", name=path.name),
                      [f for _, f in per_split])
    files = sorted(p for p in path.glob("*.csv") if is_file(p))
    files += sorted(p for p in path.glob("*.tsv") if is_file(p))
    named = [path / n for n in SPLIT_CSV_NAMES if is_file(path / n)]
    if named:  # one Roboflow split folder (its _classes.csv may be a RetinaNet class map)
        files = named[:1]
    if len(files) == 1:
        return read_file(files[0], image_root=image_root)
    named = [(split_of_folder(_split_word(f.stem)), f) for f in files]
    named = [(s, f) for s, f in named if s]
    if len(named) >= 2 and len({s for s, _ in named}) == len(named):
        parts = [(s, read_file(f, image_root=image_root, split=s, note_unlisted=False))
                 for s, f in named]
        roots = {Path(d.root) for _, d in parts}
        root = roots.pop() if len(roots) == 1 else path
        rest = [f.name for f in files if f not in {f for _, f in named}]
        issues = IssueLog()
        if rest:
            issues.add("info", "unread_file",
                       f"{path}: read the split files {[f.name for _, f in named]}; "
                       f"{rest} were not read. Load one of them on its own to see it.")
        return _noted(combine_splits(path, parts, fmt="csv", name=path.name, issues=issues,
                                     root=root), [f for _, f in named])
    if not files:
        from qa.io.layout import found

        raise DatasetError(f"{path}: no CSV files here or in split folders (train/, valid/, "
                           f"test/). {found(path)}")
    raise DatasetError(
        f"{path}: holds {len(files)} CSV files ({', '.join(f.name for f in files[:6])}) and "
        "they are not one per split; give the one to load, e.g. "
        f"'dataset-qa info {files[0]}'.")


def _noted(ds: Dataset, files: list[Path]) -> Dataset:
    """``ds`` with the images its CSV files' folders hold but none of them names."""
    issues = IssueLog()
    by_dir: dict[str, list[str]] = {}
    root = Path(ds.root) if ds.root is not None else None
    for f in files:
        rel = f.parent.relative_to(root).as_posix() if root is not None and \
            f.parent.is_relative_to(root) else None
        by_dir.setdefault(rel if rel not in (None, ".") else "", []).append(f.name)
    names = " / ".join(dict.fromkeys(f.name for f in files))
    if note_unlisted_images(ds.images, root, issues,
                            lambda d: " / ".join(by_dir.get(d, [])) or names):
        return dataclasses.replace(ds, load_issues=pd.concat(
            [x for x in (ds.load_issues, issues.frame()) if len(x)], ignore_index=True))
    return ds


def _split_word(stem: str) -> str:
    """The split word of a CSV's stem: ``train_labels`` -> train, ``labels_test`` -> test."""
    import re

    for tok in re.split(r"[^A-Za-z]+", stem):
        if split_of_folder(tok):
            return tok
    return ""


__all__ = ["classify_columns", "read", "read_file", "KINDS"]
