"""Export: one folder per cluster, holding symbolic links to (or copies of) the images."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .outputs import read_clusters

logger = logging.getLogger(__name__)

__all__ = ["export_clusters"]

_MARKER = ".eclu-export"


def _flat_name(relative_path: str) -> str:
    # a/b/IMG_1.jpg becomes a__b__IMG_1.jpg, so equal names in different
    # folders stay distinct inside one cluster folder.
    return relative_path.replace("/", "__")


def export_clusters(run_dir, input_dir, mode: str = "links", folder_name: str = "clusters") -> Path:
    """Write ``run_dir/clusters/cluster-NNN/`` folders from ``clusters.csv``.

    Each image is named by its relative path with ``/`` replaced by ``__``.
    When two paths give the same name, the later one gets ``~2``, ``~3``, ...
    before its extension. In copy mode, an image that cannot be read is
    logged as a warning and left out.

    Parameters
    ----------
    run_dir : path-like
        Run folder with a ``clusters.csv``.
    input_dir : path-like
        The folder the run scanned; the images are only read.
    mode : {"links", "copy"}, default="links"
        Symbolic links to the original files, or copies of them.
    folder_name : str, default="clusters"
        Name of the export folder inside ``run_dir``.

    Returns
    -------
    Path
        The export folder. A previous export there is replaced; a folder of
        that name that ECLU did not write is left alone and an error raised.
    """
    if mode not in ("links", "copy"):
        raise ValueError(f"mode must be 'links' or 'copy', got {mode!r}")
    run_dir = Path(run_dir)
    input_dir = Path(input_dir).resolve()
    if input_dir.is_file():
        # A run over a single file keys it by its name, relative to its folder.
        input_dir = input_dir.parent
    target = run_dir / folder_name
    if target.exists():
        if not (target / _MARKER).is_file():
            raise FileExistsError(
                f"{target} exists and was not written by an ECLU export; move it away or "
                "choose another run folder"
            )
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / _MARKER).write_text("Folder written by `eclu cluster --export`; safe to delete.\n")
    paths, labels, _ = read_clusters(run_dir / "clusters.csv")
    failed = 0
    for path, label in zip(paths, labels):
        # HDBSCAN marks noise with -1; its images go to one folder of their own.
        folder = target / (f"cluster-{int(label):03d}" if label >= 0 else "cluster-noise")
        folder.mkdir(exist_ok=True)
        source = input_dir / path
        destination = _free_name(folder / _flat_name(path))
        if mode == "links":
            os.symlink(source, destination)
            continue
        try:
            shutil.copy2(source, destination)
        except OSError as error:
            failed += 1
            logger.warning("Cannot copy %s into %s: %s", source, folder, error)
    logger.info("Exported %d images into %s as %s", len(paths) - failed, target, mode)
    return target


def _free_name(destination: Path) -> Path:
    # a/b__c.jpg and a__b/c.jpg flatten to the same name, so the second gets a number.
    candidate = destination
    number = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = destination.with_name(f"{destination.stem}~{number}{destination.suffix}")
        number += 1
    return candidate
