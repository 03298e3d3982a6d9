"""Tests for eclu.scan: which files a folder scan lists, and in what order."""

from __future__ import annotations

import shutil

import pytest

from eclu.scan import scan_folder, sniff_format
from image_builders import FIXTURES, ODD_NAMES, build_bad_folder


@pytest.fixture
def bad_folder(tmp_path):
    root = tmp_path / "input"
    build_bad_folder(root)
    return root


def test_scan_lists_images_sorted(bad_folder):
    entries = scan_folder(bad_folder)
    paths = [entry.path for entry in entries]

    assert paths == sorted(paths)
    assert paths == [
        ".hidden.jpg",
        "broken/empty.jpg",
        "broken/gone.jpg",
        "broken/text.jpg",
        "broken/truncated.jpg",
        "formats/animated.gif",
        "formats/cmyk.jpg",
        "formats/gif-named.jpg",
        "formats/gray16.png",
        "formats/rgba.png",
        "formats/rotated.jpg",
        "good/china-detail.jpg",
        "good/china.jpg",
        "good/flower-detail.jpg",
        "good/flower.jpg",
        *sorted(f"names/{name}" for name in ODD_NAMES),
    ]


def test_scan_marks_only_hidden_files(bad_folder):
    hidden = [entry.path for entry in scan_folder(bad_folder) if entry.hidden]

    assert hidden == [".hidden.jpg"]


def test_scan_include_hidden(bad_folder):
    entries = scan_folder(bad_folder, include_hidden=True)
    paths = [entry.path for entry in entries]

    assert ".cache/thumb.jpg" in paths
    assert not any(entry.hidden for entry in entries)
    assert not any(path.startswith("__MACOSX/") for path in paths)


def test_scan_symlink_loop_ends(bad_folder):
    paths = [entry.path for entry in scan_folder(bad_folder)]

    assert not any("loop" in path for path in paths)
    assert len(paths) == len(set(paths))


def test_scan_absolute_paths_exist(bad_folder):
    for entry in scan_folder(bad_folder):
        if entry.path != "broken/gone.jpg":
            assert entry.absolute.is_file(), entry.path
    gone = [entry for entry in scan_folder(bad_folder) if entry.path == "broken/gone.jpg"]
    assert len(gone) == 1
    assert not gone[0].absolute.exists()


def test_scan_same_name_in_two_folders(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copyfile(FIXTURES / "china.jpg", tmp_path / folder / "IMG_1.jpg")

    paths = [entry.path for entry in scan_folder(tmp_path)]

    assert paths == ["a/IMG_1.jpg", "b/IMG_1.jpg"]


def test_scan_by_content_and_extension_case(tmp_path):
    shutil.copyfile(FIXTURES / "china.jpg", tmp_path / "upper.JPEG")
    shutil.copyfile(FIXTURES / "china.jpg", tmp_path / "no-extension")
    shutil.copyfile(FIXTURES / "china.jpg", tmp_path / "photo.dat")
    (tmp_path / "readme.md").write_text("# not an image\n", encoding="utf-8")

    paths = [entry.path for entry in scan_folder(tmp_path)]

    assert paths == ["no-extension", "photo.dat", "upper.JPEG"]


def test_scan_single_file(tmp_path):
    target = tmp_path / "one.jpg"
    shutil.copyfile(FIXTURES / "china.jpg", target)

    entries = scan_folder(target)

    assert [entry.path for entry in entries] == ["one.jpg"]
    assert entries[0].absolute == target.resolve()


def test_scan_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="input folder not found"):
        scan_folder(tmp_path / "absent")


def test_scan_empty_folder(tmp_path):
    assert scan_folder(tmp_path) == []


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", "PNG"),
        (b"GIF89a\x01\x00\x01\x00", "GIF"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"BM\x00\x00\x00\x00\x00\x00", "BMP"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b"\x00\x00\x00\x1cftypavif", "AVIF"),
        (b"\x00\x00\x00\x18ftypheic", "HEIF"),
        (b"hello, world", None),
        (b"", None),
    ],
)
def test_sniff_format(head, expected):
    assert sniff_format(head) == expected


def test_scan_skips_output_folders(tmp_path):
    root = tmp_path / "input"
    (root / "photos").mkdir(parents=True)
    shutil.copy(FIXTURES / "china.jpg", root / "photos" / "a.jpg")
    run = root / "run"
    (run / "report" / "thumbs").mkdir(parents=True)
    shutil.copy(FIXTURES / "china.jpg", run / "report" / "thumbs" / "t.jpg")
    cache = root / "cache"
    cache.mkdir()
    shutil.copy(FIXTURES / "china.jpg", cache / "c.jpg")

    assert [entry.path for entry in scan_folder(root)] == ["cache/c.jpg", "photos/a.jpg", "run/report/thumbs/t.jpg"]
    assert [entry.path for entry in scan_folder(root, exclude=[run, cache])] == ["photos/a.jpg"]

    (run / "manifest.csv").write_text("path\n", encoding="utf-8")
    (run / "summary.json").write_text("{}", encoding="utf-8")
    assert [entry.path for entry in scan_folder(root)] == ["cache/c.jpg", "photos/a.jpg"]


def test_sniff_text_starting_with_p6(tmp_path):
    assert sniff_format(b"P6 hello world!") is not None
    assert sniff_format(b"P6hello world") is None
    assert sniff_format(b"Pictures of cats") is None


def test_scan_skips_fifo_with_warning(tmp_path, caplog):
    import os

    shutil.copy(FIXTURES / "china.jpg", tmp_path / "china.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    with caplog.at_level("WARNING", logger="eclu.scan"):
        entries = scan_folder(tmp_path)
    assert [entry.path for entry in entries] == ["china.jpg"]
    assert "pipe.jpg: not a regular file" in caplog.text
