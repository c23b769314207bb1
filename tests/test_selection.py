import json
import math

import numpy as np
import pandas as pd
import pytest

import qa
from qa.dataset import Dataset
from qa.embeddings import Embeddings
from qa.selection import (
    box_uncertainty,
    class_uncertainty,
    export_selection,
    image_uncertainty,
    pool_presets,
    resolve_pool,
    select_for_labelling,
)
from tests.conftest import coco_doc, write_jpeg

CATS = pd.DataFrame({"category_id": [1, 2, 3], "name": ["cat", "dog", "star"]})


def _images(n, splits=None):
    return pd.DataFrame({"image_id": np.arange(1, n + 1),
                         "file_name": [f"im{i}.jpg" for i in range(1, n + 1)],
                         "width": 100, "height": 80,
                         "split": splits if splits is not None else [None] * n})


def _box(i, c, score=None, k=0):
    row = {"image_id": i, "category_id": c, "x": 10.0 + k, "y": 10.0, "w": 20.0, "h": 20.0}
    if score is not None:
        row["score"] = score
    return row


def detection_ds(n=8, labelled=(1, 2), scores=None, splits=None, rare_image=None):
    """n images; ``labelled`` carry a cat box (and one a dog, so 'star' is rare); every
    unlabelled image gets one predicted box with the score in ``scores``."""
    anns = [dict(_box(i, 1), ann_id=10 * i) for i in labelled]
    anns.append(dict(_box(labelled[0], 2, k=30), ann_id=999))
    scores = scores or {}
    preds = [dict(_box(i, 1, scores.get(i, 0.95)), pred_id=i, model="det")
             for i in range(1, n + 1) if i not in labelled]
    if rare_image is not None:
        preds.append(dict(_box(rare_image, 3, 0.8, k=40), pred_id=500, model="det"))
    return Dataset(images=_images(n, splits), categories=CATS, annotations=pd.DataFrame(anns),
                   predictions=pd.DataFrame(preds))


# ---------------------------------------------------------------- uncertainty measures
def test_class_uncertainty_worked_values():
    p = np.array([[1.0, 0.0], [0.5, 0.5], [0.6, 0.4]])
    assert np.allclose(class_uncertainty(p, "least_confidence"), [0, 1, 0.8])
    assert np.allclose(class_uncertainty(p, "margin"), [0, 1, 0.8])
    h = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4)) / math.log(2)  # 0.971
    assert np.allclose(class_uncertainty(p, "entropy"), [0, 1, h])
    # three classes: uniform is the most uncertain under every measure
    assert np.allclose(class_uncertainty(np.full((1, 3), 1 / 3), "least_confidence"), 1)
    with pytest.raises(ValueError, match="apply a softmax"):
        class_uncertainty([[0.5, -0.1]])


def test_box_uncertainty_peaks_at_half():
    s = np.array([0.0, 0.5, 0.9, 1.0])
    assert np.allclose(box_uncertainty(s), [0, 1, 0.4689956, 0], atol=1e-6)
    assert np.allclose(box_uncertainty(s, "margin"), [0, 1, 0.2, 0])


def test_image_uncertainty_pools_boxes_and_counts_those_near_the_threshold():
    preds = pd.DataFrame([dict(_box(1, 1, s, k), pred_id=k, model="m")
                          for k, s in enumerate([0.5, 0.9, 0.55])])
    ds = Dataset(images=_images(2), categories=CATS, annotations=None, predictions=preds)
    u = box_uncertainty(np.array([0.5, 0.9, 0.55]))
    t = {a: image_uncertainty(ds, aggregate=a).set_index("image_id") for a in
         ("max", "mean", "sum", "near_threshold")}
    assert t["max"].at[1, "uncertainty"] == pytest.approx(u.max())
    assert t["mean"].at[1, "uncertainty"] == pytest.approx(u.mean())
    assert t["sum"].at[1, "uncertainty"] == pytest.approx(u.sum())
    assert t["near_threshold"].at[1, "uncertainty"] == 2  # 0.5 and 0.55 are within 0.15
    assert t["max"].at[1, "n_boxes"] == 3 and t["max"].at[2, "uncertainty"] == 0
    assert not t["max"].at[2, "has_prediction"]


