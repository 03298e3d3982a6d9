"""Compare ECLU's embedding throughput with a plain PyTorch loop, on the same machine and run.

Baseline: the timm model in eager mode, batch 64, every image opened with
Pillow at full size, converted to RGB and run through the timm transform in
the main process, one batch after another. ECLU: ``scan_folder`` then
``embed_entries`` into an empty feature store (scan to stored embeddings),
with the chosen engine and the default decode processes and threads. The
one-time ONNX export is done before timing and printed on its own line.
Both are measured on the same files, alternately, ``--repeats`` times; the
table shows the median images/s of each and their ratio.

Usage::

    python benchmarks/embed_speed.py                       # both folders, all files
    python benchmarks/embed_speed.py --limit 1000 --repeats 3
    python benchmarks/embed_speed.py --folder cifar=PATH --folder photos=PATH
"""

from __future__ import annotations

import argparse
import os
import copy
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Idle OpenMP threads (PyTorch, scikit-learn, FAISS) otherwise spin, which
# slows every side many times over on a machine busier than its cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _machine import describe_machine, load_average  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDERS = {
    "cifar10-test": ROOT.parent / "shared" / "data" / "cifar10-test",
    "large-jpegs": Path("/tmp/eclu-large-jpegs"),
}


def baseline_images_per_second(paths: list[Path], backbone, batch_size: int) -> float:
    """Embed ``paths`` with the plain loop and return images per second."""
    import torch
    from PIL import Image

    model = copy.deepcopy(backbone.model).to(memory_format=torch.contiguous_format).eval()
    transform = backbone.transform()
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            tensors = []
            for path in paths[start : start + batch_size]:
                with Image.open(path) as image:
                    tensors.append(transform(image.convert("RGB")))
            model(torch.stack(tensors))
    return len(paths) / (time.perf_counter() - started)


def eclu_images_per_second(folder: Path, limit: int | None, backbone, store_root: Path, args) -> float:
    """Scan ``folder``, embed it into an emptied store and return images per second."""
    from eclu.embed import embed_entries
    from eclu.engines import engine_name
    from eclu.scan import scan_folder
    from eclu.store import FeatureStore

    identity = backbone.identity(engine_name(args.engine, args.quantize))
    store = FeatureStore(store_root, identity)
    for shard in store.path.glob("shard-*"):
        shard.unlink()
    store = FeatureStore(store_root, identity)
    started = time.perf_counter()
    entries = scan_folder(folder)[:limit]
    records = embed_entries(
        entries,
        backbone,
        store,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        engine=args.engine,
        quantize=args.quantize,
        num_threads=args.num_threads,
    )
    seconds = time.perf_counter() - started
    ok = sum(record.status == "ok" for record in records)
    if ok != len(entries):
        raise RuntimeError(f"only {ok} of {len(entries)} files in {folder} were embedded")
    return ok / seconds


def prepare_engine(backbone, store_root: Path, args) -> None:
    """Export the ONNX model into the store folder, so timed runs find it cached."""
    from eclu.engines import create_engine, engine_name
    from eclu.store import FeatureStore

    store = FeatureStore(store_root, backbone.identity(engine_name(args.engine, args.quantize)))
    started = time.perf_counter()
    create_engine(backbone, args.engine, quantize=args.quantize, cache_dir=store.path, num_threads=1)
    print(f"engine {engine_name(args.engine, args.quantize)}: prepared in {time.perf_counter() - started:.1f} s (once per backbone)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", action="append", metavar="NAME=PATH", help="folder to measure (repeatable)")
    parser.add_argument("--limit", type=int, help="use only the first N files of each folder")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each side (default: 1)")
    parser.add_argument("--engine", default="onnx", choices=("torch", "onnx"), help="ECLU engine (default: onnx)")
    parser.add_argument("--quantize", choices=("int8",), help="ECLU quantisation (default: none)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of both sides (default: 64)")
    parser.add_argument("--num-workers", type=int, help="ECLU decode processes (default: ECLU's)")
    parser.add_argument("--num-threads", type=int, help="ECLU inference threads (default: ECLU's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from eclu.backbones import load_backbone
    from eclu.scan import scan_folder

    folders = dict(DEFAULT_FOLDERS)
    if args.folder:
        folders = dict(item.split("=", 1) for item in args.folder)
    print(f"machine: {describe_machine()}")
    backbone = load_backbone("efficientnet_lite0")
    store_root = Path(tempfile.mkdtemp(prefix="eclu-embed-speed-"))
    try:
        prepare_engine(backbone, store_root, args)
        rows = []
        for name, folder in folders.items():
            folder = Path(folder)
            if not folder.is_dir():
                print(f"{name}: {folder} not found, skipped (benchmarks/make_large_jpegs.py writes the photo folder)")
                continue
            paths = [entry.absolute for entry in scan_folder(folder)][: args.limit]
            baseline, eclu = [], []
            for repeat in range(args.repeats):
                baseline.append(baseline_images_per_second(paths, backbone, args.batch_size))
                eclu.append(eclu_images_per_second(folder, args.limit, backbone, store_root, args))
                print(
                    f"{name} run {repeat + 1}: baseline {baseline[-1]:.1f} images/s, ECLU {eclu[-1]:.1f} images/s "
                    f"(load {load_average()})",
                    flush=True,
                )
            rows.append((name, len(paths), statistics.median(baseline), statistics.median(eclu)))
    finally:
        shutil.rmtree(store_root, ignore_errors=True)

    print()
    print(f"{'folder':<14} {'images':>7} {'baseline img/s':>15} {'ECLU img/s':>11} {'ratio':>6}")
    for name, count, baseline, eclu in rows:
        print(f"{name:<14} {count:>7} {baseline:>15.1f} {eclu:>11.1f} {eclu / baseline:>6.2f}")
    print(f"ECLU engine: {args.engine}{'-' + args.quantize if args.quantize else ''}; machine load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
