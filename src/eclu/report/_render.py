"""Render the report's HTML pages from the Jinja2 templates in ``templates/``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from urllib.parse import quote

import jinja2

from .. import __version__


def make_environment() -> jinja2.Environment:
    """Return a Jinja2 environment that escapes every value put into ``.html.j2`` templates."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("eclu.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["mib"] = lambda value: f"{value / 2**20:,.0f} MiB" if value else "unknown"
    environment.filters["thousands"] = lambda value: f"{value:,}"
    environment.globals["eclu_version"] = __version__
    return environment


def page_name(base: str, number: int) -> str:
    """Return the file name of page ``number`` (from 1) of a paginated view."""
    return f"{base}.html" if number == 1 else f"{base}-p{number}.html"


def cluster_base(cluster: int) -> str:
    """Return the page base name of a cluster; negative ids (noise) get ``cluster-noise``."""
    return f"cluster-{cluster:03d}" if cluster >= 0 else "cluster-noise"


def cluster_title(cluster: int) -> str:
    return f"Cluster {cluster}" if cluster >= 0 else "Noise (no cluster)"


def paginate(items: list, page_size: int) -> list[list]:
    """Split ``items`` into pages of ``page_size``; an empty list gives one empty page."""
    if not items:
        return [[]]
    return [items[start : start + page_size] for start in range(0, len(items), page_size)]


def pager(base: str, number: int, count: int, window: int = 3) -> dict:
    """Return the links of a page navigation bar: first, previous, nearby pages, next, last."""
    nearby = range(max(1, number - window), min(count, number + window) + 1)
    return {
        "number": number,
        "count": count,
        "first": page_name(base, 1) if number > 1 else None,
        "previous": page_name(base, number - 1) if number > 1 else None,
        "next": page_name(base, number + 1) if number < count else None,
        "last": page_name(base, count) if number < count else None,
        "nearby": [(n, page_name(base, n)) for n in nearby],
    }


def original_href(input_dir: Path | None, relative_path: str, report_dir: Path) -> str | None:
    """Return a URL from the report folder to an original image, or None when its folder is unknown.

    The URL is relative when both sit on the same drive, so the run folder and
    the images can be moved together. Every path segment is percent-encoded,
    so a file name can neither end the attribute nor start a URL scheme.
    """
    if input_dir is None:
        return None
    target = input_dir / relative_path
    try:
        relative = os.path.relpath(target, report_dir)
    except ValueError:
        # Different drives on Windows: no relative path exists.
        return target.resolve().as_uri()
    return "/".join(quote(part, safe="") for part in Path(relative).parts)


def bar_chart(sizes: dict, pages: dict, colours: dict, width: int = 880, height: int = 220) -> dict:
    """Return the geometry of the overview's SVG bar chart of cluster sizes."""
    count = max(len(sizes), 1)
    largest = max(sizes.values(), default=1) or 1
    step = width / count
    bars = []
    for index, (cluster, size) in enumerate(sizes.items()):
        bar_height = max(1.0, height * size / largest)
        bars.append(
            {
                "cluster": cluster,
                "size": size,
                "x": round(index * step, 2),
                "y": round(height - bar_height, 2),
                "width": round(max(step * 0.8, 1.0), 2),
                "height": round(bar_height, 2),
                "colour": colours[cluster],
                "href": pages[cluster],
            }
        )
    return {"width": width, "height": height, "bars": bars, "label_every": max(1, math.ceil(count / 40))}


def k_curve(selection: dict | None, width: int = 480, height: int = 160) -> dict | None:
    """Return the geometry of the overview's SVG line of the ``-k auto`` score curve.

    ``selection`` is the ``k_selection`` entry of ``summary.json``. Returns
    None when the run did not choose k, tried fewer than two values, or the
    scores are not one finite number per k.
    """
    if not selection or len(selection.get("ks") or []) < 2:
        return None
    ks, scores = selection["ks"], selection.get("scores") or []
    if len(scores) != len(ks) or not all(isinstance(score, (int, float)) and math.isfinite(score) for score in scores):
        return None
    low, high = min(scores), max(scores)
    spread = (high - low) or 1.0

    def point(k, score):
        x = width * (k - ks[0]) / (ks[-1] - ks[0])
        y = height - height * (score - low) / spread
        return round(x, 2), round(y, 2)

    points = [point(k, score) for k, score in zip(ks, scores)]
    return {
        "width": width,
        "height": height,
        "polyline": " ".join(f"{x},{y}" for x, y in points),
        "points": [{"k": k, "score": score, "x": x, "y": y} for k, score, (x, y) in zip(ks, scores, points)],
        "chosen": selection["n_clusters"],
        "criterion": selection.get("criterion", "score"),
        "first": ks[0],
        "last": ks[-1],
    }


def write_page(environment: jinja2.Environment, template: str, path: Path, context: dict) -> None:
    """Render ``template`` with ``context`` and write it to ``path`` atomically."""
    html = environment.get_template(template).render(**context)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
