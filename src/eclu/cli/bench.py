"""``eclu bench``: every backbone x algorithm on a labelled folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bench import BENCH_ALGORITHMS
from ..conditioning import CONDITIONINGS
from ._common import add_crop_option, add_logging_options, non_negative_int, positive_int, print_table, setup_logging


def _name_list(choices):
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names:
            raise argparse.ArgumentTypeError("expected one or more comma-separated names")
        if choices is not None:
            for name in names:
                if name not in choices:
                    raise argparse.ArgumentTypeError(f"unknown name {name!r}; choose from {', '.join(choices)}")
        return names

    parse.__name__ = "comma-separated list"
    return parse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark backbones x clustering algorithms on a labelled folder",
        description=(
            "Embed a labelled folder (class = top-level sub-folder) with every backbone, cluster it with every "
            "algorithm into as many clusters as classes, and write ACC, NMI, ARI, times and peak memory as "
            "OUT/bench.md, OUT/bench.csv and OUT/bench.png."
        ),
    )
    parser.add_argument("dataset", type=Path, help="folder with one sub-folder of images per class")
    parser.add_argument("--out", type=Path, default=Path("eclu-bench"), help="output folder (default: ./eclu-bench)")
    parser.add_argument(
        "--backbones",
        type=_name_list(None),
        default=["efficientnet_lite0"],
        help="comma-separated backbone names; A+B clusters the concatenated embeddings of A and B "
        "(default: efficientnet_lite0)",
    )
    parser.add_argument(
        "--algorithms",
        type=_name_list(BENCH_ALGORITHMS),
        default=["kmeans", "minibatch-kmeans", "birch", "agglomerative"],
        help=f"comma-separated, from {', '.join(BENCH_ALGORITHMS)} "
        "(default: kmeans,minibatch-kmeans,birch,agglomerative)",
    )

    parser.add_argument(
        "--condition", choices=CONDITIONINGS, default="none", help="feature conditioning before clustering (default: none)"
    )
    parser.add_argument("-k", "--n-clusters", type=positive_int, help="clusters to ask for (default: number of classes)")

    parser.add_argument("--cache", type=Path, help="feature store folder to reuse embeddings (default: temporary)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default: 64)")
    parser.add_argument("--num-workers", type=non_negative_int, default=None, help="decode processes")
    parser.add_argument("--random-state", type=int, default=0, help="seed of every algorithm (default: 0)")
    parser.add_argument(
        "--engine",
        choices=("torch", "onnx"),
        default="torch",
        help="inference engine; each keeps its own embeddings in the feature store (default: torch)",
    )
    add_crop_option(parser)

    parser.add_argument(
        "--in-process",
        dest="isolate",
        action="store_false",
        help="cluster in this process instead of one child process per algorithm (faster; peak RSS then "
        "includes the embedding stage)",
    )
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..bench import run_benchmark, write_bench_outputs

    setup_logging(args, args.out)
    rows = run_benchmark(
        args.dataset,
        backbones=args.backbones,
        algorithms=args.algorithms,
        condition=args.condition,
        n_clusters=args.n_clusters,
        cache_dir=args.cache,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        random_state=args.random_state,
        engine=args.engine,
        crop_pct=args.crop_pct,
        isolate=args.isolate,
        progress=not args.quiet,
    )
    paths = write_bench_outputs(rows, args.out, title=args.dataset.name)
    print_table(
        [
            (r.backbone, r.algorithm, f"{r.acc:.4f}", f"{r.nmi:.4f}", f"{r.ari:.4f}", r.n_clusters, r.n_noise,
             f"{r.cluster_seconds:.1f}", f"{r.peak_rss_bytes / 2**20:.0f}")
            for r in rows
        ],
        ("backbone", "algorithm", "ACC", "NMI", "ARI", "clusters", "noise", "cluster s", "peak MiB"),
    )
    print(f"Results: {paths['markdown']}, {paths['csv']}, {paths['png']}")
    return 0
