"""A static HTML report of a run: overview, cluster pages, a 2-D map and PNG figures.

The report is written to ``RUN/report/``::

    index.html              overview: counts, skipped files, timings, memory, scores, cluster sizes
    map.html                2-D map of the embeddings (UMAP, or PCA with the reason)
    cluster-NNN.html        one page per cluster, closest to the centre first, paginated
    duplicates.html         duplicate groups, when RUN/duplicates.csv exists
    outliers.html           outliers, when RUN/outliers.csv exists
    skipped.html            files that were not clustered, with the reason
    figures/*.png           cluster sizes, the map and a contact sheet per cluster
    thumbs/SIZE/xx/HASH.jpg thumbnails keyed by the SHA-256 of the image file
    map-coordinates.npy     the map, reused while the embeddings and map parameters are unchanged

Every page is self-contained (inline CSS and JavaScript), makes no network
request and links only to files inside the report folder, except the links
from each thumbnail to its original image.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._data import RunData, load_run
from ._map import MAP_METHODS, cached_project
from ._render import (
    bar_chart,
    k_curve,
    cluster_base,
    cluster_title,
    make_environment,
    original_href,
    page_name,
    pager,
    paginate,
    write_page,
)
from ._thumbs import ensure_thumbnails, thumbnail_url

logger = logging.getLogger(__name__)

__all__ = ["Report", "build_report", "MAP_METHODS"]

#: Rows per page of the skipped-files and outlier tables, and groups per duplicates page.
TABLE_PAGE_SIZE = 500

#: Outliers shown, from rank 1; outliers.csv may rank every image of the run.
OUTLIERS_SHOWN = 1000


@dataclass
class Report:
    """Files and figures written by :func:`build_report`.

    Attributes
    ----------
    index : Path
        The overview page, ``RUN/report/index.html``.
    pages : list of Path
        Every HTML page written.
    figures : list of Path
        PNG files written.
    map_method : str or None
        ``"umap"`` or ``"pca"``; None when the run has no embeddings to map.
    map_note : str
        How the map was made, as shown on the map page.
    thumbnails_created, thumbnails_cached : int
        Thumbnails written by this build and found from an earlier one.
    thumbnails_failed : dict
        Reason for each image without a thumbnail, keyed by relative path.
    seconds : float
        Wall-clock time of the build.
    timings : dict
        Seconds spent on each stage: ``read``, ``thumbnails``, ``pages``,
        ``map`` and ``figures``.
    """

    index: Path
    pages: list
    figures: list
    map_method: str | None
    map_note: str
    thumbnails_created: int
    thumbnails_cached: int
    thumbnails_failed: dict
    seconds: float
    timings: dict


def build_report(
    run_dir,
    *,
    input_dir=None,
    page_size: int = 200,
    thumb_size: int = 128,
    map_method: str = "auto",
    map_fit_size: int = 10_000,
    map_points: int = 20_000,
    figures: bool = True,
    num_workers: int | None = None,
    random_state: int = 0,
) -> Report:
    """Write the HTML report of a run folder to ``run_dir/report/``.

    Parameters
    ----------
    run_dir : path-like
        Folder written by :func:`eclu.cluster_folder`. Its images are only read.
    input_dir : path-like, optional
        Folder of the original images; default the ``input`` of ``summary.json``.
    page_size : int, default=200
        Thumbnails per cluster page.
    thumb_size : int, default=128
        Maximum width and height of a thumbnail in pixels.
    map_method : {"auto", "umap", "pca"}, default="auto"
        ``"auto"`` uses UMAP when umap-learn is installed.
    map_fit_size : int, default=10_000
        UMAP is fitted on at most this many images and places the rest with
        its transform.
    map_points : int, default=20_000
        Points drawn on the interactive map, a random sample in larger runs;
        the PNG map shows every image.
    figures : bool, default=True
        Also write the PNG figures.
    num_workers : int, optional
        Threads that write thumbnails; default one per core but one.
    random_state : int, default=0
        Seed of the map and of its samples.

    Returns
    -------
    Report
    """
    for name, value in (("page_size", page_size), ("thumb_size", thumb_size), ("map_fit_size", map_fit_size), ("map_points", map_points)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if map_method not in MAP_METHODS:
        raise ValueError(f"map_method must be one of {', '.join(MAP_METHODS)}, got {map_method!r}")
    started = tick = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - tick
        tick = now

    data = load_run(run_dir, input_dir)
    report_dir = data.run_dir / "report"
    report_dir.mkdir(exist_ok=True)
    for stale in [*report_dir.glob("*.html"), *(report_dir / "figures").glob("*.png")]:
        stale.unlink()

    lap("read")
    thumbs = _make_thumbnails(data, report_dir, thumb_size, num_workers)
    lap("thumbnails")
    view = _View(data, report_dir, thumb_size, thumbs.available)

    environment = make_environment()
    pages: list[Path] = []
    figure_paths: list[Path] = []

    def write(template: str, name: str, context: dict) -> None:
        write_page(environment, template, report_dir / name, {**view.common(), **context})
        pages.append(report_dir / name)

    for cluster in view.clusters:
        members = [view.item(i) for i in view.members[cluster]]
        chunks = paginate(members, page_size)
        base = cluster_base(cluster)
        for number, chunk in enumerate(chunks, start=1):
            write(
                "cluster.html.j2",
                page_name(base, number),
                {
                    "title": cluster_title(cluster),
                    "cluster": cluster,
                    "size": len(members),
                    "items": chunk,
                    "offset": (number - 1) * page_size,
                    "pager": pager(base, number, len(chunks)),
                    "contact_sheet": f"figures/contact-sheet-{base[len('cluster-'):]}.png" if figures else None,
                },
            )

    projection = None
    if data.embeddings is not None and len(data.paths):
        lap("pages")
        projection = cached_project(data.embeddings, report_dir, map_method, fit_size=map_fit_size, random_state=random_state)
        lap("map")
        write("map.html.j2", "map.html", {"title": "Map", **view.map_context(projection, map_points, random_state)})

    skipped = [{"path": r.path, "status": r.status, "reason": r.reason} for r in data.skipped()]
    _write_table_pages(write, "skipped", "skipped.html.j2", skipped, {"title": "Skipped files"})
    if data.outliers is not None:
        outliers = _top_outliers(data.outliers)
        rows = [{**view.item_for_path(row["path"]), "rank": row.get("rank", ""), "score": row.get("score", "")} for row in outliers]
        context = {"title": "Outliers", "ranked": len(data.outliers)}
        _write_table_pages(write, "outliers", "outliers.html.j2", rows, context)
    if data.duplicates is not None:
        _write_table_pages(write, "duplicates", "duplicates.html.j2", view.duplicate_groups(), {"title": "Duplicate groups"})

    if figures:
        lap("pages")
        figure_paths = _write_figures(view, projection, report_dir / "figures", thumb_size)
        lap("figures")

    write(
        "index.html.j2",
        "index.html",
        {
            "title": "Overview",
            "chart": bar_chart(view.sizes, view.pages, view.colours),
            "k_curve": k_curve(data.summary.get("k_selection")),
            "cards": view.cluster_cards(),
            "skipped_counts": _skipped_counts(data),
            "thumbnails_failed": len(thumbs.failed),
            "figures": [path.name for path in figure_paths if not path.name.startswith("contact-sheet-")],
        },
    )
    lap("pages")
    seconds = time.perf_counter() - started
    logger.info("Wrote the report to %s in %.1f s (%d pages)", report_dir / "index.html", seconds, len(pages))
    return Report(
        index=report_dir / "index.html",
        pages=pages,
        figures=figure_paths,
        map_method=projection.method if projection else None,
        map_note=projection.note if projection else "the run has no embeddings.npy",
        thumbnails_created=thumbs.created,
        thumbnails_cached=len(thumbs.available) - thumbs.created,
        thumbnails_failed={path: thumbs.failed[sha] for path, sha in view.hash_of_paths().items() if sha in thumbs.failed},
        seconds=seconds,
        timings={stage: round(value, 3) for stage, value in timings.items()},
    )


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("inf")


def _top_outliers(rows: list) -> list:
    """Return the ``OUTLIERS_SHOWN`` rows of ``outliers.csv`` with the lowest rank."""
    return sorted(rows, key=lambda row: _number(row.get("rank")))[:OUTLIERS_SHOWN]


def _make_thumbnails(data: RunData, report_dir: Path, size: int, num_workers):
    shown_paths = list(data.paths)
    shown_paths.extend(row["path"] for row in data.duplicates or [])
    shown_paths.extend(row["path"] for row in _top_outliers(data.outliers or []))
    sources = {}
    for path in shown_paths:
        sha256 = data.sha256.get(path)
        if sha256 and sha256 not in sources:
            sources[sha256] = data.input_dir / path if data.input_dir is not None else None
    return ensure_thumbnails(sources, report_dir, size, num_workers)


def _write_table_pages(write, base: str, template: str, rows: list, context: dict) -> None:
    chunks = paginate(rows, TABLE_PAGE_SIZE)
    for number, chunk in enumerate(chunks, start=1):
        write(
            template,
            page_name(base, number),
            {**context, "rows": chunk, "total": len(rows), "offset": (number - 1) * TABLE_PAGE_SIZE, "pager": pager(base, number, len(chunks))},
        )


def _skipped_counts(data: RunData) -> list:
    counts = data.summary.get("counts", {}).get("skipped")
    if counts is None:
        counts = {}
        for record in data.skipped():
            counts[record.status] = counts.get(record.status, 0) + 1
    return [(status, n) for status, n in counts.items() if n]


class _View:
    """Per-cluster members, colours and page names shared by every page."""

    def __init__(self, data: RunData, report_dir: Path, thumb_size: int, thumbs: set):
        from ._figures import cluster_colours

        self.data = data
        self.report_dir = report_dir
        self.thumb_size = thumb_size
        self.thumbs = thumbs
        self.index_of = {path: i for i, path in enumerate(data.paths)}
        self.clusters = [int(c) for c in np.unique(data.labels)]
        order = np.lexsort((np.arange(len(data.paths)), data.distances, data.labels))
        self.members = {cluster: [] for cluster in self.clusters}
        for i in order:
            self.members[int(data.labels[i])].append(int(i))
        self.sizes = {cluster: len(self.members[cluster]) for cluster in self.clusters}
        self.colours = dict(zip(self.clusters, cluster_colours(len(self.clusters))))
        self.pages = {cluster: page_name(cluster_base(cluster), 1) for cluster in self.clusters}
        self._common: dict | None = None

    def common(self) -> dict:
        """Return the values every page template uses, computed on the first call."""
        if self._common is None:
            self._common = self._make_common()
        return self._common

    def _make_common(self) -> dict:
        data = self.data
        return {
            "run_name": data.run_dir.resolve().name,
            "summary": data.summary,
            "n_images": len(data.paths),
            "n_files": len(data.records) if data.records else data.summary.get("counts", {}).get("files", len(data.paths)),
            "n_skipped": len(data.skipped()),
            "has_map": data.embeddings is not None and len(data.paths) > 0,
            "has_duplicates": data.duplicates is not None,
            "has_outliers": data.outliers is not None,
            "cluster_pages": [(cluster, self.pages[cluster], self.sizes[cluster], self.colours[cluster]) for cluster in self.clusters],
        }

    def thumb(self, path: str) -> str | None:
        sha256 = self.data.sha256.get(path)
        return thumbnail_url(sha256, self.thumb_size) if sha256 in self.thumbs else None

    def item(self, i: int) -> dict:
        path = self.data.paths[i]
        return {
            "path": path,
            "distance": float(self.data.distances[i]),
            "cluster": int(self.data.labels[i]),
            "thumb": self.thumb(path),
            "href": original_href(self.data.input_dir, path, self.report_dir),
        }

    def item_for_path(self, path: str) -> dict:
        i = self.index_of.get(path)
        if i is not None:
            item = self.item(i)
            item["cluster_page"] = self.pages[item["cluster"]]
            return item
        return {"path": path, "distance": None, "cluster": None, "cluster_page": None, "thumb": self.thumb(path), "href": original_href(self.data.input_dir, path, self.report_dir)}

    def hash_of_paths(self) -> dict:
        return {path: self.data.sha256.get(path, "") for path in self.data.paths}

    def cluster_cards(self, per_card: int = 6) -> list:
        return [
            {
                "cluster": cluster,
                "title": cluster_title(cluster),
                "size": self.sizes[cluster],
                "href": self.pages[cluster],
                "colour": self.colours[cluster],
                "items": [self.item(i) for i in self.members[cluster][:per_card]],
            }
            for cluster in self.clusters
        ]

    def duplicate_groups(self) -> list:
        groups: dict[str, list] = {}
        for row in self.data.duplicates:
            item = self.item_for_path(row["path"])
            item.update(kind=row.get("kind", ""), similarity=row.get("similarity", ""), keep=row.get("keep", ""))
            groups.setdefault(row["group"], []).append(item)
        return [{"group": group, "members": members} for group, members in groups.items()]

    def map_context(self, projection, map_points: int, random_state: int) -> dict:
        n = len(self.data.paths)
        if n > map_points:
            plotted = np.sort(np.random.default_rng(random_state).choice(n, size=map_points, replace=False))
        else:
            plotted = np.arange(n)
        xy = projection.coordinates[plotted]
        low, high = xy.min(axis=0), xy.max(axis=0)
        span = np.where(high - low > 0, high - low, 1.0)
        # Coordinates scaled to integers 0..10000 keep the embedded JSON small.
        scaled = np.rint((xy - low) / span * 10_000).astype(int)
        thumbs = [self.thumb(self.data.paths[i]) for i in plotted]
        points = {
            "x": scaled[:, 0].tolist(),
            "y": scaled[:, 1].tolist(),
            "cluster": [int(self.data.labels[i]) for i in plotted],
            "path": [self.data.paths[i] for i in plotted],
            "thumb": [thumb or "" for thumb in thumbs],
        }
        legend = {str(c): {"colour": self.colours[c], "page": self.pages[c], "title": cluster_title(c)} for c in self.clusters}
        return {"map_data": {"points": points, "clusters": legend}, "map_note": projection.note, "map_shown": len(plotted), "map_method": projection.method}


def _write_figures(view: _View, projection, folder: Path, thumb_size: int) -> list:
    from ._figures import CONTACT_SHEET_IMAGES, plot_cluster_sizes, plot_contact_sheet, plot_k_selection, plot_map

    written = []
    plot_cluster_sizes(view.sizes, view.colours, folder / "cluster-sizes.png")
    written.append(folder / "cluster-sizes.png")
    selection = view.data.summary.get("k_selection")
    if selection and selection.get("ks"):
        plot_k_selection(selection, folder / "k-selection.png")
        written.append(folder / "k-selection.png")
    if projection is not None:
        plot_map(projection.coordinates, view.data.labels, view.colours, projection.note, folder / "map.png")
        written.append(folder / "map.png")
    for cluster in view.clusters:
        thumbnails = []
        for i in view.members[cluster][:CONTACT_SHEET_IMAGES]:
            url = view.thumb(view.data.paths[i])
            thumbnails.append(view.report_dir / url if url else None)
        base = cluster_base(cluster)
        path = folder / f"contact-sheet-{base[len('cluster-'):]}.png"
        title = f"{cluster_title(cluster)}: {view.sizes[cluster]:,} images, closest to the centre first"
        plot_contact_sheet(thumbnails, title, path, thumb_size)
        written.append(path)
    return written
