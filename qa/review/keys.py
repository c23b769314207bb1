"""Stable keys for review items, and fingerprints of their evidence.

An **item key** names "this issue on this content" so a reviewer's decision finds its item again
after a reload, a renamed or moved file, or a new version of the dataset (new ids):

    sha256( image content SHA-256 (or "missing:<file_name>" for a file that is not there)
          | analysis | kind
          | the boxes concerned: annotator or model + geometry rounded to KEY_ROUND_PX
          | the related images' content hashes (pairs, clusters), sorted
          | annotator; the class name only when no box is concerned )

Ids (image_id, ann_id, pred_id, category_id) never enter a key: they change between versions.
For a dataset-level finding (no image: a rare class) the dataset's name stands in for the image.

The **fingerprint** is finer: the boxes concerned at 0.01 px with their class names (and, for
an image as a whole, how many labels it has). A decision stores the fingerprint it was made
on; when the evidence changes (a box edited, a class changed) the key usually stays but the
fingerprint differs, and the item is open again.

Two findings on byte-identical images with the same boxes share a key on purpose: the same
issue on the same content is one decision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    FILE_NAME,
    IMAGE_ID,
    MODEL,
    PRED_ID,
    Dataset,
    H,
    W,
    X,
    Y,
)

# Box coordinates enter the key rounded to whole pixels: re-exporting labels through another
# tool (float noise, percent <-> pixel round trips) must not lose the decision.
KEY_ROUND_PX = 1.0
# The fingerprint keeps 0.01 px: any real edit of a box changes it.
FINGERPRINT_DECIMALS = 2


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _box_token(who: str, x, y, w, h, *, fine: bool) -> str:
    if pd.isna(w) or pd.isna(h):
        return f"{who}:label"
    if fine:
        return f"{who}:" + ",".join(f"{float(v):.{FINGERPRINT_DECIMALS}f}" for v in (x, y, w, h))
    return f"{who}:" + ",".join(str(round(float(v) / KEY_ROUND_PX)) for v in (x, y, w, h))


def image_hashes(dataset: Dataset, *, store=None) -> dict[int, str]:
    """``{image_id: "sha256 of the file's bytes"}`` or ``"missing:<file_name>"`` for a file
    that cannot be read (memoised in the content store, :meth:`qa.store.Store.hash_files`)."""
    from qa.store import default_store

    images = dataset.images
    if not len(images):
        return {}
    st = store or default_store()
    names = images[FILE_NAME].astype(str).tolist()
    res = st.hash_files(dataset.root, names)
    out = {}
    for iid, name, sha in zip(images[IMAGE_ID].tolist(), names, res["sha256"].tolist()):
        out[int(iid)] = sha if isinstance(sha, str) else f"missing:{name}"
    return out


def item_keys(dataset: Dataset, findings: pd.DataFrame, *,
              hashes: dict[int, str] | None = None) -> pd.DataFrame:
    """One row per finding (same index): ``item_key``, ``fingerprint`` (hex SHA-256s) and
    ``image_sha`` (the image's content hash or "missing:<name>"; None for dataset-level
    findings). ``hashes`` (from :func:`image_hashes`) saves re-reading the store."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"item_keys() needs a qa.Dataset, got {type(dataset).__name__}")
    missing = {"analysis", "kind", "image_id", "ann_ids", "pred_ids", "related_image_ids",
               "category_id", "annotator"} - set(findings.columns)
    if missing:
        raise ValueError(f"findings lack columns {sorted(missing)}; build them with "
                         "qa.results.findings_frame()")
    from qa.memo import memo_of

    memo = memo_of(dataset)
    if memo is None or hashes is not None:
        return _compute_keys(dataset, findings,
                             image_hashes(dataset) if hashes is None else hashes)
    return _remembered_keys(dataset, findings, memo)


_KEY_COLUMNS = ("image_id", "ann_ids", "pred_ids", "related_image_ids", "category_id",
                "analysis", "kind", "annotator")


def _remembered_keys(ds: Dataset, findings: pd.DataFrame, memo) -> pd.DataFrame:
    """:func:`_compute_keys` for a dataset the app shares (:mod:`qa.memo`): the health report
    and the review queue key the same 200k findings; each distinct finding is keyed once
    (a few seconds at 50k images), later calls look it up."""
    known = memo.get(("item_keys",), dict)
    hashes = memo.get(("image_hashes",), lambda: image_hashes(ds))
    cols = [findings[c].astype(object).where(findings[c].notna(), None).tolist()
            for c in _KEY_COLUMNS]
    rows = list(zip(*cols))
    todo = [i for i, r in enumerate(rows) if r not in known]
    if todo:
        fresh = _compute_keys(ds, findings.iloc[todo], hashes)
        for i, k, f, sha in zip(todo, fresh["item_key"], fresh["fingerprint"],
                                fresh["image_sha"]):
            known[rows[i]] = (k, f, sha)
    got = [known[r] for r in rows]
    return pd.DataFrame({"item_key": pd.Series([g[0] for g in got], dtype=object),
                         "fingerprint": pd.Series([g[1] for g in got], dtype=object),
                         "image_sha": pd.Series([g[2] for g in got], dtype=object)}
                        ).set_index(findings.index)


