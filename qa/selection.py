"""What to label next: pick the most useful images of a pool, each with its reasons.

:func:`select_for_labelling` ranks a *pool* of images (by default the images without labels;
any subset, e.g. a folder of new images with a model's predictions loaded as a dataset) and
returns ``budget`` of them in order, each with the reasons it was picked ("model unsure: max
box entropy 0.93 over 4 boxes", "far from anything labelled or picked: 0.41", "predicted star
(0.88): a rare class"). Already-labelled images are never picked; an image that is a
near-duplicate (:mod:`qa.duplicates`' clusters) of a labelled image or of an earlier pick is
skipped, and the result lists and counts them.

Strategies (``strategy=``):

``uncertainty``     the model's doubt about the image, highest first. Class probabilities
                    (classification): least confidence ``1 - p_max``, margin
                    ``1 - (p_1 - p_2)`` or entropy ``H(p) / log K`` (all in [0, 1]). Detections:
                    each box's binary uncertainty about its own score (entropy ``H(s) / log 2``,
                    or ``1 - |2 s - 1|`` for least confidence and margin, which coincide for
                    two outcomes), pooled per image by max, mean or sum, or the count of boxes
                    within :data:`NEAR_THRESHOLD_BAND` of the confidence threshold.
``kcenter``         diversity: k-center greedy on image embeddings, the core-set rule of Sener
                    & Savarese (2018): each pick is the image farthest from everything labelled
                    or picked (:mod:`qa.kcenter`, exact and fast at millions of images).
``cluster``         diversity: k-means of the pool into ``budget`` clusters, the most typical
                    image (nearest the centre) of each, largest clusters first.
``hybrid``          uncertainty within diversity (Zhdanov 2019, "diverse mini-batch active
                    learning"): the :data:`HYBRID_PREFILTER` x ``budget`` most uncertain
                    images, k-means (weighted by uncertainty) into ``budget`` clusters, the
                    most uncertain image of each cluster.
``hybrid_kcenter``  uncertainty-weighted k-center: the largest uncertainty x distance.
``random``          the baseline every other strategy is compared with; stratified by split
                    or by predicted class, so every prefix of the order keeps the strata's
                    proportions.
``auto``            (default) ``hybrid`` when the pool has predictions and embeddings,
                    ``uncertainty`` with predictions only, ``kcenter`` with embeddings only,
                    else ``random``; the notes say which and why. Which strategy is the default
                    was measured, not assumed: ``benchmarks/eval_selection.py``.

Targeting: images predicted to contain a *rare* class (:func:`qa.balance.compute_class_balance`
on the labelled images: under 10 % of the top class, or absent) get their priority multiplied
by ``1 + rare_weight * rare_score`` (``rare_score``: the highest score of a rare-class box, or
the probability of the rare classes).

Nothing here reads image files or changes the dataset; :func:`export_selection` writes the
picks (CSV, a COCO subset, Label Studio tasks with the model's predictions as pre-labels)
atomically to a folder outside it.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from qa.dataset import (
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    MODEL,
    SCORE,
    SPLIT,
    WIDTH,
    Dataset,
    DatasetError,
)
from qa.results import findings_frame, frame_records, to_jsonable

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, str], None]

STRATEGIES = ("auto", "hybrid", "hybrid_kcenter", "uncertainty", "kcenter", "cluster", "random")
STRATEGY_TITLES = {
    "auto": "Automatic (hybrid when predictions and embeddings exist)",
    "hybrid": "Hybrid: most uncertain of each cluster",
    "hybrid_kcenter": "Hybrid: uncertainty-weighted k-center",
    "uncertainty": "Uncertainty (the model's doubt)",
    "kcenter": "Diversity: k-center greedy (core-set)",
    "cluster": "Diversity: cluster, then the most typical of each",
    "random": "Random (the baseline)",
}
NEEDS_PREDICTIONS = ("hybrid", "hybrid_kcenter", "uncertainty")
NEEDS_EMBEDDINGS = ("hybrid", "hybrid_kcenter", "kcenter", "cluster")
MEASURES = ("entropy", "margin", "least_confidence")
AGGREGATES = ("max", "mean", "sum", "near_threshold")
STRATIFY = ("split", "class", "none")
# Predicted rare classes double an image's priority at full confidence: strong enough to lift
# a likely rare object over a somewhat more uncertain common one, not enough to fill a batch
# with confident rare-class images the model already knows.
DEFAULT_RARE_WEIGHT = 1.0
# A rare class is named among a pick's reasons when the model gives it at least this score.
RARE_REASON_MIN = 0.25
# Zhdanov (2019) clusters the beta * budget most informative samples; beta = 10 there.
HYBRID_PREFILTER = 10
# A box counts as "near the threshold" when its score is within this of the confidence
# threshold: the model's coin flips (0.35-0.65 around the usual 0.5).
NEAR_THRESHOLD_BAND = 0.15
# k-means: scikit-learn (Lloyd to convergence) while points x clusters stays under this,
# faiss (20 iterations) above: 10,000 points into 1,000 clusters took 180 s of CPU with
# scikit-learn, seconds with faiss.
KMEANS_SKLEARN_MAX = 2_000_000
# Image priorities are floored here in uncertainty-weighted k-center so that images the model
# is sure about still count a little by their distance.
MIN_WEIGHT = 1e-3
POOL_UNLABELLED, POOL_ALL = "unlabelled", "all"
EXPORT_FILES = {"csv": "selection.csv", "coco": "selection_coco.json",
                "labelstudio": "labelstudio_tasks.json", "json": "selection.json"}
PICK_COLUMNS = ["rank", IMAGE_ID, FILE_NAME, SPLIT, "priority", "uncertainty", "distance",
                "cluster", "stratum", "rare_score", "rare_class", "reasons"]
POOL_COLUMNS = [IMAGE_ID, FILE_NAME, SPLIT, "uncertainty", "n_boxes", "n_near_threshold",
                "top_class", "top_score", "rare_score", "rare_class", "priority",
                "distance_to_labelled", "distance_after", "has_embedding", "status", "rank"]
SKIP_COLUMNS = [IMAGE_ID, FILE_NAME, "copy_of", "reason"]


# ============================================================================ uncertainty
def class_uncertainty(probs, measure: str = "entropy") -> np.ndarray:
    """Uncertainty in [0, 1] of each row of class probabilities (n x K; higher = less sure).

    ``least_confidence``: ``(1 - p_max) * K / (K - 1)``; ``margin``: ``1 - (p_1 - p_2)``, the
    two largest; ``entropy``: ``-sum p log p / log K``. Rows are renormalised to sum to 1 (a
    row of zeros is uniform). With one class every value is 0."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    p = np.asarray(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be an (n images x K classes) array, got shape "
                         f"{p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probabilities must be finite and >= 0 (apply a softmax to logits)")
    n, k = p.shape
    if k < 2 or n == 0:
        return np.zeros(n)
    total = p.sum(1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / k)
    if measure == "least_confidence":
        return np.clip((1 - p.max(1)) * k / (k - 1), 0, 1)
    if measure == "margin":
        top2 = -np.partition(-p, 1, axis=1)[:, :2]
        return np.clip(1 - (top2[:, 0] - top2[:, 1]), 0, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return np.clip(h / math.log(k), 0, 1)


def box_uncertainty(scores, measure: str = "entropy") -> np.ndarray:
    """Uncertainty in [0, 1] of detections from their confidence scores (higher = the model
    is less sure whether the object is there): binary entropy ``H(s) / log 2`` for
    ``entropy``; ``1 - |2 s - 1|`` for ``least_confidence`` and ``margin`` (the same for two
    outcomes). Peaks at s = 0.5."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    s = np.clip(np.asarray(scores, np.float64), 0, 1)
    if measure != "entropy":
        return 1 - np.abs(2 * s - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(s > 0, s * np.log(s), 0) + np.where(s < 1, (1 - s) * np.log1p(-s), 0))
    return np.clip(h / math.log(2), 0, 1)


def image_uncertainty(dataset: Dataset, image_ids=None, *, model: str | None = None,
                      measure: str = "entropy", aggregate: str = "max",
                      conf_threshold: float = 0.5) -> pd.DataFrame:
    """The model's uncertainty per image: one row per image of ``image_ids`` (default all):
    image_id, uncertainty (in [0, 1] except ``aggregate="sum"`` / ``"near_threshold"``;
    higher = less sure; 0 for an image without predictions), n_boxes, n_near_threshold, top
    class and score, has_prediction. Class probabilities (predictions without boxes) use
    :func:`class_uncertainty`; detections :func:`box_uncertainty` pooled by ``aggregate``."""
    from qa.disagreement import choose_model, model_predictions

    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    ids = (dataset.images[IMAGE_ID] if image_ids is None else pd.Series(list(image_ids))
           ).to_numpy(np.int64)
    model = choose_model(dataset, model)
    preds = model_predictions(dataset, model)
    preds = preds[preds[IMAGE_ID].isin(ids) & preds[CATEGORY_ID].isin(
        dataset.categories[CATEGORY_ID])]
    out = pd.DataFrame({IMAGE_ID: ids, "uncertainty": 0.0, "n_boxes": 0, "n_near_threshold": 0,
                        "top_category_id": pd.array([pd.NA] * len(ids), dtype="Int64"),
                        "top_score": np.nan, "has_prediction": False})
    if preds.empty:
        return out
    pos = pd.Index(ids).get_indexer(preds[IMAGE_ID])
    if preds["w"].notna().any():  # detections
        boxes = preds[preds["w"].notna()]
        bpos = pd.Index(ids).get_indexer(boxes[IMAGE_ID])
        s = boxes[SCORE].to_numpy(np.float64)
        u = box_uncertainty(s, measure)
        n = len(ids)
        cnt = np.bincount(bpos, minlength=n)
        near = np.bincount(bpos, weights=(np.abs(s - conf_threshold) <= NEAR_THRESHOLD_BAND),
                           minlength=n)
        if aggregate == "max":
            val = np.zeros(n)
            np.maximum.at(val, bpos, u)
        elif aggregate == "sum":
            val = np.bincount(bpos, weights=u, minlength=n)
        elif aggregate == "mean":
            val = np.bincount(bpos, weights=u, minlength=n) / np.maximum(cnt, 1)
        else:
            val = near.astype(float)
        top = boxes.assign(_p=bpos).sort_values(SCORE, ascending=False).drop_duplicates("_p")
        out["uncertainty"] = val
        out["n_boxes"] = cnt
        out["n_near_threshold"] = near.astype(np.int64)
        out.loc[top["_p"].to_numpy(), "top_category_id"] = top[CATEGORY_ID].to_numpy()
        out.loc[top["_p"].to_numpy(), "top_score"] = top[SCORE].to_numpy()
        out["has_prediction"] = np.bincount(pos, minlength=n) > 0
        return out
    # class probabilities: one row per image and class
    cats = dataset.categories[CATEGORY_ID].to_numpy(np.int64)
    ci = pd.Index(cats).get_indexer(preds[CATEGORY_ID])
    p = np.zeros((len(ids), len(cats)))
    np.add.at(p, (pos, ci), preds[SCORE].to_numpy(np.float64))
    has = p.sum(1) > 0
    out["uncertainty"] = np.where(has, class_uncertainty(p, measure), 0.0)
    best = p.argmax(1)
    out["top_category_id"] = pd.Series(cats[best]).astype("Int64").where(has).to_numpy()
    out["top_score"] = np.where(has, p[np.arange(len(ids)), best] / np.maximum(p.sum(1), 1e-12),
                                np.nan)
    out["has_prediction"] = has
    return out


def _rare_scores(dataset: Dataset, ids: np.ndarray, model: str, rare: dict[int, str]
                 ) -> tuple[np.ndarray, list]:
    """(rare_score per image, the rare class it comes from or None): the highest score of a
    predicted rare-class box, or the summed probability of the rare classes."""
    from qa.disagreement import model_predictions

    score = np.zeros(len(ids))
    cls: list = [None] * len(ids)
    if not rare:
        return score, cls
    p = model_predictions(dataset, model)
    p = p[p[IMAGE_ID].isin(ids) & p[CATEGORY_ID].isin(list(rare))]
    if p.empty:
        return score, cls
    pos = pd.Index(ids).get_indexer(p[IMAGE_ID])
    s = p[SCORE].to_numpy(np.float64)
    if p["w"].notna().any():
        np.maximum.at(score, pos, s)
    else:
        np.add.at(score, pos, s)
    best = p.assign(_p=pos).sort_values(SCORE, ascending=False).drop_duplicates("_p")
    for i, c in zip(best["_p"], best[CATEGORY_ID]):
        cls[int(i)] = rare[int(c)]
    return np.clip(score, 0, 1), cls


def rare_classes_of(dataset: Dataset, labelled_ids) -> dict[int, str]:
    """The classes rare among the labelled images (fewer than 10 % of the top class's
    instances, or none at all), per :func:`qa.balance.compute_class_balance`:
    {category_id: name}. Empty when nothing is labelled."""
    from qa.balance import BalanceWarning, compute_class_balance

    ids = list(labelled_ids)
    if not ids or dataset.annotations.empty:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BalanceWarning)
        bal = compute_class_balance(dataset.subset(ids))
    pc = bal.per_class
    rare = pc[pc["is_rare"] | pc["is_absent"]]
    return {int(c): str(n) for c, n in zip(rare[CATEGORY_ID], rare["name"])}


# ============================================================================ pools
def pool_presets(dataset: Dataset) -> dict[str, tuple[list[int], list[int]]]:
    """The usual pools as {name: (pool image ids, labelled image ids)}: ``unlabelled`` (the
    images without any annotation), ``all`` (every image, as if nothing were labelled) and
    ``split:<name>`` for each split (its images as if unlabelled, the other labelled images
    as labelled): what the page and the CLI offer."""
    ids = dataset.images[IMAGE_ID].to_numpy(np.int64)
    has = np.isin(ids, dataset.annotations[IMAGE_ID].to_numpy())
    out = {POOL_UNLABELLED: (ids[~has].tolist(), ids[has].tolist()), POOL_ALL: (ids.tolist(), [])}
    split = dataset.images[SPLIT].astype(object)
    for s in dataset.splits:
        inside = (split == s).to_numpy()
        out[f"split:{s}"] = (ids[inside].tolist(), ids[has & ~inside].tolist())
    return out


def pool_title(name: str) -> str:
    """A pool preset in words: "Images without labels", "The test split, as if unlabelled"."""
    if name == POOL_UNLABELLED:
        return "Images without labels"
    if name == POOL_ALL:
        return "Every image (labels ignored)"
    return f"The {name.removeprefix('split:')} split, as if unlabelled"


def resolve_pool(dataset: Dataset, spec: str) -> tuple[list[int], list[int]]:
    """(pool ids, labelled ids) for a pool named on the command line: ``unlabelled``, ``all``,
    ``split:NAME``, or a file of image ids or file names (one per line, or a CSV with an
    ``image_id`` or ``file_name`` column; the rest of the labelled images stay labelled)."""
    presets = pool_presets(dataset)
    if spec in presets:
        return presets[spec]
    if spec.startswith("split:"):
        raise ValueError(f"unknown split in --pool {spec!r}; this dataset has "
                         f"{list(dataset.splits) or 'no splits'}.")
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--pool must be 'unlabelled', 'all', 'split:NAME' or a file of image ids "
                         f"or file names; {spec!r} is none of these.")
    ids = _read_id_list(path, dataset)
    labelled = set(presets[POOL_UNLABELLED][1]) - set(ids)
    return ids, sorted(labelled)


def _read_id_list(path: Path, dataset: Dataset) -> list[int]:
    text = path.read_text(encoding="utf-8-sig")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and ("," in lines[0] or lines[0].lower() in (IMAGE_ID, FILE_NAME)):
        import io

        df = pd.read_csv(io.StringIO(text))
        col = IMAGE_ID if IMAGE_ID in df.columns else FILE_NAME if FILE_NAME in df.columns \
            else None
        if col is None:
            raise DatasetError(f"{path}: a CSV pool needs an 'image_id' or 'file_name' column; "
                               f"it has {list(df.columns)}.")
        lines = df[col].astype(str).tolist()
    by_name = dict(zip(dataset.images[FILE_NAME].astype(str), dataset.images[IMAGE_ID]))
    known = set(dataset.images[IMAGE_ID].tolist())
    ids, unknown = [], []
    for k, v in enumerate(lines, start=1):
        if v in by_name:
            ids.append(int(by_name[v]))
        elif v.lstrip("-").isdigit() and int(v) in known:
            ids.append(int(v))
        else:
            unknown.append((k, v))
    if unknown:
        k, v = unknown[0]
        raise DatasetError(f"{path}: {len(unknown)} line(s) name no image of the dataset (line "
                           f"{k}: {v!r}); give image ids or file names as the dataset has them "
                           f"(e.g. {dataset.images[FILE_NAME].iloc[0]!r}).")
    return list(dict.fromkeys(ids))


# ============================================================================ the result
@dataclass(frozen=True, eq=False)
class SelectionResult:
    """The images chosen for labelling, in order, with their reasons.

    * ``picks``: :data:`PICK_COLUMNS`: rank (1 = label first), image, file, split,
      ``priority`` (uncertainty x rare-class factor; higher = more useful), ``uncertainty``,
      ``distance`` (to the nearest labelled or earlier-picked image when picked, Euclidean
      between unit embeddings, 0..2; NaN without embeddings), the ``cluster`` or ``stratum`` it
      represents, ``rare_score`` / ``rare_class``, and ``reasons`` ("; "-joined sentences).
    * ``pool``: :data:`POOL_COLUMNS`: every pool image with its scores, ``status`` ("picked",
      "pool", "skipped: copy of a labelled image", "skipped: copy of a pick") and rank.
    * ``skipped``: the pool images left out as near-duplicates (image, file, ``copy_of``, reason).
    * ``coverage``: mean and max distance from the embedded pool images to the nearest labelled
      image, before and after labelling the picks (lower = the labels cover the pool better).
    """

    ANALYSIS: ClassVar[str] = "selection"

    strategy: str
    requested_strategy: str
    budget: int
    model: str | None
    measure: str
    aggregate: str
    rare_weight: float
    rare_classes: tuple[str, ...]
    stratify: str
    n_images: int
    n_labelled: int
    n_pool: int
    picks: pd.DataFrame
    pool: pd.DataFrame
    skipped: pd.DataFrame
    coverage: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def picked_ids(self) -> list[int]:
        return self.picks[IMAGE_ID].astype(int).tolist()

    def status_of(self, image_ids, labelled_ids) -> list[str]:
        """"labelled", "picked", "skipped", "pool" or "other" for each image id (the map's
        colours)."""
        st = dict(zip(self.pool[IMAGE_ID].astype(int), self.pool["status"]))
        lab = {int(i) for i in labelled_ids}
        out = []
        for i in image_ids:
            i = int(i)
            s = st.get(i)
            out.append("labelled" if i in lab else "other" if s is None else
                       "skipped" if s.startswith("skipped") else s)
        return out

    def metrics(self) -> dict[str, float | int | None]:
        c = self.coverage
        return {"n_pool": self.n_pool, "n_labelled": self.n_labelled,
                "n_picked": len(self.picks), "n_skipped": len(self.skipped),
                "n_skipped_labelled_copies": int(self.skipped["reason"].str.contains(
                    "labelled", na=False).sum()) if len(self.skipped) else 0,
                "coverage_before": c.get("mean_before"), "coverage_after": c.get("mean_after"),
                "radius_before": c.get("max_before"), "radius_after": c.get("max_after"),
                "mean_uncertainty_picked": float(self.picks["uncertainty"].mean())
                if len(self.picks) and self.picks["uncertainty"].notna().any() else None}

    def findings(self) -> pd.DataFrame:
        """None: a selection is a plan, not an issue of the dataset."""
        return findings_frame([], analysis=self.ANALYSIS, page="overview")

    def to_dict(self) -> dict[str, Any]:
        return {"analysis": self.ANALYSIS, "strategy": self.strategy,
                "requested_strategy": self.requested_strategy, "budget": self.budget,
                "model": self.model, "measure": self.measure, "aggregate": self.aggregate,
                "rare_weight": self.rare_weight, "rare_classes": list(self.rare_classes),
                "stratify": self.stratify, "n_images": self.n_images,
                "metrics": {k: to_jsonable(v) for k, v in self.metrics().items()},
                "coverage": {k: to_jsonable(v) for k, v in self.coverage.items()},
                "picks": frame_records(self.picks), "skipped": frame_records(self.skipped),
                "notes": list(self.notes)}


# ============================================================================ selection
def select_for_labelling(dataset: Dataset, budget: int, *, strategy: str = "auto",
                         pool: Iterable[int] | None = None,
                         labelled: Iterable[int] | None = None, embeddings=None,
                         duplicates=None, model: str | None = None, measure: str = "entropy",
                         aggregate: str = "max", conf_threshold: float = 0.5,
                         rare_weight: float = DEFAULT_RARE_WEIGHT,
                         rare_classes: Iterable[str] | None = None, stratify: str = "split",
                         seed: int = 0, progress: ProgressFn | None = None) -> SelectionResult:
    """Choose ``budget`` images of the pool to label next (see the module docstring).

    ``pool``: image ids to choose from (default: the images without annotations).
    ``labelled``: image ids that count as labelled (default: the images with annotations);
    they are never picked and are the starting centers of diversity. ``embeddings``: image
    :class:`qa.embeddings.Embeddings` (needed by the diversity strategies). ``duplicates``: a
    :class:`qa.duplicates.DuplicatesResult`; pool images in a cluster with a labelled image
    or an earlier pick are skipped. ``model``: whose predictions give the uncertainty (default
    the only model). ``measure`` / ``aggregate``: see :func:`image_uncertainty`.
    ``rare_weight``: how much a predicted rare class raises an image's priority (0 = off);
    ``rare_classes``: their names (default: rare among the labelled images). ``stratify``:
    "split", "class" (predicted) or "none", for ``strategy="random"``. Returns a
    :class:`SelectionResult`."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"select_for_labelling() needs a qa.Dataset, got "
                        f"{type(dataset).__name__}")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget is how many images to pick, a whole number >= 1; got "
                         f"{budget!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if stratify is None:
        stratify = "none"
    if stratify not in STRATIFY:
        raise ValueError(f"stratify must be one of {STRATIFY}, got {stratify!r}")
    if not (np.isfinite(rare_weight) and rare_weight >= 0):
        raise ValueError(f"rare_weight must be a number >= 0 (0 turns targeting off), got "
                         f"{rare_weight!r}")
    if not 0 <= conf_threshold <= 1:
        raise ValueError(f"conf_threshold is a score in [0, 1], got {conf_threshold!r}")
    if embeddings is not None and (getattr(embeddings, "vectors", None) is None
                                   or getattr(embeddings, "ann_ids", None) is not None):
        raise TypeError("embeddings must be image Embeddings (qa.embeddings.embed_images), not "
                        f"{type(embeddings).__name__} or object embeddings")
    opts = dict(strategy=strategy, model=model, measure=measure, aggregate=aggregate,
                conf=float(conf_threshold), rare_weight=float(rare_weight),
                rare_names=None if rare_classes is None else [str(c) for c in rare_classes],
                stratify=stratify, seed=int(seed))
    return _compute_selection(dataset, int(budget), pool, labelled, embeddings, duplicates,
                              opts, progress or (lambda frac, msg: None))


