"""A model's predictions for a loaded Dataset.

Sources
-------
* COCO results JSON: ``[{image_id, category_id, bbox: [x, y, w, h], score}]``. ``image_id``
  refers to the dataset's ids; an item with a ``file_name`` key is matched by file name
  instead. Unknown image / category ids are kept (validation flags them).
* A folder of YOLO ``.txt`` files with 6 columns ``class cx cy w h conf`` (Ultralytics
  ``save_txt=True, save_conf=True``), matched to images by file stem, converted to pixels with
  the dataset's image sizes. The other common order, ``class conf cx cy w h`` (darknet's and
  several trackers'), is detected (``yolo_columns="auto"``): the order whose boxes fit inside
  their images is used, and a load issue says so. Class index ``k`` is category_id ``k`` for a
  YOLO dataset, else the k-th category in id order, unless the model's class names are known.

Class names of the model (``names=``): a names file (``classes.txt`` / ``obj.names``: one name
per line, or a ``data.yaml`` with ``names``), a list, or a dict ``{index or id: name}``. Then
class index (YOLO) or ``category_id`` (COCO results) ``k`` is the dataset category named
``names[k]``. A YOLO predictions folder holding ``classes.txt``, ``obj.names`` or
``data.yaml`` uses it without being told. A name the dataset lacks becomes an unknown
category (validation reports it).
* A Label Studio export with ``predictions``: matched by image file name, categories by name.

The model name is the file stem (the folder name for YOLO txt; ``model_version`` for Label
Studio when given). Bad input raises :class:`DatasetError` naming the file and the fix.
"""

from __future__ import annotations

import itertools
import logging
import math
import posixpath
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    MODEL,
    NAME,
    PRED_ID,
    PREDICTIONS_SCHEMA,
    SCORE,
    WIDTH,
    Dataset,
    DatasetError,
    H,
    W,
    X,
    Y,
    conform,
)
from qa.io._common import (
    IssueLog,
    expect,
    is_file,
    load_yaml_safe,
    parse_json,
    read_bytes,
)

log = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"
YOLO_COLUMNS = ("auto", "class_box_conf", "class_conf_box")
# Names files a YOLO predictions folder may carry (first found wins).
NAMES_FILES = ("classes.txt", "obj.names", "data.yaml", "data.yml")
# Column-order detection: normalised boxes may overshoot [0, 1] by rounding this much; the
# other order is chosen only when it fits at least FIT_BETTER more of the boxes and at least
# FIT_MIN of them (so a file that fits both ways keeps Ultralytics' order).
NORM_EPS = 0.01
FIT_BETTER = 0.2
FIT_MIN = 0.9


def find_predictions(folder: Path | str) -> list[Path]:
    """``folder/predictions/*.json``, sorted: the prediction files shipped with a dataset."""
    d = Path(folder) / PREDICTIONS_DIR
    return sorted(p for p in d.glob("*.json") if p.is_file()) if d.is_dir() else []


def _frame(rows: dict, model: str) -> pd.DataFrame:
    n = len(rows[IMAGE_ID])
    df = pd.DataFrame({PRED_ID: np.arange(1, n + 1, dtype=np.int64), **rows})
    df[MODEL] = model
    return conform(df, PREDICTIONS_SCHEMA, table="predictions")


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _int(v) -> int | None:
    f = _num(v)
    return int(f) if f is not None and f == int(f) else None


