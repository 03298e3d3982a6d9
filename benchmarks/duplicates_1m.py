"""Near-duplicate search over 1,000,000 synthetic embeddings: time, peak RSS and recall.

Usage::

    python benchmarks/duplicates_1m.py [--rows 1000000] [--dim 1280] [--pairs 1000]

The embeddings are drawn around 1,000 random cluster centres, like the
features of a large photo collection, and ``--pairs`` of them get a planted
near duplicate (a copy with added noise, cosine similarity about 0.97). The
script runs :func:`eclu.neighbors.nearest_neighbors` with ``method="auto"``
(IVF above 50,000 rows) and keeps the pairs at the default threshold, as
``eclu duplicates`` does. It prints the time, the peak resident memory and the
share of planted pairs found. The baseline, measured in the same run, is the
time of exact search over a sample, scaled to all rows by the square of the
row count.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from eclu._resources import peak_rss_bytes
from eclu.duplicates import DEFAULT_THRESHOLD
from eclu.neighbors import nearest_neighbors


def synthetic_embeddings(rows: int, dim: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return unit-length embeddings and the planted pairs as an array of (original, copy) rows."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    vectors = np.empty((rows, dim), dtype=np.float32)
    block = 50_000
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        labels = rng.integers(0, len(centres), size=stop - start)
        part = centres[labels] + 1.2 * rng.standard_normal((stop - start, dim), dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        vectors[start:stop] = part
    chosen = rng.choice(rows, size=2 * n_pairs, replace=False)
    originals, copies = chosen[:n_pairs], chosen[n_pairs:]
    noise = rng.standard_normal((n_pairs, dim), dtype=np.float32)
    noise *= 0.25 / np.linalg.norm(noise, axis=1, keepdims=True)
    planted = vectors[originals] + noise
    vectors[copies] = planted / np.linalg.norm(planted, axis=1, keepdims=True)
    return vectors, np.stack([originals, copies], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="embeddings (default: 1,000,000)")
    parser.add_argument("--dim", type=int, default=1280, help="embedding dimension (default: 1280, as EfficientNet-Lite0)")
    parser.add_argument("--pairs", type=int, default=1000, help="planted near-duplicate pairs (default: 1000)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per row (default: 10)")
    parser.add_argument("--baseline-rows", type=int, default=20_000, help="rows of the exact-search baseline (default: 20,000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    tick = time.perf_counter()
    vectors, planted = synthetic_embeddings(args.rows, args.dim, args.pairs, args.seed)
    print(f"generated {args.rows:,} x {args.dim} float32 embeddings ({vectors.nbytes / 2**30:.2f} GiB) in {time.perf_counter() - tick:.0f} s")
    print(f"planted pair similarity: min {float(np.min(np.einsum('nd,nd->n', vectors[planted[:, 0]], vectors[planted[:, 1]]))):.3f}")
    rss_before = peak_rss_bytes()

    sample = vectors[: args.baseline_rows]
    tick = time.perf_counter()
    nearest_neighbors(sample, args.k, method="exact", normalized=True)
    baseline = time.perf_counter() - tick
    estimate = baseline * (args.rows / len(sample)) ** 2
    print(f"baseline: exact search over {len(sample):,} rows took {baseline:.1f} s; scaled to {args.rows:,} rows: about {estimate / 3600:.1f} h")

    tick = time.perf_counter()
    neighbors = nearest_neighbors(vectors, args.k, method="auto", normalized=True)
    first, second, similarity = neighbors.pairs(DEFAULT_THRESHOLD)
    seconds = time.perf_counter() - tick
    found = set(zip(first.tolist(), second.tolist()))
    hits = sum((min(a, b), max(a, b)) in found for a, b in planted.tolist())
    print(f"search: method {neighbors.method}, k {args.k}, {seconds:.0f} s ({args.rows / seconds:,.0f} rows/s); speed-up over the scaled baseline: {estimate / seconds:.0f}x")
    print(f"pairs at threshold {DEFAULT_THRESHOLD}: {len(found)}; planted pairs found: {hits} of {len(planted)} ({hits / len(planted):.4f})")
    print(f"peak RSS: {peak_rss_bytes() / 2**30:.2f} GiB (embeddings alone: {vectors.nbytes / 2**30:.2f} GiB; before search: {rss_before / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
