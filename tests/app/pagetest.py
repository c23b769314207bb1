"""Run one page with AppTest on a given Dataset (no app.py, no browser)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from qa.app.state import KEY_DATASET, KEY_DATASET_KEY

ROOT = Path(__file__).resolve().parents[2]


def run_page(page: str, ds, key: str) -> AppTest:
    """``page`` like "balance"; ``key`` is the dataset's cache key (unique per dataset)."""
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=60)
    at.session_state[KEY_DATASET] = ds
    at.session_state[KEY_DATASET_KEY] = key
    return at.run()


def texts(at) -> str:
    """The page's info, markdown and caption text in one string."""
    return " ".join(str(e.value) for e in [*at.info, *at.markdown, *at.caption] if e.value)