# ----------------------------------------------------------------------------- COCO results
def _coco_results_fast(doc: list, cmap=None) -> dict | None:
    """The columns of a well-formed COCO results list (every item an object with integer
    image_id and category_id, a numeric score and a 4-number bbox, no file_name), built
    column-wise: 800k predictions in well under a second instead of several. None when any
    item is not like that; the item-by-item reader then names the first bad one."""
    if not all(type(r) is dict for r in doc) or any("file_name" in r for r in doc):
        return None
    ids = [r.get("image_id") for r in doc]
    cats = [r.get("category_id") for r in doc]
    scores = [r.get("score") for r in doc]
    boxes = [r.get("bbox") for r in doc]
    numbers = {int, float}
    if not (set(map(type, ids)) <= numbers and set(map(type, cats)) <= numbers
            and set(map(type, scores)) <= numbers and set(map(type, boxes)) <= {list}
            and all(len(b) == 4 for b in boxes)
            and set(map(type, itertools.chain.from_iterable(boxes))) <= numbers):
        return None  # bools, strings, nulls, short boxes: the careful path
    ids_f, cats_f = np.array(ids, dtype=np.float64), np.array(cats, dtype=np.float64)
    score = np.array(scores, dtype=np.float64)
    box = np.array(boxes, dtype=np.float64).reshape(len(doc), 4)
    finite = (np.isfinite(ids_f).all() and np.isfinite(cats_f).all()
              and np.isfinite(score).all() and np.isfinite(box).all())
    if not finite or (ids_f != np.floor(ids_f)).any() or (cats_f != np.floor(cats_f)).any():
        return None
    cat = cats_f.astype(np.int64)
    if cmap is not None:
        cat = np.array([cmap(c) for c in cat.tolist()], dtype=np.int64)
    return {IMAGE_ID: ids_f.astype(np.int64), CATEGORY_ID: cat, SCORE: score,
            X: box[:, 0], Y: box[:, 1], W: box[:, 2], H: box[:, 3]}


def _coco_results(path: Path, doc: list, ds: Dataset, cmap=None) -> pd.DataFrame:
    by_name = dict(zip(ds.images[FILE_NAME].astype(str), ds.images[IMAGE_ID]))
    by_base = {}
    for fn, iid in by_name.items():
        by_base.setdefault(posixpath.basename(fn), []).append(iid)
    rows = _coco_results_fast(doc, cmap)
    if rows is not None:
        unknown = set(np.setdiff1d(rows[IMAGE_ID], ds.images[IMAGE_ID].to_numpy()).tolist())
        if unknown:
            log.warning("%s: %d prediction image ids are not in the dataset (e.g. %s)", path,
                        len(unknown), sorted(unknown)[:5])
        return _frame(rows, path.stem)
    rows = {IMAGE_ID: [], CATEGORY_ID: [], SCORE: [], X: [], Y: [], W: [], H: []}
    for i, r in enumerate(doc):
        if not isinstance(r, dict):
            raise DatasetError(f"{path}: item [{i}] is not an object ({str(r)[:80]}). A COCO "
                               "results file is a list of {image_id, category_id, bbox, score}.")
        iid = _int(r.get("image_id"))
        fn = r.get("file_name")
        if isinstance(fn, str):
            fn = fn.replace("\\", "/")
            if fn in by_name:
                iid = int(by_name[fn])
            elif len(by_base.get(posixpath.basename(fn), [])) == 1:
                iid = int(by_base[posixpath.basename(fn)][0])
        cid, score = _int(r.get("category_id")), _num(r.get("score"))
        bbox = r.get("bbox")
        box = [_num(v) for v in bbox] if isinstance(bbox, list) else []
        bad = [what for ok, what in (
            (iid is not None, "an integer 'image_id' (or a 'file_name' of the dataset)"),
            (cid is not None, "an integer 'category_id'"),
            (score is not None, "a numeric 'score'"),
            (len(box) == 4 and None not in box, "'bbox' as 4 numbers [x, y, w, h]"))
            if not ok]
        if bad:
            raise DatasetError(f"{path}: item [{i}] ({str(r)[:100]}) needs " + ", ".join(bad)
                               + ". Fix the results file.")
        rows[IMAGE_ID].append(iid)
        rows[CATEGORY_ID].append(cid if cmap is None else cmap(cid))
        rows[SCORE].append(score)
        for k, v in zip((X, Y, W, H), box):
            rows[k].append(v)
    unknown = set(rows[IMAGE_ID]) - set(ds.images[IMAGE_ID].tolist())
    if unknown:
        log.warning("%s: %d prediction image ids are not in the dataset (e.g. %s)", path,
                    len(unknown), sorted(unknown)[:5])
    return _frame(rows, path.stem)


