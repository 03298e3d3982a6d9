"""PNG files of the report's views, drawn with matplotlib's object API (no pyplot state)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

#: Thumbnails on one contact sheet, the ones closest to the cluster centre.
CONTACT_SHEET_IMAGES = 48
CONTACT_SHEET_COLUMNS = 8


def cluster_colours(n: int) -> list[str]:
    """Return ``n`` hex colours, the matplotlib ``tab20`` palette repeated as needed."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = colormaps["tab20"].colors
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return [to_hex(palette[order[i % 20]]) for i in range(n)]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    figure.savefig(tmp, format="png", bbox_inches="tight")
    os.replace(tmp, path)


def plot_cluster_sizes(sizes: dict, colours: dict, path: Path) -> None:
    """Write a bar chart of the number of images in each cluster."""
    names = list(sizes)
    figure = _new_figure(max(6.0, 0.35 * len(names)), 3.5)
    axes = figure.add_subplot()
    axes.bar(range(len(names)), [sizes[name] for name in names], color=[colours[name] for name in names])
    axes.set_xticks(range(len(names)), [str(name) for name in names], fontsize=8)
    axes.set_xlabel("cluster")
    axes.set_ylabel("images")
    axes.set_title("Cluster sizes")
    _save(figure, path)


def plot_k_selection(selection: dict, path: Path) -> None:
    """Write the score of every k tried by ``-k auto``, with the chosen k marked."""
    figure = _new_figure(6.0, 3.0)
    axes = figure.add_subplot()
    axes.plot(selection["ks"], selection["scores"], marker="o", markersize=3, color="#1f77b4")
    chosen = selection["n_clusters"]
    if chosen in selection["ks"]:
        axes.axvline(chosen, color="#d62728", linestyle="--", linewidth=1)
    axes.set_xlabel("k")
    axes.set_ylabel(selection.get("criterion", "score"))
    axes.set_title(f"Choice of k: {chosen}")
    _save(figure, path)


def plot_map(coordinates: np.ndarray, labels: np.ndarray, colours: dict, note: str, path: Path) -> None:
    """Write a scatter plot of the 2-D map, coloured by cluster."""
    figure = _new_figure(7.0, 7.0)
    axes = figure.add_subplot()
    if len(labels) < 2_000:
        point_size = 12.0
    elif len(labels) < 50_000:
        point_size = 2.0
    else:
        point_size = 0.5
    axes.scatter(
        coordinates[:, 0],
        coordinates[:, 1],
        c=[colours[int(label)] for label in labels],
        s=point_size,
        linewidths=0,
    )
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title("Map of the embeddings", fontsize=11)
    axes.set_xlabel(note, fontsize=7)
    _save(figure, path)


def plot_contact_sheet(thumbnails: list, title: str, path: Path, size: int) -> None:
    """Write a grid of thumbnail files (closest to the centre first) with a title.

    ``thumbnails`` lists thumbnail paths, or None for images without one,
    which are left blank.
    """
    count = min(len(thumbnails), CONTACT_SHEET_IMAGES)
    columns = min(CONTACT_SHEET_COLUMNS, max(count, 1))
    rows = max(1, math.ceil(count / columns))
    cell = size + 4
    sheet = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    for index, thumbnail in enumerate(thumbnails[:count]):
        if thumbnail is None:
            continue
        with Image.open(thumbnail) as image:
            image.load()
            scale = size / max(image.width, image.height)
            if scale > 1:
                # Small originals (icons, CIFAR's 32 x 32) are enlarged to fill the cell.
                image = image.resize((round(image.width * scale), round(image.height * scale)), Image.NEAREST)
            x = (index % columns) * cell + (cell - image.width) // 2
            y = (index // columns) * cell + (cell - image.height) // 2
            sheet.paste(image.convert("RGB"), (x, y))
    figure = _new_figure(sheet.width / 100, sheet.height / 100 + 0.4)
    axes = figure.add_axes((0, 0, 1, sheet.height / (sheet.height + 40)))
    axes.imshow(np.asarray(sheet), interpolation="nearest")
    axes.set_axis_off()
    figure.suptitle(title, fontsize=10)
    _save(figure, path)