def test_class_probabilities_give_class_uncertainty_and_the_top_class():
    rows = [(1, 1, 0.9), (1, 2, 0.1), (2, 1, 0.5), (2, 2, 0.5)]
    preds = pd.DataFrame([{"pred_id": k, "image_id": i, "category_id": c, "score": s,
                           "model": "clf"} for k, (i, c, s) in enumerate(rows)])
    ds = Dataset(images=_images(3), categories=CATS.iloc[:2], annotations=None,
                 predictions=preds)
    t = image_uncertainty(ds, measure="margin").set_index("image_id")
    assert t.loc[[1, 2, 3], "uncertainty"].tolist() == pytest.approx([0.2, 1.0, 0.0])
    assert t.at[1, "top_category_id"] == 1 and t.at[1, "top_score"] == pytest.approx(0.9)


# ---------------------------------------------------------------- selection
def test_uncertainty_picks_in_order_with_reasons_and_never_a_labelled_image():
    ds = detection_ds(scores={3: 0.52, 4: 0.7, 5: 0.99, 6: 0.6, 7: 0.97, 8: 0.9})
    res = select_for_labelling(ds, 3, strategy="uncertainty", rare_weight=0)
    assert res.picked_ids == [3, 6, 4]  # scores nearest 0.5 first
    assert res.n_pool == 6 and res.n_labelled == 2  # default pool: the unlabelled images
    assert not {1, 2} & set(res.picked_ids)
    assert res.picks["reasons"].iloc[0].startswith(
        "model unsure: max box entropy 1.00 over 1 box(es), 1 near the 0.50 threshold "
        "(rank 1 of 6)")
    assert res.pool.set_index("image_id").loc[[3, 6, 4], "status"].eq("picked").all()


def test_auto_without_embeddings_is_uncertainty_and_says_so():
    res = select_for_labelling(detection_ds(), 2)
    assert res.strategy == "uncertainty" and res.requested_strategy == "auto"
    assert res.notes[0].startswith("Strategy: uncertainty of det (no embeddings")
    res = select_for_labelling(detection_ds().with_predictions(None), 2)
    assert res.strategy == "random"


def test_rare_class_prediction_raises_priority_and_is_a_reason():
    ds = detection_ds(scores={3: 0.6, 4: 0.7}, rare_image=8)
    plain = select_for_labelling(ds, 2, strategy="uncertainty", rare_weight=0)
    targeted = select_for_labelling(ds, 2, strategy="uncertainty")
    assert plain.picked_ids == [3, 4]
    assert targeted.picked_ids[0] == 8 and targeted.rare_classes == ("star",)
    assert "predicted star (0.80): a rare class" in targeted.picks["reasons"].iloc[0]
    named = select_for_labelling(ds, 1, strategy="uncertainty", rare_classes=["dog"])
    assert named.rare_classes == ("dog",) and named.picked_ids == [3]
    with pytest.raises(ValueError, match="unknown rare class"):
        select_for_labelling(ds, 1, strategy="uncertainty", rare_classes=["unicorn"])


def _dups(groups):
    return pd.DataFrame([(g, i) for g, ids in groups.items() for i in ids],
                        columns=["cluster_id", "image_id"])


def test_near_duplicates_of_labelled_images_and_of_picks_are_skipped_and_counted():
    ds = detection_ds(scores={3: 0.5, 4: 0.5, 5: 0.55, 6: 0.6})
    dups = _dups({1: [1, 3], 2: [4, 5]})  # 3 copies labelled #1; 4 and 5 copy each other
    res = select_for_labelling(ds, 3, strategy="uncertainty", duplicates=dups, rare_weight=0)
    assert res.picked_ids == [4, 6, 7]
    sk = res.skipped.set_index("image_id")
    assert sk.at[3, "reason"] == "a near-duplicate of labelled image #1"
    assert sk.at[5, "reason"] == "a near-duplicate of pick #4"
    assert res.metrics()["n_skipped"] == 2 and res.metrics()["n_skipped_labelled_copies"] == 1