def _id_list(dataset: Dataset, ids, what: str) -> np.ndarray:
    a = np.asarray(list(ids), dtype=np.int64)
    unknown = np.setdiff1d(a, dataset.images[IMAGE_ID].to_numpy(np.int64))
    if len(unknown):
        raise ValueError(f"{what} names {len(unknown)} image id(s) the dataset lacks "
                         f"(e.g. {unknown[:5].tolist()}); pass ids from dataset.images.")
    return np.unique(a)


def _compute_selection(ds: Dataset, budget: int, pool, labelled, emb, dups, o,
                       progress: ProgressFn) -> SelectionResult:
    notes: list[str] = []
    all_ids = ds.images[IMAGE_ID].to_numpy(np.int64)
    lab = (np.intersect1d(np.unique(ds.annotations[IMAGE_ID].to_numpy(np.int64)), all_ids)
           if labelled is None else _id_list(ds, labelled, "labelled"))
    if pool is None:
        pool_ids = np.setdiff1d(all_ids, lab)
    else:
        pool_ids = _id_list(ds, pool, "pool")
        inside = np.isin(pool_ids, lab)
        if inside.any():
            notes.append(f"{int(inside.sum())} pool image(s) are labelled already and were "
                         "left out.")
            pool_ids = pool_ids[~inside]
    # pool order = dataset order, so ties resolve the same way every run
    pool_ids = all_ids[np.isin(all_ids, pool_ids)]
    info = ds.images.set_index(IMAGE_ID)
    files = info[FILE_NAME].astype(str)
    splits = info[SPLIT].astype(object)

    # ---- near-duplicates: groups, and pool images that copy a labelled one ----------------
    group = _duplicate_groups(dups, all_ids)
    lab_groups = {}
    for i in lab:
        g = group.get(int(i))
        if g is not None:
            lab_groups.setdefault(g, int(i))
    skipped_rows = []
    copy_of_labelled = np.array([group.get(int(i)) in lab_groups for i in pool_ids], bool)
    for i in pool_ids[copy_of_labelled]:
        c = lab_groups[group[int(i)]]
        skipped_rows.append((int(i), files.get(i), c,
                             f"a near-duplicate of labelled image #{c}"))
    eligible = pool_ids[~copy_of_labelled]

    # ---- scores -------------------------------------------------------------------------
    progress(0.05, "scoring the model's uncertainty")
    model = None
    unc = pd.DataFrame({IMAGE_ID: pool_ids, "uncertainty": np.nan, "n_boxes": 0,
                        "n_near_threshold": 0, "top_category_id": pd.NA, "top_score": np.nan,
                        "has_prediction": False})
    if len(ds.predictions):
        from qa.disagreement import choose_model

        model = choose_model(ds, o["model"])
        unc = image_uncertainty(ds, pool_ids, model=model, measure=o["measure"],
                                aggregate=o["aggregate"], conf_threshold=o["conf"])
    elif o["model"] is not None:
        raise ValueError(f"model {o['model']!r} was asked for, but the dataset has no "
                         "predictions; load them with --predictions FILE.")
    has_pred = bool(unc["has_prediction"].any())
    is_boxes = bool(model is not None and ds.predictions.loc[
        ds.predictions[MODEL].astype(str) == model, "w"].notna().any())
    if model is not None and not has_pred and len(pool_ids):
        notes.append(f"Model {model} has no predictions for the pool images: no uncertainty.")
    elif has_pred and (~unc["has_prediction"]).any():
        notes.append(f"{int((~unc['has_prediction']).sum())} pool image(s) have no prediction "
                     "of the model; their uncertainty counts as 0.")
    rare = {}
    if o["rare_weight"] > 0 and model is not None:
        if o["rare_names"] is not None:
            names = {str(n): int(c) for c, n in ds.category_names.items()}
            unknown = [n for n in o["rare_names"] if n not in names]
            if unknown:
                raise ValueError(f"unknown rare class(es) {unknown}; the classes are "
                                 f"{sorted(names)}.")
            rare = {names[n]: n for n in o["rare_names"]}
        else:
            rare = rare_classes_of(ds, lab)
    rare_score, rare_cls = (_rare_scores(ds, pool_ids, model, rare) if rare else
                            (np.zeros(len(pool_ids)), [None] * len(pool_ids)))
    if o["rare_weight"] > 0 and model is not None and not rare and len(lab):
        notes.append("No class is rare among the labelled images: nothing to target.")
    factor = 1.0 + o["rare_weight"] * rare_score
    u = unc["uncertainty"].to_numpy(np.float64)
    priority = (np.nan_to_num(u) if has_pred else np.ones(len(pool_ids))) * factor

    # ---- embeddings -----------------------------------------------------------------------
    row_of: dict[int, int] = {}
    if emb is not None:
        row_of = {int(i): k for k, i in enumerate(np.asarray(emb.image_ids, np.int64))}
    has_emb = np.array([int(i) in row_of for i in pool_ids], bool)
    if emb is not None and len(pool_ids) and not has_emb.all():
        notes.append(f"{int((~has_emb).sum())} pool image(s) have no embedding; diversity "
                     "leaves them out.")

    # ---- strategy ------------------------------------------------------------------------
    strategy = o["strategy"]
    if strategy == "auto":
        strategy, why = _auto_strategy(has_pred, bool(has_emb.any()), model)
        notes.insert(0, why)
    elif strategy in NEEDS_PREDICTIONS and not has_pred:
        raise ValueError(f"strategy {strategy!r} needs the model's predictions for the pool "
                         "images; load them (--predictions FILE) or choose 'kcenter', "
                         "'cluster' or 'random'.")
    elif strategy in NEEDS_EMBEDDINGS and not has_emb.any():
        raise ValueError(f"strategy {strategy!r} needs image embeddings of the pool; run "
                         "`dataset-qa embed` (or the Outliers page's button) first, or choose "
                         "'uncertainty' or 'random'.")
    pos = {int(i): k for k, i in enumerate(pool_ids)}
    elig_pos = np.array([pos[int(i)] for i in eligible], np.int64)
    ctx = _Ctx(ds=ds, pool_ids=pool_ids, elig_pos=elig_pos, lab=lab, group=group, u=u,
               priority=priority, factor=factor, has_emb=has_emb, row_of=row_of, emb=emb, seed=o["seed"],
               progress=progress, notes=notes)
    progress(0.15, f"choosing by {strategy}")
    chosen = _RUNNERS[strategy](ctx, budget, o)
    if len(chosen) < budget:
        notes.append(f"Only {len(chosen)} image(s) could be picked of the {budget} asked for: "
                     f"the pool has {len(pool_ids)}, of which {len(skipped_rows)} copy labelled "
                     "images" + (" and some have no embedding" if strategy in NEEDS_EMBEDDINGS
                                 and not has_emb.all() else "") + ".")

    # ---- skipped copies of picks, reasons, tables ---------------------------------------
    picked = {int(pool_ids[p]) for p, _ in chosen}
    seen_groups: dict[int, int] = {}
    for p, _ in chosen:
        g = group.get(int(pool_ids[p]))
        if g is not None:
            seen_groups.setdefault(g, int(pool_ids[p]))
    for i in eligible:
        g = group.get(int(i))
        if g in seen_groups and int(i) not in picked:
            c = seen_groups[g]
            skipped_rows.append((int(i), files.get(i), c, f"a near-duplicate of pick #{c}"))
    progress(0.85, "measuring coverage")
    dist_lab, dist_after, coverage = _coverage(ctx, [int(pool_ids[p]) for p, _ in chosen])
    if not len(lab) and emb is not None:
        notes.append("Nothing is labelled yet: coverage before labelling is undefined.")
    names = ds.category_names
    rank_of_u = _rank_desc(u) if has_pred else None
    rows = []
    for rank, (p, extra) in enumerate(chosen, start=1):
        iid = int(pool_ids[p])
        reasons = []
        if has_pred and strategy in NEEDS_PREDICTIONS:
            reasons.append(_uncertainty_reason(unc.iloc[p], o, is_boxes, names,
                                               int(rank_of_u[p]), len(pool_ids)))
        reasons += extra.get("reasons", [])
        if rare_cls[p] is not None and rare_score[p] >= RARE_REASON_MIN and o["rare_weight"] > 0 \
                and strategy != "random":
            reasons.append(f"predicted {rare_cls[p]} ({rare_score[p]:.2f}): a rare class")
        rows.append({"rank": rank, IMAGE_ID: iid, FILE_NAME: files.get(iid),
                     SPLIT: splits.get(iid), "priority": float(priority[p]),
                     "uncertainty": float(u[p]) if has_pred else np.nan,
                     "distance": extra.get("distance", dist_lab[p]),
                     "cluster": extra.get("cluster"), "stratum": extra.get("stratum"),
                     "rare_score": float(rare_score[p]), "rare_class": rare_cls[p],
                     "reasons": "; ".join(reasons)})
    picks = pd.DataFrame(rows, columns=PICK_COLUMNS)
    picks["cluster"] = pd.array(picks["cluster"], dtype="Int64")
    skipped = pd.DataFrame(skipped_rows, columns=SKIP_COLUMNS)
    status = np.full(len(pool_ids), "pool", dtype=object)
    rank = np.full(len(pool_ids), pd.NA, dtype=object)
    for r, (p, _) in enumerate(chosen, start=1):
        status[p], rank[p] = "picked", r
    for iid, _, _, why in skipped_rows:
        status[pos[iid]] = ("skipped: copy of a labelled image" if "labelled" in why else
                            "skipped: copy of a pick")
    top_names = [names.get(int(c)) if pd.notna(c) else None for c in unc["top_category_id"]]
    pool_df = pd.DataFrame({
        IMAGE_ID: pool_ids, FILE_NAME: files.reindex(pool_ids).to_numpy(),
        SPLIT: splits.reindex(pool_ids).to_numpy(), "uncertainty": u if has_pred else np.nan,
        "n_boxes": unc["n_boxes"].to_numpy(), "n_near_threshold": unc["n_near_threshold"],
        "top_class": top_names, "top_score": unc["top_score"].to_numpy(),
        "rare_score": rare_score, "rare_class": rare_cls, "priority": priority,
        "distance_to_labelled": dist_lab, "distance_after": dist_after,
        "has_embedding": has_emb, "status": status,
        "rank": pd.array(rank, dtype="Int64")}, columns=POOL_COLUMNS)
    progress(1.0, f"picked {len(picks)} of {len(pool_ids)}")
    return SelectionResult(
        strategy=strategy, requested_strategy=o["strategy"], budget=budget, model=model,
        measure=o["measure"], aggregate=o["aggregate"], rare_weight=o["rare_weight"],
        rare_classes=tuple(sorted(rare.values())), stratify=o["stratify"],
        n_images=len(all_ids), n_labelled=len(lab), n_pool=len(pool_ids), picks=picks,
        pool=pool_df, skipped=skipped, coverage=coverage, notes=tuple(notes))


