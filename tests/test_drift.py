"""qa.drift: two datasets (or two parts of one) compared.

References: KS and chi-square equal scipy's, MMD and PSI equal slow textbook loops written here.
Calibration: random halves of one dataset do not alarm (each test's p < 0.05 in at most 7 %).
Power: planted drift (a darker tenth, another class mix, a new kind of scene) is found and the
right cluster / images are named first. Versions: every kind of change is listed exactly."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import qa
from qa.dataset import Dataset
from qa.drift import (
    DriftResult,
    compare_datasets,
    compare_subsets,
    holm,
    median_bandwidth,
    mmd2_unbiased,
    mmd_permutation_test,
    population_stability_index,
    split_ids,
)
from qa.embeddings import Embeddings
from qa.results import FINDINGS_SCHEMA, AnalysisResult
from tests.conftest import SAMPLE

FEATURES = ["brightness", "contrast", "blur", "entropy", "colorfulness", "dark_share",
            "bright_share", "width", "height", "aspect"]


def realdata() -> Path | None:
    """../shared/realdata beside the checkout, $QA_REALDATA, or /work/shared/realdata."""
    for p in (os.environ.get("QA_REALDATA"),
              Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata",
              "/work/shared/realdata"):
        if p and Path(p).is_dir() and (Path(p) / "bccd").is_dir():
            return Path(p)
    return None


needs_realdata = pytest.mark.skipif(realdata() is None, reason="shared/realdata is absent")


# ------------------------------------------------------------------------------ builders
def label_ds(seed: int, n: int, probs=(0.6, 0.3, 0.1), *, first_id: int = 1, boxes=(1, 6),
             size_scale: float = 1.0, name: str = "d", classes=("car", "person", "bike"),
             clustered: bool = False) -> Dataset:
    """n images of 640 x 480 with 1-6 random boxes each, classes drawn with ``probs`` (all one
    class per image when ``clustered``). No image files."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + n)
    images = pd.DataFrame({"image_id": ids, "file_name": [f"{i}.jpg" for i in ids],
                           "width": 640, "height": 480})
    rows = []
    aid = first_id * 100
    for i in ids:
        k = rng.integers(boxes[0], boxes[1] + 1)
        cls_img = rng.choice(len(probs), p=probs)
        for _ in range(k):
            c = cls_img if clustered else rng.choice(len(probs), p=probs)
            w = float(rng.uniform(10, 120) * size_scale)
            h = float(w * rng.uniform(0.5, 2.0))
            rows.append(dict(ann_id=aid, image_id=int(i), category_id=int(c) + 1,
                             x=float(rng.uniform(0, 640 - w)),
                             y=float(rng.uniform(0, max(1.0, 480 - h))), w=w, h=h))
            aid += 1
    cats = pd.DataFrame({"category_id": range(1, len(classes) + 1), "name": list(classes)})
    return Dataset(images=images, categories=cats, annotations=pd.DataFrame(rows) if rows else None,
                   name=name)


def stats_table(ds: Dataset, seed: int, *, shift: dict | None = None) -> pd.DataFrame:
    """A pixel-pass table (qa.imagestats columns) of random plausible values."""
    rng = np.random.default_rng(seed)
    n = ds.n_images
    t = pd.DataFrame({"image_id": ds.images["image_id"].to_numpy(),
                      "brightness": rng.normal(120, 25, n), "contrast": rng.normal(50, 10, n),
                      "blur": rng.lognormal(5, 1, n), "entropy": rng.normal(7, 0.3, n),
                      "colorfulness": rng.gamma(4, 8, n), "dark_share": rng.beta(1, 20, n),
                      "bright_share": rng.beta(1, 30, n), "width": 640, "height": 480,
                      "aspect": 640 / 480, "sha256": [f"{seed}-{i}" for i in range(n)],
                      "error": None})
    for col, f in (shift or {}).items():
        t[col] = f(t[col].to_numpy(float), rng)
    return t


def emb(ids, vectors, model="test/model") -> Embeddings:
    v = np.asarray(vectors, np.float32)
    return Embeddings(v / np.linalg.norm(v, axis=1, keepdims=True), np.asarray(ids), model)


def blobs(rng, n, centers, probs, d=16, spread=0.35):
    lab = rng.choice(len(centers), size=n, p=probs)
    return centers[lab] + spread * rng.standard_normal((n, d)), lab


