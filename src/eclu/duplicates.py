"""Duplicates: exact copies by file and pixel hash, near copies by embedding similarity.

Three kinds of duplicate are found:

* ``exact_file``: the same bytes (equal SHA-256 of the file);
* ``exact_pixels``: other bytes but the same upright RGB pixels, such as a
  PNG copy of a photo or a file saved again with other metadata;
* ``near``: a resized, re-compressed, cropped or colour-converted copy,
  found as a pair of embeddings with a cosine similarity at or above a
  threshold, or as a less similar pair whose small grey thumbnails match.

Linked files form a group (a connected component, so two members of a group
can be less similar to each other than the threshold). Each group keeps one
file, chosen by a policy; the others are the duplicates. Finding them only
reads the images; :func:`eclu.quarantine.move_duplicates` moves them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .backbones import DEFAULT_BACKBONE
from .collection import embed_folder
from .decode import DEFAULT_MAX_PIXELS, decode_image
from .neighbors import distinct_contents, nearest_neighbors, normalize_rows

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_THUMBNAIL_THRESHOLD",
    "KEEP_POLICIES",
    "DuplicateFile",
    "DuplicateGroup",
    "DuplicateReport",
    "find_duplicates",
    "group_duplicates",
    "pixel_sha256",
]

#: Cosine similarity of EfficientNet-Lite0 embeddings at or above which two
#: images are near duplicates without further checks. Chosen with
#: benchmarks/near_duplicates.py: two distinct photos of one flower species
#: in the flowers12 data set reach 0.94.
DEFAULT_THRESHOLD = 0.95

#: Pairs at least this similar but below the threshold are compared by their
#: thumbnails, because the half-size copy of a 224 px photo can fall below
#: 0.8 while its thumbnail stays equal.
CANDIDATE_SIMILARITY = 0.70

#: Pearson correlation of the 16 x 16 grey thumbnails at or above which a
#: candidate pair is a near duplicate.
DEFAULT_THUMBNAIL_THRESHOLD = 0.90

_THUMBNAIL_SIDE = 16

#: Keep policies: which file of a group to keep.
KEEP_POLICIES = ("pixels", "oldest", "largest-file", "prefix")

KINDS = ("exact_file", "exact_pixels", "near")


@dataclass
class DuplicateFile:
    """One member of a duplicate group; a row of ``duplicates.csv``.

    Attributes
    ----------
    group : int
        Group number, 0 for the largest group.
    path : str
        Path relative to the scanned folder.
    kind : str
        ``exact_file`` when another member of the group has the same bytes,
        else ``exact_pixels`` when another member has the same pixels, else
        ``near``.
    similarity : float
        Cosine similarity of the embeddings to the kept file; 1.0 when the
        file has the kept file's bytes or pixels.
    keep : bool
        True for the one file of the group that the policy keeps.
    width, height : int
        Upright size in pixels.
    bytes : int
        File size.
    sha256 : str
        SHA-256 of the file.
    """

    group: int
    path: str
    kind: str
    similarity: float
    keep: bool
    width: int = 0
    height: int = 0
    bytes: int = 0
    sha256: str = ""


@dataclass
class DuplicateGroup:
    """Files that duplicate each other, the kept one first.

    Attributes
    ----------
    group : int
        Group number.
    files : list of DuplicateFile
        The kept file first, then the others by decreasing similarity to it.
    """

    group: int
    files: list

    @property
    def keep(self) -> DuplicateFile:
        """The file the policy keeps."""
        return self.files[0]

    @property
    def duplicates(self) -> list[DuplicateFile]:
        """The files that are not kept."""
        return self.files[1:]


@dataclass
class DuplicateReport:
    """The duplicate groups of a folder and how they were found.

    Attributes
    ----------
    groups : list of DuplicateGroup
        Largest group first.
    threshold : float
        Near-duplicate cosine similarity threshold.
    keep_policy : str
        One of :data:`KEEP_POLICIES`.
    n_images : int
        Images compared.
    input_dir : Path or None
        The scanned folder, when known.
    prefixes : list of str
        Path prefixes of the ``prefix`` keep policy.
    thumbnail_threshold : float or None
        Thumbnail correlation threshold of candidate pairs; None when off.
    """

    groups: list
    threshold: float
    keep_policy: str
    n_images: int
    input_dir: Path | None = None
    prefixes: list = field(default_factory=list)
    thumbnail_threshold: float | None = None

    def rows(self) -> list[DuplicateFile]:
        """Return every member of every group, in ``duplicates.csv`` order."""
        return [member for group in self.groups for member in group.files]

    def counts(self) -> dict:
        """Return the number of groups, of files to remove, and of each kind."""
        duplicates = [member for group in self.groups for member in group.duplicates]
        counts = {"images": self.n_images, "groups": len(self.groups), "duplicates": len(duplicates)}
        for kind in KINDS:
            counts[kind] = sum(member.kind == kind for member in duplicates)
        return counts

    def write_csv(self, path) -> None:
        """Write ``duplicates.csv``: group, path, kind, similarity, keep."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("group", "path", "kind", "similarity", "keep"))
            for member in self.rows():
                writer.writerow(
                    (member.group, member.path, member.kind, f"{member.similarity:.4f}", "true" if member.keep else "false")
                )
        os.replace(tmp, path)

    def write_json(self, path) -> None:
        """Write ``duplicates.json``: the parameters, the counts and every group."""
        path = Path(path)
        payload = {
            "threshold": self.threshold,
            "thumbnail_threshold": self.thumbnail_threshold,
            "keep_policy": self.keep_policy,
            "prefixes": list(self.prefixes),
            "input": str(self.input_dir.resolve()) if self.input_dir is not None else None,
            "counts": self.counts(),
            "groups": [
                {
                    "group": group.group,
                    "keep": group.keep.path,
                    "files": [
                        {key: value for key, value in asdict(member).items() if key != "group"}
                        for member in group.files
                    ],
                }
                for group in self.groups
            ],
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def pixel_sha256(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Return the SHA-256 of an image's upright 8-bit RGB pixels and size, or "" if undecodable.

    Two files with other bytes (format, compression settings, metadata) but
    the same pixels after the EXIF orientation is applied get the same hash.
    """
    return _inspect(path, max_pixels)[0]


def _inspect(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, np.ndarray | None]:
    """Decode a file once for its pixel hash and its centred, unit-length grey thumbnail."""
    result = decode_image(path, max_pixels=max_pixels)
    if result.status != "ok":
        return "", None
    image = result.image
    digest = hashlib.sha256(f"{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    small = image.convert("L").resize((_THUMBNAIL_SIDE, _THUMBNAIL_SIDE), Image.BOX)
    thumbnail = np.asarray(small, dtype=np.float32).ravel()
    thumbnail -= thumbnail.mean()
    norm = float(np.linalg.norm(thumbnail))
    # A flat thumbnail (one colour) has no correlation with anything.
    return digest.hexdigest(), (thumbnail / norm if norm > 1e-3 else None)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return int(root)

    def union(self, first: int, second: int) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def group_duplicates(
    paths: Sequence[str],
    hashes: Sequence[str],
    embeddings,
    *,
    root=None,
    threshold: float = DEFAULT_THRESHOLD,
    thumbnail_threshold: float | None = DEFAULT_THUMBNAIL_THRESHOLD,
    k: int = 10,
    keep: str = "pixels",
    prefixes: Sequence[str] = (),
    sizes: Sequence[tuple[int, int]] | None = None,
    file_sizes: Sequence[int] | None = None,
    method: str = "auto",
) -> DuplicateReport:
    """Group exact and near duplicates among embedded images.

    Parameters
    ----------
    paths : sequence of str
        Relative paths of the images.
    hashes : sequence of str
        SHA-256 of each file, in ``paths`` order.
    embeddings : array-like of shape (n, dim)
        Embedding of each file, in ``paths`` order.
    root : path-like, optional
        Folder the paths are relative to. Needed for pixel hashes,
        thumbnails and the ``oldest`` policy; without it only ``exact_file``
        and embedding matches at ``threshold`` are found.
    threshold : float, default=DEFAULT_THRESHOLD
        Cosine similarity at or above which two images are near duplicates.
    thumbnail_threshold : float or None, default=DEFAULT_THUMBNAIL_THRESHOLD
        Pairs with a cosine similarity from :data:`CANDIDATE_SIMILARITY` up
        to ``threshold`` are near duplicates too when the correlation of
        their 16 x 16 grey thumbnails reaches this value. None turns the
        check off.
    k : int, default=10
        Neighbours searched per image. A group larger than ``k + 1`` is
        still found whole when its members are linked through each other.
    keep : {"pixels", "oldest", "largest-file", "prefix"}, default="pixels"
        Which file of a group to keep: the most pixels, the oldest
        modification time, the largest file, or the first match in
        ``prefixes``. Ties go to the larger pixel count, then the smaller
        path.
    prefixes : sequence of str
        Path prefixes in order of priority, for ``keep="prefix"``.
    sizes : sequence of (width, height), optional
        Upright image sizes; read from the files when missing.
    file_sizes : sequence of int, optional
        File sizes in bytes; read from the files when missing.
    method : {"auto", "exact", "ivf"}, default="auto"
        Neighbour search, see :func:`eclu.neighbors.nearest_neighbors`.

    Returns
    -------
    DuplicateReport
    """
    if keep not in KEEP_POLICIES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_POLICIES)}, got {keep!r}")
    if keep == "prefix" and not prefixes:
        raise ValueError("keep='prefix' needs at least one path prefix, in order of priority")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    n = len(paths)
    if not (n == len(hashes) == len(embeddings)):
        raise ValueError(f"got {n} paths, {len(hashes)} hashes and {len(embeddings)} embeddings")
    root = Path(root) if root is not None else None

    # Identical files share one embedding, so search the distinct contents only.
    content_of, first_row = distinct_contents(hashes)
    vectors = normalize_rows(np.asarray(embeddings)[first_row]) if first_row else np.zeros((0, 1), np.float32)

    floor = min(threshold, CANDIDATE_SIMILARITY if root is not None else threshold)
    if len(first_row) > 1:
        neighbors = nearest_neighbors(vectors, k, method=method, normalized=True)
        first, second, similarity = neighbors.pairs(floor)
    else:
        first = second = np.zeros(0, dtype=np.int64)
        similarity = np.zeros(0, dtype=np.float32)

    # Decode the files of candidate pairs once, for pixel hashes and thumbnails.
    # NOTE: at the 0.70 floor most images of a large collection are candidates,
    # so this is a second full decode of nearly every file, and the thumbnails
    # take 1 KiB per image in memory.
    pixel_hashes: dict[int, str] = {}
    thumbnails: dict[int, np.ndarray | None] = {}
    if root is not None:
        for content in sorted(set(first.tolist()) | set(second.tolist())):
            pixel_hashes[content], thumbnails[content] = _inspect(root / paths[first_row[content]])
    links = _UnionFind(len(first_row))
    for a, b, score in zip(first.tolist(), second.tolist(), similarity.tolist()):
        if score >= threshold or _same_pixels(pixel_hashes, a, b):
            links.union(a, b)
        elif thumbnail_threshold is not None and _thumbnail_correlation(thumbnails, a, b) >= thumbnail_threshold:
            links.union(a, b)

    members: dict[int, list[int]] = {}
    for row in range(n):
        members.setdefault(links.find(int(content_of[row])), []).append(row)
    components = [rows for rows in members.values() if len(rows) > 1]

    facts = _FileFacts(paths, root, sizes, file_sizes)
    groups = []
    for rows in components:
        keep_row = min(rows, key=lambda row: facts.keep_key(row, keep, prefixes))
        groups.append(
            _describe_group(rows, keep_row, hashes, content_of, vectors, pixel_hashes, facts, paths)
        )
    groups.sort(key=lambda files: (-len(files), files[0].path))
    result = []
    for number, files in enumerate(groups):
        for member in files:
            member.group = number
        result.append(DuplicateGroup(number, files))
    logger.info(
        "Found %d duplicate groups among %d images (threshold %.3f)", len(result), n, threshold
    )
    return DuplicateReport(result, threshold, keep, n, root, list(prefixes), thumbnail_threshold)


def _same_pixels(pixel_hashes: dict, a: int, b: int) -> bool:
    return bool(pixel_hashes.get(a)) and pixel_hashes.get(a) == pixel_hashes.get(b)


def _thumbnail_correlation(thumbnails: dict, a: int, b: int) -> float:
    first, second = thumbnails.get(a), thumbnails.get(b)
    if first is None or second is None:
        return -1.0
    return float(first @ second)


class _FileFacts:
    """Sizes and times of the files, read from disk only when a caller did not pass them."""

    def __init__(self, paths, root, sizes, file_sizes):
        self.paths = paths
        self.root = root
        self.sizes = sizes
        self.file_sizes = file_sizes

    def pixels(self, row: int) -> int:
        width, height = self.size(row)
        return width * height

    def size(self, row: int) -> tuple[int, int]:
        if self.sizes is not None:
            return tuple(self.sizes[row])
        if self.root is None:
            return (0, 0)
        result = decode_image(self.root / self.paths[row], draft_size=1)
        return (result.width, result.height)

    def nbytes(self, row: int) -> int:
        if self.file_sizes is not None:
            return int(self.file_sizes[row])
        stat = self._stat(row)
        return stat.st_size if stat is not None else 0

    def mtime(self, row: int) -> float:
        stat = self._stat(row)
        return stat.st_mtime if stat is not None else float("inf")

    def _stat(self, row: int):
        if self.root is None:
            return None
        try:
            return os.stat(self.root / self.paths[row])
        except OSError as error:
            logger.warning("Failed to read the size and modification time of %s, so it is kept last: %s", self.root / self.paths[row], error)
            return None

    def keep_key(self, row: int, policy: str, prefixes) -> tuple:
        tie_break = (-self.pixels(row), self.paths[row])
        if policy == "oldest":
            return (self.mtime(row), *tie_break)
        if policy == "largest-file":
            return (-self.nbytes(row), *tie_break)
        if policy == "prefix":
            rank = next((i for i, prefix in enumerate(prefixes) if self.paths[row].startswith(prefix)), len(prefixes))
            return (rank, *tie_break)
        return tie_break


def _describe_group(rows, keep_row, hashes, content_of, vectors, pixel_hashes, facts, paths) -> list[DuplicateFile]:
    keep_content = int(content_of[keep_row])
    hash_counts: dict[str, int] = {}
    pixel_counts: dict[str, int] = {}
    for row in rows:
        hash_counts[hashes[row]] = hash_counts.get(hashes[row], 0) + 1
        pixels = pixel_hashes.get(int(content_of[row]), "")
        if pixels:
            pixel_counts[pixels] = pixel_counts.get(pixels, 0) + 1
    files = []
    for row in rows:
        content = int(content_of[row])
        pixels = pixel_hashes.get(content, "")
        if hash_counts[hashes[row]] > 1:
            kind = "exact_file"
        elif pixels and pixel_counts[pixels] > 1:
            kind = "exact_pixels"
        else:
            kind = "near"
        if content == keep_content or (pixels and pixels == pixel_hashes.get(keep_content)):
            score = 1.0
        else:
            score = float(np.clip(vectors[content] @ vectors[keep_content], -1.0, 1.0))
        width, height = facts.size(row)
        files.append(
            DuplicateFile(0, paths[row], kind, score, row == keep_row, width, height, facts.nbytes(row), hashes[row])
        )
    kept = next(member for member in files if member.keep)
    others = sorted((member for member in files if not member.keep), key=lambda m: (-m.similarity, m.path))
    return [kept, *others]


def find_duplicates(
    input_dir,
    out_dir=None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    thumbnail_threshold: float | None = DEFAULT_THUMBNAIL_THRESHOLD,
    k: int = 10,
    keep: str = "pixels",
    prefixes: Sequence[str] = (),
    backbone=DEFAULT_BACKBONE,
    weights=None,
    batch_size: int = 64,
    num_workers: int | None = None,
    cache_dir=None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
) -> DuplicateReport:
    """Find exact and near duplicates in a folder; with ``out_dir``, write the report there.

    Images the feature store lacks are embedded first. Nothing is moved or
    deleted; see :func:`eclu.quarantine.move_duplicates` for that.

    Parameters
    ----------
    input_dir : path-like
        Folder of images, scanned recursively.
    out_dir : path-like, optional
        Run folder; gets ``duplicates.csv`` and ``duplicates.json``, and the
        files of :func:`eclu.collection.embed_folder` when it is new.
    threshold, thumbnail_threshold, k, keep, prefixes
        See :func:`group_duplicates`.
    backbone, weights, batch_size, num_workers, cache_dir, max_pixels, progress
        See :func:`eclu.collection.embed_folder`.

    Returns
    -------
    DuplicateReport
    """
    if keep not in KEEP_POLICIES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_POLICIES)}, got {keep!r}")
    folder = embed_folder(
        input_dir,
        out_dir,
        backbone=backbone,
        weights=weights,
        batch_size=batch_size,
        num_workers=num_workers,
        cache_dir=cache_dir,
        max_pixels=max_pixels,
        progress=progress,
    )
    records = folder.ok_records()
    report = group_duplicates(
        folder.paths,
        folder.hashes,
        folder.embeddings,
        root=folder.input_dir,
        threshold=threshold,
        thumbnail_threshold=thumbnail_threshold,
        k=k,
        keep=keep,
        prefixes=prefixes,
        sizes=[(record.width, record.height) for record in records],
        file_sizes=[record.bytes for record in records],
    )
    if out_dir is not None:
        report.write_csv(Path(out_dir) / "duplicates.csv")
        report.write_json(Path(out_dir) / "duplicates.json")
    return report
