"""Outliers: images far from their nearest neighbours in embedding space."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .collection import load_run_embeddings
from .neighbors import distinct_contents, nearest_neighbors, normalize_rows

logger = logging.getLogger(__name__)

__all__ = ["OutlierRanking", "find_outliers", "outlier_scores"]


@dataclass
class OutlierRanking:
    """Images ranked from the most to the least isolated.

    Attributes
    ----------
    paths : list of str
        Relative paths, most isolated first.
    scores : ndarray of float32
        Mean cosine distance (1 - cosine similarity) to the ``k`` nearest
        neighbours, in ``paths`` order; between 0 and 2.
    k : int
        Neighbours averaged.
    """

    paths: list
    scores: np.ndarray = field(repr=False)
    k: int

    def top(self, n: int) -> list[tuple[int, str, float]]:
        """Return the first ``n`` entries as ``(rank, path, score)``, rank 1 first."""
        return [(rank + 1, self.paths[rank], float(self.scores[rank])) for rank in range(min(n, len(self.paths)))]

    def write_csv(self, path) -> None:
        """Write ``outliers.csv``: rank, path, score, for every image."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("rank", "path", "score"))
            for rank, (image, score) in enumerate(zip(self.paths, self.scores), start=1):
                writer.writerow((rank, image, f"{float(score):.6f}"))
        os.replace(tmp, path)


def outlier_scores(embeddings, k: int = 10, hashes: Sequence[str] | None = None, method: str = "auto") -> np.ndarray:
    """Return the mean cosine distance of every row to its ``k`` nearest neighbours.

    Parameters
    ----------
    embeddings : array-like of shape (n, dim)
    k : int, default=10
        Neighbours averaged. Capped at the number of distinct images minus one.
    hashes : sequence of str, optional
        File SHA-256 of each row. Rows with equal hashes are one image, so an
        exact copy does not hide an outlier.
    method : {"auto", "exact", "ivf"}, default="auto"
        Neighbour search, see :func:`eclu.neighbors.nearest_neighbors`.

    Returns
    -------
    ndarray of float32, shape (n,)
        0 for an image whose neighbours are identical, up to 2.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = len(embeddings)
    if hashes is None:
        hashes = [str(row) for row in range(n)]
    if len(hashes) != n:
        raise ValueError(f"got {n} embeddings but {len(hashes)} hashes")
    content_of, first_row = distinct_contents(hashes)
    if len(first_row) < 2:
        raise ValueError(f"outlier scores need at least 2 distinct images, got {len(first_row)}")
    vectors = normalize_rows(np.asarray(embeddings)[first_row])
    neighbors = nearest_neighbors(vectors, k, method=method, normalized=True)
    found = neighbors.indices >= 0
    distances = np.where(found, 1.0 - neighbors.similarities, 0.0)
    per_content = distances.sum(axis=1) / np.maximum(found.sum(axis=1), 1)
    return per_content[content_of].astype(np.float32)


def find_outliers(run_dir, *, k: int = 10, write: bool = True) -> OutlierRanking:
    """Rank the images of a run folder by their outlier score.

    Parameters
    ----------
    run_dir : path-like
        Run folder with ``embeddings.npy`` (from ``eclu cluster`` or
        ``eclu duplicates``).
    k : int, default=10
        Neighbours averaged, see :func:`outlier_scores`.
    write : bool, default=True
        Write ``run_dir/outliers.csv``.

    Returns
    -------
    OutlierRanking
        Ties are ranked by path, so the order is reproducible.
    """
    run_dir = Path(run_dir)
    paths, hashes, embeddings = load_run_embeddings(run_dir)
    scores = outlier_scores(embeddings, k=k, hashes=hashes)
    order = sorted(range(len(paths)), key=lambda row: (-float(scores[row]), paths[row]))
    ranking = OutlierRanking([paths[i] for i in order], scores[order], k)
    if write:
        ranking.write_csv(run_dir / "outliers.csv")
    logger.info("Ranked %d images of %s by their distance to %d neighbours", len(paths), run_dir, k)
    return ranking
