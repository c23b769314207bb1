"""Decisions in and out: CSV/JSON exports that move between machines, and a Label Studio task
file to relabel the images of confirmed label errors.

The Label Studio writer here is small on purpose (tasks with the current boxes as
``predictions``, so the annotator starts from them); it writes the format
:mod:`qa.io.labelstudio` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    WIDTH,
    Dataset,
    DatasetError,
    H,
    W,
    X,
    Y,
)
from qa.io.export import LS_LOCAL_FILES, labelstudio_box, write_atomic
from qa.results import frame_records
from qa.review.keys import image_hashes
from qa.review.store import COLUMNS, ReviewStore, default_review_store

EXPORT_FORMATS = ("csv", "json")
# Label Studio serves files of a local storage under this prefix; the path after ?d= is the
# file name relative to the dataset root (what qa.io.labelstudio strips again).
LS_LOCAL_PREFIX = LS_LOCAL_FILES


def _atomic_write(path: Path, text: str) -> Path:
    return write_atomic(Path(path), text.encode("utf-8"))


def dataset_decisions(dataset: Dataset | None = None, *,
                      store: ReviewStore | None = None) -> pd.DataFrame:
    """Every decision (full history, oldest first, columns :data:`COLUMNS`) about
    ``dataset``'s images (by content hash) and its dataset-level items; all decisions in the
    store when ``dataset`` is None."""
    st = store or default_review_store()
    if dataset is None:
        return st.history()
    shas = [s for s in image_hashes(dataset).values() if not s.startswith("missing:")]
    shas += [f"missing:{f}" for f in dataset.images[FILE_NAME].astype(str)]
    by_image = st.history(image_shas=shas)
    everything = st.history()
    own = everything[everything["image_sha"].isna() & (everything["dataset"] == dataset.name)]
    out = pd.concat([by_image, own], ignore_index=True) if len(own) else by_image
    return out.sort_values("decided_at", kind="stable").reset_index(drop=True)


def decisions_text(decisions: pd.DataFrame, fmt: str) -> str:
    """``decisions`` as CSV or JSON text (JSON: ``{"format": "dataset-qa-decisions",
    "version": 1, "decisions": [...]}``)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    df = decisions.reindex(columns=COLUMNS)
    if fmt == "csv":
        return df.to_csv(index=False, float_format="%.6f")
    return json.dumps({"format": "dataset-qa-decisions", "version": 1,
                       "decisions": frame_records(df)}, indent=1)


def export_decisions(path: Path | str, dataset: Dataset | None = None, *,
                     fmt: str | None = None, store: ReviewStore | None = None) -> int:
    """Write :func:`dataset_decisions` to ``path`` (format from ``fmt`` or the suffix,
    .csv/.json), atomically; returns the number of decisions written."""
    path = Path(path)
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"cannot tell the export format of {str(path)!r}: name it .csv or "
                         ".json, or pass fmt=")
    df = dataset_decisions(dataset, store=store)
    _atomic_write(path, decisions_text(df, fmt))
    return len(df)


def read_decisions(path: Path | str) -> pd.DataFrame:
    """The decisions in an export file (CSV or JSON, by suffix or content). Raises
    DatasetError for a file that is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read decisions file {str(path)!r}: {exc.strerror or exc}")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}; export "
                               "it again with `dataset-qa review export`") from None
        if not isinstance(doc, dict) or doc.get("format") != "dataset-qa-decisions":
            raise DatasetError(f"{path}: not a dataset-qa decisions export (no "
                               "\"format\": \"dataset-qa-decisions\")")
        return pd.DataFrame(doc.get("decisions") or [], columns=COLUMNS)
    import io

    try:
        df = pd.read_csv(io.StringIO(text), dtype={c: "object" for c in COLUMNS
                                                  if c != "decided_at"})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc})") from None
    df = df.astype(object).where(df.notna(), None)
    return df


def import_decisions(path: Path | str, *, store: ReviewStore | None = None
                     ) -> tuple[int, int]:
    """Add the decisions of an export file to the store; (added, already there)."""
    df = read_decisions(path)
    try:
        return (store or default_review_store()).import_decisions(df)
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def relabel_items(queue: pd.DataFrame) -> pd.DataFrame:
    """The confirmed label errors of a queue: confirmed items on an image whose evidence is
    annotations or predictions (ann_ids or pred_ids not empty)."""
    m = (queue["status"] == "confirmed") & queue["image_id"].notna()
    m &= pd.Series([bool(a) or bool(p) for a, p in zip(queue["ann_ids"], queue["pred_ids"])],
                   index=queue.index, dtype=bool)
    return queue[m]


def relabel_tasks(dataset: Dataset, queue: pd.DataFrame) -> list[dict]:
    """Label Studio tasks (one per image) for :func:`relabel_items`: ``data.image`` as a
    local-files path, the image's current boxes as a prediction to correct (one
    ``rectanglelabels`` result per box of the annotator(s) concerned), and ``meta`` naming
    the issues and the reviewers' notes."""
    items = relabel_items(queue)
    if not len(items):
        return []
    imgs = dataset.images.set_index(IMAGE_ID)
    anns = dataset.annotations
    names = dataset.category_names
    tasks = []
    for iid, group in items.groupby("image_id", sort=True):
        iid = int(iid)
        if iid not in imgs.index:
            continue
        im = imgs.loc[iid]
        ow, oh = im[WIDTH], im[HEIGHT]
        concerned = {int(a) for ids in group["ann_ids"] for a in ids}
        who = set(anns.loc[anns[ANN_ID].isin(concerned), ANNOTATOR].astype(str))
        boxes = anns[(anns[IMAGE_ID] == iid) & anns[W].notna()]
        if who:
            boxes = boxes[boxes[ANNOTATOR].astype(str).isin(who)]
        result = []
        if not (pd.isna(ow) or pd.isna(oh)) and ow and oh:
            for b in boxes.itertuples(index=False):
                r = b._asdict()
                result.append(labelstudio_box(
                    r[X], r[Y], r[W], r[H], ow, oh,
                    str(names.get(int(r[CATEGORY_ID]), r[CATEGORY_ID])), f"a{r[ANN_ID]}"))
        tasks.append({
            "data": {"image": LS_LOCAL_PREFIX + str(im[FILE_NAME])},
            "predictions": [{"model_version": "dataset-qa-review", "result": result}],
            "meta": {"image_id": iid, "kinds": sorted(set(group["kind"].astype(str))),
                     "issues": [str(m) for m in group["message"] if m],
                     "notes": [str(n) for n in group["note"] if n],
                     "reviewers": sorted({str(r) for r in group["decided_by"] if r})},
        })
    return tasks


def relabel_text(dataset: Dataset, queue: pd.DataFrame) -> str:
    """:func:`relabel_tasks` as the JSON text of a Label Studio import file."""
    return json.dumps(relabel_tasks(dataset, queue), indent=1)


def write_relabel_tasks(path: Path | str, dataset: Dataset, queue: pd.DataFrame) -> int:
    """Write :func:`relabel_tasks` as a Label Studio import file (JSON list), atomically;
    returns the number of tasks."""
    text = relabel_text(dataset, queue)
    _atomic_write(Path(path), text)
    return len(json.loads(text))
