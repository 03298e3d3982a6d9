"""Cluster: one scikit-learn style estimator over several clustering algorithms."""

from __future__ import annotations

import logging
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import ConvergenceWarning

from ._faiss_kmeans import faiss_kmeans, resolve_cluster_engine
from .autok import K_CRITERIA, select_n_clusters
from .conditioning import CONDITIONINGS, make_conditioner
from .graph_clustering import hdbscan_umap_labels, spectral_knn_labels

logger = logging.getLogger(__name__)

__all__ = ["ImageClusterer", "ALGORITHMS", "canonical_labels"]

#: Algorithm names accepted by :class:`ImageClusterer`.
ALGORITHMS = ("kmeans", "minibatch-kmeans", "birch", "agglomerative", "head", "spectral", "hdbscan")

# Largest inputs fitted directly; above them a random sample is fitted and
# every point is assigned to the nearest centroid of the sample's clusters.
# Agglomerative clustering needs memory quadratic in the number of points
# (a 20,000-point Ward tree uses about 3 GB); BIRCH grows with the number
# of subclusters. With the default threshold on 1280-d embeddings BIRCH
# took 915 MiB more for 10,000 points (benchmarks/fit_limits.py), so its
# limit is 20,000. Spectral clustering's eigensolver slows down sharply on
# larger kNN graphs.
DEFAULT_FIT_LIMITS = {"agglomerative": 20_000, "birch": 20_000, "spectral": 50_000}


