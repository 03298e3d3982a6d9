"""Compare FAISS k-means (``ImageClusterer(engine="faiss")``) with scikit-learn's KMeans.

Both cluster the same synthetic embeddings: ``--n`` vectors of ``--dim``
dimensions, non-negative like pooled ReLU features, drawn around 2 * k
centres of different sizes, so no k-means solution is exact. Both get
``--n-init`` restarts with k-means++ seeding; the table shows wall time,
inertia and the ratios.

Usage::

    python benchmarks/faiss_kmeans.py                 # 100,000 x 1280, k=100
    python benchmarks/faiss_kmeans.py --n 20000 --k 50
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Idle OpenMP threads (PyTorch, scikit-learn, FAISS) otherwise spin, which
# slows every side many times over on a machine busier than its cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _machine import describe_machine, load_average  # noqa: E402


def synthetic_embeddings(n: int, dim: int, k: int, seed: int = 0) -> np.ndarray:
    """Return ``n`` non-negative float32 vectors around ``2 * k`` centres of uneven size."""
    rng = np.random.default_rng(seed)
    centres = np.maximum(rng.normal(0.3, 0.6, size=(2 * k, dim)), 0).astype(np.float32)
    weights = rng.dirichlet(np.ones(2 * k))
    members = rng.choice(2 * k, size=n, p=weights)
    X = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 10_000):
        stop = min(n, start + 10_000)
        noise = rng.normal(0, 0.35, size=(stop - start, dim)).astype(np.float32)
        X[start:stop] = np.maximum(centres[members[start:stop]] + noise, 0)
    return X


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of vectors (default: 100000)")
    parser.add_argument("--dim", type=int, default=1280, help="dimension (default: 1280)")
    parser.add_argument("--k", type=int, default=100, help="number of clusters (default: 100)")
    parser.add_argument("--n-init", type=int, default=3, help="restarts of both (default: 3)")
    args = parser.parse_args(argv)

    from sklearn.cluster import KMeans

    from eclu._faiss_kmeans import faiss_kmeans

    print(f"machine: {describe_machine()}")
    X = synthetic_embeddings(args.n, args.dim, args.k)
    print(f"data: {args.n} x {args.dim} float32, k={args.k}, {args.n_init} restarts each", flush=True)

    started = time.perf_counter()
    result = faiss_kmeans(X, args.k, n_init=args.n_init, random_state=0)
    faiss_seconds = time.perf_counter() - started
    print(f"faiss: {faiss_seconds:.1f} s, inertia {result.inertia:.6g} (load {load_average()})", flush=True)

    started = time.perf_counter()
    reference = KMeans(args.k, n_init=args.n_init, random_state=0).fit(X)
    sklearn_seconds = time.perf_counter() - started
    print(f"scikit-learn: {sklearn_seconds:.1f} s, inertia {reference.inertia_:.6g} (load {load_average()})", flush=True)

    print()
    print(f"{'engine':<13} {'seconds':>8} {'inertia':>14}")
    print(f"{'scikit-learn':<13} {sklearn_seconds:>8.1f} {reference.inertia_:>14.6g}")
    print(f"{'faiss':<13} {faiss_seconds:>8.1f} {result.inertia:>14.6g}")
    print(
        f"speed-up {sklearn_seconds / faiss_seconds:.2f}x, inertia ratio faiss/scikit-learn "
        f"{result.inertia / reference.inertia_:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
