"""Tests for eclu.demo: the labelled digits folder."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from eclu.demo import write_digits_folder


def test_digits_folder_layout(digits_folder):
    files = sorted(digits_folder.glob("*/*.png"))

    assert len(files) == 200
    assert sorted(p.name for p in digits_folder.iterdir()) == [str(d) for d in range(10)]
    counts = [len(list((digits_folder / str(d)).glob("*.png"))) for d in range(10)]
    assert min(counts) >= 15


def test_digit_picture(digits_folder):
    with Image.open(digits_folder / "0" / "digit-0000.png") as image:
        assert image.mode == "L"
        assert image.size == (32, 32)
        pixels = np.asarray(image)
    # Dark ink on white paper.
    assert pixels[0, 0] == 255
    assert pixels.min() < 60


def test_digits_folder_is_reproducible(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"

    assert write_digits_folder(first, limit=30) == 30
    assert write_digits_folder(second, limit=30) == 30

    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*/*.png")}

    assert digest(first) == digest(second)
    assert len(digest(first)) == 30


def test_digits_scale(tmp_path):
    write_digits_folder(tmp_path, scale=2, limit=1)

    with Image.open(tmp_path / "0" / "digit-0000.png") as image:
        assert image.size == (16, 16)
