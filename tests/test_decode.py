"""Tests for eclu.decode: upright 8-bit RGB pictures, or a status with the reason for a failure."""

from __future__ import annotations

import csv
import hashlib
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from eclu.decode import STATUSES, decode_image, to_rgb
from eclu.scan import scan_folder
from image_builders import (
    FIXTURES,
    photo,
    save_animated_gif,
    save_cmyk_jpeg,
    save_exif_rotated_jpeg,
    save_gray16_png,
    save_rgba_png,
    save_truncated_jpeg,
)


def pixels(result) -> np.ndarray:
    assert result.status == "ok", result.reason
    assert result.image.mode == "RGB"
    return np.asarray(result.image).astype(np.float64)


def mean_abs_difference(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


# -- files built from the fixture photos --------------------------------------


def test_decode_plain_jpeg():
    path = FIXTURES / "china.jpg"
    data = path.read_bytes()

    result = decode_image(path)

    assert result.status == "ok"
    assert result.reason == ""
    assert result.format == "JPEG"
    assert (result.width, result.height) == (240, 160)
    assert result.image.size == (240, 160)
    assert result.nbytes == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert mean_abs_difference(pixels(result), photo("china.jpg")) == 0.0


def test_decode_data_argument_matches_path():
    path = FIXTURES / "flower.jpg"

    from_path = decode_image(path)
    from_bytes = decode_image(path, data=path.read_bytes())

    assert from_bytes.sha256 == from_path.sha256
    assert np.array_equal(pixels(from_bytes), pixels(from_path))


def test_decode_cmyk_jpeg_colours(tmp_path):
    path = tmp_path / "cmyk.jpg"
    save_cmyk_jpeg(path, photo("flower.jpg"))
    assert Image.open(path).mode == "CMYK"

    result = decode_image(path)

    assert mean_abs_difference(pixels(result), photo("flower.jpg")) < 12


def test_decode_gray16_png_value_range(tmp_path):
    path = tmp_path / "gray16.png"
    grey = save_gray16_png(path, photo("china.jpg"))
    assert Image.open(path).mode.startswith("I")

    decoded = pixels(decode_image(path))

    assert np.array_equal(decoded[..., 0], grey)
    assert np.array_equal(decoded[..., 0], decoded[..., 2])


def test_decode_exif_rotation_upright(tmp_path):
    path = tmp_path / "rotated.jpg"
    save_exif_rotated_jpeg(path, photo("china.jpg"))
    assert Image.open(path).size == (160, 240)

    result = decode_image(path)

    assert (result.width, result.height) == (240, 160)
    assert result.image.size == (240, 160)
    assert mean_abs_difference(pixels(result), photo("china.jpg")) < 8


def test_decode_animated_gif_first_frame(tmp_path):
    path = tmp_path / "animated.gif"
    save_animated_gif(path, photo("china.jpg"), photo("flower.jpg"))

    decoded = pixels(decode_image(path))

    assert mean_abs_difference(decoded, photo("china.jpg")) < 15
    assert mean_abs_difference(decoded, photo("flower.jpg")) > 40


def test_decode_gif_named_jpg_by_content(tmp_path):
    path = tmp_path / "really-a-gif.jpg"
    save_animated_gif(path, photo("flower.jpg"), photo("china.jpg"))

    result = decode_image(path)

    assert result.status == "ok"
    assert result.format == "GIF"


def test_decode_rgba_on_white(tmp_path):
    path = tmp_path / "rgba.png"
    save_rgba_png(path, photo("flower.jpg"))

    decoded = pixels(decode_image(path))

    assert np.all(decoded[:, :120] == 255)
    assert mean_abs_difference(decoded[:, 120:], np.asarray(photo("flower.jpg"))[:, 120:]) == 0.0


def test_decode_rgba_background(tmp_path):
    path = tmp_path / "rgba.png"
    save_rgba_png(path, photo("flower.jpg"))

    decoded = pixels(decode_image(path, background=(0, 0, 0)))

    assert np.all(decoded[:, :120] == 0)


def test_decode_draft_mode_reduces_large_jpeg(tmp_path):
    path = tmp_path / "large.jpg"
    photo("china.jpg").resize((2400, 1600)).save(path, quality=90)

    full = decode_image(path)
    reduced = decode_image(path, draft_size=256)

    assert full.image.size == (2400, 1600)
    assert (reduced.width, reduced.height) == (2400, 1600)
    assert reduced.image.size == (600, 400)
    assert min(reduced.image.size) >= 256


def test_decode_draft_size_reduces_large_png(tmp_path):
    path = tmp_path / "large.png"
    photo("china.jpg").resize((2400, 1600)).save(path)

    reduced = decode_image(path, draft_size=256)

    assert (reduced.width, reduced.height) == (2400, 1600)
    # Reduced by 6, the largest factor that keeps the shorter side at 256 or more.
    assert reduced.image.size == (400, 267)
    assert reduced.image.mode == "RGB"


def test_decode_draft_size_keeps_small_png(tmp_path):
    path = tmp_path / "small.png"
    photo("china.jpg").resize((600, 500)).save(path)

    assert decode_image(path, draft_size=256).image.size == (600, 500)


def test_decode_zero_size(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")

    result = decode_image(path)

    assert result.status == "zero_size"
    assert result.image is None
    assert "empty" in result.reason


def test_decode_truncated_jpeg(tmp_path):
    path = tmp_path / "truncated.jpg"
    save_truncated_jpeg(path, FIXTURES / "china.jpg")

    result = decode_image(path)

    assert result.status == "truncated"
    assert result.image is None
    assert result.nbytes == path.stat().st_size


def test_decode_text_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("just text\n", encoding="utf-8")

    result = decode_image(path)

    assert result.status == "undecodable"
    assert result.reason


def test_decode_missing_file(tmp_path):
    result = decode_image(tmp_path / "absent.jpg")

    assert result.status == "missing"
    assert "absent.jpg" in result.reason


def test_decode_folder_is_undecodable(tmp_path):
    result = decode_image(tmp_path)

    assert result.status == "undecodable"


def test_decode_pixel_cap(tmp_path):
    result = decode_image(FIXTURES / "china.jpg", max_pixels=240 * 160 - 1)

    assert result.status == "too_large"
    assert "38400" in result.reason
    assert result.image is None


def test_decode_statuses_known():
    assert STATUSES[0] == "ok"
    assert set(STATUSES) == {
        "ok", "hidden", "missing", "zero_size", "truncated", "undecodable", "unsupported_format", "too_large",
    }


@pytest.mark.parametrize(
    ("mode", "values"),
    [
        ("L", np.array([[0, 128], [255, 64]], dtype=np.uint8)),
        ("I;16", np.array([[0, 128 * 257], [65535, 64 * 257]], dtype=np.uint16)),
        ("I", np.array([[0, 128 * 257], [65535, 64 * 257]], dtype=np.int32)),
        ("F", np.array([[0.0, 128 / 255], [1.0, 64 / 255]], dtype=np.float32)),
    ],
)
def test_to_rgb_grey_modes(mode, values):
    image = Image.fromarray(values, mode) if mode != "I;16" else Image.fromarray(values)
    assert image.mode == mode

    rgb = np.asarray(to_rgb(image))

    assert rgb.dtype == np.uint8
    assert rgb[..., 0].tolist() == [[0, 128], [255, 64]]


def test_to_rgb_palette_with_transparency():
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 1

    rgb = np.asarray(to_rgb(image))

    assert np.all(rgb == 255)


def test_to_rgb_la_and_one_bit():
    la = Image.new("LA", (2, 2), (0, 0))
    one_bit = Image.new("1", (2, 2), 1)

    assert np.all(np.asarray(to_rgb(la)) == 255)
    assert np.all(np.asarray(to_rgb(one_bit)) == 255)


# -- the shared collection of odd files ---------------------------------------


def _decode_with_deadline(path, seconds: float = 60.0):
    """Decode ``path`` in a daemon thread; fail the test when it takes longer than ``seconds``."""
    outcome = {}

    def target():
        outcome["result"] = decode_image(path, draft_size=256)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"decoding {path.name} did not finish within {seconds} s"
    return outcome["result"]


@pytest.fixture(scope="module")
def odd_images():
    folder = shared_path("odd-images")
    with open(folder / "CASES.csv", newline="", encoding="utf-8") as handle:
        cases = list(csv.DictReader(handle))
    return folder, cases


@pytest.mark.shared
def test_odd_images_status_per_case(odd_images):
    folder, cases = odd_images
    expected_status = {
        "truncated": {"truncated"},
        "undecodable": {"undecodable"},
        "too_large": {"too_large"},
        "too_large or undecodable, no hang": {"too_large", "undecodable"},
        "zero_size": {"zero_size"},
    }
    hidden = {entry.path for entry in scan_folder(folder) if entry.hidden}
    assert len(cases) == 40

    for case in cases:
        expected = case["expected"]
        if expected == "skipped":
            assert case["file"] in hidden
            continue
        result = _decode_with_deadline(folder / case["file"])
        if expected.startswith("decodes"):
            assert result.status == "ok", f"{case['file']}: {result.reason}"
            assert result.image.mode == "RGB", case["file"]
            assert result.width > 0, case["file"]
            assert result.height > 0, case["file"]
        else:
            assert result.status in expected_status[expected], f"{case['file']}: {result.status} {result.reason}"
            assert result.reason, case["file"]
            assert result.image is None, case["file"]


@pytest.mark.shared
def test_odd_images_exif_orientations_upright(odd_images):
    folder, _ = odd_images
    reference = pixels(decode_image(folder / "landscape_orient1.jpg"))
    assert reference.shape == (1200, 1800, 3)

    for orientation in range(2, 9):
        result = decode_image(folder / f"landscape_orient{orientation}.jpg")
        decoded = pixels(result)
        assert (result.width, result.height) == (1800, 1200), orientation
        assert decoded.shape == reference.shape, orientation
        assert mean_abs_difference(decoded, reference) < 6, orientation
        # A mirrored picture differs by far more than JPEG noise.
        assert mean_abs_difference(decoded[:, ::-1], reference) > 40, orientation


@pytest.mark.shared
def test_odd_images_small_orientation6(odd_images):
    folder, _ = odd_images
    upright = pixels(decode_image(folder / "orient6_small.jpg"))
    reference = pixels(decode_image(folder / "photo.webp"))

    assert upright.shape == reference.shape
    assert mean_abs_difference(upright, reference) < 10


@pytest.mark.shared
def test_odd_images_cmyk_red_text(odd_images):
    folder, _ = odd_images
    decoded = pixels(decode_image(folder / "cmyk.jpg"))

    red, green, blue = decoded[0, 0]
    assert red > 200
    assert green < 60
    assert blue < 60
    assert decoded[-1, -1].max() < 40


@pytest.mark.shared
def test_odd_images_gray16_not_white(odd_images):
    folder, _ = odd_images
    decoded = pixels(decode_image(folder / "gray16.png"))

    assert decoded.mean() < 200
    assert decoded.std() > 30
    assert np.array_equal(decoded[..., 0], decoded[..., 1])


@pytest.mark.shared
@pytest.mark.parametrize("name", ["palette_trns.png", "transparent.webp", "rgba16.png"])
def test_odd_images_alpha_on_white(odd_images, name):
    folder, _ = odd_images
    alpha = np.asarray(Image.open(folder / name).convert("RGBA").getchannel("A"))
    transparent = alpha == 0
    assert transparent.any()

    decoded = pixels(decode_image(folder / name))

    assert np.all(decoded[transparent] == 255)
    assert not np.all(decoded[~transparent] == 255)


@pytest.mark.shared
def test_odd_images_same_photo_every_format(odd_images):
    folder, _ = odd_images
    reference = pixels(decode_image(folder / "photo.webp"))

    # Lossy coding noise stays below 16 grey levels on average. A wrong colour
    # conversion or orientation is off by far more.
    for name in ("photo.avif", "photo.heic", "qtables16.jpg"):
        decoded = pixels(decode_image(folder / name))
        assert decoded.shape == reference.shape, name
        assert mean_abs_difference(decoded, reference) < 16, name
        assert mean_abs_difference(decoded, reference[::-1]) > 30, name


@pytest.mark.shared
def test_odd_images_first_frame_and_page(odd_images):
    folder, _ = odd_images
    for name in ("animated.gif", "multipage.tiff"):
        with Image.open(folder / name) as image:
            assert getattr(image, "n_frames", 1) > 1
            first = np.asarray(image.convert("RGB"))
        assert np.array_equal(pixels(decode_image(folder / name)), first), name


@pytest.mark.shared
def test_odd_images_very_large_draft(odd_images):
    folder, _ = odd_images
    result = decode_image(folder / "very_large.jpg", draft_size=256)

    assert (result.width, result.height) == (4800, 3600)
    assert result.image.size == (600, 450)


@pytest.mark.shared
def test_odd_images_bomb_rejected_at_header(odd_images):
    folder, _ = odd_images
    result = decode_image(folder / "bomb.gif")

    assert result.status == "too_large"
    assert result.nbytes == 44
