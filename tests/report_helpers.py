"""A small run folder for the report tests: real digits, a hostile file name and broken files."""

from __future__ import annotations

import csv
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

#: A file name that would run script if a page put it into HTML unescaped.
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"

#: Thumbnails per cluster page in the test report, small so that pages split.
PAGE_SIZE = 12


def make_report_run(root: Path, cache_dir: Path) -> Path:
    """Cluster 60 digits plus a hostile name and two broken files; write duplicates and outliers CSVs.

    Returns the run folder; its report is not built yet.
    """
    from eclu.demo import write_digits_folder
    from eclu.pipeline import cluster_folder

    images = root / "images"
    write_digits_folder(images, limit=60)
    # A distinct picture under the hostile name, so it gets its own thumbnail.
    pixels = np.asarray(Image.open(images / "3" / "digit-0003.png").convert("L")).copy()
    pixels[:4, :4] = 0
    Image.fromarray(pixels, "L").save(images / "3" / HOSTILE_NAME)
    (images / "3" / "broken.jpg").write_bytes(b"this is text, not a JPEG")
    (images / "7" / "empty.png").write_bytes(b"")
    shutil.copy(images / "5" / "digit-0005.png", images / "5" / "copy of 5.png")

    run_dir = root / "run"
    cluster_folder(images, run_dir, n_clusters=4, cache_dir=cache_dir, labels="folders", num_workers=0, report=False)

    with open(run_dir / "duplicates.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("group", "path", "kind", "similarity", "keep"))
        writer.writerow((0, "5/digit-0005.png", "exact", "1.0", "true"))
        writer.writerow((0, "5/copy of 5.png", "exact", "1.0", "false"))
        writer.writerow((1, "3/digit-0003.png", "near", "0.97", "true"))
        writer.writerow((1, f"3/{HOSTILE_NAME}", "near", "0.97", "false"))
    with open(run_dir / "outliers.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("rank", "path", "score"))
        writer.writerow((2, "8/digit-0008.png", "0.5"))
        writer.writerow((1, f"3/{HOSTILE_NAME}", "0.9"))
        writer.writerow((3, "1/digit-0001.png", "0.4"))
    return run_dir


class ElementText(HTMLParser):
    """Collect the text inside elements with an ``id``, and every ``src`` and ``href``."""

    def __init__(self):
        super().__init__()
        self.text: dict[str, str] = {}
        self.sources: list[str] = []
        self.links: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name, value in attrs.items():
            self.attributes.append((tag, name, value or ""))
        if "src" in attrs:
            self.sources.append(attrs["src"])
        if "href" in attrs:
            self.links.append(attrs["href"])
        if tag in ("img", "meta", "br", "link", "input"):
            return
        element_id = attrs.get("id")
        if element_id:
            self.text.setdefault(element_id, "")
        self._open.append((tag, element_id))

    def handle_endtag(self, tag):
        if all(open_tag != tag for open_tag, _ in self._open):
            return
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, element_id in self._open:
            if element_id:
                self.text[element_id] += data


def parse_page(path: Path) -> ElementText:
    parser = ElementText()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser
