"""Cluster 1,000,000 synthetic 1280-d embeddings from a feature store within a few GB.

The script writes ``--n`` synthetic non-negative 1280-d vectors (around
200 centres of uneven size) to a feature store in shards. It then clusters
them without holding the 1280-d matrix in memory. PCA to ``--dim``
dimensions is fitted on a random sample of 50,000 vectors, every shard is
projected as it is read, and FAISS k-means clusters the projected matrix.
It prints the time of each stage and the peak resident set size.

Usage::

    python benchmarks/cluster_1m.py --work /tmp/eclu-1m
    python benchmarks/cluster_1m.py --n 200000 --k 100 --dim 128
"""

from __future__ import annotations

import argparse
import os
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Idle OpenMP threads (PyTorch, scikit-learn, FAISS) otherwise spin, which
# slows every side many times over on a machine busier than its cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _machine import describe_machine  # noqa: E402

IDENTITY = {"backbone": "synthetic", "dim": 1280, "engine": "none", "weights": "synthetic-v1"}
BLOCK = 50_000
WRITE_BLOCK = 10_000


def fake_hash(index: int) -> str:
    """Return a content-hash stand-in for synthetic vector ``index``."""
    return hashlib.sha256(f"synthetic-{index}".encode()).hexdigest()


def write_store(root: Path, n: int, seed: int = 0):
    """Write ``n`` synthetic vectors to a feature store unless it already contains them."""
    from eclu.store import FeatureStore

    store = FeatureStore(root, IDENTITY)
    if len(store) >= n:
        return store
    rng = np.random.default_rng(seed)
    centres = np.maximum(rng.normal(0.3, 0.6, size=(200, 1280)), 0).astype(np.float32)
    weights = rng.dirichlet(np.ones(200))
    with store.writer(shard_size=BLOCK) as writer:
        for start in range(len(store), n, WRITE_BLOCK):
            stop = min(n, start + WRITE_BLOCK)
            members = rng.choice(200, size=stop - start, p=weights)
            noise = rng.normal(0, 0.35, size=(stop - start, 1280)).astype(np.float32)
            vectors = np.maximum(centres[members] + noise, 0)
            writer.add_batch([fake_hash(i) for i in range(start, stop)], vectors, [(0, 0)] * (stop - start))
    store.refresh()
    return store


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of vectors (default: 1000000)")
    parser.add_argument("--k", type=int, default=100, help="number of clusters (default: 100)")
    parser.add_argument("--dim", type=int, default=128, help="PCA dimension (default: 128)")
    parser.add_argument("--n-init", type=int, default=2, help="k-means restarts (default: 2)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/eclu-1m"), help="feature store folder")
    args = parser.parse_args(argv)

    from sklearn.decomposition import PCA

    from eclu._faiss_kmeans import faiss_kmeans
    from eclu._resources import peak_rss_bytes

    print(f"machine: {describe_machine()}")
    timings = {}

    tick = time.perf_counter()
    store = write_store(args.work, args.n)
    timings["write store"] = time.perf_counter() - tick
    print(f"store: {len(store)} vectors in {store.path}, peak RSS {peak_rss_bytes() / 2**30:.2f} GiB", flush=True)

    tick = time.perf_counter()
    hashes = [fake_hash(i) for i in range(args.n)]
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(args.n, size=min(args.n, 50_000), replace=False))
    pca = PCA(args.dim, svd_solver="randomized", random_state=0).fit(store.get([hashes[i] for i in sample]))
    timings["fit PCA on 50,000"] = time.perf_counter() - tick

    tick = time.perf_counter()
    projected = np.empty((args.n, args.dim), dtype=np.float32)
    for start in range(0, args.n, BLOCK):
        block = store.get(hashes[start : start + BLOCK])
        projected[start : start + len(block)] = pca.transform(block)
    timings["read and project"] = time.perf_counter() - tick
    print(f"projected to {args.dim} dimensions, {pca.explained_variance_ratio_.sum():.1%} of the variance", flush=True)

    tick = time.perf_counter()
    result = faiss_kmeans(projected, args.k, n_init=args.n_init, random_state=0)
    timings[f"FAISS k-means, k={args.k}"] = time.perf_counter() - tick
    sizes = np.bincount(result.labels, minlength=args.k)

    print()
    for stage, seconds in timings.items():
        print(f"{stage:<28} {seconds:>8.1f} s")
    print(f"clusters: {int((sizes > 0).sum())}, sizes {sizes.min()}..{sizes.max()}")
    print(f"peak RSS: {peak_rss_bytes() / 2**30:.2f} GiB for {args.n} x 1280 float32 vectors "
          f"({args.n * 1280 * 4 / 2**30:.2f} GiB if held whole)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
