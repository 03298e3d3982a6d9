"""Tests for eclu.evaluate: clustering accuracy, NMI, ARI and where labels come from."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from eclu.evaluate import ClusteringScores, clustering_accuracy, labels_from_csv, labels_from_folders, score_clustering


def test_accuracy_perfect_under_renaming():
    classes = ["cat", "cat", "dog", "dog", "ship"]
    clusters = [7, 7, 3, 3, 0]

    assert clustering_accuracy(classes, clusters) == 1.0


def test_accuracy_best_one_to_one_matching():
    classes = [0, 0, 0, 1, 1, 1]
    clusters = [1, 1, 0, 0, 0, 0]
    # Cluster 1 matches class 0 (2 images), cluster 0 matches class 1 (3 images).

    assert clustering_accuracy(classes, clusters) == pytest.approx(5 / 6)


def test_accuracy_extra_clusters_count_as_wrong():
    classes = [0, 0, 0, 0]
    clusters = [0, 0, 1, 2]

    assert clustering_accuracy(classes, clusters) == 0.5


def test_accuracy_fewer_clusters_than_classes():
    classes = [0, 1, 2, 3]
    clusters = [0, 0, 0, 0]

    assert clustering_accuracy(classes, clusters) == 0.25


def test_accuracy_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        clustering_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty clustering"):
        clustering_accuracy([], [])


def test_score_clustering_matches_scikit_learn():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 4, size=300)
    clusters = np.where(rng.random(300) < 0.7, classes, rng.integers(0, 5, size=300))

    scores = score_clustering(classes, clusters)

    assert isinstance(scores, ClusteringScores)
    assert scores.nmi == pytest.approx(normalized_mutual_info_score(classes, clusters))
    assert scores.ari == pytest.approx(adjusted_rand_score(classes, clusters))
    assert scores.acc == pytest.approx(clustering_accuracy(classes, clusters))
    assert 0.7 < scores.acc < 0.9
    assert (scores.n_images, scores.n_classes, scores.n_clusters) == (300, 4, 5)
    assert scores.as_dict() == {
        "acc": scores.acc,
        "nmi": scores.nmi,
        "ari": scores.ari,
        "n_images": 300,
        "n_classes": 4,
        "n_clusters": 5,
    }


def test_labels_from_folders():
    paths = ["cat/1.jpg", "dog/sub/2.jpg", "loose.jpg"]

    assert labels_from_folders(paths) == ["cat", "dog", None]


def test_labels_from_csv(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text('path,label,extra\ncat/1.jpg,cat,x\n"b\\2 é.jpg",dog,y\n', encoding="utf-8")

    labels = labels_from_csv(table, ["cat/1.jpg", "b/2 é.jpg", "unknown.jpg"])

    assert labels == ["cat", "dog", None]


def test_labels_from_csv_needs_columns(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("file,class\na.jpg,cat\n", encoding="utf-8")

    with pytest.raises(ValueError, match="columns 'path' and 'label'"):
        labels_from_csv(table, ["a.jpg"])