def test_random_is_seeded_and_stratified_by_split():
    splits = ["train"] * 40 + ["test"] * 20
    ds = detection_ds(n=60, splits=splits)
    a = select_for_labelling(ds, 15, strategy="random", seed=3)
    b = select_for_labelling(ds, 15, strategy="random", seed=3)
    assert a.picked_ids == b.picked_ids
    share = a.picks["split"].value_counts()
    assert share["train"] == 10 and share["test"] == 5  # 2 : 1 like the pool (38 : 20)
    assert a.picks["reasons"].iloc[0].startswith("random pick, stratified by split: ")
    assert select_for_labelling(ds, 15, strategy="random", seed=4).picked_ids != a.picked_ids


def _embedded_ds():
    """Three tight clusters of 5 pool images each (ids 3..17), labelled 1 and 2 in the first."""
    rng = np.random.default_rng(0)
    centers = np.eye(8)[:3] * 5
    vec = np.vstack([centers[0], centers[0]] +
                    [centers[k] + 0.1 * rng.standard_normal(8) for k in range(3)
                     for _ in range(5)])
    scores = {i: s for i, s in zip(range(3, 18), np.tile([0.95, 0.9, 0.6, 0.97, 0.99], 3))}
    scores[15] = 0.5  # the most uncertain image overall is in the third cluster
    ds = detection_ds(n=17, scores=scores)
    return ds, Embeddings(vec.astype(np.float32), np.arange(1, 18), "test-model")


