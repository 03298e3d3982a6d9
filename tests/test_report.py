"""Tests of eclu.report: pages, counts, escaping, thumbnails, the map, the CLI and the notebook."""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from eclu.outputs import read_clusters, read_manifest, read_summary
from eclu.report import build_report
from eclu.report._map import MIN_UMAP_IMAGES, project
from report_helpers import HOSTILE_NAME, PAGE_SIZE, make_report_run, parse_page

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, feature_cache):
    """A run folder with its report built with PCA and small pages."""
    run_dir = make_report_run(tmp_path_factory.mktemp("report-run"), feature_cache)
    report = build_report(run_dir, page_size=PAGE_SIZE, map_method="pca", num_workers=2)
    return run_dir, report


@pytest.fixture
def cli_logging():
    """Remove the log handlers that a CLI call adds, so later records do not go to a closed capture."""
    logger = logging.getLogger("eclu")
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


def as_int(text: str) -> int:
    """Parse a count as the report prints it, with thousands separators."""
    return int(text.replace(",", ""))


def cluster_members(run_dir: Path) -> dict:
    paths, labels, distances = read_clusters(run_dir / "clusters.csv")
    members: dict[int, list] = {}
    for path, label, distance in zip(paths, labels, distances):
        members.setdefault(int(label), []).append((path, float(distance)))
    return members


def page_files(report_dir: Path, base: str) -> list[Path]:
    pages = [report_dir / f"{base}.html"]
    number = 2
    while (report_dir / f"{base}-p{number}.html").is_file():
        pages.append(report_dir / f"{base}-p{number}.html")
        number += 1
    return pages


def test_report_writes_every_page(report_run):
    run_dir, report = report_run
    report_dir = run_dir / "report"
    members = cluster_members(run_dir)
    assert report.index == report_dir / "index.html"
    for name in ("index.html", "map.html", "skipped.html", "duplicates.html", "outliers.html"):
        assert (report_dir / name).is_file(), name
    for cluster, items in members.items():
        pages = page_files(report_dir, f"cluster-{cluster:03d}")
        assert len(pages) == math.ceil(len(items) / PAGE_SIZE)
    expected_pages = 5 + sum(math.ceil(len(items) / PAGE_SIZE) for items in members.values())
    assert len(report.pages) == expected_pages
    assert len(list(report_dir.glob("*.html"))) == expected_pages


def test_report_writes_png_figures(report_run):
    run_dir, report = report_run
    figures = run_dir / "report" / "figures"
    names = sorted(path.name for path in report.figures)
    n_clusters = len(cluster_members(run_dir))
    assert "cluster-sizes.png" in names
    assert "map.png" in names
    assert len([name for name in names if name.startswith("contact-sheet-")]) == n_clusters
    for path in report.figures:
        assert path.parent == figures
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_overview_counts_equal_summary(report_run):
    run_dir, _ = report_run
    summary = read_summary(run_dir / "summary.json")
    page = parse_page(run_dir / "report" / "index.html")
    skipped_total = sum(summary["counts"]["skipped"].values())
    assert as_int(page.text["count-ok"]) == summary["counts"]["ok"] == 62
    assert as_int(page.text["count-files"]) == summary["counts"]["files"] == 64
    assert as_int(page.text["count-skipped"]) == skipped_total == 2
    assert as_int(page.text["count-clusters"]) == summary["n_clusters_found"]
    assert page.text["algorithm"] == "kmeans"
    assert page.text["backbone"].startswith("efficientnet_lite0")
    assert as_int(page.text["k"]) == 4
    assert page.text["metric-acc"] == f"{summary['metrics']['acc']:.4f}"
    assert page.text["metric-nmi"] == f"{summary['metrics']['nmi']:.4f}"
    assert page.text["metric-ari"] == f"{summary['metrics']['ari']:.4f}"
    assert page.text["peak-rss"] == f"{summary['peak_rss_bytes'] / 2**20:,.0f} MiB"


def test_overview_cluster_sizes(report_run):
    run_dir, _ = report_run
    summary = read_summary(run_dir / "summary.json")
    html = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    sizes = [int(size) for size in re.findall(r'class="card"[^>]*data-size="(\d+)"', html)]
    assert sizes == summary["cluster_sizes"]
    assert len(re.findall(r"<rect ", html)) == len(summary["cluster_sizes"])


