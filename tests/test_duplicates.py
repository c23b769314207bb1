"""Tests of qa.duplicates: Hamming and vector search against brute force, clusters and their
suggestions, leakage and inconsistent labels, and the planted pairs of sample_data."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

import qa
from qa.dataset import ANN_ID, ANNOTATOR, CATEGORY_ID, IMAGE_ID, H, W, X, Y
from qa.duplicates import (
    DEFAULT_THRESHOLDS,
    DuplicatesResult,
    compute_duplicates,
    find_hash_pairs,
    find_near_duplicates,
)
from qa.embeddings import Embeddings
from qa.imagestats import compute_image_stats
from qa.results import FINDINGS_SCHEMA, AnalysisResult
from tests.conftest import SAMPLE
from tests.test_imagestats import folder_ds, scene


# ------------------------------------------------------------------------------ Hamming search
def brute_hamming(q: np.ndarray, c: np.ndarray, radius: int, self_search: bool) -> set:
    out = set()
    for i in range(len(q)):
        d = np.bitwise_count(q[i][None, :] ^ c).sum(axis=1)
        for j in np.flatnonzero(d <= radius):
            if (i < j) if self_search else (i != j):
                out.add((i, int(j), int(d[j])))
    return out


def planted_codes(n: int, words: int, radius: int, n_pairs: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=(n, words), dtype=np.uint64) * np.uint64(2) + \
        rng.integers(0, 2, size=(n, words), dtype=np.uint64)
    for a, b in rng.choice(n, size=(n_pairs, 2), replace=False):
        bits = np.unpackbits(codes[a].astype(">u8").view(np.uint8))
        flip = rng.choice(len(bits), rng.integers(0, radius + 2), replace=False)
        bits[flip] ^= 1
        codes[b] = np.packbits(bits).view(">u8").astype(np.uint64)
    return codes


@pytest.mark.parametrize("words, radius", [(1, 6), (2, 12), (1, 0), (2, 3)])
def test_hash_pairs_equal_brute_force(words, radius):
    codes = planted_codes(1500, words, radius, 60, seed=radius + words)
    got = find_hash_pairs(codes if words > 1 else codes[:, 0], radius=radius)
    want = brute_hamming(codes, codes, radius, True)
    assert set(zip(got["i"], got["j"], got["distance"])) == want
    assert len(want) >= 25  # the planted pairs within the radius (some got radius + 1 flips)
    assert (got["i"] < got["j"]).all()


def test_hash_pairs_with_queries_and_input_checks():
    codes = planted_codes(800, 2, 8, 30, seed=5)
    rng = np.random.default_rng(1)
    queries = codes.copy()
    queries[rng.choice(800, 400, replace=False)] ^= np.uint64(0b1011)  # 3 bits off
    got = find_hash_pairs(codes, radius=8, queries=queries)
    want = brute_hamming(queries, codes, 8, False)
    assert set(zip(got["i"], got["j"], got["distance"])) == want and len(want) > 30
    assert find_hash_pairs(np.array([5], np.uint64), radius=3).empty
    with pytest.raises(ValueError, match="whole number of bits"):
        find_hash_pairs(codes, radius=-1)
    with pytest.raises(TypeError, match="uint64 hashes"):
        find_hash_pairs(np.ones((3, 2), float), radius=1)
    with pytest.raises(ValueError, match="shape of codes"):
        find_hash_pairs(codes, radius=1, queries=codes[:5])


# ------------------------------------------------------------------------------ vector search
def planted_vectors(n: int, d: int, n_pairs: int, seed: int, noise: float = 0.12):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    a = rng.choice(n, n_pairs, replace=False)
    b = rng.choice(np.setdiff1d(np.arange(n), a), n_pairs, replace=False)
    x[b] = x[a] + noise * rng.normal(size=(n_pairs, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_cosine(x, threshold) -> set:
    s = x @ x.T
    i, j = np.nonzero(np.triu(s >= threshold, 1))
    return set(zip(i.tolist(), j.tolist()))


def test_exact_vector_search_equals_brute_force():
    x = planted_vectors(600, 32, 25, seed=0)
    got = find_near_duplicates(x * 3.0, threshold=0.95)  # unnormalised input is normalised
    want = brute_cosine(x, 0.95)
    assert set(zip(got["i"], got["j"])) == want and len(want) >= 25
    assert got["similarity"].is_monotonic_decreasing and (got["similarity"] >= 0.95).all()
    ref = (x[got["i"]] * x[got["j"]]).sum(axis=1)
    np.testing.assert_allclose(got["similarity"], ref, atol=1e-5)


def test_ivf_search_above_the_exact_size_keeps_recall():
    x = planted_vectors(4000, 64, 100, seed=1)
    got = find_near_duplicates(x, threshold=0.9, exact_max=1000)
    want = brute_cosine(x, 0.9)
    found = set(zip(got["i"], got["j"]))
    assert found <= want and len(found & want) / len(want) >= 0.95
    assert not got.duplicated(["i", "j"]).any()
    # the 8-bit codes only select candidates: the similarities reported are exact
    np.testing.assert_allclose(got["similarity"], (x[got["i"]] * x[got["j"]]).sum(axis=1),
                               atol=1e-5)


def test_vector_input_checks():
    with pytest.raises(ValueError, match="2-D"):
        find_near_duplicates(np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        find_near_duplicates(np.array([[1.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="cosine similarity"):
        find_near_duplicates(np.eye(3), threshold=1.5)
    with pytest.raises(TypeError, match="numbers"):
        find_near_duplicates(np.array([["a", "b"]]))
    assert find_near_duplicates(np.zeros((1, 4))).empty
    # zero rows never match anything, even each other
    assert find_near_duplicates(np.zeros((3, 4)), threshold=0.0).empty


# ------------------------------------------------------------------------------ on tiny datasets
def tiny(tmp_path, *, splits, labels=None, names=None):
    """Images: 1 = scene, 2 = the same bytes, 3 = its mirror, 4 = another scene, 5 = the
    first re-saved as JPEG; ``labels``: {image_id: [(annotator, category)]}."""
    import io

    from PIL import Image

    pic = scene(7, (128, 96))
    buf = io.BytesIO()
    Image.fromarray(pic).save(buf, format="PNG")
    files = {"a.png": buf.getvalue(), "a_copy.png": buf.getvalue(),
             "a_flip.png": pic[:, ::-1].copy(), "other.png": scene(8, (128, 96)),
             "a.jpg": pic}
    ds = folder_ds(tmp_path, files, splits=splits)
    if names:
        ds.images["file_name"] = names
    # one box at the centre, where the mirror keeps it (a flipped copy's labels flip too)
    cy, cx = (pic.shape[0] - 5) / 2, (pic.shape[1] - 5) / 2
    rows = [(100 * i + k, i, c, cx, cy, 5.0, 5.0, a) for i, lab in (labels or {}).items()
            for k, (a, c) in enumerate(lab)]
    anns = pd.DataFrame(rows, columns=[ANN_ID, IMAGE_ID, CATEGORY_ID, X, Y, W, H, ANNOTATOR])
    cats = pd.DataFrame({CATEGORY_ID: [1, 2], "name": ["cat", "dog"]})
    return qa.Dataset(images=ds.images, categories=cats, annotations=anns, root=tmp_path)


def test_tiny_dataset_clusters_leakage_and_labels(tmp_path):
    ds = tiny(tmp_path, splits=["test", "val", "train", "train", "test"],
              labels={1: [("x", 1)], 2: [("x", 2)], 3: [("x", 1)], 5: [("x", 1)]})
    res = compute_duplicates(ds)
    pairs = {(a, b): m for a, b, m in res.pairs[["image_id_a", "image_id_b", "method"]]
             .itertuples(index=False)}
    assert pairs[(1, 2)] == "sha256"
    assert pairs[(1, 3)] == "phash" and pairs[(1, 5)] == "phash"
    assert not any(4 in p for p in pairs)
    assert res.pairs.set_index(["image_id_a", "image_id_b"]).loc[(1, 3), "flipped"]
    # one cluster {1, 2, 3, 5}; the train copy (3) is kept, the val/test copies leak
    assert res.clusters["cluster_id"].nunique() == 1
    keep = res.clusters[res.clusters["action"] == "keep"]
    assert keep["image_id"].tolist() == [3] and "train copy" in keep["reason"].iloc[0]
    assert sorted(res.removal["image_id"]) == [1, 2, 5]
    assert all("leaks a_flip.png (train)" in r for r in res.removal["reason"])
    m = res.metrics()
    # (2, 3) and (2, 5) are not confirmed: the copy labelled dog against copies labelled cat
    # at the same place disagree on every labelled object (a king and a queen on one square
    # look alike on the pixels); the cluster still holds all four through (1, 2)
    assert m["n_exact_pairs"] == 1 and m["n_near_pairs"] == 3 and m["n_clusters"] == 1
    assert m["n_leaking_images"] == 3 and m["n_inconsistent_label_clusters"] == 1
    # splits 1 test, 2 val, 3 train, 5 test: (1, 2), (1, 3) and (3, 5) cross
    assert m["n_cross_split_pairs"] == 3
    assert "dog" in res.inconsistent["labels"].iloc[0] and res.inconsistent["annotator"].iloc[0] == "x"
    f = res.findings()
    assert set(f["kind"]) == {"exact_duplicate", "near_duplicate", "leakage",
                              "inconsistent_labels"}
    leak = f[f["kind"] == "leakage"]
    assert (leak["severity"] == "error").all() and set(leak["image_id"]) == {1, 2, 5}
    assert all(len(r) >= 1 for r in f["related_image_ids"])


def test_within_split_keeps_labelled_largest_and_listed_twice(tmp_path):
    ds = tiny(tmp_path, splits=["train"] * 5, labels={2: [("x", 1)]},
              names=["a.png", "a_copy.png", "a_flip.png", "other.png", "./other.png"])
    res = compute_duplicates(ds, method="exact")
    assert res.methods_used == ("exact",)
    pairs = res.pairs.set_index(["image_id_a", "image_id_b"])["method"].to_dict()
    assert pairs == {(1, 2): "sha256", (4, 5): "same file"}
    keep = res.clusters.set_index("image_id")["action"].to_dict()
    assert keep[2] == "keep" and keep[1] == "remove"  # the labelled copy is kept
    assert res.metrics()["n_listed_twice"] == 1 and res.metrics()["n_cross_split_pairs"] == 0
    assert "listed_twice" in set(res.findings()["kind"])
    # threshold 1.0 on the phash method means Hamming radius 0
    strict = compute_duplicates(ds, method="phash", threshold=1.0)
    assert strict.hash_radius == 0


def test_embedding_path_on_synthetic_vectors(tmp_path):
    ds = tiny(tmp_path, splits=["train", "train", "train", "test", "train"])
    rng = np.random.default_rng(3)
    v = rng.normal(size=(5, 16)).astype(np.float32)
    v[3] = v[0] + 0.01 * rng.normal(size=16)  # "other" is semantically image 1's twin
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    emb = Embeddings(vectors=v, image_ids=[1, 2, 3, 4, 5], model_id="test/random")
    # the embedding method adds to the perceptual one, never replaces it; the pixels decide
    res = compute_duplicates(ds, embeddings=emb, method="embedding")
    assert res.methods_used == ("exact", "phash", "embedding", "pixels")
    found = res.pairs.set_index(["image_id_a", "image_id_b"])["method"].to_dict()
    assert found[(1, 2)] == "sha256" and {(1, 3), (1, 5)} <= set(found)
    # the embedding's "twin" is another picture: proposed, compared, rejected, with a reason
    rej = res.rejected.set_index(["image_id_a", "image_id_b"])
    assert (1, 4) not in found and "embedding" in rej.loc[(1, 4), "proposed_by"]
    assert rej.loc[(1, 4), "verdict"] == "different" and rej.loc[(1, 4), "reason"]
    assert set(res.pairs["decided_by"]) == {"the same bytes", "pixels"}
    # without verification the thresholds decide, and the embedding pair is kept
    raw = compute_duplicates(ds, embeddings=emb, method="embedding", verify=False)
    assert (1, 4) in set(zip(raw.pairs["image_id_a"], raw.pairs["image_id_b"]))
    assert raw.threshold == DEFAULT_THRESHOLDS["embedding"]
    assert raw.metrics()["n_leaking_images"] >= 1
    # auto adds the embeddings too (any model: the pixels verify what they propose)
    auto = compute_duplicates(ds, embeddings=emb)
    assert auto.methods_used == ("exact", "phash", "embedding", "pixels")
    with pytest.raises(ValueError, match="needs embeddings"):
        compute_duplicates(ds, method="embedding")
    with pytest.raises(ValueError, match="method must be one of"):
        compute_duplicates(ds, method="sift")
    with pytest.raises(ValueError, match="object embeddings"):
        compute_duplicates(ds, embeddings=Embeddings(v, [1, 2, 3, 4, 5], "m", ann_ids=[1] * 5),
                           method="embedding")


# ------------------------------------------------------------------------------ sample_data
@pytest.fixture(scope="module")
def sample():
    ds = qa.load(SAMPLE)
    return ds, compute_image_stats(ds), json.loads((SAMPLE / "PLANTED.json").read_text())


def test_sample_planted_pairs_found_with_few_false_pairs(sample):
    ds, stats, planted = sample
    res = compute_duplicates(ds, stats=stats)
    found = {frozenset(p) for p in zip(res.pairs["image_id_a"], res.pairs["image_id_b"])}
    near = {frozenset((p["a"], p["b"])) for p in planted["near_duplicates"]}
    exact = {frozenset((p["a"], p["b"])) for p in planted["exact_duplicates"]}
    recall = len(found & (near | exact)) / len(near | exact)
    precision = len(found & (near | exact)) / len(found)
    print(f"sample_data duplicates: recall {recall:.3f}, precision {precision:.3f}, "
          f"{len(found - near - exact)} false pairs")
    assert recall == 1.0 and len(found - near - exact) <= 3
    exact_found = {frozenset(p) for p in zip(res.exact_pairs["image_id_a"],
                                             res.exact_pairs["image_id_b"])}
    assert exact_found == exact  # the re-compressed copies are near, not exact
    cross = {frozenset((p["a"], p["b"])) for p in planted["near_duplicates"] +
             planted["exact_duplicates"] if p["cross_split"]}
    leak = {frozenset(p) for p in zip(res.leakage["image_id_a"], res.leakage["image_id_b"])}
    assert len(cross) == 6 and cross <= leak
    f = res.findings()
    assert {frozenset((int(i), *r)) for i, r in zip(f.loc[f["kind"] == "leakage", "image_id"],
            f.loc[f["kind"] == "leakage", "related_image_ids"])} == cross
    # every leaking copy (the val/test one) is suggested for removal, its train twin kept
    planted_copies = {p["b"] for p in planted["near_duplicates"] + planted["exact_duplicates"]
                      if p["cross_split"]}
    assert planted_copies <= set(res.removal["image_id"])
    m = res.metrics()
    assert (m["n_exact_pairs"], m["n_cross_split_pairs"], m["n_leaking_images"]) == (3, 6, 6)
    assert m["n_inconsistent_label_clusters"] == 0  # copies carry their original's labels


def test_sample_result_implements_the_protocol(sample):
    ds, stats, _ = sample
    res = compute_duplicates(ds, stats=stats)
    assert isinstance(res, AnalysisResult) and isinstance(res, DuplicatesResult)
    assert res.ANALYSIS == "duplicates"
    assert list(res.findings().columns) == list(FINDINGS_SCHEMA)
    assert set(res.findings()["page"]) == {"duplicates"}
    d = json.loads(json.dumps(res.to_dict()))
    assert d["metrics"] == res.metrics() and len(d["pairs"]) == len(res.pairs)
    assert all(v is None or isinstance(v, (int, float)) for v in res.metrics().values())


def test_run_analysis_without_embeddings_falls_back_to_perceptual(sample):
    from qa.analyses import run_analyses

    ds, _, _ = sample
    run = run_analyses(ds, only=["duplicates"], embeddings="skip")
    assert not run.errors and "duplicates" in run.results, (run.errors, run.skipped)
    res = run.results["duplicates"]
    # the labelled images also propose candidates by the layout of their boxes
    assert res.methods_used == ("exact", "phash", "layout", "pixels")
    assert res.metrics()["n_cross_split_pairs"] == 6
    assert any("perceptual" in n for n in res.notes)


def test_every_pair_combination_is_in_one_cluster(sample):
    ds, stats, _ = sample
    res = compute_duplicates(ds, stats=stats)
    for cid, grp in res.clusters.groupby("cluster_id"):
        assert (grp["action"] == "keep").sum() == 1
        for a, b in combinations(grp["image_id"], 2):
            assert res.clusters.set_index("image_id").loc[[a, b], "cluster_id"].nunique() == 1


def test_leakage_table_orients_copy_and_kept(sample):
    ds, stats, planted = sample
    leak = compute_duplicates(ds, stats=stats).leakage_table()
    want = {(p["b"], p["a"]) for p in planted["near_duplicates"] + planted["exact_duplicates"]
            if p["cross_split"]}
    assert set(zip(leak["copy_id"], leak["kept_id"])) == want
    assert set(leak["kept_split"]) == {"train"} and leak["method"].iloc[0] == "sha256"


# ------------------------------------------------------------------------------ CLI
def test_cli_duplicates_and_quality(tmp_path, capsys):
    from qa.cli import main

    out_csv = tmp_path / "out" / "removal.csv"
    assert main(["duplicates", str(SAMPLE), "--csv", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "3 exact pairs, 10 near pairs" in text and "6 pairs across splits" in text
    removal = pd.read_csv(out_csv)
    assert len(removal) == 13 and {"image_id", "keep_instead", "reason"} <= set(removal.columns)
    assert main(["duplicates", str(SAMPLE), "--fail-on-leakage", "--method", "exact",
                 "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"]["n_exact_pairs"] == 3 and doc["metrics"]["n_near_pairs"] == 0
    assert main(["quality", str(SAMPLE), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # exposure is judged on the objects: the sample's dark hubble field is black around lit
    # galaxies, not underexposed; the planted grey photos are still flagged
    assert doc["metrics"]["n_grayscale"] >= 1 and doc["analysis"] == "quality"
    assert main(["quality", str(SAMPLE)]) == 0
    assert "low_information" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(__import__("qa.embeddings").embeddings, "embed_images"),
                    reason="the image embedder (issue 8) is not in this build")
def test_perceptual_and_embedding_methods_agree_on_the_obvious_copies(sample):
    """On the planted pairs' images (and a few unrelated scenes), both methods find the
    obvious copies: the byte-identical ones and the mirrored ones. (The offline fallback
    model puts the JPEG-q22 and resized copies of these synthetic scenes at cosine 0.88-0.96,
    among unrelated scenes at up to 0.97: there the perceptual hashes decide; see
    DEFAULT_THRESHOLDS.) Runs on a subset to stay fast."""
    from qa.embeddings import embed_images

    ds, stats, planted = sample
    pairs = planted["near_duplicates"] + planted["exact_duplicates"]
    ids = sorted({p[k] for p in pairs for k in ("a", "b")} | {1, 2, 3, 4, 5})
    sub = ds.subset(ids)
    sub_stats = type(stats)(table=stats.table[stats.table["image_id"].isin(ids)])
    emb = embed_images(sub)
    by_phash = compute_duplicates(sub, stats=sub_stats, method="phash")
    by_emb = compute_duplicates(sub, stats=sub_stats, embeddings=emb, method="embedding")

    def as_set(r):
        return {frozenset(p) for p in zip(r.pairs["image_id_a"], r.pairs["image_id_b"])}

    obvious = {frozenset((p["a"], p["b"])) for p in pairs if p.get("kind", "flipped") == "flipped"}
    assert len(obvious) == 6
    assert obvious <= as_set(by_phash) and obvious <= as_set(by_emb)
    assert {frozenset((p["a"], p["b"])) for p in pairs} <= as_set(by_phash)


def test_many_identical_codes_stay_bounded(tmp_path):
    """200 identical blank frames: one code searched once, star edges, one cluster."""
    from qa.imagestats import ImageStats

    n = 200
    table = pd.DataFrame({"image_id": np.arange(1, n + 3), "sha256": [f"s{i}" for i in range(n + 2)],
                          "pixel_hash": [f"p{i}" for i in range(n + 2)],
                          "phash": np.r_[np.full(n, 7), 7 ^ 0b111, 2**62 - 1].astype(np.uint64),
                          "dhash": np.r_[np.full(n, 9), 9, 5].astype(np.uint64),
                          "phash_flip": np.full(n + 2, np.iinfo(np.uint64).max, np.uint64),
                          "dhash_flip": np.full(n + 2, np.iinfo(np.uint64).max, np.uint64),
                          "width": 10, "height": 10, "error": None})
    im = table[["image_id"]].assign(file_name=[f"{i}.png" for i in table["image_id"]])
    ds = qa.Dataset(images=im, categories=pd.DataFrame({"category_id": [1], "name": ["x"]}),
                    annotations=None)
    res = compute_duplicates(ds, stats=ImageStats(table=table), method="phash")
    assert res.metrics()["n_clusters"] == 1 and len(res.clusters) == n + 1
    assert len(res.pairs) < 2 * n  # star edges, not n(n-1)/2 = 19,900 pairs
    assert res.pairs["hamming"].max() == 3
