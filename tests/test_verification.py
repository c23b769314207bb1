"""Pixel verification of near-duplicate pairs (qa.verification) on real photos: BCCD's
cross-split pair, and copies of a real image made in tmp_path (shifted, cropped, sheared,
re-exposed, mirrored, re-encoded) against the same scene with content changed."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageEnhance

import qa
from qa.dataset import ANN_ID, ANNOTATOR, CATEGORY_ID, FILE_NAME, IMAGE_ID, H, W, X, Y, Dataset
from qa.duplicates import compute_duplicates
from qa.verification import VERDICT_COLUMNS, gray_copy, verify_pair_arrays, verify_pairs


def _realdata() -> Path:
    env = os.environ.get("QA_REALDATA")
    rel = Path(__file__).resolve().parents[2] / "shared" / "realdata"
    return Path(env) if env else rel if rel.exists() else Path("/work/shared/realdata")


BCCD = _realdata() / "bccd"
needs_bccd = pytest.mark.skipif(not (BCCD / "JPEGImages").exists(),
                                reason="shared/realdata/bccd is not beside the checkout")


def _photo() -> Image.Image:
    return Image.open(BCCD / "JPEGImages" / "BloodImage_00001.jpg").convert("RGB")


def _shear(im: Image.Image, sx: float, dx: int, dy: int) -> Image.Image:
    """An affine copy as augmentation tools make it: sheared, shifted, black fill."""
    return im.transform(im.size, Image.Transform.AFFINE, (1, sx, dx, 0, 1, dy),
                        resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def _jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _copies(im: Image.Image) -> dict[str, Image.Image]:
    w, h = im.size
    return {
        "shifted_cropped": im.crop((60, 40, w, h)).resize((w, h)),
        "sheared": _shear(im, 0.10, 20, 10),
        "exposed": ImageEnhance.Brightness(im).enhance(1.25),
        "mirrored": im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "jpeg_q30_small": _jpeg(im.resize((w // 2, h // 2)), 30),
    }


def _changed(im: Image.Image) -> Image.Image:
    """The same scene with other content: one object (a dark disc) added, as a moved chess
    piece or another product on the same table."""
    out = im.copy()
    d = ImageDraw.Draw(out)
    d.ellipse((300, 150, 390, 240), fill=(90, 40, 120))
    return out


@needs_bccd
def test_copies_of_a_real_photo_are_the_same_picture():
    base = _photo()
    ga, _ = gray_copy(base)
    for name, copy in _copies(base).items():
        gb, _ = gray_copy(copy)
        v = verify_pair_arrays(ga, gb)
        assert v["verdict"] == "same", (name, v)
        assert v["reason"].startswith("the same picture")
    mirrored = verify_pair_arrays(ga, gray_copy(_copies(base)["mirrored"])[0])
    assert mirrored["verified_flipped"] and "mirrored" in mirrored["reason"]


@needs_bccd
def test_same_scene_with_other_content_is_not_a_duplicate():
    base = _photo()
    v = verify_pair_arrays(gray_copy(base)[0], gray_copy(_changed(base))[0])
    assert v["verdict"] == "different" and "changed" in v["reason"], v
    # another photo of the same kind (another blood smear) has no common geometry
    other = Image.open(BCCD / "JPEGImages" / "BloodImage_00100.jpg").convert("RGB")
    v = verify_pair_arrays(gray_copy(base)[0], gray_copy(other)[0])
    assert v["verdict"] == "different", v


def _folder(tmp_path, files: dict[str, Image.Image], splits, boxes=None) -> Dataset:
    for name, im in files.items():
        im.save(tmp_path / name, quality=92)
    names = list(files)
    images = pd.DataFrame({IMAGE_ID: range(1, len(names) + 1), FILE_NAME: names,
                           "width": [files[n].width for n in names],
                           "height": [files[n].height for n in names], "split": splits})
    rows = [(100 * i + k, i, c, x, y, w, h, "a") for i, bs in (boxes or {}).items()
            for k, (c, x, y, w, h) in enumerate(bs)]
    anns = pd.DataFrame(rows, columns=[ANN_ID, IMAGE_ID, CATEGORY_ID, X, Y, W, H, ANNOTATOR])
    cats = pd.DataFrame({CATEGORY_ID: [1, 2], "name": ["cell", "other"]})
    return Dataset(images=images, categories=cats, annotations=anns, root=tmp_path, name="t")


@needs_bccd
def test_dataset_level_copies_across_splits_are_leakage(tmp_path):
    base = _photo()
    c = _copies(base)
    files = {"a.jpg": base, "a_sheared.jpg": c["sheared"], "a_shift.jpg": c["shifted_cropped"],
             "a_changed.jpg": _changed(base),
             "b.jpg": Image.open(BCCD / "JPEGImages" / "BloodImage_00100.jpg")}
    ds = _folder(tmp_path, files, ["train", "val", "test", "train", "train"])
    # pHash misses a shear or a shift; the embeddings propose them (vectors as a model would
    # give: the copies and the changed scene near the original, the other smear further)
    from qa.embeddings import Embeddings

    rng = np.random.default_rng(0)
    v = np.repeat(rng.normal(size=(1, 32)), 5, axis=0) + 0.05 * rng.normal(size=(5, 32))
    v[4] = rng.normal(size=32)
    emb = Embeddings(vectors=(v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32),
                     image_ids=[1, 2, 3, 4, 5], model_id="test/vectors")
    assert compute_duplicates(ds).metrics()["n_near_pairs"] < 2  # perceptual codes alone
    res = compute_duplicates(ds, embeddings=emb, method="embedding")
    found = set(zip(res.pairs["image_id_a"], res.pairs["image_id_b"]))
    # the sheared (val) and shifted (test) copies of a (train) are found and leak
    assert {(1, 2), (1, 3)} <= found and (1, 4) not in found and not any(5 in p for p in found)
    assert res.metrics()["n_cross_split_pairs"] >= 2
    assert set(res.near_pairs["decided_by"]) == {"pixels"}
    assert all(r.startswith("the same picture") for r in res.near_pairs["reason"])
    # the changed scene was a candidate and is rejected with its reason
    rej = res.rejected.set_index(["image_id_a", "image_id_b"])
    assert (1, 4) in rej.index and rej.loc[(1, 4), "verdict"] == "different"
    f = res.findings()
    leak = f[f["kind"] == "leakage"]
    assert len(leak) and leak["message"].str.contains("a_sheared.jpg|a_shift.jpg").all()


@needs_bccd
def test_bccd_cross_split_pair_is_found():
    ds = qa.load(BCCD)
    ids = dict(zip(ds.images[FILE_NAME], ds.images[IMAGE_ID]))
    a, b = ids["JPEGImages/BloodImage_00037.jpg"], ids["JPEGImages/BloodImage_00038.jpg"]
    c = ids["JPEGImages/BloodImage_00100.jpg"]
    v = verify_pairs(ds, pd.DataFrame({"image_id_a": [a, a], "image_id_b": [b, c]}))
    assert list(v.columns) == list(VERDICT_COLUMNS)
    assert v["verdict"].tolist() == ["same", "different"], v["reason"].tolist()
    assert v.loc[0, "label_agreement"] >= 0.5  # most of the labelled cells match


def test_input_checks(tmp_path):
    ds = _folder(tmp_path, {"x.png": Image.new("RGB", (32, 32))}, ["train"])
    with pytest.raises(TypeError, match="needs a qa.Dataset"):
        verify_pairs(None, pd.DataFrame())
    with pytest.raises(ValueError, match="image_id_a and image_id_b"):
        verify_pairs(ds, pd.DataFrame({"a": [1]}))
    assert verify_pairs(ds, pd.DataFrame({"image_id_a": [], "image_id_b": []})).empty
    # a flat picture has no features: unverifiable, never "same" by accident
    flat = np.full((64, 64), 128, np.uint8)
    assert verify_pair_arrays(flat, flat)["verdict"] == "unverifiable"


def test_labels_compared_object_by_object_through_the_transform():
    """Two copies shifted by 10 px: b's boxes mapped onto a find their partners; a box whose
    class differs at the same place is 'relabelled' (its other class named), a box of a alone
    is unmatched; boxes cut by the overlap's edge are compared by what both frames show."""
    from qa.verification import _label_match

    m = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 0.0]])  # b's pixel (x, y) is a's (x + 10, y)
    a = [[50, 50, 40, 40, 1], [150, 50, 40, 40, 1], [250, 150, 40, 40, 2]]
    b = [[40, 50, 40, 40, 1], [140, 50, 40, 40, 2]]  # the first agrees, the second relabelled
    lm = _label_match(m, a, b, (400, 400), (400, 400))
    un = sorted((s, c, o) for s, c, o, _, _ in lm["unmatched"])
    assert un == [("a", 1, 2), ("a", 2, None), ("b", 2, 1)]
    assert lm["n_compared"] == 5 and lm["agreement"] == pytest.approx(1 - 3 / 5)


