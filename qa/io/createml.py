"""Apple Create ML object-detection JSON (Roboflow's "CreateML" export).

A JSON list, one entry per image: ``{"image": "a.jpg", "annotations": [{"label": "cat",
"coordinates": {"x": cx, "y": cy, "width": w, "height": h}}]}``. Create ML gives the box
*centre* in pixels, so ``x = cx - w / 2``. An entry with an empty ``annotations`` list is an
image without objects. Roboflow writes ``_annotations.createml.json`` in each split folder
(``train/ valid/ test/``) with the images beside it; such a folder is read as one dataset.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qa.dataset import DEFAULT_ANNOTATOR, FILE_NAME, IMAGE_ID, NAME, Dataset, DatasetError, H, \
    W, X, Y
from qa.io._common import (
    IssueLog,
    categories_by_name,
    expect,
    ids_by_file_name,
    is_file,
    named_box_annotations,
    parse_json,
)
from qa.io._splits import combine_splits, note_unlisted_images, split_folders
from qa.io.coco import _guess_root

ROBOFLOW_NAME = "_annotations.createml.json"
MAX_ISSUES = 100


def is_createml(doc) -> bool:
    """A Create ML document: a list of objects with 'image' and 'annotations'."""
    return isinstance(doc, list) and bool(doc) and all(
        isinstance(e, dict) and "image" in e and "annotations" in e for e in doc[:20])


def read_file(path: Path, *, image_root=None, issues: IssueLog | None = None) -> Dataset:
    """One Create ML JSON file as a Dataset (image files relative to its folder)."""
    path = Path(path)
    issues = IssueLog() if issues is None else issues
    doc = parse_json(path)
    expect(isinstance(doc, list), path, "expected a Create ML list of {image, annotations} "
                                        f"entries, got a JSON {type(doc).__name__}.")
    files, boxes, n_bad = [], [], 0
    for i, e in enumerate(doc):
        fn = e.get("image") if isinstance(e, dict) else None
        if not isinstance(fn, str) or not fn:
            n_bad += 1
            if n_bad <= MAX_ISSUES:
                issues.error("malformed_image", f"{path}: entry [{i}] has no 'image' file "
                                                "name; skipped. Fix that entry.")
            continue
        fn = fn.replace("\\", "/")
        files.append(fn)
        for j, a in enumerate(e.get("annotations") or []):
            c = a.get("coordinates") if isinstance(a, dict) else None
            label = a.get("label") if isinstance(a, dict) else None
            try:
                cx, cy, w, h = (float(c[k]) for k in ("x", "y", "width", "height"))
            except (TypeError, KeyError, ValueError):
                cx = None
            if cx is None or not isinstance(label, str) or not label:
                n_bad += 1
                if n_bad <= MAX_ISSUES:
                    issues.error("malformed_annotation",
                                 f"{path}: entry [{i}] ({fn}) annotation [{j}] needs a 'label' "
                                 "and 'coordinates' {x, y, width, height}; quarantined.")
                continue
            boxes.append((fn, label, cx - w / 2, cy - h / 2, w, h))
    if n_bad > MAX_ISSUES:
        issues.error("malformed_annotation", f"{path}: {n_bad - MAX_ISSUES} more malformed "
                                             "entries.")
    ids = ids_by_file_name(files)
    cat_ids, cats = categories_by_name(sorted({b[1] for b in boxes}))
    a = pd.DataFrame(boxes, columns=[FILE_NAME, NAME, X, Y, W, H])
    anns = named_box_annotations(a, ids, cat_ids, annotator=DEFAULT_ANNOTATOR)
    fns = sorted(ids)
    images = pd.DataFrame({IMAGE_ID: [ids[f] for f in fns], FILE_NAME: fns})
    root = _guess_root(path, fns, image_root)
    return Dataset(images=images, categories=cats, annotations=anns, root=root,
                   format="createml", name=path.stem, annotators=(DEFAULT_ANNOTATOR,),
                   load_issues=issues.frame())


def read(path: Path | str, *, image_root=None) -> Dataset:
    """A Create ML JSON file, or a folder of split folders holding
    ``_annotations.createml.json``, as a Dataset."""
    import dataclasses

    path = Path(path)
    if not path.is_dir():
        ds = read_file(path, image_root=image_root)
        files = {"": path.name}
    else:
        parts = [(s, d / ROBOFLOW_NAME) for s, d in split_folders(path)
                 if is_file(d / ROBOFLOW_NAME)]
        if not parts and is_file(path / ROBOFLOW_NAME):
            return read(path / ROBOFLOW_NAME, image_root=image_root)
        if not parts:
            from qa.io.layout import found

            raise DatasetError(f"{path}: no {ROBOFLOW_NAME} here or in split folders (train/, "
                               f"valid/, test/). {found(path)}")
        ds = combine_splits(path, [(s, read_file(f, image_root=image_root)) for s, f in parts],
                            fmt="createml", name=path.name)
        files = {f.parent.name: f.name for _, f in parts}
    issues = IssueLog()
    if note_unlisted_images(ds.images, ds.root, issues, lambda d: files.get(d, ROBOFLOW_NAME)):
        ds = dataclasses.replace(ds, load_issues=pd.concat(
            [x for x in (ds.load_issues, issues.frame()) if len(x)], ignore_index=True))
    return ds
