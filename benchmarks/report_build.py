"""Benchmark the HTML report on a synthetic run of 100,000 images.

The run folder is synthetic. Real small images (the CIFAR-10 test images of
the shared data folder beside the project, or scikit-learn digits when it is
absent) are linked under many names. The embeddings are random points around
cluster centres, and one cluster contains half the images. The script
times build_report, a second build that finds every thumbnail cached, and
the first contentful paint of the overview, the largest cluster page and the
map in headless Chromium. The baselines measured in the same run are a build
for 1,000 images and the paint of a one-line HTML page.

    .venv/bin/python benchmarks/report_build.py [--images 100000] [--clusters 50]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-test"
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


def source_images(work: Path, limit: int) -> list[Path]:
    if CIFAR.is_dir():
        return sorted(CIFAR.rglob("*.jpg"))[:limit]
    from eclu.demo import write_digits_folder

    write_digits_folder(work / "digits")
    return sorted((work / "digits").rglob("*.png"))[:limit]


def cluster_sizes(n_images: int, n_clusters: int) -> np.ndarray:
    """Return cluster sizes: half the images in cluster 0, the other half split evenly."""
    rest = n_images - n_images // 2
    sizes = np.full(n_clusters - 1, rest // (n_clusters - 1))
    sizes[: rest - sizes.sum()] += 1
    return np.concatenate([[n_images // 2], sizes])


def make_run(folder: Path, sources: list[Path], n_images: int, n_clusters: int, dim: int, seed: int) -> None:
    """Write a run folder: links to the sources, clusters.csv, manifest.csv, summary.json, embeddings.npy."""
    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True)
    hashes = {source: hashlib.sha256(source.read_bytes()).hexdigest() for source in sources}
    sizes = {source: source.stat().st_size for source in sources}

    labels = np.repeat(np.arange(n_clusters), cluster_sizes(n_images, n_clusters))
    rng.shuffle(labels)
    centres = rng.normal(scale=3.0, size=(n_clusters, dim)).astype(np.float32)
    embeddings = centres[labels] + rng.normal(size=(n_images, dim)).astype(np.float32)
    distances = np.linalg.norm(embeddings - centres[labels], axis=1)
    np.save(folder / "embeddings.npy", embeddings)

    paths = []
    with open(folder / "clusters.csv", "w", newline="", encoding="utf-8") as clusters, open(
        folder / "manifest.csv", "w", newline="", encoding="utf-8"
    ) as manifest:
        clusters_writer = csv.writer(clusters, lineterminator="\n")
        manifest_writer = csv.writer(manifest, lineterminator="\n")
        clusters_writer.writerow(("path", "cluster", "distance"))
        manifest_writer.writerow(("path", "status", "reason", "bytes", "width", "height", "sha256"))
        for i in range(n_images):
            source = sources[i % len(sources)]
            relative = f"{i // 1000:03d}/image-{i:06d}{source.suffix}"
            (images / relative).parent.mkdir(exist_ok=True)
            (images / relative).symlink_to(source)
            paths.append(relative)
            clusters_writer.writerow((relative, int(labels[i]), f"{distances[i]:.6g}"))
            manifest_writer.writerow((relative, "ok", "", sizes[source], 32, 32, hashes[source]))
        for i in range(n_images // 1000):
            manifest_writer.writerow((f"broken/file-{i:04d}.jpg", "undecodable", "cannot identify image file", 10, 0, 0, ""))

    summary = {
        "input": str(images.resolve()),
        "backbone": {"backbone": "synthetic", "dim": dim},
        "algorithm": "kmeans",
        "parameters": {"n_clusters": n_clusters},
        "n_clusters_found": n_clusters,
        "cluster_sizes": np.bincount(labels).tolist(),
        "counts": {"files": n_images + n_images // 1000, "ok": n_images, "skipped": {"undecodable": n_images // 1000}},
        "timings": {},
        "peak_rss_bytes": None,
        "metrics": None,
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def time_build(run_dir: Path, num_workers: int | None) -> tuple[float, object]:
    from eclu.report import build_report

    started = time.perf_counter()
    report = build_report(run_dir, num_workers=num_workers)
    return time.perf_counter() - started, report


def first_paint(urls: dict) -> dict:
    """Return the first contentful paint in ms of each URL, each in a fresh page."""
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, url in urls.items():
            samples = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url, wait_until="load")
                paint = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
                )
                samples.append(paint)
                page.close()
            results[name] = float(np.median([value for value in samples if value is not None])) if any(samples) else None
        browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000, help="images in the large run (default: 100000)")
    parser.add_argument("--baseline-images", type=int, default=1_000, help="images in the baseline run (default: 1000)")
    parser.add_argument("--clusters", type=int, default=50, help="clusters (default: 50)")
    parser.add_argument("--sources", type=int, default=10_000, help="distinct source images, so distinct thumbnails (default: 10000)")
    parser.add_argument("--dim", type=int, default=1280, help="embedding dimension (default: 1280, as EfficientNet-Lite0)")
    parser.add_argument("--num-workers", type=int, default=None, help="thumbnail threads (default: one per core but one)")
    parser.add_argument("--keep", type=Path, help="write the runs here and keep them (default: a temporary folder)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="eclu-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    sources = source_images(work, args.sources)
    print(f"sources: {len(sources)} distinct images from {sources[0].parent.parent}")

    from eclu.report._map import project

    tick = time.perf_counter()
    project(np.random.default_rng(0).normal(size=(200, 16)), "umap")
    print(f"UMAP warm-up (numba compiles once per process): {time.perf_counter() - tick:.1f} s, not in the build times")

    figures = {}
    for label, n_images in (("baseline", args.baseline_images), ("large", args.images)):
        run_dir = work / f"run-{n_images}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        tick = time.perf_counter()
        make_run(run_dir, sources, n_images, args.clusters, args.dim, seed=0)
        print(f"{label}: wrote a synthetic run of {n_images:,} images in {time.perf_counter() - tick:.1f} s")
        seconds, report = time_build(run_dir, args.num_workers)
        cached_seconds, _ = time_build(run_dir, args.num_workers)
        pages = len(report.pages)
        print(
            f"{label}: build {seconds:.1f} s ({report.thumbnails_created:,} thumbnails written), "
            f"rebuild with cached thumbnails {cached_seconds:.1f} s, {pages} pages, map: {report.map_note}"
        )
        print(f"{label}: stages of the first build (s): {report.timings}")
        figures[label] = {"images": n_images, "build": seconds, "rebuild": cached_seconds, "report": report}

    large = figures["large"]["report"]
    report_dir = large.index.parent
    hello = work / "hello.html"
    hello.write_text("<!DOCTYPE html><html><body><p>hello</p></body></html>", encoding="utf-8")
    urls = {
        "one-line page (baseline)": hello.as_uri(),
        "overview": (report_dir / "index.html").as_uri(),
        "largest cluster page": (report_dir / "cluster-000.html").as_uri(),
        "map": (report_dir / "map.html").as_uri(),
    }
    if not os.access(CHROMIUM, os.X_OK):
        print(f"Chromium not found at {CHROMIUM}; first paint not measured")
        paints = {}
    else:
        paints = first_paint(urls)
    baseline_paint = paints.get("one-line page (baseline)")
    for name, value in paints.items():
        size = Path(urls[name][len("file://"):]).stat().st_size
        ratio = f", {value / baseline_paint:.1f}x the one-line page" if value and baseline_paint else ""
        print(f"first contentful paint, {name}: {value:.0f} ms ({size / 1024:,.0f} KiB HTML{ratio})")

    base, big = figures["baseline"], figures["large"]
    print(
        f"build per image: {1000 * big['build'] / big['images']:.2f} ms at {big['images']:,} images, "
        f"{1000 * base['build'] / base['images']:.2f} ms at {base['images']:,} "
        f"(ratio {big['build'] / big['images'] / (base['build'] / base['images']):.2f})"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.keep is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