# ------------------------------------------------------------------------------ references
def test_ks_and_chi_square_equal_scipys():
    a, b = label_ds(1, 80, name="a"), label_ds(2, 70, (0.4, 0.4, 0.2), first_id=1000, name="b")
    sa, sb = stats_table(a, 1), stats_table(b, 2, shift={"brightness": lambda v, r: v - 15})
    res = compare_datasets(a, b, stats_a=sa, stats_b=sb, n_permutations=99)
    t = res.tests.set_index("test_id")
    for f in ("brightness", "contrast", "entropy", "colorfulness"):
        ref = stats.ks_2samp(sa[f], sb[f])
        assert t.at[f, "statistic"] == pytest.approx(ref.statistic, abs=1e-12)
        assert t.at[f, "p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    ref = stats.ks_2samp(np.log10(1 + sa["blur"]), np.log10(1 + sb["blur"]))
    assert t.at["sharpness", "statistic"] == pytest.approx(ref.statistic)
    # the class table and its chi-square (without Yates' correction)
    names = {1: "car", 2: "person", 3: "bike"}
    table = np.array([[(ds.annotations["category_id"].map(names) == c).sum() for c in
                       ("bike", "car", "person")] for ds in (a, b)])
    ref = stats.chi2_contingency(table, correction=False)
    assert t.at["class_mix", "statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert t.at["class_mix", "p_asymptotic"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert t.at["class_mix", "effect"] == pytest.approx(math.sqrt(ref.statistic / table.sum()))
    # box-level KS statistic on the boxes (its p-value comes from image permutations)
    rel = [np.sqrt(ds.annotations["w"] * ds.annotations["h"]) / np.sqrt(640 * 480)
           for ds in (a, b)]
    assert t.at["box_size", "statistic"] == pytest.approx(stats.ks_2samp(*rel).statistic)
    per = [ds.annotations.groupby("image_id").size().reindex(ds.images["image_id"],
                                                               fill_value=0) for ds in (a, b)]
    ref = stats.ks_2samp(*per)
    assert t.at["objects_per_image", "statistic"] == pytest.approx(ref.statistic)
    assert t.at["objects_per_image", "p_value"] == pytest.approx(ref.pvalue)


def psi_textbook(ref, cur, bins=10):
    """PSI by hand: decile edges of the reference, bins (e_i-1, e_i], empty bins 0.0001."""
    ref, cur = list(ref), list(cur)
    values = sorted(set(ref) | set(cur))
    if len(values) <= 20:
        groups = [[v] for v in values]
        share = lambda xs, g: sum(1 for x in xs if x in g) / len(xs)  # noqa: E731
    else:
        qs = sorted(set(float(np.quantile(ref, k / bins)) for k in range(1, bins)))
        lo = [-math.inf] + qs
        hi = qs + [math.inf]
        groups = list(zip(lo, hi))
        share = lambda xs, g: sum(1 for x in xs if g[0] < x <= g[1]) / len(xs)  # noqa: E731
    total = 0.0
    for g in groups:
        pa, pb = max(share(ref, g), 1e-4), max(share(cur, g), 1e-4)
        total += (pb - pa) * math.log(pb / pa)
    return total


@pytest.mark.parametrize("case", ["normal", "shifted", "categorical", "constant_reference"])
def test_psi_equals_the_textbook_formula(case):
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 300), rng.normal(0, 1, 250)
    if case == "shifted":
        b = b + 0.7
    elif case == "categorical":
        a, b = rng.integers(0, 5, 300).astype(float), rng.integers(1, 7, 250).astype(float)
    elif case == "constant_reference":
        a, b = np.zeros(100), np.r_[np.zeros(50), rng.uniform(0, 1, 50)]
    assert population_stability_index(a, b) == pytest.approx(psi_textbook(a, b), rel=1e-12)
    if case == "shifted":
        assert population_stability_index(a, b) > 0.25  # "major" shift
    if case == "normal":
        assert population_stability_index(a, b) < 0.1


def test_psi_noise_is_what_two_samples_of_one_population_show():
    from qa.drift import psi_noise

    rng = np.random.default_rng(12)
    for n_a, n_b in ((72, 205), (150, 150), (1000, 400)):
        psis = [population_stability_index(rng.normal(0, 1, n_a), rng.normal(0, 1, n_b))
                for _ in range(300)]
        assert np.mean(psis) == pytest.approx(psi_noise(10, n_a, n_b), rel=0.15)
    assert psi_noise(10, 100, 100) == pytest.approx(0.18)


def mmd_textbook(x, y, sigma):
    """Gretton et al. (2012), eq. 3, as a double loop."""
    k = lambda u, v: math.exp(-float(np.sum((u - v) ** 2)) / (2 * sigma ** 2))  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def test_mmd_equals_the_textbook_formula_and_rff_approximates_it():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, (40, 5)), rng.normal(0.4, 1, (35, 5))
    sigma = median_bandwidth(x, y)
    ref = mmd_textbook(x, y, sigma)
    assert mmd2_unbiased(x, y, bandwidth=sigma) == pytest.approx(ref, rel=1e-9)
    test = mmd_permutation_test(x, y, n_permutations=199)
    assert test["method"] == "exact"
    assert test["mmd2"] == pytest.approx(ref, rel=1e-5)  # float32 inputs
    for c, v in test["mmd2_by_scale"].items():  # every bandwidth tried
        assert v == pytest.approx(mmd_textbook(x, y, float(c) * sigma), rel=1e-5, abs=1e-9)
    assert test["p_value"] <= 0.01
    # above exact_max: random Fourier features; the statistic approximates the exact one
    x2, y2 = rng.normal(0, 1, (600, 16)), rng.normal(0.25, 1, (600, 16))
    exact = mmd_permutation_test(x2, y2, n_permutations=99)
    rff = mmd_permutation_test(x2, y2, n_permutations=99, exact_max=100)
    assert rff["method"].startswith("random Fourier features")
    assert rff["bandwidth"] == exact["bandwidth"]
    assert abs(rff["mmd2"] - exact["mmd2"]) < 0.25 * exact["mmd2"]  # D = 512: ~1/sqrt(D)
    assert rff["p_value"] <= 0.02 and exact["p_value"] <= 0.02
    same = mmd_permutation_test(x2[:300], x2[300:], n_permutations=99, exact_max=100)
    assert same["p_value"] > 0.05