def _auto_strategy(has_pred: bool, has_emb: bool, model) -> tuple[str, str]:
    if has_pred and has_emb:
        return "hybrid", (f"Strategy: hybrid, the most uncertain image of each cluster "
                          f"(predictions of {model} and embeddings are both available).")
    if has_pred:
        return "uncertainty", (f"Strategy: uncertainty of {model} (no embeddings: embed the "
                               "images for diversity and the hybrid strategy).")
    if has_emb:
        return "kcenter", ("Strategy: k-center diversity (no predictions for the pool: load "
                           "a model's predictions for uncertainty).")
    return "random", ("Strategy: random, stratified (neither predictions nor embeddings are "
                      "available for the pool).")


def _rank_desc(v: np.ndarray) -> np.ndarray:
    """1 = the largest; ties share the lower rank."""
    return pd.Series(v).rank(method="min", ascending=False).fillna(len(v)).to_numpy(np.int64)


def _uncertainty_reason(row, o, is_boxes: bool, names: dict, rank: int, n: int) -> str:
    m = o["measure"].replace("_", " ")
    if not bool(row["has_prediction"]):
        return "no prediction of the model"
    if is_boxes:
        nb, near = int(row["n_boxes"]), int(row["n_near_threshold"])
        what = (f"{near} box(es) near the {o['conf']:.2f} threshold" if o["aggregate"] ==
                "near_threshold" else f"{o['aggregate']} box {m} {row['uncertainty']:.2f}")
        tail = f" over {nb} box(es)" + (f", {near} near the {o['conf']:.2f} threshold"
                                        if near and o["aggregate"] != "near_threshold" else "")
        return f"model unsure: {what}{tail} (rank {rank} of {n})"
    top = names.get(int(row["top_category_id"]), "?") if pd.notna(row["top_category_id"]) else "?"
    return (f"model unsure: {m} {row['uncertainty']:.2f}, top class {top} "
            f"{row['top_score']:.2f} (rank {rank} of {n})")


