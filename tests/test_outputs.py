"""Tests for eclu.outputs: the CSV and JSON files of a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eclu.embed import FileRecord
from eclu.outputs import (
    MANIFEST_COLUMNS,
    read_clusters,
    read_manifest,
    read_summary,
    write_clusters,
    write_manifest,
    write_summary,
)

ODD_PATH = 'dir with space/it\'s "quoted", été.jpg'


def test_manifest_round_trip(tmp_path):
    records = [
        FileRecord("a/1.jpg", "ok", "", 1234, 640, 480, "ab" * 32, "embedded"),
        FileRecord(ODD_PATH, "truncated", "image file is truncated", 99, 10, 20, "cd" * 32),
        FileRecord("gone.jpg", "missing", "file not found: gone.jpg"),
    ]
    path = tmp_path / "manifest.csv"

    write_manifest(path, records)

    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(MANIFEST_COLUMNS)
    back = read_manifest(path)
    assert [(r.path, r.status, r.reason, r.bytes, r.width, r.height, r.sha256) for r in back] == [
        (r.path, r.status, r.reason, r.bytes, r.width, r.height, r.sha256) for r in records
    ]
    assert not list(tmp_path.glob(".*.tmp"))


def test_clusters_round_trip(tmp_path):
    path = tmp_path / "clusters.csv"
    distances = np.array([0.0, 1.23456789, 12345.678], dtype=np.float32)

    write_clusters(path, ["b.jpg", ODD_PATH, "c.jpg"], np.array([1, 0, 0]), distances)

    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "path,cluster,distance"
    assert lines[1] == "b.jpg,1,0"
    assert lines[2].endswith(",0,1.23457")
    assert lines[3] == "c.jpg,0,12345.7"
    paths, labels, read_distances = read_clusters(path)
    assert paths == ["b.jpg", ODD_PATH, "c.jpg"]
    assert labels.tolist() == [1, 0, 0]
    assert np.allclose(read_distances, [0.0, 1.23457, 12345.7])


def test_clusters_csv_deterministic(tmp_path):
    labels = np.array([0, 1])
    write_clusters(tmp_path / "a.csv", ["x.jpg", "y.jpg"], labels, np.array([0.1, 0.2], dtype=np.float32))
    write_clusters(tmp_path / "b.csv", ["x.jpg", "y.jpg"], labels, np.array([0.1, 0.2], dtype=np.float64))

    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_summary_round_trip_with_numpy_values(tmp_path):
    path = tmp_path / "summary.json"
    summary = {
        "count": np.int64(3),
        "score": np.float32(0.5),
        "sizes": np.array([2, 1]),
        "where": Path("/tmp/x"),
        "record": FileRecord("a.jpg", "ok"),
    }

    write_summary(path, summary)

    back = read_summary(path)
    assert back["count"] == 3
    assert back["score"] == 0.5
    assert back["sizes"] == [2, 1]
    assert back["where"] == "/tmp/x"
    assert back["record"]["path"] == "a.jpg"
    assert json.loads(path.read_text(encoding="utf-8")) == back
