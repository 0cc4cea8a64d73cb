"""PNG screenshots of a built site's pages, taken by the same headless Chromium as the tests, for
the docs: ``python -m bench.publish.screenshots SITE OUT PAGE...`` with each ``PAGE`` relative to
``SITE`` (``index.html``, ``<machine>/b/<page>.html``) and, optionally, ``=NAME`` after it for the
PNG's name.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

from .browser import chromium, open_page


def screenshot(driver, page: Path, png: Path, width: int = 1280, max_height: int = 2200) -> Path:
    """Open ``page`` in ``driver``, wait for its charts, and write the whole page (``width`` CSS
    pixels wide, at most ``max_height`` tall) to ``png``; returns ``png``."""
    open_page(driver, page)
    # the content's height, not the window's: a short page gets a short picture
    height = min(max_height, driver.execute_script("return Math.ceil(document.body.getBoundingClientRect().bottom)"))
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    png.parent.mkdir(parents=True, exist_ok=True)
    png.write_bytes(base64.b64decode(shot["data"]))
    return png


def screenshots(site: Path, pages: list[str], out: Path, width: int = 1280) -> list[Path]:
    """Screenshots of ``pages`` (paths relative to ``site``, each optionally ``PATH=NAME``) into
    ``out`` as ``NAME.png`` (default: the path with ``/`` as ``_``)."""
    taken = []
    with chromium(width=width) as driver:
        for spec in pages:
            page, _, name = spec.partition("=")
            name = name or page.removesuffix(".html").replace("/", "_")
            taken.append(screenshot(driver, Path(site) / page, Path(out) / f"{name}.png", width=width))
    return taken


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    for path in screenshots(Path(sys.argv[1]), sys.argv[3:], Path(sys.argv[2])):
        print(path)