def test_kcenter_picks_the_far_clusters_first():
    ds, emb = _embedded_ds()
    res = select_for_labelling(ds, 2, strategy="kcenter", embeddings=emb)
    assert {(i - 3) // 5 for i in res.picked_ids} == {1, 2}  # not the labelled cluster
    assert res.picks["reasons"].iloc[0].startswith("far from anything labelled or picked: ")
    c = res.coverage
    assert c["mean_after"] < c["mean_before"] and c["max_after"] < c["max_before"]


def test_hybrid_takes_the_most_uncertain_image_of_each_cluster():
    ds, emb = _embedded_ds()
    res = select_for_labelling(ds, 3, embeddings=emb, rare_weight=0)
    assert res.strategy == "hybrid"
    assert sorted((i - 3) // 5 for i in res.picked_ids) == [0, 1, 2]  # one per cluster
    assert res.picked_ids[0] == 15  # the most uncertain of all comes first
    assert "the most uncertain of cluster" in res.picks["reasons"].iloc[0]
    assert res.picks["reasons"].iloc[0].startswith("model unsure: ")
    res = select_for_labelling(ds, 3, strategy="hybrid_kcenter", embeddings=emb)
    assert res.picked_ids[0] == 15


def test_cluster_strategy_picks_one_typical_image_per_cluster():
    ds, emb = _embedded_ds()
    res = select_for_labelling(ds, 3, strategy="cluster", embeddings=emb)
    assert sorted((i - 3) // 5 for i in res.picked_ids) == [0, 1, 2]
    assert res.picks["cluster"].notna().all()


def test_explicit_strategies_say_what_they_need():
    ds = detection_ds()
    with pytest.raises(ValueError, match="needs image embeddings of the pool"):
        select_for_labelling(ds, 2, strategy="kcenter")
    with pytest.raises(ValueError, match="needs the model's predictions"):
        select_for_labelling(ds.with_predictions(None), 2, strategy="uncertainty")
    with pytest.raises(ValueError, match="budget is how many images to pick"):
        select_for_labelling(ds, 0)
    with pytest.raises(ValueError, match="pool names 1 image id"):
        select_for_labelling(ds, 2, pool=[3, 99])


def test_a_pool_holding_labelled_images_drops_them_with_a_note():
    res = select_for_labelling(detection_ds(), 10, pool=[1, 3, 4])
    assert sorted(res.picked_ids) == [3, 4]
    assert "1 pool image(s) are labelled already" in " ".join(res.notes)
    assert "Only 2 image(s) could be picked of the 10" in " ".join(res.notes)


def test_pool_presets_and_a_pool_file(tmp_path):
    ds = detection_ds(n=6, splits=["train", "train", "test", "test", "val", "val"])
    pr = pool_presets(ds)
    assert pr["unlabelled"] == ([3, 4, 5, 6], [1, 2])
    assert pr["split:test"] == ([3, 4], [1, 2]) and pr["all"][1] == []
    f = tmp_path / "pool.txt"
    f.write_text("im5.jpg\n6\n")
    assert resolve_pool(ds, str(f)) == ([5, 6], [1, 2])
    f.write_text("im5.jpg\nnope.jpg\n")
    with pytest.raises(ValueError, match="line 2: 'nope.jpg'"):
        resolve_pool(ds, str(f))


def test_exports_round_trip_and_stay_out_of_the_dataset(tmp_path):
    root = tmp_path / "data"
    for k in range(1, 5):
        write_jpeg(root / "images" / f"{k}.jpg", size=(100, 80), seed=k)
    (root / "annotations").mkdir()
    doc = coco_doc([(k, f"{k}.jpg", 100, 80) for k in range(1, 5)],
                   [(1, 1, 1, (5, 5, 20, 20))])
    (root / "annotations" / "instances.json").write_text(json.dumps(doc))
    preds = [{"image_id": k, "category_id": 2, "bbox": [10, 10, 30, 30], "score": s}
             for k, s in ((2, 0.9), (3, 0.55), (4, 0.3))]
    (root / "preds.json").write_text(json.dumps(preds))
    ds = qa.load(root, predictions=str(root / "preds.json"))
    res = select_for_labelling(ds, 2, strategy="uncertainty")
    assert res.picked_ids == [3, 4]
    with pytest.raises(ValueError, match="inside the dataset"):
        export_selection(ds, res, root / "out")
    out = export_selection(ds, res, tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "selection.csv", "selection_coco.json", "labelstudio_tasks.json",
        "labelstudio_config.xml", "selection.json"}
    csv = pd.read_csv(out["csv"])
    assert csv["image_id"].tolist() == [3, 4] and csv["strategy"].eq("uncertainty").all()
    coco = qa.load(out["coco"])
    assert sorted(coco.images["file_name"]) == ["3.jpg", "4.jpg"]
    # Label Studio: the 0.55 box is a pre-label of image 3; image 4's 0.3 box is below 0.5
    ls = qa.load(out["labelstudio"], image_root=str(root / "images"))
    assert len(ls.images) == 2 and len(ls.predictions) == 1
    assert ls.predictions["score"].iloc[0] == pytest.approx(0.55)
    tasks = json.loads(out["labelstudio"].read_text())
    assert tasks[0]["data"]["selection_rank"] == 1 and "annotations" not in tasks[0]
    assert json.loads(out["json"].read_text())["strategy"] == "uncertainty"


def test_diversity_is_weighted_by_rare_classes_only_not_by_uncertainty():
    ds, emb = _embedded_ds()  # no rare class is predicted: the weights are all 1
    with_preds = select_for_labelling(ds, 4, strategy="kcenter", embeddings=emb)
    without = select_for_labelling(ds.with_predictions(None), 4, strategy="kcenter",
                                   embeddings=emb)
    assert with_preds.picked_ids == without.picked_ids
    weighted = select_for_labelling(ds, 4, strategy="hybrid_kcenter", embeddings=emb)
    assert weighted.picked_ids != with_preds.picked_ids
