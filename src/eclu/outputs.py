"""Run folder files: manifest.csv, clusters.csv, summary.json and their readers."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .embed import FileRecord

__all__ = [
    "MANIFEST_COLUMNS",
    "write_manifest",
    "read_manifest",
    "write_clusters",
    "read_clusters",
    "write_summary",
    "read_summary",
]

MANIFEST_COLUMNS = ("path", "status", "reason", "bytes", "width", "height", "sha256")


def _atomic_open(path: Path):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    return tmp, open(tmp, "w", newline="", encoding="utf-8")


def write_manifest(path, records: Iterable[FileRecord]) -> None:
    """Write one row per file found: path, status, reason, bytes, width, height, sha256."""
    path = Path(path)
    tmp, handle = _atomic_open(path)
    with handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for record in records:
            writer.writerow([getattr(record, column) for column in MANIFEST_COLUMNS])
    os.replace(tmp, path)


def read_manifest(path) -> list[FileRecord]:
    """Read ``manifest.csv`` back into records."""
    names = {field.name for field in fields(FileRecord)}
    records = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values = {key: value for key, value in row.items() if key in names}
            for key in ("bytes", "width", "height"):
                values[key] = int(values.get(key) or 0)
            records.append(FileRecord(**values))
    return records


def write_clusters(path, paths: Sequence[str], labels, distances) -> None:
    """Write ``clusters.csv``: path, cluster, distance to the cluster centre.

    Distances are written with 6 significant digits so reruns that differ
    only in the last float bits still give identical files.
    """
    path = Path(path)
    tmp, handle = _atomic_open(path)
    with handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("path", "cluster", "distance"))
        for file_path, label, distance in zip(paths, labels, distances):
            writer.writerow((file_path, int(label), f"{float(distance):.6g}"))
    os.replace(tmp, path)


def read_clusters(path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read ``clusters.csv`` into paths, cluster ids and distances."""
    paths, labels, distances = [], [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            paths.append(row["path"])
            labels.append(int(row["cluster"]))
            distances.append(float(row["distance"]))
    return paths, np.asarray(labels, dtype=np.int64), np.asarray(distances, dtype=np.float32)


def write_summary(path, summary: dict) -> None:
    """Write ``summary.json`` atomically."""
    path = Path(path)
    tmp, handle = _atomic_open(path)
    with handle:
        json.dump(summary, handle, indent=2, sort_keys=False, default=_json_default)
        handle.write("\n")
    os.replace(tmp, path)


def read_summary(path) -> dict:
    """Read ``summary.json``."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
