"""Nearest neighbours of every embedding, with FAISS, in memory O(N k).

Near-duplicate detection and outlier scores both need the ``k`` most similar
embeddings of every embedding. Nothing here builds an N x N matrix:

* ``"exact"`` search keeps the vectors in a flat inner-product index and
  queries it in blocks, so only a block of scores exists at a time. Its cost
  grows with N squared, which is fine up to some ten thousand images.
* ``"ivf"`` search projects the vectors with PCA to at most 128 dimensions
  and finds candidates in an inverted-file index. The index splits the rows
  into about ``2 sqrt(N)`` k-means cells, and each query scans the 8 cells
  nearest to it. Every candidate pair is scored again with the full
  vectors, so the similarities returned are exact cosine similarities. Only
  the neighbours are approximate, because a true neighbour can be missed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Neighbors", "distinct_contents", "nearest_neighbors", "normalize_rows", "EXACT_SEARCH_MAX_ROWS"]

#: Above this many rows, ``method="auto"`` switches from exact to IVF search.
EXACT_SEARCH_MAX_ROWS = 50_000

_QUERY_BLOCK_ROWS = 4096
_REDUCED_DIM = 128
_PCA_TRAINING_ROWS = 20_000
_IVF_TRAINING_ROWS_PER_CELL = 50


@dataclass
class Neighbors:
    """The ``k`` most similar rows of every row.

    Attributes
    ----------
    indices : ndarray of int64, shape (n, k)
        Row numbers of the neighbours, most similar first; -1 where fewer
        than ``k`` neighbours were found.
    similarities : ndarray of float32, shape (n, k)
        Cosine similarity to each neighbour; -inf where ``indices`` is -1.
    method : str
        ``"exact"`` or ``"ivf"``.
    """

    indices: np.ndarray
    similarities: np.ndarray
    method: str

    def pairs(self, min_similarity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the pairs ``(i, j)`` with ``i < j`` at or above ``min_similarity``.

        Each pair is listed once even when both rows found each other.
        Returns the arrays ``first``, ``second`` and ``similarity``.
        """
        rows, columns = np.nonzero((self.similarities >= min_similarity) & (self.indices >= 0))
        first = rows.astype(np.int64)
        second = self.indices[rows, columns]
        similarity = self.similarities[rows, columns]
        low = np.minimum(first, second)
        high = np.maximum(first, second)
        keep = low != high
        low, high, similarity = low[keep], high[keep], similarity[keep]
        if len(low) == 0:
            return low, high, similarity
        order = np.lexsort((high, low))
        low, high, similarity = low[order], high[order], similarity[order]
        unique = np.ones(len(low), dtype=bool)
        unique[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
        return low[unique], high[unique], similarity[unique]


def distinct_contents(hashes) -> tuple[np.ndarray, list[int]]:
    """Group rows by content hash, so identical files are searched once.

    Returns
    -------
    content_of : ndarray of int
        For each row, the index of its distinct content.
    first_row : list of int
        For each distinct content, the first row that has it.
    """
    distinct: dict[str, int] = {}
    content_of = np.empty(len(hashes), dtype=np.int64)
    first_row: list[int] = []
    for row, sha in enumerate(hashes):
        if sha not in distinct:
            distinct[sha] = len(first_row)
            first_row.append(row)
        content_of[row] = distinct[sha]
    return content_of, first_row


def normalize_rows(vectors, block_rows: int = 65_536) -> np.ndarray:
    """Return a float32 copy of ``vectors`` with every row scaled to unit length.

    Rows are converted block by block, so a memory-mapped input is never
    loaded twice. All-zero rows stay zero.
    """
    vectors = np.asarray(vectors) if not isinstance(vectors, np.memmap) else vectors
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (rows, dim), got shape {vectors.shape}")
    out = np.empty(vectors.shape, dtype=np.float32)
    for start in range(0, len(vectors), block_rows):
        block = np.asarray(vectors[start : start + block_rows], dtype=np.float32)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out[start : start + block_rows] = block / norms
    return out


def nearest_neighbors(
    embeddings,
    k: int = 10,
    *,
    method: str = "auto",
    normalized: bool = False,
    n_probe: int = 8,
    random_state: int = 0,
) -> Neighbors:
    """Find the ``k`` most cosine-similar other rows of every row.

    Parameters
    ----------
    embeddings : array-like of shape (n, dim)
        One embedding per image.
    k : int, default=10
        Neighbours per row, not counting the row itself. Capped at ``n - 1``.
    method : {"auto", "exact", "ivf"}, default="auto"
        ``"auto"`` is exact up to :data:`EXACT_SEARCH_MAX_ROWS` rows and
        IVF above.
    normalized : bool, default=False
        True when the rows already have unit length; saves one copy.
    n_probe : int, default=8
        IVF cells scanned per query; more finds more true neighbours, slower.
    random_state : int, default=0
        Seed for the training samples of IVF search.

    Returns
    -------
    Neighbors
        Memory O(n k): two ``(n, k)`` arrays.
    """
    import faiss

    if method not in ("auto", "exact", "ivf"):
        raise ValueError(f"method must be 'auto', 'exact' or 'ivf', got {method!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32) if normalized else normalize_rows(embeddings)
    n = len(vectors)
    if method == "auto":
        method = "exact" if n <= EXACT_SEARCH_MAX_ROWS else "ivf"
    k = min(k, max(n - 1, 0))
    if k == 0:
        empty = np.zeros((n, 0), dtype=np.int64)
        return Neighbors(empty, empty.astype(np.float32), method)

    if method == "exact":
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        indices, similarities = _search_blocks(index, vectors, k, np.arange(n))
    else:
        indices, similarities = _ivf_neighbors(vectors, k, n_probe, random_state)
    logger.debug("Found %d neighbours of %d rows with %s search", k, n, method)
    return Neighbors(indices, similarities, method)


def _search_blocks(index, queries: np.ndarray, k: int, query_rows: np.ndarray):
    """Search ``k + 1`` neighbours block by block and drop each query's own row."""
    n = len(queries)
    indices = np.full((n, k), -1, dtype=np.int64)
    similarities = np.full((n, k), -np.inf, dtype=np.float32)
    for start in range(0, n, _QUERY_BLOCK_ROWS):
        stop = min(start + _QUERY_BLOCK_ROWS, n)
        found_scores, found_rows = index.search(queries[start:stop], k + 1)
        for offset in range(stop - start):
            row = query_rows[start + offset]
            others = found_rows[offset] != row
            chosen_rows = found_rows[offset][others][:k]
            chosen_scores = found_scores[offset][others][:k]
            indices[start + offset, : len(chosen_rows)] = chosen_rows
            similarities[start + offset, : len(chosen_rows)] = chosen_scores
    similarities[indices < 0] = -np.inf
    return indices, similarities


def _ivf_neighbors(vectors: np.ndarray, k: int, n_probe: int, random_state: int):
    import faiss

    n, dim = vectors.shape
    rng = np.random.default_rng(random_state)
    reduced = _pca_reduce(vectors, rng)
    n_cells = int(np.clip(2 * np.sqrt(n), 16, 4096))
    quantizer = faiss.IndexFlatIP(reduced.shape[1])
    index = faiss.IndexIVFFlat(quantizer, reduced.shape[1], n_cells, faiss.METRIC_INNER_PRODUCT)
    training_rows = rng.choice(n, size=min(n, n_cells * _IVF_TRAINING_ROWS_PER_CELL), replace=False)
    index.train(np.ascontiguousarray(reduced[np.sort(training_rows)]))
    index.add(reduced)
    index.nprobe = n_probe
    indices, _ = _search_blocks(index, reduced, k, np.arange(n))
    del index, quantizer, reduced

    # Score the candidates again with the full vectors, then re-sort each row.
    similarities = np.full(indices.shape, -np.inf, dtype=np.float32)
    rescore_rows = 1024
    for start in range(0, n, rescore_rows):
        stop = min(start + rescore_rows, n)
        block = indices[start:stop]
        valid = block >= 0
        neighbours = vectors[np.where(valid, block, 0)]
        scores = np.einsum("nd,nkd->nk", vectors[start:stop], neighbours)
        similarities[start:stop] = np.where(valid, scores, -np.inf)
    order = np.argsort(-similarities, axis=1, kind="stable")
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(similarities, order, axis=1)


def _pca_reduce(vectors: np.ndarray, rng) -> np.ndarray:
    """Project unit rows onto their top principal components and rescale them to unit length."""
    n, dim = vectors.shape
    if dim <= _REDUCED_DIM:
        return np.ascontiguousarray(vectors)
    sample = np.asarray(vectors[np.sort(rng.choice(n, size=min(n, _PCA_TRAINING_ROWS), replace=False))], dtype=np.float64)
    mean = sample.mean(axis=0)
    centred = sample - mean
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)
    components = np.ascontiguousarray(eigenvectors[:, ::-1][:, :_REDUCED_DIM], dtype=np.float32)
    mean = mean.astype(np.float32)
    reduced = np.empty((n, _REDUCED_DIM), dtype=np.float32)
    for start in range(0, n, 65_536):
        reduced[start : start + 65_536] = (vectors[start : start + 65_536] - mean) @ components
    norms = np.linalg.norm(reduced, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    reduced /= norms
    return reduced
