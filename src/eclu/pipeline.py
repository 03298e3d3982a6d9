"""The main job: scan, embed, cluster and write a run folder; evaluate a run.

A run folder contains::

    manifest.csv        one row per file found, with its status
    clusters.csv        path, cluster, distance to the cluster centre
    summary.json        counts, timings, peak memory, parameters, metrics
    embeddings.npy      the clustered embeddings, row i = row i of clusters.csv
    embeddings.parquet  row, path, sha256 for embeddings.npy
    features/           the feature store, unless a shared cache folder is used
    clusters/           one folder per cluster, with --export links or copy
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from ._resources import package_versions, peak_rss_bytes
from .backbones import DEFAULT_BACKBONE, load_backbone
from .cluster import ImageClusterer
from .decode import DEFAULT_MAX_PIXELS, STATUSES
from .embed import FileRecord, embed_entries
from .engines import engine_name
from .evaluate import ClusteringScores, labels_from_csv, labels_from_folders, score_clustering
from .export import export_clusters
from .outputs import read_clusters, read_summary, write_clusters, write_manifest, write_summary
from .scan import scan_folder
from .store import FeatureStore

logger = logging.getLogger(__name__)

__all__ = ["ClusterRun", "cluster_folder", "evaluate_run", "open_run_store"]


@dataclass
class ClusterRun:
    """The result of :func:`cluster_folder`.

    Attributes
    ----------
    out_dir : Path
        The run folder.
    paths : list of str
        Relative paths of the clustered images, in ``clusters.csv`` order.
    labels : ndarray of int
        Cluster id of each path; 0 is the largest cluster.
    distances : ndarray of float
        Distance of each image to its cluster centre.
    records : list of FileRecord
        One per file found, including the skipped ones.
    summary : dict
        The content of ``summary.json``.
    """

    out_dir: Path
    paths: list
    labels: np.ndarray
    distances: np.ndarray
    records: list = field(repr=False)
    summary: dict = field(repr=False)

    def skipped(self) -> list[FileRecord]:
        """Return the records of files that were not embedded, with their reasons."""
        return [record for record in self.records if record.status != "ok"]


def _store_for(backbone, out_dir: Path, cache_dir, engine: str = "torch") -> FeatureStore:
    root = Path(cache_dir) if cache_dir is not None else out_dir / "features"
    return FeatureStore(root, backbone.identity(engine))


def cluster_folder(
    input_dir,
    out_dir,
    *,
    n_clusters: int = 8,
    algorithm: str = "kmeans",
    backbone: str = DEFAULT_BACKBONE,
    weights=None,
    crop_pct: float | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    random_state: int = 0,
    cache_dir=None,
    export: str | None = None,
    labels=None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    shard_size: int = 1024,
    progress: bool = False,
    ray_address: str | None = None,
    ray_workers: int = 2,
    report: bool = True,
    engine: str = "torch",
    quantize: str | None = None,
    num_threads: int | None = None,
    cluster_engine: str = "auto",
    condition: str = "none",
    pca_components: int = 128,
    max_clusters: int = 30,
    k_criterion: str = "modularity",
) -> ClusterRun:
    """Cluster the images under ``input_dir`` and write a run folder.

    Parameters
    ----------
    input_dir : path-like
        Folder of images, scanned recursively. It is only read.
    out_dir : path-like
        Run folder to create or update.
    n_clusters : int or "auto", default=8
        Number of clusters; ``"auto"`` chooses it and stores the score curve
        in ``summary.json`` under ``k_selection``.
    algorithm : str, default="kmeans"
        One of :data:`eclu.cluster.ALGORITHMS`.
    backbone : str, default="efficientnet_lite0"
        Registry or timm name, see :func:`eclu.backbones.load_backbone`.
    weights : path-like, optional
        Local weights file for the backbone.
    crop_pct : float, optional
        Centre-crop share in (0, 1] in place of the backbone's own, see
        :func:`eclu.backbones.load_backbone`; 1.0 suits small images whose
        object fills the frame.
    batch_size : int, default=64
        Images per forward pass.
    num_workers : int, optional
        Decode processes; default one per core but one.
    random_state : int, default=0
        Seed for clustering.
    cache_dir : path-like, optional
        Shared feature store folder; default ``out_dir/features``.
    export : {"links", "copy"}, optional
        Also write one folder per cluster with symbolic links or copies.
    labels : {"folders"} or path-like, optional
        Evaluate against class labels from top-level folder names or from a
        CSV file with ``path`` and ``label`` columns.
    max_pixels : int
        Files with more pixels are skipped as ``too_large``.
    shard_size : int, default=1024
        Embeddings per feature-store shard; a killed run loses at most this many.
    progress : bool, default=False
        Show progress bars.
    ray_address : str, optional
        Embed on a Ray cluster instead of in this process, with
        :func:`eclu.distributed.embed_entries_ray`: ``"auto"``,
        ``"ray://HOST:10001"`` or ``"HOST:6379"``. The input folder and the
        feature store must be on a file system that every node shares.
        Clustering still runs in this process.
    ray_workers : int, default=2
        Embedding actors on the Ray cluster, each with one copy of the backbone.
    report : bool, default=True
        Write the HTML report to ``out_dir/report/`` at the end, with
        :func:`eclu.report.build_report`.
    engine : {"torch", "onnx"}, default="torch"
        Inference engine, see :func:`eclu.engines.create_engine`. Each
        engine and quantisation has its own embeddings in the feature store.
    quantize : {None, "int8"}, default=None
        Static int8 quantisation of the ONNX engine.
    num_threads : int, optional
        Inference threads; default from the number of cores and decode
        processes, see :func:`eclu.engines.default_threads`.
    cluster_engine : {"auto", "sklearn", "faiss"}, default="auto"
        k-means implementation, see :class:`eclu.cluster.ImageClusterer`.
    condition : str, default="none"
        Feature conditioning before clustering, one of
        :data:`eclu.conditioning.CONDITIONINGS`.
    pca_components : int, default=128
        Principal components kept by the ``"pca-*"`` conditionings.
    max_clusters : int, default=30
        Largest k tried with ``n_clusters="auto"``.
    k_criterion : {"modularity", "silhouette"}, default="modularity"
        Score that ``n_clusters="auto"`` maximises, see
        :func:`eclu.autok.select_n_clusters`.

    Returns
    -------
    ClusterRun
    """
    started = time.perf_counter()
    input_dir = Path(input_dir)
    out_dir = Path(out_dir)
    if export not in (None, "links", "copy"):
        raise ValueError(f"export must be 'links', 'copy' or None, got {export!r}")
    # Fail on bad parameters before the expensive stages run.
    cluster_options = {
        "random_state": random_state,
        "engine": cluster_engine,
        "condition": condition,
        "pca_components": pca_components,
        "max_clusters": max_clusters,
        "k_criterion": k_criterion,
    }
    ImageClusterer(algorithm, n_clusters, **cluster_options)._validate(max(n_clusters, 1) if isinstance(n_clusters, int) else 1)
    engine_id = engine_name(engine, quantize)
    if ray_address is not None and engine_id != "torch":
        raise ValueError(f"engine {engine_id!r} runs in this process only; use engine='torch' with ray_address")
    if not input_dir.exists():
        raise FileNotFoundError(f"input folder not found: {input_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    entries = scan_folder(input_dir, exclude=[out_dir] + ([cache_dir] if cache_dir is not None else []))
    timings["scan"] = time.perf_counter() - tick
    logger.info("Found %d image files under %s", len(entries), input_dir)
    if not entries:
        raise ValueError(f"no image files found under {input_dir}; check the path and that it contains images")

    tick = time.perf_counter()
    model = load_backbone(backbone, weights=weights, crop_pct=crop_pct)
    timings["load_backbone"] = time.perf_counter() - tick

    store = _store_for(model, out_dir, cache_dir, engine_id)
    tick = time.perf_counter()
    if ray_address is not None:
        from .distributed import embed_entries_ray

        records = embed_entries_ray(
            entries,
            model,
            store,
            address=ray_address,
            workers=ray_workers,
            weights=weights,
            batch_size=batch_size,
            max_pixels=max_pixels,
            progress=progress,
        )
    else:
        records = embed_entries(
            entries,
            model,
            store,
            batch_size=batch_size,
            num_workers=num_workers,
            max_pixels=max_pixels,
            shard_size=shard_size,
            progress=progress,
            engine=engine,
            quantize=quantize,
            num_threads=num_threads,
        )
    timings["embed"] = time.perf_counter() - tick
    write_manifest(out_dir / "manifest.csv", records)

    ok = [record for record in records if record.status == "ok"]
    paths = [record.path for record in ok]
    hashes = [record.sha256 for record in ok]
    store.refresh()
    embeddings = store.get(hashes)

    tick = time.perf_counter()
    clusterer = ImageClusterer(algorithm, n_clusters, **cluster_options).fit(embeddings)
    timings["cluster"] = time.perf_counter() - tick

    tick = time.perf_counter()
    write_clusters(out_dir / "clusters.csv", paths, clusterer.labels_, clusterer.distances_)
    store.export(hashes, paths, out_dir / "embeddings.npy", out_dir / "embeddings.parquet")
    if export:
        export_clusters(out_dir, input_dir, mode=export)
    timings["write"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - started

    counts = _count(records)
    embed_seconds = timings["scan"] + timings["embed"]
    summary = {
        "eclu_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": str(input_dir.resolve()),
        "store": str(store.path.resolve()),
        "backbone": model.identity(engine_id),
        "algorithm": algorithm,
        "parameters": {
            "n_clusters": n_clusters,
            "random_state": random_state,
            "batch_size": batch_size,
            "num_workers": num_workers,
            "max_pixels": max_pixels,
            "engine": engine_id,
            "num_threads": num_threads,
            "cluster_engine": cluster_engine,
            "condition": condition,
            "pca_components": pca_components,
            "max_clusters": max_clusters,
            "k_criterion": k_criterion,
            "cache_dir": str(cache_dir) if cache_dir is not None else None,
            "ray_address": ray_address,
            "ray_workers": ray_workers if ray_address is not None else None,
        },
        "n_clusters_found": clusterer.n_clusters_,
        "cluster_sizes": np.bincount(clusterer.labels_[clusterer.labels_ >= 0], minlength=clusterer.n_clusters_).tolist(),
        "n_noise": clusterer.n_noise_,
        "k_selection": clusterer.k_selection_.as_dict() if clusterer.k_selection_ is not None else None,
        "counts": counts,
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        # Images that came out ok, per second of scanning and embedding, store hits included.
        "images_per_second": round(counts["ok"] / embed_seconds, 2) if embed_seconds > 0 else None,
        # Images the backbone embedded in this run, per second of the embed stage alone.
        "embedded_images_per_second": (
            round(counts["embedded"] / timings["embed"], 2) if counts["embedded"] and timings["embed"] > 0 else None
        ),
        "peak_rss_bytes": peak_rss_bytes(),
        "metrics": None,
        "versions": package_versions(),
    }
    write_summary(out_dir / "summary.json", summary)
    run = ClusterRun(out_dir, paths, clusterer.labels_, clusterer.distances_, records, summary)
    if labels is not None:
        evaluate_run(out_dir, labels=labels)
        run.summary = read_summary(out_dir / "summary.json")
    if report:
        from .report import build_report

        build_report(out_dir, input_dir=input_dir, num_workers=num_workers, random_state=random_state)
    return run


def _count(records: list[FileRecord]) -> dict:
    skipped = {status: 0 for status in STATUSES if status != "ok"}
    for record in records:
        if record.status != "ok":
            skipped[record.status] = skipped.get(record.status, 0) + 1
    return {
        "files": len(records),
        "ok": sum(record.status == "ok" for record in records),
        "embedded": sum(record.source == "embedded" for record in records),
        "from_store": sum(record.source == "store" for record in records),
        "skipped": skipped,
    }


def evaluate_run(run_dir, labels="folders") -> ClusteringScores:
    """Score a run's clusters against class labels and store them in ``summary.json``.

    Parameters
    ----------
    run_dir : path-like
        A folder written by :func:`cluster_folder`.
    labels : "folders" or path-like, default="folders"
        ``"folders"`` takes each image's top-level folder name as its class;
        a path names a CSV file with ``path`` and ``label`` columns.

    Returns
    -------
    ClusteringScores
        Images without a label are left out and counted in the log.
    """
    run_dir = Path(run_dir)
    clusters_csv = run_dir / "clusters.csv"
    if not clusters_csv.is_file():
        raise FileNotFoundError(f"{clusters_csv} not found: {run_dir} is not an ECLU run folder")
    paths, cluster_ids, _ = read_clusters(clusters_csv)
    if isinstance(labels, str) and labels == "folders":
        classes = labels_from_folders(paths)
        source = "folders"
    else:
        classes = labels_from_csv(labels, paths)
        source = str(labels)
    keep = [i for i, label in enumerate(classes) if label is not None]
    if not keep:
        raise ValueError(
            f"none of the {len(paths)} clustered images has a label; put each class in its own "
            "sub-folder of the input, or pass a CSV with path and label columns"
        )
    if len(keep) < len(paths):
        logger.warning("%d of %d images have no label and are left out of the scores", len(paths) - len(keep), len(paths))
    scores = score_clustering([classes[i] for i in keep], cluster_ids[keep])
    summary_path = run_dir / "summary.json"
    summary = read_summary(summary_path) if summary_path.is_file() else {}
    summary["metrics"] = {**scores.as_dict(), "labels": source}
    write_summary(summary_path, summary)
    return scores


def open_run_store(run_dir) -> FeatureStore:
    """Open the feature store that a run wrote its embeddings to."""
    summary = read_summary(Path(run_dir) / "summary.json")
    store_path = Path(summary["store"])
    return FeatureStore(store_path.parent, summary["backbone"])
