"""Tests of qa.agreement: published worked examples, independent references (statsmodels,
the krippendorff package, brute-force matching) and tiny literal datasets computed by hand."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qa.agreement import (
    IOU_GUIDELINES_MIN,
    IOU_TARGET,
    MASK_IOU_TARGET,
    NO_OBJECT,
    AgreementWarning,
    annotator_summary,
    cohen_kappa,
    compute_agreement,
    fleiss_kappa,
    fleiss_kappa_per_category,
    kappa_band,
    krippendorff_alpha,
)
from qa.dataset import Dataset
from qa.geometry import mask_iou

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


# --------------------------------------------------------------------------- helpers
def make_ds(rows, *, images=None, cats=((1, "cat"), (2, "dog")), seg=None) -> Dataset:
    """rows: (ann_id, image_id, category_id, annotator, x, y, w, h); NaN boxes allowed."""
    anns = pd.DataFrame(rows, columns=["ann_id", "image_id", "category_id", "annotator",
                                       "x", "y", "w", "h"])
    anns["iscrowd"] = 0
    if seg is not None:
        anns["segmentation"] = seg
    ids = sorted(set(anns["image_id"])) if images is None else images
    imgs = pd.DataFrame({"image_id": ids, "file_name": [f"{i}.jpg" for i in ids],
                         "width": 100, "height": 100})
    return Dataset(images=imgs, categories=pd.DataFrame(cats, columns=["category_id", "name"]),
                   annotations=anns)


# --------------------------------------------------------------------------- constants, bands
def test_thresholds_from_practice():
    assert (IOU_TARGET, IOU_GUIDELINES_MIN, MASK_IOU_TARGET) == (0.85, 0.75, 0.80)


@pytest.mark.parametrize("k, band", [(-0.2, "poor"), (0.0, "slight"), (0.2, "slight"),
                                     (0.21, "fair"), (0.4, "fair"), (0.55, "moderate"),
                                     (0.61, "substantial"), (0.8, "substantial"),
                                     (0.81, "almost perfect"), (1.0, "almost perfect"),
                                     (float("nan"), "undefined")])
def test_kappa_band_landis_koch(k, band):
    assert kappa_band(k) == band


# --------------------------------------------------------------------------- Fleiss
WIKI_FLEISS = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
                        [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
                        [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])


def test_fleiss_published_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210
    assert fleiss_kappa(WIKI_FLEISS) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_per_category_matches_definition():
    n_sub, n = WIKI_FLEISS.shape[0], 14
    p = WIKI_FLEISS.sum(0) / (n_sub * n)
    expected = [1 - sum(x * (n - x) for x in WIKI_FLEISS[:, j]) / (n_sub * n * (n - 1) * p[j]
                                                                  * (1 - p[j]))
                for j in range(5)]
    assert np.allclose(fleiss_kappa_per_category(WIKI_FLEISS), expected)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_matches_statsmodels(seed):
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    rng = np.random.default_rng(seed)
    n_raters, n_cat = int(rng.integers(2, 8)), int(rng.integers(2, 6))
    ratings = rng.integers(0, n_cat, (int(rng.integers(5, 60)), n_raters))
    table = np.stack([(ratings == c).sum(1) for c in range(n_cat)], axis=1)
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss(table, method="fleiss"))


def test_fleiss_rejects_varying_raters():
    with pytest.raises(ValueError, match="krippendorff_alpha"):
        fleiss_kappa([[1, 1], [2, 1]])
    with pytest.raises(ValueError, match="subjects, categories"):
        fleiss_kappa([1, 2, 3])


def test_fleiss_one_category_is_nan_with_warning():
    with pytest.warns(AgreementWarning, match="one category"):
        assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))


# --------------------------------------------------------------------------- Cohen
def test_cohen_wikipedia_example():
    # 50 proposals: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> po .7, pe .5, k .4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_weighted_cohen_by_hand():
    a = [0, 0, 1, 1, 2, 2, 2, 0]
    b = [0, 1, 1, 2, 2, 0, 2, 0]
    obs = np.zeros((3, 3))
    for x, y in zip(a, b):
        obs[x, y] += 1
    exp = np.outer(obs.sum(1), obs.sum(0)) / obs.sum()
    i, j = np.indices((3, 3))
    for weights, w in [("linear", np.abs(i - j)), ("quadratic", (i - j) ** 2)]:
        hand = 1 - (w * obs).sum() / (w * exp).sum()
        assert cohen_kappa(a, b, weights=weights) == pytest.approx(hand)
    assert cohen_kappa(a, b) == pytest.approx(1 - (obs.sum() - np.trace(obs)) /
                                              (obs.sum() - np.trace(exp)))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weights,wt", [(None, None), ("linear", "linear"),
                                        ("quadratic", "quadratic")])
def test_cohen_matches_statsmodels(seed, weights, wt):
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 80)
    b = np.clip(a + rng.integers(-1, 2, 80), 0, 3)
    table = np.zeros((4, 4))
    np.add.at(table, (a, b), 1)
    ref = sm_kappa(table, wt=wt, return_results=False)
    assert cohen_kappa(a, b, weights=weights) == pytest.approx(ref, abs=1e-12)


def test_cohen_drops_missing_and_validates():
    assert cohen_kappa([1, 2, None, 1], [1, 2, 2, np.nan]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa([1, 2], [1])
    with pytest.raises(ValueError, match="weights"):
        cohen_kappa([1, 2], [1, 2], weights="cubic")
    with pytest.warns(AgreementWarning):
        assert math.isnan(cohen_kappa([1, 1], [1, 1]))


# --------------------------------------------------------------------------- Krippendorff
# Krippendorff (2011) "Computing Krippendorff's alpha-reliability", reliability data with
# missing values: 4 coders x 12 units.
KRIPP = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
])


def test_krippendorff_published_example():
    assert krippendorff_alpha(KRIPP, level="nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPP, level="interval") == pytest.approx(0.849, abs=5e-4)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("seed", range(4))
def test_krippendorff_matches_reference_package(level, seed):
    import krippendorff

    rng = np.random.default_rng(seed)
    data = rng.integers(1, 6, (int(rng.integers(2, 7)), int(rng.integers(5, 40)))).astype(float)
    data[rng.random(data.shape) < 0.25] = np.nan
    ours = krippendorff_alpha(data, level=level)
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(ref, abs=1e-9)


def test_krippendorff_validates_and_warns():
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(KRIPP, level="fuzzy")
    with pytest.raises(ValueError, match="2-D"):
        krippendorff_alpha([1, 2, 3])
    with pytest.warns(AgreementWarning):
        assert math.isnan(krippendorff_alpha([[1, np.nan], [np.nan, 2]]))


# --------------------------------------------------------------------------- compute_agreement
TINY = [
    # image 1: a cat box both drew, a box alice calls cat and bob dog, and an extra bob box
    (1, 1, 1, "alice", 0, 0, 10, 10), (2, 1, 1, "alice", 50, 50, 10, 10),
    (3, 1, 1, "bob", 0, 0, 10, 10), (4, 1, 2, "bob", 50, 50, 10, 10),
    (5, 1, 1, "bob", 80, 80, 10, 10),
    # image 2: one dog, bob's box 2 px shorter: IoU 0.8
    (6, 2, 2, "alice", 0, 0, 10, 10), (7, 2, 2, "bob", 0, 0, 10, 8),
]


def test_pairwise_metrics_by_hand():
    res = compute_agreement(make_ds(TINY))
    row = res.pairwise.iloc[0]
    assert (row["annotator_a"], row["annotator_b"]) == ("alice", "bob")
    assert (row["n_boxes_a"], row["n_boxes_b"], row["n_matched"], row["n_label_mismatch"]) == (
        3, 4, 2, 1)
    assert row["precision"] == pytest.approx(2 / 4)
    assert row["recall"] == pytest.approx(2 / 3)
    assert row["f1"] == pytest.approx(4 / 7)
    assert row["mean_iou"] == pytest.approx((1 + 1 + 0.8) / 3)
    assert row["label_mismatch_rate"] == pytest.approx(1 / 3)
    assert row["n_overlap_images"] == 2
    # units = consensus objects: {1,3} cat/cat, {2,4} cat/dog, {5} none/cat, {6,7} dog/dog
    ratings = res.ratings.sort_values(["image_id", "bob"])
    assert len(res.clusters) == 4
    expected = cohen_kappa([1, NO_OBJECT, 1, 2], [1, 1, 2, 2])
    assert row["kappa"] == pytest.approx(expected)
    assert res.kappa_matrix.loc["alice", "bob"] == pytest.approx(expected)
    assert res.alpha == pytest.approx(krippendorff_alpha(ratings[["alice", "bob"]].to_numpy().T))
    # per image: soft F1 = 2 * sum(IoU of same-label matches) / boxes of both
    img = res.per_image.set_index("image_id")
    assert img.loc[1, "disagreement_score"] == pytest.approx(1 - 2 * 1 / 5)
    assert img.loc[2, "disagreement_score"] == pytest.approx(1 - 2 * 0.8 / 2)
    assert img.loc[1, "disagreement"] == "missed" and img.loc[1, "n_label"] == 1
    assert img.loc[2, "disagreement"] == "none"
    assert res.per_image["image_id"].tolist() == [1, 2]  # most disputed first
    # per class: cat boxes 2 (alice) + 2 (bob) ... matched same-label cat pair: 1
    cls = res.per_class.set_index("name")
    assert cls.loc["cat", "n_matched"] == 1 and cls.loc["dog", "n_matched"] == 1
    assert cls.loc["cat", "n_label_mismatch"] == 1 and cls.loc["dog", "n_label_mismatch"] == 1
    assert cls.loc["dog", "mean_iou"] == pytest.approx(0.8)
    # matched IoU distribution holds both kinds of geometric matches
    assert sorted(res.matched_ious["iou"].round(6)) == [0.8, 1.0, 1.0]
    d = res.to_dict()
    json.dumps(d)
    assert d["pairwise"][0]["n_matched"] == 2


def test_confusion_between_two_annotators():
    res = compute_agreement(make_ds(TINY))
    tab = res.confusion("alice", "bob")
    assert tab.loc["cat", "dog"] == 1 and tab.loc["(no object)", "cat"] == 1
    assert int(tab.to_numpy().sum()) == 4
    with pytest.raises(ValueError, match="Unknown annotator"):
        res.confusion("alice", "zed")


def _three_annotators():
    rows, k = [], 0
    rng = np.random.default_rng(0)
    for img in range(1, 21):
        for obj in range(3):
            x, y = 30 * obj, 30 * obj
            cat = 1 + obj % 2
            for name, jit, miss, swap in [("alice", 0.2, 0, 0), ("bob", 2.5, 0, 0),
                                          ("carol", 0.2, 0.3, 0.4)]:
                if rng.random() < miss:
                    continue
                c = (3 - cat) if rng.random() < swap else cat
                k += 1
                rows.append((k, img, c, name, x + rng.normal(0, jit), y + rng.normal(0, jit),
                             20 + rng.normal(0, jit), 20 + rng.normal(0, jit)))
    return make_ds(rows)


def test_three_annotators_scorecard_and_multirater_coefficients():
    res = compute_agreement(_three_annotators())
    assert len(res.pairwise) == 3
    sc = res.scorecard.set_index("annotator")
    assert sc["mean_iou"].idxmin() == "bob"
    assert sc["recall"].idxmin() == "carol"
    assert sc["label_mismatch_rate"].idxmax() == "carol"
    assert sc.loc["carol", "n_extra"] == 0
    assert not math.isnan(res.fleiss) and not math.isnan(res.alpha)
    assert res.n_fleiss_units > 0
    km = res.kappa_matrix
    assert list(km.index) == ["alice", "bob", "carol"] and np.allclose(np.diag(km), 1)
    assert (res.members.groupby("cluster_id")["annotator"].nunique()
            == res.members.groupby("cluster_id").size()).all()


def test_one_annotator_warns_and_gives_nan():
    ds = make_ds([r for r in TINY if r[3] == "alice"])
    with pytest.warns(AgreementWarning, match="at least 2 annotators"):
        res = compute_agreement(ds)
    assert math.isnan(res.alpha) and math.isnan(res.fleiss)
    assert res.pairwise.empty and res.per_image.empty
    assert res.scorecard["n_boxes"].tolist() == [3]
    assert math.isnan(res.scorecard["recall"].iloc[0])


def test_partial_overlap_counts_only_shared_images():
    rows = []
    for img in range(1, 7):  # alice labels 1-4, bob 3-6: overlap {3, 4}
        for name, lo, hi in [("alice", 1, 4), ("bob", 3, 6)]:
            if lo <= img <= hi:
                rows.append((len(rows) + 1, img, 1, name, 10, 10, 20, 20))
    res = compute_agreement(make_ds(rows))
    row = res.pairwise.iloc[0]
    assert (row["n_images_a"], row["n_images_b"], row["n_overlap_images"]) == (4, 4, 2)
    assert (row["n_boxes_a"], row["n_boxes_b"], row["f1"]) == (2, 2, 1.0)
    assert set(res.per_image["image_id"]) == {3, 4}
    # boxes on images only one annotator labelled are missing ratings, not "no object"
    assert res.ratings[["alice", "bob"]].isna().sum().sum() == 4


def test_disjoint_subsets_have_no_overlap():
    rows = [(1, 1, 1, "alice", 0, 0, 5, 5), (2, 2, 1, "bob", 0, 0, 5, 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AgreementWarning)
        res = compute_agreement(make_ds(rows))
    assert res.pairwise["n_overlap_images"].tolist() == [0]
    assert math.isnan(res.pairwise["f1"].iloc[0]) and math.isnan(res.alpha)


def test_coverage_all_counts_empty_images_as_missed():
    rows = [(1, 1, 1, "alice", 0, 0, 5, 5), (2, 1, 1, "bob", 0, 0, 5, 5),
            (3, 2, 1, "alice", 0, 0, 5, 5)]
    part = compute_agreement(make_ds(rows), coverage="annotated").pairwise.iloc[0]
    full = compute_agreement(make_ds(rows), coverage="all").pairwise.iloc[0]
    assert (part["n_boxes_a"], part["recall"]) == (1, 1.0)
    assert (full["n_boxes_a"], full["recall"]) == (2, 0.5)
    with pytest.raises(ValueError, match="coverage"):
        compute_agreement(make_ds(rows), coverage="some")


def test_classification_dataset_uses_image_labels():
    nan = np.nan
    labels = {"alice": [1, 1, 2, 2, 1, 2], "bob": [1, 2, 2, 2, 1, 1], "carol": [1, 1, 2, 1, 1, 2]}
    rows = []
    for name, labs in labels.items():
        for img, c in enumerate(labs, start=1):
            rows.append((len(rows) + 1, img, c, name, nan, nan, nan, nan))
    res = compute_agreement(make_ds(rows))
    assert res.is_classification
    assert res.kappa_matrix.loc["alice", "bob"] == pytest.approx(
        cohen_kappa(labels["alice"], labels["bob"]))
    table = np.array([[sum(labels[a][i] == c for a in labels) for c in (1, 2)] for i in range(6)])
    assert res.fleiss == pytest.approx(fleiss_kappa(table))
    assert res.alpha == pytest.approx(krippendorff_alpha(np.array(list(labels.values()), float)))
    tab = res.confusion("alice", "bob")
    assert tab.loc["cat", "cat"] == 2 and tab.loc["cat", "dog"] == 1
    assert set(res.per_image["disagreement"]) <= {"label", "none"}
    assert res.scorecard.set_index("annotator").loc["alice", "n_compared"] == 6


def test_segmentation_uses_mask_iou():
    tri = [[0, 0, 20, 0, 0, 20]]  # triangle with the same box as the square
    sq = [[0, 0, 20, 0, 20, 20, 0, 20]]
    rows = [(1, 1, 1, "alice", 0, 0, 20, 20), (2, 1, 1, "bob", 0, 0, 20, 20)]
    ds = make_ds(rows, seg=[json.dumps(sq), json.dumps(tri)])
    assert compute_agreement(ds).pairwise["mean_iou"].iloc[0] == pytest.approx(1.0)
    segm = compute_agreement(ds, iou_type="segm", iou_threshold=0.3)
    assert 0.4 < segm.pairwise["mean_iou"].iloc[0] < 0.6
    assert mask_iou([sq], [tri], height=100, width=100)[0, 0] == pytest.approx(
        segm.pairwise["mean_iou"].iloc[0])
    with pytest.raises(ValueError, match="segmentation"):
        compute_agreement(make_ds(rows), iou_type="segm")


def test_compute_agreement_validates():
    with pytest.raises(TypeError, match="qa.Dataset"):
        compute_agreement(pd.DataFrame())
    with pytest.raises(ValueError, match="iou_threshold"):
        compute_agreement(make_ds(TINY), iou_threshold=1.5)
    with pytest.raises(ValueError, match="iou_type"):
        compute_agreement(make_ds(TINY), iou_type="keypoints")


def test_input_is_not_modified():
    ds = make_ds(TINY)
    before = ds.annotations.copy()
    compute_agreement(ds)
    pd.testing.assert_frame_equal(ds.annotations, before)


def _iou_xywh(box, others: pd.DataFrame) -> np.ndarray:
    """IoU of one x, y, w, h box with each row of ``others``."""
    x0 = np.maximum(box["x"], others["x"].to_numpy())
    y0 = np.maximum(box["y"], others["y"].to_numpy())
    x1 = np.minimum(box["x"] + box["w"], (others["x"] + others["w"]).to_numpy())
    y1 = np.minimum(box["y"] + box["h"], (others["y"] + others["h"]).to_numpy())
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (box["w"] * box["h"] + (others["w"] * others["h"]).to_numpy() - inter)


@pytest.mark.skipif(not (SAMPLE / "PLANTED.json").exists(), reason="sample_data not generated")
def test_sample_data_planted_annotators():
    import qa

    res_ds = qa.load(SAMPLE)
    res = compute_agreement(res_ds)
    sc = res.scorecard.set_index("annotator")
    assert sc["mean_iou"].idxmin() == "bob"  # loose, jittered boxes
    assert sc["label_mismatch_rate"].idxmax() == "carol"  # confuses ring and circle
    assert sc["recall"].idxmin() == "carol"  # misses small objects
    assert sc.loc["carol", "top_confusions"].startswith("labels ring as circle ")
    # truthful scorecards (issue 13): each annotator's estimated IoU with the truth and recall
    # match what the generator measured against the true boxes
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())["annotators"]
    for name, prof in planted.items():
        true = prof["measured"]
        assert sc.loc[name, "mean_iou"] == pytest.approx(true["mean_iou_vs_truth"], abs=0.05), name
        assert sc.loc[name, "recall"] == pytest.approx(true["recall_vs_truth"], abs=0.03), name
    # the careful annotators are not sent back to training: on target (IoU >= 0.85)
    assert sc.loc["alice", "mean_iou"] >= IOU_TARGET and sc.loc["carol", "mean_iou"] >= IOU_TARGET
    # carol's Dawid-Skene confusion: ring labelled circle 40 % +- 10 % of her ring boxes
    conf = res.annotator_confusion("carol")
    src, dst, rate = (planted["carol"]["class_confusion"][k] for k in ("true", "labelled", "rate"))
    assert conf.loc[src, dst] == pytest.approx(rate, abs=0.10)
    assert conf.loc["circle", "ring"] < 0.02  # and not the other way round
    assert res.annotator_confusion("alice").loc[src, dst] < 0.02
    assert res.most_confused_annotator() == "carol"
    # the confused boxes are the evidence of an annotator_confusion finding
    f = res.findings()
    habit = f[f["kind"] == "annotator_confusion"]
    assert habit["annotator"].tolist() == ["carol"]
    # the annotators below target, one finding each: bob's boxes, carol's misses; not alice
    below = f[f["kind"].isin(["loose_annotator", "low_recall_annotator"])]
    assert sorted(zip(below["kind"], below["annotator"])) == [
        ("loose_annotator", "bob"), ("low_recall_annotator", "carol")]
    # each shows its worst examples: bob's loosest boxes, and objects carol missed (small ones,
    # as planted: the others drew them, carol drew nothing there)
    loose = below[below["kind"] == "loose_annotator"].iloc[0]
    assert len(loose["ann_ids"]) == 12 and all(200000 <= a < 300000 for a in loose["ann_ids"])
    assert pd.notna(loose["image_id"]) and len(loose["related_image_ids"]) >= 3
    missed = res.annotator_examples["carol"]["missed"]
    anns = res_ds.annotations.set_index("ann_id")
    for image_id, ann_id in missed:
        box = anns.loc[ann_id]
        assert box["annotator"] != "carol" and max(box["w"], box["h"]) < 32
        carol = res_ds.annotations[(res_ds.annotations["image_id"] == image_id)
                                   & (res_ds.annotations["annotator"] == "carol")]
        assert not len(carol) or (_iou_xywh(box, carol) < 0.5).all()
    confused = set(planted["carol"]["confused_ann_ids"])
    flagged = set(habit["ann_ids"].iloc[0])
    assert len(flagged & confused) >= 0.9 * len(confused) and len(flagged - confused) <= 3
    # noise: bob is the loose one and draws outward
    assert sc["box_noise"].idxmax() == "bob" and sc.loc["bob", "box_bias"] > 0.04
    assert sc.loc["bob", "consensus_weight"] < 0.05


# --------------------------------------------------------------------------- figures
def test_figures_are_plotly_and_named():
    import plotly.graph_objects as go

    from qa.viz import agreement as va

    res = compute_agreement(_three_annotators())
    for metric in ("f1", "mean_iou", "kappa"):
        fig = va.pair_heatmap(res, metric)
        assert isinstance(fig, go.Figure) and list(fig.data[0].x) == ["alice", "bob", "carol"]
    with pytest.raises(ValueError, match="metric"):
        va.pair_heatmap(res, "accuracy")
    hist = va.iou_histogram(res)
    assert sorted(s["x0"] for s in hist.layout.shapes) == [IOU_GUIDELINES_MIN, IOU_TARGET]
    assert isinstance(va.class_agreement_bars(res), go.Figure)
    assert isinstance(va.confusion_heatmap(res.confusion("alice", "carol")), go.Figure)
    css = va.scorecard_colours(res.scorecard).set_index(res.scorecard["annotator"])
    assert all(v.startswith("background-color") for v in css["recall"])
    html = va.style_scorecard(res.scorecard).to_html()
    assert "background-color" in html
    assert "background-color" not in va.style_scorecard(res.scorecard, colour=False).to_html()
    bars = va.noise_bars(res)
    assert [list(t.y) for t in bars.data] == [["alice", "bob", "carol"]] * 2
    assert bars.data[0].x[1] == max(bars.data[0].x)  # bob: loosest boxes
    heat = va.annotator_confusion_heatmap(res.annotator_confusion("carol"))
    assert list(heat.data[0].y) == list(heat.data[0].x) == ["cat", "dog"]
    two = compute_agreement(make_ds(TINY))
    assert "not estimated" in va.noise_bars(two).layout.title.text
    assert not va.noise_bars(two).data
    assert "reliability-weighted" in va.scorecard_caption(res)
    assert "uncoloured" in va.scorecard_caption(two)
    assert not va.annotator_confusion_heatmap(two.annotator_confusion("bob")).data


def test_scorecard_colours_follow_thresholds():
    from qa.viz.agreement import BAD, GOOD, WARN, scorecard_colours

    sc = pd.DataFrame({"annotator": ["a", "b", "c"], "mean_iou": [0.9, 0.8, 0.7],
                       "label_mismatch_rate": [0.01, 0.03, 0.2]})
    css = scorecard_colours(sc)
    assert [c.split(": ")[1] for c in css["mean_iou"]] == [GOOD, WARN, BAD]
    assert [c.split(": ")[1] for c in css["label_mismatch_rate"]] == [GOOD, WARN, BAD]
    assert css["annotator"].tolist() == ["", "", ""]


def test_most_disputed_and_highlight_ids():
    res = compute_agreement(make_ds(TINY))
    top = res.most_disputed(5)
    assert top["image_id"].tolist() == [1] and "missed" in top["caption"].iloc[0]
    # image 1: the extra bob box (5) and the cat/dog pair (2, 4) are disputed; 1-3 agree
    assert sorted(res.disputed_ann_ids([1])) == [2, 4, 5]


def test_annotator_summary_counts_what_each_annotator_did():
    ds = make_ds([r for r in TINY])
    summary = annotator_summary(ds).set_index("annotator")
    for name in ds.annotators:
        mine = ds.annotations_of(name)
        assert summary.loc[name, "n_boxes"] == len(mine)
        assert summary.loc[name, "n_images"] == mine["image_id"].nunique()
        assert summary.loc[name, "n_image_labels"] == 0
    with pytest.raises(TypeError, match="needs a qa.Dataset"):
        annotator_summary(None)