def _duplicate_groups(dups, all_ids: np.ndarray) -> dict[int, int]:
    """image_id -> near-duplicate cluster id, from a DuplicatesResult (or its clusters)."""
    if dups is None:
        return {}
    clusters = getattr(dups, "clusters", dups)
    if not isinstance(clusters, pd.DataFrame) or not {"cluster_id", IMAGE_ID} <= set(
            clusters.columns):
        raise TypeError("duplicates must be a qa.duplicates.DuplicatesResult (or its clusters "
                        f"table with cluster_id and image_id), got {type(dups).__name__}")
    return {int(i): int(c) for i, c in zip(clusters[IMAGE_ID], clusters["cluster_id"])}


@dataclass
class _Ctx:
    ds: Dataset
    pool_ids: np.ndarray
    elig_pos: np.ndarray  # positions (into pool_ids) that may be picked
    lab: np.ndarray
    group: dict
    u: np.ndarray
    priority: np.ndarray  # uncertainty (1 without predictions) x rare-class factor
    factor: np.ndarray  # the rare-class factor alone: diversity's weights
    has_emb: np.ndarray
    row_of: dict
    emb: Any
    seed: int
    progress: ProgressFn
    notes: list

    def vectors(self, positions) -> np.ndarray:
        """Unit-length embedding rows of pool positions (which must have one)."""
        v = np.asarray(self.emb.vectors, np.float32)[
            [self.row_of[int(self.pool_ids[p])] for p in positions]]
        return _unit(v)

    def labelled_vectors(self) -> np.ndarray:
        rows = [self.row_of[int(i)] for i in self.lab if int(i) in self.row_of]
        v = np.asarray(self.emb.vectors, np.float32)
        return _unit(v[rows]) if rows else np.zeros((0, v.shape[1]), np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.where(n > 0, n, 1), dtype=np.float32)


