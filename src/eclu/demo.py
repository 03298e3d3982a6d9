"""Demo: a labelled image folder made from scikit-learn's handwritten digits."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

__all__ = ["write_digits_folder"]


def write_digits_folder(folder, scale: int = 4, limit: int | None = None) -> int:
    """Write scikit-learn's 8x8 digits as PNG files, one sub-folder per digit.

    Parameters
    ----------
    folder : path-like
        Where ``0/`` to ``9/`` are written. Existing files are overwritten
        with identical content, so the demo set is the same every time.
    scale : int, default=4
        Each pixel becomes a ``scale`` x ``scale`` block (nearest neighbour).
    limit : int, optional
        Write only the first ``limit`` digits.

    Returns
    -------
    int
        Number of images written (1,797 for the whole set).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images if limit is None else digits.images[:limit]
    targets = digits.target if limit is None else digits.target[:limit]
    folder = Path(folder)
    for index, (pixels, target) in enumerate(zip(images, targets)):
        # Values are 0..16 with ink high; invert to dark ink on white paper.
        grey = (255 - np.rint(pixels * (255 / 16))).astype(np.uint8)
        image = Image.fromarray(grey, "L").resize((8 * scale, 8 * scale), Image.NEAREST)
        class_folder = folder / str(int(target))
        class_folder.mkdir(parents=True, exist_ok=True)
        image.save(class_folder / f"digit-{index:04d}.png", optimize=False)
    logger.info("Wrote %d digit images to %s", len(images), folder)
    return len(images)
