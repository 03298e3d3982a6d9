"""Tests for eclu.heads: neighbour mining and trained clustering heads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from eclu.heads import ClusteringHead, mine_neighbors


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(400, 24, centers=4, cluster_std=2.0, random_state=3)
    return X.astype(np.float32), y


def test_neighbors_exclude_self(blobs):
    X, _ = blobs
    neighbors = mine_neighbors(X, 5)
    assert neighbors.shape == (400, 5)
    assert not np.any(neighbors == np.arange(400)[:, None])


def test_neighbors_of_duplicates_exclude_self():
    X = np.ones((6, 3), dtype=np.float32)
    neighbors = mine_neighbors(X, 3)
    assert neighbors.shape == (6, 3)
    assert not np.any(neighbors == np.arange(6)[:, None])


def test_neighbors_clamped_to_samples():
    X = np.eye(3, dtype=np.float32)
    assert mine_neighbors(X, 10).shape == (3, 2)


def test_neighbors_are_nearest_by_cosine():
    X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    neighbors = mine_neighbors(X, 1)
    assert neighbors[:, 0].tolist() == [1, 0, 3, 2]


def test_head_recovers_blobs(blobs):
    X, y = blobs
    head = ClusteringHead(4, epochs=40, random_state=0).fit(X)
    assert adjusted_rand_score(y, head.labels_) >= 0.95
    assert head.head_losses_.shape == (1, 8)
    assert head.best_head_ == int(head.head_losses_.sum(axis=0).argmin())
    np.testing.assert_allclose(head.probabilities_.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("options", [{"loss": "scan"}, {"hidden_dim": 32}, {"self_label": True}])
def test_head_variants_recover_blobs(blobs, options):
    X, y = blobs
    labels = ClusteringHead(4, epochs=40, random_state=0, **options).fit_predict(X)
    assert adjusted_rand_score(y, labels) >= 0.9


def test_head_rerun_identical(blobs):
    X, _ = blobs
    first = ClusteringHead(4, epochs=10, random_state=7).fit(X)
    second = ClusteringHead(4, epochs=10, random_state=7).fit(X)
    assert np.array_equal(first.labels_, second.labels_)
    assert np.array_equal(first.probabilities_, second.probabilities_)


def test_head_views_agree(blobs):
    X, y = blobs
    rng = np.random.default_rng(0)
    other = X @ rng.normal(size=(24, 16)).astype(np.float32)
    head = ClusteringHead(4, epochs=40, random_state=0).fit([X, other])
    assert head.head_losses_.shape == (2, 8)
    assert adjusted_rand_score(y, head.labels_) >= 0.9


def test_head_views_need_same_rows(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="same rows"):
        ClusteringHead(4).fit([X, X[:10]])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loss": "dino"}, "loss must be one of"),
        ({"n_heads": 0}, "n_heads must be a positive integer"),
        ({"hidden_dim": -1}, "hidden_dim must be 0"),
        ({"confidence": 1.5}, "confidence must be between"),
        ({"temperature": 0}, "temperature must be positive"),
        ({"n_clusters": 500}, "more than the 400 samples"),
    ],
)
def test_head_rejects_bad_parameters(blobs, options, message):
    X, _ = blobs
    with pytest.raises(ValueError, match=message):
        ClusteringHead(**{"n_clusters": 4, **options}).fit(X)


@pytest.mark.slow
@pytest.mark.shared
def test_head_beats_kmeans_on_cifar(cifar1000_run):
    from eclu.cluster import ImageClusterer
    from eclu.evaluate import clustering_accuracy

    X = np.load(cifar1000_run.out_dir / "embeddings.npy")
    classes = [path.split("/")[0] for path in cifar1000_run.paths]
    kmeans = ImageClusterer("kmeans", 10, condition="pca-l2", random_state=0).fit_predict(X)
    head = ImageClusterer("head", 10, condition="pca-l2", random_state=0).fit_predict(X)
    kmeans_acc = clustering_accuracy(classes, kmeans)
    head_acc = clustering_accuracy(classes, head)
    assert head_acc >= 0.45
    assert head_acc >= kmeans_acc
    rerun = ImageClusterer("head", 10, condition="pca-l2", random_state=0).fit_predict(X)
    assert np.array_equal(head, rerun)
