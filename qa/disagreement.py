"""Model-vs-annotation disagreement: per-box flags and a ranked per-image review queue.

When a trained model and the labels disagree, either the label is wrong or the model is weak;
this module finds where, names how, and ranks the images for review.

Reference labels
----------------
One annotator's boxes (``reference="alice"``), or the consensus objects of several
(``reference="consensus"``: :func:`qa.agreement.compute_agreement`'s ``clusters`` drawn by at
least half of the annotators who labelled the image, with their median box and majority class;
a flag on such an object names all its members' ``ann_ids``). The default is the only
annotator, or the consensus when there are several.

Flags (every reference box and every confident prediction gets a ``kind`` and a quality)
------------------------------------------------------------------------------------------
Predictions scored at least ``conf_threshold`` are the model's *claims*. Per image:

1. Claims are matched one-to-one to reference boxes at IoU >= ``iou_threshold`` (shared
   matching in :mod:`qa.geometry`: same class first, then leftovers across classes).
   A same-class match is ``ok`` (quality = IoU). A cross-class match is **wrong_class**
   (quality = 1 - the claim's score).
2. Leftover boxes and claims of the same class with ``low_iou <= IoU < iou_threshold`` are
   matched again: **poor_localisation** on the box (quality = IoU).
3. A box still left is **spurious_label** when no prediction of its class (at any score)
   overlaps it at IoU >= ``iou_threshold`` with a score >= ``conf_threshold``: no prediction
   supports it. Quality = the larger of the best such score and the model's miss rate for
   boxes of its COCO size bucket (the share of reference boxes of that size left unsupported):
   a box of a size the model usually finds ranks before a tiny one it often misses.
4. A claim still left that overlaps no reference box, and no box of a reference annotator, at
   IoU >= ``iou_threshold`` is **missing_label** (quality = 1 - its score). One that does is a
   duplicate detection, or an object only some annotators drew (agreement's business), and
   is not flagged.
5. Two same-class boxes of one annotator on one image at IoU >= ``duplicate_iou`` are a
   **duplicate_annotation** (on the later box; quality = 1 - their IoU).

Labelled images on which the model predicted nothing at all, and whose file is missing or
unreadable, are not judged (the model cannot have seen them; ``skip_unpredicted``): they are listed in ``unpredicted_image_ids``. Predictions for
images or classes the dataset lacks are listed in ``unknown_predictions``, not dropped silently.

Review queue
------------
Each image's box qualities are pooled as cleanlab's ObjectLab does, by a soft minimum
(``sum(q * exp(-q/T)) / sum(exp(-q/T))`` with temperature ``T`` = :data:`POOL_TEMPERATURE`):
``label_quality`` in [0, 1], LOWER = more likely wrong; an image with no boxes scores 1. The
queue is the flagged images in increasing ``label_quality``. Findings carry
``score = 1 - quality`` (higher = worse), as :mod:`qa.results` asks.

Classification datasets (image-level labels and per-class probabilities as predictions with
NaN boxes, see :mod:`qa.io.probabilities`) are judged by confident learning
(:mod:`qa.labelerrors`): kind **label_issue**, quality = self-confidence.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    AREA,
    BOX,
    CATEGORY_ID,
    EXISTS,
    IMAGE_ID,
    ISCROWD,
    MODEL,
    PRED_ID,
    READABLE,
    SCORE,
    Dataset,
    W,
    name_images,
)
from qa.geometry import (
    DEFAULT_IOU_THRESHOLD,
    Geometry,
    check_iou_threshold,
    cross_pairs,
    match_grouped,
    xywh_to_xyxy,
)
from qa.results import findings_frame, frame_records

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, str], None]

# A prediction at least this confident is the model's claim. The usual operating point of a
# detector; sample_data's planted false positives all score below 0.35, its true ones >= 0.6.
DEFAULT_CONF_THRESHOLD = 0.5
# Below this IoU two boxes barely touch: a same-class label and claim are then two separate
# errors (a spurious and a missing label), not one badly drawn box.
DEFAULT_LOW_IOU = 0.1
# Two same-class boxes of one annotator overlapping this much are one object drawn twice;
# distinct touching objects rarely overlap by more than half.
DEFAULT_DUPLICATE_IOU = 0.7
# COCO's small / medium / large box areas (32^2, 96^2 px): the model's miss rate differs by size
SIZE_BUCKETS = np.array([32.0 ** 2, 96.0 ** 2])
# ObjectLab's soft-min temperature: small enough that one bad box dominates its image's score.
POOL_TEMPERATURE = 0.1
# A same-class label and claim that barely overlap but whose centres lie within one mean box
# diagonal (and whose areas differ less than 4x) are one object drawn beside itself: the
# planted "shifted by more than half its size" boxes of sample_data lie at 0.38-0.77.
NEAR_DISTANCE = 1.0
NEAR_AREA_RATIO = 4.0
# Below this many claims the model's precision cannot be measured: the raw scores stand in.
MIN_CALIBRATION_CLAIMS = 30
# How often the crop of a box drawn on nothing (or on the wrong thing) lies outside its
# class's spread: an assumption, not measured (the false-alarm rate on boxes the model
# confirms is measured). 0.8: most such crops hold background or another class.
CROP_SENSITIVITY = 0.8
# Why a flag is taken for what it is (``decided_by``)
DECIDED_BY = {"model": "the model contradicts the label with a confident prediction",
              "labels": "the labels themselves (one box drawn twice)",
              "crop": "the box's crop, compared with the other boxes of its class",
              "estimate": "estimated: the share of unsupported boxes of its size that are "
                          "label errors"}

CONSENSUS = "consensus"
OK = "ok"
BOX_KINDS = ("missing_label", "spurious_label", "wrong_class", "poor_localisation",
             "duplicate_annotation")
CAUSES = ("label_error", "model_miss", "undecided")
MODEL_MISS = "model_miss"  # the finding kind of an unsupported box the crops call a miss
LABEL_ISSUE = "label_issue"
KINDS = BOX_KINDS + (LABEL_ISSUE,)
KIND_TITLES = {"missing_label": "missing label", "spurious_label": "unsupported label",
               "wrong_class": "wrong class", "poor_localisation": "poor localisation",
               "duplicate_annotation": "duplicate annotation", LABEL_ISSUE: "label issue",
               MODEL_MISS: "model miss"}
_SEVERITY: dict = {}  # every flag kind: "warning" (model misses: "info", see findings())

BOX_COLUMNS = ["image_id", "kind", "quality", "score", "p_label_error", "cause", "decided_by",
               "ann_ids", "pred_id", "category_id", "pred_category_id", "pred_score",
               "pred_precision", "iou", "annotator", "x", "y", "w", "h", "message"]
UNKNOWN_COLUMNS = [PRED_ID, IMAGE_ID, CATEGORY_ID, SCORE, "reason"]


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class DisagreementResult:
    """Flags and review queue of :func:`compute_disagreement`.

    boxes      one row per reference box, per unmatched confident prediction and per duplicate
               annotation: ``kind`` ("ok" or a flag kind), ``quality`` (LOWER = worse, in
               [0, 1]), ``score`` = 1 - quality, the ``ann_ids``, the ``pred_id``, classes,
               ``pred_score``, ``iou``, the label box ``x, y, w, h`` and a ``message``.
    per_image  one row per judged image: counts per kind, ``label_quality`` (soft-min pooled,
               LOWER = more likely wrong), ``score`` = 1 - label_quality, ``is_flagged``,
               ``reasons`` in words.
    per_class  flags per class (the label's class; the model's for missing labels) and kind.
    unknown_predictions  predictions whose image or class the dataset lacks, with the reason.
    """

    reference: str
    model: str | None
    conf_threshold: float
    iou_threshold: float
    low_iou: float
    duplicate_iou: float
    is_classification: bool
    boxes: pd.DataFrame
    per_image: pd.DataFrame
    per_class: pd.DataFrame
    unknown_predictions: pd.DataFrame
    unpredicted_image_ids: tuple = ()
    notes: tuple = ()
    category_names: dict = field(default_factory=dict)
    estimate: dict = field(default_factory=dict)
    #: the dataset's images table, so that findings name files, not internal ids
    image_table: pd.DataFrame | None = field(default=None, repr=False)

    ANALYSIS: ClassVar[str] = "disagreement"

    @property
    def flags(self) -> pd.DataFrame:
        """The flagged rows of ``boxes``, worst first."""
        f = self.boxes[self.boxes["kind"] != OK]
        return f.sort_values(["quality", "image_id"], kind="stable", ignore_index=True)

    @property
    def queue(self) -> pd.DataFrame:
        """Flagged images, most likely wrong first (increasing ``label_quality``)."""
        q = self.per_image[self.per_image["is_flagged"]]
        return q.sort_values(["label_quality", "image_id"], kind="stable", ignore_index=True)

    def queue_captions(self, n: int | None = None) -> dict[int, str]:
        """image_id -> "#rank, quality q: reasons" for the first ``n`` queue images."""
        q = self.queue if n is None else self.queue.head(n)
        return {int(i): f"#{r} quality {lq:.2f}: {why}" for r, (i, lq, why) in
                enumerate(zip(q["image_id"], q["label_quality"], q["reasons"]), start=1)}

    def flagged_ann_ids(self, image_ids) -> list[int]:
        """ann_ids of the flagged boxes on ``image_ids`` (to highlight in a gallery)."""
        f = self.flags
        f = f[f["image_id"].isin(list(image_ids))]
        return sorted({int(a) for ids in f["ann_ids"] for a in ids})

    def counts(self) -> dict[str, int]:
        """Flags per kind (every kind, 0 when none)."""
        vc = self.boxes["kind"].value_counts()
        return {k: int(vc.get(k, 0)) for k in KINDS}

    def cause_counts(self) -> dict:
        """The flags split by cause, each with how it was decided::

            {"label_errors": n, "model_misses": n, "estimated": bool,
             "label_errors_counted": n, "label_errors_estimated": x,
             "by": {cause: {decided_by: n}}, "basis": "one sentence"}

        ``label_errors`` and ``model_misses`` are counts where every flag was decided (by the
        model's confident contradiction, the labels, or the crops) and expected values
        (floats) where unsupported boxes were left undecided (no crops): then ``estimated``
        is True and ``basis`` says how the estimate was made. Computed once per result (the
        page, its headline and the metrics read it; ~1 s at 50k images)."""
        done = self.__dict__.get("_cause_counts")
        if done is None:
            done = self._cause_counts()
            object.__setattr__(self, "_cause_counts", done)  # frozen: a private cache
        return {**done, "by": {c: dict(v) for c, v in done["by"].items()}}

    def _cause_counts(self) -> dict:
        f = self.boxes[self.boxes["kind"] != OK]
        cause = f["cause"].to_numpy(object)
        p = f["p_label_error"].to_numpy(np.float64)
        und = cause == "undecided"
        counted = int((cause == "label_error").sum())
        est = float(p[und].sum())
        misses = int((cause == MODEL_MISS).sum()) + float((1 - p[und]).sum())
        by: dict = {}
        pairs = pd.DataFrame({"c": pd.Series(cause, dtype=object).astype(str),
                              "h": f["decided_by"].astype(object).astype(str).to_numpy()})
        for (c, h), n in pairs.value_counts(sort=False).items():
            by.setdefault(c, {})[h] = int(n)
        return {"label_errors": counted + est if und.any() else counted,
                "model_misses": misses if und.any() else int(misses),
                "estimated": bool(und.any()), "label_errors_counted": counted,
                "label_errors_estimated": est, "by": by, "basis": self.basis()}

    def basis(self) -> str:
        """How the label-error and model-miss figures were obtained, in one or two sentences."""
        if self.is_classification:
            return ("confident learning: an image whose label the model's probabilities "
                    "contradict beyond the per-class thresholds is a likely label error.")
        f = self.boxes[self.boxes["kind"] != OK]
        decided = f["cause"].isin(["label_error"]) & (f["decided_by"] != "crop")
        parts = [f"{int(decided.sum())} counted where the model contradicts a label with a "
                 "confident prediction (wrong class, missing or badly drawn box) or a box is "
                 "drawn twice"]
        unsup = f[f["kind"] == "spurious_label"]
        crop = unsup[unsup["decided_by"] == "crop"]
        if len(crop):
            lab = int((crop["cause"] == "label_error").sum())
            parts.append(f"{lab} of {len(crop)} boxes no prediction supports decided by their "
                         f"crops (unlike their class: label error; {len(crop) - lab} like it: "
                         "model miss)")
        und = unsup[unsup["cause"] == "undecided"]
        if len(und):
            e = self.estimate
            parts.append(
                f"{und['p_label_error'].sum():.1f} of {len(und)} boxes no prediction supports "
                "are estimated to be label errors, the rest model misses (assumption: a box "
                "drawn on nothing is as common per box as a wrong-class or badly drawn one, "
                f"{100 * e.get('rho', 0):.1f} % here, within each size bucket)"
                + ("" if len(crop) else "; embed the boxes for a per-box decision"))
        return "; ".join(parts) + "."

    def metrics(self) -> dict[str, float | int | None]:
        """Headline figures (see :mod:`qa.results`); box kinds are None for a classification
        dataset and ``n_label_issues``/``label_issue_share`` None for a detection one.

        ``n_likely_label_errors`` / ``n_likely_model_misses``: the flags split by cause
        (:meth:`cause_counts`; expected values where no crops decide).
        ``n_label_error_images``: images with at least one likely label error (expected value:
        1 - prod(1 - p) over the image's flags), ``label_error_image_share`` of the judged.
        ``label_errors_estimated``: 1 when those figures are estimates, else 0."""
        c = self.counts()
        n_img = len(self.per_image)
        n_flagged = int(self.per_image["is_flagged"].sum()) if n_img else 0
        cc = self.cause_counts()
        n_err_img = float(self.per_image["p_label_error"].sum()) if n_img else 0.0
        out: dict[str, float | int | None] = {
            "n_flags": int(sum(c.values())), "n_flagged_images": n_flagged,
            "flagged_image_share": n_flagged / n_img if n_img else None,
            "n_likely_label_errors": cc["label_errors"],
            "n_likely_model_misses": cc["model_misses"],
            "n_label_error_images": n_err_img,
            "label_error_image_share": n_err_img / n_img if n_img else None,
            "label_errors_estimated": int(cc["estimated"]),
        }
        for k in BOX_KINDS:
            out[f"n_{k}"] = None if self.is_classification else c[k]
        out["n_label_issues"] = c[LABEL_ISSUE] if self.is_classification else None
        out["label_issue_share"] = (c[LABEL_ISSUE] / n_img if self.is_classification and n_img
                                    else None)
        out["n_unknown_predictions"] = len(self.unknown_predictions)
        return out

    def value_basis(self, metrics) -> str | None:
        """For the report: how a label-quality metric was obtained (None for the others)."""
        if not set(metrics) & {"n_likely_label_errors", "n_label_error_images",
                               "label_error_image_share", "label_issue_share"}:
            return None
        cc = self.cause_counts()
        crop = cc["by"].get("label_error", {}).get("crop", 0) + \
            cc["by"].get(MODEL_MISS, {}).get("crop", 0)
        head = ("count" if not cc["estimated"] else
                "count and estimate" if crop else "estimate")
        return f"{head}: {cc['basis']}"

    def findings(self) -> pd.DataFrame:
        """One finding per flag (kind = the flag kind, score = 1 - quality); an unsupported box
        the crops take for a model miss is kind "model_miss" with severity "info", one left
        undecided says so and is a warning only when it is more likely a label error."""
        f = self.flags
        if f.empty:
            return findings_frame(analysis=self.ANALYSIS, page="disagreement")
        cause = f["cause"].to_numpy(object)
        kind = np.where(cause == MODEL_MISS, MODEL_MISS, f["kind"].to_numpy(object))
        p = f["p_label_error"].to_numpy(np.float64)
        sev = [("info" if c == MODEL_MISS or (c == "undecided" and pp < 0.5)
                else _SEVERITY.get(k, "warning")) for k, c, pp in zip(kind, cause, p)]
        return findings_frame(pd.DataFrame({
            "kind": kind, "severity": sev,
            "score": f["score"], "image_id": f["image_id"], "ann_ids": f["ann_ids"],
            "pred_ids": [() if pd.isna(p) else (int(p),) for p in f["pred_id"]],
            "category_id": f["category_id"].fillna(f["pred_category_id"]),
            "annotator": f["annotator"],
            "message": [f"{name}: {m}" for name, m in
                        zip(name_images(self.image_table, f["image_id"]), f["message"])],
        }), analysis=self.ANALYSIS, page="disagreement")

    def to_dict(self) -> dict:
        return {
            "reference": self.reference, "model": self.model,
            "conf_threshold": self.conf_threshold, "iou_threshold": self.iou_threshold,
            "low_iou": self.low_iou, "duplicate_iou": self.duplicate_iou,
            "is_classification": self.is_classification, "metrics": self.metrics(),
            "flags": frame_records(self.flags), "queue": frame_records(self.queue),
            "per_class": frame_records(self.per_class),
            "unknown_predictions": frame_records(self.unknown_predictions),
            "unpredicted_image_ids": [int(i) for i in self.unpredicted_image_ids],
            "causes": self.cause_counts(), "estimate": self.estimate,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
def choose_model(dataset: Dataset, model: str | None) -> str:
    """The model whose predictions are judged: ``model``, or the only one. Raises ValueError
    when there are none, several and none chosen, or ``model`` is unknown."""
    models = dataset.models
    if not models:
        raise ValueError("this dataset has no model predictions; give a file with "
                         "--predictions FILE (qa.load(path, predictions=FILE) in Python) or "
                         "put it in predictions/*.json beside the dataset.")
    if model is None:
        if len(models) > 1:
            raise ValueError(f"the dataset holds predictions of several models {list(models)}; "
                             "choose one with model=NAME.")
        return models[0]
    if str(model) not in models:
        raise ValueError(f"unknown model {model!r}; the dataset has predictions of "
                         f"{list(models)}.")
    return str(model)


def model_predictions(dataset: Dataset, model: str) -> pd.DataFrame:
    """The predictions of ``model``. Raises ValueError when a score is NaN or outside [0, 1]
    (a detector's confidence is a probability), naming how many and an example."""
    p = dataset.predictions
    p = p[p[MODEL].astype(str) == model]
    s = p[SCORE].to_numpy(np.float64)
    bad = ~np.isfinite(s) | (s < 0) | (s > 1)
    if bad.any():
        ex = p.loc[bad, [PRED_ID, IMAGE_ID, SCORE]].head(3).to_dict("records")
        raise ValueError(f"{int(bad.sum())} predictions of model {model!r} have a score that is "
                         f"NaN or outside [0, 1] (e.g. {ex}); scores must be confidences in "
                         "[0, 1]: apply a sigmoid/softmax, or drop those rows.")
    return p


def split_unknown(dataset: Dataset, preds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions for known images and classes, the others with a ``reason``)."""
    img_ok = preds[IMAGE_ID].isin(dataset.images[IMAGE_ID])
    cat_ok = preds[CATEGORY_ID].isin(dataset.categories[CATEGORY_ID])
    bad = ~(img_ok & cat_ok)
    u = preds.loc[bad, [PRED_ID, IMAGE_ID, CATEGORY_ID, SCORE]].copy()
    u["reason"] = np.where(~img_ok[bad], "image not in the dataset", "class not in the dataset")
    return preds[~bad], u.reset_index(drop=True)


def judged_predictions(dataset: Dataset, model: str | None, reference: str | None):
    """What disagreement and evaluation both start from: (the model's name, (the reference's
    name, the annotators it draws on), its predictions for known images and classes, the
    others with a ``reason``, and the notes to show about them). Raises ValueError for an
    unknown or ambiguous model or reference and for scores that are not confidences."""
    model = choose_model(dataset, model)
    ref = reference_names(dataset, reference)
    preds, unknown = split_unknown(dataset, model_predictions(dataset, model))
    notes = []
    if len(unknown):
        notes.append(f"{len(unknown)} predictions are for images or classes the dataset lacks "
                     "(see unknown_predictions); they are not judged or scored.")
    return model, ref, preds, unknown, notes


def reference_names(dataset: Dataset, reference: str | None) -> tuple[str, tuple[str, ...]]:
    """(reference label, annotators it draws on). ``None`` = the only annotator, or consensus."""
    anns = tuple(dataset.annotators)
    if reference is None:
        reference = anns[0] if len(anns) == 1 else CONSENSUS
    if reference == CONSENSUS:
        return (CONSENSUS, anns) if len(anns) > 1 else (anns[0] if anns else CONSENSUS, anns)
    if reference not in anns:
        raise ValueError(f"unknown reference {reference!r}; choose an annotator of "
                         f"{list(anns)} or 'consensus'.")
    return reference, (reference,)


def reference_boxes(ds: Dataset, reference: str) -> pd.DataFrame:
    """The reference boxes: image_id, category_id, x, y, w, h, area, iscrowd, ann_ids (tuple
    of the annotations behind each box) and annotator. ``reference``: an annotator, or
    ``"consensus"`` (agreement's consensus objects drawn by at least half of the annotators
    who labelled the image; area = w * h, never crowd)."""
    cols = [IMAGE_ID, CATEGORY_ID, *BOX, AREA, ISCROWD]
    anns = ds.annotations[ds.annotations[W].notna()]
    if reference == CONSENSUS and anns[ANNOTATOR].astype(str).nunique() < 2:
        reference = str(anns[ANNOTATOR].iloc[0]) if len(anns) else reference
    if anns.empty:  # nothing labelled: every confident prediction is a missing label
        out = pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
        out = out.astype({IMAGE_ID: "int64", CATEGORY_ID: "int64", ISCROWD: "int64"})
        out["ann_ids"] = pd.Series(dtype=object)
        out["annotator"] = pd.Series(dtype=object)
        return out
    if reference != CONSENSUS:
        a = anns[anns[ANNOTATOR].astype(str) == reference]
        out = a[cols].reset_index(drop=True).astype({ISCROWD: "int64"})
        out["ann_ids"] = [(int(i),) for i in a[ANN_ID]]
        out["annotator"] = reference
        return out
    from qa.agreement import compute_agreement

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ag = compute_agreement(ds)
    cl = ag.clusters
    keep = cl[(cl["n_raters"] > 0) & (2 * cl["n_boxes"] >= cl["n_raters"])]
    out = keep[[IMAGE_ID, CATEGORY_ID, *BOX]].reset_index(drop=True)
    out[AREA] = out["w"] * out["h"]
    out[ISCROWD] = 0
    out["ann_ids"] = _members_of(ag.members, keep["cluster_id"].to_numpy(np.int64))
    out["annotator"] = CONSENSUS
    return out


def _members_of(members: pd.DataFrame, cluster_ids: np.ndarray) -> list[tuple]:
    """The sorted ann_ids of each cluster in ``cluster_ids`` (one sort, no per-group Python
    function: 400k clusters at 50k images)."""
    cid = members["cluster_id"].to_numpy(np.int64)
    aid = members[ANN_ID].to_numpy(np.int64)
    order = np.lexsort((aid, cid))
    cid, ids = cid[order], aid[order].tolist()
    lo = np.searchsorted(cid, cluster_ids, "left").tolist()
    hi = np.searchsorted(cid, cluster_ids, "right").tolist()
    return [tuple(ids[a:b]) for a, b in zip(lo, hi)]


# ---------------------------------------------------------------------------------------------
# compute_disagreement
# ---------------------------------------------------------------------------------------------
def compute_disagreement(dataset: Dataset, *, reference: str | None = None,
                         model: str | None = None,
                         conf_threshold: float = DEFAULT_CONF_THRESHOLD,
                         iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                         low_iou: float = DEFAULT_LOW_IOU,
                         duplicate_iou: float = DEFAULT_DUPLICATE_IOU,
                         skip_unpredicted: bool | None = None,
                         objects=None,
                         progress: ProgressFn | None = None) -> DisagreementResult:
    """Where ``model``'s predictions and the ``reference`` labels of ``dataset`` disagree:
    per-box flags and the per-image review queue (method and defaults: module docstring).

    ``reference``: an annotator name, ``"consensus"``, or None (the only annotator, else the
    consensus). ``model``: the predictions' model name (None = the only one). Thresholds:
    ``conf_threshold`` (a claim), ``iou_threshold`` (a match), ``low_iou`` (below it a box is
    not a poor localisation of a claim but unrelated), ``duplicate_iou``.
    ``skip_unpredicted``: labelled images with no prediction at all are not judged when True
    (the model ran on a subset); judged (every label unsupported) when False; None (default)
    skips only those whose file is missing or unreadable, which no model can have seen.
    ``objects``: object embeddings (:func:`qa.embeddings.embed_objects`) of reference boxes,
    optional: a second opinion on ``spurious_label`` flags. A detector's misses look exactly
    like spurious labels (no prediction supports the box); a box whose crop lies inside its
    class's spread (not a :func:`qa.outliers.class_outliers` member) is probably a miss, so
    its quality rises to at least :data:`TYPICAL_CROP_QUALITY` and it ranks later; one whose
    crop looks unlike its class keeps its rank. Both say so in their message.
    Returns a :class:`DisagreementResult`; its ``label_quality`` and ``quality`` are LOWER =
    more likely wrong, its findings' ``score`` higher = worse.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a qa.Dataset, got {type(dataset).__name__}; build one "
                        "with qa.load(path).")
    conf = float(conf_threshold)
    if not 0.0 <= conf <= 1.0:
        raise ValueError(f"conf_threshold must be in [0, 1], got {conf}; 0.5 is the usual choice.")
    thr = check_iou_threshold(iou_threshold)
    low = float(low_iou)
    if not 0.0 < low <= thr:
        raise ValueError(f"low_iou must be in (0, iou_threshold={thr}], got {low}.")
    dup = check_iou_threshold(duplicate_iou)
    progress = progress or (lambda frac, msg: None)
    model, (ref_name, ref_annotators), preds, unknown, notes = judged_predictions(
        dataset, model, reference)
    kw = {"reference": ref_name, "model": model, "conf_threshold": conf,
          "iou_threshold": thr, "low_iou": low, "duplicate_iou": dup,
          "unknown_predictions": unknown, "category_names": dataset.category_names,
          "image_table": dataset.images}
    if dataset.is_classification:
        return _compute_classification(dataset, preds, ref_annotators, notes, kw)
    progress(0.05, "Reference labels")
    ref = reference_boxes(dataset, ref_name)
    ref = ref[ref[ISCROWD] == 0].reset_index(drop=True)  # crowd regions are not objects
    all_ids = dataset.images[IMAGE_ID].to_numpy(np.int64)
    unpredicted = np.setdiff1d(np.intersect1d(all_ids, ref[IMAGE_ID].to_numpy(np.int64)),
                               preds[IMAGE_ID].to_numpy(np.int64))
    if skip_unpredicted is None:  # auto: skip those the model cannot have seen
        unpredicted = np.intersect1d(unpredicted, _unreadable_ids(dataset))
    elif not skip_unpredicted:
        unpredicted = unpredicted[:0]
    judged = np.setdiff1d(all_ids, unpredicted)
    if len(unpredicted):
        notes.append(f"{len(unpredicted)} labelled images have no prediction at all and are not "
                     "judged (the model did not see them).")
    ref = ref[ref[IMAGE_ID].isin(judged)].reset_index(drop=True)
    anns = dataset.annotations
    anns = anns[anns[W].notna() & anns[IMAGE_ID].isin(judged)
                & anns[ANNOTATOR].astype(str).isin(ref_annotators)]
    progress(0.3, "Matching predictions to labels")
    boxes = _compute_boxes(judged, ref, preds, anns, conf, thr, low, dup,
                           per_annotator_duplicates=ref_name == CONSENSUS)
    unlike = _crop_verdicts(dataset, objects, notes) if objects is not None else None
    estimate = _judge(boxes, unlike, getattr(objects, "model_id", None), notes)
    boxes = boxes[BOX_COLUMNS]
    progress(0.8, "Review queue")
    per_image = _per_image(judged, boxes)
    per_class = _per_class(boxes, dataset.category_names)
    _messages(boxes, dataset.category_names)
    progress(1.0, "Done")
    return DisagreementResult(is_classification=False, boxes=boxes, per_image=per_image,
                              per_class=per_class, unpredicted_image_ids=tuple(
                                  int(i) for i in unpredicted), notes=tuple(notes),
                              estimate=estimate, **kw)


def _crop_verdicts(ds: Dataset, objects, notes: list) -> dict[int, bool]:
    """ann_id -> True when the crop of that box looks unlike its class (a per-class outlier
    of :func:`qa.outliers.class_outliers`), False when it lies inside its class's spread."""
    from qa.embeddings import Embeddings, object_categories
    from qa.outliers import class_outliers

    if not isinstance(objects, Embeddings) or objects.ann_ids is None:
        raise TypeError("objects must be object embeddings from qa.embeddings.embed_objects()")
    cats = object_categories(ds, objects)
    known = pd.notna(cats)
    co = class_outliers(objects.vectors[known], cats[known]) if known.any() else None
    return {} if co is None else {
        int(a): bool(o) for a, o, d in zip(objects.ann_ids[known], co["is_class_outlier"],
                                           co["distance"]) if pd.notna(d)}


def _box_verdict(ann_ids, unlike: dict) -> bool | None:
    seen = [unlike[int(a)] for a in ann_ids if int(a) in unlike]
    return any(seen) if seen else None


def _judge(boxes: pd.DataFrame, unlike: dict | None, model_id: str | None,
           notes: list) -> dict:
    """Decide, for every flag, whether it is a likely label error or a likely model miss, and
    how (in place: ``quality``, ``score``, ``p_label_error``, ``cause``, ``decided_by``).
    Returns the figures of :meth:`DisagreementResult.label_error_estimate`.

    * wrong class, missing label: the model contradicts the label with a confident claim;
      the label is wrong with the model's measured precision at that score (``cause``
      "label_error", decided by "model").
    * poorly located: a confident claim of the label's class lies beside the box, and the box
      itself is unsupported: the label is right only if the claim is wrong AND the model
      missed the labelled object (quality = (1 - precision) x (1 - p_unsupported)).
    * duplicate annotation: a label error (decided by the labels alone).
    * unsupported box (``spurious_label``): the model misses objects, so no prediction under
      a box proves nothing by itself. With crops (``unlike``) Bayes' rule with the crop's
      verdict decides ("crop"); without, each box gets the estimated share of unsupported
      boxes of its size that are label errors ("estimate", cause "undecided"): box-level label
      errors that leave no support (a box drawn on nothing) are taken to be as common, per
      drawn box, as those the model does see (wrong class, badly located), the Laplace-smoothed
      rate ``rho``; in each COCO size bucket ``min(unsupported, rho x boxes)`` of the
      unsupported boxes are label errors, the rest model misses.
    """
    kind = boxes["kind"].to_numpy(object)
    prec = boxes["pred_precision"].to_numpy(np.float64)
    bucket = boxes["bucket"].to_numpy(np.int64)
    n_b = len(SIZE_BUCKETS) + 1
    drawn = np.array([len(a) > 0 for a in boxes["ann_ids"]]) & (kind != "duplicate_annotation")
    p = np.zeros(len(boxes))
    cause = np.full(len(boxes), None, dtype=object)
    how = np.full(len(boxes), None, dtype=object)
    quality = boxes["quality"].to_numpy(np.float64).copy()
    for k in ("wrong_class", "missing_label"):
        m = kind == k
        p[m], cause[m], how[m] = prec[m], "label_error", "model"
        quality[m] = 1.0 - prec[m]
    dup = kind == "duplicate_annotation"
    p[dup], cause[dup], how[dup] = 1.0 - quality[dup], "label_error", "labels"
    pl = kind == "poor_localisation"
    seen = (kind == "wrong_class") | pl
    n_drawn = int(drawn.sum())
    rho = (float(prec[seen].sum()) + 1.0) / (n_drawn + 2.0)
    unsup = kind == "spurious_label"
    N = np.bincount(bucket[drawn], minlength=n_b).astype(np.float64)
    U = np.bincount(bucket[unsup], minlength=n_b).astype(np.float64)
    E = np.minimum(U, rho * N)
    p_u = np.divide(E, U, out=np.zeros(n_b), where=U > 0)
    p[pl], cause[pl], how[pl] = 0.0, "label_error", "model"
    quality[pl] = (1.0 - prec[pl]) * (1.0 - p_u[bucket[pl]])
    p[pl] = 1.0 - quality[pl]
    p[unsup], cause[unsup], how[unsup] = p_u[bucket[unsup]], "undecided", "estimate"
    fpr = None
    if unlike is not None:
        ok = np.flatnonzero(kind == OK)
        ok_v = [v for v in (_box_verdict(boxes["ann_ids"].iat[r], unlike) for r in ok)
                if v is not None]
        # how often a crop of a box the model confirms still looks unlike its class
        fpr = (sum(ok_v) + 1.0) / (len(ok_v) + 2.0)
        for r in np.flatnonzero(unsup):
            v = _box_verdict(boxes["ann_ids"].iat[r], unlike)
            if v is None:
                continue
            prior = p[r]
            hit, miss = (CROP_SENSITIVITY, fpr) if v else (1 - CROP_SENSITIVITY, 1 - fpr)
            p[r] = prior * hit / max(prior * hit + (1 - prior) * miss, 1e-12)
            cause[r] = "label_error" if p[r] >= 0.5 else "model_miss"
            how[r] = "crop"
    quality[unsup] = 1.0 - p[unsup]
    boxes["quality"] = np.clip(quality, 0.0, 1.0)
    boxes["score"] = 1.0 - boxes["quality"]
    boxes["p_label_error"] = np.where(kind == OK, 0.0, p)
    boxes["cause"] = cause
    boxes["decided_by"] = how
    n_crop = int(((how == "crop") & unsup).sum())
    if unlike is not None:
        lab = int(((how == "crop") & (cause == "label_error")).sum())
        notes.append(f"second opinion from {model_id} crops on {n_crop} of {int(unsup.sum())} "
                     f"unsupported boxes: {n_crop - lab} look like their class (probably model "
                     f"misses, ranked later), {lab} look unlike it (probably label errors).")
    und = cause == "undecided"
    return {"rho": rho, "crop_false_alarm_rate": fpr, "boxes_per_bucket": N.tolist(),
            "unsupported_per_bucket": U.tolist(), "label_errors_per_bucket": E.tolist(),
            "n_undecided": int(und.sum()), "n_estimated_label_errors": float(p[und].sum())}


def _unreadable_ids(ds: Dataset) -> np.ndarray:
    """Images whose file is missing or unreadable (as the loader found): no model saw them."""
    im = ds.images
    bad = np.zeros(len(im), bool)
    for col in (EXISTS, READABLE):
        if col in im.columns:
            bad |= im[col].astype("boolean").fillna(True).to_numpy(bool) == False
    return im.loc[bad, IMAGE_ID].to_numpy(np.int64)


def _sorted_by_image(df: pd.DataFrame, *extra) -> pd.DataFrame:
    keys = [IMAGE_ID, *extra]
    return df.sort_values(keys, kind="stable", ignore_index=True)


def _compute_boxes(img_ids, ref, preds, anns, conf, thr, low, dup, *,
                   per_annotator_duplicates: bool) -> pd.DataFrame:
    ref = _sorted_by_image(ref)
    preds = preds.assign(_neg=-preds[SCORE]).sort_values([IMAGE_ID, "_neg", PRED_ID],
                                                         kind="stable", ignore_index=True)
    nr = len(ref)
    r_img = np.searchsorted(img_ids, ref[IMAGE_ID].to_numpy(np.int64))
    r_cat = ref[CATEGORY_ID].to_numpy(np.int64)
    r_geo = Geometry(xywh_to_xyxy(ref[BOX].to_numpy(np.float64)))
    p_img = np.searchsorted(img_ids, preds[IMAGE_ID].to_numpy(np.int64))
    p_cat = preds[CATEGORY_ID].to_numpy(np.int64)
    p_score = preds[SCORE].to_numpy(np.float64)
    p_id = preds[PRED_ID].to_numpy(np.int64)
    p_geo = Geometry(xywh_to_xyxy(preds[BOX].to_numpy(np.float64)))
    c = np.flatnonzero(p_score >= conf)  # the claims (sorted by image: preds are)
    c_geo = p_geo.take(c)

    # per reference box: kind, quality, matched claim (position into preds), iou
    kind = np.full(nr, OK, dtype=object)
    quality = np.ones(nr)
    r_pred = np.full(nr, -1, dtype=np.int64)
    r_iou = np.full(nr, np.nan)
    # 1. claims vs boxes at the match threshold
    (ma, mc, miou), (xa, xc, xiou) = match_grouped(r_img, p_img[c], r_geo, c_geo, r_cat,
                                                   p_cat[c], thr)
    quality[ma], r_pred[ma], r_iou[ma] = miou, c[mc], miou
    kind[xa], r_pred[xa], r_iou[xa] = "wrong_class", c[xc], xiou
    quality[xa] = 1.0 - p_score[c[xc]]
    used_r = np.zeros(nr, bool)
    used_r[ma] = used_r[xa] = True
    used_c = np.zeros(len(c), bool)
    used_c[mc] = used_c[xc] = True
    # 2. leftovers of the same class at low_iou <= IoU < thr: poorly drawn boxes
    lr, lc = np.flatnonzero(~used_r), np.flatnonzero(~used_c)
    (pa, pc, piou), _ = match_grouped(r_img[lr], p_img[c[lc]], r_geo.take(lr),
                                      c_geo.take(lc), r_cat[lr], p_cat[c[lc]], low)
    pa, pc = lr[pa], lc[pc]
    kind[pa], quality[pa], r_pred[pa], r_iou[pa] = "poor_localisation", piou, c[pc], piou
    used_r[pa] = True
    used_c[pc] = True
    # 2b. leftovers of the same class that barely touch but lie next to each other: one
    # object whose box was drawn beside it (ObjectLab's "badly located" box), not a spurious
    # label plus a missing one
    lr, lc = np.flatnonzero(~used_r), np.flatnonzero(~used_c)
    na, nc, niou = _near_pairs(r_img[lr], p_img[c[lc]], r_geo.take(lr), c_geo.take(lc),
                               r_cat[lr], p_cat[c[lc]])
    na, nc = lr[na], lc[nc]
    kind[na], quality[na], r_pred[na], r_iou[na] = "poor_localisation", niou, c[nc], niou
    used_r[na] = True
    used_c[nc] = True
    # 3. boxes still left: supported by any same-class prediction at IoU >= thr?
    sr = np.flatnonzero(~used_r)
    support = np.full(len(sr), -1.0)  # -1: no same-class prediction there at all
    if len(sr) and len(p_img):
        i, j = cross_pairs(r_img[sr], p_img)
        iou = r_geo.take(sr).box_iou(p_geo, i, j)
        ok = (iou >= thr) & (r_cat[sr][i] == p_cat[j])
        np.maximum.at(support, i[ok], p_score[j[ok]])
    spur = (support < 0) | (support < conf)
    support = np.maximum(support, 0.0)
    kind[sr[spur]] = "spurious_label"
    quality[sr] = support
    # 4. claims still left: missing unless they overlap a reference box (a duplicate detection)
    # (against the reference boxes and every reference annotator's own boxes: an object some
    # annotators drew is an annotator disagreement, not a missing label)
    mp = np.flatnonzero(~used_c)
    best = np.zeros(len(mp))
    a_img = np.searchsorted(img_ids, anns[IMAGE_ID].to_numpy(np.int64))
    a_order = np.argsort(a_img, kind="stable")
    a_geo = Geometry(xywh_to_xyxy(anns[BOX].to_numpy(np.float64)[a_order]))
    for img_b, geo_b in ((r_img, r_geo), (a_img[a_order], a_geo)):
        if len(mp) and len(img_b):
            i, j = cross_pairs(p_img[c[mp]], img_b)
            iou = c_geo.take(mp).box_iou(geo_b, i, j)
            np.maximum.at(best, i, iou)
    miss = c[mp[best < thr]]

    box = ref[BOX].to_numpy(np.float64)
    has = r_pred >= 0
    rows = pd.DataFrame({
        "image_id": ref[IMAGE_ID].to_numpy(np.int64), "kind": kind, "quality": quality,
        "ann_ids": ref["ann_ids"].to_numpy(object),
        "pred_id": pd.array(np.where(has, p_id[np.maximum(r_pred, 0)], 0), dtype="Int64"),
        "category_id": pd.array(r_cat, dtype="Int64"),
        "pred_category_id": pd.array(np.where(has, p_cat[np.maximum(r_pred, 0)], 0),
                                     dtype="Int64"),
        "pred_score": np.where(has, p_score[np.maximum(r_pred, 0)], np.nan), "iou": r_iou,
        "annotator": ref["annotator"].to_numpy(object),
        "x": box[:, 0], "y": box[:, 1], "w": box[:, 2], "h": box[:, 3]})
    rows.loc[~has, ["pred_id", "pred_category_id"]] = pd.NA
    sp = sr[spur]
    rows.loc[sp, "pred_score"] = support[spur]
    missing = pd.DataFrame({
        "image_id": preds[IMAGE_ID].to_numpy(np.int64)[miss], "kind": "missing_label",
        "quality": 1.0 - p_score[miss], "ann_ids": [()] * len(miss),
        "pred_id": pd.array(p_id[miss], dtype="Int64"),
        "category_id": pd.array([pd.NA] * len(miss), dtype="Int64"),
        "pred_category_id": pd.array(p_cat[miss], dtype="Int64"),
        "pred_score": p_score[miss], "iou": best[best < thr],
        "annotator": ref["annotator"].iloc[0] if nr else None,
        "x": np.nan, "y": np.nan, "w": np.nan, "h": np.nan})
    # 5. duplicate annotations, within each annotator's boxes
    dups = _duplicates(anns, dup)
    if len(dups):
        if per_annotator_duplicates:
            rows = pd.concat([rows, dups], ignore_index=True)
        else:  # the reference is one annotator: its own box row becomes the duplicate flag
            pos = pd.Series(np.arange(len(rows)), index=[a[0] for a in rows["ann_ids"]])
            at = pos.reindex([a[0] for a in dups["ann_ids"]]).to_numpy()
            for col in ("kind", "quality", "iou"):
                rows.loc[at, col] = dups[col].to_numpy()
    frames = [f for f in (rows, missing) if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else rows
    out["quality"] = out["quality"].astype(np.float64).clip(0.0, 1.0)
    # the model's measured precision at each claim's score, against the labels it agrees with
    agreed = np.zeros(len(c), bool)
    agreed[mc] = True
    out["pred_precision"] = np.nan
    has_claim = out["kind"].isin(["wrong_class", "missing_label", "poor_localisation"]) \
        & out["pred_score"].notna()
    out.loc[has_claim, "pred_precision"] = claim_precision(
        p_score[c], agreed, out.loc[has_claim, "pred_score"].to_numpy(np.float64))
    out["bucket"] = np.searchsorted(SIZE_BUCKETS, (out["w"] * out["h"]).fillna(0).to_numpy(),
                                    side="right")
    out["score"] = 1.0 - out["quality"]
    out["message"] = None
    return out.sort_values(["image_id", "quality"], kind="stable", ignore_index=True)


def claim_precision(scores: np.ndarray, agreed: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The model's precision at the scores ``at``: the share of its claims that a label of
    their class confirms (IoU >= threshold), as a non-decreasing function of the score
    (isotonic regression, pool-adjacent-violators), kept inside
    ``[1/(n+2), (n+1)/(n+2)]`` for ``n`` claims so that no claim is ever certain. Fewer than
    :data:`MIN_CALIBRATION_CLAIMS` claims: the raw scores (nothing to measure against)."""
    from sklearn.isotonic import IsotonicRegression

    at = np.asarray(at, np.float64)
    n = len(scores)
    if n < MIN_CALIBRATION_CLAIMS:
        return at.copy()
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(np.asarray(scores, np.float64), np.asarray(agreed, np.float64))
    return np.clip(iso.predict(at), 1.0 / (n + 2), (n + 1.0) / (n + 2))


def _near_pairs(ga, gb, geo_a: Geometry, geo_b: Geometry, ca, cb):
    """Same-class pairs within a group (both sorted by group) whose centres lie within
    :data:`NEAR_DISTANCE` mean box diagonals and whose areas differ by less than
    :data:`NEAR_AREA_RATIO`: one-to-one, nearest first. Returns (positions a, positions b,
    IoU)."""
    pa, pb = cross_pairs(ga, gb)
    if not len(pa):
        return pa, pb, np.zeros(0)
    keep = ca[pa] == cb[pb]
    pa, pb = pa[keep], pb[keep]
    a, b = geo_a.xyxy, geo_b.xyxy
    ca_xy = (a[pa, :2] + a[pa, 2:]) / 2
    cb_xy = (b[pb, :2] + b[pb, 2:]) / 2
    diag = (np.hypot(*(a[pa, 2:] - a[pa, :2]).T) + np.hypot(*(b[pb, 2:] - b[pb, :2]).T)) / 2
    d = np.hypot(*(ca_xy - cb_xy).T) / np.maximum(diag, 1e-9)
    ar = geo_a.area[pa] / np.maximum(geo_b.area[pb], 1e-9)
    ok = (d <= NEAR_DISTANCE) & (ar < NEAR_AREA_RATIO) & (ar > 1.0 / NEAR_AREA_RATIO)
    pa, pb, d = pa[ok], pb[ok], d[ok]
    taken_a, taken_b, out = set(), set(), []
    for k in np.argsort(d, kind="stable"):
        if pa[k] not in taken_a and pb[k] not in taken_b:
            taken_a.add(pa[k])
            taken_b.add(pb[k])
            out.append(k)
    out = np.array(out, dtype=np.int64)
    if not len(out):
        return pa[:0], pb[:0], np.zeros(0)
    return pa[out], pb[out], geo_a.take(pa[out]).box_iou(geo_b.take(pb[out]),
                                                         np.arange(len(out)),
                                                         np.arange(len(out)))


def _duplicates(anns: pd.DataFrame, dup: float) -> pd.DataFrame:
    """Rows for the later box of each same-class pair of one annotator at IoU >= ``dup``."""
    cols = ["image_id", "kind", "quality", "ann_ids", "pred_id", "category_id",
            "pred_category_id", "pred_score", "iou", "annotator", "x", "y", "w", "h"]
    if anns.empty:
        return pd.DataFrame(columns=cols)
    a = anns.sort_values([IMAGE_ID, ANN_ID], kind="stable", ignore_index=True)
    code = a[ANNOTATOR].astype(str).to_numpy()
    key = (pd.factorize(code)[0].astype(np.int64) * (int(a[IMAGE_ID].max()) + 1)
           + a[IMAGE_ID].to_numpy(np.int64))
    order = np.argsort(key, kind="stable")
    a, key = a.iloc[order].reset_index(drop=True), key[order]
    i, j = cross_pairs(key, key)
    keep = (i < j)
    cat = a[CATEGORY_ID].to_numpy(np.int64)
    i, j = i[keep], j[keep]
    same = cat[i] == cat[j]
    i, j = i[same], j[same]
    geo = Geometry(xywh_to_xyxy(a[BOX].to_numpy(np.float64)))
    iou = geo.box_iou(geo, i, j)
    hit = iou >= dup
    if not hit.any():
        return pd.DataFrame(columns=cols)
    s = pd.DataFrame({"j": j[hit], "iou": iou[hit]}).groupby("j")["iou"].max()
    d = a.iloc[s.index.to_numpy()]
    return pd.DataFrame({
        "image_id": d[IMAGE_ID].to_numpy(np.int64), "kind": "duplicate_annotation",
        "quality": 1.0 - s.to_numpy(), "ann_ids": [(int(x),) for x in d[ANN_ID]],
        "pred_id": pd.array([pd.NA] * len(d), dtype="Int64"),
        "category_id": pd.array(d[CATEGORY_ID].to_numpy(np.int64), dtype="Int64"),
        "pred_category_id": pd.array([pd.NA] * len(d), dtype="Int64"),
        "pred_score": np.nan, "iou": s.to_numpy(),
        "annotator": d[ANNOTATOR].astype(str).to_numpy(object),
        "x": d["x"].to_numpy(), "y": d["y"].to_numpy(), "w": d["w"].to_numpy(),
        "h": d["h"].to_numpy()})


def pool_softmin(image_pos: np.ndarray, quality: np.ndarray, n_images: int,
                 temperature: float = POOL_TEMPERATURE) -> np.ndarray:
    """Soft minimum of ``quality`` per image (``image_pos`` in ``range(n_images)``):
    ``sum(q * exp(-q/T)) / sum(exp(-q/T))``; 1.0 for an image with no boxes."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    qmin = np.full(n_images, np.inf)
    np.minimum.at(qmin, image_pos, quality)
    w = np.exp(-(quality - qmin[image_pos]) / temperature)  # shifted: no underflow
    num = np.bincount(image_pos, w * quality, minlength=n_images)
    den = np.bincount(image_pos, w, minlength=n_images)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)


def _per_image(img_ids: np.ndarray, boxes: pd.DataFrame, kinds=BOX_KINDS) -> pd.DataFrame:
    pos = np.searchsorted(img_ids, boxes["image_id"].to_numpy(np.int64))
    n = len(img_ids)
    out = pd.DataFrame({IMAGE_ID: img_ids,
                        "n_boxes": np.bincount(pos, minlength=n)})
    kind = boxes["kind"].to_numpy(object)
    for k in kinds:
        out[f"n_{k}"] = np.bincount(pos[kind == k], minlength=n)
    flagged = kind != OK
    out["n_flags"] = np.bincount(pos[flagged], minlength=n)
    q = pool_softmin(pos, boxes["quality"].to_numpy(np.float64), n)
    out["label_quality"] = q
    out["score"] = 1.0 - q
    out["is_flagged"] = out["n_flags"] > 0
    # the chance that the image holds at least one label error (flags taken as independent)
    p = boxes["p_label_error"].to_numpy(np.float64) if "p_label_error" in boxes else \
        np.zeros(len(boxes))
    log_ok = np.bincount(pos, np.log1p(-np.clip(p, 0.0, 1.0 - 1e-12)), minlength=n)
    out["p_label_error"] = 1.0 - np.exp(log_ok)
    cause = boxes["cause"].to_numpy(object) if "cause" in boxes else np.full(len(boxes), None)
    out["n_label_errors"] = np.bincount(pos[cause == "label_error"], minlength=n)
    out["n_model_misses"] = np.bincount(pos[cause == MODEL_MISS], minlength=n)
    out["n_undecided"] = np.bincount(pos[cause == "undecided"], minlength=n)
    counts = out[[f"n_{k}" for k in kinds]].to_numpy()
    reasons = np.full(n, "", dtype=object)
    for r in np.flatnonzero(out["is_flagged"].to_numpy()):
        reasons[r] = ", ".join(f"{v} {KIND_TITLES[k]}" for k, v in zip(kinds, counts[r]) if v)
    out["reasons"] = reasons
    return out


def _per_class(boxes: pd.DataFrame, names: dict) -> pd.DataFrame:
    f = boxes[boxes["kind"] != OK]
    cat = f["category_id"].fillna(f["pred_category_id"])
    tab = pd.crosstab(cat.astype("Int64"), f["kind"]).reindex(columns=list(KINDS), fill_value=0)
    tab = tab.loc[:, tab.any(axis=0)] if len(tab) else tab
    tab.index.name = CATEGORY_ID
    tab = tab.reset_index()
    tab.insert(1, "name", [names.get(int(c), str(c)) for c in tab[CATEGORY_ID]])
    tab["n_flags"] = tab.drop(columns=[CATEGORY_ID, "name"]).sum(axis=1)
    return tab.sort_values("n_flags", ascending=False, ignore_index=True)


def _messages(boxes: pd.DataFrame, names: dict) -> None:
    """Fill ``message`` of the flagged rows (in place; ok rows keep None): what the model and
    the label say, what to do, and whether it is a likely label error or model miss and why."""
    def nm(c):
        return "?" if pd.isna(c) else names.get(int(c), str(c))

    msgs = boxes["message"].to_numpy(object).copy()
    cols = [boxes[c].to_numpy(object) for c in
            ("kind", "category_id", "pred_category_id", "pred_score", "iou", "annotator",
             "cause", "decided_by", "p_label_error", "pred_precision")]
    for r in np.flatnonzero(boxes["kind"].to_numpy(object) != OK):
        k, cat, pcat, s, iou, who, cause, how, p, prec = (col[r] for col in cols)
        sure = "" if pd.isna(prec) else f"; the model is right {prec:.0%} of the time at that score"
        if k == "missing_label":
            m = (f"the model sees a {nm(pcat)} (score {s:.2f}) that no label covers: add the "
                 f"box if the object is there{sure}")
        elif k == "spurious_label":
            m = f"no prediction supports this {nm(cat)} box"
            if how == "crop" and cause == MODEL_MISS:
                m += (f", but its crop looks like other {nm(cat)} boxes, so the model may have "
                      f"missed it: likely a model miss (label error {p:.0%})")
            elif how == "crop":
                m += (f" and its crop also looks unlike other {nm(cat)} boxes: likely a label "
                      f"error ({p:.0%}); remove it if nothing is there")
            else:
                m += (f": a label error or a model miss (about {p:.0%} of unsupported boxes of "
                      "its size are label errors); remove it if nothing is there")
        elif k == "wrong_class":
            m = (f"labelled {nm(cat)}, the model says {nm(pcat)} (score {s:.2f}, IoU "
                 f"{iou:.2f}): check the class{sure}")
        elif k == "poor_localisation":
            m = (f"this {nm(cat)} box overlaps the model's {nm(pcat)} box only at IoU "
                 f"{iou:.2f}: redraw it{sure}")
        elif k == "duplicate_annotation":
            m = f"{who}'s {nm(cat)} box repeats another of theirs (IoU {iou:.2f}): delete one"
        else:
            m = f"labelled {nm(cat)}, the model says {nm(pcat)} (score {s:.2f})"
        msgs[r] = m
    boxes["message"] = msgs


# ---------------------------------------------------------------------------------------------
# Classification: confident learning
# ---------------------------------------------------------------------------------------------
def _compute_classification(ds: Dataset, preds, ref_annotators, notes, kw) -> DisagreementResult:
    from qa.labelerrors import check_probabilities, find_label_issues

    anns = ds.annotations[ds.annotations[ANNOTATOR].astype(str).isin(ref_annotators)]
    # the reference label per image: majority over the reference annotators (ties: lowest id)
    votes = anns.groupby([IMAGE_ID, CATEGORY_ID]).size().rename("n").reset_index()
    votes = votes.sort_values([IMAGE_ID, "n", CATEGORY_ID], ascending=[True, False, True])
    label = votes.drop_duplicates(IMAGE_ID).set_index(IMAGE_ID)[CATEGORY_ID]
    cat_ids = np.sort(ds.categories[CATEGORY_ID].to_numpy(np.int64))
    probs = preds.pivot_table(index=IMAGE_ID, columns=CATEGORY_ID, values=SCORE,
                              aggfunc="max").reindex(columns=cat_ids).fillna(0.0)
    img = np.intersect1d(label.index.to_numpy(np.int64), probs.index.to_numpy(np.int64))
    unpred = np.setdiff1d(label.index.to_numpy(np.int64), img)
    if len(unpred):
        notes.append(f"{len(unpred)} labelled images have no predicted probabilities and are "
                     "not judged.")
    p = probs.loc[img].to_numpy(np.float64)
    y = np.searchsorted(cat_ids, label.loc[img].to_numpy(np.int64))
    if len(img) == 0:
        raise ValueError("no labelled image has predicted probabilities; check that the "
                         "probabilities CSV names the dataset's images.")
    p, y = check_probabilities(p, y)
    li = find_label_issues(y, p)
    ann_of = anns.groupby(IMAGE_ID)[ANN_ID].agg(lambda s: tuple(sorted(map(int, s))))
    sugg = li["suggested_label"].to_numpy()
    boxes = pd.DataFrame({
        "image_id": img, "kind": np.where(li["is_label_issue"], LABEL_ISSUE, OK),
        "quality": li["self_confidence"].to_numpy(), "ann_ids": ann_of.reindex(img).tolist(),
        "pred_id": pd.array([pd.NA] * len(img), dtype="Int64"),
        "category_id": pd.array(cat_ids[y], dtype="Int64"),
        "pred_category_id": pd.array(np.where(sugg >= 0, cat_ids[np.maximum(sugg, 0)], 0),
                                     dtype="Int64"),
        "pred_score": np.where(sugg >= 0, p[np.arange(len(img)), np.maximum(sugg, 0)], np.nan),
        "pred_precision": np.nan,
        "iou": np.nan, "annotator": kw["reference"], "x": np.nan, "y": np.nan, "w": np.nan,
        "h": np.nan, "message": None})
    issue = boxes["kind"].to_numpy(object) == LABEL_ISSUE
    boxes["p_label_error"] = np.where(issue, 1.0 - boxes["quality"].to_numpy(), 0.0)
    boxes["cause"] = np.where(issue, "label_error", None)
    boxes["decided_by"] = np.where(issue, "model", None)
    boxes.loc[sugg < 0, "pred_category_id"] = pd.NA
    boxes["score"] = 1.0 - boxes["quality"]
    boxes = boxes[BOX_COLUMNS]
    _messages(boxes, ds.category_names)
    per_image = _per_image(img, boxes, kinds=(LABEL_ISSUE,))
    per_image["label_quality"] = boxes["quality"].to_numpy()  # one label per image
    per_image["score"] = 1.0 - per_image["label_quality"]
    return DisagreementResult(is_classification=True, boxes=boxes, per_image=per_image,
                              per_class=_per_class(boxes, ds.category_names),
                              unpredicted_image_ids=tuple(int(i) for i in unpred),
                              notes=tuple(notes), **kw)


# ---------------------------------------------------------------------------------------------
# Runner for qa.analyses
# ---------------------------------------------------------------------------------------------
def run_analysis(dataset: Dataset, ctx) -> DisagreementResult:
    """Runner for :mod:`qa.analyses`; skipped when the dataset has no model predictions. With
    several models the first (by name) is judged unless ``options={"disagreement": {"model":
    NAME}}`` says otherwise."""
    from qa.analyses import Skip

    if len(dataset.predictions) == 0:
        raise Skip("no model predictions")
    opt = lambda name, default: ctx.option("disagreement", name, default)
    return compute_disagreement(
        dataset, reference=opt("reference", None), model=opt("model", dataset.models[0]),
        conf_threshold=opt("conf_threshold", DEFAULT_CONF_THRESHOLD),
        iou_threshold=opt("iou_threshold", DEFAULT_IOU_THRESHOLD),
        low_iou=opt("low_iou", DEFAULT_LOW_IOU),
        duplicate_iou=opt("duplicate_iou", DEFAULT_DUPLICATE_IOU),
        objects=ctx.object_embeddings(), progress=ctx.progress)  # the crops' second opinion


__all__ = [
    "BOX_KINDS",
    "CONSENSUS",
    "DEFAULT_CONF_THRESHOLD",
    "DEFAULT_DUPLICATE_IOU",
    "DEFAULT_LOW_IOU",
    "KINDS",
    "POOL_TEMPERATURE",
    "DisagreementResult",
    "choose_model",
    "compute_disagreement",
    "model_predictions",
    "pool_softmin",
    "run_analysis",
    "split_unknown",
]

