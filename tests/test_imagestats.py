"""Tests of qa.imagestats: the one pixel pass (hashes and quality statistics), its cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from qa.dataset import (
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    NAME,
    SPLIT,
    WIDTH,
    Dataset,
)
from qa.imagestats import COLUMNS, _laplacian_var, compute_image_stats, hash_bits
from qa.store import Store


def scene(seed: int, size=(96, 72)) -> np.ndarray:
    """A picture with structure (blocks on a gradient), so blur and hashes mean something."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:] = np.linspace(30, 200, w, dtype=np.uint8)[None, :, None]
    for _ in range(6):
        x, y = rng.integers(0, w - 20), rng.integers(0, h - 20)
        arr[y:y + rng.integers(8, 20), x:x + rng.integers(8, 20)] = rng.integers(0, 255, 3)
    return arr


def folder_ds(tmp_path, files: dict[str, np.ndarray | bytes | None], splits=None) -> Dataset:
    """A Dataset over ``files`` (name -> pixels to save, raw bytes, or None for missing)."""
    for name, content in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        elif content is not None:
            Image.fromarray(content).save(p, quality=95)
    names = list(files)
    im = pd.DataFrame({IMAGE_ID: range(1, len(names) + 1), FILE_NAME: names,
                       WIDTH: [None] * len(names), HEIGHT: [None] * len(names),
                       SPLIT: splits or [None] * len(names)})
    cats = pd.DataFrame({CATEGORY_ID: [1], NAME: ["thing"]})
    return Dataset(images=im, categories=cats, annotations=None, root=tmp_path, name="t")


def test_stats_of_known_images(tmp_path):
    flat = np.full((40, 60, 3), 128, np.uint8)
    pic = scene(1)
    ds = folder_ds(tmp_path, {"flat.png": flat, "pic.png": pic, "gray.png":
                              np.repeat(pic.mean(axis=2, keepdims=True).astype(np.uint8), 3, 2),
                              "missing.png": None, "bad.jpg": b"not an image"})
    st = compute_image_stats(ds)
    t = st.table
    assert list(t.columns) == list(COLUMNS) and len(st) == 5
    flat_row, pic_row, gray_row = t.iloc[0], t.iloc[1], t.iloc[2]
    # a uniform grey picture: brightness 128, no contrast, no edges, zero entropy, grey
    assert flat_row.brightness == pytest.approx(128, abs=0.6)
    assert flat_row.contrast == pytest.approx(0, abs=0.5) and flat_row.blur == 0
    assert flat_row.entropy == 0 and flat_row.is_grayscale
    assert (flat_row.width, flat_row.height, flat_row.aspect) == (60, 40, 1.5)
    assert not pic_row.is_grayscale and gray_row.is_grayscale
    assert pic_row.blur > 10 and pic_row.entropy > 2
    # the luma mean equals an independent reference (PIL's "L" conversion, same weights)
    ref = np.asarray(Image.fromarray(pic).convert("L"), dtype=float).mean()
    assert pic_row.brightness == pytest.approx(ref, abs=0.6)
    assert t["error"].tolist()[:3] == [None, None, None]
    assert t["error"].iloc[3] == "file not found"
    assert "not a readable image" in t["error"].iloc[4]
    assert t[["phash", "brightness"]].iloc[3].isna().tolist() == [False, True]  # hash 0, NaN
    assert t["sha256"].iloc[3] is None and isinstance(t["sha256"].iloc[4], str)