def _box_tokens(df: pd.DataFrame, id_col: str, who_col: str, prefix: str, names: dict,
                wanted: set[int]) -> dict[int, tuple[str, str]]:
    """{id: (key token, fingerprint token with the class name)} of the boxes in ``wanted``:
    the strings of :func:`_box_token`, made once per box (a box is named by several findings;
    a million references at 50k images) with one f-string per box."""
    df = df[df[id_col].isin(list(wanted))]
    if not len(df):
        return {}
    xywh = df[[X, Y, W, H]].to_numpy(dtype=np.float64)
    label = np.isnan(xywh[:, 2]) | np.isnan(xywh[:, 3])
    plain = ~label & np.isfinite(xywh).all(axis=1)
    r = KEY_ROUND_PX
    out = {}
    for i, who, (x, y, w, h), c, is_label, ok in zip(
            df[id_col].tolist(), df[who_col].tolist(), xywh.tolist(), df[CATEGORY_ID].tolist(),
            label.tolist(), plain.tolist()):
        who = f"{prefix}:{who}"
        cls = names.get(int(c), c)
        if is_label:
            coarse = fine = f"{who}:label"
        elif ok:
            coarse = f"{who}:{round(x / r)},{round(y / r)},{round(w / r)},{round(h / r)}"
            fine = f"{who}:{x:.{FINGERPRINT_DECIMALS}f},{y:.{FINGERPRINT_DECIMALS}f}," \
                   f"{w:.{FINGERPRINT_DECIMALS}f},{h:.{FINGERPRINT_DECIMALS}f}"
        else:  # a non-finite corner: the general function decides
            coarse = _box_token(who, x, y, w, h, fine=False)
            fine = _box_token(who, x, y, w, h, fine=True)
        out[int(i)] = (coarse, f"{fine}:{cls}")
    return out


def _named(ids_column) -> set[int]:
    return {int(i) for ids in ids_column if ids for i in ids}


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _compute_keys(ds: Dataset, findings: pd.DataFrame, hashes: dict[int, str]) -> pd.DataFrame:
    names = ds.category_names
    anns = _box_tokens(ds.annotations, ANN_ID, ANNOTATOR, "a", names,
                       _named(findings["ann_ids"]))
    preds = _box_tokens(ds.predictions, PRED_ID, MODEL, "p", names,
                        _named(findings["pred_ids"]))
    n_labels = ds.annotations.groupby(IMAGE_ID).size().to_dict()
    a_gone, p_gone = ("a:gone", "a:gone"), ("p:gone", "p:gone")
    keys, prints, shas = [], [], []
    cols = ["image_id", "ann_ids", "pred_ids", "related_image_ids", "category_id", "analysis",
            "kind", "annotator"]
    for iid, ann_ids, pred_ids, rel, cat, analysis, kind, annotator in zip(
            *(findings[c].tolist() for c in cols)):
        iid = None if _missing(iid) else int(iid)
        sha = hashes.get(iid, f"unknown-image:{iid}") if iid is not None else None
        toks = [anns.get(int(i), a_gone) for i in ann_ids or ()] + \
            [preds.get(int(i), p_gone) for i in pred_ids or ()]
        coarse = sorted(t[0] for t in toks)
        fine = sorted(t[1] for t in toks)
        related = sorted(hashes.get(int(j), f"unknown-image:{j}") for j in (rel or ()))
        cls = None if _missing(cat) else names.get(int(cat), str(cat))
        scope = sha if sha is not None else f"dataset:{ds.name}"
        base = [scope, str(analysis), str(kind), *coarse, "|", *related, "|",
                f"annotator:{'' if _missing(annotator) else annotator}"]
        if not coarse:
            base.append(f"class:{cls or ''}")
        keys.append(_digest(base))
        evidence = [*fine, f"class:{cls or ''}"]
        if not fine and iid is not None:  # the image as a whole: its labels are the evidence
            evidence.append(f"labels:{n_labels.get(iid, 0)}")
        prints.append(_digest(evidence))
        shas.append(sha)
    return pd.DataFrame({"item_key": pd.Series(keys, dtype=object),
                         "fingerprint": pd.Series(prints, dtype=object),
                         "image_sha": pd.Series(shas, dtype=object)}).set_index(findings.index)
