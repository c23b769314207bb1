"""Issue 21, look: a ranked gallery reads in rank order. Thumbnails are laid out one row of
columns at a time (left to right, row by row), not dealt into columns that each stack their
own images (a masonry: ragged rows, and the ranking zig-zags down the columns)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from qa.app.state import KEY_DATASET, KEY_DATASET_KEY
from tests.test_disagreement import make_ds


def _gallery_page():
    import streamlit as st

    from qa.app.widgets import image_gallery

    ds = st.session_state["dataset"]
    image_gallery(ds, [5, 3, 9, 1, 7, 2, 8, 4, 6], key="g", columns=4,
                  captions={i: f"rank of {i}" for i in range(1, 10)})


def test_gallery_rows_read_in_rank_order():
    ds = make_ds([], [], images=range(1, 10))
    at = AppTest.from_function(_gallery_page, default_timeout=60)
    at.session_state[KEY_DATASET] = ds
    at.session_state["dataset"] = ds
    at.session_state[KEY_DATASET_KEY] = "gallery-order"
    at.run()
    assert not at.exception, at.exception
    rows = [b for b in at.main.children.values() if getattr(b, "type", "") == "flex_container"]
    assert len(rows) == 3  # 9 images, 4 a row: three rows of columns
    order = []
    for row in rows:
        for col in row.children.values():
            order += [int(im.proto.imgs[0].caption.split()[0][1:])
                      for im in col.children.values()]
    assert order == [5, 3, 9, 1, 7, 2, 8, 4, 6]
