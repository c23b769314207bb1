"""Tests of qa.evaluation: COCO metrics equal to pycocotools' COCOeval on random detections
(crowd regions, every size bucket, ties, more than 100 detections, classes without ground
truth), a worked example by hand, the confusion matrix, and sample_data end to end."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qa
from qa.dataset import Dataset
from qa.evaluation import REC_THRS, coco_evaluate, evaluate_detections, summarize

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def random_case(seed, n_img=30, n_cat=4, crowd=True, integer=False):
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for img in range(1, n_img + 1):
        for _ in range(rng.integers(0, 7)):
            w, h = rng.uniform(3, 200, 2)
            x, y = rng.uniform(0, 400, 2)
            if integer:
                x, y, w, h = np.round([x, y, w, h])
            gts.append((img, int(rng.integers(1, n_cat + 1)), x, y, w, h,
                        int(crowd and rng.random() < 0.08)))
        for _ in range(rng.integers(0, 12 if img != 3 else 130)):  # image 3: > 100 dets
            if gts and rng.random() < 0.6:
                g = gts[rng.integers(len(gts))]
                x, y, w, h = np.array(g[2:6]) + rng.normal(0, 8, 4)
                w, h = abs(w) + 1, abs(h) + 1
                cat = g[1] if rng.random() < 0.8 else int(rng.integers(1, n_cat + 1))
            else:
                w, h = rng.uniform(3, 200, 2)
                x, y = rng.uniform(0, 400, 2)
                cat = int(rng.integers(1, n_cat + 2))  # class n_cat+1: no gt anywhere
            if integer:
                x, y, w, h = np.round([x, y, max(w, 1), max(h, 1)])
            score = round(float(rng.random()), 2)  # rounded: ties happen
            dts.append((img, cat, float(x), float(y), float(w), float(h), score))
    gt = pd.DataFrame(gts, columns=["image_id", "category_id", "x", "y", "w", "h", "iscrowd"])
    gt["area"] = gt["w"] * gt["h"] * np.where(gt["iscrowd"] == 1, 0.7, 1.0)
    dt = pd.DataFrame(dts, columns=["image_id", "category_id", "x", "y", "w", "h", "score"])
    return gt, dt, np.arange(1, n_img + 1), np.arange(1, n_cat + 2)


def pycoco(gt, dt, img_ids, cat_ids):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    doc = {"images": [{"id": int(i), "width": 640, "height": 480} for i in img_ids],
           "categories": [{"id": int(c), "name": f"c{c}"} for c in cat_ids],
           "annotations": [{"id": k + 1, "image_id": int(r.image_id),
                            "category_id": int(r.category_id), "bbox": [r.x, r.y, r.w, r.h],
                            "area": float(r.area), "iscrowd": int(r.iscrowd)}
                           for k, r in enumerate(gt.itertuples())]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = doc
        coco.createIndex()
        res = coco.loadRes([{"image_id": int(r.image_id), "category_id": int(r.category_id),
                             "bbox": [r.x, r.y, r.w, r.h], "score": r.score}
                            for r in dt.itertuples()])
        ev = COCOeval(coco, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed, integer", [(0, False), (1, False), (2, True), (3, True)])
def test_equals_pycocotools_on_random_detections(seed, integer):
    gt, dt, imgs, cats = random_case(seed, integer=integer)
    ev = pycoco(gt, dt, imgs, cats)
    precision, recall, scores, _ = coco_evaluate(gt, dt, imgs, cats)
    np.testing.assert_allclose(precision, ev.eval["precision"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(recall, ev.eval["recall"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(scores, ev.eval["scores"], atol=1e-12, rtol=0)
    stats = summarize(precision, recall)
    np.testing.assert_allclose(list(stats.values()), ev.stats, atol=1e-6, rtol=0)


def test_worked_example_by_hand():
    """One class, 3 objects; 4 detections in score order TP, FP, TP, FP (the last misses).
    Precision after each: 1, 1/2, 2/3, 2/4; recall 1/3, 1/3, 2/3, 2/3. Interpolated
    precision is 1 for recall <= 1/3 and 2/3 for recall in (1/3, 2/3], 0 above: AP@0.5 =
    (34 * 1 + 33 * 2/3) / 101 (recall points 0, .01 ... 1)."""
    gt = pd.DataFrame({"image_id": [1, 1, 2], "category_id": 1, "x": [0, 100, 0],
                       "y": 0, "w": 50, "h": 50, "iscrowd": 0})
    gt["area"] = 2500.0
    dt = pd.DataFrame({"image_id": [1, 1, 2, 2], "category_id": 1,
                       "x": [0, 300, 0, 200], "y": 0, "w": 50, "h": 50,
                       "score": [0.9, 0.8, 0.7, 0.6]})
    precision, recall, _, _ = coco_evaluate(gt, dt, [1, 2], [1])
    n_le_third = int(np.sum(REC_THRS <= 1 / 3 + 1e-12))
    n_le_two_thirds = int(np.sum(REC_THRS <= 2 / 3 + 1e-12)) - n_le_third
    expected = (n_le_third * 1 + n_le_two_thirds * 2 / 3) / 101
    assert (n_le_third, n_le_two_thirds) == (34, 33)
    assert summarize(precision, recall)["AP50"] == pytest.approx(expected, abs=1e-12)
    assert recall[0, 0, 0, 2] == pytest.approx(2 / 3)
    ev = pycoco(gt, dt, [1, 2], [1])
    assert ev.stats[1] == pytest.approx(expected, abs=1e-12)


def test_published_example_torchmetrics_docs():
    """The example of torchmetrics' MeanAveragePrecision documentation (backend pycocotools;
    lightning.ai/docs/torchmetrics/latest/detection/mean_average_precision.html): one
    prediction [258, 41, 606, 285] (xyxy, score 0.536) against one target [214, 41, 562, 285];
    published: map 0.6, map_50 1, map_75 1, map_large 0.6, mar_1/10/100 0.6, small/medium -1.
    (IoU = 304/392 = 0.776: a hit at the 6 thresholds 0.50 ... 0.75 of 10.)"""
    gt = pd.DataFrame({"image_id": [1], "category_id": [0], "x": [214.0], "y": [41.0],
                       "w": [562.0 - 214], "h": [285.0 - 41], "iscrowd": [0]})
    gt["area"] = gt["w"] * gt["h"]
    dt = pd.DataFrame({"image_id": [1], "category_id": [0], "x": [258.0], "y": [41.0],
                       "w": [606.0 - 258], "h": [285.0 - 41], "score": [0.536]})
    stats = summarize(*coco_evaluate(gt, dt, [1], [0])[:2])
    published = {"AP": 0.6, "AP50": 1.0, "AP75": 1.0, "AP_small": -1.0, "AP_medium": -1.0,
                 "AP_large": 0.6, "AR1": 0.6, "AR10": 0.6, "AR100": 0.6, "AR_small": -1.0,
                 "AR_medium": -1.0, "AR_large": 0.6}
    assert stats == pytest.approx(published, abs=1e-6)


def make_ds(anns, preds, cats=((1, "cat"), (2, "dog"))):
    a = pd.DataFrame(anns, columns=["ann_id", "image_id", "category_id", "x", "y", "w", "h"])
    a["annotator"] = "a"
    p = pd.DataFrame(preds, columns=["pred_id", "image_id", "category_id", "score",
                                     "x", "y", "w", "h"])
    p["model"] = "det"
    imgs = pd.DataFrame({"image_id": [1, 2], "file_name": ["1.jpg", "2.jpg"], "width": 200,
                         "height": 200})
    return Dataset(images=imgs, categories=pd.DataFrame(cats, columns=["category_id", "name"]),
                   annotations=a, predictions=p)


def test_per_class_and_confusion_with_background():
    anns = [(1, 1, 1, 0, 0, 20, 20), (2, 1, 2, 50, 50, 20, 20), (3, 2, 1, 0, 0, 30, 30)]
    preds = [(1, 1, 1, 0.9, 0, 0, 20, 20),  # cat TP
             (2, 1, 1, 0.8, 50, 50, 20, 20),  # dog labelled, cat predicted
             (3, 2, 2, 0.7, 100, 100, 20, 20),  # background predicted as dog
             (4, 2, 1, 0.2, 0, 0, 30, 30),  # below conf: the cat on image 2 is missed
             (5, 1, 9, 0.9, 0, 0, 5, 5)]  # unknown class: reported
    ev = evaluate_detections(make_ds(anns, preds))
    c = ev.confusion
    assert list(c.index) == ["cat", "dog", "background"]
    assert c.loc["cat", "cat"] == 1 and c.loc["dog", "cat"] == 1
    assert c.loc["cat", "background"] == 1 and c.loc["background", "dog"] == 1
    assert c.to_numpy().sum() == 4
    pc = ev.per_class.set_index("name")
    assert (pc.loc["cat", "tp"], pc.loc["cat", "fp"], pc.loc["cat", "fn"]) == (1, 1, 1)
    assert pc.loc["cat", "precision"] == 0.5 and pc.loc["cat", "recall"] == 0.5
    assert ev.unknown_predictions["pred_id"].tolist() == [5]
    # AP is COCO's: all predictions count, whatever conf_threshold
    assert pc.loc["cat", "ap50"] == pytest.approx(ev.precision[0, :, 0, 0, 2].mean())
    curves = ev.pr_curves
    assert set(curves["name"]) == {"cat", "dog"} and len(curves) == 2 * 101
    json.dumps(ev.to_dict())


def test_refuses_classification_and_bad_scores():
    anns = [(1, 1, 1, np.nan, np.nan, np.nan, np.nan)]
    with pytest.raises(ValueError, match="needs boxes"):
        evaluate_detections(make_ds(anns, [(1, 1, 1, 0.5, np.nan, np.nan, np.nan, np.nan)]))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        evaluate_detections(make_ds([(1, 1, 1, 0, 0, 5, 5)], [(1, 1, 1, 7.0, 0, 0, 5, 5)]))


def test_sample_data_equals_pycocotools_against_alice():
    ds = qa.load(SAMPLE, predictions=SAMPLE / "predictions" / "detector.json")
    ev = evaluate_detections(ds, reference="alice")
    a = ds.annotations_of("alice")
    gt = a[["image_id", "category_id", "x", "y", "w", "h", "area", "iscrowd"]]
    p = ds.predictions
    ref = pycoco(gt.reset_index(drop=True), p.reset_index(drop=True),
                 np.sort(ds.images["image_id"]), np.sort(ds.categories["category_id"]))
    np.testing.assert_allclose(list(ev.stats.values()), ref.stats, atol=1e-6, rtol=0)
    print("\nsample_data vs alice: " + ", ".join(f"{k} {v:.3f}" for k, v in ev.stats.items()))
    assert ev.stats["AP50"] > 0.8  # the model follows the true objects
    # the planted label errors appear in the confusion matrix: 6 wrong classes at least
    c = ev.confusion.drop(index="background", columns="background")
    assert c.to_numpy().sum() - np.trace(c.to_numpy()) >= 6
