"""``eclu report``: write the HTML report of an existing run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_logging_options, non_negative_int, positive_int, setup_logging


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the HTML report of a run folder",
        description=(
            "Write RUN/report/index.html: an overview, one page per cluster, a 2-D map of the "
            "embeddings and PNG figures. Thumbnails already in RUN/report/thumbs/ are reused."
        ),
    )
    parser.add_argument("run", type=Path, help="run folder written by `eclu cluster`")
    parser.add_argument(
        "--input",
        type=Path,
        help="folder of the original images, when it moved since the run (default: the input in summary.json)",
    )
    parser.add_argument("--page-size", type=positive_int, default=200, help="thumbnails per cluster page (default: 200)")
    parser.add_argument("--thumb-size", type=positive_int, default=128, help="maximum width and height of a thumbnail in pixels (default: 128)")
    parser.add_argument(
        "--map",
        dest="map_method",
        choices=("auto", "umap", "pca"),
        default="auto",
        help="projection of the map; auto is UMAP when umap-learn is installed (default: auto)",
    )
    parser.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write PNG figures to RUN/report/figures/ (default: on)",
    )
    parser.add_argument(
        "--num-workers",
        type=non_negative_int,
        default=None,
        help="threads that write thumbnails (default: one per core but one)",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed of the map (default: 0)")
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..report import build_report

    setup_logging(args, args.run if args.run.is_dir() else None)
    report = build_report(
        args.run,
        input_dir=args.input,
        page_size=args.page_size,
        thumb_size=args.thumb_size,
        map_method=args.map_method,
        figures=args.figures,
        num_workers=args.num_workers,
        random_state=args.random_state,
    )
    print(
        f"Wrote {len(report.pages)} pages and {len(report.figures)} figures in {report.seconds:.1f} s "
        f"({report.thumbnails_created} thumbnails new, {report.thumbnails_cached} cached, "
        f"{len(report.thumbnails_failed)} failed)."
    )
    print(f"Report: {report.index}")
    return 0
