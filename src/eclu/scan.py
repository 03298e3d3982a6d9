"""Scan: find the image files under a folder, in a deterministic order."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["ScanEntry", "scan_folder", "sniff_format", "IMAGE_EXTENSIONS"]

#: File name extensions taken as images, compared in lower case.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".gif",
        ".tif", ".tiff", ".heic", ".heif", ".avif", ".ppm", ".pgm", ".pbm", ".pnm",
        ".tga", ".ico",
    }
)

#: Folders that hold resource forks or tool metadata, never user images.
SKIPPED_FOLDERS = frozenset({"__MACOSX", "@eaDir", "__pycache__"})


@dataclass(frozen=True)
class ScanEntry:
    """One file found by :func:`scan_folder`.

    Attributes
    ----------
    path : str
        Path relative to the scanned root, with ``/`` separators. It is the
        key that every output of a run uses for this file.
    absolute : Path
        Where the file is on disk.
    hidden : bool
        True for a file whose name or any parent folder starts with a dot;
        such files are listed but not decoded.
    """

    path: str
    absolute: Path
    hidden: bool = False


def sniff_format(head: bytes) -> str | None:
    """Return the image format that the first bytes of a file announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"):
            return "HEIF"
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6") and head[2:3] in (b" ", b"\t", b"\n", b"\r", b"#"):
        return "PPM"
    return None


def _looks_like_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            return sniff_format(handle.read(16)) is not None
    except OSError:
        return False


def _is_run_folder(path: Path) -> bool:
    """Return True for a folder that an ECLU run wrote (it has a manifest and a summary)."""
    return (path / "manifest.csv").is_file() and (path / "summary.json").is_file()


def _folder_identity(path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def scan_folder(root, include_hidden: bool = False, exclude=None) -> list[ScanEntry]:
    """List the image files under ``root``, recursively, sorted by path.

    A file counts as an image when its extension is a known image extension
    (in any case) or when its first bytes are an image signature. So a PNG
    named ``photo.dat`` is found, and a text file named ``notes.jpg`` is
    listed and later reported as undecodable. Symbolic links to folders are
    followed once: a link back to a folder already visited is skipped, so
    link loops end. Hidden files are listed with ``hidden=True`` and skipped
    by later stages; hidden folders and ``__MACOSX`` folders are not entered.
    A symbolic link with an image extension whose target is gone is listed,
    and decoding reports it as ``missing``. ECLU run folders (a folder with
    both ``manifest.csv`` and ``summary.json``) and the folders in
    ``exclude`` are not entered, so a run folder or feature store placed
    inside the input never becomes input itself.

    Parameters
    ----------
    root : path-like
        Folder to scan. A single image file is accepted too.
    include_hidden : bool, default=False
        List hidden files as ordinary ones.
    exclude : iterable of path-like, optional
        Folders not to enter, such as the run's output and cache folders.

    Returns
    -------
    list of ScanEntry
        Sorted by relative path, so runs over the same folder see the same
        order.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    NotADirectoryError
        If ``root`` is neither a folder nor a file.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"input folder not found: {root}")
    if root.is_file():
        return [ScanEntry(root.name, root.resolve(), hidden=False)]
    if not root.is_dir():
        raise NotADirectoryError(f"input is neither a folder nor a file: {root}")

    entries: list[ScanEntry] = []
    visited: set[tuple[int, int]] = set()
    excluded = {_folder_identity(path) for path in (exclude or ())} - {None}
    ignored = 0
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        identity = (stat.st_dev, stat.st_ino)
        if identity in visited:
            logger.info("Skipping %s: a symbolic link back to a folder already scanned", folder)
            dirnames[:] = []
            continue
        visited.add(identity)
        dirnames[:] = sorted(
            name
            for name in dirnames
            if name not in SKIPPED_FOLDERS and (include_hidden or not name.startswith("."))
        )
        entered = []
        for name in dirnames:
            child = Path(folder) / name
            if _folder_identity(child) in excluded or _is_run_folder(child):
                logger.info("Skipping %s: it is an ECLU output folder, not input", child)
                continue
            entered.append(name)
        dirnames[:] = entered
        relative_folder = Path(folder).relative_to(root)
        for name in sorted(filenames):
            absolute = Path(folder) / name
            is_dangling_link = absolute.is_symlink() and not absolute.exists()
            if is_dangling_link:
                # A link to an image that is gone is listed, so that decoding
                # reports it as missing instead of it vanishing from the run.
                if absolute.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
            elif not absolute.is_file():
                # FIFOs, sockets and devices are never opened: reading a FIFO
                # would wait for a writer forever.
                if absolute.suffix.lower() in IMAGE_EXTENSIONS:
                    logger.warning("Skipping %s: not a regular file (a FIFO, socket or device)", absolute)
                continue
            elif not _looks_like_image(absolute):
                ignored += 1
                continue
            relative = (relative_folder / name).as_posix()
            hidden = name.startswith(".") and not include_hidden
            entries.append(ScanEntry(relative, absolute, hidden=hidden))
    if ignored:
        logger.info("Ignored %d files under %s that are not images", ignored, root)
    entries.sort(key=lambda entry: entry.path)
    return entries
