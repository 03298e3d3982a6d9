"""Automatic number of clusters: score k-means for a range of k and keep the best.

Each k in ``2 .. min(n_distinct - 1, max_clusters)`` is clustered with
k-means on L2-normalised principal components of a random sample of the
embeddings. Each partition gets a score. The highest score wins, and ties
go to the smaller k. The whole curve is returned so a report can plot it.

Two criteria are offered:

``"modularity"`` (the default)
    Newman-Girvan modularity of the partition on the symmetrised graph of
    each sample's 10 nearest neighbours (cosine): the share of graph edges
    that stay inside clusters minus the share expected if edges were drawn
    at random with the same degrees. It rewards k-means partitions that
    follow the neighbourhood structure, and it does not favour the smallest
    k the way the silhouette does on embeddings whose classes overlap.
``"silhouette"``
    Mean silhouette coefficient with cosine distance. It peaks at the true
    k when clusters are compact and well apart, and tends to k = 2 when
    they are not.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from numbers import Integral

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["KSelection", "select_n_clusters", "DEFAULT_MAX_CLUSTERS", "K_CRITERIA"]

#: Largest k tried by default.
DEFAULT_MAX_CLUSTERS = 30

#: Scores accepted by :func:`select_n_clusters`.
K_CRITERIA = ("modularity", "silhouette")

#: Neighbours per sample in the graph scored by ``"modularity"``.
GRAPH_NEIGHBORS = 10


@dataclass
class KSelection:
    """The chosen number of clusters and the score of every k tried.

    Attributes
    ----------
    n_clusters : int
        The chosen k. It is 1 when there are fewer than 3 distinct
        embeddings, because no k in ``2 <= k <= n - 1`` exists, and with
        ``"modularity"`` when no k tried scores above 0, the modularity
        of a single cluster.
    criterion : str
        Name of the score, one of :data:`K_CRITERIA`; higher is better.
    ks : list of int
        The k values tried, ascending; empty when none could be tried.
    scores : list of float
        Score of each k in ``ks``.
    n_samples : int
        Embeddings the scores were computed on (a sample of large inputs).
    """

    n_clusters: int
    criterion: str = "modularity"
    ks: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    n_samples: int = 0

    def as_dict(self) -> dict:
        """Return the fields as a JSON-ready dict, as stored in ``summary.json``."""
        return asdict(self)


def select_n_clusters(
    X,
    max_clusters: int = DEFAULT_MAX_CLUSTERS,
    *,
    criterion: str = "modularity",
    max_samples: int = 3000,
    n_components: int = 32,
    random_state: int = 0,
) -> KSelection:
    """Choose the number of clusters of ``X`` by scoring k-means partitions.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Embeddings, raw or conditioned.
    max_clusters : int, default=30
        Largest k tried; the range is also capped at the number of distinct
        embeddings minus one.
    criterion : {"modularity", "silhouette"}, default="modularity"
        Score of each partition, see the module description.
    max_samples : int, default=3000
        Score on a random sample of this many embeddings, because both
        scores cost time that grows faster than the number of points.
    n_components : int, default=32
        Principal components kept before scoring.
    random_state : int, default=0
        Seed for sampling, PCA and k-means.

    Returns
    -------
    KSelection
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    from .conditioning import l2_normalize

    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n_samples, n_features), got shape {X.shape}")
    if not isinstance(max_clusters, Integral) or max_clusters < 2:
        raise ValueError(f"max_clusters must be an integer of at least 2, got {max_clusters!r}")
    if criterion not in K_CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(K_CRITERIA)}; got {criterion!r}")
    rng = np.random.default_rng(random_state)
    if len(X) > max_samples:
        X = X[np.sort(rng.choice(len(X), size=max_samples, replace=False))]
    n_distinct = len(np.unique(X, axis=0))
    top = min(n_distinct - 1, int(max_clusters))
    if top < 2:
        logger.info("Choosing 1 cluster: only %d distinct embeddings", n_distinct)
        return KSelection(1, criterion, n_samples=len(X))

    n_components = max(1, min(n_components, X.shape[0] - 1, X.shape[1]))
    reduced = PCA(n_components=n_components, random_state=random_state).fit_transform(X)
    reduced = l2_normalize(reduced)
    score = _modularity_scorer(reduced) if criterion == "modularity" else _silhouette
    ks, scores = [], []
    for k in range(2, top + 1):
        labels = KMeans(k, n_init=3, random_state=random_state).fit_predict(reduced)
        if len(np.unique(labels)) < 2:
            # PCA may merge distinct embeddings; such a k gets no score.
            continue
        ks.append(k)
        scores.append(float(score(reduced, labels)))
    if not ks:
        return KSelection(1, criterion, n_samples=len(X))
    best = ks[int(np.argmax(scores))]
    if criterion == "modularity" and max(scores) <= 0:
        # One cluster has modularity 0, so no partition tried beats it.
        logger.info("Choosing 1 cluster: no k in %d..%d has a positive modularity", ks[0], ks[-1])
        best = 1
    else:
        logger.info("Chose %d clusters by %s among k = %d..%d", best, criterion, ks[0], ks[-1])
    return KSelection(best, criterion, ks, [round(s, 6) for s in scores], len(X))


def _silhouette(X: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    return silhouette_score(X, labels, metric="cosine")


def _modularity_scorer(X: np.ndarray):
    """Return a function scoring a labelling of ``X`` by modularity on its kNN graph."""
    from scipy import sparse

    from .heads import mine_neighbors

    n = len(X)
    neighbors = mine_neighbors(X, GRAPH_NEIGHBORS)
    rows = np.repeat(np.arange(n), neighbors.shape[1])
    graph = sparse.coo_matrix((np.ones(rows.size), (rows, neighbors.ravel())), shape=(n, n)).tocsr()
    # An edge in either direction counts once; a sample is never its own neighbour.
    graph = graph.maximum(graph.T).tocoo()
    graph.setdiag(0)
    graph.eliminate_zeros()
    degree = np.asarray(graph.sum(axis=1)).ravel()
    total = degree.sum()

    def score(_, labels: np.ndarray) -> float:
        if total == 0:
            return 0.0
        k = int(labels.max()) + 1
        same = labels[graph.row] == labels[graph.col]
        inside = np.bincount(labels[graph.row[same]], weights=graph.data[same], minlength=k)
        volume = np.bincount(labels, weights=degree, minlength=k)
        return float(np.sum(inside / total - (volume / total) ** 2))

    return score
