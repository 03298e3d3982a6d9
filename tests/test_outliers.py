"""Outlier ranking: line drawings among photos rank first."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from conftest import shared_path
from eclu.collection import embed_folder
from eclu.outliers import find_outliers, outlier_scores


@pytest.fixture(scope="module")
def flowers_and_digits(tmp_path_factory, digits_folder):
    """24 flower photos, two digit drawings and a byte copy of one of them."""
    source = shared_path("flowers12")
    folder = tmp_path_factory.mktemp("flowers-and-digits")
    for species in sorted(path for path in source.iterdir() if path.is_dir()):
        for image in sorted(species.glob("*.jpg"))[10:80:40]:
            (folder / "flowers").mkdir(exist_ok=True)
            (folder / "flowers" / f"{species.name}-{image.name}").symlink_to(image)
    (folder / "drawings").mkdir()
    digits = sorted(digits_folder.rglob("*.png"))
    shutil.copyfile(digits[0], folder / "drawings" / "first.png")
    shutil.copyfile(digits[0], folder / "drawings" / "first-copy.png")
    shutil.copyfile(digits[-1], folder / "drawings" / "last.png")
    return folder


@pytest.mark.slow
@pytest.mark.shared
def test_drawings_rank_first(flowers_and_digits, tmp_path, feature_cache, lite0):
    embed_folder(flowers_and_digits, tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)
    ranking = find_outliers(tmp_path / "run", k=5)
    assert set(ranking.paths[:3]) == {"drawings/first.png", "drawings/first-copy.png", "drawings/last.png"}
    assert len(ranking.paths) == 27
    assert np.all(np.diff(ranking.scores) <= 0)
    # A byte copy does not hide the image it copies: both get the same score.
    scores = dict(zip(ranking.paths, ranking.scores))
    assert scores["drawings/first.png"] == scores["drawings/first-copy.png"]

    with open(tmp_path / "run" / "outliers.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["rank", "path", "score"]
    assert [int(row["rank"]) for row in rows] == list(range(1, 28))
    assert [row["path"] for row in rows] == ranking.paths
    assert ranking.top(2) == [(1, ranking.paths[0], float(ranking.scores[0])), (2, ranking.paths[1], float(ranking.scores[1]))]


@pytest.mark.slow
@pytest.mark.shared
def test_cli_outliers_prints_top(flowers_and_digits, tmp_path, feature_cache, lite0, capsys):
    from eclu.cli import main

    embed_folder(flowers_and_digits, tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)
    assert main(["outliers", str(tmp_path / "run"), "--top", "3", "-k", "5", "-q"]) == 0
    output = capsys.readouterr().out.splitlines()
    assert output[0].split() == ["rank", "path", "score"]
    assert {line.split()[1] for line in output[2:5]} == {"drawings/first.png", "drawings/first-copy.png", "drawings/last.png"}
    assert "All 27 images, ranked" in output[5]


def test_scores_on_synthetic_embeddings():
    rng = np.random.default_rng(0)
    cluster = rng.normal(0, 0.05, size=(30, 8)) + np.eye(8)[0]
    lonely = np.eye(8)[5][None, :]
    scores = outlier_scores(np.vstack([cluster, lonely]), k=3)
    assert int(np.argmax(scores)) == 30
    assert scores[30] > 0.9
    assert np.all(scores[:30] < 0.1)


def test_scores_reject_bad_input():
    with pytest.raises(ValueError, match="k must be at least 1"):
        outlier_scores(np.ones((3, 2)), k=0)
    with pytest.raises(ValueError, match="at least 2 distinct images"):
        outlier_scores(np.ones((3, 2)), hashes=["a", "a", "a"])
