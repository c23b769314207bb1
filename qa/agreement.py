"""Inter-annotator agreement: box matching, pairwise box agreement, consensus objects,
leave-one-out annotator scorecards and chance-corrected coefficients (Cohen, Fleiss,
Krippendorff).

How boxes are compared
----------------------
* Two annotators' boxes on one image are matched one-to-one, maximising the summed IoU
  (:func:`scipy.optimize.linear_sum_assignment`); a pair below ``iou_threshold`` is never
  matched. As in CVAT's quality control, same-label pairs are matched first and the boxes
  left over are then matched across labels: those pairs are *label mismatches* (the object
  was found, the class differs).
* Consensus objects: all pairwise matches (same label or not) of all annotator pairs on an
  image are links of a graph; its connected components are the objects. A component that
  holds two boxes of one annotator (a chain a1-b1-c1-a2) is split by single-linkage
  agglomeration in decreasing IoU order that never merges two boxes of one annotator. Each
  object carries its majority label (ties: lowest category_id), its consensus box and its
  *support*: how many of the annotators who labelled the image drew it. With three or more
  annotators the consensus box is reliability-weighted (each annotator's box noise estimated
  together with it, STAPLE-style) and the object also gets a Dawid-Skene label
  (``ds_category_id``, posterior ``p_ds``); see :mod:`qa.consensus`. With two (or masks) it is
  the median box of the members.
* Scorecards: every annotator against the consensus of the others (leave-one-out, with the
  others' weights). ``mean_iou`` is the estimated IoU with the true box (the consensus' own
  expected error removed, :func:`qa.consensus.expected_iou`), ``mean_iou_vs_consensus`` the
  plain IoU; label habits come from the annotator's Dawid-Skene confusion matrix. With two
  annotators nobody can tell which one is right: each is compared with the other, and
  :attr:`AgreementResult.consensus_defined` is False.
* Chance-corrected coefficients on boxes: every consensus object is a unit; an annotator who
  labelled the image but has no box in the object rates it ``NO_OBJECT``; one who did not
  label the image is missing (NaN). So kappa/alpha measure detection and class agreement
  together. For classification datasets (image-level labels, NaN boxes) the units are the
  images and the ratings the labels.
* Which images an annotator labelled is inferred: the images where they left at least one
  annotation. Pairs are compared on the images both labelled (the overlap is reported);
  Krippendorff's alpha handles the missing ratings; Fleiss' kappa, which needs the same raters
  per unit, uses the units every annotator rated.

Speed: IoUs of all box pairs of two annotators are computed at once (pairs built per image with
repeat/cumsum index arithmetic); a pair of boxes whose rows and columns have one candidate
above the threshold each is matched without an assignment solve, and
``linear_sum_assignment`` only runs on images with conflicting candidates.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import pandas as pd

from qa.consensus import (
    MIN_RATERS,
    BoxNoise,
    DawidSkene,
    dawid_skene,
    estimate_box_noise,
    expected_iou,
    weighted_centre,
)
from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    BOX,
    CATEGORY_ID,
    IMAGE_ID,
    NAME,
    SEGMENTATION,
    Dataset,
    W,
    name_images,
)
from qa.geometry import (
    DEFAULT_IOU_THRESHOLD,
    Geometry,
    check_iou_threshold,
    dataset_rles,
    match_grouped,
    xywh_to_xyxy,
)
from qa.results import frame_records

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Thresholds from practice
# ---------------------------------------------------------------------------------------------
IOU_TARGET = 0.85  # matched boxes of careful annotators overlap this much (tight-box guidelines)
IOU_GUIDELINES_MIN = 0.75  # below this mean matched IoU the box guidelines need work
RECALL_TARGET = 0.95  # a careful annotator finds this share of the consensus objects
MAX_EXAMPLES = 12  # example boxes kept per annotator finding (loosest boxes, missed objects)
MASK_IOU_TARGET = 0.80  # masks: polygon edges disagree more than box corners, so a lower target
LOOSE_BOX_IOU = IOU_GUIDELINES_MIN  # a matched pair under this is a "loose box" disagreement
MIN_CONSENSUS_SHARE = 0.5  # an object is consensus when at least half of the raters drew it
DISPUTED_SCORE = 0.25  # images where a quarter or more of the soft F1 is lost get reviewed
# coverage="auto": an annotator with annotations on at least this share of the images anyone
# annotated is taken to have labelled every image (an image they left empty = they saw nothing);
# below it, only the images they annotated (a subset design: absent = not assigned).
FULL_COVERAGE_SHARE = 0.8
COVERAGES = ("auto", "all", "annotated")
# An annotator's class confusion is named on the scorecard (and becomes a finding) when it is
# at least this frequent among the boxes they drew of the class, and seen this many times:
CONFUSION_MIN_RATE = 0.05  # the label-error rate a QA lead stops tolerating (as the colours)
CONFUSION_MIN_COUNT = 5  # fewer is chance, not a habit
# The scorecard states an annotator's box noise once they shared this many objects with others
# (a variance from fewer is mostly noise itself: with 10 objects x 4 sides its sd is ~25 %).
MIN_NOISE_OBJECTS = 10
NO_OBJECT = -1  # rating of an annotator who labelled the image but drew nothing for an object
NO_OBJECT_NAME = "(no object)"
IOU_TYPES = ("bbox", "segm")
LEVELS = ("nominal", "ordinal", "interval", "ratio")
KAPPA_WEIGHTS = (None, "linear", "quadratic")
# Landis & Koch (1977): upper bound of each band of kappa.
LANDIS_KOCH_BANDS = ((0.0, "poor"), (0.20, "slight"), (0.40, "fair"), (0.60, "moderate"),
                     (0.80, "substantial"), (1.0, "almost perfect"))
# Kinds of per-image disagreement, most severe first: the image is named by the first present.
DISAGREEMENT_KINDS = ("missed", "extra", "label", "loose box")

ProgressFn = Callable[[float, str], None]

# The scorecard's method in words, for the page's help text.
METHOD_HELP = """\
**Boxes.** Boxes of all annotators are matched pairwise (Hungarian, IoU >= the threshold) and
linked into consensus objects. With three or more annotators each annotator's box noise is
estimated together with the consensus, STAPLE-style (Warfield, Zou & Wells 2004, *IEEE TMI*
23(7)): every box side = truth + outward bias + noise whose spread has a pixel part and a part
proportional to the object. The consensus box is the precision-weighted robust (Huber) mean of
the members' sides, so a careful annotator outweighs a loose one; the noise comes from the
differences of every pair of boxes of an object (Grubbs 1948, *JASA* 43), and the two are
iterated until they stop changing.

