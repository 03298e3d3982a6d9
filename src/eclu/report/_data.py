"""Read the files of a run folder that the report shows."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..outputs import read_clusters, read_manifest, read_summary

logger = logging.getLogger(__name__)

#: Columns that duplicates.csv and outliers.csv must have for their pages.
DUPLICATES_COLUMNS = ("group", "path")
OUTLIERS_COLUMNS = ("rank", "path", "score")


@dataclass
class RunData:
    """Everything the report reads from one run folder.

    Attributes
    ----------
    run_dir : Path
        The run folder.
    summary : dict
        Content of ``summary.json``.
    paths : list of str
        Clustered images in ``clusters.csv`` order.
    labels : ndarray of int
        Cluster id of each path.
    distances : ndarray of float
        Distance of each path to its cluster centre.
    records : list of FileRecord
        Rows of ``manifest.csv``, skipped files included.
    sha256 : dict
        Content hash of each file in the manifest, keyed by relative path.
    input_dir : Path or None
        Folder that the relative paths are relative to, when known.
    embeddings : ndarray or None
        ``embeddings.npy``; row ``i`` belongs to ``paths[i]``.
    duplicates, outliers : list of dict or None
        Rows of ``duplicates.csv`` and ``outliers.csv`` when those exist.
    """

    run_dir: Path
    summary: dict
    paths: list
    labels: np.ndarray
    distances: np.ndarray
    records: list = field(repr=False)
    sha256: dict = field(repr=False)
    input_dir: Path | None = None
    embeddings: np.ndarray | None = field(default=None, repr=False)
    duplicates: list | None = field(default=None, repr=False)
    outliers: list | None = field(default=None, repr=False)

    def skipped(self) -> list:
        """Return the manifest records of files that were not clustered."""
        return [record for record in self.records if record.status != "ok"]


def load_run(run_dir, input_dir=None) -> RunData:
    """Read ``clusters.csv``, ``summary.json``, ``manifest.csv`` and the optional files.

    Raises
    ------
    FileNotFoundError
        When ``clusters.csv`` or ``summary.json`` is missing.
    """
    run_dir = Path(run_dir)
    for name in ("clusters.csv", "summary.json"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir / name} not found: {run_dir} is not a finished ECLU run folder; "
                "run `eclu cluster` first"
            )
    summary = read_summary(run_dir / "summary.json")
    paths, labels, distances = read_clusters(run_dir / "clusters.csv")
    manifest = run_dir / "manifest.csv"
    records = read_manifest(manifest) if manifest.is_file() else []
    if not records:
        logger.warning("%s is missing or empty; the report lists no skipped files", manifest)
    sha256 = {record.path: record.sha256 for record in records if record.sha256}

    if input_dir is None and summary.get("input"):
        input_dir = summary["input"]
    input_dir = Path(input_dir) if input_dir is not None else None
    if input_dir is not None and not input_dir.is_dir():
        logger.warning(
            "Input folder %s not found; the report has no thumbnails of images not already "
            "cached and no links to the originals. Pass input_dir to point at the images.",
            input_dir,
        )

    return RunData(
        run_dir=run_dir,
        summary=summary,
        paths=paths,
        labels=labels,
        distances=distances,
        records=records,
        sha256=sha256,
        input_dir=input_dir,
        embeddings=_read_embeddings(run_dir / "embeddings.npy", len(paths)),
        duplicates=_read_optional_csv(run_dir / "duplicates.csv", DUPLICATES_COLUMNS),
        outliers=_read_optional_csv(run_dir / "outliers.csv", OUTLIERS_COLUMNS),
    )


def _read_embeddings(path: Path, n_rows: int) -> np.ndarray | None:
    if not path.is_file():
        logger.warning("%s not found; the report has no map", path)
        return None
    embeddings = np.load(path, mmap_mode="r")
    if embeddings.ndim != 2 or embeddings.shape[0] != n_rows:
        logger.warning(
            "%s has shape %s but clusters.csv has %d rows; the report has no map",
            path,
            embeddings.shape,
            n_rows,
        )
        return None
    return embeddings


def _read_optional_csv(path: Path, required: tuple) -> list | None:
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in required if column not in (reader.fieldnames or [])]
        if missing:
            logger.warning("%s lacks the columns %s; the report leaves it out", path, ", ".join(missing))
            return None
        return list(reader)
