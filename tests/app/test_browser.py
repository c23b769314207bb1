"""Real browser: `streamlit run app.py` on 127.0.0.1, driven by Debian's chromium through
Selenium. Opens every page, waits for the charts, checks the key elements and that no error box
shows, and saves screenshots to artifacts/screenshots/ (look at them).

Skipped when chromium/chromedriver are missing, unless QA_REQUIRE_BROWSER=1 (CI sets it), in
which case a missing browser fails the run instead of passing it silently.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_BROWSER = Path(CHROMIUM).exists() and Path(DRIVER).exists()
if not HAVE_BROWSER and os.environ.get("QA_REQUIRE_BROWSER") == "1":
    raise RuntimeError("QA_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed "
                       "(apt-get install chromium chromium-driver)")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not HAVE_BROWSER, reason="chromium + chromedriver not installed")]

# (url path, page title, a CSS selector that must appear once the page has rendered).
# A deep link comes first on purpose: on a fresh server Streamlit runs pages/*.py alone
# (v1 multipage mode) until app.py has run once; qa.app.state must route it through app.py.
PAGES = [
    ("agreement", "Annotator agreement", ".js-plotly-plot"),
    ("", "Overview", '[data-testid="stMetric"]'),
    ("balance", "Class balance", ".js-plotly-plot"),
    ("outliers", "Outliers", '[data-testid="stMarkdown"]'),
    ("duplicates", "Duplicates & leakage", ".js-plotly-plot"),
    ("quality", "Image quality", ".js-plotly-plot"),
    ("disagreement", "Model disagreement", '[data-testid="stImage"]'),  # the queue tab
    ("report", "Health report", ".js-plotly-plot"),
    ("review", "Review", '[data-testid="stImage"]'),
]
STARTUP_S = 90
RENDER_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DATASET_QA_WARM_UP": "1"}  # as users run it
    (ROOT / "artifacts").mkdir(exist_ok=True)
    log = open(ROOT / "artifacts" / "streamlit.log", "w")
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
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start in {STARTUP_S}s; see artifacts/streamlit.log")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--window-size=1600,1200",
              f"--user-data-dir={tmp_path_factory.mktemp('chrome')}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _wait(drv, css: str, timeout: float = RENDER_S):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def _wait_text(drv, css: str, text: str, timeout: float = RENDER_S):
    """Wait until an element matching ``css`` shows ``text`` (a tab's content is made when
    the tab is opened: it arrives with the rerun the click starts)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # an element can be replaced by the rerun while it is read: look again
    return WebDriverWait(drv, timeout, ignored_exceptions=[StaleElementReferenceException]
                         ).until(lambda d: any(text in e.text for e in
                                               d.find_elements(By.CSS_SELECTOR, css)))


def _settle(drv, timeout: float = RENDER_S):
    """Wait until Streamlit stops running the script (no 'running' status widget)."""
    from selenium.webdriver.common.by import By

    end = time.time() + timeout
    time.sleep(1.0)
    while time.time() < end:
        if not drv.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
            return
        time.sleep(0.5)