**Scorecard.** Each annotator is scored against the consensus of the *others* (leave-one-out,
with the others' weights). *Mean IoU* is the estimated IoU with the true box: the deviation
from that consensus, minus the consensus' own expected error (so a careful annotator scored
against one loose box is not charged the loose box's error); *mean_iou_vs_consensus* is the
plain IoU with it. *Recall*: share of the others' consensus objects the annotator found.

**Labels.** Dawid & Skene (1979, *JRSS C* 28(1)) EM over the class of every consensus object,
"(no object)" included: each annotator gets a confusion matrix, read as "labels ring as circle
40% of the time" (among the boxes they drew of that class).

**Two annotators.** The split of a disagreement between two people is not identifiable: no
consensus, no colours; the pairwise figures (F1, IoU, kappa per pair) are the data.
"""


class AgreementWarning(UserWarning):
    """The input is valid but a statistic is undefined (one annotator, one label ...)."""


def _warn(msg: str) -> None:
    warnings.warn(msg, AgreementWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AgreementResult:
    """Everything the agreement page and the report show. Worse is: lower f1 / recall / iou /
    kappa / alpha, higher label_mismatch_rate / extra_rate / disagreement_score.

    Tables
    ------
    pairwise     one row per annotator pair: overlap images, boxes, matches, precision (of b
                 against a), recall, f1, mean_iou, label_mismatch_rate, kappa (+ Landis & Koch).
    per_class    one row per category pooled over pairs, with Fleiss' per-category kappa.
    per_image    one row per image labelled by 2+ annotators: counts of missed / extra / label /
                 loose-box disagreements, ``disagreement_score`` (1 - soft F1, 0 best) and the
                 dominant ``disagreement`` kind; ``is_disputed``.
    scorecard    one row per annotator, leave-one-out against the reliability-weighted
                 consensus of the others (3+ annotators): recall, precision, ``mean_iou`` =
                 estimated IoU with the true box (``mean_iou_vs_consensus``: the plain IoU with
                 that consensus), ``box_noise`` (sd of a box side as a share of the median
                 object), ``box_noise_px``, ``box_bias`` (outward shift share),
                 ``consensus_weight``, ``label_error_rate`` and ``top_confusions`` from the
                 Dawid-Skene confusion matrix. With two annotators: each against the other.
    label_confusion  per annotator x true class x given class (Dawid-Skene, 3+ annotators):
                 expected count ``n``, ``rate`` (of all objects of the class, "(no object)"
                 = missed), ``rate_given_box`` (of the boxes the annotator drew on it), and the
                 ``ann_ids`` of those boxes.
    kappa_matrix annotators x annotators Cohen's kappa (diagonal 1).
    matched_ious one row per matched pair (annotator_a, annotator_b, category_id, iou).
    clusters     consensus objects (boxes) or images (classification) with their support.
    members      ann_id -> cluster_id.
    ratings      units x annotators labels (NO_OBJECT, NaN = did not label) behind the kappas.
    """

    annotators: tuple[str, ...]
    iou_threshold: float
    iou_type: str
    is_classification: bool
    pairwise: pd.DataFrame
    per_class: pd.DataFrame
    per_image: pd.DataFrame
    scorecard: pd.DataFrame
    kappa_matrix: pd.DataFrame
    fleiss: float
    fleiss_per_category: pd.DataFrame
    n_fleiss_units: int
    alpha: float
    matched_ious: pd.DataFrame
    clusters: pd.DataFrame
    members: pd.DataFrame
    ratings: pd.DataFrame
    category_names: dict = field(default_factory=dict)
    label_confusion: pd.DataFrame = field(default_factory=pd.DataFrame)
    # annotator -> {"loose": [(image_id, ann_id)], "missed": [...]}: the worst examples
    annotator_examples: dict = field(default_factory=dict)
    #: the dataset's images table, so that findings name files, not internal ids
    image_table: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def consensus_defined(self) -> bool:
        """Whether the reliability-weighted consensus (and so a per-annotator verdict) exists:
        with fewer than three annotators nobody can tell which one of two is right."""
        return self.n_annotators >= MIN_RATERS

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    @property
    def mean_pairwise_kappa(self) -> float:
        k = self.pairwise["kappa"] if "kappa" in self.pairwise else pd.Series(dtype=float)
        return float(k.mean()) if k.notna().any() else math.nan

    def confusion(self, annotator_a: str, annotator_b: str) -> pd.DataFrame:
        """Labels of ``annotator_a`` (rows) against ``annotator_b`` (columns) on the units both
        rated, by class name (``(no object)`` for a consensus object one of them missed)."""
        for a in (annotator_a, annotator_b):
            if a not in self.ratings.columns:
                raise ValueError(f"Unknown annotator {a!r}; choose one of {list(self.annotators)}.")
        ra, rb = self.ratings[annotator_a], self.ratings[annotator_b]
        both = ra.notna() & rb.notna()
        ra = ra[both].to_numpy(dtype=np.int64)
        rb = rb[both].to_numpy(dtype=np.int64)
        names = {**self.category_names, NO_OBJECT: NO_OBJECT_NAME}
        labels = np.union1d(ra, rb)
        label_names = [names.get(v, str(v)) for v in labels.tolist()]
        cats = list(dict.fromkeys(label_names))
        code = np.array([cats.index(n) for n in label_names], dtype=np.int64)  # per label
        la = pd.Categorical.from_codes(code[np.searchsorted(labels, ra)], categories=cats)
        lb = pd.Categorical.from_codes(code[np.searchsorted(labels, rb)], categories=cats)
        tab = pd.crosstab(la, lb, dropna=False)
        tab.index.name, tab.columns.name = annotator_a, annotator_b
        return tab

    def annotator_confusion(self, annotator: str, *, given_box: bool = True) -> pd.DataFrame:
        """Dawid-Skene confusion matrix of ``annotator``: true class (rows) x the class they
        gave (columns), as shares. ``given_box=True``: among the boxes they drew on objects
        of the row's class (so misses do not dilute confusions: "labels ring as circle 40 %
        of the time"); False: of all objects of the class, with a ``(no object)`` column for
        the ones they missed. Empty with fewer than three annotators (undefined)."""
        if annotator not in self.annotators:
            raise ValueError(f"Unknown annotator {annotator!r}; choose one of "
                             f"{list(self.annotators)}.")
        lc = self.label_confusion
        if lc.empty:
            return pd.DataFrame()
        lc = lc[lc[ANNOTATOR] == annotator]
        col = "rate_given_box" if given_box else "rate"
        if given_box:
            lc = lc[(lc["given_category_id"] != NO_OBJECT) & (lc["true_category_id"] != NO_OBJECT)]
        tab = lc.pivot(index="true_name", columns="given_name", values=col)
        order = list(dict.fromkeys(lc["true_name"]))
        tab = tab.reindex(index=order, columns=list(dict.fromkeys(lc["given_name"])))
        tab.index.name, tab.columns.name = "true class", f"{annotator} gave"
        return tab

    def most_confused_annotator(self) -> str:
        """The annotator with the highest estimated label-error rate (Dawid-Skene), the first
        annotator when none is estimated: whose confusion matrix to show first."""
        sc = self.scorecard
        if "label_error_rate" not in sc or not sc["label_error_rate"].notna().any():
            return self.annotators[0]
        return str(sc.loc[sc["label_error_rate"].idxmax(), "annotator"])

    def most_disputed(self, n: int = 24) -> pd.DataFrame:
        """The ``n`` images with the highest disagreement score among the disputed ones, with a
        ``caption`` naming the disagreement (for galleries)."""
        df = self.per_image[self.per_image["is_disputed"]].head(n)
        detail = df["disagreement_detail"] if "disagreement_detail" in df else df["disagreement"]
        cap = [f"{d} (disagreement {s:.2f})" for d, s in zip(detail, df["disagreement_score"])]
        return df[[IMAGE_ID, "disagreement", "disagreement_score"]].assign(caption=cap)

    def disputed_ann_ids(self, image_ids) -> list[int]:
        """ann_ids of the boxes in disputed consensus objects on ``image_ids`` (missed, extra,
        label or loose), to highlight in a gallery; empty for classification."""
        if self.is_classification or "is_disputed" not in self.clusters:
            return []
        cl = self.clusters[self.clusters["is_disputed"]
                           & self.clusters[IMAGE_ID].isin(list(image_ids))]
        return self.members.loc[self.members["cluster_id"].isin(cl["cluster_id"]),
                                ANN_ID].astype(int).tolist()

    ANALYSIS: ClassVar[str] = "agreement"

    def metrics(self) -> dict[str, float | int | None]:
        """Headline figures for the health report (see :mod:`qa.results`): the coefficients,
        the worst annotator's scorecard figures (``min_annotator_mean_iou`` is the estimated
        IoU with the true box with 3+ annotators; with two, the pair's IoU), the disputed
        share, ``max_annotator_box_noise`` (largest box-side sd as a share of the median
        object) and ``max_annotator_confusion_rate`` (the most frequent class confusion
        habit, 0 when none; see :data:`CONFUSION_MIN_RATE`). None where undefined (one
        annotator, classification for box figures, fewer than 3 annotators for the last two)."""
        num = lambda v: None if v is None or not np.isfinite(v) else float(v)
        sc, pi = self.scorecard, self.per_image
        col_min = lambda c: num(sc[c].min()) if c in sc and sc[c].notna().any() else None
        return {
            "n_annotators": self.n_annotators,
            "alpha": num(self.alpha),
            "fleiss_kappa": num(self.fleiss),
            "mean_pairwise_kappa": num(self.mean_pairwise_kappa),
            "min_annotator_mean_iou": None if self.is_classification else col_min("mean_iou"),
            "min_annotator_recall": col_min("recall"),
            "max_label_mismatch_rate": (num(sc["label_mismatch_rate"].max())
                                        if "label_mismatch_rate" in sc and len(sc) else None),
            "n_disputed_images": int(pi["is_disputed"].sum()) if len(pi) else 0,
            "disputed_image_share": (float(pi["is_disputed"].mean()) if len(pi) else None),
            "max_annotator_box_noise": (None if self.is_classification else
                                        (num(sc["box_noise"].max()) if "box_noise" in sc and
                                         sc["box_noise"].notna().any() else None)),
            "max_annotator_confusion_rate": self._max_confusion_rate(),
        }

    def _confusion_habits(self) -> pd.DataFrame:
        """Off-diagonal class confusions frequent and common enough to name."""
        lc = self.label_confusion
        if lc.empty:
            return lc
        return lc[(lc["true_category_id"] != lc["given_category_id"])
                  & (lc["true_category_id"] != NO_OBJECT) & (lc["given_category_id"] != NO_OBJECT)
                  & (lc["rate_given_box"] >= CONFUSION_MIN_RATE)
                  & (lc["n"] >= CONFUSION_MIN_COUNT)]

    def _max_confusion_rate(self) -> float | None:
        if not self.consensus_defined or self.label_confusion.empty:
            return None
        habits = self._confusion_habits()
        return float(habits["rate_given_box"].max()) if len(habits) else 0.0

    def findings(self) -> pd.DataFrame:
        """Disputed images (``kind="disputed_image"``, score = disagreement score, the boxes of
        the disputed consensus objects as evidence), annotators below target
        (``loose_annotator``, ``low_recall_annotator``: see :meth:`_annotator_findings`) and
        annotators' class-confusion habits (``kind="annotator_confusion"``, dataset-level,
        score = how often, the confused boxes as evidence) in the shared findings shape."""
        from qa.results import findings_frame

        frames = [self._disputed_findings(), self._annotator_findings(),
                  self._confusion_findings()]
        frames = [f for f in frames if len(f)]
        if not frames:
            return findings_frame(analysis=self.ANALYSIS, page="agreement")
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def _annotator_findings(self) -> pd.DataFrame:
        """One dataset-level finding per annotator below target: ``loose_annotator`` (mean
        IoU with the truth estimate under :data:`IOU_TARGET`, or :data:`MASK_IOU_TARGET` for
        masks; score 1 - IoU) and ``low_recall_annotator`` (recall under
        :data:`RECALL_TARGET`; score 1 - recall). None with two annotators: there the
        consensus is undefined and neither is shown as the worse one."""
        from qa.results import findings_frame

        sc = self.scorecard
        if self.is_classification or not self.consensus_defined or sc.empty:
            return findings_frame(analysis=self.ANALYSIS, page="agreement")
        target = MASK_IOU_TARGET if self.iou_type == "segm" else IOU_TARGET
        rows = []

        def shown(who: str, what: str) -> dict:
            """The examples as evidence: the first image is the item's, the rest related."""
            ex = self.annotator_examples.get(who, {}).get(what, [])
            imgs = list(dict.fromkeys(i for i, _ in ex))
            return {"image_id": imgs[0] if imgs else pd.NA,
                    "ann_ids": tuple(a for _, a in ex),
                    "related_image_ids": tuple(imgs[1:])}

        for r in sc.itertuples(index=False):
            if pd.notna(r.mean_iou) and r.mean_iou < target:
                rows.append({
                    "kind": "loose_annotator", "score": 1.0 - float(r.mean_iou),
                    "annotator": r.annotator, **shown(r.annotator, "loose"),
                    "message": f"{r.annotator}'s boxes are loose: estimated mean IoU with the "
                               f"true box {r.mean_iou:.3f} (target {target:.2f}); {r.n_loose:,} "
                               f"of {r.n_boxes:,} boxes under {LOOSE_BOX_IOU:.2f}. Retrain "
                               f"{r.annotator} on the box guideline and re-check their boxes."})
            if pd.notna(r.recall) and r.recall < RECALL_TARGET:
                rows.append({
                    "kind": "low_recall_annotator", "score": 1.0 - float(r.recall),
                    "annotator": r.annotator, **shown(r.annotator, "missed"),
                    "message": f"{r.annotator} misses objects: found {r.n_found:,} of "
                               f"{r.n_consensus_objects:,} consensus objects (recall "
                               f"{r.recall:.3f}, target {RECALL_TARGET:.2f}). Have "
                               f"{r.annotator} re-check small and partly hidden objects."})
        return findings_frame(rows, analysis=self.ANALYSIS, page="agreement",
                              severity="warning")

    def _confusion_findings(self) -> pd.DataFrame:
        from qa.results import findings_frame

        habits = self._confusion_habits()
        if habits.empty:
            return findings_frame(analysis=self.ANALYSIS, page="agreement")
        return findings_frame(pd.DataFrame({
            "kind": "annotator_confusion", "severity": "warning",
            "score": habits["rate_given_box"].clip(0, 1).to_numpy(),
            "image_id": pd.NA, "ann_ids": habits["ann_ids"].tolist(),
            "category_id": habits["true_category_id"].to_numpy(),
            "annotator": habits[ANNOTATOR].astype(str).to_numpy(),
            "message": [f"{a} labels {t} as {g} {r:.0%} of the time ({n:.0f} boxes): review "
                        f"the {t}/{g} guideline with {a} and re-check these boxes"
                        for a, t, g, r, n in zip(habits[ANNOTATOR], habits["true_name"],
                                                 habits["given_name"], habits["rate_given_box"],
                                                 habits["n"])]}),
            analysis=self.ANALYSIS, page="agreement")

    def _disputed_findings(self) -> pd.DataFrame:
        from qa.results import findings_frame

        pi = self.per_image
        if pi.empty:
            return findings_frame(analysis=self.ANALYSIS, page="agreement")
        d = pi[pi["is_disputed"]]
        ann_by_image: dict = {}
        if not self.is_classification and "is_disputed" in self.clusters and len(d):
            cl = self.clusters[self.clusters["is_disputed"]]
            m = self.members.merge(cl[["cluster_id", IMAGE_ID]], on="cluster_id")
            ann_by_image = m.groupby(IMAGE_ID)[ANN_ID].agg(tuple).to_dict()
        detail = d["disagreement_detail"] if "disagreement_detail" in d else d["disagreement"]
        return findings_frame(pd.DataFrame({
            "kind": "disputed_image", "severity": "warning",
            "score": d["disagreement_score"].to_numpy(), "image_id": d[IMAGE_ID].to_numpy(),
            "ann_ids": [ann_by_image.get(i, ()) for i in d[IMAGE_ID]],
            "message": [f"annotators disagree on {name}: {x}" for name, x in
                        zip(name_images(self.image_table, d[IMAGE_ID]), detail)]}),
            analysis=self.ANALYSIS, page="agreement")

    def to_dict(self) -> dict:
        return {
            "annotators": list(self.annotators), "iou_threshold": self.iou_threshold,
            "iou_type": self.iou_type, "is_classification": self.is_classification,
            "fleiss": None if math.isnan(self.fleiss) else self.fleiss,
            "n_fleiss_units": self.n_fleiss_units,
            "alpha": None if math.isnan(self.alpha) else self.alpha,
            "pairwise": frame_records(self.pairwise), "per_class": frame_records(self.per_class),
            "per_image": frame_records(self.per_image), "scorecard": frame_records(self.scorecard),
            "kappa_matrix": frame_records(self.kappa_matrix.reset_index(names="annotator")),
            "fleiss_per_category": frame_records(self.fleiss_per_category),
            "consensus_defined": self.consensus_defined,
            "label_confusion": frame_records(self.label_confusion.drop(
                columns=["ann_ids"], errors="ignore")),
        }


