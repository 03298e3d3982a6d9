"""Tests for eclu.export: cluster folders of links or copies, originals left untouched."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from eclu.export import export_clusters
from eclu.outputs import write_clusters
from image_builders import FIXTURES

PATHS = ["a/china.jpg", "a/flower.jpg", "b/china.jpg", "b/deep/flower-detail.jpg", "a/b__c.jpg", "a__b/c.jpg"]
LABELS = [0, 1, 0, 1, 0, 0]


@pytest.fixture
def run(tmp_path):
    """An input folder and a run folder whose clusters.csv lists its six images."""
    input_dir = tmp_path / "input"
    sources = ["china.jpg", "flower.jpg", "china-detail.jpg", "flower-detail.jpg", "china.jpg", "flower.jpg"]
    for path, source in zip(PATHS, sources):
        (input_dir / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / source, input_dir / path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_clusters(run_dir / "clusters.csv", PATHS, np.array(LABELS), np.zeros(len(PATHS)))
    return input_dir, run_dir


def digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_export_links(run):
    input_dir, run_dir = run
    before = digests(input_dir)

    target = export_clusters(run_dir, input_dir, mode="links")

    assert target == run_dir / "clusters"
    assert sorted(p.name for p in (target / "cluster-000").iterdir()) == [
        "a__b__c.jpg",
        "a__b__c~2.jpg",
        "a__china.jpg",
        "b__china.jpg",
    ]
    assert sorted(p.name for p in (target / "cluster-001").iterdir()) == ["a__flower.jpg", "b__deep__flower-detail.jpg"]
    link = target / "cluster-001" / "b__deep__flower-detail.jpg"
    assert link.is_symlink()
    assert link.resolve() == (input_dir / "b/deep/flower-detail.jpg").resolve()
    assert (target / "cluster-000" / "a__b__c.jpg").resolve() == (input_dir / "a/b__c.jpg").resolve()
    assert (target / "cluster-000" / "a__b__c~2.jpg").resolve() == (input_dir / "a__b/c.jpg").resolve()
    assert digests(input_dir) == before


def test_export_copy(run):
    input_dir, run_dir = run
    before = digests(input_dir)

    target = export_clusters(run_dir, input_dir, mode="copy")

    copy = target / "cluster-000" / "b__china.jpg"
    assert not copy.is_symlink()
    assert copy.read_bytes() == (input_dir / "b/china.jpg").read_bytes()
    assert len(list(target.glob("cluster-*/*"))) == 6
    assert digests(input_dir) == before


def test_export_copy_skips_missing_image(run, caplog):
    input_dir, run_dir = run
    (input_dir / "a/flower.jpg").unlink()

    target = export_clusters(run_dir, input_dir, mode="copy")

    assert len(list(target.glob("cluster-*/*"))) == 5
    assert "Cannot copy" in caplog.text


def test_export_replaces_previous_export(run):
    input_dir, run_dir = run
    export_clusters(run_dir, input_dir, mode="copy")
    write_clusters(run_dir / "clusters.csv", PATHS[:2], np.array([0, 0]), np.zeros(2))

    target = export_clusters(run_dir, input_dir, mode="links")

    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == ["cluster-000"]
    assert len(list(target.glob("cluster-*/*"))) == 2
    assert all(p.is_symlink() for p in target.glob("cluster-*/*"))
    assert len(digests(input_dir)) == 6


def test_export_leaves_foreign_folder(run):
    input_dir, run_dir = run
    foreign = run_dir / "clusters"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine\n", encoding="utf-8")

    with pytest.raises(FileExistsError, match="was not written by an ECLU export"):
        export_clusters(run_dir, input_dir)

    assert (foreign / "keep.txt").read_text(encoding="utf-8") == "mine\n"


def test_export_single_file_input(tmp_path):
    image = tmp_path / "only.jpg"
    shutil.copyfile(FIXTURES / "china.jpg", image)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_clusters(run_dir / "clusters.csv", ["only.jpg"], np.array([0]), np.zeros(1))

    target = export_clusters(run_dir, image, mode="links")

    assert (target / "cluster-000" / "only.jpg").resolve() == image.resolve()


def test_export_rejects_mode(run):
    input_dir, run_dir = run

    with pytest.raises(ValueError, match="mode must be 'links' or 'copy'"):
        export_clusters(run_dir, input_dir, mode="move")


def test_export_noise_folder(run):
    input_dir, run_dir = run
    write_clusters(run_dir / "clusters.csv", PATHS, np.array([0, -1, 0, 1, -1, 1]), np.zeros(len(PATHS)))

    target = export_clusters(run_dir, input_dir, mode="links")

    noise = sorted(p.name for p in (target / "cluster-noise").iterdir())
    assert noise == ["a__b__c.jpg", "a__flower.jpg"]
    assert not any(p.name.startswith("cluster--") for p in target.iterdir())
