"""Compare the clustering accuracy of float32 and int8 ONNX embeddings on cifar10-test.

The first ``--per-class`` images of every cifar10-test class are embedded
with the float32 and the int8 ONNX engine, clustered with k-means (k=10,
10 restarts, ``--seeds`` seeds whose scores are averaged) and scored against
the class folders. The table shows ACC, NMI
and ARI of each, the mean cosine similarity between the two embeddings of
each image and the embedding images/s.

Usage::

    python benchmarks/int8_accuracy.py --per-class 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from types import SimpleNamespace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Idle OpenMP threads (PyTorch, scikit-learn, FAISS) otherwise spin, which
# slows every side many times over on a machine busier than its cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _machine import describe_machine  # noqa: E402

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-test"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=100, help="images per class (default: 100)")
    parser.add_argument("--folder", type=Path, default=CIFAR, help="labelled folder (default: cifar10-test)")
    parser.add_argument("--seeds", type=int, default=5, help="k-means seeds whose scores are averaged (default: 5)")
    args = parser.parse_args(argv)

    from eclu.backbones import load_backbone
    from eclu.cluster import ImageClusterer
    from eclu.embed import embed_entries
    from eclu.engines import engine_name
    from eclu.evaluate import labels_from_folders, score_clustering
    from eclu.scan import ScanEntry
    from eclu.store import FeatureStore

    print(f"machine: {describe_machine()}")
    entries = []
    for class_dir in sorted(p for p in args.folder.iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir())[: args.per_class]:
            entries.append(ScanEntry(f"{class_dir.name}/{path.name}", path))
    classes = labels_from_folders([entry.path for entry in entries])
    backbone = load_backbone("efficientnet_lite0")
    root = Path(tempfile.mkdtemp(prefix="eclu-int8-"))
    vectors = {}
    rows = []
    for quantize in (None, "int8"):
        store = FeatureStore(root, backbone.identity(engine_name("onnx", quantize)))
        embed_entries(entries[:2], backbone, store, engine="onnx", quantize=quantize)
        started = time.perf_counter()
        records = embed_entries(entries, backbone, store, engine="onnx", quantize=quantize)
        speed = len(entries) / (time.perf_counter() - started)
        X = store.get([record.sha256 for record in records])
        vectors[quantize] = X
        runs = [
            score_clustering(classes, ImageClusterer("kmeans", len(set(classes)), random_state=seed).fit_predict(X))
            for seed in range(args.seeds)
        ]
        means = {key: float(np.mean([getattr(run, key) for run in runs])) for key in ("acc", "nmi", "ari")}
        scores = SimpleNamespace(**means)
        rows.append((engine_name("onnx", quantize), scores, speed))
        print(f"{rows[-1][0]}: ACC {scores.acc:.4f}, {speed:.1f} images/s", flush=True)

    a, b = vectors[None], vectors["int8"]
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print()
    print(f"{len(entries)} images, {len(set(classes))} classes, scores averaged over k-means seeds 0..{args.seeds - 1}")
    print("| engine | ACC | NMI | ARI | images/s |")
    print("|---|---|---|---|---|")
    for name, scores, speed in rows:
        print(f"| {name} | {scores.acc:.4f} | {scores.nmi:.4f} | {scores.ari:.4f} | {speed:.1f} |")
    print(f"ACC difference int8 - float32: {100 * (rows[1][1].acc - rows[0][1].acc):+.1f} points")
    print(f"cosine similarity int8 to float32: mean {cosine.mean():.3f}, min {cosine.min():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
