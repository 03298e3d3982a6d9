"""``eclu duplicates``: find exact and near duplicates in a folder, optionally quarantine them."""

from __future__ import annotations

from pathlib import Path

from ._common import add_backbone_options, add_logging_options, positive_int, setup_logging


def add_parser(subparsers) -> None:
    from ..duplicates import DEFAULT_THRESHOLD, DEFAULT_THUMBNAIL_THRESHOLD, KEEP_POLICIES

    parser = subparsers.add_parser(
        "duplicates",
        help="find exact and near duplicate images",
        description=(
            "Find exact duplicates (same file or same pixels) and near duplicates (similar embeddings) "
            "under INPUT, and write RUN/duplicates.csv and RUN/duplicates.json. Files are only read, "
            "unless --move-to is given."
        ),
    )
    parser.add_argument("input", type=Path, help="folder of images, scanned recursively")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"cosine similarity of embeddings for a near duplicate (default: {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--thumbnail-threshold",
        type=float,
        default=DEFAULT_THUMBNAIL_THRESHOLD,
        help=(
            "correlation of 16x16 grey thumbnails that makes a less similar pair a near duplicate "
            f"(default: {DEFAULT_THUMBNAIL_THRESHOLD})"
        ),
    )
    parser.add_argument(
        "--no-thumbnails",
        action="store_true",
        help="find near duplicates by embedding similarity alone",
    )
    parser.add_argument("--neighbors", type=positive_int, default=10, help="neighbours searched per image (default: 10)")
    parser.add_argument(
        "--keep",
        choices=KEEP_POLICIES,
        default="pixels",
        help="file to keep in each group: most pixels (default), oldest modification time, largest file, "
        "or first --prefix match",
    )
    parser.add_argument(
        "--prefix",
        action="append",
        default=[],
        help="relative path prefix for --keep prefix; repeat it, most preferred first",
    )
    parser.add_argument(
        "--move-to",
        type=Path,
        help="move every file that is not kept into this folder, keeping its relative path, and write an undo script",
    )
    add_backbone_options(parser)
    add_logging_options(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..duplicates import find_duplicates
    from ..quarantine import move_duplicates

    if args.keep == "prefix" and not args.prefix:
        raise ValueError("--keep prefix needs at least one --prefix PATH")
    setup_logging(args, args.out)
    report = find_duplicates(
        args.input,
        args.out,
        threshold=args.threshold,
        thumbnail_threshold=None if args.no_thumbnails else args.thumbnail_threshold,
        k=args.neighbors,
        keep=args.keep,
        prefixes=args.prefix,
        backbone=args.backbone,
        weights=args.weights,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        cache_dir=args.cache,
        progress=not args.quiet,
    )
    counts = report.counts()
    print(
        f"{counts['groups']} duplicate groups among {counts['images']} images: {counts['duplicates']} files "
        f"to remove ({counts['exact_file']} exact copies, {counts['exact_pixels']} with equal pixels, "
        f"{counts['near']} near duplicates)."
    )
    print(f"Report: {args.out / 'duplicates.csv'}, {args.out / 'duplicates.json'}")
    if args.move_to is not None:
        result = move_duplicates(report, args.input, args.move_to)
        print(f"Moved {len(result.moved)} files into {args.move_to}; {len(result.skipped)} left in place.")
        if result.undo_script is not None:
            print(f"To move them back, run: sh {result.undo_script}")
    else:
        print("Nothing was moved; pass --move-to DIR to move the duplicates into a quarantine folder.")
    return 0
