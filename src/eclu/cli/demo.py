"""``eclu demo``: build the demo set, cluster it and evaluate it."""

from __future__ import annotations

from pathlib import Path

from ._common import add_logging_options, non_negative_int, setup_logging


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="cluster a labelled demo set made from scikit-learn's digits",
        description=(
            "Write scikit-learn's 1,797 handwritten digits as PNG files (one folder per digit), "
            "cluster them with the default offline backbone into 10 clusters and evaluate, then "
            "cluster the stored embeddings again after PCA whitening and evaluate that."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("eclu-demo"), help="demo folder (default: ./eclu-demo)")
    parser.add_argument("--limit", type=non_negative_int, help="use only the first N digits")
    parser.add_argument("--num-workers", type=non_negative_int, default=None, help="decode processes")
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    import numpy as np

    from ..cluster import ImageClusterer
    from ..demo import write_digits_folder
    from ..evaluate import labels_from_folders, score_clustering
    from ..pipeline import cluster_folder
    from .evaluate import print_scores

    run_dir = args.out / "run"
    setup_logging(args, run_dir)
    images = args.out / "digits"
    count = write_digits_folder(images, limit=args.limit or None)
    print(f"Wrote {count} demo images to {images}")
    result = cluster_folder(
        images, run_dir, n_clusters=10, labels="folders", num_workers=args.num_workers, progress=not args.quiet
    )
    summary = result.summary
    print(
        f"Clustered {summary['counts']['ok']} images into {summary['n_clusters_found']} clusters at "
        f"{summary['images_per_second']} images/s, peak RSS {summary['peak_rss_bytes'] / 2**20:.0f} MiB."
    )
    print_scores(summary["metrics"])
    print(f"Outputs: {run_dir}/clusters.csv, {run_dir}/manifest.csv, {run_dir}/summary.json")

    # Clustering again reads the run's embeddings and embeds nothing.
    embeddings = np.load(run_dir / "embeddings.npy")
    whitened = ImageClusterer("kmeans", 10, condition="pca-whiten-l2", random_state=0).fit_predict(embeddings)
    classes = labels_from_folders(result.paths)
    print("The same embeddings, clustered by k-means after PCA whitening (--condition pca-whiten-l2):")
    print_scores(score_clustering(classes, whitened).as_dict())
    return 0
