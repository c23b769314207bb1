"""qa.embeddings: the open_clip path with a tiny randomly initialised architecture (no download),
checkpoints, the offline fallback, the content-addressed cache (re-runs, additions, renames,
damaged entries, interruption) and bad input."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest
from PIL import Image

import qa
from qa.embeddings import (
    FALLBACK,
    ModelError,
    _clip_weights_cached,
    embed_images,
    embed_objects,
    load_model,
    resolve_model,
    text_search,
)
from qa.store import Store
from tests.conftest import coco_doc

TINY = "qa-test-tiny-vit"
TINY_WIDE = "qa-test-tiny-vit-wide"


def _tiny_config(width: int) -> dict:
    return {"embed_dim": 16,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": width, "head_width": 16,
                           "patch_size": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                         "layers": 1}}


@pytest.fixture(scope="module", autouse=True)
def tiny_clip(tmp_path_factory):
    """Register two tiny open_clip architectures (random weights only, no download)."""
    import open_clip

    d = tmp_path_factory.mktemp("clipcfg")
    for name, width in ((TINY, 32), (TINY_WIDE, 48)):
        (d / f"{name}.json").write_text(json.dumps(_tiny_config(width)))
    open_clip.add_model_config(d)


def _scene(path, colour, seed, size=(64, 48)):
    """A flat colour with a little noise (distinct vectors per colour)."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 8, (size[1], size[0], 3)),
                  0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=90)


COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]


def _dataset(root, names, extra=()):
    """A COCO dataset over ``names`` (written) plus ``extra`` names listed but not written."""
    for k, n in enumerate(names):
        if not (root / "images" / n).exists():
            _scene(root / "images" / n, COLOURS[k % len(COLOURS)], k)
    listed = list(names) + list(extra)
    doc = coco_doc([(i + 1, n, 64, 48) for i, n in enumerate(listed)],
                   [(100 + i, i + 1, 1, (4, 4, 30, 20)) for i in range(len(listed))]
                   + [(500, 1, 2, (40, 40, 3, 3))])  # a 3 px box: skipped as an object
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "a.json").write_text(json.dumps(doc))
    return qa.load(root, probe=False)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "cache" / "store.sqlite") as st:
        yield st


@pytest.fixture
def ds(tmp_path):
    root = tmp_path / "data"
    names = [f"img{k}.jpg" for k in range(5)]
    _dataset(root, names, extra=["gone.jpg"])  # writes the five images
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return _dataset(root, names + ["broken.jpg"], extra=["gone.jpg"])


# ------------------------------------------------------------------ open_clip (random tiny)
def test_open_clip_random_tiny_model_embeds_normalised_vectors_and_names_the_model(ds, store):
    e = embed_images(ds, model=TINY, pretrained="random", store=store, batch_size=2)
    assert e.model_id == f"open_clip/{TINY}/random-seed0/pp1"
    assert e.is_clip and "(CLIP)" in e.model_label
    assert e.vectors.shape == (5, 16) and e.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e.vectors, axis=1), 1.0, rtol=1e-5)
    assert list(e.image_ids) == [1, 2, 3, 4, 5]
    reasons = dict(zip(e.failed["file_name"], e.failed["reason"]))
    assert reasons == {"broken.jpg": "not a readable image (unknown format or damaged header)",
                       "gone.jpg": "file not found"}
    assert (e.n_computed, e.n_cached) == (5, 0)
    # different colours give different vectors (the model is really applied)
    assert np.abs(e.vectors[0] - e.vectors[1]).max() > 1e-3