# ---------------------------------------------------------------------------------------------
# Small public helpers
# ---------------------------------------------------------------------------------------------
def kappa_band(k: float) -> str:
    """Landis & Koch (1977) name of a kappa/alpha value: poor (< 0), slight, fair, moderate,
    substantial, almost perfect; ``"undefined"`` for NaN."""
    if k is None or (isinstance(k, float) and math.isnan(k)):
        return "undefined"
    k = float(k)
    if k < LANDIS_KOCH_BANDS[0][0]:
        return LANDIS_KOCH_BANDS[0][1]
    for upper, name in LANDIS_KOCH_BANDS[1:]:
        if k <= upper:
            return name
    return LANDIS_KOCH_BANDS[-1][1]


# ---------------------------------------------------------------------------------------------
# Chance-corrected coefficients
# ---------------------------------------------------------------------------------------------
def cohen_kappa(a, b, *, weights: str | None = None, labels=None) -> float:
    """Cohen's kappa of two raters' labels of the same items (scikit-learn's
    ``cohen_kappa_score``); ``weights`` "linear"/"quadratic" for ordered labels. Items where
    either rating is NaN/None are dropped. NaN (with a warning) when kappa is undefined."""
    if weights not in KAPPA_WEIGHTS:
        raise ValueError(f"weights must be one of {KAPPA_WEIGHTS}, got {weights!r}.")
    sa, sb = pd.Series(list(a), dtype=object), pd.Series(list(b), dtype=object)
    if len(sa) != len(sb):
        raise ValueError(f"a and b must rate the same items: got {len(sa)} and {len(sb)} labels.")
    keep = sa.notna() & sb.notna()
    sa, sb = sa[keep], sb[keep]
    return _compute_cohen(sa.tolist(), sb.tolist(), weights, labels)


def _compute_cohen(a, b, weights, labels) -> float:
    from sklearn.metrics import cohen_kappa_score

    if len(a) == 0:
        _warn("Cohen's kappa is undefined with no item rated by both raters; returning NaN.")
        return math.nan
    if isinstance(a, np.ndarray):  # numeric ratings: dense codes keep sklearn vectorised
        uniq, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
        n_labels = len(uniq)
        if weights is None and labels is None and n_labels >= 2:
            a, b, labels = codes[:len(a)], codes[len(a):], np.arange(n_labels)
    else:
        n_labels = len(set(a) | set(b))
    if n_labels < 2:
        _warn("Cohen's kappa is undefined when both raters use one label only; returning NaN.")
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(cohen_kappa_score(a, b, weights=weights, labels=labels))


def _as_counts(counts) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError("counts must be a (subjects, categories) table of rating counts, got "
                         f"shape {arr.shape}; build it with pd.crosstab(subject, label).")
    if (arr < 0).any() or not np.isfinite(arr).all():
        raise ValueError("counts must be non-negative finite numbers of ratings.")
    n = arr.sum(axis=1)
    if not np.allclose(n, n[0]):
        raise ValueError(f"Fleiss' kappa needs the same number of ratings per subject, got "
                         f"{sorted(set(n.tolist()))[:5]}; use krippendorff_alpha for varying "
                         "raters or missing ratings.")
    return arr


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa of a (subjects x categories) table of how many raters chose each category
    (every row sums to the number of raters). Higher is better; 1 = perfect."""
    return _compute_fleiss(_as_counts(counts))[0]


def fleiss_kappa_per_category(counts) -> np.ndarray:
    """Fleiss' per-category kappa (Fleiss 1971, eq. 15) for each column of ``counts``."""
    return _compute_fleiss(_as_counts(counts))[1]


def _compute_fleiss(counts: np.ndarray) -> tuple[float, np.ndarray]:
    n_sub, n_cat = counts.shape
    n = counts[0].sum()
    if n < 2:
        _warn("Fleiss' kappa needs at least 2 ratings per subject; returning NaN.")
        return math.nan, np.full(n_cat, np.nan)
    return _fleiss_from_sums(n_sub, n, counts.sum(axis=0),
                             (counts * (counts - 1)).sum(axis=1),
                             (counts * (n - counts)).sum(axis=0))


def _fleiss_of_ratings(rows: np.ndarray, labels: np.ndarray, n_sub: int, n: int, n_cat: int
                       ) -> tuple[float, np.ndarray]:
    """Fleiss from (subject, label position) pairs, n ratings per subject, without the dense
    subjects x categories table (400k consensus objects x 81 classes at 50k images): the
    sums run over the non-zero cells only."""
    cell = rows * n_cat + labels
    uniq, c = np.unique(cell, return_counts=True)
    sub, cat = uniq // n_cat, uniq % n_cat
    c = c.astype(np.float64)
    return _fleiss_from_sums(n_sub, n, np.bincount(cat, c, n_cat),
                             np.bincount(sub, c * (c - 1), n_sub),
                             np.bincount(cat, c * (n - c), n_cat))


