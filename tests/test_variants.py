"""Edited copies for duplicate checks: sizes, modes, orientation and pixels of each edit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eclu.decode import decode_image
from eclu.duplicates import pixel_sha256
from eclu.variants import VARIANTS, write_variants


@pytest.fixture()
def photo(tmp_path):
    from sklearn.datasets import load_sample_image

    path = tmp_path / "china.jpg"
    Image.fromarray(load_sample_image("china.jpg")).save(path, quality=92)
    return path


def test_every_variant_written(photo, tmp_path):
    written = write_variants(photo, tmp_path / "copies")
    assert sorted(written) == sorted(VARIANTS)
    for path in written.values():
        assert decode_image(path).status == "ok", path


def test_variant_sizes_and_modes(photo, tmp_path):
    written = write_variants(photo, tmp_path / "copies")
    width, height = decode_image(photo).image.size
    assert decode_image(written["half"]).image.size == (width // 2, height // 2)
    assert decode_image(written["crop5"]).image.size == (width - 2 * round(width * 0.025), height - 2 * round(height * 0.025))
    with Image.open(written["cmyk"]) as image:
        assert image.mode == "CMYK"
    with Image.open(written["exif6"]) as image:
        assert image.size == (height, width)
        assert image.getexif()[0x0112] == 6
    # Upright after the EXIF orientation is applied.
    upright = np.asarray(decode_image(written["exif6"]).image, dtype=np.int16)
    original = np.asarray(decode_image(photo).image, dtype=np.int16)
    assert upright.shape == original.shape
    assert np.abs(upright - original).mean() < 4


def test_lossless_variants_keep_pixels(photo, tmp_path):
    written = write_variants(photo, tmp_path / "copies")
    assert written["copy"].read_bytes() == photo.read_bytes()
    assert written["png"].read_bytes() != written["png_text"].read_bytes()
    assert pixel_sha256(written["png"]) == pixel_sha256(photo)
    assert pixel_sha256(written["png_text"]) == pixel_sha256(photo)
    assert pixel_sha256(written["jpeg40"]) != pixel_sha256(photo)


def test_unknown_variant_rejected(photo, tmp_path):
    with pytest.raises(ValueError, match="unknown variants"):
        write_variants(photo, tmp_path, variants=("blur",))
    (tmp_path / "bad.jpg").write_bytes(b"nothing")
    with pytest.raises(ValueError, match="cannot decode"):
        write_variants(tmp_path / "bad.jpg", tmp_path / "out")