def _walk(ctx: _Ctx, order, budget: int, extra=None) -> list[tuple[int, dict]]:
    """Take pool positions in ``order`` until ``budget``, skipping near-duplicates of earlier
    picks; ``extra(p)`` gives each pick's reasons and columns."""
    taken: set = set()
    out = []
    for p in order:
        g = ctx.group.get(int(ctx.pool_ids[p]))
        if g is not None and g in taken:
            continue
        out.append((int(p), extra(int(p)) if extra else {}))
        if g is not None:
            taken.add(g)
        if len(out) >= budget:
            break
    return out


def _by_priority(ctx: _Ctx, positions) -> np.ndarray:
    """positions sorted by priority, highest first (ties: dataset order)."""
    positions = np.asarray(positions, np.int64)
    return positions[np.lexsort((positions, -ctx.priority[positions]))]


def _run_uncertainty(ctx: _Ctx, budget: int, o) -> list:
    return _walk(ctx, _by_priority(ctx, ctx.elig_pos), budget)


def _run_random(ctx: _Ctx, budget: int, o) -> list:
    rng = np.random.default_rng(ctx.seed)
    pos = ctx.elig_pos
    if o["stratify"] == "split":
        sp = ctx.ds.images.set_index(IMAGE_ID)[SPLIT].astype(object)
        strata = [str(s) if pd.notna(s) else "none" for s in sp.reindex(ctx.pool_ids[pos])]
    elif o["stratify"] == "class" and len(ctx.ds.predictions):
        from qa.disagreement import choose_model

        names = ctx.ds.category_names
        unc = image_uncertainty(ctx.ds, ctx.pool_ids[pos], model=choose_model(
            ctx.ds, o["model"]))
        strata = [names.get(int(c), str(c)) if pd.notna(c) else "no prediction"
                  for c in unc["top_category_id"]]
    else:
        if o["stratify"] == "class":
            ctx.notes.append("No predictions: random picks are not stratified by class.")
        strata = ["all"] * len(pos)
    strata = np.asarray(strata, dtype=object)
    # a proportional interleave: position j of stratum s (shuffled) gets key (j + U) / n_s,
    # so every prefix of the order holds each stratum in proportion to its size
    keys = np.empty(len(pos))
    sizes = {}
    for s in pd.unique(strata):
        m = np.flatnonzero(strata == s)
        sizes[s] = len(m)
        perm = rng.permutation(m)
        keys[perm] = (np.arange(len(m)) + rng.uniform()) / len(m)
    order = np.argsort(keys, kind="stable")
    how = ("" if o["stratify"] == "none" or len(sizes) < 2 else
           f", stratified by {'predicted class' if o['stratify'] == 'class' else 'split'}")
    stratum_of = {int(p): str(s) for p, s in zip(pos, strata)}

    def extra(p: int) -> dict:
        s = stratum_of[p]
        return {"stratum": s, "reasons": ["random pick" + (
            f"{how}: {s} ({sizes[s]} of {len(pos)} pool images)" if how else "")]}

    return _walk(ctx, pos[order], budget, extra)


