"""Drive the HTML report in headless Chromium: counts, navigation, map hover, escaping, no network.

Uses Debian's chromium binary through Playwright's Python client; the tests
skip when either is missing. Set ECLU_REPORT_SHOTS to a folder to keep
screenshots of the pages.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from eclu.outputs import read_summary
from eclu.report import build_report
from report_helpers import HOSTILE_NAME, PAGE_SIZE, make_report_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium not found at {CHROMIUM}; install Debian's chromium package")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served_run(tmp_path_factory, feature_cache):
    """The test run with its report, served over HTTP on 127.0.0.1 from the folder above the run."""
    root = tmp_path_factory.mktemp("report-browser")
    run_dir = make_report_run(root, feature_cache)
    build_report(run_dir, page_size=PAGE_SIZE, map_method="pca", num_workers=2)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield run_dir, f"http://127.0.0.1:{server.server_address[1]}/run/report/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class PageWatch:
    """A browser page that records console errors, dialogs and every request outside the report."""

    def __init__(self, browser, allowed_prefix: str):
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.page = self.context.new_page()
        self.allowed_prefix = allowed_prefix
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.outside: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", self._on_dialog)
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.context.route("**/*", self._route)

    def _on_console(self, message):
        if message.type == "error":
            self.errors.append(message.text)

    def _on_dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.allowed_prefix):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def screenshot(self, name: str, full_page: bool = True) -> None:
        folder = os.environ.get("ECLU_REPORT_SHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.dialogs == []
        assert self.outside == []
        assert all(url.startswith(self.allowed_prefix) for url in self.requests), self.requests

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watch(browser, served_run):
    page_watch = PageWatch(browser, served_run[1])
    yield page_watch
    page_watch.close()


def wait_until(page, expression: str, timeout: float = 20.0) -> None:
    """Poll ``expression`` until it is true.

    Playwright's wait_for_function compiles its predicate with eval, which
    the report's Content-Security-Policy blocks, so this polls page.evaluate.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(50)


IMAGES_COMPLETE = "Array.from(document.images).every((image) => image.complete)"


def all_images_loaded(page) -> bool:
    # The map's hover image has no src until a point is hovered.
    return page.evaluate(
        "Array.from(document.images).filter((image) => image.getAttribute('src'))"
        ".every((image) => image.complete && image.naturalWidth > 0)"
    )


def test_overview_counts_equal_summary(watch, served_run):
    run_dir, base_url = served_run
    summary = read_summary(run_dir / "summary.json")
    page = watch.page
    page.goto(base_url + "index.html")
    page.wait_for_load_state("load")
    assert page.text_content("#count-ok") == f"{summary['counts']['ok']:,}"
    assert page.text_content("#count-files") == f"{summary['counts']['files']:,}"
    assert page.text_content("#count-skipped").strip() == str(sum(summary["counts"]["skipped"].values()))
    assert page.text_content("#count-clusters") == str(summary["n_clusters_found"])
    sizes = page.eval_on_selector_all("#clusters .card", "(cards) => cards.map((card) => Number(card.dataset.size))")
    assert sizes == summary["cluster_sizes"]
    assert page.locator("#size-chart rect").count() == len(summary["cluster_sizes"])
    wait_until(page, IMAGES_COMPLETE)
    assert all_images_loaded(page)
    watch.screenshot("overview")
    watch.assert_clean()


def test_cluster_page_opens_from_overview(watch, served_run):
    run_dir, base_url = served_run
    summary = read_summary(run_dir / "summary.json")
    page = watch.page
    page.goto(base_url + "index.html")
    page.click("#clusters .card a")
    page.wait_for_url("**/cluster-000.html")
    assert page.text_content("#cluster-size") == str(summary["cluster_sizes"][0])
    assert page.locator("#members figure").count() == min(PAGE_SIZE, summary["cluster_sizes"][0])
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    wait_until(page, IMAGES_COMPLETE)
    assert all_images_loaded(page)
    watch.screenshot("cluster-000")
    if summary["cluster_sizes"][0] > PAGE_SIZE:
        page.click("nav.pager a[rel=next]")
        page.wait_for_url("**/cluster-000-p2.html")
        first_rank = page.get_attribute("#members figure", "data-rank")
        assert first_rank == str(PAGE_SIZE + 1)
    watch.assert_clean()


def test_map_hover_shows_thumbnail(watch, served_run):
    _, base_url = served_run
    page = watch.page
    page.goto(base_url + "map.html")
    page.wait_for_load_state("load")
    assert page.evaluate("window.ecluMap.count") == 62
    assert page.is_hidden("#map-tip")
    x, y = page.evaluate("window.ecluMap.clientPosition(0)")
    page.mouse.move(x, y)
    page.wait_for_selector("#map-tip", state="visible")
    index = int(page.get_attribute("#map-tip", "data-index"))
    path = page.evaluate(f"JSON.parse(document.getElementById('map-data').textContent).points.path[{index}]")
    assert page.text_content("#map-tip-text").startswith(path)
    wait_until(page, "document.getElementById('map-tip-image').complete")
    assert page.evaluate("document.getElementById('map-tip-image').naturalWidth") > 0
    assert "/thumbs/" in page.evaluate("document.getElementById('map-tip-image').src")
    # A full-page screenshot resizes the viewport, which ends the hover.
    watch.screenshot("map-hover", full_page=False)

    cluster = page.evaluate(f"JSON.parse(document.getElementById('map-data').textContent).points.cluster[{index}]")
    page.mouse.click(x, y)
    page.wait_for_url(f"**/cluster-{cluster:03d}.html")
    watch.assert_clean()


def test_hostile_name_renders_as_text(watch, served_run):
    run_dir, base_url = served_run
    page = watch.page
    hostile_path = f"3/{HOSTILE_NAME}"
    shown_on = []
    for name in sorted(path.name for path in (run_dir / "report").glob("*.html")):
        page.goto(base_url + name)
        page.wait_for_load_state("load")
        assert page.locator("[onerror]").count() == 0, name
        if name.startswith("cluster-") and hostile_path in page.inner_text("#members"):
            caption = page.locator("#members .path", has_text="onerror")
            assert caption.count() == 1
            assert caption.inner_text() == hostile_path
            shown_on.append(name)
            watch.screenshot("hostile-name")
    assert len(shown_on) == 1
    page.goto(base_url + "outliers.html")
    assert page.locator("#outliers .path").first.inner_text() == hostile_path
    page.goto(base_url + "map.html")
    x, y = page.evaluate("window.ecluMap.clientPosition(0)")
    page.mouse.move(x, y)
    page.wait_for_selector("#map-tip", state="visible")
    assert page.locator("#map-tip [onerror]").count() == 0
    watch.assert_clean()


def test_report_works_from_file_urls(browser, served_run):
    run_dir, _ = served_run
    report_dir = run_dir / "report"
    watch = PageWatch(browser, report_dir.resolve().as_uri() + "/")
    try:
        for name in ("index.html", "map.html", "cluster-000.html", "skipped.html", "duplicates.html", "outliers.html"):
            watch.page.goto((report_dir / name).resolve().as_uri())
            watch.page.wait_for_load_state("load")
            wait_until(watch.page, IMAGES_COMPLETE)
            assert all_images_loaded(watch.page), name
            watch.screenshot(f"file-{name[:-5]}")
        watch.assert_clean()
    finally:
        watch.close()
