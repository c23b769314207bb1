"""Label Studio JSON export: a list of tasks ``{id, data: {image}, annotations, predictions}``.

* ``annotations[].result[]`` of type ``rectanglelabels``: ``value.x/y/width/height`` are in
  PERCENT of ``original_width`` / ``original_height``; converted to pixels. A rotated box
  (``value.rotation != 0``) gives a warning and its unrotated box is kept. ``polygonlabels``
  become a bbox plus a COCO ``segmentation``; ``choices`` are image-level labels (NaN box).
* ``annotations[].completed_by`` (an int user id, or a dict with ``email``) names the annotator
  (``email``, else ``user_<id>``). ``was_cancelled`` annotations are skipped.
* ``predictions[]`` (``model_version``, a ``score`` on the prediction or on each result)
  become ``Dataset.predictions`` (model = ``model_version`` or ``"labelstudio"``).
* The image file name comes from ``data.image`` with Label Studio's serving prefixes stripped
  (``/data/local-files/?d=`` keeps the relative path, ``/data/upload/<project>/`` and URLs keep
  the base name).
* A folder (or its ``annotations/``) of several exports: one export per annotator. An export
  whose annotations name at most one user is attributed to its file stem; otherwise each
  annotation keeps its ``completed_by`` name. Tasks are matched across files by image name.

Categories are the labels seen, ids 1..n in sorted name order.
"""

from __future__ import annotations

import logging
import math
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from qa.dataset import (
    ANNOTATOR,
    CATEGORY_ID,
    DEFAULT_ANNOTATOR,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    MODEL,
    NAME,
    PRED_ID,
    SCORE,
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
    IMAGE_EXTENSIONS,
    IssueLog,
    categories_by_name,
    expect,
    ids_by_file_name,
    named_box_annotations,
    parse_json,
    read_bytes,
)
from qa.io.coco import _guess_root, split_from_name

log = logging.getLogger(__name__)

DEFAULT_LS_MODEL = "labelstudio"
_IMAGE_KEYS = ("image", "img", "image_url", "url")
_BOX_TYPES = ("rectanglelabels", "rectangle")
_POLY_TYPES = ("polygonlabels", "polygon")
_IGNORED_TYPES = ("relation",)
_NAN4 = (math.nan, math.nan, math.nan, math.nan)


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v) -> list:
    return v if isinstance(v, list) else []


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def image_file_name(ref: str) -> str:
    """File name of a task's image reference, relative (Label Studio prefixes stripped)."""
    s = unquote(ref.strip())
    if "?d=" in s:  # /data/local-files/?d=dir/a.jpg
        return s.split("?d=", 1)[1].lstrip("/")
    if s.startswith("/data/upload/"):  # /data/upload/<project>/<hash>-a.jpg
        return posixpath.basename(s)
    if "://" in s:
        u = urlparse(s)
        if u.scheme in ("s3", "gs", "azure-blob"):  # bucket/key -> key
            return u.path.lstrip("/")
        return posixpath.basename(u.path)
    return s.lstrip("/")