def test_auc_and_its_delong_interval_equal_references():
    from sklearn.metrics import roc_auc_score

    from qa.drift import _auc_delong

    rng = np.random.default_rng(4)
    pos, neg = np.round(rng.normal(0.5, 1, 40), 1), np.round(rng.normal(0, 1, 55), 1)  # ties
    auc, se = _auc_delong(pos, neg)
    assert auc == pytest.approx(roc_auc_score(np.r_[np.ones(40), np.zeros(55)],
                                              np.r_[pos, neg]), abs=1e-12)
    # DeLong's variance by its definition: psi(x, y) = 1, 1/2, 0 over all pairs
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    ref = math.sqrt(v10.var(ddof=1) / 40 + v01.var(ddof=1) / 55)
    assert se == pytest.approx(ref, rel=1e-12)


def test_the_classifier_test_sees_a_shift_and_not_a_random_split():
    from qa.drift import classifier_two_sample_test

    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 64))
    y = rng.standard_normal((300, 64))
    y[:, 3] += 0.8  # B differs along one direction
    r = classifier_two_sample_test(x, y, seed=1)
    assert r["auc"] > 0.6 and r["p_value"] < 1e-4 and r["ci_low"] < r["auc"] < r["ci_high"]
    assert r["ci_low"] > 0.55 and r["dims"] == 32
    same = classifier_two_sample_test(x[:150], x[150:], seed=1)
    assert same["ci_low"] < 0.5 < same["ci_high"] and same["p_value"] > 0.05
    with pytest.raises(ValueError, match="at least 4 rows per side"):
        classifier_two_sample_test(x[:3], y)


def test_holm_matches_a_worked_example():
    # Holm (1979): p = (0.01, 0.04, 0.03, 0.005) -> sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm([np.nan, 0.2])[0]) and holm([np.nan, 0.2])[1] == 0.2


# ------------------------------------------------------------------------------ calibration
def _false_alarm_rates(ds, stats_, n_halves=100, **kw):
    ids = ds.images["image_id"].to_numpy()
    ps, verdicts = [], []
    for k in range(n_halves):
        p = np.random.default_rng(1000 + k).permutation(ids)
        h = len(p) // 2
        r = compare_subsets(ds, p[:h], p[h:], stats=stats_, seed=k, n_permutations=99, **kw)
        ps.append(r.tests.set_index("test_id")["p_value"])
        verdicts.append(r.verdict)
    return (pd.DataFrame(ps) < 0.05).mean(), np.mean(np.array(verdicts) == "drift")


@pytest.fixture(scope="module")
def sample_with_stats():
    from qa.imagestats import compute_image_stats

    ds = qa.load(SAMPLE)
    return ds, compute_image_stats(ds)


@pytest.fixture(scope="module")
def bccd_with_stats():
    if realdata() is None:
        pytest.skip("shared/realdata is absent")
    from qa.imagestats import compute_image_stats

    ds = qa.load(realdata() / "bccd")
    return ds, compute_image_stats(ds)


def test_random_halves_of_the_sample_do_not_alarm(sample_with_stats):
    rates, verdict_rate = _false_alarm_rates(*sample_with_stats)
    assert len(rates) >= 15  # labels (5 tests with 3 annotators), 10 pixel features, coverage
    assert (rates <= 0.07).all(), rates[rates > 0.07]
    assert verdict_rate <= 0.05


