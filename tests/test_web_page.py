"""The web page (`longdoc serve` at /), in a real headless Chromium (Debian's chromium and chromedriver,
which .ci/run installs) driven by Selenium, against a real server over a real index on 127.0.0.1.

Screenshots of each step go to $LONGDOC_SCREENSHOTS (docs/screenshots for the README) or the test's
temporary folder."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import FIXTURES, running_server

pytestmark = pytest.mark.slow
selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "page-token-0123456789abcdef"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
HOSTILE = ("Harbour notes.\n\nThe harbour master wrote <script>window.pwned = 'script'</script> in the log, and "
           "<img src=x onerror=\"window.pwned = 'img'\"> beside it, and the quay was rebuilt in 1904.\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    corpus = tmp / "corpus"
    corpus.mkdir()
    for name in ("fog_signals.txt", "lighthouses.md", "tides.rst", "lighthouse_log.pdf"):
        shutil.copy(FIXTURES / name, corpus / name)
    (corpus / "harbour.txt").write_text(HOSTILE)
    done = subprocess.run([sys.executable, "-m", "longdoc", "index", str(corpus), "--index", str(tmp / "index")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with running_server(tmp / "index", "--max-request-mb", "1", env={"LONGDOC_API_TOKEN": TOKEN}) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are missing: .ci/run installs them with apt-get")
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("LONGDOC_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait(driver, condition, timeout=60, message=""):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message)


def shown(driver, element_id) -> bool:
    return driver.find_element(By.ID, element_id).is_displayed()


def sign_in(driver, base):
    driver.get(base + "/")
    wait(driver, lambda d: shown(d, "login") or shown(d, "app"))
    if shown(driver, "login"):
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(driver, lambda d: shown(d, "app") and d.find_elements(By.CSS_SELECTOR, "#documents tbody tr"))


def search(driver, query):
    box = driver.find_element(By.ID, "query")
    box.clear()
    box.send_keys(query)
    driver.find_element(By.ID, "search-button").click()
    wait(driver, lambda d: shown(d, "results") and d.find_elements(By.CSS_SELECTOR, "#hits li"))
    return driver.find_elements(By.CSS_SELECTOR, "#hits li")


def test_the_page_asks_for_the_token_and_shows_nothing_without_it(server, browser, shots):
    browser.delete_all_cookies()
    browser.get(server + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait(browser, lambda d: shown(d, "login"))
    assert not shown(browser, "app")
    assert not browser.find_elements(By.CSS_SELECTOR, "#documents tbody tr, #hits li")
    assert "lighthouse" not in browser.find_element(By.TAG_NAME, "body").text.lower()
    browser.find_element(By.ID, "token").send_keys("not-the-token-at-all")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(browser, lambda d: "not accepted" in d.find_element(By.ID, "login-error").text)
    browser.save_screenshot(str(shots / "1-sign-in.png"))
    assert not shown(browser, "app")
    assert "token" not in browser.current_url


def test_a_search_shows_hits_with_the_query_words_marked(server, browser, shots):
    sign_in(browser, server)
    assert "5 documents" in browser.find_element(By.ID, "index-status").text
    hits = search(browser, "fog signal diaphone")
    assert "fog" in hits[0].text.lower()
    marks = browser.find_elements(By.CSS_SELECTOR, "#hits mark")
    assert marks and {m.text.lower() for m in marks} <= {"fog", "signal", "diaphone"}
    browser.save_screenshot(str(shots / "2-search.png"))


def test_ask_streams_the_answer_then_a_citation_opens_at_the_cited_words(server, browser, shots):
    sign_in(browser, server)
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("How long did the tower at Carrow Point take to build?")
    browser.find_element(By.ID, "ask-button").click()
    # Streaming: the page shows the answer's tokens as they come, before the whole answer and its sources.
    # The page counts them: polling for the in-between state misses it when a short answer comes in one read.
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#citations li"), timeout=120)
    text = browser.find_element(By.ID, "answer-text")
    assert "streaming" not in text.get_attribute("class")
    assert int(text.get_attribute("data-streamed-tokens")) >= 1, "no token was shown while the answer streamed"
    assert text.text.strip()
    browser.save_screenshot(str(shots / "3-answer.png"))

    first = browser.find_element(By.CSS_SELECTOR, "#citations li .source")
    answer = httpx.post(server + "/v1/ask", json={"question": "How long did the tower at Carrow Point take to build?"},
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120).json()
    cited = answer["citations"][0]
    first.click()
    wait(browser, lambda d: shown(d, "reader") and d.find_elements(By.CSS_SELECTOR, "#reader-text mark.cited"))
    mark = browser.find_element(By.CSS_SELECTOR, "#reader-text mark.cited")
    assert mark.text.split() == cited["text"].split()  # the cited span, exactly, highlighted
    assert browser.find_element(By.ID, "reader-title").text == cited["title"]
    visible = browser.execute_script(
        "const m = arguments[0].getBoundingClientRect(), b = document.getElementById('reader-text').getBoundingClientRect();"
        "return m.top < b.bottom && m.bottom > b.top;", mark)
    assert visible, "the reader pane is not scrolled to the cited words"
    browser.save_screenshot(str(shots / "4-citation.png"))


def test_a_pdf_hit_opens_on_its_page_with_the_text_highlighted(server, browser, shots):
    sign_in(browser, server)
    hits = search(browser, "keeper's log lamp lit")
    pdf = next((h for h in hits if "page" in h.find_element(By.CSS_SELECTOR, ".meta").text), None)
    assert pdf is not None, [h.text for h in hits]
    pdf.find_element(By.CSS_SELECTOR, ".source").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#reader-text .page-label"))
    assert "page" in browser.find_element(By.ID, "reader-where").text
    assert browser.find_element(By.CSS_SELECTOR, "#reader-text mark.cited").text.strip()
    browser.save_screenshot(str(shots / "5-pdf-page.png"))


def test_upload_index_find_and_remove_a_document(server, browser, shots, tmp_path):
    sign_in(browser, server)
    note = tmp_path / "beacons.md"
    note.write_text("# Beacons\n\nThe zebrafinch beacon on Skerry Holm flashes green every nine seconds.\n")
    browser.find_element(By.ID, "file-input").send_keys(str(note))
    wait(browser, lambda d: "Indexing beacons.md: done" in d.find_element(By.ID, "jobs").text, timeout=120)
    wait(browser, lambda d: "Beacons" in d.find_element(By.ID, "documents").text)
    browser.save_screenshot(str(shots / "6-uploaded.png"))
    assert "zebrafinch" in search(browser, "zebrafinch beacon")[0].text
    # A drop on the drop zone takes the same path (a real drop event with a File in its DataTransfer).
    browser.execute_script("""
        const data = new DataTransfer();
        data.items.add(new File(['Dropped notes: the quokka light is painted red.'], 'dropped.txt', {type: 'text/plain'}));
        document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));""")
    wait(browser, lambda d: "Indexing dropped.txt: done" in d.find_element(By.ID, "jobs").text, timeout=120)
    # The API's limits hold for the page: a format it does not read is refused, and the page says why.
    browser.execute_script("""
        const data = new DataTransfer();
        data.items.add(new File(['PK'], 'report.docx'));
        document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));""")
    wait(browser, lambda d: "report.docx: not a supported format" in d.find_element(By.ID, "jobs").text)
    for title in ("Beacons", "dropped"):
        row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#documents tbody tr") if title in r.text)
        row.find_element(By.CSS_SELECTOR, "button.remove").click()
        wait(browser, lambda d: title not in d.find_element(By.ID, "documents").text, timeout=120)
    assert all("zebrafinch" not in h.text for h in search(browser, "zebrafinch beacon"))


def test_document_text_with_markup_is_shown_as_text_and_never_runs(server, browser, shots):
    sign_in(browser, server)
    hit = next(h for h in search(browser, "harbour master quay rebuilt") if "Harbour" in h.text)
    assert "<script>" in hit.text  # the snippet shows the markup as characters
    hit.find_element(By.CSS_SELECTOR, ".source").click()
    wait(browser, lambda d: shown(d, "reader") and "<img src=x" in d.find_element(By.ID, "reader-text").text)
    time.sleep(0.5)  # an onerror handler would have fired by now
    assert browser.execute_script("return window.pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#reader-text script, #reader-text img, #hits script, #hits img")
    browser.save_screenshot(str(shots / "7-markup-as-text.png"))
    page = httpx.get(server + "/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy


def test_search_and_sources_work_from_the_keyboard(server, browser):
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, server)
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("tide tables", Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#hits li .source"))
    source = browser.find_element(By.CSS_SELECTOR, "#hits li .source")
    browser.execute_script("arguments[0].focus()", source)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait(browser, lambda d: shown(d, "reader"))
    assert browser.switch_to.active_element.get_attribute("id") == "reader-text"  # focus follows to the text
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(browser, lambda d: not shown(d, "reader"))


def test_the_page_works_at_a_phones_width(server, browser, shots):
    sign_in(browser, server)
    browser.set_window_size(390, 844)
    try:
        hits = search(browser, "tide tables")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways at a phone's width ({width} px)"
        assert hits[0].is_displayed()
        browser.save_screenshot(str(shots / "8-phone.png"))
    finally:
        browser.set_window_size(1280, 900)