def test_cluster_pages_nearest_first(report_run):
    run_dir, _ = report_run
    report_dir = run_dir / "report"
    for cluster, items in cluster_members(run_dir).items():
        listed = []
        for page in page_files(report_dir, f"cluster-{cluster:03d}"):
            html = page.read_text(encoding="utf-8")
            listed.extend(re.findall(r'<span class="path">([^<]*)</span><br>distance ([0-9.e+-]+)', html))
        expected = sorted(items, key=lambda item: item[1])
        assert [unescape_html(path) for path, _ in listed] == [path for path, _ in expected]
        distances = [float(distance) for _, distance in listed]
        assert distances == sorted(distances)


def unescape_html(text: str) -> str:
    import html

    return html.unescape(text)


def test_hostile_name_is_escaped(report_run):
    run_dir, _ = report_run
    report_dir = run_dir / "report"
    pages = {page.name: page.read_text(encoding="utf-8") for page in report_dir.glob("*.html")}
    for name, html in pages.items():
        assert "<img src=x" not in html, name
        assert "onerror=alert" not in html.replace("&lt;img src=x onerror=alert(1)&gt;", "").replace(
            "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E", ""
        ).replace("\\u003cimg src=x onerror=alert(1)\\u003e", ""), name
    escaped = "3/&lt;img src=x onerror=alert(1)&gt;.png"
    assert any(escaped in html for name, html in pages.items() if name.startswith("cluster-"))
    assert escaped in pages["duplicates.html"]
    assert escaped in pages["outliers.html"]


def test_hostile_name_link_is_percent_encoded(report_run):
    run_dir, _ = report_run
    report_dir = run_dir / "report"
    links = [link for page in report_dir.glob("cluster-*.html") for link in parse_page(page).links]
    hostile = [link for link in links if "onerror" in unquote(link)]
    assert len(hostile) == 1
    assert "<" not in hostile[0]
    assert " " not in hostile[0]
    assert (report_dir / unquote(hostile[0])).resolve() == (run_dir.parent / "images" / "3" / HOSTILE_NAME).resolve()


def test_map_json_is_safe_in_script(report_run):
    run_dir, _ = report_run
    html = (run_dir / "report" / "map.html").read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', html, re.S)
    assert match is not None
    payload = match.group(1)
    assert "<" not in payload
    assert ">" not in payload
    assert "&" not in payload
    data = json.loads(payload)
    assert f"3/{HOSTILE_NAME}" in data["points"]["path"]
    assert len(data["points"]["x"]) == 62
    assert all(0 <= value <= 10_000 for value in data["points"]["x"] + data["points"]["y"])


def test_resources_stay_inside_report(report_run):
    run_dir, _ = report_run
    report_dir = (run_dir / "report").resolve()
    images = (run_dir.parent / "images").resolve()
    for page in report_dir.glob("*.html"):
        parsed = parse_page(page)
        for source in parsed.sources:
            assert "://" not in source, (page.name, source)
            assert not source.startswith("/"), (page.name, source)
            target = (report_dir / unquote(source)).resolve()
            assert target.is_relative_to(report_dir), (page.name, source)
            assert target.is_file(), (page.name, source)
        for link in parsed.links:
            assert "://" not in link, (page.name, link)
            assert not link.startswith("/"), (page.name, link)
            target = (report_dir / unquote(link)).resolve()
            assert target.is_relative_to(report_dir) or target.is_relative_to(images), (page.name, link)
            assert target.exists(), (page.name, link)
        html = page.read_text(encoding="utf-8")
        assert "http://" not in html, page.name
        assert "https://" not in html, page.name


def test_skipped_page_lists_reasons(report_run):
    run_dir, _ = report_run
    skipped = [record for record in read_manifest(run_dir / "manifest.csv") if record.status != "ok"]
    html = (run_dir / "report" / "skipped.html").read_text(encoding="utf-8")
    rows = re.findall(r'<td class="path">([^<]*)</td><td>([^<]*)</td>', html)
    assert sorted(rows) == sorted((record.path, record.status) for record in skipped)
    assert sorted(status for _, status in rows) == ["undecodable", "zero_size"]