@needs_realdata
def test_random_halves_of_bccd_do_not_alarm(bccd_with_stats):
    """100 halves estimate a rate to +-2.2 points: a test at exactly 5 % exceeds 7 of 100 one
    time in eight. On these seeds contrast and bright share reach 8 of 100 (over 2,000
    other halves: 4.2 % and 2.5 %, benchmarks/eval_drift.py); so per test the bound here is
    Binomial(100, 0.05)'s 99th percentile, and the mean over the tests must stay under 5 %."""
    rates, verdict_rate = _false_alarm_rates(*bccd_with_stats)
    assert (rates <= 0.10).all(), rates[rates > 0.10]
    assert rates.mean() <= 0.05, rates
    assert verdict_rate <= 0.05


@needs_realdata
def test_bccd_pixel_tests_hold_their_rate_over_1000_halves(bccd_with_stats):
    """100 halves cannot tell a 5 % test from an 8 % one (8 of 100 happens one time in
    eight at 5 %); 1,000 can: a test at 7.5 % stays under 6.5 % of them less than one time
    in 100. The pixel statistics' tests (the images signal, as compare_subsets runs it) on
    1,000 random halves of BCCD, in seconds since the statistics are sliced, not recomputed.
    Measured with the whole pipeline in docs/drift.md."""
    from qa.drift import _images_drift, _Side

    ds, st = bccd_with_stats
    feats = _Side(ds, "all", st.table, None).features.set_index("image_id", drop=False)
    ids = ds.images["image_id"].to_numpy()
    hits = None
    n = 1000
    for k in range(n):
        p = np.random.default_rng(1000 + k).permutation(ids)
        sides = [_Side(ds, name, st.table, None, feats.loc[part].reset_index(drop=True))
                 for name, part in (("A", p[:182]), ("B", p[182:]))]
        t = pd.DataFrame(_images_drift(*sides, notes=[])["tests"]).set_index("test_id")
        alarm = t["p_value"] < 0.05
        hits = alarm.astype(int) if hits is None else hits + alarm.astype(int)
    rates = hits / n
    assert len(rates) == 10
    assert (rates <= 0.065).all(), rates[rates > 0.065]
    assert rates.mean() <= 0.05, rates


def test_image_permutations_keep_clustered_boxes_honest():
    """One class per image, 20 boxes each: the instance chi-square's textbook p-value alarms on
    most random halves; the image-permutation p-value at the nominal rate."""
    ds = label_ds(5, 200, (0.5, 0.3, 0.2), boxes=(20, 20), clustered=True)
    ids = ds.images["image_id"].to_numpy()
    naive, perm = [], []
    for k in range(30):
        p = np.random.default_rng(k).permutation(ids)
        t = compare_subsets(ds, p[:100], p[100:], seed=k, n_permutations=199).tests
        row = t.set_index("test_id").loc["class_mix"]
        naive.append(row["p_asymptotic"])
        perm.append(row["p_value"])
    assert np.mean(np.array(naive) < 0.05) > 0.5
    assert np.mean(np.array(perm) < 0.05) <= 0.1


def test_random_halves_of_embeddings_do_not_alarm():
    rng = np.random.default_rng(6)
    d = 16
    centers = rng.normal(0, 1, (5, d))
    v, _ = blobs(rng, 240, centers, [0.3, 0.25, 0.2, 0.15, 0.1], d=d)
    ds = label_ds(6, 240, boxes=(0, 0))  # images only: the embedding signals alone
    e = emb(ds.images["image_id"], v)
    hits = {"mmd": 0, "clusters": 0, "classifier": 0, "coverage_embeddings": 0}
    verdicts = 0
    for k in range(100):
        p = np.random.default_rng(k).permutation(ds.images["image_id"].to_numpy())
        r = compare_subsets(ds, p[:120], p[120:], embeddings=e, seed=k, n_permutations=99)
        t = r.tests.set_index("test_id")
        for name in hits:
            hits[name] += t.at[name, "p_value"] < 0.05
        verdicts += r.is_drift
    assert max(hits.values()) <= 7, hits
    assert verdicts <= 5


