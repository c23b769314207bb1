"""qa.balance against small hand-computed datasets (every number worked out in the comments)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from qa.balance import (
    ALL_ANNOTATORS,
    COCO_MEDIUM_MAX_AREA,
    COCO_SMALL_MAX_AREA,
    NO_SPLIT,
    BalanceResult,
    available_splits,
    compute_class_balance,
    default_annotator,
)
from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    ISCROWD,
    NAME,
    SPLIT,
    WIDTH,
    Dataset,
    H,
    W,
    X,
    Y,
)

NAN = float("nan")


def make_ds(images, categories, anns) -> Dataset:
    """images: (id, w, h, split); categories: (id, name); anns: (ann_id, image_id, cat, x, y, w, h
    [, annotator])."""
    im = pd.DataFrame(images, columns=[IMAGE_ID, WIDTH, HEIGHT, SPLIT])
    im[FILE_NAME] = [f"{i}.jpg" for i in im[IMAGE_ID]]
    cats = pd.DataFrame(categories, columns=[CATEGORY_ID, NAME])
    rows = [tuple(a) + ("a",) * (8 - len(a)) for a in anns]
    an = pd.DataFrame(rows, columns=[ANN_ID, IMAGE_ID, CATEGORY_ID, X, Y, W, H, ANNOTATOR])
    an[ISCROWD] = 0
    return Dataset(images=im, categories=cats, annotations=an, name="tiny")


# 6 images; cat 6, dog 2, bird 1, fish 0 instances.
IMAGES = [(1, 100, 100, "train"), (2, 100, 100, "train"), (3, 200, 100, "val"),
          (4, 100, 100, "val"), (5, 100, 100, "test"), (6, 100, 200, None)]
CATS = [(1, "cat"), (2, "dog"), (3, "bird"), (4, "fish")]
ANNS = [
    (1, 1, 1, 10, 10, 32, 32),   # area 1024 = 32²: medium (boundary); centre (.26, .26)
    (2, 1, 1, 0, 0, 31, 33),     # area 1023: small; x = 0 touches the border
    (3, 1, 2, 50, 50, 96, 96),   # area 9216 = 96²: large; x2 = 146 > 100 crosses
    (4, 2, 1, 20, 20, 5, 40),    # side 5 < 8: tiny; area 200 small; aspect 0.125
    (5, 2, 1, 60, 60, 39, 39),   # x2 = 99 within 1 px of 100: touches; area 1521 medium
    (6, 3, 2, 100, 40, 95, 30),  # on 200x100, interior; area 2850 medium
    (7, 3, 1, 10, 10, 20, 20),   # small
    (8, 5, 3, 40, 40, 20, 20),   # small
    (9, 5, 1, 30, 30, 10, 10),   # small, side 10: not tiny at 8, tiny at 11
]


@pytest.fixture
def ds():
    return make_ds(IMAGES, CATS, ANNS)


@pytest.fixture
def res(ds) -> BalanceResult:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the full case has no undefined statistic
        return compute_class_balance(ds)


def by_name(df, col):
    return dict(zip(df[NAME].astype(str), df[col]))


# ------------------------------------------------------------------------------- per class
def test_per_class_counts_shares_and_images(res):
    pc = res.per_class
    assert list(pc[NAME]) == ["cat", "dog", "bird", "fish"]
    assert by_name(pc, "instances") == {"cat": 6, "dog": 2, "bird": 1, "fish": 0}
    assert by_name(pc, "images") == {"cat": 4, "dog": 2, "bird": 1, "fish": 0}
    assert pc["share"].tolist() == pytest.approx([6 / 9, 2 / 9, 1 / 9, 0])
    assert res.n_annotations == 9 and res.n_images == 6 and res.n_classes == 4


def test_imbalance_ratio_ignores_zero_classes_and_names_them(res):
    assert res.imbalance_ratio == pytest.approx(6.0)  # cat 6 / bird 1 (fish 0 left out)
    assert res.absent_classes == ("fish",)
    assert any("fish" in n for n in res.notes)


def test_rare_classes_rule(res, ds):
    # default 10%: only fish (0/6); bird has 1/6 = 16.7%
    assert res.rare_classes == ("fish",)
    assert by_name(res.per_class, "is_rare") == {"cat": False, "dog": False, "bird": False,
                                                 "fish": True}
    c = res.check("rare_classes")
    assert c.passed is False and c.failing == ("fish",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r20 = compute_class_balance(ds, rare_fraction=0.2)
    assert r20.rare_classes == ("bird", "fish")
    assert r20.check("rare_classes").image_ids == (5,)  # images containing bird
    assert r20.check("rare_classes").ann_ids == (8,)
    assert r20.check("absent_classes").failing == ("fish",)


def test_normalized_entropy(res):
    p = np.array([6, 2, 1]) / 9
    assert res.normalized_entropy == pytest.approx(-(p * np.log(p)).sum() / math.log(4))


def test_normalized_entropy_of_one_present_class_is_plus_zero():
    one = make_ds(IMAGES[:2], CATS[:2], [(1, 1, 1, 1, 1, 5, 5), (2, 2, 1, 1, 1, 5, 5)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = compute_class_balance(one).normalized_entropy
    assert e == 0.0 and math.copysign(1.0, e) == 1.0  # shown as 0.000, never -0.000


# ------------------------------------------------------------------------------- splits
def test_per_split_counts_and_shares(res):
    ps = res.per_split.set_index([SPLIT, NAME])
    assert res.splits == ("train", "val", "test", NO_SPLIT)
    assert ps.loc[("train", "cat"), "instances"] == 4
    assert ps.loc[("train", "dog"), "instances"] == 1
    assert ps.loc[("train", "cat"), "images"] == 2
    assert ps.loc[("train", "cat"), "share"] == pytest.approx(4 / 5)
    assert ps.loc[("val", "dog"), "instances"] == 1
    assert ps.loc[("test", "bird"), "instances"] == 1
    assert ps.loc[(NO_SPLIT, "cat"), "instances"] == 0
    assert np.isnan(ps.loc[(NO_SPLIT, "cat"), "share"])  # no instances in that split


def test_split_chi_square_matches_scipy(res):
    table = np.array([[4, 1, 0], [1, 1, 0], [1, 0, 1]])  # train/val/test x cat/dog/bird
    ref = stats.chi2_contingency(table, correction=False)
    assert res.split_chi2 == pytest.approx(ref.statistic)
    assert res.split_p_value == pytest.approx(ref.pvalue)
    assert res.split_dof == ref.dof == 4
    assert res.split_cramers_v == pytest.approx(math.sqrt(ref.statistic / (9 * 2)))
    assert res.check("split_class_mix").passed in (True, False)


def test_split_chi_square_undefined_gives_nan_and_warning(ds):
    with pytest.warns(UserWarning, match="chi-square is undefined"):
        r = compute_class_balance(ds, splits=["train"])
    assert math.isnan(r.split_chi2) and math.isnan(r.split_p_value)
    assert r.check("split_class_mix").passed is None
    assert r.n_images == 2 and r.splits == ("train",)


def test_empty_images_per_split(res):
    eb = res.empty_by_split.set_index(SPLIT)
    assert eb["empty_images"].to_dict() == {"train": 0, "val": 1, "test": 0, NO_SPLIT: 1, "all": 2}
    assert eb["empty_share"].to_dict() == pytest.approx(
        {"train": 0, "val": 0.5, "test": 0, NO_SPLIT: 1.0, "all": 2 / 6})
    c = res.check("empty_images")
    assert c.passed is False and c.failing == (NO_SPLIT,) and c.image_ids == (6,)


def test_objects_per_image(res):
    n = dict(zip(res.per_image[IMAGE_ID], res.per_image["n_objects"]))
    assert n == {1: 3, 2: 2, 3: 2, 4: 0, 5: 2, 6: 0}
    assert res.per_image["is_empty"].sum() == 2


# ------------------------------------------------------------------------------- boxes
def test_area_buckets_at_coco_boundaries():
    sides = [(31, 33), (32, 32), (95, 97), (96, 96)]  # 1023, 1024, 9215, 9216
    anns = [(i + 1, 1, 1, 0, 0, w, h) for i, (w, h) in enumerate(sides)]
    r = compute_class_balance(make_ds([(1, 500, 500, "train")], [(1, "a")], anns))
    assert r.boxes["area"].tolist() == [1023, 1024, 9215, 9216]
    assert r.boxes["area"].tolist()[1] == COCO_SMALL_MAX_AREA
    assert r.boxes["area"].tolist()[3] == COCO_MEDIUM_MAX_AREA
    assert r.boxes["area_bucket"].astype(str).tolist() == ["small", "medium", "medium", "large"]


def test_box_stats_per_class(res):
    bs = res.box_stats.set_index(NAME)
    assert bs.loc["cat", ["small", "medium", "large"]].tolist() == [4, 2, 0]  # 2,4,7,9 | 1,5
    assert bs.loc["dog", ["small", "medium", "large"]].tolist() == [0, 1, 1]
    assert bs["boxes"].tolist() == [6, 2, 1, 0]
    assert bs.loc["cat", "tiny"] == 1 and bs.loc["cat", "border"] == 2
    assert bs.loc["dog", "crossing"] == 1


def test_relative_size_and_aspect(res):
    b = res.boxes.set_index(ANN_ID)
    assert b.loc[1, "rel_size"] == pytest.approx(math.sqrt(1024 / 10_000))
    assert b.loc[6, "rel_size"] == pytest.approx(math.sqrt(2850 / 20_000))
    assert b.loc[4, "aspect"] == pytest.approx(5 / 40)


def test_tiny_boxes(res, ds):
    assert res.tiny_boxes[ANN_ID].tolist() == [4]
    assert {ANN_ID, IMAGE_ID, "is_tiny"} <= set(res.boxes.columns)
    c = res.check("tiny_boxes")
    assert c.passed is False and c.ann_ids == (4,) and c.image_ids == (2,)
    r = compute_class_balance(ds, min_box_side=11)
    assert r.tiny_boxes[ANN_ID].tolist() == [4, 9]


def test_border_boxes_touching_and_crossing(res):
    b = res.boxes.set_index(ANN_ID)
    assert b.index[b["touches_border"]].tolist() == [2, 5]
    assert b.index[b["crosses_border"]].tolist() == [3]
    assert res.border_boxes[ANN_ID].tolist() == [2, 3, 5]
    c = res.check("boxes_crossing_border")
    assert c.passed is False and c.ann_ids == (3,) and c.image_ids == (1,)


def test_touching_is_within_one_pixel():
    anns = [(1, 1, 1, 1, 10, 10, 10),     # x = 1: touches
            (2, 1, 1, 1.5, 10, 10, 10),   # x = 1.5: interior
            (3, 1, 1, 80, 10, 19, 10),    # x2 = 99: touches
            (4, 1, 1, 80, 10, 18.5, 10),  # x2 = 98.5: interior
            (5, 1, 1, 10, -0.6, 10, 10),  # y < -0.5: crosses
            (6, 1, 1, 90, 20, 10.01, 10)]  # x2 = 100.01: rounding, touches (not crossing)
    r = compute_class_balance(make_ds([(1, 100, 100, "train")], [(1, "a")], anns))
    assert r.boxes["touches_border"].tolist() == [True, False, True, False, False, True]
    assert r.boxes["crosses_border"].tolist() == [False] * 4 + [True, False]


def test_center_histogram(res):
    assert res.center_hist.shape == (20, 20)
    assert res.center_hist.sum() == 9  # every box has a known image size
    assert res.center_hist[5, 5] >= 1  # ann 1: centre (.26, .26) -> bin 5
    assert res.center_hist[19, 19] == 1  # ann 3: centre (.98, .98) -> last bin
    assert res.center_hist_per_class.shape == (4, 20, 20)
    assert res.center_hist_per_class.sum(axis=(1, 2)).tolist() == [6, 2, 1, 0]
    np.testing.assert_array_equal(res.center_hist_per_class.sum(axis=0), res.center_hist)


# ------------------------------------------------------------------------------- images
def test_image_sizes(res):
    s = res.image_sizes
    assert list(zip(s[WIDTH], s[HEIGHT], s["images"])) == [(100, 100, 4), (100, 200, 1),
                                                          (200, 100, 1)]
    assert s["aspect"].tolist() == pytest.approx([1.0, 0.5, 2.0])


def test_cooccurrence(res):
    co = res.cooccurrence
    assert list(co.index) == ["cat", "dog", "bird", "fish"]
    assert np.diag(co.to_numpy()).tolist() == [4, 2, 1, 0]  # images with the class
    assert co.loc["cat", "dog"] == co.loc["dog", "cat"] == 2  # images 1, 3
    assert co.loc["cat", "bird"] == 1  # image 5
    assert co.loc["dog", "bird"] == 0


# ------------------------------------------------------------------------------- annotators
def three_annotators() -> Dataset:
    """a and b label cat 40, dog 40, bird 20; c labels cat 20, dog 20, bird 60 (overuses bird)."""
    mix = {"a": (40, 40, 20), "b": (40, 40, 20), "c": (20, 20, 60)}
    anns, k = [], 0
    for who, counts in mix.items():
        for cat, n in zip((1, 2, 3), counts):
            for j in range(n):
                k += 1
                anns.append((k, 1 + j % 10, cat, NAN, NAN, NAN, NAN, who))
    images = [(i, 64, 64, "train") for i in range(1, 11)]
    return make_ds(images, [(1, "cat"), (2, "dog"), (3, "bird")], anns)


def test_annotator_comparison_flags_overuse():
    r = compute_class_balance(three_annotators())
    ac = r.annotator_comparison.set_index([ANNOTATOR, NAME])
    assert ac.loc[("c", "bird"), "share"] == pytest.approx(0.6)
    assert ac.loc[("c", "bird"), "reference_share"] == pytest.approx(0.2)  # median a, b, c
    assert ac.loc[("c", "bird"), "ratio_to_reference"] == pytest.approx(3.0)
    assert ac.loc[("c", "bird"), "residual"] > 3
    assert ac.loc[("c", "bird"), "is_deviant"]
    flagged = set(ac.index[ac["is_deviant"]])
    assert ("c", "bird") in flagged
    assert not any(a in ("a", "b") for a, _ in flagged)
    c = r.check("annotator_class_mix")
    assert c.passed is False and "c: bird" in c.failing
    # the adjusted residual is the textbook one: (O - E) / sqrt(E (1 - row/N) (1 - col/N))
    o, e = 60, 300 * 100 / 300 * 100 / 300
    assert ac.loc[("c", "bird"), "residual"] == pytest.approx(
        (o - e) / math.sqrt(e * (1 - 100 / 300) * (1 - 100 / 300)))


def test_default_annotator_and_pooling():
    ds = three_annotators()
    assert default_annotator(ds) == "a"  # tie of 100 each: first in ds.annotators
    r = compute_class_balance(ds)
    assert r.annotator == "a" and r.n_annotations == 100
    assert by_name(r.per_class, "instances") == {"cat": 40, "dog": 40, "bird": 20}
    assert any("counting 'a'" in n for n in r.notes)
    pooled = compute_class_balance(ds, annotator=ALL_ANNOTATORS)
    assert pooled.n_annotations == 300
    assert by_name(pooled.per_class, "instances") == {"cat": 100, "dog": 100, "bird": 100}
    assert compute_class_balance(ds, annotator="c").per_class["instances"].tolist() == [20, 20, 60]


def test_single_annotator_has_no_comparison(res):
    assert res.annotator_comparison.empty
    assert res.check("annotator_class_mix").passed is None


# ------------------------------------------------------------------------------- edge cases
def test_classification_dataset_has_no_box_sections():
    r = compute_class_balance(three_annotators(), annotator="a")
    assert r.boxes is None and r.box_stats is None and r.center_hist is None
    assert not r.has_boxes and r.tiny_boxes.empty and r.border_boxes.empty
    assert r.check("tiny_boxes").passed is None
    assert r.check("boxes_crossing_border").passed is None
    assert any("No boxes" in n for n in r.notes)
    assert r.imbalance_ratio == pytest.approx(2.0)
    assert r.cooccurrence.loc["cat", "dog"] == 10  # every image has both
    json.dumps(r.to_dict())


def test_one_class_warns_not_raises():
    ds = make_ds([(1, 100, 100, "train"), (2, 100, 100, "val")], [(1, "cat")],
                 [(1, 1, 1, 0, 0, 10, 10), (2, 2, 1, 5, 5, 20, 20)])
    with pytest.warns(UserWarning, match="entropy is undefined"):
        r = compute_class_balance(ds)
    assert math.isnan(r.normalized_entropy)
    assert math.isnan(r.split_chi2)
    assert r.imbalance_ratio == 1.0
    assert r.rare_classes == () and r.check("rare_classes").passed is True
    assert any("one class" in n.lower() for n in r.notes)
    assert r.cooccurrence.to_numpy().tolist() == [[2]]


def test_no_annotations_warns_not_raises():
    ds = make_ds([(1, 100, 100, "train"), (2, 50, 50, "test")], [(1, "cat"), (2, "dog")], [])
    with pytest.warns(UserWarning, match="Imbalance ratio is undefined"):
        r = compute_class_balance(ds)
    assert math.isnan(r.imbalance_ratio) and math.isnan(r.normalized_entropy)
    assert r.annotator is None and r.n_annotations == 0
    assert r.per_class["instances"].tolist() == [0, 0]
    assert r.boxes is None and r.check("rare_classes").passed is None
    assert r.empty_by_split.set_index(SPLIT)["empty_share"]["all"] == 1.0
    assert any("No annotations" in n for n in r.notes)
    json.dumps(r.to_dict())


def test_nothing_at_all():
    ds = make_ds([], [], [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = compute_class_balance(ds)
    assert r.n_images == 0 and r.n_classes == 0 and r.per_class.empty
    assert r.check("empty_images").passed is None
    json.dumps(r.to_dict())


def test_unknown_category_is_counted_not_dropped():
    ds = make_ds([(1, 100, 100, "train")], [(1, "cat")],
                 [(1, 1, 1, 0, 0, 10, 10), (2, 1, 7, 0, 0, 10, 10)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = compute_class_balance(ds)
    assert by_name(r.per_class, "instances") == {"cat": 1, "unknown_7": 1}


def test_input_errors(ds):
    with pytest.raises(TypeError, match="needs a qa.Dataset"):
        compute_class_balance(ds.images)
    with pytest.raises(ValueError, match="annotator 'zed' is not in this dataset"):
        compute_class_balance(ds, annotator="zed")
    with pytest.raises(ValueError, match="min_box_side"):
        compute_class_balance(ds, min_box_side=-1)
    with pytest.raises(ValueError, match="unknown split"):
        compute_class_balance(ds, splits=["holdout"])
    with pytest.raises(ValueError, match="rare_fraction"):
        compute_class_balance(ds, rare_fraction=2)


def test_available_splits(ds):
    assert available_splits(ds) == ["train", "val", "test", NO_SPLIT]


def test_result_is_frozen_and_serialisable(res, ds):
    with pytest.raises(AttributeError):
        res.n_images = 3
    d = json.loads(json.dumps(res.to_dict()))
    assert d["imbalance_ratio"] == pytest.approx(6.0)
    assert {c["name"] for c in d["checks"]} >= {"rare_classes", "tiny_boxes", "empty_images",
                                                "split_class_mix", "boxes_crossing_border",
                                                "annotator_class_mix", "absent_classes"}
    assert d["objects_per_image"] == {"0": 2, "2": 3, "3": 1}
    # the input is not changed
    assert len(ds.annotations) == 9 and "area_bucket" not in ds.annotations


def test_figures_build_for_every_case(res):
    from qa.viz import balance as vb

    cases = [res, compute_class_balance(three_annotators())]
    for r in cases:
        for fig in (vb.class_bar(r, sort="name", log_y=True), vb.split_bars(r, normalize=True),
                    vb.annotator_bars(r), vb.box_area_hist(r), vb.box_area_hist(r, classes=["cat"]),
                    vb.aspect_hist(r, classes=["cat", "dog"]), vb.rel_size_hist(r),
                    vb.area_bucket_bars(r), vb.center_heatmap(r),
                    vb.center_heatmap(r, classes=["cat"]),
                    vb.cooccurrence_heatmap(r, normalize=True), vb.objects_per_image_hist(r),
                    vb.resolution_scatter(r), vb.image_aspect_hist(r)):
            assert fig.to_dict()["data"] is not None
    with pytest.raises(ValueError, match="sort must be"):
        vb.class_bar(res, sort="size")


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.mark.skipif(not (SAMPLE / "PLANTED.json").exists(), reason="sample_data not generated")
def test_sample_data_planted_issues_are_flagged():
    import qa

    planted = json.loads((SAMPLE / "PLANTED.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = compute_class_balance(qa.load(SAMPLE))
    rare = planted["rare_class"]["name"]
    assert rare in r.rare_classes
    assert r.check("rare_classes").passed is False and rare in r.check("rare_classes").failing
    # the planted empty images (negatives) are the empty images of the counted annotator
    empty = set(r.per_image.loc[r.per_image["is_empty"], IMAGE_ID])
    assert {e["image_id"] for e in planted["empty_images"]} <= empty
    # carol labels 40% of rings as circles: her ring share is far below the others'
    conf = planted["annotators"]["carol"]["class_confusion"]
    assert f"carol: {conf['true']}" in r.check("annotator_class_mix").failing


def test_two_annotators_who_disagree_are_both_flagged():
    anns, k = [], 0
    for who, counts in {"a": (80, 20), "b": (20, 80)}.items():
        for cat, n in zip((1, 2), counts):
            for j in range(n):
                k += 1
                anns.append((k, 1 + j % 5, cat, NAN, NAN, NAN, NAN, who))
    ds = make_ds([(i, 64, 64, "train") for i in range(1, 6)], [(1, "cat"), (2, "dog")], anns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ac = compute_class_balance(ds).annotator_comparison.set_index([ANNOTATOR, NAME])
    assert ac.loc[("a", "dog"), "reference_share"] == pytest.approx(0.8)  # b's share
    assert ac.loc[("a", "dog"), "ratio_to_reference"] == pytest.approx(0.25)
    assert ac["is_deviant"].all()
