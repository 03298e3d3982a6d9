"""Command-line interface: ``eclu COMMAND ...``; each command lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__

logger = logging.getLogger("eclu")

# Modules under eclu.cli that each define add_parser(subparsers) and run(args).
_COMMAND_MODULES = [
    "cluster",
    "evaluate",
    "demo",
    "backbones",
    "duplicates",
    "outliers",
    "similar",
    "index",
    "report",
    "bench",
    "datasets",
]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="eclu",
        description="Cluster image collections with pretrained neural-network features.",
    )
    parser.add_argument("--version", action="version", version=f"eclu {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    from ._common import USER_ERRORS

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except USER_ERRORS as error:
        logger.debug("Command failed", exc_info=True)
        print(f"eclu {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eclu: interrupted; embeddings written so far are kept in the feature store", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