def test_checkpoint_reloads_to_the_same_vectors(ds, store, tmp_path):
    import torch

    ref = embed_images(ds, model=TINY, pretrained="random", store=store)
    net = load_model(resolve_model(TINY, pretrained="random"), device="cpu").module
    ckpt = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), ckpt)
    e = embed_images(ds, model=TINY, checkpoint=ckpt, store=store)
    assert e.model_id.startswith(f"open_clip/{TINY}/ckpt-") and e.is_clip
    assert e.n_computed == 5  # another model_id: computed, not taken from the random run
    np.testing.assert_allclose(e.vectors, ref.vectors, atol=1e-5)
    # text search works with a CLIP model and ranks every embedded image
    ranked = text_search(e, "a red square", checkpoint=ckpt)
    assert sorted(ranked["image_id"]) == [1, 2, 3, 4, 5]
    assert ranked["similarity"].is_monotonic_decreasing


def test_bad_checkpoint_wrong_architecture_and_unknown_model_are_clear_errors(ds, store,
                                                                             tmp_path):
    import torch

    junk = tmp_path / "notes.pt"
    junk.write_text("this is not a checkpoint")
    with pytest.raises(ModelError, match="is not a model checkpoint"):
        embed_images(ds, model=TINY, checkpoint=junk, store=store)
    wide = load_model(resolve_model(TINY_WIDE, pretrained="random"), device="cpu").module
    other = tmp_path / "wide.pt"
    torch.save(wide.state_dict(), other)
    with pytest.raises(ModelError, match=f"does not fit architecture {TINY}.*size mismatch"):
        embed_images(ds, model=TINY, checkpoint=other, store=store)
    with pytest.raises(ModelError, match="checkpoint file not found"):
        embed_images(ds, model=TINY, checkpoint=tmp_path / "nope.pt", store=store)
    with pytest.raises(ModelError, match="unknown model 'ViT-Q-99'"):
        embed_images(ds, model="ViT-Q-99", store=store)
    with pytest.raises(ModelError, match="unknown pretrained tag 'nonsense'"):
        resolve_model(TINY, pretrained="nonsense")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        embed_images(ds, batch_size=0, store=store)
    with pytest.raises(TypeError, match="expected a qa.Dataset"):
        embed_images("sample_data", store=store)
    # nothing was half-written by the failed calls
    assert store.info().empty or not store.info()["name"].str.contains("ckpt").any()


def test_auto_decides_quickly_offline_and_says_why(tmp_path, monkeypatch):
    t0 = time.perf_counter()
    spec = resolve_model("auto")
    assert time.perf_counter() - t0 < 5
    if not _clip_weights_cached():
        assert not spec.is_clip and spec.backend == "timm"
        assert "not CLIP" in spec.reason and "not on this machine" in spec.reason
    # a local Hugging Face cache holding the default weights makes auto choose CLIP
    hub = tmp_path / "hub"
    snap = hub / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (snap / "snapshots" / "abc").mkdir(parents=True)
    (snap / "refs").mkdir()
    (snap / "refs" / "main").write_text("abc")
    (snap / "snapshots" / "abc" / "open_clip_model.safetensors").write_bytes(b"x")
    assert _clip_weights_cached(cache_dir=str(hub))
    monkeypatch.setattr("qa.embeddings._clip_weights_cached", lambda *a, **k: True)
    spec = resolve_model("auto")
    assert spec.is_clip and spec.model_id == "open_clip/ViT-B-32/laion2b_s34b_b79k/pp1"
    assert "local cache" in spec.reason


