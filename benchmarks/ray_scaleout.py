"""Measure embedding throughput on a local Ray cluster with 1 and 2 workers.

Baseline: ``embed_entries`` in this process with its default decode
processes, on the same files, in the same run. Ray: ``embed_entries_ray``
on a Ray cluster started in this process on 127.0.0.1 with ``--ray-cpus``
logical CPUs, with 1 and then 2 embedding actors of one CPU each. Every
measurement embeds into an empty feature store and is timed from the call
to the returned records, so the Ray figures include starting the actors
and loading the backbone in each of them.

Usage::

    python benchmarks/ray_scaleout.py                 # 400 cifar10-test images
    python benchmarks/ray_scaleout.py --limit 1000 --ray-cpus 3
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine, load_average  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = ROOT.parent / "shared" / "data" / "cifar10-test"


def first_per_class(folder: Path, limit: int):
    """Return scan entries of the first ``limit / classes`` files of every class folder."""
    from eclu.scan import scan_folder

    entries = scan_folder(folder)
    classes = sorted({entry.path.split("/", 1)[0] for entry in entries})
    per_class = max(1, limit // max(1, len(classes)))
    counts_by_class: dict[str, int] = {}
    selected = []
    for entry in entries:
        name = entry.path.split("/", 1)[0]
        if counts_by_class.get(name, 0) < per_class:
            counts_by_class[name] = counts_by_class.get(name, 0) + 1
            selected.append(entry)
    return selected


def measure(embed, entries, backbone, store_root: Path) -> float:
    """Embed ``entries`` into an empty store with ``embed`` and return images per second."""
    from eclu.store import FeatureStore

    shutil.rmtree(store_root, ignore_errors=True)
    store = FeatureStore(store_root, backbone.identity())
    started = time.perf_counter()
    records = embed(entries, backbone, store)
    seconds = time.perf_counter() - started
    embedded = sum(record.source == "embedded" for record in records)
    if embedded != len(entries):
        raise RuntimeError(f"expected to embed all {len(entries)} files, but {embedded} were embedded")
    return len(entries) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="image folder (default: cifar10-test)")
    parser.add_argument("--limit", type=int, default=400, help="images to embed, spread over the class folders")
    parser.add_argument("--ray-cpus", type=int, default=3, help="logical CPUs of the local Ray cluster (default: 3)")
    parser.add_argument("--block-size", type=int, default=64, help="files per Ray block (default: 64)")
    args = parser.parse_args()

    # Ray reads this when it is first imported: a local node then uses
    # 127.0.0.1 as its address and every Ray server listens on loopback only.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    from eclu.backbones import load_backbone
    from eclu.distributed import embed_entries_ray
    from eclu.embed import embed_entries

    print(f"machine: {describe_machine()}")
    entries = first_per_class(args.folder, args.limit)
    backbone = load_backbone("efficientnet_lite0")
    print(f"images: {len(entries)} from {args.folder.name}, backbone efficientnet_lite0, batch 64")

    with tempfile.TemporaryDirectory(prefix="eclu-ray-bench-") as scratch:
        scratch = Path(scratch)
        baseline = measure(lambda e, b, s: embed_entries(e, b, s), entries, backbone, scratch / "single")
        print(f"single machine (embed_entries): {baseline:.1f} images/s, load {load_average()}")

        ray.init(
            address="local",
            num_cpus=args.ray_cpus,
            include_dashboard=False,
            object_store_memory=1 << 30,
            logging_level=logging.WARNING,
        )
        try:
            threads = ray.get(ray.remote(num_cpus=1)(_torch_threads).remote())
            print(f"Ray {ray.__version__}, {args.ray_cpus} logical CPUs, PyTorch threads per worker: {threads}")
            for workers in (1, 2):
                rate = measure(
                    lambda e, b, s, n=workers: embed_entries_ray(e, b, s, workers=n, block_size=args.block_size),
                    entries,
                    backbone,
                    scratch / f"ray-{workers}",
                )
                print(
                    f"Ray, {workers} worker(s): {rate:.1f} images/s, {rate / baseline:.2f} x single machine, "
                    f"load {load_average()}"
                )
        finally:
            ray.shutdown()
    return 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
