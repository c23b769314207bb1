"""A classifier's predicted class probabilities for a classification dataset, from a CSV.

Two layouts (the header says which):

* ``image,<class 1>,<class 2>,...``: one probability per class (column names = the dataset's
  class names, any order, all of them); each row sums to 1.
* ``image,label,score``: the predicted class and its probability only. The rest of the
  probability (1 - score) is spread evenly over the other classes: an assumption, stated
  here, that confident learning needs a full row.

``image`` (or ``file_name``/``filename``/``path``/``file``) names an image of the dataset by
its file name (relative, or its base name when unique) or by its integer image id.
The result is a predictions frame (``PREDICTIONS_SCHEMA``) with one row per image and class
(``score`` = probability, NaN box). Rows whose image the dataset lacks are kept under
negative image ids with their ``file_name``, so the analyses report them instead of dropping
them. Bad input raises :class:`DatasetError` naming the file, the line and the fix.
"""

from __future__ import annotations

import io
import posixpath
from pathlib import Path

import numpy as np
import pandas as pd

from qa.dataset import (
    CATEGORY_ID,
    FILE_NAME,
    IMAGE_ID,
    MODEL,
    NAME,
    PRED_ID,
    PREDICTIONS_SCHEMA,
    SCORE,
    Dataset,
    DatasetError,
    H,
    W,
    X,
    Y,
    conform,
)
from qa.io._common import read_bytes

IMAGE_COLUMNS = ("image", "file_name", "filename", "path", "file")
# probabilities written with a few decimals do not sum to 1 exactly
SUM_TOLERANCE = 1e-3


def load_probabilities(source: Path | str, ds: Dataset, *, model: str | None = None
                       ) -> pd.DataFrame:
    """The probabilities in CSV ``source`` for the images of ``ds`` as a predictions frame
    (one row per image and class, NaN boxes; model = the file stem unless ``model``)."""
    path = Path(source)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file. Give a CSV 'image,<class...>' of "
                           "probabilities or 'image,label,score'.")
    try:
        df = pd.read_csv(io.BytesIO(read_bytes(path)), dtype={0: str})
    except (ValueError, pd.errors.ParserError) as e:
        raise DatasetError(f"{path}: not a readable CSV ({e}). Write a header line "
                           "'image,<class 1>,<class 2>,...' or 'image,label,score'.") from e
    cols = [str(c).strip() for c in df.columns]
    df.columns = cols
    img_col = next((c for c in cols if c.lower() in IMAGE_COLUMNS), None)
    if img_col is None:
        raise DatasetError(f"{path}: no image column (one of {IMAGE_COLUMNS}) in the header "
                           f"{cols[:8]}. Name the first column 'image'.")
    names = dict(zip(ds.categories[NAME].astype(str), ds.categories[CATEGORY_ID].tolist()))
    rest = [c for c in cols if c != img_col]
    if {c.lower() for c in rest} == {"label", "score"}:
        probs = _from_label_score(path, df, img_col, names)
    else:
        unknown = [c for c in rest if c not in names]
        missing = [n for n in names if n not in rest]
        if unknown or missing:
            raise DatasetError(
                f"{path}: the class columns do not match the dataset's classes "
                f"(unknown: {unknown[:5]}, missing: {missing[:5]}). Write one column per "
                f"class named as in the dataset ({sorted(names)[:8]}), or 'image,label,score'.")
        probs = df[list(names)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    _check(path, probs)
    image_ids, files = _image_ids(path, df[img_col].astype(str).tolist(), ds)
    k = len(names)
    cat = np.array(list(names.values()), dtype=np.int64)
    out = pd.DataFrame({
        PRED_ID: np.arange(1, len(df) * k + 1, dtype=np.int64),
        IMAGE_ID: np.repeat(image_ids, k), CATEGORY_ID: np.tile(cat, len(df)),
        SCORE: probs.reshape(-1), X: np.nan, Y: np.nan, W: np.nan, H: np.nan,
        MODEL: model or path.stem, FILE_NAME: np.repeat(files, k)})
    return conform(out, PREDICTIONS_SCHEMA, table="predictions")


def _from_label_score(path: Path, df: pd.DataFrame, img_col: str, names: dict) -> np.ndarray:
    low = {c.lower(): c for c in df.columns}
    labels = df[low["label"]].astype(str).str.strip()
    score = pd.to_numeric(df[low["score"]], errors="coerce").to_numpy(np.float64)
    bad = ~labels.isin(list(names))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"{path}:{i + 2}: label {labels.iloc[i]!r} is not a class of the "
                           f"dataset ({sorted(names)[:8]}). Fix the label or the dataset.")
    k = len(names)
    if k < 2:
        raise DatasetError(f"{path}: the dataset has {k} class; probabilities need two or more.")
    _check(path, score[:, None], rows_sum=False)
    pos = {n: j for j, n in enumerate(names)}
    probs = np.repeat(((1.0 - score) / (k - 1))[:, None], k, axis=1)
    probs[np.arange(len(df)), [pos[n] for n in labels]] = score
    return probs


def _check(path: Path, probs: np.ndarray, rows_sum: bool = True) -> None:
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs > 1).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{path}:{i + 2}: probabilities must be numbers in [0, 1], got "
                           f"{probs[i][:6].tolist()} ({int(bad.sum())} such rows). Write "
                           "softmax probabilities, not logits.")
    if rows_sum:
        off = np.abs(probs.sum(axis=1) - 1) > SUM_TOLERANCE
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise DatasetError(f"{path}:{i + 2}: the probabilities sum to "
                               f"{probs[i].sum():.4f}, not 1 ({int(off.sum())} such rows). "
                               "Write softmax probabilities over all classes.")


def _image_ids(path: Path, images: list[str], ds: Dataset) -> tuple[np.ndarray, list[str]]:
    files = ds.images[FILE_NAME].astype(str).tolist()
    ids = ds.images[IMAGE_ID].tolist()
    by_name = dict(zip(files, ids))
    by_base: dict[str, list[int]] = {}
    for f, i in zip(files, ids):
        by_base.setdefault(posixpath.basename(f), []).append(i)
    known = set(ids)
    out, next_unknown = [], -1
    for v in images:
        v = v.strip().replace("\\", "/")
        iid = by_name.get(v)
        if iid is None and len(by_base.get(posixpath.basename(v), [])) == 1:
            iid = by_base[posixpath.basename(v)][0]
        if iid is None and v.lstrip("-").isdigit() and int(v) in known:
            iid = int(v)
        if iid is None:  # not in the dataset: kept under a negative id, reported downstream
            iid = next_unknown
            next_unknown -= 1
        out.append(iid)
    if all(i < 0 for i in out) and out:
        raise DatasetError(f"{path}: no row names an image of the dataset (e.g. "
                           f"{images[0]!r}). The image column holds file names as in the "
                           "dataset or image ids.")
    return np.asarray(out, dtype=np.int64), images


__all__ = ["load_probabilities"]
