"""The one in-memory model of a dataset: a frozen dataclass of DataFrames with a fixed schema.

Every loader in :mod:`qa.io` produces a :class:`Dataset`; every analysis reads one and never
changes it. Column names live here as constants and nowhere else.

Conventions
-----------
* Boxes are COCO ``xywh`` in absolute pixels (``x``, ``y`` = top-left corner).
* Long format: one row per annotator per box. Image-level labels (classification) are
  annotations whose box columns are NaN.
* ``image_id``, ``ann_id``, ``category_id`` and ``pred_id`` are unique int64 keys.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from qa.paths import resolve_inside

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Column names (the schema in one place)
# ---------------------------------------------------------------------------------------------
IMAGE_ID = "image_id"
FILE_NAME = "file_name"
WIDTH = "width"
HEIGHT = "height"
SPLIT = "split"
CATEGORY_ID = "category_id"
NAME = "name"
SUPERCATEGORY = "supercategory"
ANN_ID = "ann_id"
ANNOTATOR = "annotator"
X, Y, W, H = "x", "y", "w", "h"
AREA = "area"
ISCROWD = "iscrowd"
SEGMENTATION = "segmentation"
PRED_ID = "pred_id"
SCORE = "score"
MODEL = "model"
BOX = [X, Y, W, H]

# Columns loaders may add to `images` after probing the files on disk.
EXISTS = "exists"  # the file is on disk
READABLE = "readable"  # the header could be parsed (and the image verified)
FILE_ERROR = "file_error"  # why not, in words
HEADER_WIDTH = "header_width"  # size read from the image header
HEADER_HEIGHT = "header_height"
UNSAFE_PATH = "unsafe_path"  # file_name resolves outside the dataset root: never read

SPLITS = ("train", "val", "test")

# dtype of each required column. Extra columns (difficult, truncated, segmentation, sha1 ...)
# are allowed and kept as they come.
IMAGES_SCHEMA = {
    IMAGE_ID: "int64",
    FILE_NAME: "object",
    WIDTH: "Int64",  # nullable: unknown for a missing file with no size in the labels
    HEIGHT: "Int64",
    SPLIT: "category",
}
CATEGORIES_SCHEMA = {CATEGORY_ID: "int64", NAME: "object", SUPERCATEGORY: "object"}
ANNOTATIONS_SCHEMA = {
    ANN_ID: "int64",
    IMAGE_ID: "int64",
    CATEGORY_ID: "int64",
    ANNOTATOR: "category",
    X: "float64",
    Y: "float64",
    W: "float64",
    H: "float64",
    AREA: "float64",
    ISCROWD: "int8",
}
PREDICTIONS_SCHEMA = {
    PRED_ID: "int64",
    IMAGE_ID: "int64",
    CATEGORY_ID: "int64",
    SCORE: "float64",
    X: "float64",
    Y: "float64",
    W: "float64",
    H: "float64",
    MODEL: "category",
}
ISSUES_SCHEMA = {
    "severity": "object",  # "error" | "warning" | "info"
    "check": "object",  # machine name of the check, e.g. "box_outside_image"
    IMAGE_ID: "Int64",
    ANN_ID: "Int64",
    "message": "object",  # a sentence naming the file, the item and the fix
}

DEFAULT_ANNOTATOR = "annotator"
DEFAULT_MODEL = "model"


class DatasetError(ValueError):
    """Input that cannot be used at all: the message names the file, the item and the fix."""


def empty_frame(schema: dict[str, str]) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of ``schema``."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in schema.items()})


def conform(df: pd.DataFrame | None, schema: dict[str, str], *, table: str) -> pd.DataFrame:
    """Return ``df`` with every schema column present (missing ones filled with NA) and cast.

    Extra columns are kept after the schema columns. Raises :class:`DatasetError` when a
    required key column is missing or cannot be cast.
    """
    if df is None:
        return empty_frame(schema)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Dataset.{table} must be a pandas DataFrame, got {type(df).__name__}")
    out = {}
    n = len(df)
    for col, dtype in schema.items():
        if col in df.columns:
            s = df[col]
        elif col in (IMAGE_ID, ANN_ID, CATEGORY_ID, PRED_ID) and not (
            table == "categories" and col != CATEGORY_ID
        ):
            raise DatasetError(
                f"Dataset.{table} has no '{col}' column (columns: {list(df.columns)}); "
                f"every {table} row needs an integer '{col}'."
            )
        else:
            s = _missing_column(dtype, n, df.index)
        try:
            if str(s.dtype) != dtype:
                if dtype in ("float64",):
                    s = pd.to_numeric(s, errors="coerce").astype("float64")
                elif dtype == "object":
                    s = s.astype("object")
                else:
                    s = s.astype(dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise DatasetError(
                f"Dataset.{table} column '{col}' cannot be read as {dtype}: {exc}. "
                "Check the values of that column in the source file."
            ) from exc
        out[col] = s
    extra = [c for c in df.columns if c not in schema]
    res = pd.DataFrame(out, index=df.index)
    for c in extra:
        res[c] = df[c]
    return res.reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A computer-vision dataset: images, categories, annotations of one or more annotators,
    and optionally a model's predictions.

    Build one with :func:`qa.io.load` or directly from DataFrames; the constructor conforms
    every table to the schema (see ``*_SCHEMA`` in this module). ``load_issues`` carries the
    problems a loader found and quarantined (see :func:`qa.validate`).
    """

    images: pd.DataFrame
    categories: pd.DataFrame
    annotations: pd.DataFrame
    predictions: pd.DataFrame = field(default_factory=lambda: empty_frame(PREDICTIONS_SCHEMA))
    root: Path | None = None
    format: str = "unknown"
    name: str = ""
    annotators: tuple[str, ...] = ()
    load_issues: pd.DataFrame = field(default_factory=lambda: empty_frame(ISSUES_SCHEMA))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "images", conform(self.images, IMAGES_SCHEMA, table="images"))
        cats = conform(self.categories, CATEGORIES_SCHEMA, table="categories")
        cats[NAME] = [str(n) if not _isna(n) else f"class_{c}" for n, c in
                      zip(cats[NAME], cats[CATEGORY_ID])]
        set_(self, "categories", cats)
        anns = conform(self.annotations, ANNOTATIONS_SCHEMA, table="annotations")
        if anns[ISCROWD].isna().any():
            anns[ISCROWD] = anns[ISCROWD].fillna(0)
        if anns[ANNOTATOR].isna().any():
            anns[ANNOTATOR] = anns[ANNOTATOR].cat.add_categories(
                [c for c in [DEFAULT_ANNOTATOR] if c not in anns[ANNOTATOR].cat.categories]
            ).fillna(DEFAULT_ANNOTATOR)
        missing_area = anns[AREA].isna() & anns[W].notna()
        if missing_area.any():
            anns.loc[missing_area, AREA] = anns.loc[missing_area, W] * anns.loc[missing_area, H]
        set_(self, "annotations", anns)
        preds = conform(self.predictions, PREDICTIONS_SCHEMA, table="predictions")
        if preds[MODEL].isna().any():
            preds[MODEL] = preds[MODEL].cat.add_categories(
                [c for c in [DEFAULT_MODEL] if c not in preds[MODEL].cat.categories]
            ).fillna(DEFAULT_MODEL)
        set_(self, "predictions", preds)
        set_(self, "load_issues", conform(self.load_issues, ISSUES_SCHEMA, table="load_issues"))
        if self.root is not None:
            set_(self, "root", Path(self.root))
        declared = tuple(str(a) for a in self.annotators)
        present = tuple(str(a) for a in pd.unique(anns[ANNOTATOR].astype(str)))
        set_(self, "annotators", tuple(dict.fromkeys(declared + tuple(sorted(present)))))

    # ---------------------------------------------------------------- convenience views
    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def models(self) -> tuple[str, ...]:
        # unique of the column itself (categorical: over its codes), not of a string copy of
        # a million predictions: pages ask on every rerun
        return tuple(sorted({str(m) for m in pd.unique(self.predictions[MODEL])}))

    @property
    def has_boxes(self) -> bool:
        """True if any annotation carries a box (False for classification datasets)."""
        return bool(self.annotations[W].notna().any())

    @property
    def is_classification(self) -> bool:
        return len(self.annotations) > 0 and not self.has_boxes

    @property
    def category_names(self) -> dict[int, str]:
        return dict(zip(self.categories[CATEGORY_ID].tolist(), self.categories[NAME].tolist()))

    @property
    def splits(self) -> tuple[str, ...]:
        present = set(self.images[SPLIT].dropna().astype(str))
        ordered = [s for s in SPLITS if s in present]
        return tuple(ordered + sorted(present - set(ordered)))

    def boxes_xyxy(self, table: str = "annotations") -> np.ndarray:
        """Boxes of ``annotations`` or ``predictions`` as an (n, 4) float array x1, y1, x2, y2."""
        df = getattr(self, table)
        xywh = df[BOX].to_numpy(dtype=np.float64, na_value=np.nan)
        out = xywh.copy()
        out[:, 2] += out[:, 0]
        out[:, 3] += out[:, 1]
        return out

    def image_path(self, image_id: int) -> Path | None:
        """Absolute path of an image file, or None when it is unknown or outside ``root``."""
        if self.root is None:
            return None
        row = self.images.loc[self.images[IMAGE_ID] == image_id]
        if row.empty:
            return None
        return resolve_inside(self.root, str(row[FILE_NAME].iloc[0]))

    def annotations_of(self, annotator: str) -> pd.DataFrame:
        return self.annotations[self.annotations[ANNOTATOR].astype(str) == annotator]

    def subset(self, image_ids) -> "Dataset":
        """A new Dataset restricted to ``image_ids`` (categories and annotators kept)."""
        ids = pd.Index(np.asarray(list(image_ids), dtype=np.int64))
        keep = lambda df: df[df[IMAGE_ID].isin(ids)].reset_index(drop=True)  # noqa: E731
        li = self.load_issues
        li = li[li[IMAGE_ID].isna() | li[IMAGE_ID].isin(ids)]
        return dataclasses.replace(
            self,
            images=keep(self.images),
            annotations=keep(self.annotations),
            predictions=keep(self.predictions),
            load_issues=li.reset_index(drop=True),
        )

    def with_predictions(self, predictions: pd.DataFrame) -> "Dataset":
        return dataclasses.replace(self, predictions=predictions)

    def summary(self) -> dict:
        """Counts for the overview page and ``dataset-qa info``."""
        a = self.annotations
        return {
            "name": self.name,
            "format": self.format,
            "root": str(self.root) if self.root else None,
            "images": int(len(self.images)),
            "annotations": int(len(a)),
            "boxes": int(a[W].notna().sum()),
            "image_labels": int(a[W].isna().sum()),
            "annotators": list(self.annotators),
            "classes": int(len(self.categories)),
            "splits": self._split_counts(),
            "predictions": int(len(self.predictions)),
            "models": list(self.models),
        }

    def _split_counts(self) -> dict[str, int]:
        """Images per split in train/val/test order; images without a split under 'none'."""
        counts = self.images[SPLIT].astype("object").fillna("none").value_counts()
        order = list(self.splits) + (["none"] if "none" in counts.index else [])
        return {str(k): int(counts[k]) for k in order}

    def __repr__(self) -> str:  # keep DataFrames out of the repr
        s = self.summary()
        return (
            f"Dataset(name={s['name']!r}, format={s['format']!r}, images={s['images']}, "
            f"annotations={s['annotations']}, annotators={s['annotators']}, "
            f"classes={s['classes']}, predictions={s['predictions']})"
        )


