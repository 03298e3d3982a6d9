"""Quarantine: duplicates are moved with their relative paths, and the undo script restores them."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np
import pytest

from eclu.duplicates import group_duplicates
from eclu.quarantine import move_duplicates


@pytest.fixture()
def photos(tmp_path):
    """Three files: two copies of one content in nested folders, one distinct."""
    root = tmp_path / "photos"
    contents = {"a/keep.jpg": b"same bytes", "b/c/copy.jpg": b"same bytes", "d/other.jpg": b"other bytes"}
    for path, data in contents.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    paths = sorted(contents)
    hashes = [hashlib.sha256(contents[path]).hexdigest() for path in paths]
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    report = group_duplicates(paths, hashes, embeddings, sizes=[(10, 10)] * 3, file_sizes=[10, 10, 11])
    return root, report


def test_move_keeps_relative_paths(photos, tmp_path):
    root, report = photos
    result = move_duplicates(report, root, tmp_path / "quarantine")
    assert [(source.relative_to(root).as_posix(), target.relative_to(tmp_path / "quarantine").as_posix()) for source, target in result.moved] == [("b/c/copy.jpg", "b/c/copy.jpg")]
    assert not (root / "b/c/copy.jpg").exists()
    assert (tmp_path / "quarantine/b/c/copy.jpg").read_bytes() == b"same bytes"
    assert (root / "a/keep.jpg").is_file()
    assert (root / "d/other.jpg").is_file()
    assert result.skipped == []


def test_undo_script_restores(photos, tmp_path):
    root, report = photos
    result = move_duplicates(report, root, tmp_path / "quarantine")
    completed = subprocess.run(["sh", str(result.undo_script)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert (root / "b/c/copy.jpg").read_bytes() == b"same bytes"
    assert not (tmp_path / "quarantine/b/c/copy.jpg").exists()


def test_changed_or_blocked_files_stay(photos, tmp_path):
    root, report = photos
    (root / "b/c/copy.jpg").write_bytes(b"edited since the scan")
    result = move_duplicates(report, root, tmp_path / "quarantine")
    assert result.moved == []
    assert result.undo_script is None
    assert "changed since" in result.skipped[0][1]
    (root / "b/c/copy.jpg").write_bytes(b"same bytes")
    (tmp_path / "quarantine/b/c").mkdir(parents=True)
    (tmp_path / "quarantine/b/c/copy.jpg").write_bytes(b"already here")
    result = move_duplicates(report, root, tmp_path / "quarantine")
    assert result.moved == []
    assert "exists already" in result.skipped[0][1]
    assert (root / "b/c/copy.jpg").is_file()


def test_quarantine_into_input_rejected(photos):
    root, report = photos
    with pytest.raises(ValueError, match="is the input folder"):
        move_duplicates(report, root, root)
