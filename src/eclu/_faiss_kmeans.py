"""k-means with FAISS: the fast backend of ``ImageClusterer(engine="faiss")``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["FaissKMeansResult", "faiss_kmeans", "greedy_kmeans_plusplus", "CLUSTER_ENGINES", "FAISS_AUTO_MIN_SAMPLES", "resolve_cluster_engine"]

#: Names accepted for ``ImageClusterer(engine=...)`` and ``--cluster-engine``.
CLUSTER_ENGINES = ("auto", "sklearn", "faiss")

#: ``engine="auto"`` runs k-means with FAISS from this many samples on.
#: Below it scikit-learn takes at most a few seconds.
FAISS_AUTO_MIN_SAMPLES = 50_000

# k-means++ seeding runs on a random sample of at most this many points,
# because its cost grows with n_samples * n_clusters * log(n_clusters).
_SEEDING_SAMPLES = 20_000


@dataclass
class FaissKMeansResult:
    """Result of :func:`faiss_kmeans`.

    Attributes
    ----------
    labels : ndarray of shape (n_samples,)
        Index of each sample's nearest centroid.
    centroids : ndarray of shape (n_clusters, n_features)
        The centroids of the best restart.
    inertia : float
        Sum of squared distances of the samples to their nearest centroid.
    """

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float


def resolve_cluster_engine(engine: str, algorithm: str, n_samples: int) -> str:
    """Return ``"faiss"`` or ``"sklearn"`` for an engine name, algorithm and input size.

    Raises
    ------
    ValueError
        If ``engine`` is unknown, or ``"faiss"`` is asked for another
        algorithm than k-means.
    """
    if engine not in CLUSTER_ENGINES:
        raise ValueError(f"cluster engine must be one of {', '.join(CLUSTER_ENGINES)}; got {engine!r}")
    if engine == "faiss" and algorithm != "kmeans":
        raise ValueError(f"the faiss cluster engine runs algorithm 'kmeans' only, not {algorithm!r}")
    if engine == "auto":
        return "faiss" if algorithm == "kmeans" and n_samples >= FAISS_AUTO_MIN_SAMPLES else "sklearn"
    return engine


def faiss_kmeans(
    X: np.ndarray,
    n_clusters: int,
    *,
    n_init: int = 3,
    max_iter: int = 50,
    random_state: int = 0,
    num_threads: int | None = None,
) -> FaissKMeansResult:
    """Cluster ``X`` with FAISS k-means and keep the best of ``n_init`` restarts.

    Every restart starts from greedy k-means++ seeds, drawn
    from up to 20,000 samples, then runs FAISS's Lloyd iterations on all
    samples (no subsampling), so its inertia is comparable with
    scikit-learn's ``KMeans``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Converted to C-contiguous float32.
    n_clusters : int
        Number of centroids; at most ``n_samples``.
    n_init : int, default=3
        Restarts; the one with the lowest inertia is kept.
    max_iter : int, default=50
        Lloyd iterations per restart (FAISS ``niter``).
    random_state : int, default=0
        Seed of the first restart.
    num_threads : int, optional
        OpenMP threads for FAISS. Default: FAISS's own setting.

    Returns
    -------
    FaissKMeansResult
    """
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    n_samples, dim = X.shape
    if not 1 <= n_clusters <= n_samples:
        raise ValueError(f"n_clusters must be between 1 and the {n_samples} samples, got {n_clusters}")
    if num_threads is not None:
        faiss.omp_set_num_threads(num_threads)
    # NOTE: idle OpenMP threads spin by default. On a machine with more
    # runnable threads than cores this made FAISS up to 20 times slower, and
    # only OMP_WAIT_POLICY=PASSIVE, set before the process starts, avoids it.
    rng = np.random.default_rng(random_state)
    seed_rows = X
    if n_samples > _SEEDING_SAMPLES:
        seed_rows = X[np.sort(rng.choice(n_samples, size=_SEEDING_SAMPLES, replace=False))]
    best = None
    for restart in range(n_init):
        # Greedy k-means++ (several candidates per centroid, as scikit-learn
        # seeds KMeans) finds better starts than FAISS's own k-means++ on
        # well-separated clusters, so restarts end near scikit-learn's inertia.
        seeds = greedy_kmeans_plusplus(seed_rows, n_clusters, rng)
        kmeans = faiss.Kmeans(
            dim,
            n_clusters,
            niter=max_iter,
            nredo=1,
            seed=int(rng.integers(2**31)),
            max_points_per_centroid=max(256, -(-n_samples // n_clusters)),
            min_points_per_centroid=1,
            verbose=False,
        )
        kmeans.train(X, init_centroids=np.ascontiguousarray(seeds, dtype=np.float32))
        inertia = float(kmeans.obj[-1])
        if best is None or inertia < best[0]:
            best = (inertia, kmeans)
    kmeans = best[1]
    distances, nearest = kmeans.index.search(X, 1)
    inertia = float(distances[:, 0].astype(np.float64).sum())
    logger.debug("FAISS k-means: %d points, k=%d, %d restarts, inertia %.6g", n_samples, n_clusters, n_init, inertia)
    return FaissKMeansResult(nearest[:, 0].astype(np.int64), np.array(kmeans.centroids), inertia)


def greedy_kmeans_plusplus(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``n_clusters`` rows of ``X`` as seeds with greedy k-means++.

    Each new seed is the best of ``2 + log(n_clusters)`` candidates drawn
    with probability proportional to the squared distance to the nearest
    seed so far. The candidate that lowers the total squared distance most
    wins, as in scikit-learn's ``kmeans_plusplus``.
    """
    n_samples = len(X)
    trials = 2 + int(np.log(n_clusters))
    norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)

    def squared_distances(rows: np.ndarray) -> np.ndarray:
        products = X @ X[rows].T
        return np.maximum(norms[:, None] + norms[rows][None, :] - 2.0 * products, 0.0)

    chosen = [int(rng.integers(n_samples))]
    closest = squared_distances(np.array(chosen))[:, 0]
    for _ in range(1, n_clusters):
        total = closest.sum()
        if total <= 0:
            # Every point coincides with a seed; the rest are drawn uniformly.
            candidates = rng.integers(n_samples, size=trials)
        else:
            candidates = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
            candidates = np.minimum(candidates, n_samples - 1)
        options = np.minimum(closest[:, None], squared_distances(candidates))
        best = int(np.argmin(options.sum(axis=0)))
        chosen.append(int(candidates[best]))
        closest = options[:, best]
    return np.ascontiguousarray(X[chosen], dtype=np.float32)
