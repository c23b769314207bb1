"""The Outliers page with streamlit's AppTest on a tiny dataset: the embed button, the model
always named (and that the fallback is not CLIP), every section, and a deep link."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

import qa
from tests.app.pagetest import run_page, texts
from tests.conftest import coco_doc


def _tiny_dataset(root):
    """9 reddish noisy images and one photo-like gradient (the odd one, id 10)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    names = []
    for i in range(1, 11):
        if i < 10:
            arr = np.clip(np.array([200, 40, 40]) + rng.normal(0, 10, (48, 64, 3)), 0, 255)
        else:
            yy, xx = np.mgrid[0:48, 0:64]
            arr = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1)
        Image.fromarray(arr.astype(np.uint8)).save(root / "images" / f"{i}.jpg", quality=90)
        names.append((i, f"{i}.jpg", 64, 48))
    doc = coco_doc(names, [(100 + i, i, 1 + i % 2, (4, 4, 30, 20)) for i in range(1, 11)])
    (root / "annotations").mkdir()
    (root / "annotations" / "a.json").write_text(json.dumps(doc))
    return qa.load(root, probe=False)


def test_outliers_page_embeds_on_click_then_shows_every_section(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASET_QA_CACHE", str(tmp_path / "cache"))
    ds = _tiny_dataset(tmp_path / "data")
    at = run_page("outliers", ds, "outliers-tiny")
    assert not at.exception, at.exception
    assert at.title[0].value == "Outliers"
    assert "not CLIP" in texts(at)  # the model is named before anything is embedded
    at.button(key="out_embed").click().run()
    assert not at.exception, at.exception
    assert "not embedded yet" not in texts(at)
    # issue 21: what the click did stays on the page after its rerun, in the button's unit
    assert [s.value for s in at.success] == [
        "10 images embedded (10 vectors computed, 0 from the cache)"]
    # issue 21: the box-embedding button is there at once, not only in one section
    assert at.radio(key="out_section").value == "Ranked outliers"
    assert [b for b in at.button if b.key == "out_embed_objects"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Embedded"] == "10" and metrics["Could not embed"] == "0"
    assert "timm/tf_efficientnet_lite0" in texts(at)
    for section in ["Map", "Per-class outliers", "Text search", "Not embedded",
                    "Ranked outliers"]:
        at.radio(key="out_section").set_value(section).run()
        assert not at.exception, (section, at.exception)
        if section == "Text search":
            assert "Text search needs a CLIP model" in texts(at)
        if section == "Per-class outliers":  # boxes can be embedded from here
            at.button(key="out_embed_objects").click().run()
            assert not at.exception, at.exception
            assert {m.label: m.value for m in at.metric}["Class outliers"] != "—"
            assert not [b for b in at.button if b.key == "out_embed_objects"]
    for method in ("lof", "isolation_forest"):
        at.selectbox(key="out_method").set_value(method).run()
        assert not at.exception, (method, at.exception)
    at.selectbox(key="out_color").set_value("class").run()
    at.radio(key="out_section").set_value("Map").run()
    assert not at.exception, at.exception
    for projection in ("tsne", "umap"):  # umap without umap-learn: a hint, not a crash
        at.selectbox(key="out_map").set_value(projection).run()
        assert not at.exception, (projection, at.exception)


def test_outliers_page_honours_a_deep_link(tmp_path, monkeypatch):
    from qa.embeddings import embed_images

    monkeypatch.setenv("DATASET_QA_CACHE", str(tmp_path / "cache"))
    ds = _tiny_dataset(tmp_path / "data")
    embed_images(ds)  # a reopened app shows results at once, from the store
    from streamlit.testing.v1 import AppTest

    from qa.app.state import KEY_DATASET, KEY_DATASET_KEY
    from tests.app.pagetest import ROOT

    at = AppTest.from_file(str(ROOT / "pages" / "outliers.py"), default_timeout=60)
    at.session_state[KEY_DATASET] = ds
    at.session_state[KEY_DATASET_KEY] = "outliers-link"
    at.query_params["image_id"] = "3,10"
    at.run()
    assert not at.exception, at.exception
    assert "Showing only the 2 images of the link" in texts(at)
    assert not [b for b in at.button if b.key == "out_embed"]  # nothing left to embed


def test_outliers_page_with_a_clip_checkpoint_offers_text_search(tmp_path, monkeypatch):
    """A local CLIP checkpoint (a tiny random architecture standing in for ViT-B-32): the page
    names it as CLIP, embeds with it, and the text search ranks the images."""
    import open_clip
    import torch

    from qa.embeddings import load_model, resolve_model
    from tests.test_embeddings import TINY, _tiny_config

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / f"{TINY}.json").write_text(json.dumps(_tiny_config(32)))
    open_clip.add_model_config(cfg)
    monkeypatch.setattr("qa.embeddings.DEFAULT_CLIP_ARCH", TINY)
    monkeypatch.setenv("DATASET_QA_CACHE", str(tmp_path / "cache"))
    ckpt = tmp_path / "clip.pt"
    torch.save(load_model(resolve_model(TINY, pretrained="random"), device="cpu").module
               .state_dict(), ckpt)
    ds = _tiny_dataset(tmp_path / "data")
    at = run_page("outliers", ds, "outliers-clip")
    at.text_input(key="out_ckpt").set_value(str(ckpt)).run()
    assert not at.exception, at.exception
    assert f"open_clip/{TINY}/ckpt-" in texts(at) and "(CLIP)" in texts(at)
    at.button(key="out_embed").click().run()
    at.radio(key="out_section").set_value("Text search").run()
    assert "Text search needs a CLIP model" not in texts(at)
    assert repr(at.main).count("Image(") == 0  # nothing until a query is typed
    at.text_input(key="out_query").set_value("a red picture").run()
    assert not at.exception, at.exception
    assert repr(at.main).count("Image(") == 10  # every image, ranked by similarity
