"""Feature conditioning: centring, PCA (optionally whitened) and L2 normalisation.

Pretrained features are not isotropic: a few directions carry most of the
variance, and the vector norm varies with image content more than with
class. Centring, PCA whitening and L2 normalisation each change which points
k-means and nearest-neighbour searches consider close. The steps always run
in the order centre, PCA, L2 normalise.
"""

from __future__ import annotations

import logging
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

logger = logging.getLogger(__name__)

__all__ = ["FeatureConditioner", "CONDITIONINGS", "make_conditioner", "l2_normalize"]

#: Named conditioning presets accepted by :func:`make_conditioner`,
#: :class:`eclu.cluster.ImageClusterer` and ``eclu cluster --condition``.
CONDITIONINGS = ("none", "l2", "center-l2", "pca-l2", "pca-whiten-l2")

_PRESETS = {
    "none": {"center": False, "pca": False, "whiten": False, "normalize": False},
    "l2": {"center": False, "pca": False, "whiten": False, "normalize": True},
    "center-l2": {"center": True, "pca": False, "whiten": False, "normalize": True},
    "pca-l2": {"center": True, "pca": True, "whiten": False, "normalize": True},
    "pca-whiten-l2": {"center": True, "pca": True, "whiten": True, "normalize": True},
}

DEFAULT_PCA_COMPONENTS = 128

#: Whitening keeps at most one principal component per this many samples.
WHITEN_SAMPLES_PER_COMPONENT = 4


def l2_normalize(X: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Return the rows of ``X`` scaled to unit Euclidean norm; zero rows stay zero."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, eps)


class FeatureConditioner(TransformerMixin, BaseEstimator):
    """Centre, reduce with PCA (optionally whitened) and L2-normalise embeddings.

    Parameters
    ----------
    center : bool, default=True
        Subtract the mean embedding. PCA always centres, so this only
        matters without PCA.
    n_components : int or None, default=None
        Keep this many principal components; None skips PCA. It is clamped
        to ``min(n_samples, n_features)`` at fit time, and with ``whiten``
        to ``n_samples // 4``.
    whiten : bool, default=False
        Scale each principal component to unit variance. Needs
        ``n_components``.
    normalize : bool, default=True
        Scale every output row to unit L2 norm, applied last.
    random_state : int, default=0
        Seed for the randomised PCA solver used on large inputs.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Mean subtracted before PCA (zeros when nothing is centred).
    components_ : ndarray of shape (n_components_, n_features) or None
        Principal axes, or None without PCA.
    scale_ : ndarray of shape (n_components_,) or None
        Divisor of each component when whitening, else None.
    n_components_ : int
        Output dimension.
    """

    def __init__(
        self,
        center: bool = True,
        n_components: int | None = None,
        whiten: bool = False,
        normalize: bool = True,
        random_state: int = 0,
    ):
        self.center = center
        self.n_components = n_components
        self.whiten = whiten
        self.normalize = normalize
        self.random_state = random_state

    def fit(self, X, y=None):
        """Learn the mean and, with ``n_components``, the principal axes of ``X``."""
        from sklearn.decomposition import PCA

        X = _as_2d(X)
        if self.n_components is not None and (not isinstance(self.n_components, Integral) or self.n_components < 1):
            raise ValueError(f"n_components must be a positive integer or None, got {self.n_components!r}")
        if self.whiten and self.n_components is None:
            raise ValueError("whiten=True needs n_components: whitening is done on principal components")
        self.components_ = None
        self.scale_ = None
        self.mean_ = np.zeros(X.shape[1], dtype=np.float32)
        self.n_components_ = X.shape[1]
        if self.n_components is not None:
            # PCA needs at least one component and cannot exceed the rank bound.
            n = max(1, min(int(self.n_components), X.shape[0], X.shape[1]))
            if self.whiten:
                # Whitening as many components as samples places every sample
                # at the same distance from every other, which leaves nothing
                # to cluster.
                n = max(1, min(n, X.shape[0] // WHITEN_SAMPLES_PER_COMPONENT))
            if n < self.n_components:
                logger.info("Keeping %d principal components instead of %d: the input is %s", n, self.n_components, X.shape)
            pca = PCA(n_components=n, svd_solver="auto", random_state=self.random_state).fit(X)
            self.mean_ = pca.mean_.astype(np.float32)
            self.components_ = pca.components_.astype(np.float32)
            self.n_components_ = n
            if self.whiten:
                variance = pca.explained_variance_.astype(np.float32)
                # Components with no variance are left unscaled instead of
                # being blown up by a division by zero.
                self.scale_ = np.sqrt(np.where(variance > 1e-12, variance, 1.0))
        elif self.center:
            self.mean_ = X.mean(axis=0).astype(np.float32)
        return self

    def transform(self, X):
        """Return the conditioned embeddings as float32."""
        check_is_fitted(self, "mean_")
        X = _as_2d(X)
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features, but the conditioner was fitted on {self.mean_.shape[0]}")
        out = X - self.mean_
        if self.components_ is not None:
            out = out @ self.components_.T
            if self.scale_ is not None:
                out = out / self.scale_
        if self.normalize:
            out = l2_normalize(out)
        return np.ascontiguousarray(out, dtype=np.float32)


def make_conditioner(
    name: str, n_components: int = DEFAULT_PCA_COMPONENTS, random_state: int = 0
) -> FeatureConditioner | None:
    """Build the conditioner of a named preset, or None for ``"none"``.

    Parameters
    ----------
    name : {"none", "l2", "center-l2", "pca-l2", "pca-whiten-l2"}
        ``"pca-*"`` presets centre, keep ``n_components`` principal
        components (whitened for ``"pca-whiten-l2"``) and L2-normalise.
    n_components : int, default=128
        Components kept by the PCA presets.
    random_state : int, default=0
        Seed for the PCA solver.
    """
    if name not in _PRESETS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONINGS)}; got {name!r}")
    preset = _PRESETS[name]
    if not any(preset.values()):
        return None
    return FeatureConditioner(
        center=preset["center"],
        n_components=n_components if preset["pca"] else None,
        whiten=preset["whiten"],
        normalize=preset["normalize"],
        random_state=random_state,
    )


def _as_2d(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    return X
