"""The status page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, through Selenium):
one timeline bar per outage of the last 30 days, and a screenshot of the page."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tests.web.conftest import OUTAGES, WebDaemon

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        return "headless Chromium needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "the browser test needs selenium (pip install '.[test]')"
    return None


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_chromium_draws_one_bar_per_outage(web_daemon: WebDaemon, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,1800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(web_daemon.url)
        bars = driver.find_elements(By.CSS_SELECTOR, "svg.timeline rect.outage")
        widths = [float(bar.get_attribute("width") or 0) for bar in bars]
        shown = driver.find_element(By.CSS_SELECTOR, "svg.timeline").size
        screenshot = tmp_path / "status-page.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    assert len(bars) == len([days for days, _ in OUTAGES if days <= 30])
    assert all(width >= 3 for width in widths)  # even a five-minute outage is seen
    assert shown["width"] > 0 and shown["height"] > 0
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
