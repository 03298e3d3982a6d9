"""Density and graph clustering: HDBSCAN on a UMAP projection, spectral clustering on a kNN graph.

Both work on the cosine geometry of the embeddings: UMAP and the kNN graph
use cosine similarity, which suits L2-normalised features.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["hdbscan_umap_labels", "spectral_knn_labels"]


def hdbscan_umap_labels(
    X: np.ndarray,
    *,
    min_cluster_size: int,
    n_components: int = 10,
    n_neighbors: int = 30,
    random_state: int = 0,
) -> np.ndarray:
    """Cluster with HDBSCAN on a UMAP projection; noise points get the label -1.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Embeddings.
    min_cluster_size : int
        Smallest group HDBSCAN reports as a cluster.
    n_components : int, default=10
        UMAP output dimension.
    n_neighbors : int, default=30
        UMAP neighbourhood size; clamped to ``n_samples - 1``.
    random_state : int, default=0
        UMAP seed. A seeded UMAP runs single-threaded and is reproducible.

    Returns
    -------
    ndarray of shape (n_samples,) of int64
    """
    from sklearn.cluster import HDBSCAN

    n = len(X)
    min_cluster_size = int(max(2, min(min_cluster_size, n)))
    if n <= n_components + 2:
        # UMAP's spectral initialisation needs more points than dimensions,
        # so tiny inputs are clustered directly.
        projected = X
    else:
        try:
            import umap
        except ImportError as error:
            raise ImportError(
                "algorithm 'hdbscan' projects with UMAP; install it with `pip install umap-learn`"
            ) from error
        reducer = umap.UMAP(
            n_components=n_components,
            n_neighbors=int(min(n_neighbors, n - 1)),
            min_dist=0.0,
            metric="cosine",
            random_state=random_state,
        )
        with warnings.catch_warnings():
            # A seeded UMAP warns that it disables parallelism; that is intended here.
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
            projected = reducer.fit_transform(X)
    labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(projected)
    logger.info(
        "HDBSCAN found %d clusters and %d noise points", len(set(labels.tolist()) - {-1}), int((labels < 0).sum())
    )
    return np.asarray(labels, dtype=np.int64)


def spectral_knn_labels(X: np.ndarray, n_clusters: int, *, n_neighbors: int = 15, random_state: int = 0) -> np.ndarray:
    """Cluster with spectral clustering on the symmetric cosine kNN graph.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Embeddings.
    n_clusters : int
        Number of clusters.
    n_neighbors : int, default=15
        Neighbours per point in the graph, mined with FAISS.
    random_state : int, default=0
        Seed of the eigensolver start vector and of the label assignment.

    Returns
    -------
    ndarray of shape (n_samples,) of int64
    """
    from scipy.sparse import csr_matrix
    from sklearn.cluster import SpectralClustering

    from .heads import mine_neighbors

    n = len(X)
    neighbors = mine_neighbors(X, n_neighbors)
    k = neighbors.shape[1]
    rows = np.repeat(np.arange(n), k)
    graph = csr_matrix((np.ones(n * k, dtype=np.float64), (rows, neighbors.ravel())), shape=(n, n))
    # Mutual and one-sided edges both count, so the affinity is symmetric.
    affinity = 0.5 * (graph + graph.T)
    model = SpectralClustering(
        n_clusters=n_clusters, affinity="precomputed", assign_labels="cluster_qr", random_state=random_state
    )
    with warnings.catch_warnings():
        # A kNN graph of a few distinct points may be disconnected; the
        # embedding is still usable, so scikit-learn's warning is dropped.
        warnings.filterwarnings("ignore", message=".*not fully connected.*")
        labels = model.fit_predict(affinity)
    return np.asarray(labels, dtype=np.int64)
