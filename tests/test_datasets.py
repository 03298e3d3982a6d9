"""Tests for eclu.datasets: STL-10 binary conversion and class folders, offline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eclu.datasets import get_dataset, read_stl10_binary, write_class_folders

CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def _write_stl10(folder, split, images, labels):
    """Write images (n, 96, 96, 3) in the STL-10 layout: channel planes, each column-major."""
    folder.mkdir(parents=True, exist_ok=True)
    images.transpose(0, 3, 2, 1).astype(np.uint8).tofile(folder / f"{split}_X.bin")
    (np.asarray(labels, dtype=np.uint8) + 1).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(CLASSES) + "\n")


@pytest.fixture
def stl_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 96, 96, 3), dtype=np.uint8)
    # A marker that differs between row and column order and between channels.
    images[:, 0, 1] = (255, 0, 0)
    images[:, 1, 0] = (0, 0, 255)
    return images, [0, 3, 3, 9, 1]


def test_stl10_reader_restores_orientation(tmp_path, stl_images):
    images, labels = stl_images
    _write_stl10(tmp_path / "stl10_binary", "test", images, labels)
    read, read_labels, classes = read_stl10_binary(tmp_path / "stl10_binary", "test")
    assert read.shape == (5, 96, 96, 3)
    assert np.array_equal(read, images)
    assert read_labels.tolist() == labels
    assert classes == CLASSES


def test_stl10_reader_rejects_truncated_file(tmp_path, stl_images):
    images, labels = stl_images
    folder = tmp_path / "stl10_binary"
    _write_stl10(folder, "test", images, labels)
    data = (folder / "test_X.bin").read_bytes()
    (folder / "test_X.bin").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="not a multiple"):
        read_stl10_binary(folder, "test")


def test_stl10_reader_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an STL-10 binary folder"):
        read_stl10_binary(tmp_path, "test")


def test_class_folders_written(tmp_path, stl_images):
    images, labels = stl_images
    count = write_class_folders(images, labels, CLASSES, tmp_path / "out")
    assert count == 5
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == [
        "airplane/00000.png",
        "bird/00004.png",
        "cat/00001.png",
        "cat/00002.png",
        "truck/00003.png",
    ]
    with Image.open(tmp_path / "out" / "cat" / "00001.png") as image:
        assert np.array_equal(np.asarray(image), images[1])


def test_class_folders_never_overwrite(tmp_path, stl_images):
    images, labels = stl_images
    write_class_folders(images, labels, CLASSES, tmp_path / "out")
    with pytest.raises(FileExistsError):
        write_class_folders(images, labels, CLASSES, tmp_path / "out")


def test_get_stl10_offline(tmp_path, stl_images, monkeypatch):
    import torchvision.datasets

    images, labels = stl_images
    download = tmp_path / "download"
    _write_stl10(download / "stl10_binary", "test", images, labels)
    calls = []
    monkeypatch.setattr(torchvision.datasets, "STL10", lambda root, split, download: calls.append((root, split, download)))
    count = get_dataset("stl10", tmp_path / "stl10", download_dir=download)
    assert count == 5
    assert calls == [(str(download), "test", True)]
    assert len(list((tmp_path / "stl10").rglob("*.png"))) == 5


def test_get_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="unknown data set"):
        get_dataset("imagenet", tmp_path)
