"""``eclu index``: build a run's similarity index, or add a folder of new images to it."""

from __future__ import annotations

from pathlib import Path

from ._common import add_logging_options, non_negative_int, positive_int, setup_logging


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "index",
        help="build or grow a run's similarity index",
        description="Manage the similarity index that `eclu similar` searches (RUN/index.faiss and RUN/index.parquet).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    build = actions.add_parser("build", help="build the index from the run's embeddings, replacing any index")
    build.add_argument("run", type=Path, help="run folder written by `eclu cluster` or `eclu duplicates`")
    add_logging_options(build)
    build.set_defaults(handler=run)

    add = actions.add_parser(
        "add",
        help="embed the images of a folder and add them to the index",
        description=(
            "Embed the images under FOLDER with the run's backbone and append them to the index, "
            "without computing the existing rows again."
        ),
    )
    add.add_argument("run", type=Path, help="run folder written by `eclu cluster` or `eclu duplicates`")
    add.add_argument("folder", type=Path, help="folder of new images (or one image file)")
    add.add_argument("--weights", type=Path, help="the weights file the run was made with, if any")
    add.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default: 64)")
    add.add_argument(
        "--num-workers",
        type=non_negative_int,
        default=None,
        help="decode processes; 0 decodes in the main process (default: one per core but one)",
    )
    add_logging_options(add)
    add.set_defaults(handler=run)


def run(args) -> int:
    from ..similar import SimilarityIndex

    # Log into the run folder only when it is one, so a mistyped path gets no eclu.log.
    setup_logging(args, args.run if (args.run / "summary.json").is_file() else None)
    if args.action == "build":
        index = SimilarityIndex.build(args.run)
        print(f"Indexed {len(index)} images in {args.run}.")
        return 0
    index = SimilarityIndex.load(args.run)
    result = index.add_folder(
        args.folder,
        weights=args.weights,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=not args.quiet,
    )
    print(
        f"Added {len(result.added)} images, replaced {len(result.updated)}, {result.unchanged} already indexed, "
        f"{len(result.skipped)} skipped; the index holds {len(index)} images."
    )
    return 0
