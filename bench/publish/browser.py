"""Headless Chromium driven by Selenium, the system's browser and driver (Debian's ``chromium`` and
``chromium-driver``), for the browser tests and the screenshots.

``unavailable()`` says why no browser can be started here (a missing Selenium, Chromium or
chromedriver), or None; ``chromium()`` starts one with a fresh profile and, by default, no way to
reach the network: every host name resolves to nothing and every request goes to a closed proxy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

#: Flags for a quiet, isolated headless browser: no sandbox (CI runs as root), no GPU, and none of
#: Chromium's own background traffic (updates, sync, first-run pages).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--force-device-scale-factor=1")
#: Flags that cut the browser off the network: host names resolve to nothing, requests go to a
#: proxy on the discard port where nothing listens.
OFFLINE_FLAGS = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
                 "--proxy-bypass-list=<-loopback>")


def executables() -> tuple[str | None, str | None]:
    """``(chromium, chromedriver)`` paths: ``$CHROMIUM`` and ``$CHROMEDRIVER`` when set, else the first
    found on PATH; None for one not found (or set to a file that is not an executable)."""
    browser = os.environ.get("CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return tuple(p if p and os.access(p, os.X_OK) else None for p in (browser, driver))


def unavailable() -> str | None:
    """Why headless Chromium cannot be driven here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'rnn-cell-bench[dashboard]')"
    browser, driver = executables()
    if browser is None:
        return "no Chromium found (apt-get install chromium, or set $CHROMIUM)"
    if driver is None:
        return "no chromedriver found (apt-get install chromium-driver, or set $CHROMEDRIVER)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900, offline: bool = True):
    """A Selenium WebDriver for headless Chromium with a fresh profile, its window ``width`` x
    ``height`` CSS pixels; quits and removes the profile on exit. Raises RuntimeError with
    :func:`unavailable`'s reason when it cannot start."""
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = executables()
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*FLAGS, *(OFFLINE_FLAGS if offline else ()), f"--window-size={width},{height}",
                     f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def requested_urls(driver) -> list[str]:
    """The URLs requested since the last call (the DevTools ``Network`` log, which unlike the
    page's Resource Timing also lists file:// loads and requests that failed), less those of the
    browser's own chrome:// pages (its new-tab page at start)."""
    events = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    return [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"
            and not e["params"].get("documentURL", "").startswith("chrome://")]


def open_page(driver, path: Path, timeout: float = 20.0) -> None:
    """Open the file ``path`` and wait until its charts are drawn (or failed): every
    ``figure.chart`` has a non-empty ``data-rendered``."""
    driver.get(Path(path).resolve().as_uri())
    wait_drawn(driver, timeout)


def wait_drawn(driver, timeout: float = 20.0) -> None:
    """Wait until the current page has loaded and its charts are drawn (or failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.querySelectorAll('figure.chart'))"
        ".every(f => f.dataset.rendered)"))