# ------------------------------------------------------------------ fallback and the cache
def test_fallback_cache_rerun_additions_renames_and_damage(tmp_path, store):
    root = tmp_path / "data"
    names = [f"img{k}.jpg" for k in range(4)]
    ds = _dataset(root, names)
    first = embed_images(ds, model=FALLBACK, store=store, batch_size=3)
    assert not first.is_clip and "not CLIP" in first.model_label
    assert first.model_id.startswith("timm/tf_efficientnet_lite0/")
    assert first.vectors.shape == (4, 1280) and (first.n_computed, first.n_cached) == (4, 0)
    again = embed_images(ds, model=FALLBACK, store=store)
    assert (again.n_computed, again.n_cached) == (0, 4)
    np.testing.assert_array_equal(again.vectors, first.vectors)
    # two new images: exactly two computed; a renamed file is found again by its bytes
    (root / "images" / "img0.jpg").rename(root / "images" / "renamed.jpg")
    more = _dataset(root, ["renamed.jpg", *names[1:], "new1.jpg", "new2.jpg"])
    grown = embed_images(more, model=FALLBACK, store=store)
    assert (grown.n_computed, grown.n_cached) == (2, 4)
    np.testing.assert_allclose(grown.vectors[0], first.vectors[0])
    # a damaged entry is detected, dropped and recomputed
    con = sqlite3.connect(store.path)
    con.execute("UPDATE vectors SET crc = crc + 1 WHERE key = (SELECT key FROM vectors LIMIT 1)")
    con.commit()
    con.close()
    healed = embed_images(more, model=FALLBACK, store=store)
    assert (healed.n_computed, healed.n_cached) == (1, 5)
    assert "1 damaged cache entry was found, dropped and recomputed" in healed.notes
    np.testing.assert_allclose(healed.vectors, grown.vectors, atol=1e-5)
    # cached_only computes nothing: a brand-new image is neither a row nor a failure
    _scene(root / "images" / "late.jpg", (90, 90, 90), 9)
    late = _dataset(root, ["renamed.jpg", *names[1:], "new1.jpg", "new2.jpg", "late.jpg"])
    cached = embed_images(late, model=FALLBACK, store=store, cached_only=True)
    assert cached.n_computed == 0 and len(cached) == 6 and 7 not in cached.image_ids
    assert cached.failed.empty and cached.n_not_cached == 1  # the set says it is partial


def test_interrupted_run_resumes_where_it_stopped(ds, store):
    calls = []

    def stop_after_first_batch(frac, msg):
        calls.append(msg)
        if msg.startswith("embedded 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_images(ds, model=TINY, pretrained="random", store=store, batch_size=2,
                     progress=stop_after_first_batch)
    resumed = embed_images(ds, model=TINY, pretrained="random", store=store, batch_size=2)
    assert resumed.n_cached == 2 and resumed.n_computed == 3
    # the unreadable image's reason was remembered: not decoded again, still reported, also
    # when only the store is read
    assert set(resumed.failed["file_name"]) == {"broken.jpg", "gone.jpg"}
    cached = embed_images(ds, model=TINY, pretrained="random", store=store, cached_only=True)
    assert set(cached.failed["file_name"]) == {"broken.jpg", "gone.jpg"} and len(cached) == 5


def test_embed_objects_crops_boxes_skips_tiny_ones_and_caches(ds, store):
    e = embed_objects(ds, model=TINY, pretrained="random", store=store)
    assert e.ann_ids is not None and len(e) == 5
    assert sorted(e.ann_ids) == [100, 101, 102, 103, 104]  # ann 500 (3 px) skipped
    assert any("1 boxes under 8 px skipped" in n for n in e.notes)
    assert set(e.failed["file_name"]) == {"broken.jpg", "gone.jpg"}
    again = embed_objects(ds, model=TINY, pretrained="random", store=store)
    assert (again.n_computed, again.n_cached) == (0, 5)
    with pytest.raises(ValueError, match="unknown annotator 'zed'"):
        embed_objects(ds, annotator="zed", store=store)


def test_text_search_refuses_the_fallback():
    from qa.embeddings import Embeddings

    emb = Embeddings(np.eye(3, dtype=np.float32), [1, 2, 3],
                     "timm/tf_efficientnet_lite0/efficientnet-lite0-57934424/pp1", False)
    with pytest.raises(ModelError, match="text search needs CLIP embeddings"):
        text_search(emb, "a cat")
    with pytest.raises(ValueError, match="query must be a non-empty text"):
        text_search(emb, "  ")