def _fleiss_from_sums(n_sub, n, col_sum, row_pairs, col_disagree) -> tuple[float, np.ndarray]:
    n_cat = len(col_sum)
    p = col_sum / (n_sub * n)
    p_i = row_pairs / (n * (n - 1))
    p_e = float((p ** 2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        per_cat = 1 - col_disagree / (n_sub * n * (n - 1) * p * (1 - p))
    per_cat = np.where((p > 0) & (p < 1), per_cat, np.nan)
    if p_e >= 1 - 1e-12:
        _warn("Fleiss' kappa is undefined when all ratings fall in one category; returning NaN.")
        return math.nan, per_cat
    return float((p_i.mean() - p_e) / (1 - p_e)), per_cat


def krippendorff_alpha(data, *, level: str = "nominal") -> float:
    """Krippendorff's alpha of ``data`` = raters x units (NaN = not rated), for a ``level`` of
    measurement "nominal", "ordinal", "interval" or "ratio". Handles missing ratings and a
    varying number of raters per unit (units rated once are not pairable and are ignored).
    Coincidence-matrix method (Krippendorff 2011), vectorised. Higher is better; 1 = perfect."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}.")
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("data must be numeric raters x units (encode labels as numbers, NaN "
                         f"for missing): {exc}") from exc
    if arr.ndim != 2:
        raise ValueError(f"data must be 2-D raters x units, got shape {arr.shape}.")
    if level == "ratio" and (arr[~np.isnan(arr)] < 0).any():
        raise ValueError("ratio level needs non-negative values; use 'interval' instead.")
    return _compute_alpha(arr, level)


def _compute_alpha(arr: np.ndarray, level: str) -> float:
    from scipy.sparse import csr_matrix, diags

    mask = ~np.isnan(arr)
    unit_of = np.nonzero(mask)[1]
    values, inv = np.unique(arr[mask], return_inverse=True)
    n_val, n_units = len(values), arr.shape[1]
    # units x values counts, sparse: a few ratings per unit (a dense table of 400k consensus
    # objects x 81 values would be 260 MB)
    counts = csr_matrix((np.ones(len(inv)), (unit_of, inv)), shape=(n_units, n_val))
    m_u = np.asarray(counts.sum(axis=1)).ravel()
    counts, m_u = counts[m_u >= 2], m_u[m_u >= 2]
    if len(m_u) == 0 or n_val < 2:
        _warn("Krippendorff's alpha is undefined: no unit has two ratings, or only one value "
              "is used; returning NaN.")
        return math.nan
    weighted = diags(1.0 / (m_u - 1)) @ counts
    coinc = np.asarray((weighted.T @ counts).todense(), dtype=np.float64)
    coinc[np.diag_indices(n_val)] -= np.asarray(weighted.sum(axis=0)).ravel()
    n_c = coinc.sum(axis=1)
    n = n_c.sum()
    d2 = _delta2(values, n_c, level)
    expected = float((np.outer(n_c, n_c) * d2).sum())
    if expected <= 0:
        return math.nan
    return float(1 - (n - 1) * (coinc * d2).sum() / expected)


def _delta2(v: np.ndarray, n_c: np.ndarray, level: str) -> np.ndarray:
    if level == "nominal":
        return 1.0 - np.eye(len(v))
    if level == "interval":
        return (v[:, None] - v[None, :]) ** 2
    if level == "ratio":
        s = v[:, None] + v[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s != 0, ((v[:, None] - v[None, :]) / s) ** 2, 0.0)
    cum = np.cumsum(n_c)  # ordinal: ranks by the frequencies of the values between c and k
    lo, hi = np.minimum.outer(np.arange(len(v)), np.arange(len(v))), np.maximum.outer(
        np.arange(len(v)), np.arange(len(v)))
    between = cum[hi] - cum[lo] + n_c[lo]
    return (between - (n_c[lo] + n_c[hi]) / 2.0) ** 2


# ---------------------------------------------------------------------------------------------
# Building blocks of compute_agreement
# ---------------------------------------------------------------------------------------------


def _cluster(n: int, annot: np.ndarray, li: np.ndarray, lj: np.ndarray, lw: np.ndarray,
             n_annot: int) -> np.ndarray:
    """Consensus clusters (see module docstring): a label per node 0..k-1."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(li)), (li, lj)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    key = comp.astype(np.int64) * n_annot + annot
    _, kinv, kcnt = np.unique(key, return_inverse=True, return_counts=True)
    bad = np.unique(comp[kcnt[kinv] > 1])
    if bad.size:
        in_bad = np.isin(comp, bad)
        parent = {int(v): int(v) for v in np.flatnonzero(in_bad)}
        bits = {v: 1 << int(annot[v]) for v in parent}

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        e = np.flatnonzero(in_bad[li])
        for k in e[np.argsort(-lw[e], kind="stable")]:
            ra, rb = find(int(li[k])), find(int(lj[k]))
            if ra != rb and not bits[ra] & bits[rb]:
                parent[rb] = ra
                bits[ra] |= bits[rb]
        comp = comp.astype(np.int64)
        for v in parent:
            comp[v] = n_comp + find(v)
    return np.unique(comp, return_inverse=True)[1]


def _majority(cluster: np.ndarray, cat_idx: np.ndarray, n_cat: int, n_cl: int):
    """Majority category index per cluster (ties: lowest index) and its count."""
    key = cluster.astype(np.int64) * n_cat + cat_idx
    u, cnt = np.unique(key, return_counts=True)
    ucl, ucat = u // n_cat, u % n_cat
    order = np.lexsort((ucat, -cnt, ucl))
    first = order[np.r_[True, np.diff(ucl[order]) != 0]]
    maj = np.full(n_cl, -1, dtype=np.int64)
    top = np.zeros(n_cl, dtype=np.int64)
    maj[ucl[first]], top[ucl[first]] = ucat[first], cnt[first]
    return maj, top


def _group_median_xyxy(cluster: np.ndarray, xyxy: np.ndarray, n_cl: int) -> np.ndarray:
    df = pd.DataFrame(xyxy, columns=["x1", "y1", "x2", "y2"])
    med = df.groupby(cluster, sort=True).median()
    out = np.full((n_cl, 4), np.nan)
    out[med.index.to_numpy()] = med.to_numpy()
    return out


def _medoid(cluster: np.ndarray, li, lj, lw, n_cl: int) -> np.ndarray:
    """Per cluster, the member with the highest summed IoU to the other members."""
    n = len(cluster)
    score = np.bincount(li, lw, minlength=n) + np.bincount(lj, lw, minlength=n)
    order = np.lexsort((-score, cluster))
    first = order[np.r_[True, np.diff(cluster[order]) != 0]]
    out = np.zeros(n_cl, dtype=np.int64)
    out[cluster[first]] = first
    return out


def _top_confusions(pairs: pd.DataFrame, names: dict, k: int = 3) -> str:
    """'ring as circle (58)': the consensus class, then the class this annotator gave it
    (columns ``a`` = the annotator's label, ``b`` = the consensus label)."""
    if pairs.empty:
        return ""
    vc = pairs.value_counts().head(k)
    return ", ".join(f"{names.get(b, b)} as {names.get(a, a)} ({n})" for (a, b), n in vc.items())


# The causes of a disputed image, most worth a look first: a missed object or a class
# mismatch changes what a model learns; a loose box only where it is drawn.
DISPUTE_CAUSES = ("label mismatch", "missed object", "loose box")
DISPUTE_SEVERITY = {"label mismatch": "warning", "missed object": "warning",
                    "loose box": "info"}


def dispute_causes(result: AgreementResult, dataset: Dataset) -> pd.DataFrame:
    """Who caused each disputed image's disagreements, per cause. One row per disputed image
    and cause: image_id, ``cause`` (one of :data:`DISPUTE_CAUSES`), ``annotators`` (who:
    the ones who missed the object, gave the minority class, or drew the box looser than
    IoU :data:`LOOSE_BOX_IOU` with the consensus box), ``n_objects``, ``severity`` and the
    image's ``disagreement_score``. Sorted: warnings first, then by score (worst first).
    Empty for classification datasets or when no image is disputed."""
    cols = [IMAGE_ID, "cause", "annotators", "n_objects", "severity", "disagreement_score"]
    cl = result.clusters
    if result.is_classification or cl.empty or "is_disputed" not in cl:
        return pd.DataFrame(columns=cols)
    pi = result.per_image
    cl = cl[cl["is_disputed"] & cl[IMAGE_ID].isin(pi.loc[pi["is_disputed"], IMAGE_ID])]
    if cl.empty:
        return pd.DataFrame(columns=cols)
    mem = result.members.merge(cl[["cluster_id", IMAGE_ID, CATEGORY_ID, "x", "y", "w", "h"]],
                               on="cluster_id", suffixes=("", "_cl"))
    anns = dataset.annotations.set_index(ANN_ID)
    box = anns.loc[mem[ANN_ID], ["x", "y", "w", "h"]].to_numpy(np.float64)
    cat = anns.loc[mem[ANN_ID], CATEGORY_ID].to_numpy()
    c = mem[["x", "y", "w", "h"]].to_numpy(np.float64)
    iw = np.clip(np.minimum(box[:, 0] + box[:, 2], c[:, 0] + c[:, 2])
                 - np.maximum(box[:, 0], c[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[:, 1] + box[:, 3], c[:, 1] + c[:, 3])
                 - np.maximum(box[:, 1], c[:, 1]), 0, None)
    inter = iw * ih
    iou = inter / np.maximum(box[:, 2] * box[:, 3] + c[:, 2] * c[:, 3] - inter, 1e-9)
    who = mem[ANNOTATOR].astype(str).to_numpy()
    rows = []
    for cause, hit in (("label mismatch", cat != mem[CATEGORY_ID].to_numpy()),
                       ("loose box", iou < LOOSE_BOX_IOU)):
        m = mem[hit].assign(who=who[hit])
        rows += [(i, cause, tuple(sorted(set(g["who"]))), g["cluster_id"].nunique())
                 for i, g in m.groupby(IMAGE_ID)]
    # missed: annotators who labelled the image but drew nothing of a consensus object
    labelled = dataset.annotations.groupby(IMAGE_ID)[ANNOTATOR].agg(
        lambda s: set(map(str, s)))
    drew = mem.groupby("cluster_id")[ANNOTATOR].agg(lambda s: set(map(str, s)))
    missed = cl[cl["n_missing"] > 0]
    by_img: dict = {}
    for cid, iid in zip(missed["cluster_id"], missed[IMAGE_ID]):
        gone = labelled.get(iid, set()) - drew.get(cid, set())
        if gone:
            e = by_img.setdefault(iid, [set(), 0])
            e[0] |= gone
            e[1] += 1
    rows += [(i, "missed object", tuple(sorted(w)), n) for i, (w, n) in by_img.items()]
    out = pd.DataFrame(rows, columns=cols[:4])
    if out.empty:
        return pd.DataFrame(columns=cols)
    out["severity"] = out["cause"].map(DISPUTE_SEVERITY)
    score = result.per_image.set_index(IMAGE_ID)["disagreement_score"]
    out["disagreement_score"] = out[IMAGE_ID].map(score).astype(float)
    worst = out.groupby(IMAGE_ID)["severity"].transform(lambda s: (s == "warning").any())
    out = out.assign(_w=~worst, _c=out["cause"].map(DISPUTE_CAUSES.index))
    return out.sort_values(["_w", "disagreement_score", IMAGE_ID, "_c"],
                           ascending=[True, False, True, True], kind="stable",
                           ignore_index=True)[cols]


def dispute_summary(causes: pd.DataFrame) -> pd.DataFrame:
    """Per cause: images, objects, severity and who (annotator: images), from
    :func:`dispute_causes`."""
    rows = []
    for cause in DISPUTE_CAUSES:
        g = causes[causes["cause"] == cause]
        per = pd.Series([a for t in g["annotators"] for a in t]).value_counts()
        rows.append({"cause": cause, "severity": DISPUTE_SEVERITY[cause],
                     "images": g[IMAGE_ID].nunique(), "objects": int(g["n_objects"].sum()),
                     "who": ", ".join(f"{a} {n}" for a, n in per.items()) or "—"})
    return pd.DataFrame(rows)


def dispute_captions(causes: pd.DataFrame) -> dict[int, str]:
    """image_id -> "carol missed 1 · bob loose 3" (who, per cause) for a gallery."""
    verb = {"label mismatch": "other class", "missed object": "missed", "loose box": "loose"}
    out: dict[int, list] = {}
    for i, cause, who, n in causes[[IMAGE_ID, "cause", "annotators", "n_objects"]].itertuples(
            index=False):
        out.setdefault(int(i), []).append(f"{'/'.join(who)} {verb[cause]} {n}")
    return {i: " · ".join(v) for i, v in out.items()}



def disputed_gallery(result: AgreementResult, causes: pd.DataFrame, *, limit: int,
                     only=None) -> tuple[list[int], dict[int, str]]:
    """The disputed images a gallery shows, in order, and their captions: images with a cause
    (:func:`dispute_causes`, warnings first) then the rest by disagreement score, at most
    ``limit``; ``only`` keeps those image ids (a report link's). Captions name who caused
    what (:func:`dispute_captions`) after the score caption."""
    worst = result.most_disputed(len(result.per_image))
    caps = dict(zip(worst[IMAGE_ID], worst["caption"])) | dispute_captions(causes)
    ids = list(dict.fromkeys([*causes[IMAGE_ID].astype(int), *worst[IMAGE_ID]]))
    if only is not None:
        keep = set(only)
        ids = [i for i in ids if i in keep]
    ids = ids[:int(limit)]
    return ids, {i: caps.get(i, "") for i in ids}

def annotator_summary(dataset: Dataset) -> pd.DataFrame:
    """What each annotator did, one row each: images labelled, boxes and image labels, boxes
    per labelled image, classes used and the most used class. Defined for any number of
    annotators (the agreement page shows it when there is only one)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"annotator_summary() needs a qa.Dataset, got {type(dataset).__name__}")
    a = dataset.annotations
    names = dataset.category_names
    who = a[ANNOTATOR].astype(str)
    is_box = a[W].notna()
    rows = []
    for name in dataset.annotators:
        mine = a[who == name]
        boxes = int(is_box[who == name].sum())
        n_img = int(mine[IMAGE_ID].nunique())
        top = mine[CATEGORY_ID].value_counts()
        rows.append({
            ANNOTATOR: name, "n_images": n_img, "n_boxes": boxes,
            "n_image_labels": int(len(mine) - boxes),
            "boxes_per_image": boxes / n_img if n_img and boxes else math.nan,
            "n_classes_used": int(top.size),
            "most_used_class": names.get(top.index[0], str(top.index[0])) if top.size else "",
        })
    return pd.DataFrame(rows, columns=[ANNOTATOR, "n_images", "n_boxes", "n_image_labels",
                                       "boxes_per_image", "n_classes_used", "most_used_class"])


# ---------------------------------------------------------------------------------------------
# compute_agreement
# ---------------------------------------------------------------------------------------------
def compute_agreement(dataset: Dataset, *, iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                      iou_type: str = "bbox", coverage: str = "auto",
                      progress: ProgressFn | None = None) -> AgreementResult:
    """Inter-annotator agreement of ``dataset``: pairwise box agreement, per class and per
    image, consensus objects, leave-one-out scorecards, pairwise Cohen's kappa, Fleiss' kappa
    and Krippendorff's alpha (see the module docstring for the method).

    ``iou_type="segm"`` compares masks (the ``segmentation`` column: polygons or RLE) instead
    of boxes. Classification datasets (NaN boxes) are compared on their image labels. With
    fewer than two annotators the coefficients are NaN and a warning says why.

    ``coverage`` says which images each annotator labelled, for box datasets: "annotated" =
    the images where they left an annotation; "all" = every image (an image they left empty
    means they saw no object); "auto" (default) = "all" for an annotator with annotations on
    at least ``FULL_COVERAGE_SHARE`` of the annotated images, "annotated" otherwise (subset
    designs). Classification ratings are always "annotated": no label is no rating.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a qa.Dataset, got {type(dataset).__name__}; build one "
                        "with qa.load(path).")
    thr = check_iou_threshold(iou_threshold)
    if coverage not in COVERAGES:
        raise ValueError(f"coverage must be one of {COVERAGES}, got {coverage!r}.")
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}.")
    if iou_type == "segm" and SEGMENTATION not in dataset.annotations.columns:
        raise ValueError("iou_type='segm' needs a 'segmentation' column of polygons or RLE; this "
                         "dataset has none, so use iou_type='bbox'.")
    if dataset.annotations.empty:  # nothing to match (issue 14: IndexError further down)
        raise ValueError("agreement needs annotations, and this dataset has none (or all were "
                         "quarantined: see qa.validate(dataset) / 'dataset-qa info').")
    progress = progress or (lambda frac, msg: None)
    annotators = tuple(dataset.annotators)
    if len(annotators) < 2:
        _warn(f"Agreement needs at least 2 annotators; this dataset has {len(annotators)} "
              f"({', '.join(annotators) or 'none'}). Coefficients are NaN.")
    from qa.memo import remembered

    if dataset.is_classification:
        compute = lambda: _compute_classification(dataset, annotators, thr, progress)  # noqa: E731
    else:
        compute = lambda: _compute_boxes(dataset, annotators, thr, iou_type,  # noqa: E731
                                         coverage, progress)
    # the app shares one result between the agreement page and disagreement's consensus
    return remembered(dataset, ("agreement", thr, iou_type, coverage),
                      lambda: replace(compute(), image_table=dataset.images))


def _coverage(dataset: Dataset, annotators, mode: str = "annotated"):
    """Sorted image ids, and a (n_images, n_annotators) bool: who labelled which image
    (``mode``: see ``coverage`` of :func:`compute_agreement`)."""
    anns = dataset.annotations
    img_ids = np.union1d(dataset.images[IMAGE_ID].to_numpy(np.int64),
                         anns[IMAGE_ID].to_numpy(np.int64))
    code = _annotator_codes(anns, annotators)
    cov = np.zeros((len(img_ids), max(len(annotators), 1)), dtype=bool)
    cov[np.searchsorted(img_ids, anns[IMAGE_ID].to_numpy(np.int64)), code] = True
    cov = cov[:, :len(annotators)]
    if mode != "annotated" and len(annotators):
        anyone = cov.any(axis=1)
        share = cov[anyone].sum(axis=0) / max(int(anyone.sum()), 1)
        full = share >= FULL_COVERAGE_SHARE if mode == "auto" else np.ones(len(share), bool)
        cov[:, full] = True
    return img_ids, cov


def _annotator_codes(anns: pd.DataFrame, annotators) -> np.ndarray:
    """Position of each row's annotator in ``annotators`` (int64, -1 if absent)."""
    col = anns[ANNOTATOR]
    if isinstance(col.dtype, pd.CategoricalDtype):
        lut = pd.Index(list(annotators)).get_indexer(col.cat.categories.astype(str))
        codes = col.cat.codes.to_numpy()
        return np.where(codes >= 0, lut[codes], -1).astype(np.int64)
    return pd.Index(list(annotators)).get_indexer(col.astype(str)).astype(np.int64)


def _pair_list(annotators):
    k = len(annotators)
    return [(a, b) for a in range(k) for b in range(a + 1, k)]


def _compute_boxes(ds: Dataset, annotators, thr, iou_type, coverage, progress):
    names = ds.category_names
    img_ids, cov = _coverage(ds, annotators, coverage)
    k = len(annotators)
    anns = ds.annotations[ds.annotations[W].notna()]
    # nodes = boxes, sorted by (annotator, image) so each annotator's boxes are one slice
    code = _annotator_codes(anns, annotators)
    img = np.searchsorted(img_ids, anns[IMAGE_ID].to_numpy(np.int64))
    order = np.lexsort((anns[ANN_ID].to_numpy(), img, code))
    anns = anns.iloc[order].reset_index(drop=True)
    code, img = code[order], img[order]
    ann_id = anns[ANN_ID].to_numpy(np.int64)
    cat = anns[CATEGORY_ID].to_numpy(np.int64)
    cat_ids = np.union1d(ds.categories[CATEGORY_ID].to_numpy(np.int64), cat)
    cat_idx = np.searchsorted(cat_ids, cat)
    xyxy = xywh_to_xyxy(anns[BOX].to_numpy(np.float64))
    geom = Geometry(xyxy, dataset_rles(ds, anns, img_ids, img) if iou_type == "segm" else None)
    starts = np.searchsorted(code, np.arange(k + 1))
    n_nodes = len(anns)
    progress(0.05, "Matching boxes of each annotator pair")

    # ---- pairwise matching
    pair_rows, cls_rows, link_parts = [], [], []
    n_cat = len(cat_ids)
    for p, (a, b) in enumerate(_pair_list(annotators)):
        both = cov[:, a] & cov[:, b]
        sa = np.arange(starts[a], starts[a + 1])
        sb = np.arange(starts[b], starts[b + 1])
        sa, sb = sa[both[img[sa]]], sb[both[img[sb]]]
        (ma, mb, miou), (xa, xb, xiou) = match_grouped(img[sa], img[sb], geom.take(sa),
                                                     geom.take(sb), cat[sa], cat[sb], thr)
        ma, mb, xa, xb = sa[ma], sb[mb], sa[xa], sb[xb]
        link_parts.append((ma, mb, miou, np.zeros(len(ma), bool), np.full(len(ma), p)))
        link_parts.append((xa, xb, xiou, np.ones(len(xa), bool), np.full(len(xa), p)))
        n_a, n_b, n_m, n_x = len(sa), len(sb), len(ma), len(xa)
        all_iou = np.concatenate([miou, xiou])
        pair_rows.append({
            "annotator_a": annotators[a], "annotator_b": annotators[b],
            "n_images_a": int(cov[:, a].sum()), "n_images_b": int(cov[:, b].sum()),
            "n_overlap_images": int(both.sum()), "n_boxes_a": n_a, "n_boxes_b": n_b,
            "n_matched": n_m, "n_label_mismatch": n_x,
            "precision": n_m / n_b if n_b else math.nan,
            "recall": n_m / n_a if n_a else math.nan,
            "f1": 2 * n_m / (n_a + n_b) if n_a + n_b else math.nan,
            "mean_iou": float(all_iou.mean()) if len(all_iou) else math.nan,
            "label_mismatch_rate": n_x / (n_m + n_x) if n_m + n_x else math.nan,
        })
        cls_rows.append(np.stack([
            np.bincount(cat_idx[sa], minlength=n_cat) + np.bincount(cat_idx[sb], minlength=n_cat),
            np.bincount(cat_idx[ma], minlength=n_cat),
            np.bincount(cat_idx[xa], minlength=n_cat) + np.bincount(cat_idx[xb], minlength=n_cat),
        ]).astype(np.float64))
        cls_rows.append(np.bincount(cat_idx[ma], miou, minlength=n_cat))
    progress(0.35, "Building consensus objects")
    li, lj, lw, lx, lp = (np.concatenate([t[f] for t in link_parts]) if link_parts
                          else np.zeros(0, dt) for f, dt in
                          enumerate([np.int64, np.int64, float, bool, np.int64]))
    li, lj, lp = li.astype(np.int64), lj.astype(np.int64), lp.astype(np.int64)

    # ---- consensus clusters over all annotators
    cl = _cluster(n_nodes, code, li, lj, lw, max(k, 1))
    n_cl = int(cl.max()) + 1 if n_nodes else 0
    cl_img = np.zeros(n_cl, dtype=np.int64)
    cl_img[cl] = img
    support = np.bincount(cl, minlength=n_cl)
    maj, top = _majority(cl, cat_idx, n_cat, n_cl)
    raters = cov[cl_img].sum(axis=1) if k else np.zeros(n_cl, np.int64)
    same_cl = cl[li] == cl[lj]
    cl_iou_sum = np.bincount(cl[li][same_cl], lw[same_cl], minlength=n_cl)
    cl_iou_n = np.bincount(cl[li][same_cl], minlength=n_cl)
    # reliability-weighted consensus (3+ annotators, boxes): noise model by EM, then the
    # precision-weighted robust centre; otherwise (two annotators, masks) the median box
    noise = (estimate_box_noise(cl, code, xyxy, k)
             if k >= MIN_RATERS and iou_type == "bbox" and n_nodes else None)
    med = (weighted_centre(cl, code, xyxy, noise, n_cl)[0] if noise is not None
           else _group_median_xyxy(cl, xyxy, n_cl))
    with np.errstate(divide="ignore", invalid="ignore"):
        cl_mean_iou = np.where(cl_iou_n > 0, cl_iou_sum / np.maximum(cl_iou_n, 1), np.nan)
    loose_link = same_cl & (lw < LOOSE_BOX_IOU)
    n_loose_cl = np.bincount(cl[li][loose_link], minlength=n_cl)
    missing = raters - support
    is_missed_kind = 2 * support >= raters
    clusters = pd.DataFrame({
        "cluster_id": np.arange(n_cl), IMAGE_ID: img_ids[cl_img],
        CATEGORY_ID: cat_ids[np.maximum(maj, 0)] if n_cl else np.zeros(0, np.int64),
        "n_boxes": support, "n_raters": raters,
        "support": np.where(raters > 0, support / np.maximum(raters, 1), np.nan),
        "label_agreement": top / np.maximum(support, 1), "mean_iou": cl_mean_iou,
        "x": med[:, 0], "y": med[:, 1], "w": med[:, 2] - med[:, 0], "h": med[:, 3] - med[:, 1],
        "n_missing": np.where(is_missed_kind, missing, 0),
        "n_extra": np.where(~is_missed_kind, support, 0),
        "n_label_disagree": support - top, "n_loose": n_loose_cl,
    })
    clusters["is_disputed"] = ((clusters["n_raters"] >= 2) & (
        (missing > 0) | (clusters["n_label_disagree"] > 0) | (n_loose_cl > 0)))
    members = pd.DataFrame({ANN_ID: ann_id, ANNOTATOR: _names(code, annotators),
                            "cluster_id": cl})

    # ---- ratings (units = consensus objects) and coefficients
    progress(0.5, "Kappas and alpha")
    ratings = np.full((n_cl, k), np.nan)
    if k:
        covered = cov[cl_img]
        ratings[covered] = NO_OBJECT
        ratings[cl, code] = cat
    ratings_df = pd.DataFrame(ratings, columns=list(annotators))
    ratings_df.insert(0, IMAGE_ID, img_ids[cl_img])
    coeffs = _coefficients(ratings, annotators, names)
    ds_fit = dawid_skene(ratings) if k >= MIN_RATERS and n_cl else None
    label_confusion = _label_confusion(ds_fit, annotators, names, cl, code, cat, ann_id)
    if ds_fit is not None:
        clusters["ds_category_id"] = ds_fit.label.astype(np.int64)
        clusters["p_ds"] = ds_fit.posterior.max(axis=1)

    # ---- tables
    pairwise = pd.DataFrame(pair_rows, columns=_PAIR_COLUMNS)
    kappa_pairs = [coeffs["kappa_matrix"].iat[a, b] for a, b in _pair_list(annotators)]
    pairwise["kappa"] = np.asarray(kappa_pairs, dtype=float)
    pairwise["kappa_band"] = [kappa_band(v) for v in pairwise["kappa"]]
    per_class = _per_class_boxes(cls_rows, cat_ids, names, cat_idx, maj, coeffs, n_cat)
    per_image = _per_image_boxes(img_ids, cov, clusters, li, lj, lw, lx, lp, img, cat, code,
                                 annotators)
    matched_ious = pd.DataFrame({
        "annotator_a": _names(code[li], annotators), "annotator_b": _names(code[lj], annotators),
        IMAGE_ID: img_ids[img[li]], CATEGORY_ID: cat[li], "iou": lw, "label_mismatch": lx})
    progress(0.6, "Scorecards (leave-one-out)")
    examples: dict = {}
    scorecard = _scorecard_boxes(annotators, cov, code, img, cat, cat_idx, cat_ids, xyxy, geom,
                                 li, lj, lw, n_nodes, thr, names, iou_type, coeffs, noise,
                                 ann_id=ann_id, img_ids=img_ids, examples=examples)
    if ds_fit is not None:
        scorecard = _add_label_habits(scorecard, label_confusion)
    progress(1.0, "Done")
    return AgreementResult(
        annotators=annotators, iou_threshold=thr, iou_type=iou_type, is_classification=False,
        pairwise=pairwise, per_class=per_class, per_image=per_image, scorecard=scorecard,
        kappa_matrix=coeffs["kappa_matrix"], fleiss=coeffs["fleiss"],
        fleiss_per_category=coeffs["fleiss_per_category"], n_fleiss_units=coeffs["n_fleiss"],
        alpha=coeffs["alpha"], matched_ious=matched_ious, clusters=clusters, members=members,
        ratings=ratings_df, category_names=names, label_confusion=label_confusion,
        annotator_examples=examples)


_CONFUSION_COLUMNS = [ANNOTATOR, "true_category_id", "true_name", "given_category_id",
                      "given_name", "n", "rate", "rate_given_box", "ann_ids"]


def _label_confusion(fit: DawidSkene | None, annotators, names, cl, code, cat,
                     ann_id) -> pd.DataFrame:
    """Long table of every annotator's Dawid-Skene confusion matrix (see AgreementResult),
    with the ann_ids of the boxes behind each off-diagonal cell (most probable true class)."""
    if fit is None:
        return pd.DataFrame(columns=_CONFUSION_COLUMNS)
    lab = fit.labels.astype(np.int64)
    n_lab = len(lab)
    k = len(annotators)
    no = np.flatnonzero(lab == NO_OBJECT)
    # the boxes behind each off-diagonal cell: one sort, then a dict (not a MultiIndex lookup
    # per cell: 3 x 81 x 81 of them at COCO's 80 classes)
    true_of_box = fit.label.astype(np.int64)[cl]
    order = np.lexsort((cat, true_of_box, code))  # stable: boxes keep their order
    cells = np.stack([code[order], true_of_box[order], cat[order]], axis=1)
    cuts = np.flatnonzero((np.diff(cells, axis=0) != 0).any(axis=1)) + 1
    sorted_ids = ann_id[order].tolist()
    box_key = {tuple(cells[a].tolist()): tuple(sorted_ids[a:b]) for a, b in
               zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(order)].tolist())} if len(order) \
        else {}
    all_names = {**names, NO_OBJECT: NO_OBJECT_NAME}
    label_names = [all_names.get(v, str(v)) for v in lab.tolist()]
    j, t, g = (a.ravel() for a in np.meshgrid(np.arange(k), np.arange(n_lab), np.arange(n_lab),
                                             indexing="ij"))
    conf = fit.confusion[:k]
    drew = (1.0 - conf[:, :, no[0]]) if len(no) else np.ones((k, n_lab))
    rate = conf[j, t, g]
    with np.errstate(divide="ignore", invalid="ignore"):
        given_box = np.where((lab[g] != NO_OBJECT) & (drew[j, t] > 0), rate / drew[j, t], np.nan)
    lab_list, t_list, g_list, j_list = lab.tolist(), t.tolist(), g.tolist(), j.tolist()
    return pd.DataFrame({
        ANNOTATOR: [annotators[x] for x in j_list],
        "true_category_id": lab[t], "true_name": [label_names[x] for x in t_list],
        "given_category_id": lab[g], "given_name": [label_names[x] for x in g_list],
        "n": fit.counts[:k][j, t, g], "rate": rate, "rate_given_box": given_box,
        "ann_ids": [box_key.get((a, lab_list[b], lab_list[c]), ()) if b != c else ()
                    for a, b, c in zip(j_list, t_list, g_list)],
    }, columns=_CONFUSION_COLUMNS)


