"""Build odd and broken image files from the real photos in tests/fixtures/images.

The tests of scan, decode and the pipeline share these builders, so every
case is made the same way from the same photos.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"

#: Names that must survive every stage unchanged: spaces, quotes, non-ASCII letters.
ODD_NAMES = ("my holiday photo.jpg", "it's \"quoted\".jpg", "été-Ünïcode-日本.jpg")


def photo(name: str = "flower.jpg") -> Image.Image:
    """Return a fixture photo as an RGB image."""
    with Image.open(FIXTURES / name) as image:
        return image.convert("RGB")


def save_cmyk_jpeg(path: Path, source: Image.Image) -> None:
    source.convert("CMYK").save(path, "JPEG", quality=95)


def save_gray16_png(path: Path, source: Image.Image) -> np.ndarray:
    """Save the photo as a 16-bit grey PNG and return the 8-bit grey values it encodes."""
    grey = np.asarray(source.convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(path, "PNG")
    return grey


def save_exif_rotated_jpeg(path: Path, source: Image.Image) -> None:
    """Store the photo turned a quarter left, with EXIF orientation 6 to turn it back."""
    exif = Image.Exif()
    exif[0x0112] = 6
    source.transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", quality=95, exif=exif)


def save_animated_gif(path: Path, first: Image.Image, second: Image.Image) -> None:
    first.save(path, "GIF", save_all=True, append_images=[second.resize(first.size)], duration=100, loop=0)


def save_rgba_png(path: Path, source: Image.Image) -> None:
    """Save the photo with its left half fully transparent."""
    rgba = source.convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, dtype=np.uint8)
    alpha[:, : rgba.width // 2] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(path, "PNG")


def save_truncated_jpeg(path: Path, source: Path) -> None:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def build_bad_folder(root: Path) -> dict[str, int]:
    """Write a folder of good, odd and broken files and return the expected count per status.

    Layout, with the status each file must get::

        good/            the four fixture photos                    ok
        names/           copies of flower.jpg under ODD_NAMES       ok
        formats/         CMYK JPEG, 16-bit PNG, EXIF-rotated JPEG,
                         animated GIF, RGBA PNG, GIF named .jpg     ok
        broken/empty.jpg                                            zero_size
        broken/truncated.jpg                                        truncated
        broken/text.jpg  a text file                                undecodable
        broken/gone.jpg  a symbolic link to a file that is absent   missing
        .hidden.jpg                                                 hidden
        .cache/          a hidden folder, not entered
        __MACOSX/        resource forks, not entered
        formats/loop     a symbolic link back to ``root``, not followed
        notes.txt        not an image, not listed
    """
    good = root / "good"
    good.mkdir(parents=True)
    for source in sorted(FIXTURES.glob("*.jpg")):
        shutil.copyfile(source, good / source.name)

    names = root / "names"
    names.mkdir()
    for name in ODD_NAMES:
        shutil.copyfile(FIXTURES / "flower.jpg", names / name)

    formats = root / "formats"
    formats.mkdir()
    china, flower = photo("china.jpg"), photo("flower.jpg")
    save_cmyk_jpeg(formats / "cmyk.jpg", flower)
    save_gray16_png(formats / "gray16.png", china)
    save_exif_rotated_jpeg(formats / "rotated.jpg", china)
    save_animated_gif(formats / "animated.gif", china, flower)
    save_rgba_png(formats / "rgba.png", flower)
    save_animated_gif(formats / "gif-named.jpg", flower, china)
    os.symlink("..", formats / "loop")

    broken = root / "broken"
    broken.mkdir()
    (broken / "empty.jpg").write_bytes(b"")
    save_truncated_jpeg(broken / "truncated.jpg", FIXTURES / "china.jpg")
    (broken / "text.jpg").write_text("This is a text file with a .jpg name.\n", encoding="utf-8")
    os.symlink(root / "absent.jpg", broken / "gone.jpg")

    shutil.copyfile(FIXTURES / "china.jpg", root / ".hidden.jpg")
    (root / ".cache").mkdir()
    shutil.copyfile(FIXTURES / "china.jpg", root / ".cache" / "thumb.jpg")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._china.jpg").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    (root / "notes.txt").write_text("not an image\n", encoding="utf-8")

    return {
        "ok": 4 + len(ODD_NAMES) + 6,
        "zero_size": 1,
        "truncated": 1,
        "undecodable": 1,
        "missing": 1,
        "hidden": 1,
    }
