"""Tests for eclu.conditioning: centring, PCA, whitening and L2 normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from eclu.conditioning import CONDITIONINGS, FeatureConditioner, l2_normalize, make_conditioner


@pytest.fixture
def skewed():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(300, 20)) * np.linspace(0.1, 10, 20) + 5.0).astype(np.float32)


def test_l2_rows_unit_norm(skewed):
    out = FeatureConditioner(center=False, normalize=True).fit_transform(skewed)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_l2_keeps_zero_rows():
    out = l2_normalize(np.zeros((2, 3)))
    assert np.array_equal(out, np.zeros((2, 3), dtype=np.float32))


def test_centring_removes_mean(skewed):
    out = FeatureConditioner(center=True, normalize=False).fit_transform(skewed)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)


def test_pca_whitening_unit_variance(skewed):
    conditioner = FeatureConditioner(n_components=5, whiten=True, normalize=False)
    out = conditioner.fit_transform(skewed)
    assert out.shape == (300, 5)
    assert conditioner.n_components_ == 5
    np.testing.assert_allclose(out.var(axis=0, ddof=1), 1.0, rtol=1e-3)


def test_pca_without_whitening_keeps_variance_order(skewed):
    out = FeatureConditioner(n_components=5, normalize=False).fit_transform(skewed)
    variances = out.var(axis=0)
    assert np.all(np.diff(variances) <= 1e-6)


def test_pca_components_clamped_to_samples():
    X = np.random.default_rng(1).normal(size=(4, 10)).astype(np.float32)
    conditioner = FeatureConditioner(n_components=128).fit(X)
    assert conditioner.n_components_ == 4


def test_whiten_needs_components(skewed):
    with pytest.raises(ValueError, match="whiten=True needs n_components"):
        FeatureConditioner(whiten=True).fit(skewed)


def test_transform_checks_width(skewed):
    conditioner = FeatureConditioner().fit(skewed)
    with pytest.raises(ValueError, match="fitted on 20"):
        conditioner.transform(skewed[:, :5])


def test_presets_build_expected_steps():
    assert make_conditioner("none") is None
    l2 = make_conditioner("l2")
    assert (l2.center, l2.n_components, l2.whiten, l2.normalize) == (False, None, False, True)
    whitened = make_conditioner("pca-whiten-l2", n_components=16)
    assert (whitened.center, whitened.n_components, whitened.whiten, whitened.normalize) == (True, 16, True, True)
    assert set(CONDITIONINGS) == {"none", "l2", "center-l2", "pca-l2", "pca-whiten-l2"}


def test_unknown_preset_rejected():
    with pytest.raises(ValueError, match="condition must be one of"):
        make_conditioner("whiten")


@pytest.mark.slow
@pytest.mark.shared
def test_l2_lifts_kmeans_on_cifar(cifar1000_run):
    from eclu.cluster import ImageClusterer
    from eclu.evaluate import clustering_accuracy

    X = np.load(cifar1000_run.out_dir / "embeddings.npy")
    classes = [path.split("/")[0] for path in cifar1000_run.paths]
    raw = clustering_accuracy(classes, ImageClusterer("kmeans", 10, random_state=0).fit_predict(X))
    conditioned = clustering_accuracy(
        classes, ImageClusterer("kmeans", 10, condition="pca-l2", random_state=0).fit_predict(X)
    )
    assert conditioned >= raw
    assert conditioned >= 0.42


def test_whitening_caps_components_by_samples():
    X = np.random.default_rng(0).normal(size=(60, 300)).astype(np.float32)
    whitened = FeatureConditioner(n_components=128, whiten=True).fit(X)
    plain = FeatureConditioner(n_components=128).fit(X)
    assert whitened.n_components_ == 15
    assert plain.n_components_ == 60
