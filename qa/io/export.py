"""Exports of the disagreement review queue, so flagged images go straight back for relabelling.

* ``queue.csv``: one row per flagged image, most likely wrong first (rank, image, file, label
  quality, reasons, and every flag's message).
* ``flagged_coco.json``: a COCO file of the flagged images with their current labels (every
  annotator's boxes, each annotation carrying its ``annotator``; the reader honours it) and
  the categories.
* ``labelstudio_tasks.json``: Label Studio tasks (the documented import format: a list of
  ``{data, annotations, predictions}``) with the reference labels as an annotation and the
  model's confident boxes as a prediction (``model_version``, per-box ``score``), boxes in
  percent of ``original_width``/``original_height``; plus ``labelstudio_config.xml``, the
  labelling config whose ``from_name="label"`` / ``to_name="image"`` the results use.
  ``data.image`` is ``image_url_prefix + file_name`` (default Label Studio's local-files
  serving URL, which this project's reader maps back to the file name).

The dataset is never written to: the export folder must be outside it, and each file is
written to a temporary file in that folder and moved into place (atomic).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    AREA,
    BOX,
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    ISCROWD,
    MODEL,
    NAME,
    PRED_ID,
    SCORE,
    WIDTH,
    Dataset,
)

EXPORT_FILES = {"csv": "queue.csv", "coco": "flagged_coco.json",
                "labelstudio": "labelstudio_tasks.json"}
LS_CONFIG_FILE = "labelstudio_config.xml"
# Label Studio serves files of a local storage under this URL (LOCAL_FILES_SERVING_ENABLED)
LS_LOCAL_FILES = "/data/local-files/?d="
LS_FROM_NAME, LS_TO_NAME = "label", "image"
# an image root with one of these names sits inside the dataset folder, which is protected
IMAGE_FOLDERS = ("images", "JPEGImages")
QUEUE_COLUMNS = ["rank", IMAGE_ID, FILE_NAME, "label_quality", "n_flags", "reasons",
                 "messages"]


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_outside(dataset: Dataset, folder: Path) -> None:
    if dataset.root is None:
        return
    root = Path(dataset.root).resolve()
    if root.name in IMAGE_FOLDERS:  # images/ inside the dataset folder (COCO, YOLO, VOC)
        root = root.parent
    target = Path(folder).resolve()
    if target == root or root in target.parents:
        raise ValueError(f"the export folder {folder} is inside the dataset ({root}); exports "
                         "never write into a dataset. Choose a folder outside it.")


# ---------------------------------------------------------------------------------------------
# The three documents (pure: they return bytes / objects, they write nothing)
# ---------------------------------------------------------------------------------------------
def queue_table(dataset: Dataset, result) -> pd.DataFrame:
    """The queue as exported to CSV (see :data:`QUEUE_COLUMNS`), most likely wrong first."""
    q = result.queue
    files = dataset.images.set_index(IMAGE_ID)[FILE_NAME]
    flags = result.flags
    msgs = flags.groupby("image_id")["message"].agg(lambda s: " | ".join(map(str, s)))
    return pd.DataFrame({
        "rank": np.arange(1, len(q) + 1), IMAGE_ID: q[IMAGE_ID].to_numpy(),
        FILE_NAME: files.reindex(q[IMAGE_ID]).to_numpy(),
        "label_quality": q["label_quality"].round(6).to_numpy(),
        "n_flags": q["n_flags"].to_numpy(), "reasons": q["reasons"].to_numpy(),
        "messages": msgs.reindex(q[IMAGE_ID]).fillna("").to_numpy()})


def queue_csv(dataset: Dataset, result) -> bytes:
    buf = io.StringIO()
    queue_table(dataset, result).to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL)
    return buf.getvalue().encode("utf-8")


def flagged_coco(dataset: Dataset, result) -> dict:
    """A COCO dict of the flagged images with all their current annotations."""
    return coco_subset(dataset, result.queue[IMAGE_ID].tolist(), description=(
        f"images flagged by dataset-qa disagreement (model {result.model}, reference "
        f"{result.reference})"))


def coco_subset(dataset: Dataset, image_ids, *, description: str = "") -> dict:
    """A COCO dict of ``image_ids`` (in that order) with all their current annotations (each
    carrying its ``annotator``) and every category."""
    ids = [int(i) for i in image_ids]
    imgs = dataset.images.set_index(IMAGE_ID).loc[ids].reset_index()
    anns = dataset.annotations
    anns = anns[anns[IMAGE_ID].isin(ids) & (anns["w"].notna() | dataset.is_classification)]
    num = lambda v: None if pd.isna(v) else (int(v) if float(v).is_integer() else float(v))
    images = [{"id": int(r[IMAGE_ID]), "file_name": str(r[FILE_NAME]),
               "width": num(r[WIDTH]), "height": num(r[HEIGHT])} for _, r in imgs.iterrows()]
    if dataset.is_classification:  # image-level labels: an annotation without a bbox
        annotations = [{"id": int(a[ANN_ID]), "image_id": int(a[IMAGE_ID]),
                        "category_id": int(a[CATEGORY_ID]), "annotator": str(a[ANNOTATOR])}
                       for _, a in anns.iterrows()]
    else:
        annotations = [{"id": int(a[ANN_ID]), "image_id": int(a[IMAGE_ID]),
                        "category_id": int(a[CATEGORY_ID]),
                        "bbox": [float(v) for v in (a["x"], a["y"], a["w"], a["h"])],
                        "area": float(a[AREA]), "iscrowd": int(a[ISCROWD]),
                        "annotator": str(a[ANNOTATOR])} for _, a in anns.iterrows()]
    cats = [{"id": int(c), "name": str(n), "supercategory": ""}
            for c, n in dataset.category_names.items()]
    return {"info": {"description": description},
            "images": images, "annotations": annotations, "categories": cats}


def labelstudio_box(x, y, w, h, iw, ih, label, rid, score=None) -> dict:
    """One Label Studio ``rectanglelabels`` result for a pixel box (x, y, w, h) on an image of
    size (iw, ih): Label Studio stores percentages of the original size."""
    item = {"id": rid, "type": "rectanglelabels", "from_name": LS_FROM_NAME,
            "to_name": LS_TO_NAME, "original_width": int(iw), "original_height": int(ih),
            "image_rotation": 0,
            "value": {"x": 100.0 * x / iw, "y": 100.0 * y / ih, "width": 100.0 * w / iw,
                      "height": 100.0 * h / ih, "rotation": 0, "rectanglelabels": [label]}}
    if score is not None:
        item["score"] = float(score)
    return item


def labelstudio_choice(label: str, rid: str, score=None) -> dict:
    """One Label Studio ``choices`` result: an image-level class."""
    item = {"id": rid, "type": "choices", "from_name": LS_FROM_NAME, "to_name": LS_TO_NAME,
            "value": {"choices": [label]}}
    if score is not None:
        item["score"] = float(score)
    return item


def _classification_tasks(dataset: Dataset, result, image_url_prefix: str) -> list[dict]:
    """Tasks for a classification queue: the reference label as the annotation, the label
    that confident learning suggests (the model's) as the prediction."""
    names = dataset.category_names
    files = dataset.images.set_index(IMAGE_ID)[FILE_NAME]
    by_img = result.boxes.set_index(IMAGE_ID)
    tasks = []
    for rank, (iid, lq, reasons) in enumerate(zip(result.queue[IMAGE_ID],
                                                  result.queue["label_quality"],
                                                  result.queue["reasons"]), start=1):
        row = by_img.loc[iid]
        given, sugg = row["category_id"], row["pred_category_id"]
        ann = [] if pd.isna(given) else [labelstudio_choice(names.get(int(given), str(given)),
                                                            f"a{iid}")]
        pred = [] if pd.isna(sugg) else [labelstudio_choice(names.get(int(sugg), str(sugg)),
                                                            f"p{iid}", row["pred_score"])]
        tasks.append({"data": {"image": image_url_prefix + str(files.at[iid]),
                               "image_id": int(iid), "review_rank": rank,
                               "label_quality": round(float(lq), 6), "reasons": str(reasons)},
                      "annotations": [{"result": ann, "ground_truth": False}],
                      "predictions": [{"model_version": str(result.model),
                                       "score": float(row["pred_score"])
                                       if pd.notna(row["pred_score"]) else 0.0,
                                       "result": pred}]})
    return tasks


def labelstudio_tasks(dataset: Dataset, result, *, image_url_prefix: str = LS_LOCAL_FILES
                      ) -> tuple[list[dict], list[int]]:
    """Label Studio tasks for the flagged images (queue order) and the image ids left out
    because their size is unknown (percent boxes need it). For a classification dataset the
    results are ``choices`` (image-level classes)."""
    from qa.disagreement import reference_boxes

    if dataset.is_classification:
        return _classification_tasks(dataset, result, image_url_prefix), []

    names = dataset.category_names
    q = result.queue
    ids = q[IMAGE_ID].tolist()
    imgs = dataset.images.set_index(IMAGE_ID)
    ref = reference_boxes(dataset.subset(ids), result.reference) if ids else None
    ref_by_img = {i: g for i, g in ref.groupby(IMAGE_ID)} if ref is not None else {}
    preds = dataset.predictions
    preds = preds[(preds[MODEL].astype(str) == str(result.model)) & preds[IMAGE_ID].isin(ids)
                  & (preds[SCORE] >= result.conf_threshold) & preds["w"].notna()]
    pred_by_img = {i: g for i, g in preds.groupby(IMAGE_ID)}
    tasks, skipped = [], []
    for rank, (iid, lq, reasons) in enumerate(zip(q[IMAGE_ID], q["label_quality"],
                                                  q["reasons"]), start=1):
        iw, ih = imgs.at[iid, WIDTH], imgs.at[iid, HEIGHT]
        if pd.isna(iw) or pd.isna(ih) or not iw or not ih:
            skipped.append(int(iid))
            continue
        fn = str(imgs.at[iid, FILE_NAME])
        ann_res = [labelstudio_box(r.x, r.y, r.w, r.h, iw, ih, names.get(int(r.category_id),
                                                                  str(r.category_id)),
                           f"a{iid}_{k}")
                   for k, r in enumerate(ref_by_img.get(iid, pd.DataFrame()).itertuples())]
        p = pred_by_img.get(iid, pd.DataFrame(columns=[PRED_ID, CATEGORY_ID, SCORE, *BOX]))
        pred_res = [labelstudio_box(r.x, r.y, r.w, r.h, iw, ih, names.get(int(r.category_id),
                                                                   str(r.category_id)),
                            f"p{int(r.pred_id)}", score=r.score) for r in p.itertuples()]
        task = {"data": {"image": image_url_prefix + fn, "image_id": int(iid),
                         "review_rank": rank, "label_quality": round(float(lq), 6),
                         "reasons": str(reasons)},
                "annotations": [{"result": ann_res, "ground_truth": False}],
                "predictions": [{"model_version": str(result.model),
                                 "score": float(p[SCORE].mean()) if len(p) else 0.0,
                                 "result": pred_res}]}
        tasks.append(task)
    return tasks, skipped


def labelstudio_config(dataset: Dataset, *, classification: bool | None = None) -> str:
    """The labelling config matching the exported results: one RectangleLabels control, or
    one single-choice Choices control for a classification dataset (``classification``
    overrides what the labels say, e.g. for images not labelled yet)."""
    from xml.sax.saxutils import quoteattr

    if dataset.is_classification if classification is None else classification:
        choices = "\n".join(f"    <Choice value={quoteattr(str(n))}/>"
                            for n in dataset.categories[NAME])
        return (f'<View>\n  <Image name="{LS_TO_NAME}" value="$image"/>\n'
                f'  <Choices name="{LS_FROM_NAME}" toName="{LS_TO_NAME}" choice="single">\n'
                f"{choices}\n  </Choices>\n</View>\n")
    labels = "\n".join(f"    <Label value={quoteattr(str(n))}/>"
                       for n in dataset.categories[NAME])
    return (f'<View>\n  <Image name="{LS_TO_NAME}" value="$image"/>\n'
            f'  <RectangleLabels name="{LS_FROM_NAME}" toName="{LS_TO_NAME}">\n{labels}\n'
            "  </RectangleLabels>\n</View>\n")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def export_queue(dataset: Dataset, result, folder: Path | str, *,
                 formats=("csv", "coco", "labelstudio"),
                 image_url_prefix: str = LS_LOCAL_FILES) -> dict[str, Path]:
    """Write the review queue of ``result`` (a DisagreementResult of ``dataset``) to
    ``folder`` in ``formats``; returns ``{format: path}`` of the files written. Raises
    ValueError for an unknown format, or a folder inside the dataset."""
    unknown = [f for f in formats if f not in EXPORT_FILES]
    if unknown:
        raise ValueError(f"unknown export formats {unknown}; choose from {list(EXPORT_FILES)}")
    folder = Path(folder)
    _check_outside(dataset, folder)
    out: dict[str, Path] = {}
    if "csv" in formats:
        out["csv"] = write_atomic(folder / EXPORT_FILES["csv"], queue_csv(dataset, result))
    if "coco" in formats:
        out["coco"] = write_atomic(folder / EXPORT_FILES["coco"],
                                   json.dumps(flagged_coco(dataset, result)).encode())
    if "labelstudio" in formats:
        tasks, _ = labelstudio_tasks(dataset, result, image_url_prefix=image_url_prefix)
        out["labelstudio"] = write_atomic(folder / EXPORT_FILES["labelstudio"],
                                          json.dumps(tasks, indent=1).encode())
        out["labelstudio_config"] = write_atomic(folder / LS_CONFIG_FILE,
                                                 labelstudio_config(dataset).encode())
    return out


__all__ = [
    "EXPORT_FILES",
    "LS_LOCAL_FILES",
    "coco_subset",
    "export_queue",
    "flagged_coco",
    "labelstudio_box",
    "labelstudio_choice",
    "labelstudio_config",
    "labelstudio_tasks",
    "queue_csv",
    "queue_table",
    "write_atomic",
]
