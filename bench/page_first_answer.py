"""Issue 18's goal: a new user runs `make demo`, then `longdoc serve --insecure-local --index demo-index`,
opens the page and gets a cited answer in under a minute. This starts that server cold, opens the page in
Debian's headless Chromium as soon as the port answers, asks one question from the page, and times the
wait for the first streamed text, the sources, and the cited words open in the reader pane.

python bench/page_first_answer.py [--index demo-index] [--question Q]; the demo index must exist."""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_result  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", default="demo-index")
    parser.add_argument("--question", default="How should you get startup ideas?")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("LONGDOC_API_TOKEN", "LONGDOC_READER")}
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "longdoc", "serve", "--insecure-local", "--index", args.index,
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    marks = {}
    try:
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                httpx.get(base + "/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        driver.get(base + "/")
        marks["page_shown_s"] = time.perf_counter() - t0
        wait = WebDriverWait(driver, 300, poll_frequency=0.05)
        wait.until(lambda d: d.find_element(By.ID, "app").is_displayed()
                   and d.find_element(By.ID, "ask-button").is_enabled())
        marks["ready_s"] = time.perf_counter() - t0
        driver.find_element(By.ID, "query").send_keys(args.question)
        driver.find_element(By.ID, "ask-button").click()
        wait.until(lambda d: d.find_element(By.ID, "answer-text").text.strip())
        marks["first_text_s"] = time.perf_counter() - t0
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#citations li .source"))
        marks["cited_answer_s"] = time.perf_counter() - t0
        driver.find_element(By.CSS_SELECTOR, "#citations li .source").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#reader-text mark.cited"))
        marks["cited_words_open_s"] = time.perf_counter() - t0
        answer = driver.find_element(By.ID, "answer-text").text
        driver.save_screenshot(str(RESULTS / "page_first_answer.png"))
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=30)
    for name, seconds in marks.items():
        print(f"{name:20s} {seconds:6.1f} s")
    print(f"answer: {answer!r}; goal (a cited answer within 60 s of starting the server): "
          f"{'met' if marks['cited_answer_s'] < 60 else 'not met'}")
    print(f"wrote {write_result('page_first_answer', {'index': args.index, 'question': args.question, 'answer': answer, **marks})}")


if __name__ == "__main__":
    main()
