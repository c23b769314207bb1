"""Format readers. ``load(path)`` sniffs the format and returns a :class:`qa.Dataset`.

One module per format; each exposes ``read(path, *, image_root=None) -> Dataset`` that parses
labels only (it never opens images) and records quarantined rows in ``Dataset.load_issues``.
``load`` then probes the image files (headers, in parallel) and attaches predictions.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import re
from pathlib import Path
from typing import Callable

import pandas as pd

from qa.dataset import EXISTS, PRED_ID, Dataset, DatasetError
from qa.io._common import check_root
from qa.paths import confined_to

log = logging.getLogger(__name__)

# format name -> module in qa.io holding its `read`
FORMATS = {
    "coco": "qa.io.coco",
    "yolo": "qa.io.yolo",
    "voc": "qa.io.voc",
    "labelstudio": "qa.io.labelstudio",
    "cvat": "qa.io.cvat",
    "imagefolder": "qa.io.classification",
    "csv": "qa.io.csvlabels",
    "createml": "qa.io.createml",
}
_READ_FN = {"imagefolder": "read_imagefolder"}


def _peek_json(path: Path, n: int = 4096) -> str:
    with open(path, "rb") as f:
        head = f.read(n)
    return head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")


_COCO_LIST = re.compile(r'"(?:images|categories)"\s*:\s*\[')
_COCO_ANNOTATIONS = re.compile(r'"annotations"\s*:\s*\[')


def _sniff_json(path: Path) -> str | None:
    try:
        head = _peek_json(path, 1 << 16)
    except OSError:
        return None
    if head.startswith("["):
        if '"image"' in head and '"coordinates"' in head:
            return "createml"
        if '"data"' in head and ('"annotations"' in head or '"predictions"' in head
                                 or '"id"' in head):
            return "labelstudio"
        if '"bbox"' in head and '"score"' in head:
            return "coco_results"
        if '"data"' in head:
            return "labelstudio"
        return None
    if head.startswith("{"):
        if _COCO_LIST.search(head):  # "images": [ ... (not a summary's "images": 364)
            return "coco"
        if '"data"' in head:  # a single Label Studio task: {"data": ..., "annotations": ...}
            return "labelstudio"
        if _COCO_ANNOTATIONS.search(head):
            return "coco"
    return None


def _sniff_xml(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8", errors="replace")
    if "<annotations" in head:
        return "cvat"
    if "<annotation" in head:
        return "voc"
    return None


def sniff_format(path: Path | str) -> str:
    """Name of the format of ``path`` (a file or a directory); DatasetError if unknown."""
    p = Path(path)
    try:
        exists = p.exists()
    except OSError as exc:  # a name longer than the file system allows, no permission ...
        raise DatasetError(f"{p}: cannot be read ({exc.strerror or exc}). Check the path.") \
            from None
    if not exists:
        raise DatasetError(f"{p}: no such file or directory. Check the path.")
    if p.is_file():
        suf = p.suffix.lower()
        if suf == ".json":
            fmt = _sniff_json(p)
            if fmt == "coco_results":
                raise DatasetError(
                    f"{p}: this is a predictions file (COCO results: a list of image_id, "
                    "category_id, bbox, score). Load the dataset's labels and pass this file as "
                    "predictions=... (--predictions on the command line)."
                )
            if fmt:
                return fmt
        elif suf == ".xml":
            fmt = _sniff_xml(p)
            if fmt:
                return fmt
        elif suf in (".yaml", ".yml"):
            return "yolo"
        elif suf in (".csv", ".tsv"):
            return "csv"
        raise DatasetError(
            f"{p}: cannot tell the format of this file. Expected COCO or Label Studio JSON, "
            "CVAT or VOC XML, a YOLO data.yaml, a Create ML JSON or a CSV; pass format=... to "
            f"choose one of {sorted(FORMATS)}."
        )
    # a directory
    from qa.io.layout import detect_folder, refusal

    fmt = detect_folder(p)
    if fmt is None:
        raise DatasetError(refusal(p))
    return fmt


def read_labels(path: Path | str, *, format: str = "auto", image_root=None,
                confine_to: Path | str | None = None, voc_coordinates: str = "auto") -> Dataset:
    """Parse the labels at ``path`` without touching image files (YOLO reads headers).

    ``confine_to``: a folder the whole load must stay inside (an upload's extraction folder,
    see :func:`qa.paths.confined_to`): the root, YOLO ``path:`` and split entries, and any
    guess of the image folder outside it raise DatasetError."""
    p = Path(path)
    with confined_to(confine_to):
        check_root(p, p, "the dataset path")
        fmt = sniff_format(p) if format == "auto" else format
        if fmt not in FORMATS:
            raise DatasetError(
                f"Unknown format {fmt!r}; choose one of {sorted(FORMATS)} or 'auto'.")
        mod = importlib.import_module(FORMATS[fmt])
        reader = getattr(mod, _READ_FN.get(fmt, "read"))
        opts = {"voc_coordinates": voc_coordinates} if fmt == "voc" else {}
        try:
            ds = reader(p, image_root=image_root, **opts)
        except RecursionError:
            raise DatasetError(
                f"{p}: the labels are nested too deeply to read (thousands of levels of "
                "lists or objects); no labelling tool writes that. Re-export the file.") from None
        if ds.root is not None:
            check_root(Path(ds.root), p, "the image folder")
    _check_not_empty(ds, p, fmt)
    return ds


# What each format needs, for the message when a recognised format yields nothing.
_EXPECTED = {
    "coco": "an 'images' list in the JSON",
    "yolo": "image files under the split folders or lists of data.yaml (or obj.data)",
    "voc": "one <annotation> XML file per image",
    "labelstudio": "tasks whose 'data' names an image",
    "cvat": "<image> elements in the XML",
    "imagefolder": "class sub-folders holding image files (root/class/img.jpg)",
    "csv": "rows under the header: 'filename,...,class,xmin,ymin,xmax,ymax', 'image,label' "
           "or 'filename,<class 1>,<class 2>...'",
    "createml": "entries {image, annotations} in the JSON list",
}


def _check_not_empty(ds: Dataset, path: Path, fmt: str) -> None:
    """A recognised format that yields 0 images, or images with neither labels nor classes,
    is an error that says what was expected: it never loads as an empty dataset quietly."""
    why = " ".join(ds.load_issues["message"].astype(str).head(2))
    why = f" The reader said: {why}" if why else ""
    if len(ds.images) == 0:
        raise DatasetError(f"{path}: read as {fmt} but found 0 images; expected "
                           f"{_EXPECTED.get(fmt, 'images')}.{why}")
    if len(ds.annotations) == 0 and len(ds.categories) == 0 and len(ds.predictions) == 0:
        raise DatasetError(f"{path}: read as {fmt}: {len(ds.images)} images but no labels and "
                           f"no classes; expected {_EXPECTED.get(fmt, 'labels')}. Check that "
                           f"this is the labels export (not only the images).{why}")


def load(
    path: Path | str,
    *,
    format: str = "auto",
    predictions: Path | str | list | None = None,
    image_root: Path | str | None = None,
    probe: bool = True,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
    confine_to: Path | str | None = None,
    voc_coordinates: str = "auto",
    prediction_names=None,
    yolo_columns: str = "auto",
) -> Dataset:
    """Load a dataset from ``path`` and return a :class:`Dataset`.

    Parameters
    ----------
    path : a labels file or a dataset folder (see README for the layouts).
    format : "auto" (sniffed) or one of ``FORMATS``.
    predictions : a model's predictions (COCO results JSON, a folder of YOLO txt files with a
        confidence column, or a Label Studio export with predictions); a list loads several
        models.
    image_root : where image files live, if not where the format says.
    probe : read image headers (size, readable) in parallel; False skips all image I/O.
    strict : raise DatasetError if validation finds any error instead of quarantining.
    confine_to : for an upload, its extraction folder: the dataset root, a YOLO ``path:``,
        split entries and the guess of the image folder must lie inside it (DatasetError
        otherwise). Local datasets need none: their root is whatever the labels say, and
        nothing outside the root is ever read (see :mod:`qa.paths`).
    voc_coordinates : Pascal VOC only: "one_based" (the devkit's), "zero_based" (CVAT's), or
        "auto" (zero-based for files that say they are CVAT/Datumaro exports); see
        :mod:`qa.io.voc`.
    prediction_names : the model's class names (a names file, a data.yaml, a list or a dict)
        when its class order differs from the dataset's; see :mod:`qa.io.predictions`.
    yolo_columns : column order of YOLO prediction txt files: "auto" (detected),
        "class_box_conf" or "class_conf_box".

    Malformed files raise :class:`DatasetError` naming the file and position. Bad rows in a
    well-formed file are quarantined into ``Dataset.load_issues`` (see :func:`qa.validate`).
    The user's files are only read.
    """
    from qa.io._common import probe_images

    ds = read_labels(path, format=format, image_root=image_root, confine_to=confine_to,
                     voc_coordinates=voc_coordinates)
    if probe and EXISTS not in ds.images.columns:  # YOLO probes while reading (needs sizes)
        ds = dataclasses.replace(ds, images=probe_images(ds.images, ds.root, progress=progress))
    if predictions is not None:
        ds, _ = attach_predictions(ds, predictions, names=prediction_names,
                                   yolo_columns=yolo_columns)
    if strict:
        from qa.validation import validate

        report = validate(ds)
        if report.n_errors:
            first = report.errors.head(5)["message"].tolist()
            raise DatasetError(
                f"{path}: {report.n_errors} validation error(s) with strict=True; first: "
                + " | ".join(first)
            )
    return ds


def attach_predictions(ds: Dataset, sources, *, errors: str = "raise", names=None,
                       yolo_columns: str = "auto") -> tuple[Dataset, list[str]]:
    """``ds`` with the predictions of ``sources`` (a path or a list, one model each) and the
    messages of the files that could not be read. ``errors="raise"`` raises DatasetError on
    the first bad file; ``"collect"`` skips it and returns its message, so a dashboard can
    show the labels without that model. ``names`` / ``yolo_columns``: see
    :func:`qa.io.predictions.load_predictions`. What was decided while reading (a detected
    column order, skipped files) is added to ``ds.load_issues``."""
    from qa.io._common import IssueLog
    from qa.io.predictions import load_predictions

    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', got {errors!r}")
    sources = [sources] if not isinstance(sources, (list, tuple)) else sources
    frames, problems = [], []
    issues = IssueLog()
    for src in sources:
        try:
            frames.append(load_predictions(src, ds, names=names, yolo_columns=yolo_columns,
                                           issues=issues))
        except RecursionError:
            msg = f"{src}: the predictions are nested too deeply to read; re-export the file."
            if errors == "raise":
                raise DatasetError(msg) from None
            problems.append(msg)
        except DatasetError as exc:
            if errors == "raise":
                raise
            problems.append(str(exc))
    if issues.rows:
        ds = dataclasses.replace(ds, load_issues=pd.concat(
            [df for df in (ds.load_issues, issues.frame()) if len(df)], ignore_index=True))
    if not frames:
        return ds, problems
    merged = pd.concat(frames, ignore_index=True)
    merged[PRED_ID] = range(1, len(merged) + 1)  # each frame numbers from 1: unique key again
    return ds.with_predictions(merged), problems


__all__ = ["attach_predictions", "load", "read_labels", "sniff_format", "FORMATS"]
