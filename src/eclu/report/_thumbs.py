"""Thumbnails keyed by the content hash of their image, written once and reused."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..decode import decode_image

logger = logging.getLogger(__name__)


def thumbnail_url(sha256: str, size: int) -> str:
    """Return the thumbnail's path relative to the report folder, with ``/`` separators."""
    return f"thumbs/{size}/{sha256[:2]}/{sha256}.jpg"


@dataclass
class ThumbnailResult:
    """Outcome of :func:`ensure_thumbnails`.

    Attributes
    ----------
    available : set of str
        Content hashes that have a thumbnail file now.
    created : int
        Thumbnails written by this call; the others were cached.
    failed : dict
        Reason for each content hash without a thumbnail.
    """

    available: set = field(default_factory=set)
    created: int = 0
    failed: dict = field(default_factory=dict)


def ensure_thumbnails(sources: dict, report_dir: Path, size: int, num_workers: int | None = None) -> ThumbnailResult:
    """Write the missing thumbnails of ``sources`` under ``report_dir/thumbs/SIZE/``.

    Parameters
    ----------
    sources : dict
        Original file of each content hash (``sha256 -> Path``); None when
        only a cached thumbnail can be used.
    report_dir : Path
        Report folder.
    size : int
        Maximum width and height of a thumbnail in pixels.
    num_workers : int, optional
        Decoding threads; default one per core but one.

    Returns
    -------
    ThumbnailResult
        A file that cannot be decoded, or whose content changed since the run,
        gets no thumbnail and its reason is logged; the others go on.
    """
    result = ThumbnailResult()
    todo = []
    for sha256, source in sources.items():
        if (report_dir / thumbnail_url(sha256, size)).is_file():
            result.available.add(sha256)
        else:
            todo.append((sha256, source))
    if not todo:
        return result

    workers = num_workers if num_workers is not None else max(1, (os.cpu_count() or 2) - 1)
    logger.info("Writing %d thumbnails (%d cached)", len(todo), len(result.available))
    if workers <= 1:
        outcomes = [_write_thumbnail(sha256, source, report_dir, size) for sha256, source in todo]
    else:
        # Pillow releases the GIL while it decodes and resizes, so threads scale.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(lambda item: _write_thumbnail(item[0], item[1], report_dir, size), todo))

    for (sha256, _), reason in zip(todo, outcomes):
        if reason:
            result.failed[sha256] = reason
        else:
            result.available.add(sha256)
            result.created += 1
    if result.failed:
        logger.warning("%d images have no thumbnail; the first: %s", len(result.failed), next(iter(result.failed.values())))
    return result


def _write_thumbnail(sha256: str, source: Path, report_dir: Path, size: int) -> str:
    """Write one thumbnail; return an empty string, or why it was not written."""
    if source is None:
        return "the folder of the original images is unknown; pass input_dir to build_report"
    decoded = decode_image(source, draft_size=size)
    if decoded.status != "ok":
        return f"{source}: {decoded.status}: {decoded.reason}"
    if decoded.sha256 != sha256:
        return f"{source}: content changed since the run; run `eclu cluster` again"
    image = decoded.image
    image.thumbnail((size, size))
    target = report_dir / thumbnail_url(sha256, size)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{id(image)}.tmp")
    image.save(tmp, format="JPEG", quality=85)
    os.replace(tmp, target)
    return ""