# ------------------------------------------------------------------------------ planted drift
def test_a_new_kind_of_scene_is_found_and_named_first():
    rng = np.random.default_rng(7)
    d = 16
    centers = rng.normal(0, 1, (5, d))
    va, _ = blobs(rng, 200, centers[:4], [0.25] * 4, d=d)
    vb, _ = blobs(rng, 200, centers[:4], [0.25] * 4, d=d)
    new = np.arange(180, 200)  # 10 % of B: a kind of scene A never shows
    vb[new] = centers[4] + 0.35 * rng.standard_normal((20, d))
    a, b = label_ds(1, 200, name="old"), label_ds(2, 200, first_id=1000, name="new")
    res = compare_datasets(a, b, embeddings_a=emb(a.images["image_id"], va),
                           embeddings_b=emb(b.images["image_id"], vb))
    sig = res.signals.set_index("signal")
    assert sig.at["embeddings", "drift"] and sig.at["coverage", "drift"]
    t = res.tests.set_index("test_id")
    assert t.at["clusters", "p_value"] < t.at["mmd", "p_value"]  # a local change
    new_ids = set(b.images["image_id"].to_numpy()[new].tolist())
    first = res.clusters.iloc[0]
    assert first["cluster"] == 1 and first["n_a"] == 0 and first["n_b"] == 20
    assert set(first["examples_b"]) <= new_ids
    top = res.uncovered.head(20)
    assert set(top["image_id"]) == new_ids
    assert "cluster 1: 0% → 10%" in res.summary


def test_another_class_mix_is_found_and_its_cluster_named_first():
    rng = np.random.default_rng(8)
    d = 16
    centers = rng.normal(0, 1, (3, d))
    a = label_ds(1, 300, (0.6, 0.3, 0.1), boxes=(1, 1), name="old")
    b = label_ds(2, 300, (0.3, 0.3, 0.4), boxes=(1, 1), first_id=1000, name="new")

    def vectors(ds):  # an image looks like its (one) object's class
        c = ds.annotations.sort_values("image_id")["category_id"].to_numpy() - 1
        return centers[c] + 0.35 * rng.standard_normal((len(c), d))

    res = compare_datasets(a, b, embeddings_a=emb(a.images["image_id"], vectors(a)),
                           embeddings_b=emb(b.images["image_id"], vectors(b)))
    t = res.tests.set_index("test_id")
    assert t.at["class_mix", "drift"]
    cm = res.class_mix.set_index("name")
    assert set(cm.index[:2]) == {"bike", "car"}  # the two changed classes first
    assert cm.at["bike", "significant"] and cm.at["bike", "ci_low"] > 0.1  # 0.1 -> 0.4
    assert cm.at["car", "significant"] and cm.at["car", "ci_high"] < -0.1  # 0.6 -> 0.3
    assert not cm.at["person", "significant"]
    ids_of = lambda ds, c: set(ds.annotations.loc[ds.annotations["category_id"] == c,  # noqa
                                                  "image_id"])
    cl = res.clusters
    more = cl[cl["direction"] == "more in new"].iloc[0]
    less = cl[cl["direction"] == "less in new"].iloc[0]
    assert set(more["examples_b"]) <= ids_of(b, 3)  # bikes
    assert set(less["examples_a"]) <= ids_of(a, 1)  # cars


def _scene(rng, size=(64, 48)):
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:] = np.linspace(60, 200, w, dtype=np.uint8)[None, :, None]
    for _ in range(5):
        x, y = rng.integers(0, w - 12), rng.integers(0, h - 12)
        arr[y:y + rng.integers(6, 12), x:x + rng.integers(6, 12)] = rng.integers(40, 255, 3)
    return arr


def folder(tmp: Path, n: int, seed: int, dark=()) -> Dataset:
    from PIL import Image

    from tests.test_imagestats import folder_ds

    rng = np.random.default_rng(seed)
    files = {}
    for i in range(n):
        arr = _scene(rng)
        if i in dark:
            arr = (arr * 0.25).astype(np.uint8)
        files[f"im{seed}_{i:03d}.png"] = arr
    del Image
    return folder_ds(tmp, files)


def test_a_darker_tenth_is_found_from_the_pixels(tmp_path):
    from qa.imagestats import compute_image_stats

    a = folder(tmp_path / "a", 80, 1)
    dark = set(range(0, 80, 10))  # 8 of 80 images much darker
    b = folder(tmp_path / "b", 80, 2, dark=dark)
    res = compare_datasets(a, b, stats_a=compute_image_stats(a), stats_b=compute_image_stats(b),
                           n_permutations=199)
    assert res.is_drift
    sig = res.signals.set_index("signal")
    assert sig.at["coverage", "drift"] and res.coverage_space == "image statistics"
    assert res.uncovered.head(8)["space"].eq("image statistics").all()
    dark_ids = set(b.images["image_id"].to_numpy()[sorted(dark)].tolist())
    assert set(res.uncovered.head(8)["image_id"]) == dark_ids
    f = res.image_features.set_index("feature")
    assert f.at["brightness", "median_b"] < f.at["brightness", "median_a"]
    assert f.at["dark_share", "psi"] > 0.1


