"""Datasets exported one split per folder, and the images a labels file does not mention.

Roboflow and many tutorials export ``train/ valid/ test/``, each holding its own labels file
(``_annotations.coco.json``, ``_annotations.csv``, ``_classes.csv``,
``_annotations.createml.json``, or one VOC XML per image) with the images beside it. A reader
reads each split folder on its own and :func:`combine_splits` joins them into one Dataset whose
file names are relative to the top folder (``train/a.jpg``) and whose ``split`` says where
each image came from.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    CATEGORY_ID,
    FILE_NAME,
    IMAGE_ID,
    NAME,
    SPLIT,
    Dataset,
)
from qa.io._common import IMAGE_EXTENSIONS, IssueLog, is_dir
from qa.paths import is_within

# Folder names that are splits (Roboflow writes "valid"; COCO "train2017" ...).
SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def split_of_folder(name: str) -> str | None:
    """'train'/'val'/'test' for a split folder's name (``valid`` -> val, ``train2017`` ->
    train), else None. The whole name must be a split word, digits after it allowed:
    ``test_images`` or ``my_test`` are no splits."""
    import re

    m = re.fullmatch(r"([A-Za-z]+)[-_]?\d*", name)
    return SPLIT_WORDS.get(m.group(1).lower()) if m else None


def split_folders(top: Path) -> list[tuple[str, Path]]:
    """(split, folder) for each sub-folder of ``top`` named like a split, in train/val/test
    order; folders whose real location leaves ``top`` are left out (the path rule)."""
    try:
        subs = [d for d in Path(top).iterdir() if is_dir(d) and not d.name.startswith(".")]
    except OSError:
        return []
    out = [(s, d) for d in subs if (s := split_of_folder(d.name)) and is_within(top, d)]
    return sorted(out, key=lambda t: (_SPLIT_ORDER.get(t[0], 9), t[1].name))


def combine_splits(top: Path, parts: list[tuple[str | None, Dataset]], *, fmt: str,
                   name: str, issues: IssueLog | None = None,
                   root: Path | None = None) -> Dataset:
    """One Dataset from per-split Datasets: file names relative to ``root`` (default ``top``),
    ``split`` set from each part (where the part did not say), categories joined by name
    (ids kept when every part agrees on them), image ids 1..n in split order, annotation ids
    kept when unique and renumbered otherwise (load issues follow their image and box)."""
    root = Path(root) if root is not None else Path(top)
    parts = [(s, d) for s, d in parts if d is not None]
    cat_ids, cats = _joined_categories([d.categories for _, d in parts])
    imgs, anns, part_issues = [], [], []
    next_img = 1
    for split, d in parts:
        im = d.images.copy()
        base = Path(d.root) if d.root is not None else root
        im[FILE_NAME] = [_relative(base, f, root) for f in im[FILE_NAME]]
        if split is not None:
            cur = im[SPLIT].astype("object")
            im[SPLIT] = cur.where(cur.notna(), split)
        im["_old"] = im[IMAGE_ID]
        im[IMAGE_ID] = np.arange(next_img, next_img + len(im), dtype=np.int64)
        next_img += len(im)
        id_map = dict(zip(im["_old"], im[IMAGE_ID]))
        a = d.annotations.copy()
        a[IMAGE_ID] = a[IMAGE_ID].map(id_map).astype("Int64").fillna(-1).astype("int64")
        local = dict(zip(d.categories[CATEGORY_ID], d.categories[NAME]))
        a[CATEGORY_ID] = a[CATEGORY_ID].map(lambda c: cat_ids.get(local.get(c, f"class_{c}"), c))
        li = d.load_issues.copy()
        li[IMAGE_ID] = pd.array([id_map.get(v) if pd.notna(v) else None
                                 for v in li[IMAGE_ID]], dtype="Int64")
        imgs.append(im.drop(columns="_old"))
        anns.append(a)
        part_issues.append(li)
    images = pd.concat(imgs, ignore_index=True) if imgs else None
    all_ids = pd.concat([a[ANN_ID] for a in anns], ignore_index=True) if anns else pd.Series()
    if all_ids.duplicated().any():  # each part numbered from 1: renumber, issues follow
        start = 1
        for a, li in zip(anns, part_issues):
            new_ids = np.arange(start, start + len(a), dtype=np.int64)
            amap = dict(zip(a[ANN_ID], new_ids))
            a[ANN_ID] = new_ids
            li[ANN_ID] = pd.array([amap.get(v) if pd.notna(v) else None
                                   for v in li[ANN_ID]], dtype="Int64")
            start += len(a)
    annotations = pd.concat(anns, ignore_index=True) if anns else None
    frames = [x for x in part_issues if len(x)]
    if issues is not None and issues.rows:
        frames.append(issues.frame())
    annotators = tuple(dict.fromkeys(a for _, d in parts for a in d.annotators))
    kw = {"load_issues": pd.concat(frames, ignore_index=True)} if frames else {}
    return Dataset(images=images, categories=cats, annotations=annotations, root=root,
                   format=fmt, name=name, annotators=annotators, **kw)


def _joined_categories(frames: list[pd.DataFrame]) -> tuple[dict[str, int], pd.DataFrame]:
    """(name -> id, categories table) over several parts: the parts' own ids when no id names
    two classes and no class has two ids, else 1..n in order of first appearance."""
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=[CATEGORY_ID, NAME])
    rows = rows.drop_duplicates([CATEGORY_ID, NAME])
    consistent = not rows[CATEGORY_ID].duplicated().any() and not rows[NAME].duplicated().any()
    if consistent:
        rows = rows.sort_values(CATEGORY_ID, ignore_index=True)
        return dict(zip(rows[NAME], rows[CATEGORY_ID])), rows
    rows = rows.drop_duplicates(NAME, ignore_index=True)
    rows[CATEGORY_ID] = np.arange(1, len(rows) + 1, dtype=np.int64)
    return dict(zip(rows[NAME], rows[CATEGORY_ID])), rows


def _relative(base: Path, file_name: str, root: Path) -> str:
    """``base / file_name`` relative to ``root`` when it lies below it (lexically), else the
    file name as given (probing then reports it)."""
    full = os.path.normpath(os.path.join(base, str(file_name)))
    rel = os.path.relpath(full, root)
    return str(file_name) if rel.startswith("..") else rel.replace(os.sep, "/")


def note_unlisted_images(images: pd.DataFrame, root: Path | None, issues: IssueLog,
                         label_file_of=None) -> int:
    """Count the image files that sit in a folder the labels use but that the labels never
    name, and say so (info) once per folder: "12 images in `train/` have no entry in
    `_annotations.csv`". ``label_file_of(folder_rel)`` names the labels file of a folder (for
    the message). Returns the total. Only folders already holding listed images are looked
    at, each listed once (no recursion)."""
    if root is None or images.empty:
        return 0
    root = Path(root)
    listed: dict[str, set[str]] = {}
    for f in images[FILE_NAME].astype(str):
        d, _, base = f.replace("\\", "/").rpartition("/")
        listed.setdefault(d, set()).add(base)
    total = 0
    for d, names in sorted(listed.items()):
        folder = root / d if d else root
        if not is_within(root, folder):
            continue
        try:
            on_disk = {e.name for e in os.scandir(folder)
                       if not e.name.startswith(".") and e.name.lower().endswith(IMAGE_EXTENSIONS)
                       and e.is_file()}
        except OSError:
            continue
        extra = sorted(on_disk - names)
        if not extra:
            continue
        total += len(extra)
        where = f"`{d}/`" if d else "the dataset folder"
        src = label_file_of(d) if label_file_of is not None else None
        src = (f"`{src}`" if " " not in src else src) if src else "the labels"
        eg = ", ".join(extra[:3]) + (" ..." if len(extra) > 3 else "")
        issues.add("info", "unlisted_images",
                   f"{len(extra)} image{'s' if len(extra) != 1 else ''} in {where} "
                   f"{'have' if len(extra) != 1 else 'has'} no entry in {src} (e.g. {eg}); "
                   "they are not part of the loaded dataset. Label them, or delete them if "
                   "they are left over.")
    return total


__all__ = ["combine_splits", "note_unlisted_images", "split_folders", "split_of_folder",
           "SPLIT_WORDS"]