# ----------------------------------------------------------------------------- class names
def read_names(source) -> dict[int, str]:
    """The model's class names as ``{index: name}`` from a names file (one name per line, or
    a YAML with ``names``), a list, or a dict; DatasetError when unusable."""
    if isinstance(source, dict):
        try:
            return {int(k): str(v) for k, v in source.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"names: keys must be class indices, got {list(source)[:5]}."
                               ) from None
    if isinstance(source, (list, tuple)):
        return {i: str(n) for i, n in enumerate(source)}
    p = Path(source)
    if p.suffix.lower() in (".yaml", ".yml"):
        cfg = load_yaml_safe(p)
        names = cfg.get("names") if isinstance(cfg, dict) else None
        if names is None:
            raise DatasetError(f"{p}: no 'names' in this YAML; give the model's class names.")
        return read_names(names)
    lines = read_bytes(p).decode("utf-8-sig", errors="replace").splitlines()
    out = {i: ln.strip() for i, ln in enumerate(lines) if ln.strip()}
    if not out:
        raise DatasetError(f"{p}: the names file is empty; write one class name per line.")
    return out


def _names_map(names: dict[int, str], ds: Dataset, source, issues: IssueLog | None):
    """class index -> dataset category_id by name (unknown names: a negative id)."""
    by_name = dict(zip(ds.categories[NAME].astype(str), ds.categories[CATEGORY_ID].tolist()))
    missing = sorted({n for n in names.values() if n not in by_name})
    if missing and issues is not None:
        issues.warning("unknown_category",
                       f"{source}: the model's classes {missing[:10]} are not among the "
                       "dataset's categories; their predictions keep an unknown category.")
    table = {k: by_name.get(n, -1 - k) for k, n in names.items()}
    return lambda k: table.get(k, -1 - k)


# ----------------------------------------------------------------------------- YOLO txt
def _yolo_class_map(ds: Dataset):
    if ds.format == "yolo":
        return lambda k: k
    ids = sorted(ds.categories[CATEGORY_ID].tolist())
    return lambda k: ids[k] if 0 <= k < len(ids) else -1 - k


def _fit(a: np.ndarray) -> float:
    """Share of normalised (cx, cy, w, h) rows that are boxes inside the image."""
    if not len(a):
        return 0.0
    cx, cy, w, h = a.T
    ok = ((w > 0) & (h > 0) & (cx - w / 2 >= -NORM_EPS) & (cx + w / 2 <= 1 + NORM_EPS)
          & (cy - h / 2 >= -NORM_EPS) & (cy + h / 2 <= 1 + NORM_EPS))
    return float(ok.mean())


def detect_yolo_columns(values: np.ndarray) -> str:
    """``"class_box_conf"`` (Ultralytics: class cx cy w h conf) or ``"class_conf_box"``
    (class conf cx cy w h) for an (n, 6) array of prediction lines: the order whose boxes
    fit inside the image, Ultralytics' when both (or neither) do."""
    std, alt = _fit(values[:, 1:5]), _fit(values[:, 2:6])
    return "class_conf_box" if alt - std >= FIT_BETTER and alt >= FIT_MIN else "class_box_conf"


def _folder_names(folder: Path) -> Path | None:
    for n in NAMES_FILES:
        for p in (folder / n, folder.parent / n):
            if is_file(p):
                return p
    return None


