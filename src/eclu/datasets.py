"""Benchmark data sets: download STL-10 or CIFAR-10 and write one folder per class.

Downloads go through torchvision and happen only when a user calls
:func:`get_dataset` (``eclu datasets get``). The written folders are ready
for ``eclu bench`` and ``eclu cluster --labels folders``.

STL-10 is read from its binary files by ECLU itself. CIFAR-10 ships as
Python pickles, which only torchvision's CIFAR10 class reads, after it has
checked the MD5 of the downloaded archive; ECLU unpickles nothing itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["DATASETS", "get_dataset", "read_stl10_binary", "write_class_folders"]

#: Data sets :func:`get_dataset` can download.
DATASETS = ("stl10", "cifar10")

_STL10_SIZE = 96


def get_dataset(name: str, out_dir, *, split: str = "test", download_dir=None, progress: bool = False) -> int:
    """Download a data set through torchvision and write its images as class folders.

    Parameters
    ----------
    name : {"stl10", "cifar10"}
        Data set.
    out_dir : path-like
        Folder to write ``CLASS/NNNNN.png`` into. Existing images are never
        overwritten.
    split : {"test", "train"}, default="test"
        Split to write. STL-10's test split has 8,000 images, CIFAR-10's 10,000.
    download_dir : path-like, optional
        Where torchvision keeps the downloaded archive; default
        ``out_dir/.download``.
    progress : bool, default=False
        Show a progress bar while writing images.

    Returns
    -------
    int
        Number of images written.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    out_dir = Path(out_dir)
    download_dir = Path(download_dir) if download_dir is not None else out_dir / ".download"
    download_dir.mkdir(parents=True, exist_ok=True)
    if name == "stl10":
        from torchvision.datasets import STL10

        # torchvision downloads the archive and checks its MD5; the binary
        # files are then read here.
        STL10(str(download_dir), split=split, download=True)
        images, labels, classes = read_stl10_binary(download_dir / "stl10_binary", split)
    else:
        from torchvision.datasets import CIFAR10

        dataset = CIFAR10(str(download_dir), train=(split == "train"), download=True)
        images, labels, classes = np.asarray(dataset.data), np.asarray(dataset.targets), list(dataset.classes)
    return write_class_folders(images, labels, classes, out_dir, progress=progress)


def read_stl10_binary(folder, split: str = "test") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read an STL-10 split from its binary files.

    Parameters
    ----------
    folder : path-like
        The ``stl10_binary`` folder, with ``{split}_X.bin``, ``{split}_y.bin``
        and ``class_names.txt``.
    split : {"test", "train"}, default="test"

    Returns
    -------
    images : ndarray of shape (n, 96, 96, 3) of uint8
    labels : ndarray of shape (n,) of int64
        Class index from 0; the files store it from 1.
    classes : list of str
        Class names in index order.
    """
    folder = Path(folder)
    images_file, labels_file, names_file = folder / f"{split}_X.bin", folder / f"{split}_y.bin", folder / "class_names.txt"
    for path in (images_file, labels_file, names_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; {folder} is not an STL-10 binary folder")
    raw = np.fromfile(images_file, dtype=np.uint8)
    image_bytes = 3 * _STL10_SIZE * _STL10_SIZE
    if raw.size % image_bytes:
        raise ValueError(f"{images_file} has {raw.size} bytes, not a multiple of {image_bytes} (one 3x96x96 image)")
    # Each image is stored channel by channel, and each channel column-major.
    images = raw.reshape(-1, 3, _STL10_SIZE, _STL10_SIZE).transpose(0, 3, 2, 1)
    labels = np.fromfile(labels_file, dtype=np.uint8).astype(np.int64) - 1
    classes = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(labels) != len(images):
        raise ValueError(f"{labels_file} has {len(labels)} labels for {len(images)} images in {images_file}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"{labels_file} has labels outside 1..{len(classes)}, the classes in {names_file}")
    return np.ascontiguousarray(images), labels, classes


def write_class_folders(
    images: np.ndarray, labels: Sequence[int], classes: Sequence[str], out_dir, *, progress: bool = False
) -> int:
    """Write RGB images as ``out_dir/CLASS/NNNNN.png``, numbered in input order.

    Parameters
    ----------
    images : ndarray of shape (n, height, width, 3) of uint8
    labels : sequence of int
        Class index of each image.
    classes : sequence of str
        Class names by index; unsafe characters in names become ``-``.
    out_dir : path-like
        Output folder, created if needed.
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    int
        Number of images written.

    Raises
    ------
    FileExistsError
        If an output file already exists; nothing is overwritten.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, height, width, 3), got {images.dtype} {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images")
    out_dir = Path(out_dir)
    folders = [out_dir / _safe_name(name) for name in classes]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(images))))
    for index, (image, label) in enumerate(tqdm(list(zip(images, labels)), disable=not progress, unit="img")):
        target = folders[int(label)] / f"{index:0{width}d}.png"
        # Mode "xb" fails instead of overwriting a file already there.
        with open(target, "xb") as handle:
            Image.fromarray(image).save(handle, format="PNG")
    logger.info("Wrote %d images in %d class folders to %s", len(images), len(classes), out_dir)
    return len(images)


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(name)).strip(".")
    return cleaned or "class"
