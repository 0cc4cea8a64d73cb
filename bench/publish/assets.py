"""The files every page shares, written once into ``<site>/assets/``: the Vega runtime (Vega,
Vega-Lite and vega-embed bundled by vl-convert from the copies inside its wheel, no network), and
the site's own stylesheet and script from this package's ``static/`` folder."""

from __future__ import annotations

import functools
import shutil
from importlib import resources
from pathlib import Path

#: The asset files as the pages name them, relative to ``assets/``.
VEGA = "vega-embed.js"
STATIC = ("site.css", "site.js")


def vegalite_version() -> str | None:
    """The Vega-Lite version (``"6.4"``) whose schema Altair writes, when vl-convert has it, so the
    browser compiles the specs with the Vega-Lite they were written for; else None (vl-convert's
    newest)."""
    import altair
    import vl_convert

    wanted = ".".join(altair.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in vl_convert.get_vegalite_versions() else None


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """vega-embed with Vega and Vega-Lite as one classic script that sets ``window.vegaEmbed``
    (about 0.9 MB; built by vl-convert in under a second, once per process)."""
    import vl_convert

    return vl_convert.javascript_bundle(vl_version=vegalite_version())


def write_assets(folder: Path) -> list[Path]:
    """Write the shared assets into ``folder`` (created); returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / VEGA]
    written[0].write_text(vega_bundle(), encoding="utf-8")
    static = resources.files(__package__) / "static"
    for name in STATIC:
        with resources.as_file(static / name) as source:
            shutil.copyfile(source, folder / name)
        written.append(folder / name)
    return written
