"""Duplicate detection on real images with known edited copies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from eclu.duplicates import (
    DEFAULT_THRESHOLD,
    find_duplicates,
    group_duplicates,
    pixel_sha256,
)
from eclu.variants import EXPECTED_KIND, VARIANTS, write_variants

FLOWER_SOURCES = ("daisy", "iris", "sunflower", "tigerlily")


def _sample_images_folder(folder: Path) -> dict[str, str]:
    """Write scikit-learn's two sample photos and their edited copies; return each file's source."""
    from sklearn.datasets import load_sample_images

    source_of = {}
    for name, pixels in zip(("china", "flower"), load_sample_images().images):
        original = folder / "originals" / f"{name}.jpg"
        original.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(original, quality=92)
        source_of[f"originals/{name}.jpg"] = (name, None)
        for variant, path in write_variants(original, folder / "copies", stem=name).items():
            source_of[path.relative_to(folder).as_posix()] = (name, variant)
    return source_of


@pytest.fixture(scope="module")
def flower_folder(tmp_path_factory):
    """24 distinct flower photos (2 per species) plus the 8 edited copies of 4 of them."""
    source = shared_path("flowers12")
    folder = tmp_path_factory.mktemp("flowers-with-copies")
    source_of = {}
    for species in sorted(path for path in source.iterdir() if path.is_dir()):
        for image in sorted(species.glob("*.jpg"))[10:80:40]:
            link = folder / "originals" / species.name / image.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(image)
            source_of[f"originals/{species.name}/{image.name}"] = (f"{species.name}/{image.name}", None)
    for species in FLOWER_SOURCES:
        original = sorted((folder / "originals" / species).iterdir())[0]
        stem = f"{species}-{original.stem}"
        for variant, path in write_variants(original, folder / "copies", stem=stem).items():
            source_of[path.relative_to(folder).as_posix()] = (f"{species}/{original.name}", variant)
    return folder, source_of


def _check_groups(report, source_of: dict, n_sources: int) -> None:
    """Check that each source forms one whole group and each copy has its expected kind."""
    groups = [{member.path for member in group.files} for group in report.groups]
    assert len(groups) == n_sources
    for members in groups:
        assert len({source_of[path][0] for path in members}) == 1, f"unrelated images grouped: {sorted(members)}"
        assert len(members) == 1 + len(VARIANTS)
    for group in report.groups:
        for member in group.files:
            variant = source_of[member.path][1]
            expected = "exact_file" if variant is None else EXPECTED_KIND[variant]
            assert member.kind == expected, member.path


@pytest.mark.slow
def test_sample_images_copies_found(tmp_path, lite0, feature_cache):
    source_of = _sample_images_folder(tmp_path / "photos")
    report = find_duplicates(tmp_path / "photos", tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)
    _check_groups(report, source_of, n_sources=2)
    assert report.counts()["duplicates"] == 2 * len(VARIANTS)


@pytest.mark.slow
@pytest.mark.shared
def test_flower_copies_found_no_false_pair(flower_folder, tmp_path, feature_cache, lite0):
    folder, source_of = flower_folder
    report = find_duplicates(folder, tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)
    _check_groups(report, source_of, n_sources=len(FLOWER_SOURCES))
    assert report.threshold == DEFAULT_THRESHOLD
    assert report.n_images == 24 + len(FLOWER_SOURCES) * len(VARIANTS)


@pytest.mark.slow
@pytest.mark.shared
def test_duplicates_csv_and_json(flower_folder, tmp_path, feature_cache, lite0):
    folder, _ = flower_folder
    report = find_duplicates(folder, tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)
    with open(tmp_path / "run" / "duplicates.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["group", "path", "kind", "similarity", "keep"]
    assert len(rows) == len(report.rows())
    assert {row["kind"] for row in rows} == {"exact_file", "exact_pixels", "near"}
    for group in {row["group"] for row in rows}:
        assert [row["keep"] for row in rows if row["group"] == group].count("true") == 1
    payload = json.loads((tmp_path / "run" / "duplicates.json").read_text())
    assert payload["counts"] == report.counts()
    assert payload["threshold"] == DEFAULT_THRESHOLD
    assert [group["keep"] for group in payload["groups"]] == [group.keep.path for group in report.groups]
    # The report only reads: every image is still in place.
    assert sum(1 for path in folder.rglob("*") if path.is_file()) == report.n_images


@pytest.mark.slow
@pytest.mark.shared
def test_thumbnail_check_finds_half_size_copies(flower_folder, tmp_path, feature_cache, lite0):
    folder, source_of = flower_folder
    without = find_duplicates(folder, cache_dir=feature_cache, num_workers=0, thumbnail_threshold=None, backbone=lite0)
    found = {member.path for group in without.groups for member in group.files}
    # Half-size copies of 224 px photos fall below the embedding threshold alone.
    half_copies = {path for path, (_, variant) in source_of.items() if variant == "half"}
    assert half_copies - found


def test_pixel_hash_ignores_format_and_metadata(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).save(tmp_path / "b.bmp")
    Image.fromarray(pixels).save(tmp_path / "c.tiff")
    other = pixels.copy()
    other[0, 0, 0] ^= 1
    Image.fromarray(other).save(tmp_path / "d.png")
    assert pixel_sha256(tmp_path / "a.png") == pixel_sha256(tmp_path / "b.bmp")
    assert pixel_sha256(tmp_path / "a.png") == pixel_sha256(tmp_path / "c.tiff")
    assert pixel_sha256(tmp_path / "a.png") != pixel_sha256(tmp_path / "d.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert pixel_sha256(tmp_path / "broken.png") == ""


def _synthetic_group():
    # Three near-identical vectors and one unrelated one.
    base = np.zeros(8, dtype=np.float32)
    base[0] = 1.0
    other = np.zeros(8, dtype=np.float32)
    other[1] = 1.0
    near = base + np.float32(0.05) * other
    embeddings = np.stack([base, near, base, other])
    paths = ["b/keep.jpg", "a/near.jpg", "c/copy.jpg", "d/other.jpg"]
    hashes = ["h1", "h2", "h1", "h3"]
    return paths, hashes, embeddings


@pytest.mark.parametrize(
    ("keep", "sizes", "file_sizes", "prefixes", "expected"),
    [
        ("pixels", [(10, 10), (20, 20), (10, 10), (5, 5)], [5, 1, 5, 1], (), "a/near.jpg"),
        ("pixels", [(10, 10), (10, 10), (10, 10), (5, 5)], [5, 1, 5, 1], (), "a/near.jpg"),
        ("largest-file", [(10, 10), (20, 20), (10, 10), (5, 5)], [5, 1, 9, 1], (), "c/copy.jpg"),
        ("prefix", [(10, 10), (20, 20), (10, 10), (5, 5)], [5, 1, 5, 1], ("c/", "b/"), "c/copy.jpg"),
        ("prefix", [(10, 10), (20, 20), (10, 10), (5, 5)], [5, 1, 5, 1], ("x/",), "a/near.jpg"),
    ],
)
def test_keep_policies(keep, sizes, file_sizes, prefixes, expected):
    paths, hashes, embeddings = _synthetic_group()
    report = group_duplicates(
        paths, hashes, embeddings, keep=keep, prefixes=prefixes, sizes=sizes, file_sizes=file_sizes
    )
    assert len(report.groups) == 1
    group = report.groups[0]
    assert group.keep.path == expected
    assert {member.path for member in group.files} == {"a/near.jpg", "b/keep.jpg", "c/copy.jpg"}
    kinds = {member.path: member.kind for member in group.files}
    assert kinds["b/keep.jpg"] == "exact_file"
    assert kinds["c/copy.jpg"] == "exact_file"
    assert kinds["a/near.jpg"] == "near"


def test_keep_oldest(tmp_path):
    import os

    paths, hashes, embeddings = _synthetic_group()
    for age, path in enumerate(reversed(paths)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
        os.utime(tmp_path / path, (1_000_000 + age, 1_000_000 + age))
    sizes = [(10, 10)] * 4
    report = group_duplicates(paths, hashes, embeddings, root=tmp_path, keep="oldest", sizes=sizes, thumbnail_threshold=None)
    # reversed order: d/other is oldest, then c/copy.
    assert report.groups[0].keep.path == "c/copy.jpg"


def test_threshold_splits_groups():
    paths, hashes, embeddings = _synthetic_group()
    sizes = [(10, 10)] * 4
    strict = group_duplicates(paths, hashes, embeddings, threshold=0.9999, sizes=sizes, file_sizes=[1] * 4)
    assert [sorted(member.path for member in group.files) for group in strict.groups] == [["b/keep.jpg", "c/copy.jpg"]]


def test_invalid_parameters_rejected():
    paths, hashes, embeddings = _synthetic_group()
    with pytest.raises(ValueError, match="keep must be one of"):
        group_duplicates(paths, hashes, embeddings, keep="newest")
    with pytest.raises(ValueError, match="needs at least one path prefix"):
        group_duplicates(paths, hashes, embeddings, keep="prefix")
    with pytest.raises(ValueError, match="threshold must be in"):
        group_duplicates(paths, hashes, embeddings, threshold=1.5)
    with pytest.raises(ValueError, match="got 4 paths, 3 hashes"):
        group_duplicates(paths, hashes[:3], embeddings)


@pytest.mark.slow
def test_cli_duplicates_writes_report(tmp_path, feature_cache, capsys):
    from eclu.cli import main

    _sample_images_folder(tmp_path / "photos")
    status = main(["duplicates", str(tmp_path / "photos"), "--out", str(tmp_path / "run"), "--cache", str(feature_cache), "--num-workers", "0", "-q"])
    assert status == 0
    output = capsys.readouterr().out
    assert "2 duplicate groups among 18 images" in output
    assert "Nothing was moved" in output
    for name in ("duplicates.csv", "duplicates.json", "manifest.csv", "embeddings.npy", "summary.json"):
        assert (tmp_path / "run" / name).is_file(), name
