"""Benchmark: every backbone x algorithm on a labelled folder, as a table and a chart.

For each backbone the images are embedded once or read from a feature
store. Every algorithm then clusters the same embeddings into as many
clusters as there are classes, and is scored with ACC, NMI and ARI against
the top-level folder names. A backbone spec ``"A+B"`` clusters the
concatenation of the conditioned embeddings of A and B; the algorithm
``"head-agree"`` on such a spec instead trains one head per space so that
the spaces agree (see :class:`eclu.heads.ClusteringHead`).

Clustering time and peak memory are measured per algorithm. By default each
algorithm runs in a fresh child process, so its peak resident set size
(``ru_maxrss``) contains only that algorithm, the embeddings and the
imported libraries.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["BenchRow", "run_benchmark", "write_bench_outputs", "BENCH_ALGORITHMS"]

#: Algorithms of ``eclu bench``: those of ImageClusterer, plus ``"head-agree"``
#: for combined backbone specs.
BENCH_ALGORITHMS = ("kmeans", "minibatch-kmeans", "birch", "agglomerative", "head", "spectral", "hdbscan", "head-agree")


@dataclass
class BenchRow:
    """One backbone x algorithm result.

    Attributes
    ----------
    backbone : str
        Backbone name, or names joined by ``+`` for concatenated spaces.
    algorithm : str
        Clustering algorithm.
    condition : str
        Feature conditioning applied before clustering.
    n_images, n_classes, n_clusters : int
        Images scored, classes among them, clusters found (noise excluded).
    n_noise : int
        Images labelled noise (-1) by HDBSCAN; they count as one extra
        cluster in ACC, NMI and ARI.
    acc, nmi, ari : float
        Clustering accuracy, normalised mutual information, adjusted Rand index.
    embed_seconds : float
        Embedding time of this run for the backbone(s); near 0 when every
        embedding came from the feature store.
    n_embedded : int
        Images embedded by this run; the others came from the store.
    cluster_seconds : float
        Conditioning plus clustering time, without process start-up.
    peak_rss_bytes : int
        Peak resident set size of the process that clustered.
    """

    backbone: str
    algorithm: str
    condition: str
    n_images: int
    n_classes: int
    n_clusters: int
    n_noise: int
    acc: float
    nmi: float
    ari: float
    embed_seconds: float
    n_embedded: int
    cluster_seconds: float
    peak_rss_bytes: int


def run_benchmark(
    dataset_dir,
    *,
    backbones: Sequence[str] = ("efficientnet_lite0",),
    algorithms: Sequence[str] = ("kmeans", "minibatch-kmeans", "birch", "agglomerative"),
    condition: str = "none",
    n_clusters: int | None = None,
    cache_dir=None,
    batch_size: int = 64,
    num_workers: int | None = None,
    random_state: int = 0,
    engine: str = "torch",
    crop_pct: float | None = None,
    isolate: bool = True,
    progress: bool = False,
) -> list[BenchRow]:
    """Embed ``dataset_dir`` with every backbone and cluster it with every algorithm.

    Parameters
    ----------
    dataset_dir : path-like
        Labelled folder: the top-level sub-folder of each image is its class.
    backbones : sequence of str
        Backbone names; ``"A+B"`` concatenates the conditioned embeddings of
        A and B (each space is L2-normalised when ``condition="none"``).
    algorithms : sequence of str
        Names from :data:`BENCH_ALGORITHMS`; ``"head-agree"`` runs on
        ``"A+B"`` specs only.
    condition : str, default="none"
        Conditioning from :data:`eclu.conditioning.CONDITIONINGS`.
    n_clusters : int, optional
        Clusters to ask for; default the number of classes.
    cache_dir : path-like, optional
        Feature store folder; default a temporary folder removed at the end.
    batch_size, num_workers : int
        Embedding options, as for :func:`eclu.cluster_folder`.
    random_state : int, default=0
        Seed of every algorithm.
    engine : {"torch", "onnx"}, default="torch"
        Inference engine, see :func:`eclu.engines.create_engine`.
    crop_pct : float, optional
        Centre-crop share in place of each backbone's own, see
        :func:`eclu.backbones.load_backbone`.
    isolate : bool, default=True
        Run each algorithm in a fresh child process to measure its peak
        memory alone. False runs in this process, where the peak RSS
        includes everything done before.
    progress : bool, default=False
        Show embedding progress bars.

    Returns
    -------
    list of BenchRow
        One row per backbone spec and algorithm, in the order given.
    """
    from .conditioning import CONDITIONINGS

    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise NotADirectoryError(f"dataset folder {dataset_dir} not found; pass a folder with one sub-folder per class")
    unknown = [name for name in algorithms if name not in BENCH_ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithm {unknown[0]!r}; choose from {', '.join(BENCH_ALGORITHMS)}")
    if condition not in CONDITIONINGS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONINGS)}; got {condition!r}")
    if not backbones:
        raise ValueError("no backbone given; pass at least one, for example efficientnet_lite0")

    with tempfile.TemporaryDirectory(prefix="eclu-bench-") as scratch:
        store_root = Path(cache_dir) if cache_dir is not None else Path(scratch) / "features"
        spaces = _embed_spaces(
            dataset_dir, backbones, store_root, batch_size, num_workers, progress, engine, crop_pct
        )
        rows = []
        for spec in backbones:
            names = spec.split("+")
            paths = sorted(set.intersection(*(set(spaces[name]["paths"]) for name in names)))
            classes = [path.split("/")[0] for path in paths]
            if not paths:
                raise ValueError(f"no image of {dataset_dir} was embedded by {spec}")
            k = n_clusters or len(set(classes))
            views = [_rows_for(spaces[name], paths) for name in names]
            embed_seconds = sum(spaces[name]["seconds"] for name in names)
            n_embedded = max(spaces[name]["embedded"] for name in names)
            view_files = []
            for position, view in enumerate(views):
                view_file = Path(scratch) / f"view-{len(rows)}-{position}.npy"
                np.save(view_file, view, allow_pickle=False)
                view_files.append(str(view_file))
            for algorithm in algorithms:
                if algorithm == "head-agree" and len(names) < 2:
                    logger.info("Skipping head-agree on %s: it needs two or more backbones joined by '+'", spec)
                    continue
                job = (view_files, algorithm, k, condition, random_state)
                labels, seconds, peak = _run_job(job, isolate)
                rows.append(_score_row(spec, algorithm, condition, classes, labels, embed_seconds, n_embedded, seconds, peak))
                logger.info("%s %s: ACC %.4f in %.1f s", spec, algorithm, rows[-1].acc, seconds)
    return rows


def _embed_spaces(dataset_dir, specs, store_root, batch_size, num_workers, progress, engine, crop_pct) -> dict:
    from .backbones import load_backbone
    from .embed import embed_entries
    from .scan import scan_folder
    from .store import FeatureStore

    entries = scan_folder(dataset_dir)
    names = list(dict.fromkeys(name for spec in specs for name in spec.split("+")))
    spaces = {}
    for name in names:
        backbone = load_backbone(name, crop_pct=crop_pct)
        store = FeatureStore(store_root, backbone.identity(engine))
        tick = time.perf_counter()
        records = embed_entries(
            entries, backbone, store, batch_size=batch_size, num_workers=num_workers, progress=progress, engine=engine
        )
        seconds = time.perf_counter() - tick
        store.refresh()
        ok = [record for record in records if record.status == "ok" and "/" in record.path]
        spaces[name] = {
            "paths": [record.path for record in ok],
            "hashes": {record.path: record.sha256 for record in ok},
            "store": store,
            "seconds": seconds,
            "embedded": sum(record.source == "embedded" for record in records),
        }
        logger.info("Embeddings of %d images with %s ready in %.1f s", len(ok), name, seconds)
    return spaces


def _rows_for(space: dict, paths: list[str]) -> np.ndarray:
    return space["store"].get([space["hashes"][path] for path in paths])


def _run_job(job, isolate: bool):
    if not isolate:
        return _cluster_job(job)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_cluster_job, job).result()


def _cluster_job(job):
    """Condition and cluster saved embeddings; return labels, seconds and peak RSS.

    Runs in a child process when the benchmark isolates algorithms.
    """
    from .cluster import ImageClusterer
    from .conditioning import l2_normalize, make_conditioner

    view_files, algorithm, k, condition, random_state = job
    views = [np.load(path, allow_pickle=False) for path in view_files]
    tick = time.perf_counter()
    if len(views) > 1:
        # Each space is conditioned on its own, so no backbone dominates the
        # concatenation by its scale; the spaces are at least L2-normalised.
        conditioned = []
        for view in views:
            conditioner = make_conditioner(condition, random_state=random_state)
            conditioned.append(conditioner.fit_transform(view) if conditioner is not None else l2_normalize(view))
        if algorithm == "head-agree":
            from .cluster import canonical_labels
            from .heads import ClusteringHead

            labels = canonical_labels(ClusteringHead(k, random_state=random_state).fit(conditioned).labels_)
            return labels, time.perf_counter() - tick, _process_peak_rss_bytes()
        X, step_condition = np.concatenate(conditioned, axis=1) / np.sqrt(len(views)), "none"
    else:
        X, step_condition = views[0], condition
    clusterer = ImageClusterer(algorithm, k, condition=step_condition, random_state=random_state).fit(X)
    return clusterer.labels_, time.perf_counter() - tick, _process_peak_rss_bytes()


def _process_peak_rss_bytes() -> int:
    """Return this process's peak RSS since its last exec.

    Linux keeps ``ru_maxrss`` across fork and exec, so a spawned child would
    report its parent's peak. ``VmHWM`` in ``/proc/self/status`` starts again
    at exec; other systems fall back to ``ru_maxrss``.
    """
    from ._resources import peak_rss_bytes

    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss_bytes()


def _score_row(spec, algorithm, condition, classes, labels, embed_seconds, n_embedded, seconds, peak) -> BenchRow:
    from .evaluate import score_clustering

    labels = np.asarray(labels)
    scores = score_clustering(classes, labels)
    return BenchRow(
        backbone=spec,
        algorithm=algorithm,
        condition=condition,
        n_images=scores.n_images,
        n_classes=scores.n_classes,
        n_clusters=int(np.unique(labels[labels >= 0]).size),
        n_noise=int((labels < 0).sum()),
        acc=round(scores.acc, 4),
        nmi=round(scores.nmi, 4),
        ari=round(scores.ari, 4),
        embed_seconds=round(embed_seconds, 2),
        n_embedded=int(n_embedded),
        cluster_seconds=round(seconds, 2),
        peak_rss_bytes=int(peak),
    )


def write_bench_outputs(rows: Sequence[BenchRow], out_dir, title: str = "") -> dict:
    """Write ``bench.csv``, ``bench.md`` and ``bench.png`` to ``out_dir``.

    Returns
    -------
    dict
        Paths of the written files by format: ``"csv"``, ``"markdown"``, ``"png"``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "bench.csv", "markdown": out_dir / "bench.md", "png": out_dir / "bench.png"}
    columns = [field.name for field in fields(BenchRow)]
    with open(paths["csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
    paths["markdown"].write_text(markdown_table(rows), encoding="utf-8")
    _write_chart(rows, paths["png"], title)
    return paths


def markdown_table(rows: Sequence[BenchRow]) -> str:
    """Return the rows as a Markdown table, peak RSS in MiB."""
    header = "| backbone | algorithm | condition | ACC | NMI | ARI | clusters | noise | embed s | cluster s | peak RSS MiB |"
    lines = [header, "| --- " * (header.count("|") - 1) + "|"]
    for row in rows:
        lines.append(
            f"| {row.backbone} | {row.algorithm} | {row.condition} | {row.acc:.4f} | {row.nmi:.4f} | {row.ari:.4f} "
            f"| {row.n_clusters} | {row.n_noise} | {row.embed_seconds:.1f} | {row.cluster_seconds:.1f} "
            f"| {row.peak_rss_bytes / 2**20:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _write_chart(rows: Sequence[BenchRow], path: Path, title: str) -> None:
    # The object-oriented Matplotlib API with an Agg canvas leaves pyplot's
    # global state and the user's backend untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    backbones = list(dict.fromkeys(row.backbone for row in rows))
    algorithms = list(dict.fromkeys(row.algorithm for row in rows))
    accuracy = {(row.backbone, row.algorithm): row.acc for row in rows}
    figure = Figure(figsize=(max(6.0, 1.2 * len(algorithms) * max(1, len(backbones)) / 2 + 3), 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(backbones))
    positions = np.arange(len(algorithms))
    for offset, backbone in enumerate(backbones):
        values = [accuracy.get((backbone, algorithm), np.nan) for algorithm in algorithms]
        axes.bar(positions + offset * width - 0.4 + width / 2, values, width, label=backbone)
    axes.set_xticks(positions, algorithms, rotation=30, ha="right")
    axes.set_ylabel("clustering accuracy (ACC)")
    axes.set_ylim(0, 1)
    axes.legend(fontsize="small")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
