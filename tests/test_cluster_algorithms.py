"""Tests for the conditioning, head, spectral and HDBSCAN options of ImageClusterer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from eclu.cluster import ALGORITHMS, ImageClusterer


@pytest.fixture(scope="module")
def blobs_with_outliers():
    X, y = make_blobs(300, 8, centers=3, cluster_std=0.5, random_state=0)
    rng = np.random.default_rng(0)
    outliers = rng.uniform(-40, 40, size=(6, 8))
    return np.vstack([X, outliers]).astype(np.float32), np.concatenate([y, np.full(6, -1)])


def test_new_algorithms_listed():
    assert {"head", "spectral", "hdbscan"} <= set(ALGORITHMS)


def test_spectral_recovers_blobs(blobs_with_outliers):
    X, y = blobs_with_outliers
    clusterer = ImageClusterer("spectral", 3, random_state=0).fit(X[:300])
    assert adjusted_rand_score(y[:300], clusterer.labels_) == 1.0
    assert clusterer.n_clusters_ == 3


def test_hdbscan_labels_noise(blobs_with_outliers):
    X, y = blobs_with_outliers
    clusterer = ImageClusterer("hdbscan", 3, min_cluster_size=20, random_state=0).fit(X)
    labels = clusterer.labels_
    assert clusterer.n_clusters_ == 3
    assert clusterer.n_noise_ == int((labels == -1).sum())
    assert adjusted_rand_score(y[:300], labels[:300]) >= 0.95
    assert np.all(np.isnan(clusterer.distances_[labels == -1]))
    assert np.all(np.isfinite(clusterer.distances_[labels >= 0]))
    assert clusterer.cluster_centers_.shape == (3, 8)


def test_hdbscan_rerun_identical(blobs_with_outliers):
    X, _ = blobs_with_outliers
    first = ImageClusterer("hdbscan", 3, random_state=1).fit_predict(X)
    second = ImageClusterer("hdbscan", 3, random_state=1).fit_predict(X)
    assert np.array_equal(first, second)


def test_head_algorithm_canonical_ids(blobs_with_outliers):
    X, y = blobs_with_outliers
    clusterer = ImageClusterer("head", 3, condition="l2", random_state=0).fit(X[:300])
    sizes = np.bincount(clusterer.labels_)
    assert adjusted_rand_score(y[:300], clusterer.labels_) == 1.0
    assert list(sizes) == sorted(sizes, reverse=True)


def test_head_empty_clusters_warning(caplog):
    X, _ = make_blobs(40, 8, centers=2, random_state=0)
    with caplog.at_level("WARNING", logger="eclu.cluster"):
        clusterer = ImageClusterer("head", 10, random_state=0).fit(X)
    assert clusterer.n_clusters_ == 8
    assert "the clustering head left the others empty" in caplog.text
    assert "too few distinct values" not in caplog.text


def test_condition_changes_centre_space(blobs_with_outliers):
    X, _ = blobs_with_outliers
    clusterer = ImageClusterer("kmeans", 3, condition="pca-l2", pca_components=4).fit(X)
    assert clusterer.cluster_centers_.shape == (3, 4)
    assert clusterer.conditioner_.n_components_ == 4


def test_unknown_condition_rejected(blobs_with_outliers):
    X, _ = blobs_with_outliers
    with pytest.raises(ValueError, match="condition must be one of"):
        ImageClusterer("kmeans", 3, condition="zca").fit(X)


def test_auto_rejects_other_strings(blobs_with_outliers):
    X, _ = blobs_with_outliers
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        ImageClusterer("kmeans", "many").fit(X)


@pytest.mark.parametrize("algorithm", ["head", "spectral", "hdbscan"])
def test_identical_embeddings_one_cluster(algorithm):
    X = np.ones((20, 5), dtype=np.float32)
    clusterer = ImageClusterer(algorithm, 3).fit(X)
    assert clusterer.labels_.tolist() == [0] * 20


@pytest.mark.slow
@pytest.mark.shared
def test_spectral_floor_on_cifar(cifar1000_run):
    from eclu.evaluate import clustering_accuracy

    X = np.load(cifar1000_run.out_dir / "embeddings.npy")
    classes = [path.split("/")[0] for path in cifar1000_run.paths]
    labels = ImageClusterer("spectral", 10, condition="pca-l2", random_state=0).fit_predict(X)
    assert clustering_accuracy(classes, labels) >= 0.44