def test_a_darker_tenth_is_the_first_cluster_even_when_the_embedder_ignores_light(tmp_path):
    """Embeddings that do not see brightness (random vectors, as an embedder trained to
    ignore lighting files dark pictures with their scene): the clusters are fitted beside
    the pixel statistics, so the darkened images form a cluster, and it is named first."""
    from qa.imagestats import compute_image_stats

    a = folder(tmp_path / "a", 80, 1)
    dark = set(range(0, 80, 10))
    b = folder(tmp_path / "b", 80, 2, dark=dark)
    rng = np.random.default_rng(3)
    blind = lambda ds: emb(ds.images["image_id"], rng.standard_normal((ds.n_images, 16)))  # noqa
    res = compare_datasets(a, b, stats_a=compute_image_stats(a), stats_b=compute_image_stats(b),
                           embeddings_a=blind(a), embeddings_b=blind(b), n_permutations=199)
    dark_ids = set(b.images["image_id"].to_numpy()[sorted(dark)].tolist())
    first = res.clusters.iloc[0]
    assert first["cluster"] == 1 and first["n_b"] >= 8 and first["n_a"] <= 1, res.clusters
    assert set(first["examples_b"]) <= dark_ids
    assert res.embedding["cluster_space"] == "embeddings and pixel statistics"
    # ranked by the significance of the change: |z| falls down the table
    z = res.clusters["z"].abs().to_numpy()
    assert (np.diff(z) <= 1e-12).all()
    # without the pixel statistics the same vectors give clusters of noise: nothing to name
    res2 = compare_datasets(a, b, embeddings_a=blind(a), embeddings_b=blind(b),
                            n_permutations=199)
    assert res2.embedding["cluster_space"] == "embeddings"
    assert not set(res2.clusters.iloc[0]["examples_b"]) <= dark_ids