def test_duplicates_and_outliers_pages(report_run):
    run_dir, _ = report_run
    report_dir = run_dir / "report"
    duplicates = (report_dir / "duplicates.html").read_text(encoding="utf-8")
    assert len(re.findall(r'class="grid duplicate-group"', duplicates)) == 2
    assert duplicates.count("<b>keep</b>") == 2
    assert "5/copy of 5.png" in duplicates
    outliers = (report_dir / "outliers.html").read_text(encoding="utf-8")
    ranks = [int(rank) for rank in re.findall(r"rank (\d+), score", outliers)]
    assert ranks == [1, 2, 3]


def test_thumbnails_cached_by_content_hash(report_run):
    run_dir, first = report_run
    manifest = read_manifest(run_dir / "manifest.csv")
    hashes = {record.sha256 for record in manifest if record.status == "ok"}
    thumbs = sorted((run_dir / "report" / "thumbs" / "128").rglob("*.jpg"))
    assert sorted(path.stem for path in thumbs) == sorted(hashes)
    # Two files share one picture, so there is one thumbnail fewer than images.
    assert len(hashes) == 61
    assert first.thumbnails_created + first.thumbnails_cached == 61
    before = {path: path.stat().st_mtime_ns for path in thumbs}
    stored_map = run_dir / "report" / "map-coordinates.npy"
    map_before = stored_map.stat().st_mtime_ns
    again = build_report(run_dir, page_size=PAGE_SIZE, map_method="pca", figures=False)
    assert again.thumbnails_created == 0
    assert again.thumbnails_cached == 61
    assert {path: path.stat().st_mtime_ns for path in thumbs} == before
    assert stored_map.stat().st_mtime_ns == map_before
    assert again.map_note == first.map_note
    assert again.figures == []


def test_missing_originals_give_placeholders(report_run, tmp_path):
    run_dir, _ = report_run
    copy = tmp_path / "moved-run"
    copy.mkdir()
    for name in ("clusters.csv", "summary.json", "manifest.csv", "embeddings.npy"):
        shutil.copy(run_dir / name, copy / name)
    report = build_report(copy, input_dir=tmp_path / "nowhere", map_method="pca", figures=False)
    assert report.thumbnails_created == 0
    assert len(report.thumbnails_failed) == 62
    html = "".join(page.read_text(encoding="utf-8") for page in (copy / "report").glob("cluster-*.html"))
    assert html.count("no thumbnail") == 62
    assert "<img " not in html


def test_overview_plots_k_selection(report_run, tmp_path):
    run_dir, _ = report_run
    copy = tmp_path / "auto-run"
    copy.mkdir()
    for name in ("clusters.csv", "manifest.csv", "embeddings.npy"):
        shutil.copy(run_dir / name, copy / name)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["k_selection"] = {
        "n_clusters": 4,
        "criterion": "modularity",
        "ks": [2, 3, 4, 5],
        "scores": [0.41, 0.52, 0.61, 0.57],
        "n_samples": 62,
    }
    (copy / "summary.json").write_text(json.dumps(summary))
    report = build_report(copy, map_method="pca", input_dir=summary["input"])
    assert "k-selection.png" in [path.name for path in report.figures]
    html = (copy / "report" / "index.html").read_text(encoding="utf-8")
    assert '<span id="k-chosen">4</span>' in html
    assert "highest modularity" in html
    chart = html[html.index('<svg id="k-chart"') : html.index("</svg>", html.index('<svg id="k-chart"'))]
    assert chart.count("<circle") == 4
    assert chart.count('fill="#d62728"') == 1
    assert "k = 4: 0.6100" in chart
    # The best score sits at the top of the chart, the worst at the bottom.
    assert 'cx="320.0" cy="0.0"' in chart
    assert 'cx="0.0" cy="160.0"' in chart


@pytest.mark.parametrize(
    "selection",
    [
        None,
        {"n_clusters": 2, "ks": [2], "scores": [0.5]},
        {"n_clusters": 2, "ks": [2, 3], "scores": [0.5]},
        {"n_clusters": 2, "ks": [2, 3], "scores": [0.5, float("nan")]},
        {"n_clusters": 2, "ks": [2, 3], "scores": [0.5, None]},
    ],
)
def test_k_curve_skips_unusable_selection(selection):
    from eclu.report._render import k_curve

    assert k_curve(selection) is None


def test_overview_without_k_selection_has_no_chart(report_run):
    run_dir, _ = report_run
    assert 'id="k-chart"' not in (run_dir / "report" / "index.html").read_text(encoding="utf-8")


