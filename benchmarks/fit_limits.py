"""Measure time and peak memory of BIRCH and agglomerative fits against the number of points.

Each fit runs in a fresh process on synthetic 1280-d embeddings (the
generator of ``faiss_kmeans.py``) with ``max_fit_samples`` above the input
size, so the algorithm fits every point. The extra peak RSS is the process's
peak minus its RSS just before the fit, when the input is already in memory.
The numbers check the defaults of
``eclu.cluster.DEFAULT_FIT_LIMITS``, above which ECLU fits a random sample
and assigns the other points to the nearest centre.

Usage::

    python benchmarks/fit_limits.py
    python benchmarks/fit_limits.py --agglomerative 2500 5000 --birch 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Idle OpenMP threads (PyTorch, scikit-learn, FAISS) otherwise spin, which
# slows every side many times over on a machine busier than its cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _machine import describe_machine  # noqa: E402


def child(algorithm: str, n: int, k: int) -> None:
    """Fit one algorithm on ``n`` points in this process and print a JSON line."""
    from eclu._resources import peak_rss_bytes
    from eclu.cluster import ImageClusterer
    from faiss_kmeans import synthetic_embeddings

    import psutil

    X = synthetic_embeddings(n, 1280, k)
    # A small fit first, so module imports do not count as the fit's memory.
    ImageClusterer(algorithm, 2, random_state=0).fit(X[:50])
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    clusterer = ImageClusterer(algorithm, k, max_fit_samples=n + 1, random_state=0).fit(X)
    seconds = time.perf_counter() - started
    extra = max(0, peak_rss_bytes() - before)
    print(json.dumps({"algorithm": algorithm, "n": n, "seconds": round(seconds, 1),
                      "extra_peak_rss_mib": round(extra / 2**20), "clusters": clusterer.n_clusters_}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agglomerative", type=int, nargs="*", default=[1000, 2000, 4000], help="agglomerative input sizes")
    parser.add_argument("--birch", type=int, nargs="*", default=[10000, 20000, 40000], help="BIRCH input sizes")
    parser.add_argument("--k", type=int, default=50, help="number of clusters (default: 50)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), args.k)
        return 0

    print(f"machine: {describe_machine()}")
    print(f"{'algorithm':<14} {'points':>8} {'seconds':>8} {'extra peak RSS MiB':>19}")
    jobs = [("agglomerative", n) for n in args.agglomerative] + [("birch", n) for n in args.birch]
    for algorithm, n in jobs:
        output = subprocess.run(
            [sys.executable, __file__, "--child", algorithm, str(n), "--k", str(args.k)],
            check=True, capture_output=True, text=True,
        ).stdout
        row = json.loads(output.strip().splitlines()[-1])
        print(f"{algorithm:<14} {n:>8} {row['seconds']:>8.1f} {row['extra_peak_rss_mib']:>19}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
