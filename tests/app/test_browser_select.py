"""Real browser on the Select & split page (sample_data with its detector): the picks appear as
a gallery with their reasons, the split section shows the before/after and the class-mix
chart, no error box anywhere. Screenshots go to artifacts/screenshots/ (look at them)."""

from __future__ import annotations

from tests.app.test_browser import (  # noqa: F401  (fixtures)
    _errors,
    _settle,
    _shot,
    _wait,
    browser,
    pytestmark,
    server,
)


def test_select_page_picks_with_reasons_then_the_split(server, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/select")
    _wait(browser, '[data-testid="stSidebar"]')
    _wait(browser, '[data-testid="stMetric"]')
    _wait(browser, '[data-testid="stImage"] img')
    _settle(browser)
    assert "Select & split" in " ".join(h.text for h in browser.find_elements(By.TAG_NAME, "h1"))
    assert _errors(browser) == []
    page = browser.find_element(By.CSS_SELECTOR, "[data-testid=\"stMain\"]").text
    # uncertainty of the detector, or hybrid when the store already holds the embeddings
    assert "Picked, in order" in page and "of detector" in page
    captions = " ".join(e.text for e in browser.find_elements(
        By.CSS_SELECTOR, '[data-testid="stImageCaption"], [data-testid="caption"]'))
    assert "1. model unsure" in captions or "1. model unsure" in browser.page_source
    assert len(browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img')) >= 8
    assert _shot(browser, "page_select").stat().st_size > 20_000

    label = browser.find_elements(By.XPATH, "//label[.//p[text()='Propose a split']]")
    label[0].click()
    _wait(browser, ".js-plotly-plot")
    _settle(browser)
    assert _errors(browser) == []
    page = browser.find_element(By.CSS_SELECTOR, "[data-testid=\"stMain\"]").text
    assert "Images that change split" in page, page[:2000]
    assert _shot(browser, "page_select_split").stat().st_size > 20_000