def test_build_report_rejects_bad_arguments(report_run, tmp_path):
    run_dir, _ = report_run
    with pytest.raises(ValueError, match="page_size"):
        build_report(run_dir, page_size=0)
    with pytest.raises(ValueError, match="map_method"):
        build_report(run_dir, map_method="tsne")
    with pytest.raises(FileNotFoundError, match="clusters.csv"):
        build_report(tmp_path)


def test_project_pca_for_few_images():
    X = np.random.default_rng(0).normal(size=(MIN_UMAP_IMAGES - 1, 16))
    projection = project(X, "auto")
    assert projection.method == "pca"
    assert "at least" in projection.note
    assert projection.coordinates.shape == (MIN_UMAP_IMAGES - 1, 2)


def test_project_umap_fits_on_sample():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5.0, size=(3, 64))
    X = np.vstack([centre + rng.normal(size=(100, 64)) for centre in centres]).astype(np.float32)
    projection = project(X, "umap", fit_size=150, random_state=0)
    assert projection.method == "umap"
    assert "sample of 150 images" in projection.note
    assert "other 150 are placed" in projection.note
    assert projection.coordinates.shape == (300, 2)
    assert np.isfinite(projection.coordinates).all()
    # Points of one blob lie closer to their own blob's centre than to the others'.
    labels = np.repeat(np.arange(3), 100)
    centroids = np.stack([projection.coordinates[labels == k].mean(axis=0) for k in range(3)])
    nearest = np.argmin(((projection.coordinates[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95


def test_cli_report_command(report_run, capsys, cli_logging):
    from eclu.cli import main

    run_dir, _ = report_run
    status = main(["report", str(run_dir), "--map", "pca", "--no-figures", "--page-size", "50", "-q"])
    output = capsys.readouterr().out
    assert status == 0
    assert "61 cached" in output
    assert str(run_dir / "report" / "index.html") in output
    for cluster, items in cluster_members(run_dir).items():
        assert len(page_files(run_dir / "report", f"cluster-{cluster:03d}")) == math.ceil(len(items) / 50)


def test_cli_cluster_no_report_flag():
    from eclu.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["cluster", "images", "--out", "run"]).report is True
    assert parser.parse_args(["cluster", "images", "--out", "run", "--no-report"]).report is False


def test_cli_report_missing_run(tmp_path, capsys, cli_logging):
    from eclu.cli import main

    status = main(["report", str(tmp_path / "absent")])
    assert status == 2
    assert "not a finished ECLU run folder" in capsys.readouterr().err


def test_cluster_folder_writes_report(report_run, feature_cache, tmp_path):
    from eclu.pipeline import cluster_folder

    images = report_run[0].parent / "images"
    # Every image is in the feature store already, so nothing is embedded again.
    run = cluster_folder(images, tmp_path / "run", n_clusters=3, cache_dir=feature_cache, num_workers=0)
    report_dir = tmp_path / "run" / "report"
    assert run.summary["counts"]["embedded"] == 0
    assert (report_dir / "index.html").is_file()
    assert (report_dir / "map.html").is_file()
    page = parse_page(report_dir / "index.html")
    assert as_int(page.text["count-ok"]) == len(run.paths) == 62
    assert "UMAP of all 62 images" in (report_dir / "map.html").read_text(encoding="utf-8")

    cluster_folder(images, tmp_path / "quiet", n_clusters=3, cache_dir=feature_cache, num_workers=0, report=False)
    assert not (tmp_path / "quiet" / "report").exists()


@pytest.mark.slow
@pytest.mark.shared
def test_report_on_cifar_run(cifar1000_run):
    report_dir = cifar1000_run.out_dir / "report"
    summary = read_summary(cifar1000_run.out_dir / "summary.json")
    page = parse_page(report_dir / "index.html")
    assert as_int(page.text["count-ok"]) == 1000
    assert as_int(page.text["count-clusters"]) == 10
    assert page.text["metric-acc"] == f"{summary['metrics']['acc']:.4f}"
    assert summary["metrics"]["acc"] > 0.3
    assert len(list((report_dir / "figures").glob("contact-sheet-*.png"))) == 10


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    # The map and one contact sheet per cluster (10 clusters).
    assert len(images) >= 11
    assert (tmp_path / "quickstart" / "run" / "report" / "index.html").is_file()
