"""Nearest-neighbour search: exact and IVF search agree on close pairs."""

from __future__ import annotations

import numpy as np
import pytest

from eclu.neighbors import nearest_neighbors, normalize_rows


def _clustered(rows: int, dim: int, pairs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 20, rows)] + rng.standard_normal((rows, dim)).astype(np.float32)
    vectors = normalize_rows(vectors)
    chosen = rng.choice(rows, size=2 * pairs, replace=False)
    originals, copies = chosen[:pairs], chosen[pairs:]
    noise = rng.standard_normal((pairs, dim)).astype(np.float32)
    noise *= 0.2 / np.linalg.norm(noise, axis=1, keepdims=True)
    vectors[copies] = normalize_rows(vectors[originals] + noise)
    return vectors, {(int(min(a, b)), int(max(a, b))) for a, b in zip(originals, copies)}


def test_exact_search_finds_planted_pairs():
    vectors, planted = _clustered(2000, 64, 50)
    neighbors = nearest_neighbors(vectors, k=5, method="exact", normalized=True)
    first, second, similarity = neighbors.pairs(0.95)
    assert neighbors.method == "exact"
    assert set(zip(first.tolist(), second.tolist())) == planted
    assert np.all(similarity >= 0.95)


def test_ivf_search_matches_exact_on_planted_pairs():
    vectors, planted = _clustered(3000, 256, 60)
    neighbors = nearest_neighbors(vectors, k=5, method="ivf", normalized=True)
    first, second, similarity = neighbors.pairs(0.95)
    assert neighbors.method == "ivf"
    assert set(zip(first.tolist(), second.tolist())) == planted
    # Similarities are computed again from the full vectors, so they are exact.
    expected = np.einsum("nd,nd->n", vectors[first], vectors[second])
    np.testing.assert_allclose(similarity, expected, rtol=1e-5, atol=1e-5)


def test_neighbors_exclude_self_and_sort():
    vectors, _ = _clustered(500, 32, 10)
    neighbors = nearest_neighbors(vectors, k=4)
    assert neighbors.indices.shape == (500, 4)
    assert not np.any(neighbors.indices == np.arange(500)[:, None])
    assert np.all(np.diff(neighbors.similarities, axis=1) <= 1e-6)


def test_k_capped_and_tiny_inputs():
    vectors = normalize_rows(np.eye(3, dtype=np.float32))
    neighbors = nearest_neighbors(vectors, k=10)
    assert neighbors.indices.shape == (3, 2)
    single = nearest_neighbors(vectors[:1], k=3)
    assert single.indices.shape == (1, 0)
    assert len(single.pairs(0.5)[0]) == 0


def test_pairs_listed_once():
    vectors = normalize_rows(np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]], dtype=np.float32))
    first, second, _ = nearest_neighbors(vectors, k=2).pairs(0.99)
    assert first.tolist() == [0]
    assert second.tolist() == [1]


def test_invalid_arguments_rejected():
    vectors = np.ones((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="method must be"):
        nearest_neighbors(vectors, method="hnsw")
    with pytest.raises(ValueError, match="k must be at least 1"):
        nearest_neighbors(vectors, k=0)
    with pytest.raises(ValueError, match="2-D array"):
        normalize_rows(np.ones(3))
