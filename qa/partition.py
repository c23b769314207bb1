"""Proposed train/val/test splits: no leakage by construction, the class mix of the whole in
every split, and, when a split exists, as few moves as possible.

:func:`propose_split` returns a :class:`SplitProposal` (a table image -> split, nothing is
moved; :func:`export_split` writes it as a CSV outside the dataset):

1. **Groups.** Near-duplicates and exact copies (:mod:`qa.duplicates`' clusters) form one
   group and always land in one split, so no pair of copies crosses splits.
2. **Iterative stratification** (Sechidis, Tsoumakas & Vlahavas 2011, "On the stratification
   of multi-label data", Algorithm 1), over groups: the desired count of every label in every
   split is its total times the split's fraction; repeatedly take the label with the fewest
   unassigned groups left (ties at random), and give each group holding it to the split that
   still wants that label most (ties: the split that wants the most groups; then at random),
   subtracting the group's labels from that split's wants. Groups without labels go to the
   split that wants the most images. A group's labels are its instance counts per class, so
   the split's class *mix* (what :mod:`qa.balance` reports per split) follows the whole; with
   one instance per class and image this is the paper's algorithm exactly.
3. **Balance repair.** While a class's share of a split's instances is more than
   ``tolerance`` (2 points) from its share of the whole, the one group whose move to another
   split helps most is moved (greedy, best first), until every share is within the tolerance
   or no move helps.

``keep_existing=True`` keeps the images' current splits and moves only what must move: the
copies of a near-duplicate group that sit in several splits join the split holding most of the
group (train on a tie), images without a split are stratified into the splits (counting what
is already there), and the balance repair moves groups only while shares are out of tolerance.

The proposal carries the before/after of the checks it is for: cross-split duplicate pairs,
the largest class-share deviation, and the chi-square test of the split x class table
(:func:`qa.balance.compute_class_balance`).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from qa.dataset import ANNOTATOR, CATEGORY_ID, FILE_NAME, IMAGE_ID, NAME, SPLIT, SPLITS, Dataset
from qa.results import findings_frame, frame_records, to_jsonable

log = logging.getLogger(__name__)

DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
# A split's share of a class may differ from the whole's by this much (2 percentage points,
# the bar issue 23 sets) before the repair moves images.
SHARE_TOLERANCE = 0.02
# Split sizes may stray this share of their target (at least 2 images) at no cost in the
# repair; beyond it each image costs (1/n)^2, against (points off)^2 / 1e4 for a class share:
# moving one more image of 300 (1e-5) is worth taking a share from 4 to 2 points off (4e-4).
SIZE_SLACK = 0.05
SIZE_WEIGHT = 1.0
# Iterative stratification is run with this many seeds (its tie-breaks are random) and the
# run with the smallest largest class-share deviation is kept.
STRATIFY_TRIES = 5
# The repair aims this far inside the tolerance, so that shares end within it.
REPAIR_AIM = 0.9
# The repair stops after moving this share of the images (a safety net, never reached on the
# datasets tested).
MAX_MOVE_SHARE = 0.25
ASSIGNMENT_COLUMNS = [IMAGE_ID, FILE_NAME, "old_split", SPLIT, "moved", "group", "reason"]


# ============================================================================ the algorithm
def iterative_stratification(labels, fractions, *, sizes=None, assigned=None, seed: int = 0
                             ) -> np.ndarray:
    """Sechidis et al. (2011) iterative stratification: the subset (0..len(fractions)-1) of
    each example.

    ``labels``: (n examples x K labels) counts >= 0 (0/1 for plain multi-label data).
    ``fractions``: the subsets' shares (summing to 1). ``sizes``: each example's weight in
    the subset sizes (default 1; a group of duplicates counts its images). ``assigned``: a
    subset per example already placed (-1 = free); placed examples count towards the wants.
    Ties are broken with ``np.random.default_rng(seed)``."""
    y = np.asarray(labels, np.float64)
    if y.ndim != 2 or (y < 0).any() or not np.isfinite(y).all():
        raise ValueError(f"labels must be an (n x K) array of counts >= 0, got shape {y.shape}")
    r = np.asarray(list(fractions), np.float64)
    if r.ndim != 1 or len(r) < 1 or (r <= 0).any() or abs(r.sum() - 1) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, got {list(r)}")
    n = len(y)
    size = np.ones(n) if sizes is None else np.asarray(sizes, np.float64)
    if size.shape != (n,):
        raise ValueError(f"sizes must have one value per example ({n}), got {size.shape}")
    out = np.full(n, -1, np.int64) if assigned is None else np.asarray(assigned, np.int64).copy()
    if out.shape != (n,) or (out >= len(r)).any():
        raise ValueError("assigned must hold one subset number (or -1) per example")
    rng = np.random.default_rng(seed)
    want = r[:, None] * y.sum(0)[None, :]  # (subsets x labels)
    want_n = r * size.sum()
    for j in range(len(r)):
        placed = out == j
        want[j] -= y[placed].sum(0)
        want_n[j] -= size[placed].sum()
    free = out < 0
    has = y > 0
    while True:
        left = has[free].sum(0)
        if not left.any():
            break
        candidates = np.flatnonzero(left == left[left > 0].min())
        lab = int(rng.choice(candidates))
        examples = np.flatnonzero(free & has[:, lab])
        for e in rng.permutation(examples):
            best = np.flatnonzero(want[:, lab] == want[:, lab].max())
            if len(best) > 1:
                best = best[want_n[best] == want_n[best].max()]
            j = int(best[0] if len(best) == 1 else rng.choice(best))
            out[e] = j
            want[j] -= y[e]
            want_n[j] -= size[e]
        free[examples] = False
    for e in rng.permutation(np.flatnonzero(free)):  # examples without labels
        best = np.flatnonzero(want_n == want_n.max())
        j = int(best[0] if len(best) == 1 else rng.choice(best))
        out[e] = j
        want_n[j] -= size[e]
    return out


def _excess(split_counts: np.ndarray, whole_share: np.ndarray, tol: float) -> np.ndarray:
    """Per split: sum over classes of (|share - whole share| - tol)+^2 (0 for an empty split)."""
    tot = split_counts.sum(-1, keepdims=True)
    share = np.divide(split_counts, tot, out=np.zeros_like(split_counts), where=tot > 0)
    dev = np.maximum(np.abs(share - whole_share) - tol, 0.0)
    return np.where(tot[..., 0] > 0, (dev ** 2).sum(-1), 0.0)


def _size_cost(n, target, total):
    """(How far a split's size strays beyond its slack, as a share of all images)^2: sizes
    within SIZE_SLACK of the target (at least one group) cost nothing."""
    slack = max(SIZE_SLACK * target, 2.0)
    return (np.maximum(np.abs(n - target) - slack, 0.0) / total) ** 2


def _repair(y: np.ndarray, size: np.ndarray, assign: np.ndarray, target_n: np.ndarray,
            tol: float, cost: np.ndarray, max_moves: int) -> tuple[np.ndarray, int]:
    """Greedy moves of whole groups between splits while some class share is more than
    ``tol`` from the whole; ``cost``: a tie-breaker per group (0 for groups that had no split,
    so those move first). Returns (assignment, moves made)."""
    n_split = len(target_n)
    whole = y.sum(0) / max(y.sum(), 1)
    counts = np.stack([y[assign == j].sum(0) for j in range(n_split)])
    n_now = np.array([size[assign == j].sum() for j in range(n_split)], np.float64)
    total_n = max(size.sum(), 1)
    moves = 0
    while moves < max_moves:
        ex = _excess(counts, whole, tol)
        if ex.sum() <= 0:
            break
        best = (0.0, -1, -1)
        for s in range(n_split):
            gs = np.flatnonzero(assign == s)
            if not len(gs):
                continue
            new_s = _excess(counts[s][None] - y[gs], whole, tol)
            size_s = _size_cost(n_now[s] - size[gs], target_n[s], total_n) - \
                _size_cost(n_now[s], target_n[s], total_n)
            for t in range(n_split):
                if t == s:
                    continue
                new_t = _excess(counts[t][None] + y[gs], whole, tol)
                size_t = _size_cost(n_now[t] + size[gs], target_n[t], total_n) - \
                    _size_cost(n_now[t], target_n[t], total_n)
                delta = (new_s + new_t - ex[s] - ex[t]) + SIZE_WEIGHT * (size_s + size_t) \
                    + 1e-12 * cost[gs]
                k = int(np.argmin(delta))
                if delta[k] < best[0] - 1e-15:
                    best = (float(delta[k]), int(gs[k]), t)
        if best[1] < 0:
            break  # no move helps any more
        g, t = best[1], best[2]
        s = int(assign[g])
        counts[s] -= y[g]
        counts[t] += y[g]
        n_now[s] -= size[g]
        n_now[t] += size[g]
        assign[g] = t
        moves += 1
    return assign, moves


# ============================================================================ the result
@dataclass(frozen=True, eq=False)
class SplitProposal:
    """A proposed split of a dataset's images (nothing is moved).

    * ``assignment``: one row per image (:data:`ASSIGNMENT_COLUMNS`): old and proposed split,
      ``moved`` (the split changed; an image without a split that gets one is not "moved"),
      the near-duplicate ``group`` (cluster id, NA for a single image) and the ``reason``.
    * ``shares``: per split and class the share of the split's instances before and after,
      and the whole dataset's share (the target).
    * ``sizes``: per split the images wanted (fraction x total), before and after.
    * ``before`` / ``after``: the checks: ``n_cross_split_pairs`` (near-duplicate pairs in
      different splits; lower is better, 0 is the goal), ``max_share_deviation`` (the largest
      |split share - whole share| of any class, in [0, 1]; lower is better),
      ``split_p_value`` / ``split_cramers_v`` (chi-square test of the split x class table: a
      high p and a low V say the splits have the same mix), ``n_without_split``.
    """

    ANALYSIS: ClassVar[str] = "split"

    fractions: dict
    keep_existing: bool
    annotator: str | None
    tolerance: float
    assignment: pd.DataFrame
    shares: pd.DataFrame
    sizes: pd.DataFrame
    before: dict
    after: dict
    n_moved: int
    n_groups: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def moved(self) -> pd.DataFrame:
        return self.assignment[self.assignment["moved"]]

    def split_csv(self) -> str:
        """The proposal as CSV text: image_id, file_name, split, old_split, moved, reason."""
        cols = [IMAGE_ID, FILE_NAME, SPLIT, "old_split", "moved", "reason"]
        return self.assignment[cols].to_csv(index=False)

    def checks(self) -> pd.DataFrame:
        """The before/after table of the checks, one row per check."""
        rows = [("Cross-split duplicate pairs", "n_cross_split_pairs"),
                ("Largest class-share deviation (points)", "max_share_deviation"),
                ("Split x class chi-square p", "split_p_value"),
                ("Split x class Cramér's V", "split_cramers_v"),
                ("Images without a split", "n_without_split")]
        scale = {"max_share_deviation": 100.0}
        out = []
        for title, k in rows:
            b, a = self.before.get(k), self.after.get(k)
            f = scale.get(k, 1.0)
            out.append({"check": title, "before": None if b is None else b * f,
                        "after": None if a is None else a * f})
        return pd.DataFrame(out)

    def metrics(self) -> dict[str, float | int | None]:
        return {"n_moved": self.n_moved, "n_groups": self.n_groups,
                **{f"before_{k}": v for k, v in self.before.items()},
                **{f"after_{k}": v for k, v in self.after.items()}}

    def findings(self) -> pd.DataFrame:
        """None: a proposal is a plan, not an issue of the dataset."""
        return findings_frame([], analysis=self.ANALYSIS, page="overview")

    def to_dict(self) -> dict[str, Any]:
        return {"analysis": self.ANALYSIS, "fractions": self.fractions,
                "keep_existing": self.keep_existing, "annotator": self.annotator,
                "tolerance": self.tolerance, "n_moved": self.n_moved,
                "n_groups": self.n_groups,
                "before": {k: to_jsonable(v) for k, v in self.before.items()},
                "after": {k: to_jsonable(v) for k, v in self.after.items()},
                "sizes": frame_records(self.sizes), "shares": frame_records(self.shares),
                "assignment": frame_records(self.assignment), "notes": list(self.notes)}


# ============================================================================ the proposal
def parse_fractions(text: str) -> dict[str, float]:
    """``".8,.1,.1"`` -> {"train": .8, "val": .1, "test": .1}; two values are train/test;
    ``"train=.7,val=.15,test=.15"`` names them."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            out = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        else:
            vals = [float(p) for p in parts]
            names = {1: ("train",), 2: ("train", "test"), 3: SPLITS}.get(len(vals))
            if names is None:
                raise ValueError
            out = dict(zip(names, vals))
    except ValueError:
        raise ValueError(f"fractions {text!r}: give 2 or 3 numbers (train,val,test) such as "
                         "'.8,.1,.1', or name them: 'train=.7,val=.15,test=.15'.") from None
    return out


def _check_fractions(fractions) -> dict[str, float]:
    if not isinstance(fractions, dict) or not fractions:
        raise TypeError(f"fractions must be a dict {{split: share}}, got {fractions!r}")
    out = {str(k): float(v) for k, v in fractions.items()}
    if any(not np.isfinite(v) or v <= 0 for v in out.values()):
        raise ValueError(f"every split's fraction must be > 0, got {out}")
    total = sum(out.values())
    if abs(total - 1) > 1e-3:
        raise ValueError(f"the fractions must sum to 1, got {total:g} ({out})")
    return {k: v / total for k, v in out.items()}


def propose_split(dataset: Dataset, fractions: dict | None = None, *, duplicates=None,
                  keep_existing: bool = False, annotator: str | None = None,
                  tolerance: float = SHARE_TOLERANCE, seed: int = 0) -> SplitProposal:
    """Propose a split of ``dataset``'s images (see the module docstring).

    ``fractions``: {split: share} (default 80/10/10 train/val/test; with ``keep_existing``
    the current splits' own shares). ``duplicates``: a :class:`qa.duplicates.DuplicatesResult`
    whose clusters are kept together (without it only single images are placed, and the
    proposal cannot promise no leakage: a note says so). ``annotator``: whose labels give the
    class mix (default the one with most annotations, as the balance page). ``tolerance``: the
    largest class-share deviation left alone. Returns a :class:`SplitProposal`."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"propose_split() needs a qa.Dataset, got {type(dataset).__name__}")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance is a share in [0, 1), got {tolerance!r}")
    if annotator is not None and annotator not in dataset.annotators:
        raise ValueError(f"annotator {annotator!r} is not in this dataset; choose one of "
                         f"{list(dataset.annotators)}.")
    old = dataset.images[SPLIT].astype(object).where(dataset.images[SPLIT].notna(), None)
    if fractions is None:
        if keep_existing and old.notna().any():
            counts = old.dropna().astype(str).value_counts()
            fractions = {s: counts[s] / counts.sum() for s in dataset.splits}
        else:
            fractions = DEFAULT_FRACTIONS
    fr = _check_fractions(fractions)
    if keep_existing:
        extra = sorted(set(old.dropna().astype(str)) - set(fr))
        if extra:
            raise ValueError(f"the dataset has split(s) {extra} that the fractions {fr} leave "
                             "out; give them a fraction, or do not keep the existing split.")
    return _compute_split(dataset, fr, duplicates, bool(keep_existing), annotator,
                          float(tolerance), int(seed))


def _compute_split(ds: Dataset, fr: dict, dups, keep: bool, annotator, tol: float,
                   seed: int) -> SplitProposal:
    from qa.balance import default_annotator

    notes: list[str] = []
    names = list(fr)
    r = np.array([fr[s] for s in names])
    ids = ds.images[IMAGE_ID].to_numpy(np.int64)
    n = len(ids)
    old = ds.images[SPLIT].astype(object).where(ds.images[SPLIT].notna(), None).to_numpy()
    annotator = annotator or default_annotator(ds)
    cats = ds.categories[CATEGORY_ID].to_numpy(np.int64)
    y_img = np.zeros((n, len(cats)))
    if annotator is not None:
        a = ds.annotations[ds.annotations[ANNOTATOR].astype(str) == annotator]
        ii = pd.Index(ids).get_indexer(a[IMAGE_ID])
        ci = pd.Index(cats).get_indexer(a[CATEGORY_ID])
        ok = (ii >= 0) & (ci >= 0)
        np.add.at(y_img, (ii[ok], ci[ok]), 1.0)
    else:
        notes.append("No annotations: the split balances image counts only.")

    # ---- groups of near-duplicates ---------------------------------------------------------
    cluster = np.full(n, -1, np.int64)
    pairs = None
    if dups is not None:
        cl = getattr(dups, "clusters", None)
        pairs = getattr(dups, "pairs", None)
        if cl is None or pairs is None:
            raise TypeError("duplicates must be a qa.duplicates.DuplicatesResult, got "
                            f"{type(dups).__name__}")
        m = dict(zip(cl[IMAGE_ID].astype(int), cl["cluster_id"].astype(int)))
        cluster = np.array([m.get(int(i), -1) for i in ids], np.int64)
    else:
        notes.append("No duplicate search was given: copies may land in different splits. "
                     "Pass the duplicates result (the CLI and page do) to keep them together.")
    key = np.where(cluster >= 0, cluster, -(np.arange(n) + 1))  # singletons: own negative key
    _, gi = np.unique(key, return_inverse=True)
    n_groups = int(gi.max()) + 1 if n else 0
    y = np.zeros((n_groups, len(cats)))
    np.add.at(y, gi, y_img)
    size = np.bincount(gi, minlength=n_groups).astype(np.float64)

    # ---- starting assignment ---------------------------------------------------------------
    assign = np.full(n_groups, -1, np.int64)
    why_img = np.array(["stratified"] * n, dtype=object)
    had_split = np.zeros(n_groups, bool)
    if keep:
        pos = {s: k for k, s in enumerate(names)}
        known = pd.DataFrame({"g": gi, "split": old, "id": ids}).dropna(subset=["split"])
        counts = known.groupby(["g", "split"]).size().rename("n").reset_index()
        counts["order"] = counts["split"].map(pos)
        # each group's split: the one holding most of its images, the first of names on a tie
        best = counts.sort_values(["g", "n", "order"], ascending=[True, False, True]
                                  ).drop_duplicates("g").set_index("g")["split"]
        assign[best.index.to_numpy()] = best.map(pos).to_numpy()
        had_split[best.index.to_numpy()] = True
        leaking = counts.groupby("g").size()
        leaking = set(leaking[leaking > 1].index)
        anchor = known[known["split"].to_numpy() == best.reindex(known["g"]).to_numpy()
                       ].drop_duplicates("g").set_index("g")["id"]
        for m in np.flatnonzero(np.isin(gi, list(leaking))):
            target = best[gi[m]]
            if old[m] is not None and old[m] != target:
                why_img[m] = (f"moved {old[m]} -> {target}: a near-duplicate of "
                              f"#{int(anchor[gi[m]])} ({target}); copies stay in one split")
    n_fixed = int((assign >= 0).sum())
    # the stratification's random tie-breaks matter on small splits (on sample_data's 30-image
    # val and test the largest deviation ranges 1-7 points over seeds): keep the best of a few
    tries = [iterative_stratification(y, r, sizes=size, assigned=assign, seed=seed + k)
             for k in range(STRATIFY_TRIES)]
    devs = [_max_dev(y, a, len(names)) for a in tries]
    assign, dev_strat = tries[int(np.argmin(devs))], float(min(devs))
    # sizes to keep near: the fractions, or with keep_existing the split as it stands now
    # (after the leaking copies moved and the images without a split joined)
    target_n = (np.bincount(assign, weights=size, minlength=len(names)) if keep
                else r * size.sum())
    cost = had_split.astype(np.float64)
    assign_before_repair = assign.copy()
    assign, n_rep = _repair(y, size, assign, target_n, tol * REPAIR_AIM, cost,
                            max(10, int(MAX_MOVE_SHARE * n)))
    if n_rep:
        start = ("Iterative stratification left" if n_fixed < n_groups else
                 "After the leaking copies moved, the existing split had")
        notes.append(f"{start} the largest class-share deviation at {dev_strat * 100:.1f} "
                     f"points; {n_rep} group move(s) brought it to "
                     f"{_max_dev(y, assign, len(names)) * 100:.1f}.")
    if _max_dev(y, assign, len(names)) > tol + 1e-12:
        notes.append(f"Some class share stays more than {tol * 100:.0f} points from the whole: "
                     "the splits are too small, or a class has too few instances, to do "
                     "better.")
    if keep and n_fixed == n_groups and not n_rep:
        notes.append("Every image keeps its split except the copies that leaked.")

    # ---- per image ------------------------------------------------------------------------
    new = np.asarray(names, dtype=object)[assign[gi]] if n else np.array([], object)
    repaired = (assign != assign_before_repair)[gi]
    mates = _mates(ids, gi, size)
    for m in range(n):
        if repaired[m]:
            why_img[m] = (f"moved {old[m]} -> {new[m]} to even the class mix"
                          if old[m] is not None and old[m] != new[m] else
                          f"placed in {new[m]} to even the class mix")
        elif keep and old[m] is not None and old[m] == new[m]:
            why_img[m] = f"kept in {new[m]}"
        elif keep and old[m] is None:
            why_img[m] = f"had no split: stratified into {new[m]}"
        elif not keep:
            why_img[m] = f"stratified into {new[m]}" + (
                f" with its near-duplicate(s) {mates[m]}" if m in mates else "")
    moved = np.array([old[m] is not None and old[m] != new[m] for m in range(n)], bool)
    assignment = pd.DataFrame({
        IMAGE_ID: ids, FILE_NAME: ds.images[FILE_NAME].astype(str).to_numpy(),
        "old_split": old, SPLIT: new, "moved": moved,
        "group": pd.Series(cluster).astype("Int64").where(cluster >= 0).to_numpy(),
        "reason": why_img}, columns=ASSIGNMENT_COLUMNS)

    before = _checks(ds, old, pairs, annotator, names)
    after = _checks(ds, new, pairs, annotator, names)
    shares = _shares(y_img, cats, ds, old, new, names)
    sizes = pd.DataFrame({SPLIT: names, "fraction": r, "target": np.round(r * size.sum(), 1),
                          "before": [int(sum(1 for s in old if s == nm)) for nm in names],
                          "after": [int((new == nm).sum()) for nm in names]})
    return SplitProposal(fractions=fr, keep_existing=keep, annotator=annotator, tolerance=tol,
                         assignment=assignment, shares=shares, sizes=sizes, before=before,
                         after=after, n_moved=int(moved.sum()), n_groups=n_groups,
                         notes=tuple(notes))


def _mates(ids: np.ndarray, gi: np.ndarray, size: np.ndarray) -> dict[int, str]:
    """For each image in a group of several: its group-mates as '#12, #40'."""
    out = {}
    multi = np.flatnonzero(size[gi] > 1)
    for _, rows in pd.Series(multi).groupby(gi[multi]):
        for m in rows:
            out[int(m)] = ", ".join(f"#{int(ids[k])}" for k in rows if k != m)
    return out


def _max_dev(y: np.ndarray, assign: np.ndarray, n_split: int) -> float:
    whole = y.sum(0) / max(y.sum(), 1)
    worst = 0.0
    for j in range(n_split):
        c = y[assign == j].sum(0)
        if c.sum() > 0:
            worst = max(worst, float(np.abs(c / c.sum() - whole).max()))
    return worst


def _shares(y_img, cats, ds: Dataset, old, new, names) -> pd.DataFrame:
    """Per split and class: the whole's share, the split's share and instances before/after."""
    whole = y_img.sum(0) / max(y_img.sum(), 1)
    cname = ds.category_names
    frames = []
    for s in names:
        row = {}
        for label, col in (("before", old), ("after", new)):
            c = y_img[np.array([v == s for v in col], bool)].sum(0)
            row[label] = c / c.sum() if c.sum() > 0 else np.full(len(cats), np.nan)
            row[f"instances_{label}"] = c.astype(np.int64)
        frames.append(pd.DataFrame({SPLIT: s, CATEGORY_ID: cats,
                                    NAME: [cname.get(int(c), str(c)) for c in cats],
                                    "whole": whole, **row}))
    return pd.concat(frames, ignore_index=True)


def _checks(ds: Dataset, split_col, pairs, annotator, names) -> dict:
    """The checks a split is judged by, for one split column."""
    from qa.balance import compute_class_balance

    col = pd.Series(split_col, dtype=object)
    n_none = int(col.isna().sum())
    out: dict = {"n_without_split": n_none}
    split_of = dict(zip(ds.images[IMAGE_ID].astype(int), col))
    if pairs is not None and len(pairs):
        p = pairs[pairs["method"] != "same file"]
        sa = p["image_id_a"].map(split_of)
        sb = p["image_id_b"].map(split_of)
        out["n_cross_split_pairs"] = int((sa.notna() & sb.notna() & (sa != sb)).sum())
    else:
        out["n_cross_split_pairs"] = 0 if pairs is not None else None
    if n_none == len(col):
        out.update(max_share_deviation=None, split_p_value=None, split_cramers_v=None)
        return out
    cat = pd.Categorical(col, categories=list(dict.fromkeys(
        list(names) + sorted({str(v) for v in col.dropna()}))))
    images = ds.images.assign(**{SPLIT: cat})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bal = compute_class_balance(dataclasses.replace(ds, images=images), annotator=annotator
                                    if annotator in ds.annotators else None)
    ps = bal.per_split
    whole = bal.per_class.set_index(CATEGORY_ID)["share"]
    ps = ps[ps[SPLIT].astype(str) != "none"]
    tot = ps.groupby(SPLIT, observed=True)["instances"].transform("sum")
    dev = (ps["share"] - ps[CATEGORY_ID].map(whole)).abs()[tot > 0]
    out["max_share_deviation"] = float(dev.max()) if len(dev) else None
    nanf = lambda v: None if v is None or not np.isfinite(v) else float(v)  # noqa: E731
    out["split_p_value"] = nanf(bal.split_p_value)
    out["split_cramers_v"] = nanf(bal.split_cramers_v)
    return out


def export_split(dataset: Dataset, proposal: SplitProposal, path: Path | str) -> Path:
    """Write the proposal as CSV (image_id, file_name, split, old_split, moved, reason) to
    ``path``, atomically and outside the dataset; returns the path."""
    from qa.io.export import _check_outside, write_atomic

    path = Path(path)
    _check_outside(dataset, path.parent)
    return write_atomic(path, proposal.split_csv().encode("utf-8"))


__all__ = [
    "DEFAULT_FRACTIONS",
    "SHARE_TOLERANCE",
    "SplitProposal",
    "export_split",
    "iterative_stratification",
    "parse_fractions",
    "propose_split",
]
