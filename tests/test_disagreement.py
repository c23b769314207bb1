"""Tests of qa.disagreement: every flag kind on a tiny literal dataset worked out by hand, the
soft-min pooling against its formula, bad input, the result protocol, and the planted label
errors of sample_data found (recall and precision per kind printed against PLANTED.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qa
from qa.analyses import RunContext, Skip
from qa.dataset import Dataset
from qa.disagreement import (
    DEFAULT_CONF_THRESHOLD,
    KINDS,
    compute_disagreement,
    pool_softmin,
    run_analysis,
)
from qa.results import FINDINGS_SCHEMA, AnalysisResult

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
CATS = ((1, "cat"), (2, "dog"))


def make_ds(anns, preds, *, images=(1, 2, 3), cats=CATS) -> Dataset:
    """anns: (ann_id, image_id, category_id, annotator, x, y, w, h);
    preds: (pred_id, image_id, category_id, score, x, y, w, h)."""
    a = pd.DataFrame(anns, columns=["ann_id", "image_id", "category_id", "annotator",
                                    "x", "y", "w", "h"])
    p = pd.DataFrame(preds, columns=["pred_id", "image_id", "category_id", "score",
                                     "x", "y", "w", "h"])
    p["model"] = "det"
    imgs = pd.DataFrame({"image_id": list(images),
                         "file_name": [f"{i}.jpg" for i in images], "width": 200,
                         "height": 200})
    return Dataset(images=imgs, categories=pd.DataFrame(cats, columns=["category_id", "name"]),
                   annotations=a, predictions=p)


# image 1: one of each kind, by hand
#   ann 1 cat (0,0,20,20)   pred 11 cat 0.9 same box              -> ok (IoU 1)
#   ann 2 cat (50,0,20,20)  pred 12 dog 0.8 same box              -> wrong_class
#   ann 3 cat (100,0,20,20) pred 13 cat 0.9 at (110,0,20,20)      -> poor_localisation (1/3)
#   ann 4 dog (0,100,20,20) no prediction                         -> spurious_label
#   no label                pred 14 dog 0.95 at (100,100,20,20)   -> missing_label
#   no label                pred 15 cat 0.3 at (150,150,20,20)    -> below conf: nothing
#   ann 5 cat (1,0,20,20)   duplicate of ann 1 (IoU 19/21)        -> duplicate_annotation
# image 2: labels and predictions agree; image 3: no prediction at all -> not judged
ANNS = [(1, 1, 1, "a", 0, 0, 20, 20), (2, 1, 1, "a", 50, 0, 20, 20),
        (3, 1, 1, "a", 100, 0, 20, 20), (4, 1, 2, "a", 0, 100, 20, 20),
        (5, 1, 1, "a", 1, 0, 20, 20), (6, 2, 2, "a", 10, 10, 30, 30),
        (7, 3, 1, "a", 10, 10, 30, 30)]
PREDS = [(11, 1, 1, 0.9, 0, 0, 20, 20), (12, 1, 2, 0.8, 50, 0, 20, 20),
         (13, 1, 1, 0.9, 110, 0, 20, 20), (14, 1, 2, 0.95, 100, 100, 20, 20),
         (15, 1, 1, 0.3, 150, 150, 20, 20), (16, 2, 2, 0.99, 10, 10, 30, 31)]


def test_every_flag_kind_on_a_literal_image():
    r = compute_disagreement(make_ds(ANNS, PREDS))
    b = r.boxes
    kind_of_ann = {a[0]: k for a, k in zip(b["ann_ids"], b["kind"]) if a}
    assert kind_of_ann == {1: "ok", 2: "wrong_class", 3: "poor_localisation",
                           4: "spurious_label", 5: "duplicate_annotation", 6: "ok",
                           7: "spurious_label"}
    miss = b[b["kind"] == "missing_label"]
    assert miss["pred_id"].tolist() == [14] and miss["pred_category_id"].tolist() == [2]
    assert miss["quality"].iloc[0] == pytest.approx(0.05)
    row = b[b["kind"] == "poor_localisation"].iloc[0]
    assert row["iou"] == pytest.approx(10 * 20 / (2 * 400 - 200)) and row["pred_id"] == 13
    assert b.loc[b["kind"] == "wrong_class", "quality"].iloc[0] == pytest.approx(0.2)
    assert b.loc[b["kind"] == "duplicate_annotation", "iou"].iloc[0] == pytest.approx(19 * 20
                                                                                     / (21 * 20))
    # image 3 has no prediction (and its file is not known to be unreadable): judged
    assert r.unpredicted_image_ids == () and 7 in {a[0] for a in b["ann_ids"] if a}
    skip = compute_disagreement(make_ds(ANNS, PREDS), skip_unpredicted=True)
    assert skip.unpredicted_image_ids == (3,) and 3 not in set(skip.boxes["image_id"])
    m = r.metrics()
    assert (m["n_missing_label"], m["n_spurious_label"], m["n_wrong_class"],
            m["n_poor_localisation"], m["n_duplicate_annotation"]) == (1, 2, 1, 1, 1)
    assert m["n_flags"] == 6 and m["n_flagged_images"] == 2
    assert m["flagged_image_share"] == pytest.approx(2 / 3)
    assert m["n_label_issues"] is None
    # the queue: image 1 only, its pooled quality the soft minimum of its box qualities
    q = skip.queue
    assert q["image_id"].tolist() == [1]
    assert "1 missing label" in q["reasons"].iloc[0]
    mine = skip.boxes.query("image_id == 1")["quality"].to_numpy()
    w = np.exp(-mine / 0.1)
    assert q["label_quality"].iloc[0] == pytest.approx((mine * w).sum() / w.sum())


def test_confidence_threshold_decides_what_counts_as_a_claim():
    r = compute_disagreement(make_ds(ANNS, PREDS), conf_threshold=0.25)
    assert 15 in set(r.boxes.loc[r.boxes["kind"] == "missing_label", "pred_id"].dropna())
    r = compute_disagreement(make_ds(ANNS, PREDS), conf_threshold=0.96)
    assert r.metrics()["n_missing_label"] == 0  # 0.95 is no claim any more
    # at threshold 0 every prediction is a claim; a box with none is still unsupported
    r = compute_disagreement(make_ds(ANNS, PREDS), conf_threshold=0.0)
    assert r.metrics()["n_spurious_label"] == 2 and r.metrics()["n_missing_label"] == 2


def test_no_labels_at_all_and_no_predictions_on_a_labelled_image():
    r = compute_disagreement(make_ds([], PREDS))
    assert r.metrics()["n_missing_label"] == 5 and r.metrics()["n_spurious_label"] == 0
    from qa.evaluation import evaluate_detections

    assert evaluate_detections(make_ds([], PREDS)).stats["AP"] == -1.0  # as COCOeval says


def test_pool_softmin_formula_and_empty_images():
    pos = np.array([0, 0, 0, 2])
    q = np.array([0.9, 0.1, 0.5, 0.7])
    out = pool_softmin(pos, q, 3, temperature=0.2)
    w = np.exp(-q[:3] / 0.2)
    assert out[0] == pytest.approx((q[:3] * w).sum() / w.sum())
    assert out[1] == 1.0 and out[2] == pytest.approx(0.7)
    assert 0.1 < out[0] < 0.5  # closer to the minimum than the mean
    with pytest.raises(ValueError, match="temperature"):
        pool_softmin(pos, q, 3, temperature=0)


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.1])
def test_bad_scores_are_refused_with_a_clear_message(bad):
    preds = [*PREDS[:-1], (16, 2, 2, bad, 10, 10, 30, 31)]
    with pytest.raises(ValueError, match=r"1 predictions of model 'det' have a score that is "
                                         r"NaN or outside \[0, 1\]"):
        compute_disagreement(make_ds(ANNS, preds))


def test_unknown_images_and_classes_are_reported_not_dropped():
    preds = [*PREDS, (20, 99, 1, 0.9, 0, 0, 5, 5), (21, 1, 7, 0.9, 0, 0, 5, 5)]
    r = compute_disagreement(make_ds(ANNS, preds))
    u = r.unknown_predictions.set_index("pred_id")["reason"].to_dict()
    assert u == {20: "image not in the dataset", 21: "class not in the dataset"}
    assert r.metrics()["n_unknown_predictions"] == 2
    assert any("2 predictions" in n for n in r.notes)


def test_bad_arguments():
    ds = make_ds(ANNS, PREDS)
    with pytest.raises(ValueError, match="unknown reference 'zed'"):
        compute_disagreement(ds, reference="zed")
    with pytest.raises(ValueError, match="unknown model 'x'"):
        compute_disagreement(ds, model="x")
    with pytest.raises(ValueError, match="conf_threshold must be in"):
        compute_disagreement(ds, conf_threshold=2)
    with pytest.raises(ValueError, match="low_iou must be in"):
        compute_disagreement(ds, low_iou=0.6)
    with pytest.raises(TypeError, match="qa.Dataset"):
        compute_disagreement("sample_data")
    with pytest.raises(ValueError, match="no model predictions"):
        compute_disagreement(make_ds(ANNS, []))


def test_runner_skips_without_predictions_and_result_speaks_the_protocol():
    with pytest.raises(Skip, match="no model predictions"):
        run_analysis(make_ds(ANNS, []), RunContext(make_ds(ANNS, [])))
    ds = make_ds(ANNS, PREDS)
    r = run_analysis(ds, RunContext(ds, options={"disagreement": {"conf_threshold": 0.96}}))
    assert isinstance(r, AnalysisResult) and r.ANALYSIS == "disagreement"
    assert r.conf_threshold == 0.96
    f = r.findings()
    assert list(f.columns) == list(FINDINGS_SCHEMA)
    assert set(f["kind"]) <= set(KINDS) and (f["page"] == "disagreement").all()
    assert f["score"].between(0, 1).all()
    json.dumps(r.to_dict())  # JSON-safe
    assert set(r.metrics()) >= {"n_flags", "n_flagged_images", "flagged_image_share",
                                "n_missing_label", "n_spurious_label", "n_wrong_class",
                                "n_poor_localisation", "n_duplicate_annotation",
                                "n_label_issues", "label_issue_share"}


def test_consensus_reference_names_every_member():
    anns = [(1, 1, 1, "a", 0, 0, 20, 20), (2, 1, 1, "b", 1, 1, 20, 20),
            (3, 1, 2, "a", 100, 100, 20, 20), (4, 1, 2, "b", 100, 101, 20, 20)]
    preds = [(11, 1, 1, 0.9, 0, 0, 20, 20), (12, 1, 1, 0.9, 100, 100, 20, 20)]
    r = compute_disagreement(make_ds(anns, preds, images=(1,)))
    assert r.reference == "consensus"
    wc = r.flags[r.flags["kind"] == "wrong_class"]
    assert wc["ann_ids"].tolist() == [(3, 4)]
    r_a = compute_disagreement(make_ds(anns, preds, images=(1,)), reference="a")
    assert r_a.flags["ann_ids"].tolist() == [(3,)]


def test_classification_uses_confident_learning():
    # 40 images, labels alternate cat/dog; the model agrees except on images 5 and 6
    rng = np.random.default_rng(0)
    anns, preds, pid = [], [], 1
    for i in range(1, 41):
        y = 1 + i % 2
        anns.append((i, i, y, "a", np.nan, np.nan, np.nan, np.nan))
        p_true = rng.uniform(0.75, 0.95)
        p_y = 1 - p_true if i in (5, 6) else p_true
        for c in (1, 2):
            preds.append((pid, i, c, p_y if c == y else 1 - p_y, np.nan, np.nan, np.nan,
                          np.nan))
            pid += 1
    r = compute_disagreement(make_ds(anns, preds, images=range(1, 41)))
    assert r.is_classification
    assert sorted(r.flags["image_id"]) == [5, 6]
    assert set(r.flags["kind"]) == {"label_issue"}
    m = r.metrics()
    assert m["n_label_issues"] == 2 and m["label_issue_share"] == pytest.approx(2 / 40)
    assert m["n_missing_label"] is None
    assert r.queue["image_id"].tolist()[:2] in ([5, 6], [6, 5])


# --------------------------------------------------------------------------- sample_data
@pytest.fixture(scope="module")
def sample():
    ds = qa.load(SAMPLE, predictions=SAMPLE / "predictions" / "detector.json")
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())
    return ds, planted, compute_disagreement(ds)


# planted kind -> the flag kinds that find it on the erroneous annotation (a box shifted
# by more than half its size, even below low_iou, lies beside the model's box of its class:
# one badly located box, not an unsupported box plus a missing one)
FOUND_BY = {"wrong_class": {"wrong_class"}, "spurious_box": {"spurious_label"},
            "bad_box": {"poor_localisation"}, "missing_box": {"missing_label"}}
FLAG_FOR = {"wrong_class": "wrong_class", "spurious_box": "spurious_label",
            "bad_box": "poor_localisation", "missing_box": "missing_label"}


def test_sample_planted_label_errors_are_found(sample):
    _, planted, r = sample
    f = r.flags
    errors = planted["label_errors"]
    report = []
    for kind, finders in FOUND_BY.items():
        mine = [e for e in errors if e["kind"] == kind]
        found = 0
        for e in mine:
            on_img = f[f["image_id"] == e["image_id"]]
            if kind == "missing_box":
                hit = on_img[(on_img["kind"] == "missing_label")
                             & (on_img["pred_category_id"] == e["true_category_id"])]
            else:
                wanted = e["ann_ids"]["alice"]
                hit = on_img[on_img["kind"].isin(finders)
                             & on_img["ann_ids"].map(lambda a, w=wanted: w in a)]
            found += len(hit) > 0
        # precision of the flag kind: flags of that kind on images with that planted error
        flag = FLAG_FOR[kind]
        of_kind = f[f["kind"] == flag]
        on_planted = of_kind["image_id"].isin([e["image_id"] for e in errors])
        recall = found / len(mine)
        precision = on_planted.mean() if len(of_kind) else math.nan
        report.append(f"{kind:>12}: recall {recall:.2f} ({found}/{len(mine)}), "
                      f"'{flag}' flags {len(of_kind)}, on planted images {precision:.2f}")
        assert recall == 1.0, report[-1]
    # the model's misses are real objects the model did not see: the only other flags
    misses = {m["image_id"] for m in planted["model"]["misses"]}
    other = f[~f["image_id"].isin([e["image_id"] for e in errors])]
    explained = other["image_id"].isin(misses).mean()
    report.append(f"flags off the planted images: {len(other)}, {explained:.2f} of them on "
                  "images where the model misses an object")
    print("\n" + "\n".join(report))
    assert explained == 1.0
    # missing/wrong/poor flags are precise: only at planted errors
    for flag in ("missing_label", "wrong_class", "poor_localisation"):
        of_kind = f[f["kind"] == flag]
        assert of_kind["image_id"].isin([e["image_id"] for e in errors]).all(), flag


def test_sample_false_positives_never_become_missing_labels(sample):
    _, planted, r = sample
    fps = {p["pred_id"] for p in planted["model"]["false_positives"]}
    assert max(p["score"] for p in planted["model"]["false_positives"]) < DEFAULT_CONF_THRESHOLD
    flagged = set(r.flags["pred_id"].dropna().astype(int))
    assert not fps & flagged
    # and the images without predictions (corrupt, missing file) are not judged
    assert set(r.unpredicted_image_ids) == set(planted["model"]["no_predictions_for"])


def test_sample_queue_ranks_errors_first_and_counts_them_within_half(sample):
    """Issue 21: model only, the queue's precision at 12 is at least ObjectLab's 0.83 on the
    same data, the median rank of each planted error kind no worse than ObjectLab's (cleanlab
    2.9.0: badly drawn 6.5, wrong class 55, missing 170, spurious 140), every planted error is
    in the queue; and the likely-label-error count (an estimate here: no crops) lies within
    0.5x-1.5x of the 24 planted errors."""
    _, planted, r = sample
    errors = planted["label_errors"]
    queue = r.queue["image_id"].tolist()
    assert {e["image_id"] for e in errors} <= set(queue)
    wrong = {e["image_id"] for e in errors}
    assert len(wrong & set(queue[:12])) / 12 >= 0.83
    objectlab = {"bad_box": 6.5, "wrong_class": 55, "missing_box": 170, "spurious_box": 140}
    for kind, theirs in objectlab.items():
        ranks = [queue.index(e["image_id"]) + 1 for e in errors if e["kind"] == kind]
        assert np.median(ranks) <= theirs, (kind, sorted(ranks))
    cc = r.cause_counts()
    assert cc["estimated"] and 12 <= cc["label_errors"] <= 36, cc
    assert cc["label_errors_counted"] == 18  # 6 wrong class, 6 badly drawn, 6 missing
    # the model's 60 misses (on 59 reference boxes) are most of the model-miss estimate
    assert 40 <= cc["model_misses"] <= 66, cc
    m = r.metrics()
    assert 12 <= m["n_label_error_images"] <= 36
    assert m["n_label_error_images"] / len(r.per_image) == pytest.approx(
        m["label_error_image_share"])


def test_shifted_box_beside_its_object_is_one_badly_located_box():
    """A label drawn beside its object (IoU below low_iou) next to the model's box of its
    class is one poorly located box (the claim is used up), not a spurious plus a missing
    label; the same pair a long way apart is two flags."""
    anns = [(1, 1, 1, "a", 0, 0, 40, 40), (2, 2, 1, "a", 0, 0, 40, 40)]
    preds = [(11, 1, 1, 0.9, 38, 0, 40, 40),  # beside ann 1: centres 38 px apart
             (12, 2, 1, 0.9, 150, 150, 40, 40)]  # far from ann 2
    r = compute_disagreement(make_ds(anns, preds, images=(1, 2)))
    f = r.flags
    one = f[f["image_id"] == 1]
    assert one["kind"].tolist() == ["poor_localisation"] and one["pred_id"].tolist() == [11]
    assert one["iou"].iloc[0] == pytest.approx(2 * 40 / (2 * 1600 - 2 * 40))
    assert sorted(f.loc[f["image_id"] == 2, "kind"]) == ["missing_label", "spurious_label"]
    assert one["cause"].iloc[0] == "label_error"


def test_claim_precision_is_measured_against_the_labels():
    from qa.disagreement import claim_precision

    s = np.linspace(0.5, 1.0, 200)
    agreed = np.ones(200, bool)
    agreed[:100:10] = False  # 10 of the 100 lower-scored claims disagree with the labels
    p = claim_precision(s, agreed, np.array([0.55, 0.99]))
    # isotonic: the lower half pools to 90/100... up to its last disagreement; the top is
    # capped at (n+1)/(n+2), never certain
    assert p[0] == pytest.approx(0.9, abs=0.01) and p[1] == pytest.approx(201 / 202)
    # monotone: a disagreeing stretch higher up pools with what lies below it
    agreed2 = np.ones(200, bool)
    agreed2[150:160] = False
    p2 = claim_precision(s, agreed2, np.array([0.55, 0.99]))
    assert p2[0] <= p2[1] and p2[0] < 1
    # too few claims to measure: the raw scores
    assert claim_precision(s[:5], agreed[:5], np.array([0.7])).tolist() == [0.7]


def test_sample_queue_starts_with_planted_errors(sample):
    _, planted, r = sample
    planted_imgs = {e["image_id"] for e in planted["label_errors"]}
    queue = r.queue["image_id"].tolist()
    assert planted_imgs <= set(queue)
    top = queue[:24]
    share = len(planted_imgs & set(top)) / 24
    base = len(planted_imgs) / len(queue)
    print(f"\nplanted label errors in the top 24 of the queue: {share:.2f} (their share of the "
          f"whole queue: {base:.2f}; the rest are objects the model misses)")
    assert share > base


# --------------------------------------------------------------------------- CLI
def test_cli_disagreement_and_evaluate(tmp_path, capsys):
    from qa.cli import main

    assert main(["disagreement", str(SAMPLE), "--json", "--reference", "alice",
                 "--export", str(tmp_path / "out")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"]["n_wrong_class"] == 6 and doc["reference"] == "alice"
    assert doc["model"] == "detector"  # picked up from predictions/*.json
    assert set(doc["exported"]) >= {"csv", "coco", "labelstudio"}
    assert (tmp_path / "out" / "queue.csv").is_file()
    # issue 21: the JSON and the text both split label errors from model misses, with how
    assert doc["causes"]["estimated"] and 12 <= doc["causes"]["label_errors"] <= 36
    assert doc["metrics"]["label_errors_estimated"] == 1
    assert main(["disagreement", str(SAMPLE), "--reference", "alice"]) == 0
    out = capsys.readouterr().out
    assert "likely label errors: ~" in out and "(estimated)" in out and "how: 18 counted" in out
    assert main(["evaluate", str(SAMPLE), "--json", "--reference", "alice"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert 0.8 < ev["stats"]["AP50"] <= 1
    assert main(["disagreement", str(SAMPLE), "--reference", "zed"]) == 2
    assert "unknown reference 'zed'" in capsys.readouterr().err
    assert main(["disagreement", str(SAMPLE), "--export", str(SAMPLE / "x")]) == 2
    assert "inside the dataset" in capsys.readouterr().err


def test_cli_classification_with_probabilities_csv(tmp_path, capsys):
    from qa.cli import main

    (tmp_path / "ds").mkdir()
    labels = tmp_path / "ds" / "labels.csv"  # exports must go outside the dataset's folder
    probs = tmp_path / "clf.csv"
    rows, prow = ["image,label"], ["image,cat,dog"]
    for i in range(20):
        y = "cat" if i % 2 else "dog"
        rows.append(f"{i}.jpg,{y}")
        p_cat = 0.9 if y == "cat" else 0.1
        if i == 4:  # labelled dog, clearly a cat
            p_cat = 0.95
        prow.append(f"{i}.jpg,{p_cat},{1 - p_cat:.2f}")
    labels.write_text("\n".join(rows) + "\n")
    probs.write_text("\n".join(prow) + "\n")
    assert main(["disagreement", str(labels), "--predictions", str(probs), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["is_classification"] and doc["metrics"]["n_label_issues"] == 1
    assert doc["queue"][0]["n_label_issue"] == 1
    # the exports carry the labels (image-level): COCO annotations without a bbox, Label
    # Studio 'choices' with the suggested class preloaded; both re-load with our readers
    out = tmp_path / "export"
    assert main(["disagreement", str(labels), "--predictions", str(probs), "--export",
                 str(out)]) == 0
    capsys.readouterr()
    coco = qa.load(out / "flagged_coco.json", probe=False)
    assert coco.is_classification and len(coco.annotations) == 1
    assert coco.category_names[int(coco.annotations["category_id"].iloc[0])] == "dog"
    tasks = json.loads((out / "labelstudio_tasks.json").read_text())
    assert tasks[0]["data"]["image"].endswith("4.jpg")
    assert tasks[0]["annotations"][0]["result"][0]["value"] == {"choices": ["dog"]}
    pred = tasks[0]["predictions"][0]["result"][0]
    assert pred["type"] == "choices" and pred["value"] == {"choices": ["cat"]}
    assert pred["score"] == pytest.approx(0.95)
    assert 'choice="single"' in (out / "labelstudio_config.xml").read_text()
    ls = qa.load(out / "labelstudio_tasks.json", format="labelstudio", probe=False)
    assert ls.is_classification and len(ls.annotations) == 1
    assert ls.category_names[int(ls.annotations["category_id"].iloc[0])] == "dog"


def test_run_analyses_includes_disagreement():
    from qa.analyses import run_analyses

    run = run_analyses(make_ds(ANNS, PREDS), only=["disagreement"], embeddings="skip")
    assert run.errors == {} and "disagreement" in run.results
    f = run.findings()
    assert set(f["kind"]) == {"missing_label", "spurious_label", "wrong_class",
                              "poor_localisation", "duplicate_annotation"}
    run = run_analyses(make_ds(ANNS, []), only=["disagreement"], embeddings="skip")
    assert run.skipped == {"disagreement": "no model predictions"}


def test_crowd_regions_are_not_reference_objects():
    ds = make_ds(ANNS, PREDS)
    a = ds.annotations.copy()
    a.loc[a["ann_id"] == 4, "iscrowd"] = 1  # the unsupported dog box becomes a crowd region
    import dataclasses

    r = compute_disagreement(dataclasses.replace(ds, annotations=a))
    assert 4 not in {x for ids in r.boxes["ann_ids"] for x in ids}
    assert r.metrics()["n_spurious_label"] == 1  # only ann 7 on image 3 is left


def test_crops_give_spurious_label_flags_a_second_opinion():
    """A detector's miss and a spurious label both leave a box no prediction supports. Without
    crops the two are one estimate; with object embeddings Bayes' rule with each crop's
    verdict decides: the crop like its class is a likely model miss, ranked after the one
    unlike it, a likely label error, and each says why."""
    from qa.disagreement import CROP_SENSITIVITY
    from qa.embeddings import Embeddings

    anns = [(i, i, 1, "a", 10, 10, 40, 40) for i in range(1, 11)]  # ten cats the model finds
    anns += [(11, 11, 1, "a", 10, 10, 40, 40),  # unsupported, crop looks like a cat: a miss
             (12, 12, 1, "a", 10, 10, 40, 40)]  # unsupported, crop unlike any cat: spurious
    preds = [(100 + i, i, 1, 0.9, 10, 10, 40, 40) for i in range(1, 11)]
    ds = make_ds(anns, preds, images=range(1, 13))
    rng = np.random.default_rng(0)
    v = np.tile([1.0, 0.0, 0.0, 0.0], (12, 1)) + rng.normal(0, 0.05, (12, 4))
    v[11] = [0.0, 1.0, 0.0, 0.0] + rng.normal(0, 0.05, 4)  # ann 12
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    objects = Embeddings(v.astype(np.float32), np.arange(1, 13), "test/model",
                         ann_ids=np.arange(1, 13))
    skip = dict(skip_unpredicted=False)
    plain = compute_disagreement(ds, **skip)
    spur = plain.flags[plain.flags["kind"] == "spurious_label"]
    assert sorted(spur["image_id"]) == [11, 12]
    assert spur["quality"].nunique() == 1  # the model alone cannot tell them apart
    assert set(spur["cause"]) == {"undecided"} and set(spur["decided_by"]) == {"estimate"}
    # the estimate by hand: rho = (0 confirmed box errors + 1) / (12 drawn boxes + 2); all
    # twelve boxes are medium (40 x 40), two unsupported: p = min(2, 12 rho) / 2
    rho = 1 / 14
    assert spur["p_label_error"].iloc[0] == pytest.approx(min(2, 12 * rho) / 2)
    cc = plain.cause_counts()
    assert cc["estimated"] and cc["label_errors"] == pytest.approx(12 * rho)
    assert "estimated to be label errors" in cc["basis"]
    assert plain.metrics()["label_errors_estimated"] == 1
    two = compute_disagreement(ds, objects=objects, **skip)
    f = two.flags.set_index("image_id")
    prior = min(2, 12 * rho) / 2
    fpr = (0 + 1) / (10 + 2)  # no confirmed box's crop is an outlier (Laplace-smoothed)
    like = prior * (1 - CROP_SENSITIVITY) / (prior * (1 - CROP_SENSITIVITY)
                                             + (1 - prior) * (1 - fpr))
    unlike = prior * CROP_SENSITIVITY / (prior * CROP_SENSITIVITY + (1 - prior) * fpr)
    assert f.at[11, "p_label_error"] == pytest.approx(like)
    assert f.at[12, "p_label_error"] == pytest.approx(unlike)
    assert (f.at[11, "cause"], f.at[12, "cause"]) == ("model_miss", "label_error")
    assert "likely a model miss" in f.at[11, "message"]
    assert "crop also looks unlike other cat boxes: likely a label error" in f.at[12, "message"]
    assert two.queue["image_id"].tolist()[:2] == [12, 11]
    assert any("1 look like their class" in n and "1 look unlike it" in n for n in two.notes)
    cc = two.cause_counts()
    assert (cc["label_errors"], cc["model_misses"], cc["estimated"]) == (1, 1, False)
    fi = two.findings().set_index("image_id")
    assert (fi.at[11, "kind"], fi.at[11, "severity"]) == ("model_miss", "info")
    assert (fi.at[12, "kind"], fi.at[12, "severity"]) == ("spurious_label", "warning")
    with pytest.raises(TypeError, match="object embeddings"):
        compute_disagreement(ds, objects=Embeddings(v.astype(np.float32), np.arange(1, 13),
                                                    "test/model"), **skip)