def _kcenter(ctx: _Ctx, budget: int, weights: np.ndarray | None) -> tuple[list, np.ndarray]:
    """k-center greedy over the labelled + eligible embedded pool images: (pool positions in
    pick order, their distances)."""
    from qa.kcenter import kcenter_greedy

    pos = ctx.elig_pos[ctx.has_emb[ctx.elig_pos]]
    labv = ctx.labelled_vectors()
    x = np.concatenate([labv, ctx.vectors(pos)]) if len(pos) else labv
    groups = np.full(len(x), -1, np.int64)
    for k, p in enumerate(pos):
        g = ctx.group.get(int(ctx.pool_ids[p]))
        groups[len(labv) + k] = -1 if g is None else g
    w = None if weights is None else np.r_[np.ones(len(labv)), weights[pos]]
    rows, dist = kcenter_greedy(x, min(budget, len(pos)), initial=np.arange(len(labv)),
                                eligible=np.arange(len(labv), len(x)), weights=w,
                                groups=groups,
                                progress=lambda f, m: ctx.progress(0.15 + 0.6 * f, m))
    return [int(pos[r - len(labv)]) for r in rows], dist


def _run_kcenter(ctx: _Ctx, budget: int, o) -> list:
    rare_on = bool((ctx.factor != 1).any())  # weighted by rare classes only, not uncertainty
    chosen, dist = _kcenter(ctx, budget, ctx.factor if rare_on else None)
    nothing = not len(ctx.labelled_vectors())
    out = []
    for k, (p, d) in enumerate(zip(chosen, dist), start=1):
        if k == 1 and nothing:
            why = "the most typical image of the pool (nothing labelled yet)"
        else:
            why = f"far from anything labelled or picked: {d:.2f} (pick {k})"
        out.append((p, {"distance": float(d) if np.isfinite(d) else np.nan, "reasons": [why]}))
    return out


