"""``eclu outliers``: rank a run's images by their distance to their nearest neighbours."""

from __future__ import annotations

from pathlib import Path

from ._common import add_logging_options, positive_int, print_table, setup_logging


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "outliers",
        help="rank a run's images from the most to the least isolated",
        description=(
            "Score every image of a run folder by the mean cosine distance to its k nearest neighbours, "
            "write RUN/outliers.csv (all images, ranked) and print the top of the ranking."
        ),
    )
    parser.add_argument("run", type=Path, help="run folder written by `eclu cluster` or `eclu duplicates`")
    parser.add_argument("--top", type=positive_int, default=20, help="rows to print (default: 20)")
    parser.add_argument("-k", "--neighbors", type=positive_int, default=10, help="neighbours averaged (default: 10)")
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..outliers import find_outliers

    # Log into the run folder only when it is one, so a mistyped path gets no eclu.log.
    setup_logging(args, args.run if (args.run / "summary.json").is_file() else None)
    ranking = find_outliers(args.run, k=args.neighbors)
    print_table([(rank, path, f"{score:.4f}") for rank, path, score in ranking.top(args.top)], ("rank", "path", "score"))
    print(f"All {len(ranking.paths)} images, ranked: {args.run / 'outliers.csv'}")
    return 0
