"""Issue 21: a per-class outlier is a box, so it is shown as that box: cropped with some
context and outlined, not as the whole image with nothing saying which box is odd."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image, ImageColor

from qa.dataset import Dataset
from qa.viz.boxes import CROP_CONTEXT, HIGHLIGHT_COLOR, render_object


def _ds(tmp_path):
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(tmp_path / "a.png")
    anns = pd.DataFrame({"ann_id": [1, 2], "image_id": [1, 1], "category_id": [1, 1],
                         "annotator": ["al", "al"], "x": [100.0, 10.0], "y": [50.0, 10.0],
                         "w": [40.0, 20.0], "h": [20.0, 20.0]})
    return Dataset(images=pd.DataFrame({"image_id": [1], "file_name": ["a.png"],
                                        "width": [300], "height": [200]}),
                   categories=pd.DataFrame({"category_id": [1], "name": ["circle"]}),
                   annotations=anns, root=tmp_path)


def test_render_object_crops_and_highlights_the_box(tmp_path):
    img, err = render_object(_ds(tmp_path), 1, min_side=1)
    assert err is None
    # box 40 x 20 plus 0.75 of it on each side (and a few px for the outline)
    assert abs(img.width - 40 * (1 + 2 * CROP_CONTEXT)) <= 10
    assert abs(img.height - 20 * (1 + 2 * CROP_CONTEXT)) <= 10
    px = np.asarray(img.convert("RGB")).reshape(-1, 3)
    assert (px == ImageColor.getrgb(HIGHLIGHT_COLOR)).all(axis=1).sum() > 100
    big, _ = render_object(_ds(tmp_path), 1)  # enlarged to be seen
    assert min(big.size) >= 160
    none, why = render_object(_ds(tmp_path), 99)
    assert none is None and "99" in why


def test_class_outlier_captions_name_the_image_class_and_look():
    from qa.viz.outliers import class_outlier_captions

    fc = pd.DataFrame({"ann_id": [7.0, np.nan], "image_id": [78, 3], "name": ["circle", "ring"],
                       "file_name": ["train/000078.jpg", "val/000003.jpg"],
                       "nearest_name": ["square", "ring"], "excess": [2.14, 1.3]})
    assert class_outlier_captions(fc) == {
        7: "train/000078.jpg: circle, looks like square (2.1x spread)"}


def test_ranked_captions_say_rank_score_and_kind_where_known():
    from qa.viz.outliers import ranked_captions

    fl = pd.DataFrame({"image_id": [5, 9], "rank": [1, 2], "score": [0.41234, 0.2],
                       "kind": ["blank frame", None]})
    assert ranked_captions(fl) == {5: "rank 1, score 0.412, blank frame", 9: "rank 2, score 0.2"}