def test_hashes_match_imagehash_and_find_copies(tmp_path):
    import imagehash

    pic = scene(2, (160, 120))
    ds = folder_ds(tmp_path, {"a.png": pic, "a_copy.png": pic, "a.jpg": pic,
                              "a_flip.png": pic[:, ::-1].copy(), "b.png": scene(3, (160, 120))})
    t = compute_image_stats(ds).table
    a, same, jpg, flip, b = (t.iloc[k] for k in range(5))
    # the same pixels in two PNG files: same pixel hash (and same bytes: same sha256)
    assert a.pixel_hash == same.pixel_hash and a.sha256 == same.sha256
    assert a.pixel_hash != jpg.pixel_hash and a.sha256 != jpg.sha256  # lossy: other pixels
    # pHash within a couple of bits of imagehash's own on the full picture
    ref = int(str(imagehash.phash(Image.fromarray(pic))), 16)
    assert (int(a.phash) ^ ref).bit_count() <= 4
    ham = lambda x, y: (int(x) ^ int(y)).bit_count()
    assert ham(a.phash, jpg.phash) <= 4 and ham(a.dhash, jpg.dhash) <= 4
    assert ham(a.phash_flip, flip.phash) <= 2 and ham(a.dhash_flip, flip.dhash) <= 2
    assert ham(a.phash, b.phash) > 12


def test_same_pixels_other_metadata_share_the_pixel_hash(tmp_path):
    pic = scene(4)
    tmp_path.joinpath("x").mkdir()
    Image.fromarray(pic).save(tmp_path / "x" / "plain.png")
    info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    info.add_text("Comment", "another tool saved this")
    Image.fromarray(pic).save(tmp_path / "x" / "meta.png", pnginfo=info)
    ds = folder_ds(tmp_path, {"x/plain.png": pic, "x/meta.png": None})
    Image.fromarray(pic).save(tmp_path / "x" / "meta.png", pnginfo=info)
    t = compute_image_stats(ds).table
    assert t.sha256.iloc[0] != t.sha256.iloc[1] and t.pixel_hash.iloc[0] == t.pixel_hash.iloc[1]


def test_second_run_comes_from_the_store(tmp_path):
    ds = folder_ds(tmp_path / "d", {f"{k}.png": scene(k) for k in range(4)} | {"bad.jpg": b"x"})
    store = Store(tmp_path / "store.sqlite")
    seen = []
    first = compute_image_stats(ds, store=store, progress=lambda f, m: seen.append(f))
    assert first.n_computed == 5 and first.n_cached == 0 and seen[-1] == 1.0
    again = compute_image_stats(ds, store=store)
    assert again.n_computed == 0 and again.n_cached == 5  # the unreadable one too
    pd.testing.assert_frame_equal(first.table, again.table)


def test_laplacian_matches_scipy_and_input_checks():
    from scipy import ndimage

    g = np.random.default_rng(0).normal(size=(30, 40)).astype(np.float32)
    ref = ndimage.laplace(g.astype(float))[1:-1, 1:-1].var()
    assert _laplacian_var(g) == pytest.approx(ref, rel=1e-5)
    assert _laplacian_var(np.zeros((2, 5), np.float32)) == 0.0
    blurred = np.asarray(Image.fromarray(scene(5)).filter(ImageFilter.GaussianBlur(3)).convert("L"),
                         dtype=np.float32)
    sharp = np.asarray(Image.fromarray(scene(5)).convert("L"), dtype=np.float32)
    assert _laplacian_var(blurred) < _laplacian_var(sharp) / 5
    with pytest.raises(TypeError, match="needs a qa.Dataset"):
        compute_image_stats("sample_data")


def test_hash_bits_layout():
    bits = hash_bits(np.array([1, 0x8000000000000000], dtype=np.uint64))
    assert bits.shape == (2, 8) and bits[0, 7] == 1 and bits[1, 0] == 0x80


def test_dataset_without_image_folder():
    im = pd.DataFrame({IMAGE_ID: [1, 2], FILE_NAME: ["a.jpg", "b.jpg"], WIDTH: [4, 4],
                       HEIGHT: [4, 4], SPLIT: ["train", "val"]})
    ds = Dataset(images=im, categories=pd.DataFrame({CATEGORY_ID: [1], NAME: ["x"]}),
                 annotations=None)
    t = compute_image_stats(ds).table
    assert t["error"].tolist() == ["the dataset has no image folder"] * 2
    assert t["brightness"].isna().all() and (t["phash"] == 0).all()
