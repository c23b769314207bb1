"""qa.outliers against brute-force numpy / scikit-learn references on seeded random vectors, the
result protocol, and end to end on sample_data against PLANTED.json (the 10 OOD photos)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    FILE_NAME,
    IMAGE_ID,
    NAME,
    SPLIT,
    Dataset,
)
from qa.embeddings import Embeddings
from qa.outliers import (
    IQR_FACTOR,
    OutliersResult,
    OutliersWarning,
    class_outliers,
    compute_outliers,
    embedding_map,
    iqr_fence,
    nearest_neighbors,
    score_outliers,
)
from qa.results import FINDINGS_SCHEMA, AnalysisResult
from tests.conftest import SAMPLE


def _blob(n=200, d=16, far=(3, 77, 150), seed=0):
    """n points around the origin (sd 0.1) with a few rows moved 3 units away."""
    rng = np.random.default_rng(seed)
    v = rng.normal(0, 0.1, (n, d)).astype(np.float32)
    for i, r in enumerate(far):
        v[r] += 3.0 * np.eye(d, dtype=np.float32)[i]
    return v


def _brute_knn_mean(v, k):
    d = np.sqrt(((v[:, None, :] - v[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :k].mean(axis=1)


def test_knn_score_matches_brute_force_and_flags_the_far_rows():
    v = _blob()
    df = score_outliers(v, k=5)
    np.testing.assert_allclose(df["score"], _brute_knn_mean(v, 5), rtol=1e-4)
    q1, q3 = np.percentile(df["score"], [25, 75])
    assert set(np.where(df["is_outlier"])[0]) == {3, 77, 150}
    assert (df["score"][df["is_outlier"]] > q3 + IQR_FACTOR * (q3 - q1)).all()
    assert df["percentile"].between(0, 1).all() and df["percentile"][[3, 77, 150]].min() > 0.98


def test_lof_and_isolation_forest_follow_scikit_learn():
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    v = _blob()
    lof = score_outliers(v, method="lof", k=10)
    ref = -LocalOutlierFactor(n_neighbors=10).fit(v).negative_outlier_factor_
    np.testing.assert_allclose(lof["score"], ref, rtol=1e-4)
    iso = score_outliers(v, method="isolation_forest")
    ref = -IsolationForest(random_state=0, n_estimators=200).fit(v).score_samples(v)
    np.testing.assert_allclose(iso["score"], ref, rtol=1e-6)
    assert set(np.argsort(-lof["score"].to_numpy())[:3]) == {3, 77, 150}
    # an isolation forest isolates points moved along one of 16 axes less sharply
    assert set(np.argsort(-iso["score"].to_numpy())[:6]) >= {3, 77, 150}


@pytest.mark.parametrize("d", [32, 96])  # 96 > IVF_DIM: candidates searched in a projection
def test_ivf_index_above_the_exact_limit_finds_the_same_outliers(monkeypatch, d):
    v = _blob(n=3000, d=d, far=(10, 1000, 2999), seed=1)
    exact = score_outliers(v, k=10)
    monkeypatch.setattr("qa.outliers.EXACT_MAX_ROWS", 500)
    approx = score_outliers(v, k=10)
    assert set(np.where(approx["is_outlier"])[0]) >= {10, 1000, 2999}
    top = lambda df: set(np.argsort(-df["score"].to_numpy())[:3])  # noqa: E731
    assert top(approx) == top(exact) == {10, 1000, 2999}
    # IVF only ever overestimates a neighbour distance; on a structureless Gaussian blob (its
    # worst case) the typical score is within 5 %
    assert (approx["score"] >= exact["score"] - 1e-4).all()
    assert np.median(approx["score"] / exact["score"]) < 1.05


def test_nearest_neighbors_and_fence_reference():
    v = np.array([[0, 0], [1, 0], [0, 2], [5, 5]], dtype=np.float32)
    d, i = nearest_neighbors(v, 2)
    assert i[0].tolist() == [1, 2] and d[0].tolist() == pytest.approx([1.0, 2.0])
    assert i[3].tolist() == [2, 1]
    # Tukey's fence of 1..8: Q1 2.75, Q3 6.25 (numpy's linear percentiles) -> 6.25 + 5.25
    assert iqr_fence(np.arange(1, 9)) == pytest.approx(11.5)


@pytest.mark.parametrize("bad,exc,match", [
    (np.zeros(5), ValueError, "2-D"),
    (np.array([[0.0, np.nan], [1, 1], [2, 2]]), ValueError, "NaN or infinite"),
    (np.array([["a", "b"]]), TypeError, "numeric"),
])
def test_bad_vectors_are_refused(bad, exc, match):
    with pytest.raises(exc, match=match):
        score_outliers(bad)


def test_bad_options_and_too_few_rows():
    v = _blob(n=20, far=(3,))
    with pytest.raises(ValueError, match="method must be one of"):
        score_outliers(v, method="zscore")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        score_outliers(v, k=0)
    with pytest.warns(OutliersWarning, match="at least 3 rows"):
        df = score_outliers(v[:2])
    assert df["score"].isna().all() and not df["is_outlier"].any()
    # k larger than the data is capped at n - 1, not an error
    assert score_outliers(v[:6], k=50)["score"].notna().all()


def test_class_outliers_find_a_mislabelled_point_and_what_it_looks_like():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 0.05, (30, 8)) + np.eye(8)[0]
    b = rng.normal(0, 0.05, (30, 8)) + np.eye(8)[1]
    v = np.vstack([a, b]).astype(np.float32)
    labels = np.array(["a"] * 30 + ["b"] * 30, dtype=object)
    labels[5] = "b"  # an 'a' labelled 'b'
    tiny = np.array(["c"] * 3, dtype=object)  # too small for a spread
    df = class_outliers(np.vstack([v, rng.normal(0, 1, (3, 8))]), np.concatenate([labels, tiny]))
    # the mislabelled point is the furthest beyond its class's fence, by a wide margin; on 60
    # Gaussian points Tukey's rule may also flag one ordinary point just past the fence
    order = df["excess"].sort_values(ascending=False)
    assert order.index[0] == 5 and df.loc[5, "excess"] > 1.5 * order.iloc[1]
    assert df.loc[5, "nearest_label"] == "a" and df.loc[5, "is_class_outlier"]
    assert df["is_class_outlier"].sum() <= 2
    assert df["class_fence"].iloc[-3:].isna().all()
    with pytest.raises(ValueError, match="one entry per row"):
        class_outliers(v, labels[:3])


def _classification_ds():
    """20 images, one label each (cat / dog): 1-8 look alike, 9-19 look alike, 20 is unlike
    anything; image 8 is labelled dog but lies with the cats."""
    n = 20
    im = pd.DataFrame({IMAGE_ID: range(1, n + 1), FILE_NAME: [f"{i}.jpg" for i in range(1, n + 1)],
                       SPLIT: ["train"] * n})
    cats = pd.DataFrame({CATEGORY_ID: [1, 2], NAME: ["cat", "dog"]})
    lab = [1] * 7 + [2] * 13
    an = pd.DataFrame({ANN_ID: range(1, n + 1), IMAGE_ID: range(1, n + 1), CATEGORY_ID: lab,
                       ANNOTATOR: "a"})
    return Dataset(images=im, categories=cats, annotations=an, name="cls")


def _classification_vectors():
    rng = np.random.default_rng(4)
    v = np.vstack([rng.normal(0, 0.05, (8, 8)) + np.eye(8)[0],
                   rng.normal(0, 0.05, (11, 8)) + np.eye(8)[1],
                   np.eye(8)[[4]] * 1.0]).astype(np.float32)  # image 20: unlike all others
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return Embeddings(v, list(range(1, 21)), "timm/x/y/pp1", False)


def test_compute_outliers_implements_the_result_protocol():
    ds = _classification_ds()
    res = compute_outliers(ds, _classification_vectors(), k=3)
    assert isinstance(res, OutliersResult) and isinstance(res, AnalysisResult)
    assert res.ANALYSIS == "outliers" and res.class_level == "images"
    assert res.flagged["image_id"].tolist() == [20]
    m = res.metrics()
    assert m == {"n_images_embedded": 20, "n_failed": 0, "n_outliers": 1,
                 "outlier_share": pytest.approx(1 / 20), "n_class_outliers": 2, "is_clip": 0}
    f = res.findings()
    assert list(f.columns) == list(FINDINGS_SCHEMA)
    assert f["kind"].tolist() == ["outlier", "class_outlier", "class_outlier"]
    assert (f["page"] == "outliers").all() and f["score"].between(0, 1).all()
    cls = f[(f["kind"] == "class_outlier") & (f["image_id"] == 8)].iloc[0]
    assert cls["category_id"] == 2 and "looks most like 'cat'" in cls["message"]
    assert "not CLIP" in f["message"].iloc[0]
    neighbours = res.flagged["neighbors"].iloc[0]
    assert len(neighbours) == 5 and 20 not in neighbours
    json.dumps(res.to_dict())  # JSON-safe
    exp = res.export_frame()
    assert exp["model"].str.contains("not CLIP").all() and len(exp) == 1
    with pytest.raises(TypeError, match="Embeddings"):
        compute_outliers(ds, np.zeros((20, 8)))


def test_detection_without_object_embeddings_says_class_outliers_were_not_measured():
    ds = _classification_ds()
    an = ds.annotations.assign(x=1.0, y=1.0, w=5.0, h=5.0)
    det = Dataset(images=ds.images, categories=ds.categories, annotations=an)
    res = compute_outliers(det, _classification_vectors(), k=3)
    assert res.metrics()["n_class_outliers"] is None and res.class_level is None
    assert any("object embeddings" in n for n in res.notes)


def test_embedding_map_methods():
    v = _blob(n=120, far=(3, 77))
    df, note = embedding_map(v)
    assert df.shape == (120, 3) and note == "PCA of 120 points"
    from sklearn.decomposition import PCA

    ref = PCA(2).fit_transform(v)
    for j, col in enumerate(("x", "y")):  # same axes up to sign
        assert abs(np.corrcoef(ref[:, j], df[col])[0, 1]) > 0.999
    ts, note = embedding_map(v, method="tsne", max_points=60)
    assert len(ts) == 60 and "random 60 of 120" in note and ts["row"].is_unique
    with pytest.raises(ValueError, match="map method must be one of"):
        embedding_map(v, method="mds")
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install umap-learn"):
            embedding_map(v, method="umap")


# ------------------------------------------------------------------ end to end on sample_data
@pytest.fixture(scope="module")
def sample_run():
    """sample_data embedded with the offline model. The store for these tests persists in
    .pytest_cache (git-ignored): vectors are keyed by the files' bytes and the model_id, so a
    kept entry is exactly what would be recomputed, and only the first run pays (~30 s on 2
    busy cores). QA_FRESH_SAMPLE_CACHE=1 starts from an empty store."""
    import os
    import shutil

    import qa
    from qa.embeddings import FALLBACK, embed_images
    from qa.store import CACHE_ENV

    folder = Path(__file__).resolve().parents[1] / ".pytest_cache" / "dataset-qa-sample"
    if os.environ.get("QA_FRESH_SAMPLE_CACHE") == "1":
        shutil.rmtree(folder, ignore_errors=True)
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    try:
        ds = qa.load(SAMPLE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            emb = embed_images(ds, model=FALLBACK)
        yield ds, emb
    finally:
        if old is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = old


def test_sample_top10_outliers_are_the_planted_ood_photos(sample_run):
    ds, emb = sample_run
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())
    ood = {d["image_id"] for d in planted["ood_images"]}
    res = compute_outliers(ds, emb)
    top10 = set(res.per_image.nsmallest(10, "rank")["image_id"])
    precision_at_10 = len(top10 & ood) / 10
    flagged = set(res.flagged["image_id"])
    recall_at_fence = len(flagged & ood) / len(ood)
    print(f"precision@10 {precision_at_10:.2f}, recall at the fence {recall_at_fence:.2f}, "
          f"{len(flagged)} flagged")
    assert precision_at_10 == 1.0
    assert recall_at_fence == 1.0 and len(flagged) <= 12
    # the corrupt and the missing file are reported, not embedded
    assert set(res.failed["image_id"]) == {planted["corrupt_file"]["image_id"],
                                           planted["missing_file"]["image_id"]}
    assert res.metrics()["n_images_embedded"] == 298


def test_run_analysis_uses_the_shared_cached_embeddings(sample_run):
    from qa.analyses import run_analyses

    ds, emb = sample_run
    run = run_analyses(ds, only=["outliers"], embeddings="cached", model="efficientnet-lite0")
    res = run.results["outliers"]
    assert res.metrics()["n_outliers"] == 10 and res.metrics()["is_clip"] == 0
    assert run.context.embeddings().n_computed == 0  # everything came from the store