def annotator_name(completed_by) -> str | None:
    """``email`` of a completed_by dict, else ``user_<id>``; None if absent."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email:
            return email
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool):
        return None
    if isinstance(completed_by, int):
        return f"user_{completed_by}"
    if isinstance(completed_by, str) and completed_by:
        return completed_by
    return None


def _image_ref(data: dict) -> str | None:
    for k in _IMAGE_KEYS:
        if isinstance(data.get(k), str) and data[k].strip():
            return data[k]
    for v in data.values():  # a custom key: the first string that looks like an image
        if isinstance(v, str) and len(v) < 4096 and \
                urlparse(unquote(v)).path.lower().endswith(IMAGE_EXTENSIONS):
            return v
    return None


class _Export:
    """Rows parsed from one export file."""

    def __init__(self) -> None:
        self.images: dict[str, dict] = {}  # file_name -> {width, height, split}
        self.anns: list[dict] = []  # file_name, annotator, label, x, y, w, h, seg
        self.preds: list[dict] = []  # file_name, model, label, score, x, y, w, h
        self.users: set[str] = set()
        self.tasks_of: dict[str, list] = {}  # annotator -> tasks they submitted


def _results(task_no, where, path: Path, res_list, size: dict, issues: IssueLog, warned: set,
             image_id=None):
    """(label, box, segmentation, score) tuples of one annotation's / prediction's results."""
    out = []
    for j, r in enumerate(_list(res_list)):
        if not isinstance(r, dict):
            issues.error("malformed_result",
                         f"{path}: task {task_no} {where} result[{j}] is not an object; "
                         "skipped.", image_id=image_id)
            continue
        rtype = r.get("type")
        val = _dict(r.get("value"))
        rid = r.get("id", j)
        item = f"{path}: task {task_no} {where} result {rid!r}"
        ow, oh = _num(r.get("original_width")), _num(r.get("original_height"))
        if ow and oh and not size.get("w"):
            size["w"], size["h"] = ow, oh
        score = _num(r.get("score"))
        if rtype in _IGNORED_TYPES:
            continue
        if rtype == "choices":
            labels = _list(val.get("choices"))
            box, seg = _NAN4, None
        elif rtype in _BOX_TYPES or rtype in _POLY_TYPES:
            labels = _list(val.get(rtype if rtype.endswith("labels") else "labels")) or \
                _list(val.get("rectanglelabels")) or _list(val.get("polygonlabels"))
            ow, oh = ow or size.get("w"), oh or size.get("h")
            if not ow or not oh:
                issues.error("unknown_image_size",
                             f"{item} has no original_width/original_height, so its percent "
                             "coordinates cannot be converted to pixels; quarantined. "
                             "Re-export from Label Studio.", image_id=image_id)
                continue
            seg = None
            if rtype in _BOX_TYPES:
                v = [_num(val.get(k)) for k in ("x", "y", "width", "height")]
                if any(t is None for t in v):
                    issues.error("malformed_result",
                                 f"{item}: value needs numeric x, y, width, height (percent), "
                                 f"got {str(val)[:100]}; quarantined.", image_id=image_id)
                    continue
                rot = _num(val.get("rotation")) or 0.0
                if rot != 0.0:
                    issues.warning("rotated_box",
                                   f"{item}: box rotated by {rot:g} degrees; the unrotated box "
                                   "is used.", image_id=image_id)
                box = (v[0] / 100 * ow, v[1] / 100 * oh, v[2] / 100 * ow, v[3] / 100 * oh)
            else:
                pts = [(_num(p[0]), _num(p[1])) for p in _list(val.get("points"))
                       if isinstance(p, list) and len(p) == 2]
                if len(pts) < 3 or any(a is None or b is None for a, b in pts):
                    issues.error("malformed_result",
                                 f"{item}: polygon needs at least 3 numeric [x, y] points; "
                                 "quarantined.", image_id=image_id)
                    continue
                xy = np.array(pts, dtype=np.float64) / 100 * (ow, oh)
                x0, y0 = xy.min(axis=0)
                x1, y1 = xy.max(axis=0)
                box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
                seg = [xy.ravel().round(3).tolist()]
        else:
            key = (str(path), str(rtype))
            if key not in warned:
                warned.add(key)
                issues.warning("unsupported_result",
                               f"{item}: result type {rtype!r} is not supported (boxes, "
                               "polygons and choices are); such results are skipped.")
            continue
        if not labels or not all(isinstance(lb, str) and lb for lb in labels):
            issues.error("malformed_result",
                         f"{item}: needs a non-empty list of label names, got "
                         f"{str(labels)[:80]}; quarantined.", image_id=image_id)
            continue
        for lb in labels:
            out.append((lb, box, seg, score))
    return out


def parse_export(path: Path, issues: IssueLog) -> _Export:
    """Images, annotations and predictions of one Label Studio export file."""
    data = read_bytes(path)
    doc = parse_json(path, data)
    if isinstance(doc, dict) and "data" in doc:
        doc = [doc]  # a single task
    if isinstance(doc, dict) and isinstance(doc.get("images"), list):
        raise DatasetError(f"{path}: this is a COCO file, not a Label Studio export; load it "
                           "with format='coco'.")
    expect(isinstance(doc, list), path,
           f"expected a Label Studio export (a JSON list of tasks), got a JSON "
           f"{type(doc).__name__}. Export the project as 'JSON' from Label Studio.")
    ex = _Export()
    warned: set = set()
    for i, task in enumerate(doc):
        data = _dict(task).get("data")
        ref = _image_ref(data) if isinstance(data, dict) else None
        task_no = task.get("id", i) if isinstance(task, dict) else i
        if ref is None:
            issues.error("malformed_task",
                         f"{path}: task {task_no!r} (tasks[{i}]) has no image reference in "
                         "'data' (e.g. data.image); skipped.")
            continue
        fn = image_file_name(ref)
        if not fn:
            issues.error("malformed_task", f"{path}: task {task_no!r}: image reference {ref!r} "
                         "has no file name; skipped.")
            continue
        img = ex.images.setdefault(fn, {"w": None, "h": None, "split": None})
        sp = data.get("split")
        if isinstance(sp, str) and img["split"] is None:
            img["split"] = split_from_name(sp)
        anns = task.get("annotations")
        if anns is None or anns == []:  # Label Studio < 1.0 called them completions
            anns = task.get("completions", anns)
        if isinstance(anns, dict):
            issues.warning("malformed_task",
                           f"{path}: task {task_no!r}: 'annotations' is an object, expected a "
                           "list of annotations; read as a list of one. Re-export from Label "
                           "Studio to be sure nothing was lost.")
            anns = [anns]
        elif anns is not None and not isinstance(anns, list):
            issues.error("malformed_task",
                         f"{path}: task {task_no!r}: 'annotations' is a "
                         f"{type(anns).__name__}, expected a list; the task's annotations are "
                         "skipped. Re-export from Label Studio.")
            anns = []
        anns = anns or []
        for k, a in enumerate(anns):
            if not isinstance(a, dict) or a.get("was_cancelled") is True:
                continue
            who = annotator_name(a.get("completed_by"))
            if who:
                ex.users.add(who)
                ex.tasks_of.setdefault(who, []).append(task_no)
            for lb, box, seg, _ in _results(task_no, f"annotation {a.get('id', k)!r}", path,
                                            a.get("result"), img, issues, warned):
                ex.anns.append({FILE_NAME: fn, ANNOTATOR: who, NAME: lb, X: box[0], Y: box[1],
                                W: box[2], H: box[3], SEGMENTATION: seg})
        for k, p in enumerate(_list(task.get("predictions"))):
            if not isinstance(p, dict):
                continue
            model = p.get("model_version")
            model = model if isinstance(model, str) and model else DEFAULT_LS_MODEL
            pscore = _num(p.get("score"))
            for lb, box, _, score in _results(task_no, f"prediction {p.get('id', k)!r}", path,
                                              p.get("result"), img, issues, warned):
                ex.preds.append({FILE_NAME: fn, MODEL: model, NAME: lb,
                                 SCORE: score if score is not None else pscore,
                                 X: box[0], Y: box[1], W: box[2], H: box[3]})
    labelled = {a[ANNOTATOR] for a in ex.anns}
    for who in sorted(ex.users - labelled):
        tasks = ex.tasks_of.get(who, [])
        issues.warning("empty_annotator",
                       f"{path}: annotator {who!r} submitted {len(tasks)} annotation(s) (tasks "
                       f"{tasks[:5]}{' ...' if len(tasks) > 5 else ''}) with no usable result; "
                       "check their export (empty or skipped annotations).")
    return ex


def _export_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        ann_dir = path / "annotations" if (path / "annotations").is_dir() else path
        files = sorted(ann_dir.glob("*.json"))
        if not files:
            from qa.io.layout import found

            raise DatasetError(f"{path}: no Label Studio *.json exports found (looked in "
                               f"annotations/ and the folder itself). {found(path)}")
        return files
    raise DatasetError(f"{path}: no such file or directory. Check the path.")


def read(path: Path | str, *, image_root=None) -> Dataset:
    """Read a Label Studio export (or a folder of one export per annotator) into a Dataset."""
    path = Path(path)
    issues = IssueLog()
    files = _export_files(path)
    images: dict[str, dict] = {}
    anns: list[dict] = []
    preds: list[dict] = []
    annotators: list[str] = []
    for f in files:
        ex = parse_export(f, issues)
        by_stem = len(files) > 1 and len(ex.users) <= 1
        for a in ex.anns:
            if by_stem:
                a[ANNOTATOR] = f.stem
            elif a[ANNOTATOR] is None:
                a[ANNOTATOR] = DEFAULT_ANNOTATOR
        annotators += [f.stem] if by_stem else sorted(ex.users)
        for fn, im in ex.images.items():
            cur = images.setdefault(fn, dict(im))
            for k in ("w", "h", "split"):
                if cur[k] is None:
                    cur[k] = im[k]
        anns += ex.anns
        preds += ex.preds

    ids = ids_by_file_name(images)
    fns = sorted(images)
    imgs = pd.DataFrame({
        IMAGE_ID: [ids[f] for f in fns], FILE_NAME: fns,
        WIDTH: pd.array([None if images[f]["w"] is None else int(round(images[f]["w"]))
                         for f in fns], dtype="Int64"),
        HEIGHT: pd.array([None if images[f]["h"] is None else int(round(images[f]["h"]))
                          for f in fns], dtype="Int64"),
        SPLIT: [images[f]["split"] for f in fns],
    })
    cat_ids, cats = categories_by_name(sorted({r[NAME] for r in anns} | {r[NAME] for r in preds}))
    a = pd.DataFrame(anns, columns=[FILE_NAME, ANNOTATOR, NAME, X, Y, W, H, SEGMENTATION])
    annotations = named_box_annotations(a, ids, cat_ids)
    if a[SEGMENTATION].notna().any():
        annotations[SEGMENTATION] = a[SEGMENTATION].tolist()
    p = pd.DataFrame(preds, columns=[FILE_NAME, MODEL, NAME, SCORE, X, Y, W, H])
    predictions = pd.DataFrame({
        PRED_ID: np.arange(1, len(p) + 1, dtype=np.int64),
        IMAGE_ID: p[FILE_NAME].map(ids).astype("int64"),
        CATEGORY_ID: p[NAME].map(cat_ids).astype("int64"),
        SCORE: p[SCORE].astype("float64"),
        X: p[X].astype("float64"), Y: p[Y].astype("float64"),
        W: p[W].astype("float64"), H: p[H].astype("float64"),
        MODEL: p[MODEL].astype("object"),
    })
    root = _guess_root(files[0], fns, image_root)
    return Dataset(images=imgs, categories=cats, annotations=annotations,
                   predictions=predictions, root=root, format="labelstudio",
                   name=path.stem if path.is_file() else path.name,
                   annotators=tuple(dict.fromkeys(annotators)), load_issues=issues.frame())
