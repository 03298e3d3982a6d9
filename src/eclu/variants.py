"""Edited copies of an image, to check duplicate detection on a collection of known duplicates."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from PIL import Image, PngImagePlugin

from .decode import decode_image

logger = logging.getLogger(__name__)

__all__ = ["VARIANTS", "EXPECTED_KIND", "write_variants"]

#: The edits :func:`write_variants` makes, by name.
VARIANTS = ("copy", "png", "png_text", "half", "jpeg40", "exif6", "cmyk", "crop5")

#: The duplicate kind each variant should be found as, compared with its source.
EXPECTED_KIND = {
    "copy": "exact_file",
    "png": "exact_pixels",
    "png_text": "exact_pixels",
    "half": "near",
    "jpeg40": "near",
    "exif6": "near",
    "cmyk": "near",
    "crop5": "near",
}


def write_variants(source, out_dir, stem: str | None = None, variants=VARIANTS) -> dict[str, Path]:
    """Write edited copies of one image into ``out_dir``.

    The edits are:

    * ``copy``: the same bytes;
    * ``png``: a lossless PNG of the upright pixels;
    * ``png_text``: the same PNG with a text chunk, so other bytes but equal pixels;
    * ``half``: resized to half width and height;
    * ``jpeg40``: JPEG quality 40;
    * ``exif6``: pixels turned 90 degrees counter-clockwise with EXIF
      orientation 6, so viewers show the picture upright;
    * ``cmyk``: converted to CMYK;
    * ``crop5``: 5% of the width and of the height cut off, half on each side.

    Every JPEG copy except ``jpeg40`` is saved at quality 90.

    Parameters
    ----------
    source : path-like
        An image file. It is only read.
    out_dir : path-like
        Folder to write to; created if needed.
    stem : str, optional
        File name stem of the copies; default the source's stem.
    variants : sequence of str, default=VARIANTS
        Which edits to write.

    Returns
    -------
    dict of str to Path
        The file written for each variant.

    Raises
    ------
    ValueError
        If ``source`` cannot be decoded or a variant name is unknown.
    """
    source = Path(source)
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    decoded = decode_image(source)
    if decoded.status != "ok":
        raise ValueError(f"cannot decode {source}: {decoded.reason}")
    image = decoded.image
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or source.stem
    written: dict[str, Path] = {}
    for name in variants:
        target = out_dir / f"{stem}_{name}{_suffix(name, source)}"
        _write_variant(name, image, source, target)
        written[name] = target
    logger.debug("Wrote %d variants of %s to %s", len(written), source, out_dir)
    return written


def _suffix(name: str, source: Path) -> str:
    if name == "copy":
        return source.suffix
    if name.startswith("png"):
        return ".png"
    return ".jpg"


def _write_variant(name: str, image: Image.Image, source: Path, target: Path) -> None:
    width, height = image.size
    if name == "copy":
        shutil.copyfile(source, target)
    elif name == "png":
        image.save(target, format="PNG")
    elif name == "png_text":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "saved again with other metadata")
        image.save(target, format="PNG", pnginfo=info)
    elif name == "half":
        half = image.resize((max(1, width // 2), max(1, height // 2)), Image.LANCZOS)
        half.save(target, format="JPEG", quality=90)
    elif name == "jpeg40":
        image.save(target, format="JPEG", quality=40)
    elif name == "exif6":
        # Orientation 6 means "turn the stored pixels 90 degrees clockwise to
        # display", which undoes this counter-clockwise turn.
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(target, format="JPEG", quality=90, exif=exif)
    elif name == "cmyk":
        image.convert("CMYK").save(target, format="JPEG", quality=90)
    elif name == "crop5":
        dx, dy = round(width * 0.025), round(height * 0.025)
        image.crop((dx, dy, width - dx, height - dy)).save(target, format="JPEG", quality=90)