def _add_label_habits(scorecard: pd.DataFrame, lc: pd.DataFrame) -> pd.DataFrame:
    """Scorecard label columns from the Dawid-Skene matrices: ``label_error_rate`` (expected
    share of an annotator's boxes on real objects that carry a wrong class) and
    ``top_confusions`` ("labels ring as circle 40% of the time")."""
    real = lc[(lc["true_category_id"] != NO_OBJECT) & (lc["given_category_id"] != NO_OBJECT)]
    wrong = real["true_category_id"] != real["given_category_id"]
    tot = real.groupby(ANNOTATOR, sort=False)["n"].sum()
    err = real[wrong].groupby(ANNOTATOR, sort=False)["n"].sum()
    habits = real[wrong & (real["rate_given_box"] >= CONFUSION_MIN_RATE)
                  & (real["n"] >= CONFUSION_MIN_COUNT)].sort_values("n", ascending=False)
    text = {}
    for name, t, g, r in zip(habits[ANNOTATOR], habits["true_name"], habits["given_name"],
                             habits["rate_given_box"]):
        text.setdefault(name, []).append(f"labels {t} as {g} {r:.0%} of the time")
    text = {name: "; ".join(parts) for name, parts in text.items()}
    sc = scorecard.copy()
    sc["label_error_rate"] = (sc["annotator"].map(err).fillna(0.0)
                              / sc["annotator"].map(tot)).astype(float)
    sc["top_confusions"] = [text.get(a, "") for a in sc["annotator"]]
    return sc