def image_label(file_name, split=None) -> str:
    """An image as a user reads it in a message: its file name (relative to the root, as
    listed), and its split unless the name already says it: ``'JPEGImages/BloodImage_00037.jpg'
    (val)``, ``'train/a.jpg'``. Never the internal image id, which a user would read as a
    file number."""
    name = str(file_name)
    sp = None if split is None or _isna(split) else str(split)
    if not sp:
        return f"'{name}'"
    first = name.replace("\\", "/").split("/")[0].lower()
    said = first == sp or (first in ("valid", "validation") and sp == "val")
    return f"'{name}'" if said and "/" in name else f"'{name}' ({sp})"


def image_labels(images: pd.DataFrame) -> dict[int, str]:
    """image_id -> :func:`image_label` for every row of an images table."""
    splits = images[SPLIT] if SPLIT in images else [None] * len(images)
    return {int(i): image_label(f, s) for i, f, s in
            zip(images[IMAGE_ID], images[FILE_NAME], splits)}



def name_images(images: pd.DataFrame | None, ids) -> list[str]:
    """:func:`image_label` of each image id in ``ids``, looked up in an images table (the
    ``Dataset.images`` a result keeps); "image <id>" for an id it lacks or without a table."""
    ids = [int(i) for i in ids]
    if images is None or not ids:
        return [f"image {i}" for i in ids]
    t = images.drop_duplicates(IMAGE_ID).set_index(IMAGE_ID)
    found = t.reindex(ids)
    splits = found[SPLIT] if SPLIT in found else [None] * len(ids)
    return [f"image {i}" if _isna(f) else image_label(f, s)
            for i, f, s in zip(ids, found[FILE_NAME], splits)]

def _missing_column(dtype: str, n: int, index) -> pd.Series:
    """A column the source did not have: NaN/NA of the right dtype (0 for plain ints)."""
    if dtype in ("int8", "int64"):
        return pd.Series(np.zeros(n, dtype=dtype), index=index)
    if dtype == "float64":
        return pd.Series(np.full(n, np.nan), index=index)
    return pd.Series([None] * n, index=index, dtype="object" if dtype == "object" else dtype)


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
