"""Tests for eclu.autok: choosing the number of clusters."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from eclu.autok import select_n_clusters


@pytest.mark.parametrize("criterion", ["modularity", "silhouette"])
@pytest.mark.parametrize("centers", [3, 6])
def test_blobs_get_their_count(centers, criterion):
    X, _ = make_blobs(300, 16, centers=centers, cluster_std=1.0, random_state=centers)
    selection = select_n_clusters(X, 12, criterion=criterion)
    assert selection.n_clusters == centers
    assert selection.ks == list(range(2, 13))
    assert len(selection.scores) == len(selection.ks)
    assert selection.criterion == criterion


def test_modularity_of_separate_groups():
    # Three groups far apart: every neighbour edge stays inside a group, so
    # modularity at k = 3 is 1 minus the sum of squared degree shares,
    # close to 1 - 3 * (1/3) ** 2 = 2/3 for three groups of 100.
    X, _ = make_blobs(300, 8, centers=3, cluster_std=0.1, center_box=(-50, 50), random_state=0)
    selection = select_n_clusters(X, 6)
    assert selection.scores[selection.ks.index(3)] == pytest.approx(2 / 3, abs=2e-3)
    assert selection.n_clusters == 3


def test_rejects_unknown_criterion():
    with pytest.raises(ValueError, match="criterion must be one of modularity, silhouette"):
        select_n_clusters(np.eye(5), 3, criterion="gap")


@pytest.mark.parametrize("criterion", ["modularity", "silhouette"])
def test_two_samples_one_cluster(criterion):
    selection = select_n_clusters(np.array([[0.0, 1.0], [1.0, 0.0]]), criterion=criterion)
    assert selection.n_clusters == 1
    assert selection.ks == []


@pytest.mark.parametrize(("criterion", "expected"), [("modularity", 1), ("silhouette", 2)])
def test_three_samples(criterion, expected):
    # Every pair of three samples is a neighbour pair, so no split has a
    # positive modularity. The silhouette prefers the close pair apart.
    selection = select_n_clusters(np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0]]), criterion=criterion)
    assert selection.n_clusters == expected
    assert selection.ks == [2]


@pytest.mark.parametrize("criterion", ["modularity", "silhouette"])
def test_identical_samples_one_cluster(criterion):
    assert select_n_clusters(np.ones((50, 8)), criterion=criterion).n_clusters == 1


def test_range_capped_by_distinct_rows():
    X = np.repeat(np.eye(4), 5, axis=0)
    selection = select_n_clusters(X, 30)
    assert selection.ks[-1] <= 3


def test_selection_rerun_identical():
    X, _ = make_blobs(500, 8, centers=4, random_state=1)
    assert select_n_clusters(X, 8, random_state=2) == select_n_clusters(X, 8, random_state=2)


def test_rejects_small_maximum():
    with pytest.raises(ValueError, match="max_clusters"):
        select_n_clusters(np.eye(5), 1)


def test_clusterer_auto_stores_curve():
    from eclu.cluster import ImageClusterer

    X, _ = make_blobs(200, 8, centers=4, random_state=0)
    clusterer = ImageClusterer("kmeans", "auto", max_clusters=10).fit(X)
    assert clusterer.n_clusters_ == 4
    assert clusterer.k_selection_.n_clusters == 4
    assert clusterer.k_selection_.ks == list(range(2, 11))


@pytest.mark.slow
@pytest.mark.shared
def test_auto_k_on_cifar_run(cifar1000, cifar1000_run, feature_cache, tmp_path):
    from eclu.pipeline import cluster_folder

    run = cluster_folder(cifar1000, tmp_path / "run", n_clusters="auto", cache_dir=feature_cache, report=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    selection = summary["k_selection"]
    assert selection["criterion"] == "modularity"
    assert selection["ks"] == list(range(2, 31))
    # Ten classes that overlap in Lite0's space, where the silhouette chooses 2.
    assert 5 <= selection["n_clusters"] <= 12
    assert len(selection["scores"]) == 29
    assert summary["n_clusters_found"] == selection["n_clusters"]
    best = selection["ks"][int(np.argmax(selection["scores"]))]
    assert selection["n_clusters"] == best
    assert len(run.labels) == 1000
