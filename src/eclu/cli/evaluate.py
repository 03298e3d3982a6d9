"""``eclu evaluate``: score a run against class labels."""

from __future__ import annotations

from pathlib import Path

from ._common import add_logging_options, print_table, setup_logging


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a run's clusters against class labels (ACC, NMI, ARI)",
        description="Compare a run's clusters with class labels and write ACC, NMI and ARI into summary.json.",
    )
    parser.add_argument("run", type=Path, help="run folder written by `eclu cluster`")
    parser.add_argument(
        "--labels",
        default="folders",
        help="'folders' (class = top-level sub-folder, the default) or a CSV with path,label columns",
    )
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def print_scores(metrics: dict) -> None:
    print_table(
        [(f"{metrics['acc']:.4f}", f"{metrics['nmi']:.4f}", f"{metrics['ari']:.4f}", metrics["n_images"], metrics["n_classes"], metrics["n_clusters"])],
        ("ACC", "NMI", "ARI", "images", "classes", "clusters"),
    )


def run(args) -> int:
    from ..pipeline import evaluate_run

    setup_logging(args)
    scores = evaluate_run(args.run, labels=args.labels)
    print_scores(scores.as_dict())
    return 0