def _errors(drv) -> list[str]:
    from selenium.webdriver.common.by import By

    boxes = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    alerts = [e for e in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')]
    return [b.text[:400] for b in boxes + alerts]


def _shot(drv, name: str) -> Path:
    ART.mkdir(parents=True, exist_ok=True)
    # make the whole page visible in one image
    h = drv.execute_script(
        "const m = document.querySelector('section.stMain') || document.body;"
        "return Math.max(m.scrollHeight, document.body.scrollHeight);")
    drv.set_window_size(1600, min(max(int(h) + 200, 1200), 6000))
    time.sleep(0.5)
    path = ART / f"{name}.png"
    drv.save_screenshot(str(path))
    drv.set_window_size(1600, 1200)
    return path


@pytest.mark.parametrize("path,title,selector", PAGES)
def test_page_renders_in_real_browser(server, browser, path, title, selector):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/{path}")
    _wait(browser, '[data-testid="stSidebar"]')
    _wait(browser, selector)
    _settle(browser)
    heading = " ".join(h.text for h in browser.find_elements(By.CSS_SELECTOR, "h1"))
    assert title.split()[-1].lower() in heading.lower(), heading
    assert _errors(browser) == []
    sidebar = browser.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"]').text
    assert "sample_data" in sidebar and "300 images" in sidebar
    if path == "":
        assert "Validation report" in browser.page_source
        # the messages are read whole (issue 21): a static table with file, item and fix
        table = browser.find_element(By.CSS_SELECTOR, '[data-testid="stTable"]').text
        assert "val/000053.jpg" in table and "Add the file or remove the entry." in table
        imgs = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img')
        assert len(imgs) >= 8, "gallery thumbnails did not render"
    shot = _shot(browser, f"page_{path or 'overview'}")
    assert shot.stat().st_size > 20_000


def test_broken_dataset_through_picker_shows_error_and_app_keeps_working(server, browser,
                                                                         tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    bad = tmp_path / "broken"
    (bad / "annotations").mkdir(parents=True)
    (bad / "annotations" / "a.json").write_text('{"images": [{"id": 1,}]}')
    browser.get(server)
    _wait(browser, '[data-testid="stMetric"]')
    _settle(browser)
    radio = browser.find_elements(By.XPATH, "//label[.//p[text()='Path on server']]")
    radio[0].click()
    box = _wait(browser, 'input[aria-label="Folder or labels file on the server"]', 30)
    box.send_keys(str(bad), Keys.ENTER)
    _wait(browser, '[data-testid="stAlertContentError"]', 60)
    _settle(browser)
    text = " ".join(e.text for e in browser.find_elements(
        By.CSS_SELECTOR, '[data-testid="stAlertContentError"]'))
    assert "Could not load" in text and "malformed JSON at line 1" in text
    assert "Still showing the previous dataset" in text
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'), \
        "the app stopped showing the dataset"
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    _shot(browser, "picker_broken_dataset")
    (ART / "picker_error.json").write_text(json.dumps({"error": text}))


def _click_text(drv, xpath_text: str):
    from selenium.webdriver.common.by import By

    el = drv.find_element(By.XPATH, xpath_text)
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.click()
    return el


def test_agreement_disputed_gallery_and_pair_heatmaps(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/agreement")
    _wait(browser, '[data-testid="stDataFrame"]')
    _settle(browser)
    _click_text(browser, "//*[@role='tab'][contains(normalize-space(.), 'Pairs')]")
    _wait(browser, ".js-plotly-plot")
    _settle(browser)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 3
    _shot(browser, "agreement_pairs")
    _click_text(browser, "//*[@role='tab'][contains(normalize-space(.), 'Disputed images')]")
    _wait(browser, '[data-testid="stImage"] img')  # a tab's content is made when it opens
    _settle(browser)
    imgs = [i for i in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img')
            if i.is_displayed()]
    assert len(imgs) >= 8
    captions = " ".join(c.text for c in browser.find_elements(
        By.CSS_SELECTOR, '[data-testid="stImageCaption"]'))
    assert any(k in captions for k in ("missed", "extra", "label", "loose"))
    assert _errors(browser) == []
    _shot(browser, "agreement_disputed")


def test_balance_checks_open_a_gallery(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/balance")
    _wait(browser, ".js-plotly-plot")
    _settle(browser)
    _click_text(browser, "//label[.//p[text()='Checks']]")
    _settle(browser)
    text = browser.find_element(By.CSS_SELECTOR, "section.stMain, [data-testid='stMain']").text
    assert "star" in text  # the planted rare class is named by the failing check
    assert _errors(browser) == []
    _shot(browser, "balance_checks")


def test_zip_upload_through_picker_loads_the_dataset(server, browser, tmp_path):
    import zipfile

    from selenium.webdriver.common.by import By

    from tests.conftest import coco_doc, write_jpeg

    src = tmp_path / "mini"
    for k, name in enumerate(["a.jpg", "b.jpg"]):
        write_jpeg(src / "images" / name, size=(64, 48), seed=k)
    (src / "annotations").mkdir()
    (src / "annotations" / "ann1.json").write_text(json.dumps(coco_doc(
        [(1, "a.jpg", 64, 48), (2, "b.jpg", 64, 48)], [(1, 1, 1, (1, 2, 20, 10))])))
    (src / "annotations" / "ann2.json").write_text(json.dumps(coco_doc(
        [(1, "a.jpg", 64, 48), (2, "b.jpg", 64, 48)], [(1, 1, 1, (2, 2, 20, 10))])))
    archive = tmp_path / "mini.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*")):
            z.write(p, p.relative_to(tmp_path).as_posix())
    browser.get(server)
    _wait(browser, '[data-testid="stMetric"]')
    _settle(browser)
    _click_text(browser, "//label[.//p[text()='Upload .zip']]")
    upload = _wait(browser, '[data-testid="stSidebar"] input[type="file"]', 30)
    upload.send_keys(str(archive))
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, RENDER_S).until(lambda d: "mini (coco): 2 images" in d.find_element(
        By.CSS_SELECTOR, '[data-testid="stSidebar"]').text)
    _settle(browser)
    metrics = {m.text.split("\n")[0]: m.text.split("\n")[-1] for m in browser.find_elements(
        By.CSS_SELECTOR, '[data-testid="stMetric"]')}
    assert metrics["Images"] == "2" and metrics["Annotators"] == "2"
    assert _errors(browser) == []
    # the gallery's annotator filter was reset to the new dataset's annotators
    chips = browser.find_element(By.CSS_SELECTOR, ".st-key-ov_annotators").text
    assert "ann1" in chips and "ann2" in chips and "alice" not in chips
    # the extraction outlives the rerun that loaded it (the gallery reads the files later)
    assert "file not found" not in browser.find_element(By.TAG_NAME, "body").text
    _shot(browser, "picker_zip_upload")


def test_classification_folder_through_picker_renders_every_page(server, browser, tmp_path):
    """An ImageFolder dataset (one annotator, image labels, no boxes) on every page: the
    pages explain what does not apply instead of failing."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import write_jpeg

    root = tmp_path / "flowers"
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("daisy", "rose", "tulip"):
            for k in range(n):
                write_jpeg(root / split / cls / f"{cls}_{k}.jpg", size=(40, 30), seed=k)
    browser.get(server)
    _wait(browser, '[data-testid="stMetric"]')
    _settle(browser)
    _click_text(browser, "//label[.//p[text()='Path on server']]")
    box = _wait(browser, 'input[aria-label="Folder or labels file on the server"]', 30)
    box.send_keys(str(root), Keys.ENTER)
    WebDriverWait(browser, RENDER_S).until(lambda d: "flowers (imagefolder): 18 images" in
                                           d.find_element(By.CSS_SELECTOR,
                                                          '[data-testid="stSidebar"]').text)
    for name, label in (("overview", "Overview"), ("balance", "Class balance"),
                        ("agreement", "Annotator agreement")):
        _click_text(browser, f"//a[@data-testid='stSidebarNavLink'][contains(., '{label}')]")
        _wait(browser, "h1")
        _settle(browser)
        assert _errors(browser) == [], name
        _shot(browser, f"classification_{name}")
    text = browser.find_element(By.CSS_SELECTOR, "[data-testid='stMain']").text
    assert "Agreement needs at least 2 annotators" in text


def test_agreement_scorecard_noise_and_dawid_skene_confusion(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/agreement")
    _wait(browser, '[data-testid="stDataFrame"]')
    _wait(browser, ".js-plotly-plot")
    _settle(browser)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "reliability-weighted consensus" in body
    plots = " ".join(p.text for p in browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"))
    assert "Box noise per annotator" in plots
    assert _errors(browser) == []
    _shot(browser, "agreement_scorecard")
    _click_text(browser, "//*[@role='tab'][contains(normalize-space(.), 'Confusion')]")
    _wait_text(browser, ".js-plotly-plot", "Dawid-Skene")
    _settle(browser)
    plots = " ".join(p.text for p in browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"))
    assert "Dawid-Skene" in plots and "what carol gave" in plots  # the most confused first
    assert _errors(browser) == []
    _shot(browser, "agreement_ds_confusion")


def test_outliers_page_embeds_sample_data_and_shows_the_planted_photos(server, browser):
    """Press 'Embed' on sample_data (offline model), then the ranked gallery and the map."""
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/outliers")
    _wait(browser, "h1")
    _settle(browser)
    main = lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid='stMain']").text  # noqa
    assert "not CLIP" in main()
    buttons = browser.find_elements(By.XPATH, "//button[.//p[starts-with(text(), 'Embed ')]]")
    if buttons:  # a store from an earlier run may already hold the vectors
        buttons[0].click()
    WebDriverWait(browser, 600).until(lambda d: "Flag threshold" in main())
    _settle(browser)
    assert _errors(browser) == []
    captions = " ".join(c.text for c in browser.find_elements(
        By.CSS_SELECTOR, '[data-testid="stImageCaption"]'))
    planted = json.loads((ROOT / "sample_data" / "PLANTED.json").read_text())
    ood = [d["file_name"] for d in planted["ood_images"]]
    shown = [f for f in ood if f in captions]
    assert len(shown) == 10, shown  # the ranked gallery shows the 10 planted photographs
    _shot(browser, "outliers_top")
    gallery = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"]')[4]
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", gallery)
    time.sleep(0.5)
    browser.save_screenshot(str(ART / "outliers_ranked.png"))
    _click_text(browser, "//label[.//p[text()='Map']]")
    _wait(browser, ".js-plotly-plot")
    _settle(browser)
    assert _errors(browser) == []
    plot = browser.find_element(By.CSS_SELECTOR, ".js-plotly-plot")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", plot)
    time.sleep(0.5)
    browser.save_screenshot(str(ART / "outliers_map.png"))


def test_disagreement_queue_gallery_metrics_and_confusion(server, browser):
    """The review queue shows the planted label errors with both overlays and the reasons;
    the metrics tab its PR curves, the confusion tab its matrix with background."""
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/disagreement")
    _wait(browser, '[data-testid="stImage"] img')
    _settle(browser)
    assert _errors(browser) == []
    captions = " ".join(c.text for c in browser.find_elements(
        By.CSS_SELECTOR, '[data-testid="stImageCaption"]'))
    assert "quality" in captions and any(k in captions for k in (
        "spurious label", "wrong class", "missing label"))
    assert "predictions" in browser.page_source  # the legend names the dashed model boxes
    _shot(browser, "disagreement_queue")
    _click_text(browser, "//*[@role='tab'][contains(normalize-space(.), 'Flags by type')]")
    _wait(browser, ".js-plotly-plot")
    _settle(browser)
    _shot(browser, "disagreement_counts")
    _click_text(browser, "//*[@role='tab'][contains(normalize-space(.), 'Model metrics')]")
    _wait_text(browser, "body", "AP50")
    _settle(browser)
    assert "AP50" in browser.find_element(By.TAG_NAME, "body").text
    _shot(browser, "disagreement_metrics")
    _click_text(browser, "//*[@role='tab'][contains(normalize-space(.), 'Confusion')]")
    _wait_text(browser, ".js-plotly-plot", "background")
    _settle(browser)
    assert _errors(browser) == []
    _shot(browser, "disagreement_confusion")


def test_exported_html_report_draws_its_charts_offline(browser, tmp_path):
    """The HTML export opens from a file (no server, no network) with every chart drawn."""
    from selenium.webdriver.common.by import By

    import qa
    from qa.report import build_report
    from qa.report.export import write_report

    ds = qa.load(ROOT / "sample_data")
    files = write_report(build_report(ds, embeddings="skip"), tmp_path / "out",
                         formats=("html",))
    browser.get(files["html"].as_uri())
    _wait(browser, ".js-plotly-plot .main-svg", 60)
    time.sleep(1.0)
    plots = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
    assert len(plots) >= 3
    bars = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot g.point")
    assert len(bars) >= 5, "the bar charts have no bars"
    thumbs = browser.find_elements(By.CSS_SELECTOR, ".thumbs img")
    assert thumbs and all(b.get_property("naturalWidth") > 0 for b in thumbs)
    shot = _shot(browser, "report_html_export")
    assert shot.stat().st_size > 20_000


def test_report_evidence_links_open_the_filtered_page(server, browser):
    """A manager follows the health report's links: the missing/corrupt files check opens the
    overview narrowed to images 53 and 97; the loose-box check opens the agreement page with
    bob's loosest boxes."""
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/?image_id=53,97&kind=missing_file")
    _wait(browser, '[data-testid="stTable"]')  # two messages: a static table, read whole
    _settle(browser)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Showing the evidence of a link (missing file): 2 image(s)." in body, body[:500]
    assert _errors(browser) == []
    _shot(browser, "link_overview_missing_files")
    import qa
    from qa.report import build_report

    link = build_report(qa.load(ROOT / "sample_data"), embeddings="skip").check(
        "annotator_box_iou").link
    assert link.startswith("agreement?image_id=") and link.endswith("kind=loose_annotator")
    browser.get(f"{server}/{link}")  # bob's loosest boxes
    _wait(browser, '[data-testid="stDataFrame"]')
    _settle(browser)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Showing the evidence of a link (loose annotator)" in body and "Scorecard" in body
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, RENDER_S).until(lambda d: len(d.find_elements(
        By.CSS_SELECTOR, '[data-testid="stImage"] img')) >= 8)  # the first page of examples
    _shot(browser, "link_agreement_loose_annotator")
    _click_text(browser, "//button[contains(normalize-space(.), 'Show the whole dataset')]")
    _settle(browser)
    assert "Showing the evidence" not in browser.find_element(By.TAG_NAME, "body").text
    assert "kind=" not in browser.current_url
