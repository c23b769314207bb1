"""Tests of qa.geometry: IoU against pycocotools, matching against hand examples and a
brute-force optimum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.geometry import DEFAULT_IOU_THRESHOLD, box_iou, match_boxes


def test_default_threshold_is_the_cvat_coco_one():
    assert DEFAULT_IOU_THRESHOLD == 0.5


# --------------------------------------------------------------------------- match_boxes
def test_box_iou_hand():
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    assert np.allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_box_iou_matches_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(3)
    a = np.c_[rng.uniform(0, 100, (30, 2)), rng.uniform(1, 60, (30, 2))]
    b = np.c_[rng.uniform(0, 100, (20, 2)), rng.uniform(1, 60, (20, 2))]
    ref = mask_utils.iou(a.tolist(), b.tolist(), [0] * len(b))
    np.testing.assert_allclose(box_iou(a, b), ref, atol=1e-12)


def test_match_threshold_and_one_to_one():
    a = [[0, 0, 10, 10], [100, 100, 10, 10]]
    b = [[0, 0, 10, 10], [1, 0, 10, 10], [104, 100, 10, 10]]  # last: IoU 60/140 < 0.5
    res = match_boxes(a, b)
    assert res.matches[["idx_a", "idx_b"]].values.tolist() == [[0, 0]]
    assert res.unmatched_a.tolist() == [1] and res.unmatched_b.tolist() == [1, 2]
    assert match_boxes(a, b, iou_threshold=0.4).matches["idx_a"].tolist() == [0, 1]


def test_match_prefers_total_iou_over_greedy():
    # greedy would give a0-b0 (0.82) and leave a1 unmatched; optimal is a0-b1 + a1-b0
    a = [[0, 0, 10, 10], [3, 0, 10, 10]]
    b = [[2, 0, 10, 10], [-2, 0, 10, 10]]
    res = match_boxes(a, b)
    assert sorted(map(tuple, res.matches[["idx_a", "idx_b"]].values.tolist())) == [(0, 1), (1, 0)]


def test_match_label_mismatch_reported():
    a = [[0, 0, 10, 10], [50, 50, 10, 10]]
    b = [[0, 0, 10, 10], [51, 50, 10, 10], [0, 1, 10, 10]]
    res = match_boxes(a, b, labels_a=["cat", "dog"], labels_b=["dog", "dog", "cat"])
    # same label first: a0-b2 (cat, IoU .82) and a1-b1 (dog) even though a0-b0 has IoU 1
    assert sorted(map(tuple, res.matches[["idx_a", "idx_b"]].values.tolist())) == [(0, 2), (1, 1)]
    assert res.label_mismatches.empty and res.unmatched_b.tolist() == [0]
    res = match_boxes(a[:1], b[:1], labels_a=["cat"], labels_b=["dog"])
    assert res.matches.empty
    assert res.label_mismatches[["idx_a", "idx_b"]].values.tolist() == [[0, 0]]
    assert res.label_mismatches["iou"].tolist() == [1.0]


def test_match_empty_and_invalid():
    res = match_boxes(np.zeros((0, 4)), [[0, 0, 1, 1]])
    assert res.matches.empty and res.unmatched_b.tolist() == [0] and res.unmatched_a.size == 0
    res = match_boxes([], [])
    assert res.matches.empty and res.to_dict()["unmatched_a"] == []
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        match_boxes([[0, 0, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="iou_threshold"):
        match_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], iou_threshold=0)
    with pytest.raises(ValueError, match="both labels"):
        match_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], labels_a=[1])


def _brute_best(iou, allowed, thr):
    """Max total IoU of a one-to-one matching over allowed pairs with IoU >= thr."""
    n_a, n_b = iou.shape
    best = 0.0

    def rec(i, used, total):
        nonlocal best
        if i == n_a:
            best = max(best, total)
            return
        rec(i + 1, used, total)
        for j in range(n_b):
            if j not in used and allowed[i, j] and iou[i, j] >= thr:
                rec(i + 1, used | {j}, total + iou[i, j])

    rec(0, frozenset(), 0.0)
    return best


box_st = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 20), st.integers(1, 20))


@settings(max_examples=150, deadline=None)
@given(st.lists(box_st, max_size=5), st.lists(box_st, max_size=5),
       st.lists(st.integers(0, 1), min_size=5, max_size=5),
       st.lists(st.integers(0, 1), min_size=5, max_size=5),
       st.sampled_from([0.1, 0.3, 0.5]))
def test_match_is_optimal_against_brute_force(a, b, la, lb, thr):
    a, b = np.array(a, float).reshape(-1, 4), np.array(b, float).reshape(-1, 4)
    la, lb = np.array(la[:len(a)]), np.array(lb[:len(b)])
    iou = box_iou(a, b)
    # unlabelled: optimal total IoU, one-to-one, all >= threshold
    res = match_boxes(a, b, iou_threshold=thr)
    m = res.matches
    assert m["idx_a"].is_unique and m["idx_b"].is_unique and (m["iou"] >= thr).all()
    assert m["iou"].sum() == pytest.approx(_brute_best(iou, np.ones_like(iou, bool), thr))
    assert len(m) + len(res.unmatched_a) == len(a) and len(m) + len(res.unmatched_b) == len(b)
    # labelled: stage 1 optimal on same-label pairs, stage 2 optimal on what is left
    res = match_boxes(a, b, iou_threshold=thr, labels_a=la, labels_b=lb)
    same = la[:, None] == lb[None, :]
    assert res.matches["iou"].sum() == pytest.approx(_brute_best(iou, same, thr))
    left = np.ones_like(same)
    left[res.matches["idx_a"].to_numpy(), :] = False
    left[:, res.matches["idx_b"].to_numpy()] = False
    assert res.label_mismatches["iou"].sum() == pytest.approx(_brute_best(iou, left & ~same, thr))
    x = res.label_mismatches
    assert (la[x["idx_a"].to_numpy()] != lb[x["idx_b"].to_numpy()]).all()
