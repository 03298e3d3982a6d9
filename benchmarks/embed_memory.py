"""Show that peak memory while embedding does not grow with the number of images.

For each count N it makes a folder of N symbolic links to the cifar10-test
images (repeated under new names). A fresh process scans and embeds that
folder into an empty feature store, then prints its peak resident set size
and that of its decode processes.

``--model stub`` (the default) keeps the whole decode, preprocessing and
store path but replaces the network with average pooling and a fixed linear
map to 1280 values, so 100,000 images take minutes instead of hours.
``--model onnx`` runs the real EfficientNet-Lite0 with ONNX Runtime.

Usage::

    python benchmarks/embed_memory.py --counts 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Idle OpenMP threads (PyTorch, scikit-learn, FAISS) otherwise spin, which
# slows every side many times over on a machine busier than its cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _machine import describe_machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-test"


def link_folder(count: int, work: Path) -> Path:
    """Return a folder of ``count`` links to cifar10-test images, 1,000 per sub-folder."""
    folder = work / f"links-{count}"
    if folder.is_dir() and sum(1 for _ in folder.rglob("*.jpg")) == count:
        return folder
    sources = sorted(CIFAR.rglob("*.jpg"))
    if not sources:
        raise SystemExit(f"no images under {CIFAR}")
    for index in range(count):
        sub = folder / f"part-{index // 1000:04d}"
        if index % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        link = sub / f"image-{index:07d}.jpg"
        if not link.is_symlink():
            link.symlink_to(sources[index % len(sources)])
    return folder


def stub_backbone():
    """Return EfficientNet-Lite0's preprocessing around a network-free stand-in."""
    import torch

    from eclu.backbones import Backbone, BackboneSpec, load_backbone

    real = load_backbone("efficientnet_lite0")
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(48, 1280),
    ).eval()
    with torch.no_grad():
        model[2].weight.copy_(torch.randn(1280, 48, generator=generator))
    spec = BackboneSpec("stub", "stub", description="pooling and a fixed linear map instead of a network")
    return Backbone(spec, model, real.data_config, 1280, "stub")


def peak_rss_children_bytes() -> int:
    """Return the largest peak RSS of this process's finished children (the decode processes)."""
    import resource

    from eclu._resources import _maxrss_to_bytes

    return _maxrss_to_bytes(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def child(count: int, model: str, work: Path) -> None:
    """Embed ``count`` images in this process and print one JSON line of results."""
    from eclu._resources import peak_rss_bytes
    from eclu.backbones import load_backbone
    from eclu.embed import embed_entries
    from eclu.scan import scan_folder
    from eclu.store import FeatureStore

    folder = link_folder(count, work)
    backbone = stub_backbone() if model == "stub" else load_backbone("efficientnet_lite0")
    engine = "torch" if model == "stub" else "onnx"
    store = FeatureStore(Path(tempfile.mkdtemp(dir=work, prefix="store-")), backbone.identity(engine))
    rss_before = peak_rss_bytes()
    started = time.perf_counter()
    entries = scan_folder(folder)
    records = embed_entries(entries, backbone, store, engine=engine)
    seconds = time.perf_counter() - started
    ok = sum(record.status == "ok" for record in records)
    print(
        json.dumps(
            {
                "count": count,
                "ok": ok,
                "seconds": round(seconds, 1),
                "peak_rss_before_mib": round(rss_before / 2**20, 1),
                "peak_rss_mib": round(peak_rss_bytes() / 2**20, 1),
                "peak_rss_workers_mib": round(peak_rss_children_bytes() / 2**20, 1),
            }
        ),
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000], help="numbers of images to embed, one run each")
    parser.add_argument("--model", choices=("stub", "onnx"), default="stub", help="network (default: stub)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "eclu-embed-memory", help="scratch folder")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child is not None:
        child(args.child, args.model, args.work)
        return 0

    print(f"machine: {describe_machine()}")
    print(f"model: {args.model}")
    rows = []
    for count in args.counts:
        link_folder(count, args.work)
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(count), "--model", args.model, "--work", str(args.work)],
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONWARNINGS="ignore"),
        ).stdout
        row = json.loads(output.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print()
    print(f"{'images':>8} {'seconds':>8} {'images/s':>9} {'peak RSS MiB':>13} {'workers MiB':>12}")
    for row in rows:
        print(
            f"{row['count']:>8} {row['seconds']:>8.1f} {row['ok'] / row['seconds']:>9.1f} "
            f"{row['peak_rss_mib']:>13.1f} {row['peak_rss_workers_mib']:>12.1f}"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        change = (last["peak_rss_mib"] - first["peak_rss_mib"]) / first["peak_rss_mib"]
        print(f"peak RSS change from {first['count']} to {last['count']} images: {change:+.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
