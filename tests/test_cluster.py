"""Tests for eclu.cluster: the clustering estimator, its edge cases and canonical ids."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.base import clone

from eclu.cluster import ImageClusterer, canonical_labels, centre_distances, nearest_centre
from eclu.embed import embed_entries
from eclu.evaluate import clustering_accuracy, labels_from_folders
from eclu.scan import scan_folder
from eclu.store import FeatureStore


@pytest.fixture(scope="module")
def digits_embeddings(digits_folder, lite0, feature_cache):
    """Embeddings of the 200 digit images and their classes, through the session's feature store."""
    entries = scan_folder(digits_folder)
    store = FeatureStore(feature_cache, lite0.identity())
    records = embed_entries(entries, lite0, store)
    assert all(record.status == "ok" for record in records)
    X = store.get([record.sha256 for record in records])
    classes = labels_from_folders([record.path for record in records])
    return X, np.asarray(classes)


# The scikit-learn algorithms of the core pipeline. The other algorithms have their own tests.
SKLEARN_ALGORITHMS = ("kmeans", "minibatch-kmeans", "birch", "agglomerative")


def assert_canonical(labels: np.ndarray) -> None:
    sizes = np.bincount(labels)
    assert np.all(sizes > 0)
    assert np.all(np.diff(sizes) <= 0), sizes


# Measured on the 200 digits with efficientnet_lite0 and random_state=0: 0.37 to 0.40
# for every algorithm. Ten balanced classes give about 0.15 by chance.
@pytest.mark.parametrize("algorithm", SKLEARN_ALGORITHMS)
def test_algorithm_accuracy_floor(digits_embeddings, algorithm):
    X, classes = digits_embeddings

    model = ImageClusterer(algorithm, n_clusters=10, random_state=0).fit(X)

    assert model.labels_.shape == (200,)
    assert model.n_clusters_ == 10
    assert_canonical(model.labels_)
    assert clustering_accuracy(classes, model.labels_) >= 0.30
    assert model.cluster_centers_.shape == (10, X.shape[1])
    expected = np.linalg.norm(X - model.cluster_centers_[model.labels_], axis=1)
    assert np.allclose(model.distances_, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("algorithm", SKLEARN_ALGORITHMS)
def test_algorithm_is_seeded(digits_embeddings, algorithm):
    X, _ = digits_embeddings

    first = ImageClusterer(algorithm, n_clusters=5, random_state=3).fit_predict(X)
    second = ImageClusterer(algorithm, n_clusters=5, random_state=3).fit_predict(X)

    assert np.array_equal(first, second)


def test_centres_are_member_means(digits_embeddings):
    X, _ = digits_embeddings

    model = ImageClusterer("birch", n_clusters=4).fit(X)

    for cluster in range(model.n_clusters_):
        members = X[model.labels_ == cluster]
        assert np.allclose(model.cluster_centers_[cluster], members.mean(axis=0), atol=1e-4)


@pytest.mark.parametrize("algorithm", ["kmeans", "agglomerative", "birch"])
def test_sample_then_assign_labels_every_point(digits_embeddings, algorithm):
    X, classes = digits_embeddings

    model = ImageClusterer(algorithm, n_clusters=10, max_fit_samples=100, random_state=0).fit(X)

    assert model.labels_.shape == (200,)
    assert model.labels_.min() == 0
    assert model.labels_.max() == model.n_clusters_ - 1
    assert_canonical(model.labels_)
    assert clustering_accuracy(classes, model.labels_) >= 0.25


def test_sample_then_assign_uses_nearest_sample_centre(digits_embeddings):
    X, _ = digits_embeddings
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(X), size=50, replace=False))
    on_sample = ImageClusterer("kmeans", n_clusters=3, random_state=0).fit(X[sample])

    model = ImageClusterer("kmeans", n_clusters=3, max_fit_samples=50, random_state=0).fit(X)

    # The estimator draws the same sample, clusters it, and gives every point
    # the cluster of the nearest sample-cluster mean.
    nearest = nearest_centre(X, on_sample.cluster_centers_)
    assert np.array_equal(model.labels_, canonical_labels(nearest))


def test_zero_images_error():
    with pytest.raises(ValueError, match="no embeddings to cluster"):
        ImageClusterer("kmeans", n_clusters=2).fit(np.zeros((0, 8), dtype=np.float32))


@pytest.mark.parametrize("algorithm", SKLEARN_ALGORITHMS)
def test_one_image(algorithm):
    X = np.ones((1, 8), dtype=np.float32)

    model = ImageClusterer(algorithm, n_clusters=1).fit(X)

    assert model.labels_.tolist() == [0]
    assert model.n_clusters_ == 1
    assert model.distances_.tolist() == [0.0]


def test_more_clusters_than_images_error():
    X = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)

    with pytest.raises(ValueError, match="n_clusters=6 is more than the 5 images") as error:
        ImageClusterer("kmeans", n_clusters=6).fit(X)

    assert "at most 5 clusters" in str(error.value)


@pytest.mark.parametrize("algorithm", SKLEARN_ALGORITHMS)
def test_identical_images_one_cluster(digits_embeddings, algorithm, caplog):
    X, _ = digits_embeddings
    same = np.repeat(X[:1], 20, axis=0)

    with caplog.at_level(logging.WARNING, logger="eclu.cluster"):
        model = ImageClusterer(algorithm, n_clusters=3).fit(same)

    assert model.labels_.tolist() == [0] * 20
    assert model.n_clusters_ == 1
    assert "fewer than the 3 requested" in caplog.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"algorithm": "dbscan"}, "algorithm must be one of"),
        ({"n_clusters": 0}, "n_clusters must be a positive integer"),
        ({"n_clusters": 2.5}, "n_clusters must be a positive integer"),
        ({"n_init": 0}, "n_init must be a positive integer"),
    ],
)
def test_invalid_parameters(params, message):
    X = np.random.default_rng(0).normal(size=(10, 4))

    with pytest.raises(ValueError, match=message):
        ImageClusterer(**params).fit(X)


def test_rejects_one_dimensional_input():
    with pytest.raises(ValueError, match="must be 2-D"):
        ImageClusterer().fit(np.zeros(5))


def test_estimator_clone_and_params():
    model = ImageClusterer("birch", n_clusters=4, random_state=7, max_fit_samples=10)

    copy = clone(model)

    assert copy.get_params() == model.get_params()
    assert copy.get_params()["algorithm"] == "birch"
    assert copy.get_params()["random_state"] == 7


def test_canonical_labels_order():
    assert canonical_labels([5, 5, 2, 2, 2, 9]).tolist() == [1, 1, 0, 0, 0, 2]
    # Equal sizes: the cluster whose first member comes first gets the smaller id.
    assert canonical_labels([3, 3, 1, 1]).tolist() == [0, 0, 1, 1]
    assert canonical_labels([4, -1, 4, 7]).tolist() == [0, -1, 0, 1]
    assert canonical_labels([-1, -1]).tolist() == [-1, -1]


def test_nearest_centre_and_distances_in_blocks():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    centres = rng.normal(size=(4, 3)).astype(np.float32)
    brute = np.linalg.norm(X[:, None] - centres[None], axis=2)

    labels = nearest_centre(X, centres, block=7)
    distances = centre_distances(X, centres, labels, block=7)

    assert np.array_equal(labels, brute.argmin(axis=1))
    assert np.allclose(distances, brute.min(axis=1), atol=1e-5)