def _names(codes: np.ndarray, annotators) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=list(annotators))


_PAIR_COLUMNS = ["annotator_a", "annotator_b", "n_images_a", "n_images_b", "n_overlap_images",
                 "n_boxes_a", "n_boxes_b", "n_matched", "n_label_mismatch", "precision", "recall",
                 "f1", "mean_iou", "label_mismatch_rate"]


def _coefficients(ratings: np.ndarray, annotators, names) -> dict:
    """Pairwise Cohen matrix, Fleiss (units every annotator rated) and alpha from a units x
    annotators rating matrix."""
    k = len(annotators)
    km = np.eye(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AgreementWarning)
        for a, b in _pair_list(annotators):
            both = ~np.isnan(ratings[:, a]) & ~np.isnan(ratings[:, b])
            km[a, b] = km[b, a] = _compute_cohen(ratings[both, a], ratings[both, b], None, None)
    kappa_matrix = pd.DataFrame(km, index=list(annotators), columns=list(annotators))
    fleiss, per_cat, n_full = math.nan, pd.DataFrame(columns=[CATEGORY_ID, NAME, "kappa"]), 0
    alpha = math.nan
    if k >= 2:
        full = ratings[~np.isnan(ratings).any(axis=1)].astype(np.int64)
        n_full = len(full)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AgreementWarning)
            if n_full:
                labels, inv = np.unique(full, return_inverse=True)
                fleiss, pc = _fleiss_of_ratings(np.repeat(np.arange(n_full), k), inv.ravel(),
                                                n_full, k, len(labels))
                per_cat = pd.DataFrame({CATEGORY_ID: labels,
                                        NAME: [names.get(v, NO_OBJECT_NAME if v == NO_OBJECT
                                                         else str(v)) for v in labels],
                                        "kappa": pc})
            alpha = _compute_alpha(ratings.T, "nominal")
    return {"kappa_matrix": kappa_matrix, "fleiss": fleiss, "fleiss_per_category": per_cat,
            "n_fleiss": n_full, "alpha": alpha}


