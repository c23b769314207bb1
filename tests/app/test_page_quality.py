"""The Image quality page renders with AppTest on the sample and on a tiny dataset."""

from __future__ import annotations

import qa
from tests.app.pagetest import run_page, texts
from tests.conftest import SAMPLE


def test_sample_counts_histograms_and_worst_images():
    at = run_page("quality", qa.load(SAMPLE), "qual-sample")
    assert not at.exception, at.exception
    assert at.title[0].value == "Image quality"
    metrics = {m.label: m.value for m in at.metric}
    # exposure is judged on the objects or the lit part: the sample's black-sky photos are
    # not "dark"; the four grey photos are grey in a colour set
    assert metrics["Dark"] == "0" and metrics["Grey in a colour set"] == "4"
    first = next(c for c in ["dark", "overexposed", "blurry", "low_information", "grayscale"]
                 if metrics[{"low_information": "Low information",
                             "grayscale": "Grey in a colour set"}.get(c, c.title())] != "0")
    assert at.selectbox(key="qual_check").value == first  # the first check with flags
    assert "Image(" in repr(at.main)  # the worst images' gallery
    for check in ["dark", "overexposed", "blurry", "low_information", "grayscale", "odd_aspect",
                  "tiny"]:
        at.selectbox(key="qual_check").set_value(check).run()
        assert not at.exception, (check, at.exception)
    assert any("No image is flagged" in s.value for s in at.success)  # tiny: none here


def test_tiny_dataset(tmp_path):
    import numpy as np

    from tests.test_imagestats import folder_ds, scene

    ds = folder_ds(tmp_path, {"a.png": scene(1), "dark.png": (scene(2) * 0.1).astype(np.uint8),
                              "gone.png": None})
    at = run_page("quality", ds, "qual-tiny")
    assert not at.exception, at.exception
    assert "unreadable" in texts(at)
