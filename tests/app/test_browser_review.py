"""Real browser, done-when of the review workflow: review 5 items of sample_data on the Review
page (buttons and keyboard shortcuts), restart the streamlit server, and see the 5 decisions
kept. Screenshots: artifacts/screenshots/review_before_restart.png, review_after_restart.png."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.app.test_browser import (
    HAVE_BROWSER,
    ROOT,
    STARTUP_S,
    _errors,
    _free_port,
    _settle,
    _shot,
    _wait,
    browser,
)

__all__ = ["browser"]  # the fixture, shared with test_browser.py

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not HAVE_BROWSER, reason="chromium + chromedriver not installed")]
NAME_BOX = 'input[aria-label="Your name (recorded with each decision)"]'


def _start(env: dict) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = open(ROOT / "artifacts" / f"streamlit-review-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
         "true", "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + STARTUP_S
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail(f"streamlit did not start in {STARTUP_S}s; see {log.name}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _progress(drv) -> str:
    from selenium.webdriver.common.by import By

    return drv.find_element(By.CSS_SELECTOR, '[data-testid="stProgress"]').text


def _open_review(drv, url: str) -> None:
    drv.get(f"{url}/review")
    _wait(drv, '[data-testid="stSidebar"]')
    _wait(drv, '[data-testid="stProgress"]')
    _settle(drv)


def test_five_decisions_survive_a_server_restart(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    (ROOT / "artifacts").mkdir(exist_ok=True)
    db = tmp_path / "team.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DATASET_QA_DB": f"sqlite:///{db}",
           "DATASET_QA_WARM_UP": "1"}
    proc, url = _start(env)
    try:
        _open_review(browser, url)
        assert _progress(browser).startswith("0 of ")
        total = _progress(browser).split(" of ")[1].split()[0]
        box = _wait(browser, NAME_BOX, 30)
        box.send_keys("tester", Keys.ENTER)
        _settle(browser)
        decisions = ["Confirm", "Not an issue", "Fixed", "key:1", "key:2"]
        for i, what in enumerate(decisions):
            if what.startswith("key:"):  # the keyboard shortcut, focus on the page body
                from selenium.webdriver.common.action_chains import ActionChains

                browser.execute_script("document.activeElement && document.activeElement.blur()")
                ActionChains(browser).send_keys(what[4:]).perform()
            else:
                btn = browser.find_element(By.XPATH, f"//button[.//p[text()='{what}']]")
                browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", btn)
                btn.click()
            WebDriverWait(browser, 60).until(
                lambda d, n=i + 1: _progress(d).startswith(f"{n} of "))
            _settle(browser)
        assert _progress(browser) == f"5 of {total} items reviewed"
        assert _errors(browser) == []
        _shot(browser, "review_before_restart")
    finally:
        _stop(proc)

    proc, url = _start(env)  # a new server process: nothing in memory survives
    try:
        _open_review(browser, url)
        assert _progress(browser) == f"5 of {total} items reviewed"
        # the table is drawn below the progress bar in the same run: wait for it, not a clock
        WebDriverWait(browser, 30).until(lambda d: "tester" in " ".join(
            e.text for e in d.find_elements(By.CSS_SELECTOR, ".st-key-rv_reviewers")))
        assert _errors(browser) == []
        _shot(browser, "review_after_restart")
    finally:
        _stop(proc)
    from qa.review import ReviewStore

    h = ReviewStore(f"sqlite:///{db}").history()
    assert h["status"].tolist() == ["confirmed", "not_an_issue", "fixed", "confirmed",
                                    "not_an_issue"]
    assert set(h["reviewer"]) == {"tester"} and h["item_key"].nunique() == 5
