"""What kind of outlier an image is (issue 26), and capture artifacts flagged by their pixels
in a varied dataset where their embedding score alone stays under the ratio cut."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from qa.dataset import CATEGORY_ID, FILE_NAME, IMAGE_ID, NAME, SPLIT, Dataset
from qa.embeddings import Embeddings
from qa.imagestats import ImageStats
from qa.outliers import OUTLIER_RATIO, compute_outliers, iqr_fence, outlier_kind, score_outliers


def row(p02, p98, entropy=6.5, gray=False, aspect=1.33):
    return SimpleNamespace(luma_p02=p02, luma_p98=p98, entropy=entropy, is_grayscale=gray,
                           aspect=aspect)


@pytest.mark.parametrize("r, kind", [
    (row(0, 12, entropy=1.2), "an exposure artifact (nearly black)"),  # black is also blank
    (row(243, 255, entropy=1.5), "an exposure artifact (washed out)"),
    (row(126, 131, entropy=1.9), "a blank or nearly blank frame"),
    (row(20, 230, gray=True), "a grey image in a colour set"),
    (row(20, 230, aspect=4.0), "another format (aspect ratio)"),
    (row(20, 230), "another subject or scene"),
])
def test_outlier_kind_names_what_the_pixels_show(r, kind):
    assert outlier_kind(r, colour_set=True, med_log_aspect=np.log(1.33)) == kind


def _varied_set(black: bool):
    """60 images spread over a sphere (a varied dataset) and a 61st a little further out:
    above Tukey's fence, under OUTLIER_RATIO x the median score; its pixels black or not."""
    rng = np.random.default_rng(7)
    v = rng.normal(size=(60, 12))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    base = score_outliers(v, k=10)["score"]
    fence, med = iqr_fence(base), float(base.median())
    u = rng.normal(size=12)
    u /= np.linalg.norm(u)
    for t in np.linspace(0, 3, 301):  # move a point out until it sits between the two cuts
        extra = v[0] + t * u
        x = np.vstack([v, extra / np.linalg.norm(extra) * 1.6])
        s = score_outliers(x, k=10)["score"]
        if iqr_fence(s) < s.iloc[-1] < OUTLIER_RATIO * s.median():
            break
    else:
        pytest.fail(f"no point between the fence {fence:.3f} and {OUTLIER_RATIO} x {med:.3f}")
    n = len(x)
    ids = list(range(1, n + 1))
    im = pd.DataFrame({IMAGE_ID: ids, FILE_NAME: [f"{i}.jpg" for i in ids], SPLIT: "train"})
    ds = Dataset(images=im, categories=pd.DataFrame({CATEGORY_ID: [1], NAME: ["x"]}),
                 annotations=None, name="varied")
    st = pd.DataFrame({IMAGE_ID: ids, "luma_p02": 15.0, "luma_p98": 230.0, "entropy": 7.0,
                       "is_grayscale": False, "aspect": 1.33})
    if black:
        st.loc[n - 1, ["luma_p02", "luma_p98", "entropy"]] = [0.0, 9.0, 1.1]
    emb = Embeddings(x.astype(np.float32), ids, "timm/x/y/pp1", False)
    return compute_outliers(ds, emb, stats=ImageStats(st)), n


def test_a_black_frame_above_the_fence_is_flagged_though_under_the_ratio():
    res, n = _varied_set(black=True)
    fl = res.flagged
    assert fl["image_id"].tolist() == [n]
    assert fl["kind"].iloc[0] == "an exposure artifact (nearly black)"


def test_an_ordinary_picture_at_the_same_score_is_not_flagged():
    res, n = _varied_set(black=False)
    assert res.flagged.empty
    assert res.per_image["kind"].isna().all()  # kinds are said of flagged images only
