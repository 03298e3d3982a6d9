"""``eclu cluster``: scan, embed and cluster a folder of images."""

from __future__ import annotations

from pathlib import Path

from ..cluster import ALGORITHMS
from ._common import add_backbone_options, add_logging_options, positive_int, setup_logging


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="cluster a folder of images",
        description="Embed every image under INPUT with a pretrained backbone and cluster the embeddings.",
    )
    parser.add_argument("input", type=Path, help="folder of images, scanned recursively")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    parser.add_argument("-k", "--n-clusters", type=positive_int, default=8, help="number of clusters (default: 8)")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="kmeans", help="clustering algorithm (default: kmeans)")
    parser.add_argument("--random-state", type=int, default=0, help="seed for clustering (default: 0)")
    parser.add_argument("--export", choices=("links", "copy"), help="also write one folder per cluster")
    parser.add_argument(
        "--labels",
        help="evaluate right away: 'folders' (class = top-level sub-folder) or a CSV with path,label columns",
    )
    add_backbone_options(parser)
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..pipeline import cluster_folder
    from .evaluate import print_scores

    setup_logging(args, args.out)
    result = cluster_folder(
        args.input,
        args.out,
        n_clusters=args.n_clusters,
        algorithm=args.algorithm,
        backbone=args.backbone,
        weights=args.weights,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        random_state=args.random_state,
        cache_dir=args.cache,
        export=args.export,
        labels=args.labels,
        progress=not args.quiet,
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
    return 0
