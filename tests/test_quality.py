"""Tests of qa.quality: each check on images made dark, bright, blurred, blank, grey, tiny or
stretched in tmp_path, the absolute floors, and the sample (no wholesale flags)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

import qa
from qa.imagestats import compute_image_stats
from qa.quality import CHECKS, QualityResult, compute_quality, robust_scale
from qa.results import FINDINGS_SCHEMA, AnalysisResult
from tests.conftest import SAMPLE
from tests.test_imagestats import folder_ds


def colourful(seed: int, size=(120, 90)) -> np.ndarray:
    """A normal picture: mid brightness, colour, sharp blocks on texture."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = rng.integers(70, 190, size=(h, w, 3), dtype=np.uint8)
    b = max(2, min(w, h) // 5)
    for _ in range(8):
        x, y = rng.integers(0, w - b), rng.integers(0, h - b)
        arr[y:y + b, x:x + b] = rng.integers(0, 255, 3)
    return arr


def made(kind: str) -> np.ndarray:
    base = colourful(99)
    if kind == "dark":
        return (base * 0.12).astype(np.uint8)
    if kind == "overexposed":
        return np.clip(base.astype(int) + 150, 0, 255).astype(np.uint8)
    if kind == "blurry":
        return np.asarray(Image.fromarray(base).filter(ImageFilter.GaussianBlur(6)))
    if kind == "blank":
        return np.full_like(base, 140)
    if kind == "grey":
        return np.repeat(base.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    if kind == "tiny":
        return colourful(98, (24, 18))
    if kind == "stretched":
        return colourful(97, (480, 60))
    raise ValueError(kind)


EXPECT = {"dark": "dark", "overexposed": "overexposed", "blurry": "blurry",
          "blank": "low_information", "grey": "grayscale", "tiny": "tiny",
          "stretched": "odd_aspect"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quality")
    files = {f"ok{k}.png": colourful(k) for k in range(24)}
    files |= {f"{kind}.png": made(kind) for kind in EXPECT}
    ds = folder_ds(tmp, files)
    return ds, compute_quality(ds)


def test_each_planted_problem_is_flagged_by_its_check(planted):
    _ds, res = planted
    per = res.per_image.set_index("file_name")
    for kind, check in EXPECT.items():
        row = per.loc[f"{kind}.png"]
        assert row[f"is_{check}"], (kind, check, row.to_dict())
        assert row["worst"] in CHECKS and row[f"score_{check}"] > 0
    normal = per.loc[[f"ok{k}.png" for k in range(24)]]
    assert normal["n_flags"].sum() == 0
    # a blank frame is low-information, not also blurry
    assert not per.loc["blank.png", "is_blurry"]
    m = res.metrics()
    assert m["n_flagged"] == 7 and m["flagged_share"] == pytest.approx(7 / 31)
    assert [m[f"n_{c}"] for c in ("dark", "overexposed", "blurry", "odd_aspect")] == [1] * 4
    assert m["n_tiny_image"] == 1
    # a blank frame is also grey; a crushed picture (all within ~30 grey levels) is nearly
    # blank too, while the clipped one keeps a wide range of grey (its coloured blocks)
    assert m["n_grayscale"] == 2 and m["n_low_information"] == 2


def test_findings_and_protocol(planted):
    _, res = planted
    assert isinstance(res, AnalysisResult) and isinstance(res, QualityResult)
    f = res.findings()
    assert list(f.columns) == list(FINDINGS_SCHEMA) and set(f["page"]) == {"quality"}
    assert set(f["kind"]) == set(CHECKS) and f["score"].between(0, 1).all()
    assert "very dark" in f.loc[f["kind"] == "dark", "message"].iloc[0]
    d = json.loads(json.dumps(res.to_dict()))
    assert d["metrics"] == res.metrics() and d["thresholds"]["dark"]["low"] >= 40
    with pytest.raises(ValueError, match="unknown check"):
        res.flagged("fuzzy")


def test_absolute_floors_flag_an_all_dark_set(tmp_path):
    # every image dark: the relative rule alone would call them normal
    files = {f"d{k}.png": (colourful(k) * 0.1).astype(np.uint8) for k in range(8)}
    res = compute_quality(folder_ds(tmp_path, files))
    assert res.metrics()["n_dark"] == 8 and res.thresholds["dark"]["low"] == 40


def test_grey_set_does_not_flag_grey_images(tmp_path):
    files = {f"g{k}.png": made("grey") for k in range(5)} | {"c.png": colourful(1)}
    res = compute_quality(folder_ds(tmp_path, files))
    assert res.metrics()["n_grayscale"] == 0 and any("greyscale set" in n for n in res.notes)


def test_robust_scale_and_input_checks():
    med, s = robust_scale(np.array([1.0, 2, 3, 4, 100]))
    assert med == 3 and s == pytest.approx(1.4826)
    med, s = robust_scale(np.array([5.0, 5, 5, 5, 9, 1]))  # MAD 0: IQR / 1.349
    assert med == 5 and s == pytest.approx(0.0)
    assert all(np.isnan(robust_scale(np.array([]))))
    with pytest.raises(TypeError, match="needs a qa.Dataset"):
        compute_quality(None)
    with pytest.raises(TypeError, match="ImageStats"):
        compute_quality(qa.load(SAMPLE, probe=False), stats=object())


def test_sample_flags_the_odd_photos_not_the_scenes():
    ds = qa.load(SAMPLE)
    res = compute_quality(ds, compute_image_stats(ds))
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())
    photos = {p["image_id"]: p["source"] for p in planted["ood_images"]}
    m = res.metrics()
    print("sample quality:", m)
    assert m["flagged_share"] < 0.10  # never the normal images wholesale
    flagged = res.per_image.set_index("image_id")
    # the hubble deep field is black around bright galaxies, exposed as it should be: not
    # "dark" (exposure is judged on the part that carries light); it is an outlier instead
    assert not flagged.loc[284, "is_dark"] and m["n_dark"] == 0
    grey = set(flagged.index[flagged["is_grayscale"]])
    assert grey == {i for i, s in photos.items()
                    if s.split(".")[-1] in ("moon", "camera", "horse", "coins")}
    assert m["n_odd_aspect"] == 0 and m["n_tiny_image"] == 0  # 4:3 and 3:4 are normal here
    assert any("unreadable" in n for n in res.notes)


def test_run_analysis_through_the_runner(planted):
    from qa.analyses import run_analyses

    ds, direct = planted
    run = run_analyses(ds, only=["quality"], embeddings="skip")
    assert not run.errors and run.results["quality"].metrics() == direct.metrics()