def _yolo_folder(folder: Path, ds: Dataset, *, names=None, columns: str = "auto",
                 issues: IssueLog | None = None) -> pd.DataFrame:
    files = sorted(p for p in folder.rglob("*.txt") if p.name not in NAMES_FILES)
    expect(bool(files), folder, "no *.txt prediction files found. Expected Ultralytics "
                                "'class cx cy w h conf' files (save_txt=True, save_conf=True).")
    imgs = ds.images
    by_stem: dict[str, list[int]] = {}
    for iid, fn in zip(imgs[IMAGE_ID].tolist(), imgs[FILE_NAME].astype(str)):
        by_stem.setdefault(posixpath.splitext(posixpath.basename(fn))[0], []).append(iid)
    file_of = dict(zip(imgs[IMAGE_ID].tolist(), imgs[FILE_NAME].astype(str)))
    size = {iid: (w, h) for iid, w, h in zip(imgs[IMAGE_ID].tolist(), imgs[WIDTH], imgs[HEIGHT])}
    if names is None and (nf := _folder_names(folder)) is not None:
        names = nf
        if issues is not None:
            issues.add("info", "prediction_names",
                       f"{folder}: the model's class names were read from {nf}.")
    cmap = _names_map(read_names(names), ds, folder, issues) if names is not None \
        else _yolo_class_map(ds)
    lines: list[tuple[int, list[float]]] = []  # (image id, 6 values)
    unmatched = []
    for f in files:
        cands = by_stem.get(f.stem, [])
        if len(cands) > 1:  # same stem in several folders: match the txt's folder names
            parts = set(f.relative_to(folder).parent.parts)
            best = [c for c in cands if parts & set(file_of[c].split("/")[:-1])]
            cands = best if len(best) == 1 else cands
        if not cands:
            unmatched.append(f.name)
            continue
        iid = cands[0]
        iw, ih = size[iid]
        text = read_bytes(f).decode("utf-8", errors="replace")
        for no, ln in enumerate(text.splitlines(), start=1):
            fields = ln.split()
            if not fields:
                continue
            if len(fields) == 5:
                raise DatasetError(f"{f}:{no}: 5 fields 'class cx cy w h' and no confidence: "
                                   "these are labels, not predictions. Save predictions with "
                                   "save_conf=True (6 fields), or load this folder as the dataset.")
            try:
                vals = [float(v) for v in fields]
            except ValueError:
                vals = []
            if len(vals) != 6 or not all(map(math.isfinite, vals)) or vals[0] != int(vals[0]):
                raise DatasetError(f"{f}:{no}: expected 6 numbers 'class cx cy w h conf', got "
                                   f"{ln.strip()[:80]!r}. Fix or remove that line.")
            if pd.isna(iw) or pd.isna(ih):
                raise DatasetError(
                    f"{f}: the size of image {file_of[iid]!r} is unknown, so normalised boxes "
                    "cannot be converted to pixels. Load the dataset with probe=True (reads "
                    "image headers) or give width/height in its labels.")
            lines.append((iid, vals))
    if unmatched:
        if len(unmatched) == len(files):
            raise DatasetError(f"{folder}: no prediction file matches an image of the dataset "
                               f"by file stem (e.g. {unmatched[:3]}). Check that these are "
                               "predictions for this dataset.")
        log.warning("%s: %d prediction files match no image and are skipped (e.g. %s)", folder,
                    len(unmatched), unmatched[:3])
        if issues is not None:
            issues.warning("prediction_image_mismatch",
                           f"{folder}: {len(unmatched)} of {len(files)} prediction files match "
                           f"no image of the dataset by file stem (e.g. {unmatched[:3]}); they "
                           "are skipped.")
    vals = np.array([v for _, v in lines], dtype=np.float64).reshape(-1, 6)
    order = detect_yolo_columns(vals) if columns == "auto" else columns
    if order == "class_conf_box":
        vals = vals[:, [0, 2, 3, 4, 5, 1]]
        if columns == "auto" and issues is not None:
            issues.add("info", "prediction_columns",
                       f"{folder}: read as 'class conf cx cy w h' (the confidence second): in "
                       "that order the boxes fit their images, in Ultralytics' 'class cx cy w "
                       "h conf' they do not. Pass yolo_columns= (--yolo-columns on the "
                       "command line) to choose.")
    wh = np.array([size[iid] for iid, _ in lines], dtype=np.float64).reshape(-1, 2)
    k, cx, cy, w, h, conf = vals.T
    rows = {IMAGE_ID: [iid for iid, _ in lines],
            CATEGORY_ID: [cmap(int(c)) for c in k], SCORE: conf.tolist(),
            X: ((cx - w / 2) * wh[:, 0]).tolist(), Y: ((cy - h / 2) * wh[:, 1]).tolist(),
            W: (w * wh[:, 0]).tolist(), H: (h * wh[:, 1]).tolist()}
    model = folder.parent.name if folder.name == "labels" and folder.parent.name else folder.name
    return _frame(rows, model)


