"""Tests for eclu.bench and ``eclu bench``: the backbone x algorithm table."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from eclu.bench import BenchRow, markdown_table, run_benchmark, write_bench_outputs

pytestmark = [pytest.mark.slow, pytest.mark.shared]


@pytest.fixture(scope="module")
def bench_rows(cifar1000, cifar1000_run, feature_cache):
    # cifar1000_run has filled the feature store, so nothing is embedded again.
    return run_benchmark(
        cifar1000,
        backbones=["efficientnet_lite0", "efficientnet_lite0+efficientnet_lite0"],
        algorithms=["kmeans", "head", "head-agree"],
        condition="pca-l2",
        cache_dir=feature_cache,
        isolate=False,
    )


def test_rows_per_backbone_and_algorithm(bench_rows):
    # head-agree needs two spaces, so the single backbone has no such row.
    assert [(row.backbone, row.algorithm) for row in bench_rows] == [
        ("efficientnet_lite0", "kmeans"),
        ("efficientnet_lite0", "head"),
        ("efficientnet_lite0+efficientnet_lite0", "kmeans"),
        ("efficientnet_lite0+efficientnet_lite0", "head"),
        ("efficientnet_lite0+efficientnet_lite0", "head-agree"),
    ]


def test_rows_scored_on_all_images(bench_rows):
    for row in bench_rows:
        assert row.n_images == 1000
        assert row.n_classes == 10
        assert row.n_clusters == 10
        assert row.n_embedded == 0
        assert row.peak_rss_bytes > 0


def test_accuracy_floors(bench_rows):
    by_name = {(row.backbone, row.algorithm): row for row in bench_rows}
    assert by_name[("efficientnet_lite0", "kmeans")].acc >= 0.42
    assert by_name[("efficientnet_lite0", "head")].acc >= 0.45
    assert by_name[("efficientnet_lite0+efficientnet_lite0", "head-agree")].acc >= 0.40


def test_kmeans_row_matches_clusterer(bench_rows, cifar1000_run):
    from eclu.cluster import ImageClusterer
    from eclu.evaluate import clustering_accuracy

    X = np.load(cifar1000_run.out_dir / "embeddings.npy")
    order = np.argsort(cifar1000_run.paths)
    classes = [cifar1000_run.paths[i].split("/")[0] for i in order]
    labels = ImageClusterer("kmeans", 10, condition="pca-l2", random_state=0).fit_predict(X[order])
    assert bench_rows[0].acc == round(clustering_accuracy(classes, labels), 4)


def test_outputs_written(bench_rows, tmp_path):
    paths = write_bench_outputs(bench_rows, tmp_path, title="cifar1000")
    with open(paths["csv"], newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 5
    assert float(table[1]["acc"]) == bench_rows[1].acc
    markdown = paths["markdown"].read_text().splitlines()
    assert len(markdown) == 2 + 5
    assert markdown[2].startswith("| efficientnet_lite0 | kmeans | pca-l2 |")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_isolated_run_measures_child(cifar1000, cifar1000_run, feature_cache):
    rows = run_benchmark(cifar1000, algorithms=["kmeans"], cache_dir=feature_cache, isolate=True)
    assert len(rows) == 1
    assert rows[0].acc >= 0.38
    assert rows[0].peak_rss_bytes > 50 * 2**20


def test_cli_writes_table(cifar1000, cifar1000_run, feature_cache, tmp_path, capsys):
    from eclu.cli import main

    status = main(
        [
            "bench",
            str(cifar1000),
            "--out",
            str(tmp_path / "bench"),
            "--algorithms",
            "kmeans,birch",
            "--cache",
            str(feature_cache),
            "--in-process",
            "-q",
        ]
    )
    assert status == 0
    assert "birch" in capsys.readouterr().out
    assert (tmp_path / "bench" / "bench.md").read_text().count("\n") == 4


def test_cli_rejects_unknown_algorithm(capsys):
    from eclu.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "x", "--algorithms", "kmeans,dbscan"])
    assert "unknown name 'dbscan'" in capsys.readouterr().err


def test_markdown_has_one_line_per_row():
    row = BenchRow("b", "kmeans", "none", 10, 2, 2, 0, 1.0, 1.0, 1.0, 0.0, 0, 0.1, 2**20)
    lines = markdown_table([row, row]).splitlines()
    assert len(lines) == 4
    assert lines[1].count("---") == 11