def _run_hybrid_kcenter(ctx: _Ctx, budget: int, o) -> list:
    w = np.maximum(ctx.priority, MIN_WEIGHT)
    chosen, dist = _kcenter(ctx, budget, w)
    return [(p, {"distance": float(d) if np.isfinite(d) else np.nan,
                 "reasons": [f"uncertain and far from anything labelled or picked: distance "
                             f"{d:.2f}" if np.isfinite(d) else
                             "uncertain, and the most typical of the pool"]})
            for p, d in zip(chosen, dist)]


def kmeans(x: np.ndarray, k: int, *, weights=None, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centroids) of k-means on the rows of ``x`` (scikit-learn while rows x k is
    at most KMEANS_SKLEARN_MAX, faiss above), optionally weighted."""
    k = int(min(k, len(x)))
    if len(x) * k <= KMEANS_SKLEARN_MAX:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(x, sample_weight=weights)
        return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=256)
    km.train(np.ascontiguousarray(x, np.float32),
             weights=None if weights is None else np.asarray(weights, np.float32))
    _, lab = km.index.search(np.ascontiguousarray(x, np.float32), 1)
    return lab[:, 0].astype(np.int64), km.centroids


def _cluster_pick(ctx: _Ctx, pos: np.ndarray, budget: int, weights, choose: str) -> list:
    """k-means of ``pos`` into ``budget`` clusters and one pick per cluster: the member
    nearest the centre (``typical``) or of highest priority (``uncertain``), skipping
    near-duplicates of earlier picks; largest clusters (or most uncertain picks) first."""
    if not len(pos):
        return []
    x = ctx.vectors(pos)
    labels, cents = kmeans(x, budget, weights=weights, seed=ctx.seed)
    taken: set = set()
    picks = []
    sizes = np.bincount(labels)
    for c in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(labels == c)
        if choose == "typical":
            d = ((x[members] - cents[c]) ** 2).sum(1)
            members = members[np.lexsort((pos[members], d))]
        else:
            members = members[np.lexsort((pos[members], -ctx.priority[pos[members]]))]
        for m in members:
            g = ctx.group.get(int(ctx.pool_ids[pos[m]]))
            if g is not None and g in taken:
                continue
            picks.append((int(pos[m]), int(c), int(sizes[c])))
            if g is not None:
                taken.add(g)
            break
    if choose == "uncertain":
        picks.sort(key=lambda t: (-ctx.priority[t[0]], t[0]))
    return picks


def _run_cluster(ctx: _Ctx, budget: int, o) -> list:
    pos = ctx.elig_pos[ctx.has_emb[ctx.elig_pos]]
    rare_on = bool((ctx.factor != 1).any())
    picks = _cluster_pick(ctx, pos, budget, ctx.factor[pos] if rare_on else None, "typical")
    return [(p, {"cluster": c, "reasons": [f"the most typical image of cluster {c} ({n} pool "
                                           "images)"]}) for p, c, n in picks]


def _run_hybrid(ctx: _Ctx, budget: int, o) -> list:
    pos = ctx.elig_pos[ctx.has_emb[ctx.elig_pos]]
    cand = _by_priority(ctx, pos)[:HYBRID_PREFILTER * budget]
    picks = _cluster_pick(ctx, cand, budget, np.maximum(ctx.priority[cand], MIN_WEIGHT),
                          "uncertain")
    return [(p, {"cluster": c, "reasons": [f"the most uncertain of cluster {c} ({n} of the "
                                           f"{len(cand)} most uncertain images)"]})
            for p, c, n in picks]


_RUNNERS = {"uncertainty": _run_uncertainty, "random": _run_random, "kcenter": _run_kcenter,
            "hybrid_kcenter": _run_hybrid_kcenter, "cluster": _run_cluster,
            "hybrid": _run_hybrid}


def _coverage(ctx: _Ctx, picked_ids: list[int]) -> tuple[np.ndarray, np.ndarray, dict]:
    """(distance of each pool image to the nearest labelled image before and after labelling
    the picks, NaN without embeddings; the coverage figures)."""
    n = len(ctx.pool_ids)
    dist = np.full(n, np.nan)
    dist_after = np.full(n, np.nan)
    if ctx.emb is None or not ctx.has_emb.any():
        return dist, dist_after, {}
    import faiss

    pos = np.flatnonzero(ctx.has_emb)
    q = ctx.vectors(pos)
    labv = ctx.labelled_vectors()
    at = pd.Index(ctx.pool_ids)
    picked_pos = at.get_indexer(picked_ids).tolist() if picked_ids else []
    pv = ctx.vectors([p for p in picked_pos if ctx.has_emb[p]]) if picked_pos else \
        np.zeros((0, q.shape[1]), np.float32)

    def nearest(centers: np.ndarray) -> np.ndarray:
        if not len(centers):
            return np.full(len(q), np.nan)
        index = faiss.IndexFlatL2(q.shape[1])
        index.add(centers)
        d, _ = index.search(q, 1)
        return np.sqrt(np.maximum(d[:, 0], 0)).astype(np.float64)

    before = nearest(labv)
    after = nearest(np.concatenate([labv, pv]) if len(pv) else labv)
    dist[pos] = before
    dist_after[pos] = after
    fin = lambda a, f: float(f(a)) if np.isfinite(a).any() else None  # noqa: E731
    return dist, dist_after, {"n_embedded": int(len(pos)), "mean_before": fin(before, np.nanmean),
                  "mean_after": fin(after, np.nanmean), "max_before": fin(before, np.nanmax),
                  "max_after": fin(after, np.nanmax)}


# ============================================================================ exports
def selection_table(result: SelectionResult) -> pd.DataFrame:
    """The picks as exported to CSV (rank order)."""
    cols = ["rank", IMAGE_ID, FILE_NAME, SPLIT, "priority", "uncertainty", "distance",
            "cluster", "stratum", "rare_class", "rare_score", "reasons"]
    return result.picks[cols].assign(strategy=result.strategy)


def selection_coco(dataset: Dataset, result: SelectionResult) -> dict:
    """A COCO dict of the picked images (rank order) with whatever labels they have (usually
    none) and the categories: the file a labelling tool imports."""
    from qa.io.export import coco_subset

    return coco_subset(dataset, result.picked_ids, description=(
        f"{len(result.picks)} images chosen for labelling by dataset-qa ({result.strategy})"))


def selection_tasks(dataset: Dataset, result: SelectionResult, *,
                    conf_threshold: float = 0.5, image_url_prefix: str | None = None
                    ) -> tuple[list[dict], list[int]]:
    """Label Studio tasks for the picks (rank order) with the model's predictions preloaded
    as pre-labels (boxes scoring at least ``conf_threshold`` as ``rectanglelabels``, or the top
    class as a ``choice``), and the ids left out because their size is unknown (percent boxes
    need it)."""
    from qa.disagreement import model_predictions
    from qa.io.export import LS_LOCAL_FILES, labelstudio_box, labelstudio_choice

    prefix = LS_LOCAL_FILES if image_url_prefix is None else image_url_prefix
    names = dataset.category_names
    imgs = dataset.images.set_index(IMAGE_ID)
    ids = result.picked_ids
    preds = (model_predictions(dataset, result.model) if result.model is not None
             else dataset.predictions.iloc[:0])
    preds = preds[preds[IMAGE_ID].isin(ids)]
    by_img = {i: g for i, g in preds.groupby(IMAGE_ID)}
    tasks, skipped = [], []
    for r in result.picks.itertuples(index=False):
        iid = int(r.image_id)
        p = by_img.get(iid, preds.iloc[:0])
        boxes = p[p["w"].notna() & (p[SCORE] >= conf_threshold)]
        iw, ih = imgs.at[iid, WIDTH], imgs.at[iid, HEIGHT]
        if len(boxes) and (pd.isna(iw) or pd.isna(ih) or not iw or not ih):
            skipped.append(iid)
            continue
        res = [labelstudio_box(b.x, b.y, b.w, b.h, iw, ih, names.get(int(b.category_id),
                                                                    str(b.category_id)),
                               f"p{int(b.pred_id)}", score=b.score)
               for b in boxes.itertuples(index=False)]
        probs = p[p["w"].isna()]
        if len(probs):
            top = probs.sort_values(SCORE, ascending=False).iloc[0]
            res.append(labelstudio_choice(names.get(int(top[CATEGORY_ID]),
                                                    str(top[CATEGORY_ID])),
                                          f"p{int(top['pred_id'])}", top[SCORE]))
        task = {"data": {"image": prefix + str(imgs.at[iid, FILE_NAME]), "image_id": iid,
                         "selection_rank": int(r.rank), "reasons": str(r.reasons)}}
        if result.model is not None:
            task["predictions"] = [{"model_version": str(result.model),
                                    "score": float(p[SCORE].max()) if len(p) else 0.0,
                                    "result": res}]
        tasks.append(task)
    return tasks, skipped


def _classification_like(dataset: Dataset) -> bool:
    """Image-level classes: labels without boxes, or (nothing labelled) probabilities."""
    if len(dataset.annotations):
        return dataset.is_classification
    return len(dataset.predictions) > 0 and dataset.predictions["w"].isna().all()


def selection_files(dataset: Dataset, result: SelectionResult, *,
                    formats=("csv", "coco", "labelstudio", "json"),
                    conf_threshold: float = 0.5) -> dict[str, tuple[str, bytes]]:
    """The exports as {format: (file name, bytes)} (pure: the page's downloads and
    :func:`export_selection` both use it). Label Studio brings its labelling config
    (``labelstudio_config``) with the tasks."""
    from qa.io.export import LS_CONFIG_FILE, labelstudio_config

    unknown = [f for f in formats if f not in EXPORT_FILES]
    if unknown:
        raise ValueError(f"unknown export formats {unknown}; choose from {list(EXPORT_FILES)}")
    out: dict[str, tuple[str, bytes]] = {}
    if "csv" in formats:
        out["csv"] = (EXPORT_FILES["csv"], selection_table(result).to_csv(index=False).encode())
    if "coco" in formats:
        out["coco"] = (EXPORT_FILES["coco"], json.dumps(selection_coco(dataset, result)).encode())
    if "labelstudio" in formats:
        tasks, _ = selection_tasks(dataset, result, conf_threshold=conf_threshold)
        out["labelstudio"] = (EXPORT_FILES["labelstudio"], json.dumps(tasks, indent=1).encode())
        out["labelstudio_config"] = (LS_CONFIG_FILE, labelstudio_config(
            dataset, classification=_classification_like(dataset)).encode())
    if "json" in formats:
        out["json"] = (EXPORT_FILES["json"], json.dumps(result.to_dict(), indent=1).encode())
    return out


def export_selection(dataset: Dataset, result: SelectionResult, folder: Path | str, *,
                     formats=("csv", "coco", "labelstudio", "json"),
                     conf_threshold: float = 0.5) -> dict[str, Path]:
    """Write the picks to ``folder`` (outside the dataset; each file atomically) as
    :data:`EXPORT_FILES`; returns {format: path}. Label Studio gets its labelling config
    (``labelstudio_config.xml``) beside the tasks."""
    from qa.io.export import _check_outside, write_atomic

    files = selection_files(dataset, result, formats=formats, conf_threshold=conf_threshold)
    folder = Path(folder)
    _check_outside(dataset, folder)
    return {k: write_atomic(folder / name, data) for k, (name, data) in files.items()}


from qa.partition import SplitProposal, export_split, iterative_stratification, propose_split  # noqa: E402,F401,I001

__all__ = [
    "AGGREGATES",
    "MEASURES",
    "STRATEGIES",
    "SelectionResult",
    "SplitProposal",
    "box_uncertainty",
    "class_uncertainty",
    "export_selection",
    "export_split",
    "image_uncertainty",
    "iterative_stratification",
    "kmeans",
    "pool_presets",
    "pool_title",
    "propose_split",
    "rare_classes_of",
    "resolve_pool",
    "select_for_labelling",
    "selection_coco",
    "selection_files",
    "selection_table",
    "selection_tasks",
]
