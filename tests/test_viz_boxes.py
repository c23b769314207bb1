import numpy as np
import pandas as pd
from PIL import Image

from qa.viz.boxes import draw_boxes, load_image


def _anns(rows):
    return pd.DataFrame(rows, columns=["ann_id", "image_id", "category_id", "annotator", "x", "y",
                                       "w", "h"])


def test_boxes_are_drawn_in_annotator_colours_scaled():
    img = Image.new("RGB", (100, 100), "black")
    anns = _anns([(1, 1, 1, "alice", 10, 10, 40, 40), (2, 1, 1, "bob", 60, 60, 20, 20)])
    out = draw_boxes(img, anns, scale=0.5, colors={"alice": "#FF0000", "bob": "#0000FF"},
                     show_labels=False)
    a = np.asarray(out)
    assert tuple(a[20, 5]) == (255, 0, 0)     # alice's left edge at x=10*0.5
    assert tuple(a[35, 30]) == (0, 0, 255)    # bob's left edge at x=60*0.5
    assert tuple(np.asarray(img)[20, 5]) == (0, 0, 0)  # the input is not modified


def test_image_level_labels_become_chips():
    img = Image.new("RGB", (120, 60), "black")
    anns = _anns([(1, 1, 2, "alice", np.nan, np.nan, np.nan, np.nan)])
    out = np.asarray(draw_boxes(img, anns, category_names={2: "rose"},
                                colors={"alice": "#00FF00"}))
    assert (out[:12, :40] == (0, 255, 0)).all(axis=2).any()


def test_missing_or_corrupt_file_gives_placeholder(tmp_path):
    img, scale, err = load_image(tmp_path, "nope.jpg")
    assert err == "file not found" and img.size[0] > 0
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    img, scale, err = load_image(tmp_path, "bad.jpg")
    assert err.startswith("not a readable image") and img.mode == "RGB"
    assert "0x" not in err  # no object addresses in a user's message
    assert load_image(tmp_path, "../outside.jpg")[2] == "outside the dataset root"


def test_thumbnails_share_one_long_side(tmp_path):
    from tests.conftest import write_jpeg

    for size in ((40, 30), (1200, 900)):
        p = write_jpeg(tmp_path / f"{size[0]}.jpg", size=size)
        img, scale, err = load_image(tmp_path, p.name, max_side=480)
        assert err is None and max(img.size) == 480
        assert abs(scale - 480 / size[0]) < 1e-6