def _per_class_boxes(cls_rows, cat_ids, names, cat_idx, maj, coeffs, n_cat) -> pd.DataFrame:
    tot = np.zeros((3, n_cat))
    iou_sum = np.zeros(n_cat)
    for counts, s in zip(cls_rows[0::2], cls_rows[1::2]):
        tot += counts
        iou_sum += s
    n_boxes, n_m, n_x = tot
    with np.errstate(divide="ignore", invalid="ignore"):
        df = pd.DataFrame({
            CATEGORY_ID: cat_ids, NAME: [names.get(c, str(c)) for c in cat_ids],
            "n_pair_boxes": n_boxes.astype(np.int64), "n_matched": n_m.astype(np.int64),
            "n_label_mismatch": n_x.astype(np.int64),
            "f1": np.where(n_boxes > 0, 2 * n_m / n_boxes, np.nan),
            "mean_iou": np.where(n_m > 0, iou_sum / n_m, np.nan),
            "label_mismatch_rate": np.where(2 * n_m + n_x > 0, n_x / (2 * n_m + n_x), np.nan),
            "n_objects": np.bincount(maj[maj >= 0], minlength=n_cat),
        })
    fk = coeffs["fleiss_per_category"].set_index(CATEGORY_ID)["kappa"] if len(
        coeffs["fleiss_per_category"]) else pd.Series(dtype=float)
    df["kappa"] = df[CATEGORY_ID].map(fk).astype(float)
    return df[(df["n_pair_boxes"] > 0) | (df["n_objects"] > 0)].reset_index(drop=True)


def _per_image_boxes(img_ids, cov, clusters, li, lj, lw, lx, lp, img, cat, code,
                     annotators) -> pd.DataFrame:
    k = len(annotators)
    n_img = len(img_ids)
    n_raters = cov.sum(axis=1)
    # soft F1 pooled over pairs: 2 * sum(IoU of same-label matches) / sum(n_a + n_b)
    denom = np.zeros(n_img)
    n_box_img = np.bincount(img, minlength=n_img)
    for a, b in _pair_list(annotators):
        both = cov[:, a] & cov[:, b]
        na = np.bincount(img[code == a], minlength=n_img)
        nb = np.bincount(img[code == b], minlength=n_img)
        denom += np.where(both, na + nb, 0)
    good = ~lx
    num = 2 * np.bincount(img[li][good], lw[good], minlength=n_img)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(denom > 0, 1 - num / denom, 0.0)
    cimg = np.searchsorted(img_ids, clusters[IMAGE_ID].to_numpy(np.int64))
    sums = {c: np.bincount(cimg, clusters[c].to_numpy(np.float64), minlength=n_img)
            for c in ("n_missing", "n_extra", "n_label_disagree", "n_loose")}
    n_obj = np.bincount(cimg, minlength=n_img)
    iou_sum = np.bincount(img[li], lw, minlength=n_img)
    iou_n = np.bincount(img[li], minlength=n_img)
    kinds = np.stack([sums["n_missing"], sums["n_extra"], sums["n_label_disagree"],
                      sums["n_loose"]], axis=1)
    present = kinds > 0
    kind = np.where(present.any(axis=1),
                    np.asarray(DISAGREEMENT_KINDS, dtype=object)[present.argmax(axis=1)], "none")
    detail = _kind_detail(kinds)
    df = pd.DataFrame({
        IMAGE_ID: img_ids, "n_annotators": n_raters, "n_boxes": n_box_img, "n_objects": n_obj,
        "n_missed": sums["n_missing"].astype(np.int64), "n_extra": sums["n_extra"].astype(np.int64),
        "n_label": sums["n_label_disagree"].astype(np.int64),
        "n_loose": sums["n_loose"].astype(np.int64),
        "mean_iou": np.where(iou_n > 0, iou_sum / np.maximum(iou_n, 1), np.nan),
        "disagreement_score": score, "disagreement": kind, "disagreement_detail": detail,
    })
    df["is_disputed"] = df["disagreement_score"] >= DISPUTED_SCORE
    df = df[df["n_annotators"] >= 2] if k >= 2 else df.iloc[:0]
    return df.sort_values("disagreement_score", ascending=False, kind="stable",
                          ignore_index=True)


def _kind_detail(kinds: np.ndarray) -> list[str]:
    """'missed 2, loose box 5' per row of a (n, 4) count table, most severe kind first."""
    out = []
    for row in kinds.astype(np.int64).tolist():
        out.append(", ".join(f"{name} {n}" for name, n in zip(DISAGREEMENT_KINDS, row) if n))
    return out


_SCORE_COLUMNS = ["annotator", "n_images", "n_boxes", "n_consensus_objects", "n_found", "recall",
                  "n_extra", "precision", "mean_iou", "mean_iou_vs_consensus", "box_noise",
                  "box_noise_px", "box_bias", "consensus_weight", "n_loose", "n_label_mismatch",
                  "label_mismatch_rate", "label_error_rate", "top_confusions", "mean_kappa"]


def _noise_summary(noise: BoxNoise | None, xyxy: np.ndarray, k: int) -> dict:
    """Scorecard noise columns at the median object size (NaN without a noise model)."""
    if noise is None or not len(xyxy):
        return {c: np.full(k, np.nan) for c in ("box_noise", "box_noise_px", "box_bias",
                                                "consensus_weight")}
    size = float(np.median(np.r_[xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]]))
    size = max(size, 1.0)
    known = noise.n_objects >= MIN_NOISE_OBJECTS  # else mostly the EM's starting guess
    share = np.where(known, noise.sd_share(size), np.nan)
    prec = 1.0 / (share * size) ** 2
    return {"box_noise": share, "box_noise_px": share * size,
            "box_bias": np.where(known, noise.bias, np.nan),
            "consensus_weight": prec / np.nansum(prec) if known.any() else prec}


