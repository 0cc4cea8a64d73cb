"""The static dashboard (bench/publish/): the model's checks, formats, escaping and file layout
without a browser; then what a user sees, in headless Chromium from file:// with the network cut
off. The browser tests skip, with the reason, where Selenium, Chromium or chromedriver is missing."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from bench.publish import SiteError, build_site
from bench.publish.browser import open_page, requested_urls, wait_drawn
from bench.publish.example import (BEFORE_STEP_COMMIT, MACHINE, OLD_BENCHMARK, STEP_BENCHMARK, STEP_COMMIT,
                                   example_site)
from bench.publish.fmt import display_unit, format_factor, format_value, run_labels
from bench.publish.model import Run, read_site

LSTM_PAGE = "lstm-T100-B1-H256-float32-forward-t1-time"


@pytest.fixture(scope="module")
def model():
    return example_site()


@pytest.fixture(scope="module")
def site(model, tmp_path_factory):
    """The example site, built once: its folder."""
    out = tmp_path_factory.mktemp("site")
    build_site(model, out)
    return out


def machine_of(model, machine_id=MACHINE):
    return next(m for m in model["machines"] if m["machine_id"] == machine_id)


# --- without a browser ---------------------------------------------------------------------------

def test_model_reads_and_keeps_points_in_run_order(model):
    shuffled = copy.deepcopy(model)
    bench = machine_of(shuffled)["benchmarks"][0]
    bench["points"].reverse()
    checked = read_site(shuffled)
    runs = [r.name for r in checked.machines[0].runs]
    assert [p.run for p in checked.machines[0].benchmarks[0].points] == runs


@pytest.mark.parametrize("change, where", [
    (lambda m: m["benchmarks"][0]["points"][0].update(run="nope"), "benchmarks[0].points[0].run"),
    (lambda m: m["benchmarks"][1].update(id=m["benchmarks"][0]["id"]), "benchmark id"),
    (lambda m: m["benchmarks"][0].update(page="../escape"), "benchmarks[0].page"),
    (lambda m: m["benchmarks"][0].update(unit="ms"), "benchmarks[0].unit"),
    (lambda m: m["benchmarks"][0]["points"][0].update(median=float("nan")), "points[0].median"),
    (lambda m: m["benchmarks"][0]["fields"].pop("batch"), "fields.batch"),
    (lambda m: m["benchmarks"][9].update(page=m["benchmarks"][0]["page"]), "mixes units"),
    (lambda m: m["steps"][0].update(benchmark="unknown"), "steps[0].benchmark"),
    (lambda m: m["who_wins"][0]["rows"][0].append("extra"), "who_wins[0].rows[0]"),
    (lambda m: m["ab_reports"][0]["rows"][0].update(paired_ratios=["1.1"]), "paired_ratios[0]"),
])
def test_a_malformed_model_is_refused_naming_the_field(model, change, where, tmp_path):
    bad = copy.deepcopy(model)
    change(machine_of(bad))
    with pytest.raises(SiteError, match=re.escape(where)):
        build_site(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing is written for a malformed model"


def test_values_read_in_their_units():
    assert format_value(1.234e-4, "s") == "123 µs"
    assert format_value(1.2e-3, "s") == "1.20 ms"
    assert format_value(2.5, "s") == "2.50 s"
    assert format_value(4.2e-8, "s") == "42.0 ns"
    assert format_value(42141144.0, "instructions") == "42,141,144"
    assert format_value(None, "s") == "—"
    assert display_unit([2e-5, 3e-5, 4e-3], "s").symbol == "µs"
    assert display_unit([1e9], "instructions").title("instructions") == "instructions per call"
    assert format_factor(1.5) == "1.50×"


def test_every_run_gets_its_own_label():
    runs = [Run("a", "c0ffee5aaaa", False, ""), Run("b", "c0ffee5aaaa", False, ""), Run("c", "1234567ff", True, "")]
    assert run_labels(runs) == {"a": "c0ffee5", "b": "c0ffee5 #2", "c": "1234567+"}


def test_text_from_the_model_is_escaped(model, tmp_path):
    hostile = copy.deepcopy(model)
    m = machine_of(hostile)
    m["benchmarks"][0]["label"] = "<script>window.pwned=1</script>"
    m["cpu_model"] = 'AMD "EPYC" & <b>friends</b>'
    m["benchmarks"][0]["points"][0]["commit"] = "</script><script>window.pwned=2</script>"
    m["who_wins"][0]["rows"][0][0] = "<img src=x onerror=alert(1)>"
    build_site(hostile, tmp_path)
    listing = (tmp_path / MACHINE / "index.html").read_text()
    assert "<script>window.pwned" not in listing and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in listing
    assert "AMD &#34;EPYC&#34; &amp; &lt;b&gt;friends&lt;/b&gt;" in listing
    page = (tmp_path / MACHINE / "b" / f"{m['benchmarks'][0]['page']}.html").read_text()
    assert "</script><script>window.pwned" not in page
    assert "<img src=x" not in (tmp_path / MACHINE / "who-wins.html").read_text()


class _Links(HTMLParser):
    """The href and src attributes of a page."""

    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [(tag, value) for name, value in attrs if name in ("href", "src") and value]


def test_layout_has_every_page_and_every_link_stays_inside_the_folder(model, site):
    expected = {"index.html", "assets/vega-embed.js", "assets/site.css", "assets/site.js"}
    for m in model["machines"]:
        mid = m["machine_id"]
        expected |= {f"{mid}/index.html", f"{mid}/regressions.html", f"{mid}/who-wins.html", f"{mid}/ab/index.html"}
        expected |= {f"{mid}/b/{b['page']}.html" for b in m["benchmarks"]}
        expected |= {f"{mid}/ab/{r['name']}.html" for r in m["ab_reports"]}
    built = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}
    assert built == expected
    for page in site.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        for tag, link in parser.links:
            url = urlparse(link)
            assert not url.scheme and not url.netloc, f"{page.relative_to(site)}: <{tag}> points off the site: {link}"
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            assert target.is_file() and site.resolve() in target.parents, f"{page.relative_to(site)}: broken {link}"


# --- in a browser --------------------------------------------------------------------------------


def visit(browser, path: Path):
    """Open ``path``, wait for its charts, and check that it loaded only files and drew without a
    script error."""
    requested_urls(browser)  # drain what came before
    open_page(browser, path)
    loaded = requested_urls(browser)
    assert loaded and all(urlparse(u).scheme in ("file", "data", "blob") for u in loaded), loaded
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    assert browser.execute_script(
        "return Array.from(document.querySelectorAll('figure.chart')).every(f => f.dataset.rendered !== 'error')")


def visible_rows(browser, table_id: str) -> list[str]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))"
        ".filter(r => r.offsetParent !== null).map(r => r.dataset.benchmark)", f"#{table_id}")


def test_index_names_every_machine(browser, model, site):
    visit(browser, site / "index.html")
    names = browser.execute_script(
        "return Array.from(document.querySelectorAll('#machines .machine h2')).map(h => h.innerText)")
    assert names == [m["machine_id"] for m in model["machines"]]


def test_list_holds_every_benchmark_of_the_latest_run_and_flags_older_ones(browser, model, site):
    visit(browser, site / MACHINE / "index.html")
    latest = [b["id"] for b in machine_of(model)["benchmarks"] if b["in_latest"]]
    assert visible_rows(browser, "benchmarks") == latest
    assert OLD_BENCHMARK not in latest
    browser.find_element("css selector", "form.filters input[name=stale]").click()
    shown = visible_rows(browser, "benchmarks")
    assert OLD_BENCHMARK in shown and len(shown) == len(latest) + 1
    badge = browser.find_element("css selector", f"tr[data-benchmark='{OLD_BENCHMARK}'] .badge")
    assert badge.text == "not in latest run"


def test_a_filter_filters(browser, model, site):
    from selenium.webdriver.support.ui import Select

    visit(browser, site / MACHINE / "index.html")
    Select(browser.find_element("css selector", "form.filters select[name=backend]")).select_by_value("numba")
    numba = [b["id"] for b in machine_of(model)["benchmarks"] if b["in_latest"] and b["fields"]["backend"] == "numba"]
    assert visible_rows(browser, "benchmarks") == numba
    Select(browser.find_element("css selector", "form.filters select[name=hidden_size]")).select_by_value("64")
    assert visible_rows(browser, "benchmarks") == [i for i in numba if "H64" in i]
    total = len([b for b in machine_of(model)["benchmarks"]])
    assert browser.find_element("css selector", "form.filters .count").text == f"1 of {total} shown"


def test_sorting_by_latest_orders_the_rows(browser, model, site):
    visit(browser, site / MACHINE / "index.html")
    browser.find_element("xpath", "//table[@id='benchmarks']//th[normalize-space()='latest']/button").click()
    values = [b["latest"] for b in machine_of(model)["benchmarks"] if b["in_latest"]]
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('#benchmarks tbody tr')).filter(r => !r.hidden)"
        ".map(r => Number(r.cells[r.cells.length - 3].dataset.sort))")
    assert shown == sorted(values)


def test_the_regressions_page_shows_the_step_at_its_commit_and_links_to_the_benchmark(browser, site):
    visit(browser, site / MACHINE / "regressions.html")
    row = browser.find_element("css selector", f"#steps tr[data-benchmark='{STEP_BENCHMARK}']")
    cells = [c.text for c in row.find_elements("css selector", "td")]
    assert cells[0] == "regression"
    assert cells[2] == "1.50×"
    assert cells[3:5] == ["1.00 ms", "1.50 ms"]
    assert cells[5] == f"{BEFORE_STEP_COMMIT[:7]} → {STEP_COMMIT[:7]}"
    row.find_element("css selector", "a").click()
    wait_drawn(browser)
    assert browser.current_url.endswith(f"/b/{LSTM_PAGE}.html#{STEP_BENCHMARK}")
    step = browser.find_element("css selector", f"#backends tr#{STEP_BENCHMARK}").text
    assert "1.50× regression" in step and STEP_COMMIT[:7] in step


def test_a_benchmark_page_draws_one_point_per_process_median_and_toggles_log(browser, model, site):
    visit(browser, site / MACHINE / "b" / f"{LSTM_PAGE}.html")
    on_page = [b for b in machine_of(model)["benchmarks"] if b["page"] == LSTM_PAGE]
    medians = sum(len(p["process_medians"]) for b in on_page for p in b["points"])
    count = "return document.querySelectorAll('#history g.mark-symbol.role-mark path').length"
    assert browser.execute_script(count) == medians
    lines = "return document.querySelectorAll('#history g.mark-line.role-mark path').length"
    assert browser.execute_script(lines) == len(on_page)
    y_axis = ("return Array.from(document.querySelectorAll('#history g.role-axis'))"
              ".map(g => g.getAttribute('aria-label') || '').find(a => a.startsWith('Y-axis'))")
    assert "linear scale" in browser.execute_script(y_axis)
    labels = "return Array.from(document.querySelectorAll('#history g.role-axis-label text')).map(t => t.textContent)"
    linear_labels = browser.execute_script(labels)
    browser.find_element("css selector", "#history input.log-toggle").click()
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "return document.getElementById('history').dataset.rendered") == "log")
    assert "log scale" in browser.execute_script(y_axis)
    assert browser.execute_script(labels) != linear_labels
    assert browser.execute_script(count) == medians


def test_the_ab_page_shows_its_verdicts_and_paired_ratios(browser, model, site):
    report = machine_of(model)["ab_reports"][0]
    visit(browser, site / MACHINE / "ab" / "index.html")
    browser.find_element("link text", report["name"]).click()
    wait_drawn(browser)
    verdicts = browser.execute_script(
        "return Array.from(document.querySelectorAll('#ab-rows tbody tr')).map(r => [r.dataset.benchmark, r.cells[0].innerText])")
    assert verdicts == [[r["benchmark"], r["verdict"]] for r in report["rows"]]
    points = browser.execute_script("return document.querySelectorAll('#ratios g.mark-symbol.role-mark path').length")
    assert points == sum(len(r["paired_ratios"]) for r in report["rows"])


def test_who_wins_tables_render(browser, model, site):
    visit(browser, site / MACHINE / "who-wins.html")
    tables = browser.execute_script(
        "return Array.from(document.querySelectorAll('section.wins')).map(s => ["
        "s.querySelector('h2').innerText, Array.from(s.querySelectorAll('th')).map(t => t.innerText.replace(/ ↕$/, '')),"
        "Array.from(s.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.innerText))])")
    assert tables == [[t["title"], t["columns"], t["rows"]] for t in machine_of(model)["who_wins"]]


def test_the_network_check_sees_a_request_that_is_not_a_file(browser, site):
    """The check in visit() can fail: a request the page did not make, to the closed loopback port,
    shows up in the log."""
    visit(browser, site / "index.html")
    browser.execute_script("new Image().src = 'http://127.0.0.1:9/probe.png'")
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 5).until(lambda d: any("127.0.0.1:9/probe.png" in u for u in requested_urls(d)))
