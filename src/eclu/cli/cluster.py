"""``eclu cluster``: scan, embed and cluster a folder of images."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from ..autok import K_CRITERIA
from ..cluster import ALGORITHMS
from .._faiss_kmeans import CLUSTER_ENGINES
from ..conditioning import CONDITIONINGS
from ._common import (
    add_backbone_options,
    add_crop_option,
    add_engine_options,
    add_logging_options,
    positive_int,
    setup_logging,
)


def n_clusters_value(text: str):
    """Parse ``-k``: a positive integer or ``auto``."""
    if text == "auto":
        return "auto"
    try:
        return positive_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto', got {text}") from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="cluster a folder of images",
        description="Embed every image under INPUT with a pretrained backbone and cluster the embeddings.",
    )
    parser.add_argument("input", type=Path, help="folder of images, scanned recursively")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    parser.add_argument(
        "-k",
        "--n-clusters",
        type=n_clusters_value,
        default=8,
        help="number of clusters, or 'auto' to choose it by scoring k-means partitions, see --k-criterion (default: 8)",
    )
    parser.add_argument(
        "--max-clusters",
        type=positive_int,
        default=30,
        help="largest number of clusters tried by -k auto (default: 30)",
    )
    parser.add_argument(
        "--k-criterion",
        choices=K_CRITERIA,
        default="modularity",
        help="score that -k auto maximises: modularity of the k-means partition on the 10-nearest-neighbour "
        "graph, or the cosine silhouette (default: modularity)",
    )
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default="kmeans",
        help="clustering algorithm; hdbscan finds its own number of clusters and labels noise -1 (default: kmeans)",
    )
    parser.add_argument(
        "--condition",
        choices=CONDITIONINGS,
        default="none",
        help="feature conditioning before clustering: L2 normalisation, centring, PCA with or without "
        "whitening (default: none)",
    )
    parser.add_argument(
        "--pca-components",
        type=positive_int,
        default=128,
        help="principal components kept by the pca-* conditionings (default: 128)",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed for clustering (default: 0)")
    parser.add_argument("--export", choices=("links", "copy"), help="also write one folder per cluster")
    parser.add_argument(
        "--labels",
        help="evaluate right away: 'folders' (class = top-level sub-folder) or a CSV with path,label columns",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="embed on a Ray cluster: 'auto' (the cluster started on this machine with `ray start`), "
        "ray://HOST:10001 or HOST:6379; INPUT and the feature store must be on a folder every node shares",
    )
    parser.add_argument(
        "--ray-workers",
        type=positive_int,
        default=2,
        help="embedding actors on the Ray cluster, each holding one copy of the backbone (default: 2)",
    )
    parser.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not write the HTML report to OUT/report/ (write it later with `eclu report OUT`)",
    )
    add_backbone_options(parser)
    add_crop_option(parser)
    add_engine_options(parser)
    parser.add_argument(
        "--cluster-engine",
        choices=CLUSTER_ENGINES,
        default="auto",
        help="k-means implementation: scikit-learn, FAISS, or auto (FAISS from 50,000 images on) (default: auto)",
    )
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..pipeline import cluster_folder
    from .evaluate import print_scores

    if args.ray is not None and importlib.util.find_spec("ray") is None:
        print("eclu cluster: error: --ray needs the ray package; install it with `pip install 'eclu[ray]'`", file=sys.stderr)
        return 2
    setup_logging(args, args.out)
    result = cluster_folder(
        args.input,
        args.out,
        n_clusters=args.n_clusters,
        algorithm=args.algorithm,
        backbone=args.backbone,
        weights=args.weights,
        crop_pct=args.crop_pct,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        random_state=args.random_state,
        cache_dir=args.cache,
        export=args.export,
        labels=args.labels,
        progress=not args.quiet,
        ray_address=args.ray,
        ray_workers=args.ray_workers,
        report=args.report,
        engine=args.engine,
        quantize=args.quantize,
        num_threads=args.num_threads,
        cluster_engine=args.cluster_engine,
        condition=args.condition,
        pca_components=args.pca_components,
        max_clusters=args.max_clusters,
        k_criterion=args.k_criterion,
    )
    summary = result.summary
    counts = summary["counts"]
    skipped = ", ".join(f"{status} {n}" for status, n in counts["skipped"].items() if n) or "none"
    print(
        f"Clustered {counts['ok']} of {counts['files']} images into {summary['n_clusters_found']} clusters "
        f"({counts['embedded']} embedded now, {counts['from_store']} from the store; skipped: {skipped})."
    )
    print(
        f"{summary['images_per_second']} images/s, peak RSS {summary['peak_rss_bytes'] / 2**20:.0f} MiB, "
        f"total {summary['timings']['total']:.1f} s."
    )
    if summary.get("metrics"):
        print_scores(summary["metrics"])
    print(f"Results: {args.out / 'clusters.csv'}, {args.out / 'manifest.csv'}, {args.out / 'summary.json'}")
    if args.report:
        print(f"Report: {args.out / 'report' / 'index.html'}")
    return 0