def _scorecard_boxes(annotators, cov, code, img, cat, cat_idx, cat_ids, xyxy, geom, li, lj, lw,
                     n_nodes, thr, names, iou_type, coeffs, noise=None, ann_id=None,
                     img_ids=None, examples: dict | None = None) -> pd.DataFrame:
    """The per-annotator scorecard (leave-one-out against the others' consensus). When
    ``examples`` is a dict it receives, per annotator, ``{"loose": [(image_id, ann_id)...],
    "missed": [(image_id, ann_id of another annotator's box)...]}``, worst first (at most
    :data:`MAX_EXAMPLES` each): the evidence of the per-annotator findings."""
    k = len(annotators)
    rows = []
    n_cat = len(cat_ids)
    summary = _noise_summary(noise, xyxy, k)
    for a in range(k):
        mine = np.flatnonzero(code == a)
        row = {"annotator": annotators[a], "n_images": int(cov[:, a].sum()),
               "n_boxes": len(mine), **{c: float(v[a]) for c, v in summary.items()}}
        km = coeffs["kappa_matrix"].to_numpy()
        row["mean_kappa"] = float(np.nanmean(np.delete(km[a], a))) if k >= 2 and np.isfinite(
            np.delete(km[a], a)).any() else math.nan
        if k < 2:
            rows.append(row)
            continue
        others = code != a
        keep = others[li] & others[lj]
        cl = _cluster(n_nodes, code, li[keep], lj[keep], lw[keep], k)
        onodes = np.flatnonzero(others)
        ocl = cl[onodes]
        ucl, ocl_idx = np.unique(ocl, return_inverse=True)
        n_cl = len(ucl)
        cl_img = np.zeros(n_cl, np.int64)
        cl_img[ocl_idx] = img[onodes]
        support = np.bincount(ocl_idx, minlength=n_cl)
        other_cov = cov[:, np.arange(k) != a]
        m = other_cov[cl_img].sum(axis=1)
        is_cons = (support >= np.ceil(MIN_CONSENSUS_SHARE * m)) & cov[cl_img, a]
        maj, top = _majority(ocl_idx, cat_idx[onodes], n_cat, n_cl)
        # a label tied for the majority among the others (bob: ring, carol: circle) is not
        # counted against the annotator
        lab_key, lab_cnt = np.unique(ocl_idx.astype(np.int64) * n_cat + cat_idx[onodes],
                                     return_counts=True)
        if iou_type == "segm":
            kk = keep & (cl[li] == cl[lj])
            loc = np.searchsorted(onodes, np.concatenate([li[kk], lj[kk]]))
            med = _medoid(ocl_idx, loc[:kk.sum()], loc[kk.sum():], lw[kk], n_cl)
            cgeom = geom.take(onodes[med])
        elif noise is not None:  # the others' consensus, with the others' weights
            cxyxy, cvar, _ = weighted_centre(ocl_idx, code[onodes], xyxy[onodes], noise, n_cl)
            cgeom = Geometry(cxyxy)
        else:
            cgeom = Geometry(_group_median_xyxy(ocl_idx, xyxy[onodes], n_cl))
        cons = np.flatnonzero(is_cons)
        cons = cons[np.argsort(cl_img[cons], kind="stable")]
        def tied_majority(pa, pb, mine=mine, cons=cons, lab_key=lab_key, lab_cnt=lab_cnt,
                          top=top):
            key = cons[pb].astype(np.int64) * n_cat + cat_idx[mine[pa]]
            pos = np.minimum(np.searchsorted(lab_key, key), len(lab_key) - 1)
            return (lab_key[pos] == key) & (lab_cnt[pos] == top[cons[pb]])

        (ma, mb, miou), (xa, xb, xiou) = match_grouped(
            img[mine], cl_img[cons], geom.take(mine), cgeom.take(cons), cat[mine],
            cat_ids[maj[cons]], thr, tied_majority)
        found = len(ma) + len(xa)
        all_iou = np.concatenate([miou, xiou])
        est_iou = all_iou
        if noise is not None and found:  # IoU with the truth, the consensus' own noise removed
            pa, pb = mine[np.concatenate([ma, xa])], cons[np.concatenate([mb, xb])]
            ref = cxyxy[pb]
            sizes = np.maximum(np.c_[ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]], 1.0)
            own = noise.var(np.full((found, 1), a), np.c_[sizes, sizes])
            est_iou = expected_iou(xyxy[pa], ref, cvar[pb], own, np.full(found, noise.bias[a]))
        if examples is not None and ann_id is not None:
            pa_all = mine[np.concatenate([ma, xa])]
            loose = np.flatnonzero(est_iou < LOOSE_BOX_IOU)
            loose = loose[np.argsort(est_iou[loose], kind="stable")][:MAX_EXAMPLES]
            hit = np.zeros(len(cons), bool)
            hit[np.concatenate([mb, xb]).astype(np.int64)] = True
            missed_cl = cons[~hit]
            # one box of the others per missed object (the first node of its cluster)
            first = np.full(n_cl, -1, np.int64)
            first[ocl_idx[::-1]] = onodes[::-1]
            missed_nodes = first[missed_cl][:MAX_EXAMPLES]
            examples[annotators[a]] = {
                "loose": [(int(img_ids[img[n]]), int(ann_id[n])) for n in pa_all[loose]],
                "missed": [(int(img_ids[img[n]]), int(ann_id[n])) for n in missed_nodes
                           if n >= 0]}
        conf = pd.DataFrame({"a": cat[mine][xa], "b": cat_ids[maj[cons]][xb]})
        row.update({
            "n_consensus_objects": len(cons), "n_found": found,
            "recall": found / len(cons) if len(cons) else math.nan,
            "n_extra": len(mine) - found,
            "precision": found / len(mine) if len(mine) else math.nan,
            "mean_iou": float(est_iou.mean()) if found else math.nan,
            "mean_iou_vs_consensus": float(all_iou.mean()) if found else math.nan,
            "n_loose": int((est_iou < LOOSE_BOX_IOU).sum()),
            "n_label_mismatch": len(xa),
            "label_mismatch_rate": len(xa) / found if found else math.nan,
            "top_confusions": _top_confusions(conf, names),
        })
        rows.append(row)
    return pd.DataFrame(rows, columns=_SCORE_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Classification (image-level labels)
# ---------------------------------------------------------------------------------------------
def _compute_classification(ds: Dataset, annotators, thr, progress) -> AgreementResult:
    names = ds.category_names
    k = len(annotators)
    anns = ds.annotations.sort_values(ANN_ID, kind="stable")
    code = _annotator_codes(anns, annotators)
    key = pd.DataFrame({IMAGE_ID: anns[IMAGE_ID].to_numpy(np.int64), "a": code,
                        CATEGORY_ID: anns[CATEGORY_ID].to_numpy(np.int64),
                        ANN_ID: anns[ANN_ID].to_numpy(np.int64)})
    dup = key.duplicated([IMAGE_ID, "a"])
    if dup.any():
        _warn(f"{int(dup.sum())} extra image-level labels (an annotator gave one image several "
              "labels): agreement uses each annotator's first label per image.")
    first = key[~dup]
    img_ids = np.unique(first[IMAGE_ID].to_numpy())
    ratings = np.full((len(img_ids), k), np.nan)
    ratings[np.searchsorted(img_ids, first[IMAGE_ID].to_numpy()), first["a"].to_numpy()] = first[
        CATEGORY_ID].to_numpy()
    progress(0.3, "Kappas and alpha")
    coeffs = _coefficients(ratings, annotators, names)
    rated = ~np.isnan(ratings)
    rows, cls_agree, cls_total = [], {}, {}
    for a, b in _pair_list(annotators):
        both = rated[:, a] & rated[:, b]
        ra, rb = ratings[both, a], ratings[both, b]
        agree = ra == rb
        for c, n in zip(*np.unique(np.concatenate([ra, rb]), return_counts=True)):
            cls_total[c] = cls_total.get(c, 0) + n
        for c, n in zip(*np.unique(ra[agree], return_counts=True)):
            cls_agree[c] = cls_agree.get(c, 0) + 2 * n
        rows.append({"annotator_a": annotators[a], "annotator_b": annotators[b],
                     "n_images_a": int(rated[:, a].sum()), "n_images_b": int(rated[:, b].sum()),
                     "n_overlap_images": int(both.sum()), "n_agree": int(agree.sum()),
                     "agreement": float(agree.mean()) if both.any() else math.nan,
                     "kappa": coeffs["kappa_matrix"].iat[a, b]})
    pairwise = pd.DataFrame(rows, columns=["annotator_a", "annotator_b", "n_images_a",
                                           "n_images_b", "n_overlap_images", "n_agree",
                                           "agreement", "kappa"])
    pairwise["kappa_band"] = [kappa_band(v) for v in pairwise["kappa"]]
    # per image: majority label and share of raters who chose it
    cat_ids = np.union1d(ds.categories[CATEGORY_ID].to_numpy(np.int64),
                         first[CATEGORY_ID].to_numpy())
    r_i, r_a = np.nonzero(rated)
    cidx = np.searchsorted(cat_ids, ratings[r_i, r_a].astype(np.int64))
    maj, top = _majority(r_i, cidx, len(cat_ids), len(img_ids))
    n_r = rated.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pair_agree = np.zeros(len(img_ids))
        for a, b in _pair_list(annotators):
            pair_agree += rated[:, a] & rated[:, b] & (ratings[:, a] == ratings[:, b])
        n_pairs = n_r * (n_r - 1) / 2
        score = np.where(n_pairs > 0, 1 - pair_agree / n_pairs, 0.0)
    per_image = pd.DataFrame({
        IMAGE_ID: img_ids, "n_annotators": n_r,
        CATEGORY_ID: cat_ids[np.maximum(maj, 0)],
        "label_agreement": top / np.maximum(n_r, 1), "n_label": n_r - top,
        "disagreement_score": score,
        "disagreement": np.where(n_r - top > 0, "label", "none"),
    })
    per_image["is_disputed"] = per_image["disagreement_score"] >= DISPUTED_SCORE
    per_image = per_image[per_image["n_annotators"] >= 2] if k >= 2 else per_image.iloc[:0]
    per_image = per_image.sort_values("disagreement_score", ascending=False, kind="stable",
                                      ignore_index=True)
    per_class = pd.DataFrame({CATEGORY_ID: cat_ids, NAME: [names.get(c, str(c)) for c in cat_ids]})
    per_class["n_labels"] = np.bincount(cidx, minlength=len(cat_ids))
    tot = per_class[CATEGORY_ID].map(lambda c: cls_total.get(float(c), 0)).astype(float)
    agr = per_class[CATEGORY_ID].map(lambda c: cls_agree.get(float(c), 0)).astype(float)
    per_class["specific_agreement"] = np.where(tot > 0, agr / tot.where(tot > 0, 1), np.nan)
    fk = coeffs["fleiss_per_category"]
    per_class["kappa"] = per_class[CATEGORY_ID].map(
        fk.set_index(CATEGORY_ID)["kappa"] if len(fk) else {}).astype(float)
    per_class = per_class[per_class["n_labels"] > 0].reset_index(drop=True)
    # scorecard: each annotator against the majority label of the others
    score_rows = []
    for a in range(k):
        km = coeffs["kappa_matrix"].to_numpy()
        row = {"annotator": annotators[a], "n_images": int(rated[:, a].sum()),
               "mean_kappa": float(np.nanmean(np.delete(km[a], a)))
               if k >= 2 and np.isfinite(np.delete(km[a], a)).any() else math.nan}
        if k >= 2:
            oth = np.delete(ratings, a, axis=1)
            oi, oa = np.nonzero(~np.isnan(oth))
            ocidx = np.searchsorted(cat_ids, oth[oi, oa].astype(np.int64))
            omaj, otop = _majority(oi, ocidx, len(cat_ids), len(img_ids))
            on = (~np.isnan(oth)).sum(axis=1)
            ok = rated[:, a] & (on > 0) & (otop >= np.ceil(MIN_CONSENSUS_SHARE * on))
            mine = ratings[ok, a].astype(np.int64)
            ref = cat_ids[omaj[ok]]
            wrong = mine != ref
            row.update({"n_compared": int(ok.sum()),
                        "agreement_with_others": float((~wrong).mean()) if ok.any() else math.nan,
                        "n_label_mismatch": int(wrong.sum()),
                        "label_mismatch_rate": float(wrong.mean()) if ok.any() else math.nan,
                        "top_confusions": _top_confusions(
                            pd.DataFrame({"a": mine[wrong], "b": ref[wrong]}), names)})
        score_rows.append(row)
    scorecard = pd.DataFrame(score_rows, columns=[
        "annotator", "n_images", "n_compared", "agreement_with_others", "n_label_mismatch",
        "label_mismatch_rate", "top_confusions", "mean_kappa"])
    # Dawid-Skene over the image labels (3+ annotators): confusion matrices and label habits
    ds_fit = dawid_skene(ratings) if k >= MIN_RATERS and len(img_ids) else None
    label_confusion = _label_confusion(
        ds_fit, annotators, names, np.searchsorted(img_ids, first[IMAGE_ID].to_numpy()),
        first["a"].to_numpy(), first[CATEGORY_ID].to_numpy(np.int64),
        first[ANN_ID].to_numpy(np.int64))
    if ds_fit is not None:
        scorecard = _add_label_habits(scorecard, label_confusion)
    ratings_df = pd.DataFrame(ratings, columns=list(annotators))
    ratings_df.insert(0, IMAGE_ID, img_ids)
    members = pd.DataFrame({ANN_ID: first[ANN_ID].to_numpy(),
                            ANNOTATOR: [annotators[c] for c in first["a"]],
                            "cluster_id": np.searchsorted(img_ids, first[IMAGE_ID].to_numpy())})
    clusters = per_image.rename(columns={}).assign(cluster_id=lambda d: np.searchsorted(
        img_ids, d[IMAGE_ID].to_numpy()))
    progress(1.0, "Done")
    return AgreementResult(
        annotators=annotators, iou_threshold=thr, iou_type="bbox", is_classification=True,
        pairwise=pairwise, per_class=per_class, per_image=per_image, scorecard=scorecard,
        kappa_matrix=coeffs["kappa_matrix"], fleiss=coeffs["fleiss"],
        fleiss_per_category=coeffs["fleiss_per_category"], n_fleiss_units=coeffs["n_fleiss"],
        alpha=coeffs["alpha"],
        matched_ious=pd.DataFrame(columns=["annotator_a", "annotator_b", IMAGE_ID, CATEGORY_ID,
                                           "iou", "label_mismatch"]),
        clusters=clusters, members=members, ratings=ratings_df, category_names=names,
        label_confusion=label_confusion)


def run_analysis(dataset: Dataset, ctx) -> AgreementResult:
    """Runner for :mod:`qa.analyses`; skipped with fewer than two annotators."""
    from qa.analyses import Skip

    if len(dataset.annotators) < 2:
        raise Skip(f"agreement needs at least two annotators; this dataset has "
                   f"{len(dataset.annotators)}")
    return compute_agreement(dataset, iou_threshold=ctx.option("agreement", "iou_threshold",
                                                               DEFAULT_IOU_THRESHOLD),
                             progress=ctx.progress)
