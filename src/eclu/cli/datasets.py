"""``eclu datasets get``: download a benchmark data set as one folder per class."""

from __future__ import annotations

from pathlib import Path

from ..datasets import DATASETS
from ._common import add_logging_options, setup_logging


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="download a labelled benchmark data set (needs a network connection)",
        description="Download a benchmark data set through torchvision and write its images as DIR/CLASS/NNNNN.png.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    get = actions.add_parser("get", help="download a data set and write one folder per class")
    get.add_argument("name", choices=DATASETS, help="data set")
    get.add_argument("dir", type=Path, help="output folder")
    get.add_argument("--split", choices=("test", "train"), default="test", help="split to write (default: test)")
    get.add_argument(
        "--download-dir", type=Path, help="where torchvision keeps the downloaded archive (default: DIR/.download)"
    )
    add_logging_options(get)
    get.set_defaults(handler=run)


def run(args) -> int:
    from ..datasets import get_dataset

    setup_logging(args)
    try:
        count = get_dataset(
            args.name, args.dir, split=args.split, download_dir=args.download_dir, progress=not args.quiet
        )
    except OSError as error:
        # urllib's URLError is an OSError: no network, or the server refused.
        raise ConnectionError(
            f"failed to download {args.name}: {error}. Check the network connection, or place the "
            "archive in the download folder (--download-dir) and run the command again"
        ) from None
    print(f"Wrote {count} images of {args.name} ({args.split}) to {args.dir}; run `eclu bench {args.dir}` next.")
    return 0
