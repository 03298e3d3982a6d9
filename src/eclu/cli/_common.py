"""Options and logging shared by the commands."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..backbones import CROP_PCT_RANGE, DEFAULT_BACKBONE, BackboneUnavailableError

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, BackboneUnavailableError, KeyError, ConnectionError)


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print warnings and errors only, no progress bars")
    group.add_argument("-v", "--verbose", action="store_true", help="print debug messages")


def add_backbone_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backbone",
        default=DEFAULT_BACKBONE,
        help=f"backbone name from `eclu backbones`, or any timm model name (default: {DEFAULT_BACKBONE})",
    )
    parser.add_argument("--weights", type=Path, help="local weights file (.safetensors or a PyTorch state dict)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default: 64)")
    parser.add_argument(
        "--num-workers",
        type=non_negative_int,
        default=None,
        help="decode processes; 0 decodes in the main process (default: one per core but one)",
    )
    parser.add_argument("--cache", type=Path, help="shared feature store folder (default: OUT/features)")


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Add the inference engine options: --engine, --quantize and --num-threads."""
    parser.add_argument(
        "--engine",
        choices=("torch", "onnx"),
        default="torch",
        help="inference engine: PyTorch, or ONNX Runtime from a model exported once into the "
        "feature store (needs the onnx extra) (default: torch)",
    )
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        help="quantise the ONNX model's convolutions to int8 (static, calibrated on fixed sample photos); "
        "early convolutions stay float32 where int8 would move the embeddings too far. "
        "Each engine and quantisation keeps its own embeddings",
    )
    parser.add_argument(
        "--num-threads",
        type=positive_int,
        default=None,
        help="inference threads (default: every core but half of those the decode processes take)",
    )


def add_crop_option(parser: argparse.ArgumentParser) -> None:
    """Add --crop-pct, the centre-crop share that replaces the backbone's own."""
    parser.add_argument(
        "--crop-pct",
        type=crop_fraction,
        default=None,
        help="share of the resized image kept by the centre crop, 0.1 to 1.5; 1.0 keeps the whole frame of "
        "square images, better for small images such as CIFAR (default: the backbone's, 0.875 for Lite0)",
    )


def crop_fraction(text: str) -> float:
    low, high = CROP_PCT_RANGE
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be a number from {low} to {high}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def setup_logging(args, log_dir: Path | None = None) -> None:
    """Send eclu's log records to the terminal and, with ``log_dir``, to ``eclu.log``."""
    root = logging.getLogger("eclu")
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_eclu_cli", False):
            root.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler(sys.stderr)
    if args.quiet:
        console.setLevel(logging.WARNING)
    elif args.verbose:
        console.setLevel(logging.DEBUG)
    else:
        console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    console._eclu_cli = True
    root.addHandler(console)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_dir / "eclu.log", encoding="utf-8")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        file_handler._eclu_cli = True
        root.addHandler(file_handler)


def print_table(rows: list[tuple], headers: tuple) -> None:
    """Print a plain aligned text table to standard output."""
    cells = [tuple(str(value) for value in row) for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) if cells else len(headers[i]) for i in range(len(headers))]
    print("  ".join(header.ljust(width) for header, width in zip(headers, widths)))
    print("  ".join("-" * width for width in widths))
    for row in cells:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)))