# ------------------------------------------------------------------ CLI
def test_cli_embed_outliers_and_cache(ds, tmp_path, monkeypatch, capsys):
    from qa.cli import main

    monkeypatch.setenv("DATASET_QA_CACHE", str(tmp_path / "clicache"))
    root = str(ds.root.parent)
    tiny = ["--model", TINY, "--pretrained", "random"]
    assert main(["embed", root, *tiny, "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert f"model: open_clip/{TINY}/random-seed0/pp1 (CLIP)" in out
    assert "5 embedded (5 computed, 0 from the cache), 2 could not be embedded" in out
    assert "gone.jpg: file not found" in out
    assert main(["embed", root, *tiny, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["images"]["n_computed"] == 0 and doc["images"]["n_cached"] == 5
    csv = tmp_path / "out" / "flagged.csv"
    assert main(["outliers", root, *tiny, "--k", "2", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "outliers (knn, k=2, flagged above" in out and csv.exists()
    assert main(["outliers", root, *tiny, "--json", "--cached"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"]["n_images_embedded"] == 5 and doc["metrics"]["is_clip"] == 1
    assert main(["cache", "info"]) == 0
    assert f"open_clip/{TINY}/random-seed0/pp1" in capsys.readouterr().out
    assert main(["cache", "clear", "--model", f"open_clip/{TINY}/random-seed0/pp1"]) == 0
    assert "cleared vectors of" in capsys.readouterr().out
    assert main(["embed", root, "--model", "ViT-Q-99"]) == 2
    assert "unknown model 'ViT-Q-99'" in capsys.readouterr().err


def test_clip_preprocessing_matches_open_clips_own_transform():
    """Workers send uint8 crops and encode() normalises the batch: the tensor the model sees
    is open_clip's preprocess output (Resize shortest, CenterCrop, ToTensor, Normalize)."""
    import open_clip
    import torch

    _, _, reference = open_clip.create_model_and_transforms(TINY, pretrained=None)
    loaded = load_model(resolve_model(TINY, pretrained="random"), device="cpu")
    rng = np.random.default_rng(5)
    for size in ((97, 61), (40, 90), (32, 32)):
        im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        ref = reference(im).numpy()
        mine = loaded.preprocess(im)
        assert mine.dtype == np.uint8 and mine.shape == ref.shape
        mean = torch.tensor(loaded.mean).view(-1, 1, 1).numpy()
        std = torch.tensor(loaded.std).view(-1, 1, 1).numpy()
        np.testing.assert_allclose((mine / 255.0 - mean) / std, ref, atol=1e-5)


def test_an_unreadable_cache_file_is_moved_aside_and_everything_recomputed(ds, tmp_path):
    path = tmp_path / "bad" / "store.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"this is not an SQLite database" * 100)
    with Store(path) as st:
        e = embed_images(ds, model=TINY, pretrained="random", store=st)
    assert e.n_computed == 5
    assert any("cache file was unreadable" in n for n in e.notes)
    assert list(path.parent.glob("store.sqlite.corrupt-*"))


def test_a_huge_image_is_skipped_with_its_reason_and_the_rest_embedded(tmp_path, store):
    root = tmp_path / "data"
    ds0 = _dataset(root, ["a.jpg", "b.jpg"])
    Image.new("1", (12000, 9000)).save(root / "images" / "bomb.png", optimize=True)  # 108 MP
    ds = _dataset(root, ["a.jpg", "b.jpg", "bomb.png"])
    assert len(ds0.images) == 2
    e = embed_images(ds, model=TINY, pretrained="random", store=store)
    assert list(e.image_ids) == [1, 2]
    reason = e.failed.set_index("file_name").loc["bomb.png", "reason"]
    assert reason.startswith("image too large to decode (12000 x 9000 = 108 MP")


def test_cached_mode_skips_analyses_when_only_some_images_are_embedded(tmp_path):
    """A report in 'cached' mode must not score outliers over the few images someone happened
    to embed: with a partial set the analysis is skipped and says how many are missing. The
    same holds for object embeddings and the per-class outliers."""
    from qa.analyses import run_analyses

    root = tmp_path / "data"
    names = [f"p{k}.jpg" for k in range(5)]
    for k, n in enumerate(names):
        _scene(root / "images" / n, COLOURS[k], 40 + k)  # seeds no other test uses
    part = _dataset(root, names[:2])
    embed_images(part, model=FALLBACK)  # the default store, as the report uses
    whole = _dataset(root, names)
    run = run_analyses(whole, only=["outliers"], embeddings="cached", model=FALLBACK)
    assert "only 2 of 5 readable images have cached embeddings" in run.skipped["outliers"]
    embed_images(whole, model=FALLBACK)
    embed_objects(part, model=FALLBACK)  # the boxes of 2 of the 5 images
    run = run_analyses(whole, only=["outliers"], embeddings="cached", model=FALLBACK)
    res = run.results["outliers"]
    assert res.metrics()["n_class_outliers"] is None  # not measured, so not a pass
    assert res.unmeasured_reason(("n_class_outliers",)).startswith(
        "per-class outliers need object embeddings")  # the report's skip reason
    embed_objects(whole, model=FALLBACK)
    res = run_analyses(whole, only=["outliers"], embeddings="cached",
                       model=FALLBACK).results["outliers"]
    assert res.metrics()["n_class_outliers"] is not None


def test_run_analyses_objects_true_embeds_the_boxes_once(tmp_path):
    from qa.analyses import run_analyses

    root = tmp_path / "data"
    names = [f"q{k}.jpg" for k in range(5)]
    for k, n in enumerate(names):
        _scene(root / "images" / n, COLOURS[k], 60 + k)  # seeds no other test uses
    ds = _dataset(root, names)
    plain = run_analyses(ds, only=["outliers"], model=FALLBACK)
    assert plain.results["outliers"].metrics()["n_class_outliers"] is None  # not embedded
    run = run_analyses(ds, only=["outliers", "duplicates"], model=FALLBACK, objects=True)
    assert run.results["outliers"].metrics()["n_class_outliers"] is not None
    again = embed_objects(ds, model=FALLBACK, cached_only=True)
    assert len(again) == 5 and again.n_not_cached == 0  # stored for the next run


def test_button_progress_and_result_count_the_same_images(tmp_path, store):
    """Issue 21: the button said 299, the progress 32/296, the result 298 + 2 failed. A
    byte-identical copy is embedded once but counted as an image; a missing file is known
    before, a damaged one only after decoding: the three counts agree and name the files."""
    from qa.embeddings import embedding_summary
    from qa.outliers import embedding_shortfall

    root = tmp_path / "data"
    names = [f"img{k}.jpg" for k in range(4)]
    _dataset(root, names)
    (root / "images" / "copy.jpg").write_bytes((root / "images" / "img0.jpg").read_bytes())
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = _dataset(root, names + ["copy.jpg", "broken.jpg"], extra=["gone.jpg"])
    before = embed_images(ds, model=TINY, pretrained="random", store=store, cached_only=True)
    missing, _ = embedding_shortfall(before, ds.n_images)
    assert missing == 6 and list(before.failed["file_name"]) == ["gone.jpg"]
    msgs = []
    done = embed_images(ds, model=TINY, pretrained="random", store=store, batch_size=2,
                        progress=lambda f, m: msgs.append(m))
    counted = [m for m in msgs if m.startswith("embedded ") and "/" in m]
    assert counted[-1].startswith(f"embedded {missing}/{missing} images")
    assert "1 are byte-identical copies, embedded once" in counted[-1]
    assert len(done) + len(done.failed) == missing + len(before.failed) == ds.n_images
    text = embedding_summary(done)
    assert text.startswith("5 images embedded (4 vectors computed, 0 from the cache; "
                           "1 byte-identical copies share a vector)")
    assert "2 files could not be read: " in text and "gone.jpg (" in text
    assert "broken.jpg (" in text