def test_keeping_only_images_with_a_class_shows_in_class_presence():
    """sample_data: B = the images of a random half that hold a square. The square's share
    of the *labels* moves little (the other objects of those images come along), its share
    of the *images* goes to 100 %: the class-presence test finds it."""
    ds = qa.load(SAMPLE)
    ids = ds.images["image_id"].to_numpy()
    p = np.random.default_rng(7).permutation(ids)
    square = next(k for k, v in ds.category_names.items() if v == "square")
    holds = set(ds.annotations.loc[ds.annotations["category_id"] == square, "image_id"])
    b_ids = [i for i in p[len(p) // 2:] if i in holds]
    res = compare_subsets(ds, p[:len(p) // 2], b_ids, n_permutations=999)
    t = res.tests.set_index("test_id")
    assert t.at["class_presence", "drift"] and t.at["class_presence", "p_value"] <= 0.002
    assert t.at["class_presence", "effect"] > 1.0  # Cohen's h: ~55 % -> 100 %
    assert "images holding square" in t.at["class_presence", "summary"]
    assert res.is_drift
    cm = res.class_mix.set_index("name")
    assert cm.at["square", "image_share_b"] == 1.0
    assert cm.at["square", "images_b"] == len(b_ids)
    assert cm.at["square", "image_share_a"] < 0.7


# ------------------------------------------------------------------------------ real pairs
@needs_realdata
def test_bccd_train_is_like_its_test_and_unlike_the_raccoons(bccd_with_stats):
    from qa.imagestats import compute_image_stats

    ds, st = bccd_with_stats
    same = compare_subsets(ds, split_ids(ds, "train"), split_ids(ds, "test"), stats=st,
                           names=("train", "test"))
    assert same.verdict == "no drift", same.summary
    rac_root = realdata() / "raccoon"
    rac = qa.load(rac_root / "annotations", format="voc", image_root=rac_root / "images")
    diff = compare_datasets(ds, rac, stats_a=st, stats_b=compute_image_stats(rac))
    measured = diff.signals[diff.signals["measured"]]
    assert set(measured["signal"]) == {"labels", "images", "coverage"}
    assert measured["drift"].all(), diff.signals
    assert diff.metrics()["uncovered_share"] > 0.9


# ------------------------------------------------------------------------------ versions
def test_versions_list_files_and_label_changes():
    base = label_ds(9, 6, boxes=(2, 2), name="v1")
    im = base.images.copy()
    # two boxes per image, far apart: 100 x 100 at x = 10 and x = 400
    an = pd.DataFrame([dict(ann_id=10 * i + k, image_id=i, category_id=1 + (i + k) % 3,
                            x=10.0 + 390 * k, y=50.0, w=100.0, h=100.0, annotator="alice")
                       for i in range(1, 7) for k in range(2)])
    v1 = Dataset(images=im, categories=base.categories, annotations=an, name="v1")
    im2, an2 = im.copy(), an.copy()
    im2 = im2[im2["image_id"] != 6]  # 6.jpg removed (with its 2 labels)
    im2.loc[im2["image_id"] == 5, "file_name"] = "5_renamed.jpg"
    im2 = pd.concat([im2, pd.DataFrame({"image_id": [7], "file_name": ["7.jpg"],
                                        "width": [640], "height": [480]})])
    an2 = an2[an2["image_id"] != 6]
    an2.loc[an2["ann_id"] == 10, "x"] += 20  # image 1: a box moved (IoU 80/120)
    an2.loc[an2["ann_id"] == 21, "category_id"] = 1 + (2 + 1 + 1) % 3  # image 2: relabelled
    an2 = an2[an2["ann_id"] != 30]  # image 3: a box removed
    an2.loc[an2["ann_id"] == 40, "x"] += 0.6  # image 4: sub-pixel re-export: no change
    extra = pd.DataFrame([dict(ann_id=9001, image_id=4, category_id=1, x=200.0, y=300.0,
                               w=40.0, h=40.0, annotator="bob"),
                          dict(ann_id=9002, image_id=7, category_id=2, x=1.0, y=1.0, w=9.0,
                               h=9.0, annotator="alice")])
    an2 = pd.concat([an2, extra])  # image 4: bob adds one; 7.jpg new with one label
    v2 = Dataset(images=im2, categories=base.categories, annotations=an2, name="v2")
    sha = {i: f"h{i}" for i in range(1, 8)}
    sha[3] = "h3-edited"  # 3.jpg's bytes changed
    s1 = pd.DataFrame({"image_id": im["image_id"], "sha256": im["image_id"].map(
        {i: f"h{i}" for i in range(1, 7)}), "error": None})
    s2 = pd.DataFrame({"image_id": im2["image_id"], "sha256": im2["image_id"].map(sha),
                       "error": None})
    res = compare_datasets(v1, v2, stats_a=s1, stats_b=s2, n_permutations=99)
    assert res.has_versions
    status = dict(zip(res.files["file_name"], res.files["status"]))
    assert status == {"1.jpg": "unchanged", "2.jpg": "unchanged", "3.jpg": "changed",
                      "4.jpg": "unchanged", "5.jpg": "renamed", "6.jpg": "removed",
                      "7.jpg": "added"}
    assert res.files.set_index("file_name").at["5.jpg", "renamed_to"] == "5_renamed.jpg"
    ch = res.label_changes
    got = sorted(zip(ch["file_name"], ch["annotator"], ch["change"]))
    assert got == sorted([("1.jpg", "alice", "moved"), ("2.jpg", "alice", "relabelled"),
                          ("3.jpg", "alice", "removed"), ("4.jpg", "bob", "added"),
                          ("6.jpg", "alice", "removed"), ("6.jpg", "alice", "removed"),
                          ("7.jpg", "alice", "added")])
    moved = ch[ch["change"] == "moved"].iloc[0]
    assert moved["ann_id_a"] == 10 and moved["iou"] == pytest.approx(80 / 120)
    rel = ch[ch["change"] == "relabelled"].iloc[0]
    assert (rel["class_a"], rel["class_b"]) == ("car", "person")
    m = res.metrics()
    assert (m["n_files_added"], m["n_files_removed"], m["n_files_changed"]) == (1, 1, 1)
    assert m["n_labels_changed"] == 7 and m["n_labels_relabelled"] == 1
    summary = res.changes_summary
    assert summary["labels"].sum() == 7 and set(summary.columns) == {"annotator", "class",
                                                                    "change", "labels"}


def test_unrelated_datasets_with_the_same_file_names_are_not_versions():
    a, b = label_ds(1, 20, name="a"), label_ds(2, 20, name="b")  # both 1.jpg ... 20.jpg
    res = compare_datasets(a, b, stats_a=stats_table(a, 1), stats_b=stats_table(b, 2),
                           n_permutations=99)
    assert not res.has_versions and res.metrics()["n_files_added"] is None


# ------------------------------------------------------------------------------ the protocol
def test_result_follows_the_analysis_protocol():
    rng = np.random.default_rng(10)
    a, b = label_ds(1, 60, name="a"), label_ds(2, 60, (0.2, 0.2, 0.6), first_id=500, name="b")
    c0, c1 = np.eye(8)[0] * 3, np.eye(8)[1] * 3
    va = c0 + rng.normal(0, 0.5, (60, 8))
    vb = np.r_[c0 + rng.normal(0, 0.5, (50, 8)), c1 + rng.normal(0, 0.2, (10, 8))]
    res = compare_datasets(a, b, stats_a=stats_table(a, 1), stats_b=stats_table(b, 2),
                           embeddings_a=emb(a.images["image_id"], va),
                           embeddings_b=emb(b.images["image_id"], vb))
    assert isinstance(res, AnalysisResult) and isinstance(res, DriftResult)
    f = res.findings()
    assert list(f.columns) == list(FINDINGS_SCHEMA)
    assert set(f["kind"]) == {"drift", "not_covered"} and set(f["page"]) == {"compare"}
    cov = f[f["kind"] == "not_covered"]
    assert cov["image_id"].isin(b.images["image_id"]).all()
    assert (cov["related_image_ids"] == ()).all()  # A's ids are another dataset's
    assert cov["score"].between(0, 1).all() and cov["score"].is_monotonic_decreasing
    m = res.metrics()
    assert m["is_drift"] == 1 and m["n_drift_signals"] >= 2 and m["n_signals"] == 4
    json.dumps(res.to_dict())  # JSON-safe
    # the adjusted p-values: Bonferroni over 4 signals x Holm within
    t = res.tests
    img = t[t["signal"] == "images"]
    assert (img["p_adjusted"] >= img["p_value"]).all()
    emb_t = t[t["signal"] == "embeddings"]  # 2 tests: Holm within, x 4 signals
    assert emb_t["p_adjusted"].tolist() == pytest.approx(
        np.minimum(1, 4 * holm(emb_t["p_value"])).tolist())


def test_subsets_keep_the_datasets_ids_and_relate_neighbours():
    ds = label_ds(11, 60)
    rng = np.random.default_rng(11)
    c0, c1 = np.eye(8)[0] * 3, np.eye(8)[1] * 3
    v = np.r_[c0 + rng.normal(0, 0.5, (50, 8)), c1 + rng.normal(0, 0.2, (10, 8))]
    e = emb(ds.images["image_id"], v)
    ids = ds.images["image_id"].to_numpy()
    res = compare_subsets(ds, ids[:30], ids[30:], embeddings=e, names=("old", "new"),
                          n_permutations=99)
    cov = res.findings().query("kind == 'not_covered'")
    assert set(ids[50:]) <= set(cov["image_id"])
    assert all(len(t) == 1 and t[0] in ids[:30] for t in cov["related_image_ids"])
    assert res.name_a == "old" and "new" in res.summary


def test_what_cannot_be_measured_is_said():
    a, b = label_ds(1, 30, name="a"), label_ds(2, 30, name="b")
    res = compare_datasets(a, b, n_permutations=99)
    sig = res.signals.set_index("signal")
    assert sig.at["labels", "measured"]
    assert not sig.at["images", "measured"] and "image statistics" in sig.at["images", "reason"]
    assert not sig.at["embeddings", "measured"] and "embed" in sig.at["embeddings", "reason"]
    tiny = compare_datasets(label_ds(1, 3), label_ds(2, 3), n_permutations=99)
    assert tiny.verdict == "not measured" and "too few images" in tiny.summary


def test_bad_input_is_refused_in_words():
    a = label_ds(1, 10)
    with pytest.raises(TypeError, match="needs two qa.Dataset"):
        compare_datasets(a, "b.json")
    with pytest.raises(ValueError, match="alpha must be a probability"):
        compare_datasets(a, a, alpha=5)
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 19"):
        compare_datasets(a, a, n_permutations=5)
    with pytest.raises(ValueError, match="not in the dataset"):
        compare_subsets(a, [1, 2, 3], [99, 100])
    with pytest.raises(ValueError, match="different models"):
        compare_datasets(a, a, embeddings_a=emb([1, 2], np.eye(2)),
                         embeddings_b=emb([1, 2], np.eye(2), model="other"))
    with pytest.raises(TypeError, match="stats must be qa.imagestats.ImageStats"):
        compare_datasets(a, a, stats_a=[1, 2])
    with pytest.raises(ValueError, match="annotator 'zoe' has no labels in A"):
        compare_datasets(a, a, annotator="zoe")


def test_the_report_runner_needs_a_reference(tmp_path, monkeypatch, coco_dir):
    from qa.analyses import run_analyses
    from qa.drift import REFERENCE_ENV

    monkeypatch.delenv(REFERENCE_ENV, raising=False)
    ds = qa.load(coco_dir)
    run = run_analyses(ds, only=["drift"], embeddings="skip")
    assert "no reference dataset configured" in run.skipped["drift"]
    run = run_analyses(ds, only=["drift"], embeddings="skip",
                       options={"drift": {"reference": str(coco_dir)}})
    res = run.results["drift"]
    assert res.name_a.startswith("the reference") and res.verdict in ("no drift",
                                                                      "not measured")
    run = run_analyses(ds, only=["drift"], embeddings="skip",
                       options={"drift": {"reference": str(tmp_path / "nope")}})
    assert "could not be loaded" in run.errors.get("drift", "") + run.skipped.get("drift", "")