class ImageClusterer(ClusterMixin, BaseEstimator):
    """Cluster embeddings with a named algorithm and canonical cluster ids.

    Cluster ids are ordered by size, largest first (ties by the position of
    the first member), so the same input and ``random_state`` always give
    the same ids.

    Parameters
    ----------
    algorithm : str, default="kmeans"
        One of :data:`ALGORITHMS`. ``"kmeans"``, ``"minibatch-kmeans"``,
        ``"birch"`` and ``"agglomerative"`` (Ward) come from scikit-learn.
        ``"head"`` trains clustering heads on nearest-neighbour pairs, see
        :class:`eclu.heads.ClusteringHead`. ``"spectral"`` runs spectral
        clustering on the cosine kNN graph. ``"hdbscan"`` runs HDBSCAN on a
        10-dimensional UMAP projection and finds its own number of clusters;
        points it leaves out get the label -1 (noise).
    n_clusters : int or "auto", default=8
        Number of clusters. It may not exceed the number of samples. Fewer
        clusters come back when there are fewer distinct embeddings.
        ``"auto"`` chooses k with :func:`eclu.autok.select_n_clusters` on
        the conditioned embeddings. ``"hdbscan"`` uses it only to size the
        default ``min_cluster_size``.
    random_state : int, default=0
        Seed for k-means initialisation and for sampling.
    n_init : int, default=10
        Restarts of k-means (``"minibatch-kmeans"`` uses at most 3).
    max_fit_samples : int, optional
        Fit on a random sample of this size and assign the other points to
        the nearest centroid. Default: 20,000 for agglomerative and for
        BIRCH, no limit for the k-means variants.
    birch_threshold : float, optional
        BIRCH subcluster radius. Default: half the median distance from a
        point to its nearest neighbour, measured on up to 2,000 points, so
        the threshold follows the scale of the embeddings.
    engine : {"auto", "sklearn", "faiss"}, default="auto"
        k-means implementation. ``"faiss"`` runs FAISS's Lloyd iterations
        from greedy k-means++ seeds, ``n_init`` restarts, for
        ``algorithm="kmeans"`` only. ``"auto"`` uses FAISS for k-means from
        50,000 samples on and scikit-learn otherwise.

    condition : str, default="none"
        Feature conditioning before clustering, one of
        :data:`eclu.conditioning.CONDITIONINGS` (centring, PCA with or
        without whitening, L2 normalisation).
    pca_components : int, default=128
        Principal components kept by the ``"pca-*"`` conditionings.
    max_clusters : int, default=30
        Largest k tried by ``n_clusters="auto"``.
    k_criterion : {"modularity", "silhouette"}, default="modularity"
        Score that ``n_clusters="auto"`` maximises, see
        :func:`eclu.autok.select_n_clusters`.
    min_cluster_size : int, optional
        Smallest HDBSCAN cluster. Default: 1/4 of the mean cluster size
        for ``n_clusters`` clusters (``n_clusters="auto"`` counts as 10),
        at least 5.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Canonical cluster id of each sample; -1 marks HDBSCAN noise.
    cluster_centers_ : ndarray of shape (n_found, n_features)
        Mean of each cluster's members, indexed by cluster id, in the
        conditioned space.
    distances_ : ndarray of shape (n_samples,)
        Euclidean distance of each sample to its cluster's centre in the
        conditioned space; NaN for noise.
    k_selection_ : KSelection or None
        The score curve of ``n_clusters="auto"``, else None.
    n_noise_ : int
        Samples labelled -1.
    n_clusters_ : int
        Number of clusters found.
    """

    def __init__(
        self,
        algorithm: str = "kmeans",
        n_clusters: int = 8,
        *,
        random_state: int = 0,
        n_init: int = 10,
        max_fit_samples: int | None = None,
        birch_threshold: float | None = None,
        engine: str = "auto",
        condition: str = "none",
        pca_components: int = 128,
        max_clusters: int = 30,
        k_criterion: str = "modularity",
        min_cluster_size: int | None = None,
    ):
        self.algorithm = algorithm
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.n_init = n_init
        self.max_fit_samples = max_fit_samples
        self.birch_threshold = birch_threshold
        self.engine = engine
        self.condition = condition
        self.pca_components = pca_components
        self.max_clusters = max_clusters
        self.k_criterion = k_criterion
        self.min_cluster_size = min_cluster_size

    def _validate(self, n_samples: int) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {self.algorithm!r}")
        resolve_cluster_engine(self.engine, self.algorithm, n_samples)
        if self.condition not in CONDITIONINGS:
            raise ValueError(f"condition must be one of {', '.join(CONDITIONINGS)}; got {self.condition!r}")
        if not isinstance(self.max_clusters, Integral) or self.max_clusters < 2:
            raise ValueError(f"max_clusters must be an integer of at least 2, got {self.max_clusters!r}")
        if self.k_criterion not in K_CRITERIA:
            raise ValueError(f"k_criterion must be one of {', '.join(K_CRITERIA)}; got {self.k_criterion!r}")
        if isinstance(self.n_clusters, str) and self.n_clusters == "auto":
            if n_samples == 0:
                raise ValueError("there are no embeddings to cluster: no image was decoded")
            return
        if not isinstance(self.n_clusters, Integral) or self.n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive integer or 'auto', got {self.n_clusters!r}")
        if not isinstance(self.n_init, Integral) or self.n_init < 1:
            raise ValueError(f"n_init must be a positive integer, got {self.n_init!r}")
        if n_samples == 0:
            raise ValueError("there are no embeddings to cluster: no image was decoded")
        if self.n_clusters > n_samples:
            raise ValueError(
                f"n_clusters={self.n_clusters} is more than the {n_samples} images to cluster; "
                f"ask for at most {n_samples} clusters"
            )

    def fit(self, X, y=None):
        """Cluster ``X`` of shape (n_samples, n_features)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        self._validate(len(X))

        conditioner = make_conditioner(self.condition, self.pca_components, self.random_state)
        if conditioner is not None:
            X = conditioner.fit_transform(X)
        self.conditioner_ = conditioner
        self.k_selection_ = None
        self._k = self.n_clusters
        if isinstance(self.n_clusters, str):
            self.k_selection_ = select_n_clusters(
                X, self.max_clusters, criterion=self.k_criterion, random_state=self.random_state
            )
            self._k = self.k_selection_.n_clusters

        # Identical embeddings form one cluster. Ward linkage would otherwise
        # split them into arbitrary groups of equal points.
        all_identical = np.array_equal(X.min(axis=0), X.max(axis=0))
        if len(X) == 1 or self._k == 1 or all_identical:
            raw = np.zeros(len(X), dtype=np.int64)
        else:
            raw = self._fit_raw(X)
        self.labels_ = canonical_labels(raw)
        self.n_noise_ = int((self.labels_ < 0).sum())
        self.n_clusters_ = int(self.labels_.max()) + 1
        if self.algorithm == "head" and self.n_clusters_ < self._k:
            # A trained head can leave clusters empty on any input.
            logger.warning(
                "Found %d clusters, fewer than the %d requested: the clustering head left the others empty; "
                "try another random_state or condition, or more images",
                self.n_clusters_,
                self._k,
            )
        elif self.algorithm != "hdbscan" and self.n_clusters_ < self._k:
            logger.warning(
                "Found %d clusters, fewer than the %d requested: the embeddings have too few distinct values",
                self.n_clusters_,
                self._k,
            )
        self.cluster_centers_ = _cluster_means(X, self.labels_, self.n_clusters_)
        self.distances_ = centre_distances(X, self.cluster_centers_, self.labels_)
        return self

    def fit_predict(self, X, y=None):
        """Cluster ``X`` and return the canonical labels."""
        return self.fit(X).labels_

    def _fit_raw(self, X: np.ndarray) -> np.ndarray:
        limit = self.max_fit_samples
        if limit is None:
            limit = DEFAULT_FIT_LIMITS.get(self.algorithm)
        if limit is not None and len(X) > limit:
            rng = np.random.default_rng(self.random_state)
            sample = np.sort(rng.choice(len(X), size=limit, replace=False))
            logger.info(
                "Fitting %s on a sample of %d of %d points, then assigning the rest to the nearest centre",
                self.algorithm,
                limit,
                len(X),
            )
            sample_labels = self._fit_direct(X[sample])
            centres = _cluster_means(X[sample], sample_labels, int(sample_labels.max()) + 1)
            return nearest_centre(X, centres)
        return self._fit_direct(X)

    def _fit_direct(self, X: np.ndarray) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering, Birch, KMeans, MiniBatchKMeans

        k = self._k
        if self.algorithm in ("head", "spectral", "hdbscan"):
            return self._fit_neighbour_based(X, k)
        if resolve_cluster_engine(self.engine, self.algorithm, len(X)) == "faiss":
            return faiss_kmeans(X, k, n_init=self.n_init, random_state=self.random_state).labels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.algorithm == "kmeans":
                model = KMeans(k, n_init=self.n_init, random_state=self.random_state)
            elif self.algorithm == "minibatch-kmeans":
                model = MiniBatchKMeans(
                    k, n_init=min(3, self.n_init), batch_size=2048, random_state=self.random_state
                )
            elif self.algorithm == "birch":
                threshold = self.birch_threshold or _default_birch_threshold(X, self.random_state)
                model = Birch(n_clusters=k, threshold=threshold)
            else:
                model = AgglomerativeClustering(n_clusters=k, linkage="ward")
            return np.asarray(model.fit_predict(X), dtype=np.int64)

    def _fit_neighbour_based(self, X: np.ndarray, k: int) -> np.ndarray:
        if self.algorithm == "head":
            from .heads import ClusteringHead

            return ClusteringHead(k, random_state=self.random_state).fit(X).labels_
        if self.algorithm == "spectral":
            return spectral_knn_labels(X, k, random_state=self.random_state)
        size = self.min_cluster_size
        if size is None:
            expected = 10 if isinstance(self.n_clusters, str) else self.n_clusters
            size = max(5, len(X) // (4 * expected))
        return hdbscan_umap_labels(X, min_cluster_size=size, random_state=self.random_state)


def canonical_labels(labels) -> np.ndarray:
    """Renumber cluster labels so the largest cluster is 0.

    Ties in size go to the cluster whose first member comes first. Labels
    below 0 (noise) are kept as -1.
    """
    labels = np.asarray(labels)
    out = np.full(labels.shape, -1, dtype=np.int64)
    valid = labels >= 0
    if not valid.any():
        return out
    values, first, counts = np.unique(labels[valid], return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    mapping = {values[old]: new for new, old in enumerate(order)}
    out[valid] = [mapping[value] for value in labels[valid]]
    return out


def nearest_centre(X: np.ndarray, centres: np.ndarray, block: int = 65536) -> np.ndarray:
    """Return the index of the nearest centre for each row of ``X``, in blocks."""
    centre_norms = (centres.astype(np.float64) ** 2).sum(axis=1)
    out = np.empty(len(X), dtype=np.int64)
    for start in range(0, len(X), block):
        chunk = X[start : start + block].astype(np.float64)
        scores = centre_norms[None, :] - 2.0 * chunk @ centres.T.astype(np.float64)
        out[start : start + block] = scores.argmin(axis=1)
    return out


def centre_distances(X: np.ndarray, centres: np.ndarray, labels: np.ndarray, block: int = 65536) -> np.ndarray:
    """Return the Euclidean distance of each row of ``X`` to ``centres[labels]``, in blocks.

    Rows labelled -1 (noise) have no centre and get NaN.
    """
    out = np.full(len(X), np.nan, dtype=np.float32)
    for start in range(0, len(X), block):
        stop = start + block
        chunk_labels = labels[start:stop]
        member = chunk_labels >= 0
        if member.any():
            rows = X[start:stop][member]
            out[start:stop][member] = np.linalg.norm(rows - centres[chunk_labels[member]], axis=1)
    return out


def _cluster_means(X: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    from scipy.sparse import csr_matrix

    members = np.flatnonzero(labels >= 0)
    indicator = csr_matrix(
        (np.ones(len(members), dtype=np.float32), (labels[members], members)), shape=(n, len(X))
    )
    sums = np.asarray(indicator @ X, dtype=np.float64)
    counts = np.bincount(labels[members], minlength=n).astype(np.float64)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def _default_birch_threshold(X: np.ndarray, random_state: int) -> float:
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(random_state)
    sample = X[rng.choice(len(X), size=min(len(X), 2000), replace=False)]
    distances, _ = NearestNeighbors(n_neighbors=2).fit(sample).kneighbors(sample)
    median = float(np.median(distances[:, 1]))
    return max(median / 2.0, 1e-6)
