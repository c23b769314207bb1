"""Real browser on the Compare page: the sample's train split against its test split, the
verdict first, then the coverage tab's gallery; screenshots in artifacts/screenshots/."""

from __future__ import annotations

import pytest

from tests.app.test_browser import (  # noqa: F401  (server and browser are fixtures)
    HAVE_BROWSER,
    _click_text,
    _errors,
    _settle,
    _shot,
    _wait,
    browser,
    server,
)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not HAVE_BROWSER, reason="chromium + chromedriver not installed")]


def test_compare_splits_verdict_first_and_coverage_gallery(server, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/compare")
    _wait(browser, '[data-testid="stSidebar"]')
    _wait(browser, '[data-testid="stAlert"]')
    _settle(browser)
    assert "Compare" in " ".join(h.text for h in browser.find_elements(By.CSS_SELECTOR, "h1"))
    alerts = [a.text for a in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlert"]')]
    assert any(a.startswith(("No drift", "Drift in")) for a in alerts), alerts
    assert _errors(browser) == []
    main = browser.find_element(By.CSS_SELECTOR, "section.stMain, [data-testid='stMain']").text
    for signal in ("Labels", "Image statistics", "Embeddings", "Coverage"):
        assert signal in main
    assert browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")  # the class-mix chart
    _shot(browser, "compare_splits")
    _click_text(browser, "//*[@role='tab'][contains(normalize-space(.), 'Coverage')]")
    _settle(browser)
    assert _errors(browser) == []
    _shot(browser, "compare_coverage")
