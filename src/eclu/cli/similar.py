"""``eclu similar``: the images of a run most similar to a query image."""

from __future__ import annotations

from pathlib import Path

from ._common import add_logging_options, positive_int, print_table, setup_logging


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "similar",
        help="find the images of a run most similar to a query image",
        description=(
            "Search the run's similarity index (RUN/index.faiss, built on first use) for the images most "
            "similar to QUERY: an image file, inside the collection or not, or a path listed in the index."
        ),
    )
    parser.add_argument("run", type=Path, help="run folder written by `eclu cluster` or `eclu duplicates`")
    parser.add_argument("query", help="query image file, or an indexed path")
    parser.add_argument("--top", type=positive_int, default=10, help="number of results (default: 10)")
    parser.add_argument("--weights", type=Path, help="the weights file the run was made with, if any")
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..similar import SimilarityIndex

    # Log into the run folder only when it is one, so a mistyped path gets no eclu.log.
    setup_logging(args, args.run if (args.run / "summary.json").is_file() else None)
    index = SimilarityIndex.load(args.run)
    matches = index.search(args.query, top=args.top, weights=args.weights)
    print_table([(match.rank, match.path, f"{match.similarity:.4f}") for match in matches], ("rank", "path", "similarity"))
    return 0
