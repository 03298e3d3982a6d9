"""FAISS k-means: inertia against scikit-learn, canonical labels, engine choice."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from eclu._faiss_kmeans import (
    FAISS_AUTO_MIN_SAMPLES,
    faiss_kmeans,
    greedy_kmeans_plusplus,
    resolve_cluster_engine,
)
from eclu.cluster import ImageClusterer


def _blobs(n_samples=3000, n_centres=12, dim=64, seed=0, spread=3.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(n_centres, dim))
    members = rng.integers(0, n_centres, size=n_samples)
    X = centres[members] + rng.normal(size=(n_samples, dim))
    return X.astype(np.float32), members


def test_faiss_inertia_within_one_percent_of_sklearn():
    X, _ = _blobs()
    result = faiss_kmeans(X, 12, n_init=3, random_state=0)
    reference = KMeans(12, n_init=3, random_state=0).fit(X)
    assert result.inertia <= reference.inertia_ * 1.01
    assert result.labels.shape == (len(X),)
    assert result.centroids.shape == (12, X.shape[1])


def test_faiss_inertia_is_sum_of_squared_distances():
    X, _ = _blobs(n_samples=500, n_centres=5, dim=16)
    result = faiss_kmeans(X, 5, n_init=2, random_state=1)
    squared = ((X - result.centroids[result.labels]) ** 2).sum()
    assert result.inertia == pytest.approx(float(squared), rel=1e-4)


def test_faiss_recovers_separated_blobs():
    X, members = _blobs(n_samples=1200, n_centres=6, dim=32)
    labels = faiss_kmeans(X, 6, n_init=2, random_state=0).labels
    # Each true blob maps to exactly one cluster.
    for blob in range(6):
        assert len(np.unique(labels[members == blob])) == 1
    assert len(np.unique(labels)) == 6


def test_faiss_kmeans_rejects_too_many_clusters():
    X, _ = _blobs(n_samples=10, n_centres=2, dim=4)
    with pytest.raises(ValueError, match="n_clusters"):
        faiss_kmeans(X, 11)


def test_clusterer_faiss_labels_are_canonical():
    X, _ = _blobs(n_samples=2000, n_centres=8, dim=32, seed=3)
    clusterer = ImageClusterer("kmeans", 8, engine="faiss", n_init=2, random_state=0).fit(X)
    sizes = np.bincount(clusterer.labels_)
    assert clusterer.n_clusters_ == 8
    assert list(sizes) == sorted(sizes, reverse=True)
    assert clusterer.labels_.min() == 0
    assert clusterer.cluster_centers_.shape == (8, 32)
    expected = np.linalg.norm(X - clusterer.cluster_centers_[clusterer.labels_], axis=1)
    np.testing.assert_allclose(clusterer.distances_, expected, rtol=1e-4, atol=1e-4)


def test_clusterer_faiss_same_seed_same_labels():
    X, _ = _blobs(n_samples=1500, n_centres=10, dim=16, seed=4)
    first = ImageClusterer("kmeans", 10, engine="faiss", n_init=2, random_state=7).fit_predict(X)
    second = ImageClusterer("kmeans", 10, engine="faiss", n_init=2, random_state=7).fit_predict(X)
    np.testing.assert_array_equal(first, second)


def test_clusterer_faiss_agrees_with_sklearn_on_blobs():
    X, _ = _blobs(n_samples=1500, n_centres=6, dim=16, seed=5, spread=10.0)
    faiss_labels = ImageClusterer("kmeans", 6, engine="faiss", n_init=2).fit_predict(X)
    sklearn_labels = ImageClusterer("kmeans", 6, engine="sklearn", n_init=2).fit_predict(X)
    np.testing.assert_array_equal(faiss_labels, sklearn_labels)


def test_resolve_auto_uses_faiss_above_threshold():
    assert resolve_cluster_engine("auto", "kmeans", FAISS_AUTO_MIN_SAMPLES) == "faiss"
    assert resolve_cluster_engine("auto", "kmeans", FAISS_AUTO_MIN_SAMPLES - 1) == "sklearn"
    assert resolve_cluster_engine("auto", "birch", 10 * FAISS_AUTO_MIN_SAMPLES) == "sklearn"
    assert resolve_cluster_engine("sklearn", "kmeans", 10 * FAISS_AUTO_MIN_SAMPLES) == "sklearn"


def test_resolve_rejects_faiss_for_birch():
    with pytest.raises(ValueError, match="kmeans"):
        resolve_cluster_engine("faiss", "birch", 100)


def test_clusterer_rejects_unknown_engine():
    X, _ = _blobs(n_samples=50, n_centres=2, dim=4)
    with pytest.raises(ValueError, match="cluster engine"):
        ImageClusterer("kmeans", 2, engine="gpu").fit(X)


def test_greedy_seeds_are_distinct_rows():
    X, _ = _blobs(n_samples=400, n_centres=4, dim=8)
    seeds = greedy_kmeans_plusplus(X, 10, np.random.default_rng(0))
    assert seeds.shape == (10, 8)
    assert len(np.unique(seeds, axis=0)) == 10
    rows = {tuple(row) for row in X}
    assert all(tuple(seed) in rows for seed in seeds)


def test_greedy_seeds_on_identical_points():
    X = np.ones((20, 3), dtype=np.float32)
    seeds = greedy_kmeans_plusplus(X, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(seeds, np.ones((3, 3), dtype=np.float32))