def test_a_label_conflict_is_other_content_only_where_the_pixels_changed():
    from qa.verification import _label_conflict

    names = {1: "king", 2: "queen"}
    relabel = {"unmatched": [("a", 1, 2, 0.30, [0, 0, 9, 9])], "n_compared": 20,
               "matched_change": 0.02}
    assert "a king where the other has a queen" in _label_conflict(relabel, names)
    # the same disagreement on unchanged pixels is a label error in one copy: same picture
    relabel["unmatched"] = [("a", 1, 2, 0.01, [0, 0, 9, 9])]
    assert _label_conflict(relabel, names) is None
    # a change no larger than the agreeing objects' own (a refocus, a pan) is noise
    relabel["unmatched"] = [("a", 1, 2, 0.30, [0, 0, 9, 9])]
    relabel["matched_change"] = 0.35
    assert _label_conflict(relabel, names) is None
    # the same class at two places, pixels changed: a moved piece
    moved = {"unmatched": [("a", 2, None, 0.2, [0, 0, 9, 9]), ("b", 2, None, 0.2, [50, 0, 9, 9])],
             "n_compared": 20, "matched_change": 0.0}
    assert "queen stands at another place" in _label_conflict(moved, names)
    # labels that disagree on more than a quarter of the objects are incomplete, not evidence
    moved["n_compared"] = 6
    assert _label_conflict(moved, names) is None