# ----------------------------------------------------------------------------- Label Studio
def _labelstudio(path: Path, ds: Dataset) -> pd.DataFrame:
    from qa.io.labelstudio import DEFAULT_LS_MODEL, parse_export

    ex = parse_export(path, IssueLog())
    if not ex.preds:
        raise DatasetError(f"{path}: this Label Studio export has no 'predictions'. Export the "
                           "project with predictions, or load it as the dataset.")
    by_name = dict(zip(ds.images[FILE_NAME].astype(str), ds.images[IMAGE_ID].tolist()))
    by_base: dict[str, list[int]] = {}
    for fn, iid in by_name.items():
        by_base.setdefault(posixpath.basename(fn), []).append(iid)
    cat_ids = dict(zip(ds.categories[NAME].astype(str), ds.categories[CATEGORY_ID].tolist()))
    extra: dict[str, int] = {}
    nxt = max(cat_ids.values(), default=0) + 1
    rows = {IMAGE_ID: [], CATEGORY_ID: [], SCORE: [], X: [], Y: [], W: [], H: [], MODEL: []}
    unmatched = set()
    for p in ex.preds:
        fn = p[FILE_NAME]
        iid = by_name.get(fn)
        if iid is None and len(by_base.get(posixpath.basename(fn), [])) == 1:
            iid = by_base[posixpath.basename(fn)][0]
        if iid is None:
            unmatched.add(fn)
            continue
        cid = cat_ids.get(p[NAME])
        if cid is None:  # keep it under a new id: validation reports the unknown category
            if p[NAME] not in extra:
                extra[p[NAME]] = nxt
                nxt += 1
            cid = extra[p[NAME]]
        rows[IMAGE_ID].append(iid)
        rows[CATEGORY_ID].append(cid)
        rows[SCORE].append(p[SCORE])
        for k in (X, Y, W, H):
            rows[k].append(p[k])
        rows[MODEL].append(path.stem if p[MODEL] == DEFAULT_LS_MODEL else p[MODEL])
    if unmatched:
        log.warning("%s: predictions for %d images not in the dataset are skipped (e.g. %s)",
                    path, len(unmatched), sorted(unmatched)[:3])
    if extra:
        log.warning("%s: prediction labels not in the dataset's categories: %s", path,
                    sorted(extra))
    models = rows.pop(MODEL)
    df = _frame(rows, path.stem)
    df[MODEL] = pd.Categorical(models)
    return df


# ----------------------------------------------------------------------------- entry point
def load_predictions(source: Path | str, ds: Dataset, *, names=None,
                     yolo_columns: str = "auto", issues: IssueLog | None = None
                     ) -> pd.DataFrame:
    """Predictions in ``source`` for the images of ``ds``, as a PREDICTIONS_SCHEMA frame.

    ``names``: the model's class names (see the module doc) when its class order differs
    from the dataset's. ``yolo_columns``: "auto", "class_box_conf" or "class_conf_box" for
    YOLO txt files. ``issues`` collects what was decided or skipped (the caller adds them to
    the dataset's load issues)."""
    if yolo_columns not in YOLO_COLUMNS:
        raise ValueError(f"yolo_columns must be one of {YOLO_COLUMNS}, got {yolo_columns!r}.")
    path = Path(source)
    if path.is_dir():
        return _yolo_folder(path, ds, names=names, columns=yolo_columns, issues=issues)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file or directory. Check the predictions path.")
    if path.suffix.lower() != ".json":
        raise DatasetError(f"{path}: predictions must be a COCO results .json, a Label Studio "
                           ".json export, or a folder of YOLO .txt files.")
    data = read_bytes(path)
    doc = parse_json(path, data)
    if isinstance(doc, dict):
        if any(k in doc for k in ("images", "annotations", "categories")):
            raise DatasetError(
                f"{path}: this looks like a COCO dataset, not a results list. Predictions are "
                "a JSON list [{image_id, category_id, bbox, score}] (what pycocotools' "
                "loadRes reads); load this file as the dataset instead.")
        if "data" in doc:
            return _labelstudio(path, ds)
        raise DatasetError(f"{path}: expected a JSON list of predictions, got an object with "
                           f"keys {sorted(doc)[:8]}. Write [{{image_id, category_id, bbox, "
                           "score}}].")
    expect(isinstance(doc, list), path,
           f"expected a JSON list of predictions, got a JSON {type(doc).__name__}.")
    if not doc:
        return _frame({k: [] for k in (IMAGE_ID, CATEGORY_ID, SCORE, X, Y, W, H)}, path.stem)
    first = doc[0]
    if isinstance(first, dict) and "data" in first:
        return _labelstudio(path, ds)
    cmap = _names_map(read_names(names), ds, path, issues) if names is not None else None
    return _coco_results(path, doc, ds, cmap)


__all__ = ["detect_yolo_columns", "find_predictions", "load_predictions", "read_names"]
