"""Tests of qa.consensus: the reliability-weighted box consensus (STAPLE-style EM of each
annotator's box noise) and Dawid-Skene label consensus, on simulations with known truth, a
naive per-item reference implementation of Dawid & Skene's formulas, and through
compute_agreement."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from qa.agreement import NO_OBJECT, compute_agreement
from qa.consensus import (
    DS_PSEUDO_COUNT,
    MIN_PIXEL_VAR,
    dawid_skene,
    estimate_box_noise,
    expected_iou,
    weighted_centre,
)
from qa.dataset import Dataset
from qa.geometry import Geometry

# five annotators, side noise as a share of the box size, most careful first
NOISE_SHARES = (0.01, 0.03, 0.06, 0.10, 0.15)


def _truth(n: int, rng) -> np.ndarray:
    w, h = rng.uniform(20, 200, n), rng.uniform(20, 200, n)
    x, y = rng.uniform(0, 400, n), rng.uniform(0, 400, n)
    return np.c_[x, y, x + w, y + h]


def _draw(truth, shares, rng, *, bias=None, pixel_sd=None):
    """Every annotator draws every object: cluster ids, annotator codes, xyxy boxes."""
    n = len(truth)
    size = np.c_[truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1]][:, [0, 1, 0, 1]]
    out = []
    for j, share in enumerate(shares):
        sd = share * size if pixel_sd is None or pixel_sd[j] is None else np.full_like(
            size, pixel_sd[j])
        shift = 0.0 if bias is None else np.array([-1, -1, 1, 1]) * bias[j] * size
        out.append(truth + shift + rng.normal(0, 1, (n, 4)) * sd)
    k = len(shares)
    return (np.tile(np.arange(n), k), np.repeat(np.arange(k), n), np.concatenate(out))


def _iou_with(truth, boxes) -> np.ndarray:
    idx = np.arange(len(truth))
    return Geometry(boxes).box_iou(Geometry(truth), idx, idx)


def test_simulation_noise_ranks_annotators_and_weighted_consensus_beats_the_mean():
    rng = np.random.default_rng(13)
    truth = _truth(400, rng)
    cl, code, xyxy = _draw(truth, NOISE_SHARES, rng)
    noise = estimate_box_noise(cl, code, xyxy, len(NOISE_SHARES))
    assert noise.converged
    est = noise.sd_share(float(np.median(truth[:, 2:] - truth[:, :2])))
    # ranks them correctly, and each estimate is close to the truth
    assert list(np.argsort(est)) == list(range(len(NOISE_SHARES)))
    assert est == pytest.approx(NOISE_SHARES, rel=0.25)
    centre, var, _ = weighted_centre(cl, code, xyxy, noise, len(truth))
    mean = pd.DataFrame(xyxy).groupby(cl).mean().to_numpy()
    weighted_iou, mean_iou = _iou_with(truth, centre).mean(), _iou_with(truth, mean).mean()
    assert weighted_iou > mean_iou + 0.02
    assert weighted_iou > 0.95
    # the consensus variance is honest: the side errors have about that variance
    z = (centre - truth) / np.sqrt(var)
    assert np.std(z) == pytest.approx(1.0, abs=0.15)


def test_bias_and_pixel_noise_are_told_apart_from_relative_noise():
    rng = np.random.default_rng(5)
    truth = _truth(600, rng)
    # 0: 1 px clicks; 1: 2 % of the box; 2: 4 % and 10 % outward; 3: 1 px clicks
    cl, code, xyxy = _draw(truth, (0, 0.02, 0.04, 0), rng, bias=(0, 0, 0.10, 0),
                           pixel_sd=(1.0, None, None, 1.0))
    noise = estimate_box_noise(cl, code, xyxy, 4)
    assert noise.bias[2] == pytest.approx(0.10, abs=0.01)
    assert np.abs(noise.bias[[0, 1, 3]]).max() < 0.01
    assert noise.pixel_var[[0, 3]] == pytest.approx([1.0, 1.0], abs=0.35)
    assert noise.relative_var[[0, 3]].max() < 0.01 ** 2
    assert math.sqrt(noise.relative_var[1]) == pytest.approx(0.02, abs=0.006)


def test_objects_one_annotator_drew_are_ignored_and_inputs_checked():
    xyxy = np.array([[0, 0, 10, 10], [0, 0, 11, 10], [50, 50, 60, 60.0]])
    noise = estimate_box_noise([0, 0, 1], [0, 1, 0], xyxy, 3)
    assert noise.n_objects.tolist() == [1, 1, 0]
    assert noise.pixel_var[2] == 1.0  # shared nothing: the neutral start
    with pytest.raises(ValueError, match="same boxes"):
        estimate_box_noise([0, 1], [0], xyxy, 2)
    with pytest.raises(ValueError, match="annotator positions"):
        estimate_box_noise([0, 0, 1], [0, 5, 1], xyxy, 2)


def test_expected_iou_is_plain_iou_with_an_exact_reference():
    box = np.array([[0, 0, 10, 10], [5, 5, 25, 30.0]])
    ref = np.array([[1, 0, 10, 12], [5, 6, 24, 30.0]])
    zero = np.zeros((2, 4))
    plain = _iou_with(ref, box)
    est = expected_iou(box, ref, zero, np.full((2, 4), 4.0), np.zeros(2))
    assert est == pytest.approx(plain)


def test_expected_iou_does_not_charge_a_careful_box_with_a_loose_reference():
    # a careful box (sd 0.5 px) scored against one loose reference (sd 10 px) that is 8 px
    # off on every side: the plain IoU is poor, the estimate is the careful box's own level
    box = np.array([[100, 100, 200, 200.0]])
    ref = box + np.array([-8, -8, 8, 8.0])
    est = expected_iou(box, ref, np.full((1, 4), 100.0), np.full((1, 4), 0.25), np.zeros(1))
    plain = _iou_with(ref, box)[0]
    # E|side error| = 0.5 * sqrt(2/pi) ~ 0.4 px of a 100 px box on each side
    assert plain < 0.75 and est[0] == pytest.approx(1 - 4 * 0.4 / 100, abs=0.01)


# --------------------------------------------------------------------------- Dawid-Skene
def _ds_reference(ratings: np.ndarray, n_iter: int):
    """Dawid & Skene (1979) written item by item from the paper's formulas (eq. 2.3-2.5),
    with the same start (majority vote) and pseudo-count as qa.consensus."""
    labels = np.unique(ratings[~np.isnan(ratings)])
    n, k, m = ratings.shape[0], ratings.shape[1], len(labels)
    idx = {v: i for i, v in enumerate(labels)}
    T = np.zeros((n, m))
    for i in range(n):
        for j in range(k):
            if not np.isnan(ratings[i, j]):
                T[i, idx[ratings[i, j]]] += 1
        T[i] /= T[i].sum()
    for _ in range(n_iter):
        p = (T.sum(0) + DS_PSEUDO_COUNT) / (n + DS_PSEUDO_COUNT * m)
        pi = np.full((k, m, m), DS_PSEUDO_COUNT)
        for i in range(n):
            for j in range(k):
                if not np.isnan(ratings[i, j]):
                    pi[j, :, idx[ratings[i, j]]] += T[i]
        pi /= pi.sum(axis=2, keepdims=True)
        for i in range(n):
            lik = p.copy()
            for j in range(k):
                if not np.isnan(ratings[i, j]):
                    lik *= pi[j, :, idx[ratings[i, j]]]
            T[i] = lik / lik.sum()
    return T, pi


def _simulate_labels(rng, n=300, accuracies=(0.95, 0.7, 0.6, 0.55)):
    truth = rng.integers(0, 3, n)
    ratings = np.empty((n, len(accuracies)))
    for j, acc in enumerate(accuracies):
        wrong = rng.random(n) > acc
        ratings[:, j] = np.where(wrong, (truth + rng.integers(1, 3, n)) % 3, truth)
    ratings[rng.random(ratings.shape) < 0.1] = np.nan  # some items not rated by someone
    return truth, ratings


def test_dawid_skene_matches_the_item_by_item_reference():
    rng = np.random.default_rng(1)
    _, ratings = _simulate_labels(rng, n=60)
    ours = dawid_skene(ratings, max_iter=7, tol=0.0)
    T, pi = _ds_reference(ratings, 7)
    assert ours.n_iter == 7
    assert np.allclose(ours.posterior, T) and np.allclose(ours.confusion, pi)


def test_dawid_skene_recovers_confusions_and_beats_majority_vote():
    rng = np.random.default_rng(2)
    truth, ratings = _simulate_labels(rng, n=600)
    fit = dawid_skene(ratings)
    assert fit.converged
    diag = np.array([np.diag(c).mean() for c in fit.confusion])
    assert diag == pytest.approx([0.95, 0.7, 0.6, 0.55], abs=0.06)
    filled = np.nan_to_num(ratings, nan=-1).astype(int)
    votes = np.stack([(filled == c).sum(1) for c in range(3)], 1)
    majority = votes.argmax(1)
    assert (fit.label == truth).mean() > (majority == truth).mean() + 0.03


def test_dawid_skene_validates():
    with pytest.raises(ValueError, match="2-D"):
        dawid_skene([1, 2, 3])


# --------------------------------------------------------------------------- compute_agreement
def _dataset(truth, shares, rng, *, drop=None, labels=None) -> Dataset:
    cl, code, xyxy = _draw(truth, shares, rng)
    names = [f"ann{j}" for j in range(len(shares))]
    keep = np.ones(len(cl), bool) if drop is None else ~drop(cl, code)
    cat = np.ones(len(cl), np.int64) if labels is None else labels(cl, code)
    anns = pd.DataFrame({"ann_id": np.arange(len(cl)), "image_id": cl // 4,
                         "category_id": cat, "annotator": [names[c] for c in code],
                         "x": xyxy[:, 0], "y": xyxy[:, 1], "w": xyxy[:, 2] - xyxy[:, 0],
                         "h": xyxy[:, 3] - xyxy[:, 1], "iscrowd": 0})[keep]
    ids = np.unique(cl // 4)
    images = pd.DataFrame({"image_id": ids, "file_name": [f"{i}.jpg" for i in ids],
                           "width": 1000, "height": 1000})
    cats = pd.DataFrame({"category_id": [1, 2], "name": ["cat", "dog"]})
    return Dataset(images=images, categories=cats, annotations=anns.reset_index(drop=True))


def _spread(truth):
    """Objects on a grid (4 per image, far apart) so that clusters are the true objects."""
    t = truth.copy()
    wh = np.clip(t[:, 2:] - t[:, :2], 20, 150)
    slot = np.arange(len(t)) % 4
    t[:, 0], t[:, 1] = 250 * (slot % 2) + 20, 250 * (slot // 2) + 20
    t[:, 2:] = t[:, :2] + wh
    return t


def test_compute_agreement_scorecard_ranks_noise_and_consensus_boxes_are_weighted():
    rng = np.random.default_rng(7)
    truth = _spread(_truth(200, rng))
    ds = _dataset(truth, NOISE_SHARES, rng)
    res = compute_agreement(ds)
    assert res.consensus_defined
    sc = res.scorecard.set_index("annotator")
    assert list(sc["box_noise"].rank().astype(int)) == [1, 2, 3, 4, 5]
    assert list(sc["mean_iou"].rank(ascending=False).astype(int)) == [1, 2, 3, 4, 5]
    assert sc["consensus_weight"].sum() == pytest.approx(1.0)
    # scorecard IoU estimates the IoU with the truth
    for j, name in enumerate(sc.index):
        mine = ds.annotations[ds.annotations["annotator"] == name]
        xy = mine[["x", "y", "w", "h"]].to_numpy(float).copy()
        xy[:, 2:] += xy[:, :2]
        true_iou = _iou_with(truth[mine["ann_id"].to_numpy() % len(truth)], xy).mean()
        assert sc.loc[name, "mean_iou"] == pytest.approx(true_iou, abs=0.03), name
    # the consensus boxes in clusters are the weighted ones, better than the plain mean
    cl = res.clusters.sort_values("cluster_id")
    m = res.members.merge(ds.annotations[["ann_id"]], on="ann_id")
    obj = (m.groupby("cluster_id")["ann_id"].first() % len(truth)).reindex(cl["cluster_id"])
    cons = cl[["x", "y", "w", "h"]].to_numpy(float).copy()
    cons[:, 2:] += cons[:, :2]
    t = truth[obj.to_numpy()]
    a = ds.annotations.set_index("ann_id").loc[m["ann_id"], ["x", "y", "w", "h"]].to_numpy()
    a = a.astype(float).copy()
    a[:, 2:] += a[:, :2]
    mean = pd.DataFrame(a).groupby(m["cluster_id"].to_numpy()).mean().reindex(
        cl["cluster_id"]).to_numpy()
    assert _iou_with(t, cons).mean() > _iou_with(t, mean).mean() + 0.02


def test_compute_agreement_label_confusion_from_dawid_skene():
    rng = np.random.default_rng(8)
    truth = _spread(_truth(240, rng))
    true_cat = 1 + (np.arange(len(truth)) % 2)
    swap = rng.random(len(truth)) < 0.3

    def labels(cl, code):  # ann2 calls 30 % of the dogs cats; the others are right
        c = true_cat[cl].copy()
        c[(code == 2) & (true_cat[cl] == 2) & swap[cl]] = 1
        return c

    res = compute_agreement(_dataset(truth, (0.02, 0.02, 0.02), rng, labels=labels,
                                     drop=lambda cl, code: (code == 1) & (cl % 10 == 0)))
    conf = res.annotator_confusion("ann2")
    assert conf.loc["dog", "cat"] == pytest.approx((swap & (true_cat == 2)).sum()
                                                   / (true_cat == 2).sum(), abs=0.03)
    sc = res.scorecard.set_index("annotator")
    assert sc.loc["ann2", "top_confusions"].startswith("labels dog as cat ")
    assert sc.loc["ann0", "top_confusions"] == "" and sc.loc["ann0", "label_error_rate"] < 0.01
    lc = res.label_confusion
    assert set(lc["given_category_id"]) == {NO_OBJECT, 1, 2}  # ann1 missed some
    with pytest.raises(ValueError, match="Unknown annotator"):
        res.annotator_confusion("zed")
    full = res.annotator_confusion("ann2", given_box=False)
    assert "(no object)" in full.columns and np.allclose(full.sum(axis=1), 1.0)
    metrics = res.metrics()
    assert metrics["max_annotator_confusion_rate"] == pytest.approx(conf.loc["dog", "cat"])
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["consensus_defined"] and len(doc["label_confusion"]) == len(lc)
    f = res.findings()
    habit = f[f["kind"] == "annotator_confusion"].iloc[0]
    assert habit["annotator"] == "ann2" and habit["category_id"] == 2
    assert len(habit["ann_ids"]) == (swap & (true_cat == 2)).sum()
    assert "labels dog as cat" in habit["message"] and pd.isna(habit["image_id"])


def test_two_annotators_consensus_is_undefined():
    rng = np.random.default_rng(9)
    truth = _spread(_truth(40, rng))
    res = compute_agreement(_dataset(truth, (0.01, 0.10), rng))
    assert not res.consensus_defined
    sc = res.scorecard
    assert sc["box_noise"].isna().all() and res.label_confusion.empty
    assert res.annotator_confusion("ann0").empty
    # each against the other: the same IoU for both, nobody singled out
    assert sc["mean_iou"].iloc[0] == pytest.approx(sc["mean_iou"].iloc[1])
    assert res.metrics()["max_annotator_box_noise"] is None
    assert res.metrics()["max_annotator_confusion_rate"] is None
    assert "consensus_defined" in res.to_dict() and not res.to_dict()["consensus_defined"]
    kinds = set(res.findings()["kind"])  # nobody is named below target either
    assert not kinds & {"loose_annotator", "low_recall_annotator", "annotator_confusion"}


def test_pixel_var_floor_is_the_rounding_variance():
    assert MIN_PIXEL_VAR == pytest.approx(1 / 12)


def test_noise_from_every_nth_object_matches_all_objects():
    rng = np.random.default_rng(21)
    truth = _truth(3000, rng)
    cl, code, xyxy = _draw(truth, NOISE_SHARES[:3], rng)
    full = estimate_box_noise(cl, code, xyxy, 3, max_objects=None)
    part = estimate_box_noise(cl, code, xyxy, 3, max_objects=1000)
    assert part.n_objects.tolist() == [1000, 1000, 1000]
    assert part.sd_share(100.0) == pytest.approx(full.sd_share(100.0), rel=0.1)


def test_classification_labels_get_dawid_skene_habits():
    rng = np.random.default_rng(4)
    n = 200
    truth = rng.integers(1, 3, n)
    rows = []
    for name in ("ann0", "ann1", "ann2"):
        lab = truth.copy()
        if name == "ann1":  # calls 35 % of the dogs cats
            lab[(truth == 2) & (rng.random(n) < 0.35)] = 1
        for img, c in enumerate(lab, start=1):
            rows.append((len(rows) + 1, img, int(c), name, np.nan, np.nan, np.nan, np.nan))
    anns = pd.DataFrame(rows, columns=["ann_id", "image_id", "category_id", "annotator",
                                       "x", "y", "w", "h"]).assign(iscrowd=0)
    images = pd.DataFrame({"image_id": np.arange(1, n + 1), "file_name": "a.jpg",
                           "width": 10, "height": 10})
    cats = pd.DataFrame({"category_id": [1, 2], "name": ["cat", "dog"]})
    res = compute_agreement(Dataset(images=images, categories=cats, annotations=anns))
    assert res.is_classification
    ann1 = anns[anns["annotator"] == "ann1"].reset_index(drop=True)
    planted = ((ann1["category_id"] == 1) & (truth == 2)).sum() / (truth == 2).sum()
    assert res.annotator_confusion("ann1").loc["dog", "cat"] == pytest.approx(planted, abs=0.03)
    sc = res.scorecard.set_index("annotator")
    assert sc.loc["ann1", "top_confusions"].startswith("labels dog as cat ")
    assert res.most_confused_annotator() == "ann1"


def test_noise_is_not_stated_from_a_handful_of_shared_objects():
    from qa.agreement import MIN_NOISE_OBJECTS

    rng = np.random.default_rng(3)
    truth = _spread(_truth(MIN_NOISE_OBJECTS - 1, rng))
    res = compute_agreement(_dataset(truth, (0.01, 0.05, 0.1), rng))
    assert res.scorecard["box_noise"].isna().all()
    assert res.metrics()["max_annotator_box_noise"] is None
    assert res.scorecard["mean_iou"].notna().all()  # still scored, with the start weights
