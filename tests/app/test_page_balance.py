"""The Class balance page renders with streamlit's AppTest on small datasets (no browser)."""

from __future__ import annotations

import pytest

from tests.test_balance import ANNS, CATS, IMAGES, make_ds, three_annotators
from tests.app.pagetest import texts
from tests.app.pagetest import run_page as _run


def run_page(ds, key: str):
    return _run("balance", ds, key)


def test_renders_detection_dataset():
    at = run_page(make_ds(IMAGES, CATS, ANNS), "balance-detection")
    assert not at.exception, at.exception
    assert at.title[0].value == "Class balance"
    assert at.metric[3].value == "6.0"  # imbalance ratio cat 6 / bird 1
    # toggles and sort widgets work and the gallery of a failing check opens
    at.radio(key="bal_sort").set_value("name").run()
    at.toggle(key="bal_log").set_value(True).run()
    for section in ["Splits", "Boxes", "Images", "Where objects are", "Annotators", "Checks"]:
        at.radio(key="bal_section").set_value(section).run()
        assert not at.exception, (section, at.exception)
    at.toggle(key="bal_show_tiny_boxes").set_value(True).run()
    assert not at.exception, at.exception
    assert "Image(" in repr(at.main)  # the gallery of the tiny box's image (a placeholder here)
    at.multiselect(key="bal_classes").set_value(["cat"]).run()
    at.multiselect(key="bal_splits").set_value(["train", "val"]).run()
    assert not at.exception, at.exception


def test_renders_classification_dataset_with_annotators():
    at = run_page(three_annotators(), "balance-classification")
    assert not at.exception, at.exception
    assert "No boxes" in texts(at)
    at.radio(key="bal_section").set_value("Boxes").run()
    assert "No boxes" in texts(at)
    at.selectbox(key="bal_annotator").set_value("c").run()
    at.radio(key="bal_section").set_value("Annotators").run()
    at.radio(key="bal_ann_value").set_value("instances").run()
    assert not at.exception, at.exception


@pytest.mark.parametrize("anns, cats, expect", [
    ([], [(1, "cat"), (2, "dog")], "No annotations"),
    ([(1, 1, 1, 0, 0, 10, 10)], [(1, "cat")], "Only one class"),
])
def test_degenerate_datasets_explain(anns, cats, expect):
    at = run_page(make_ds([(1, 100, 100, "train"), (2, 100, 100, "val")], cats, anns),
                  f"balance-{expect}")
    assert not at.exception, at.exception
    assert expect in texts(at)
    for section in ["Splits", "Boxes", "Images", "Where objects are", "Annotators", "Checks"]:
        at.radio(key="bal_section").set_value(section).run()
        assert not at.exception, (section, at.exception)


def test_starts_on_all_annotators_pooled_and_says_so():
    """Issue 21: with several annotators the page starts on all of them pooled, in the
    title; one annotator's labels say whose in the title too."""
    from qa.balance import ALL_ANNOTATORS
    from tests.test_balance import three_annotators

    at = run_page(three_annotators(), "balance-pooled")
    assert not at.exception, at.exception
    assert at.selectbox(key="bal_annotator").value == ALL_ANNOTATORS
    assert at.title[0].value == "Class balance: all 3 annotators pooled"
    at.selectbox(key="bal_annotator").set_value("c").run()
    assert at.title[0].value == "Class balance: c's labels"
