"""The dashboard in a real browser: Debian's headless chromium (driven by selenium through chromium-driver) loads the
page while `fakewatch watch demo --http` runs, with a token. It checks the camera tile, that its image loads, that the
state text goes REAL -> FAKE with the demo's manipulated segment, and that a FAKE event with an evidence thumbnail
appears. FAKEWATCH_DASHBOARD_SCREENSHOT=PATH saves a screenshot (docs/img/dashboard.png was made this way).

Skips when chromium, chromedriver or selenium is missing; fails instead in CI (FAKEWATCH_REQUIRE_BROWSER=1, set by
.ci/run, which installs them)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .mqtt_broker import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
TOKEN = "browser-test-token"


def _require_browser() -> None:
    missing = [n for n, ok in (("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if not ok]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e .[dev])")
    if missing:
        why = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("FAKEWATCH_REQUIRE_BROWSER"):
            pytest.fail(f"the browser test is required (FAKEWATCH_REQUIRE_BROWSER=1): {why}")
        pytest.skip(why)


def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,800", f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(flag)
    # an explicit driver path: selenium never runs Selenium Manager (which would download drivers)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)


def wait_until(fn, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_dashboard_in_chromium(tmp_path):
    _require_browser()
    port = free_port()
    env = {**os.environ, "FAKEWATCH_HTTP_TOKEN": TOKEN}       # from the environment: never on the command line
    proc = subprocess.Popen([sys.executable, "-m", "fakewatch", "watch", "demo", "--no-live", "--http", str(port),
                             "--snapshots", str(tmp_path / "evidence"), "--duration", "90", "--window", "1s",
                             "--min-duration", "0.5"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/"
    driver = None
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(base + "api/cameras?token=" + TOKEN, timeout=2) as r:
                    return r.status == 200
            except OSError:
                assert proc.poll() is None, proc.communicate()[1][-2000:]
                return False

        wait_until(up, 90, "the dashboard to answer")
        driver = browser(tmp_path)
        driver.get(base + "?token=" + TOKEN)                  # the page passes its token on to the API and stream
        tile = 'article.tile[data-camera="demo"]'
        wait_until(lambda: driver.find_elements("css selector", tile), 30, "the demo tile")
        assert driver.find_element("css selector", tile + " .name").text == "demo"
        wait_until(lambda: driver.execute_script(
            f"const i = document.querySelector('{tile} img.frame'); return i.complete && i.naturalWidth > 0"),
            30, "the camera image to load")

        seen: list[str] = []

        def fake_after_real() -> bool:
            text = driver.find_element("css selector", tile + " .state").text
            if not seen or seen[-1] != text:
                seen.append(text)
            return "REAL" in seen and "FAKE" in seen[seen.index("REAL"):]

        wait_until(fake_after_real, 60, "the state text to go REAL -> FAKE")
        assert "fake" in driver.find_element("css selector", tile).get_attribute("class")
        thumb = "#events li.event img.thumb"
        wait_until(lambda: driver.execute_script(
            f"const i = document.querySelector('{thumb}'); return !!i && i.complete && i.naturalWidth > 0"),
            30, "an event with a snapshot thumbnail")
        link = driver.find_element("css selector", "#events li.event a").get_attribute("href")
        with urllib.request.urlopen(link, timeout=10) as r:      # the thumbnail links to the full evidence frame
            assert r.headers["Content-Type"] == "image/jpeg" and r.read()[:2] == b"\xff\xd8"
        event = json.loads(urllib.request.urlopen(base + "api/events?limit=1&token=" + TOKEN, timeout=10).read())
        assert event["events"][0]["camera"] == "demo" and event["events"][0]["has_snapshot"]
        assert driver.find_element("css selector", "#link").text == "live"
        wait_until(lambda: driver.find_element("css selector", tile + " .fps").text not in ("", "–"), 10,
                   "the fps figure")
        shot = os.environ.get("FAKEWATCH_DASHBOARD_SCREENSHOT")
        if shot:                     # a picture worth showing: a few episodes in the list and the sparkline
            wait_until(lambda: len(driver.find_elements("css selector", "#events li.event img.thumb")) >= 3, 60,
                       "three events for the screenshot")
            wait_until(lambda: driver.find_element("css selector", tile + " .state").text == "FAKE", 30, "FAKE")
            time.sleep(1.0)          # the newest frame catches up
            driver.save_screenshot(shot)
    finally:
        if driver is not None:
            driver.quit()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert f"dashboard at http://127.0.0.1:{port}/ (token required)" in err and TOKEN not in err + out
