"""Scaling study: cost per stage against the number of images and against their size.

Count series (1,000, 10,000 and 100,000 links to cifar10-test images, made
by ``embed_memory.py``'s folder helper): ``scan`` and ``cluster`` (k-means,
k=10, ECLU's automatic engine, on synthetic 1280-d vectors of that count)
are measured at every count. ``read+hash``, ``decode``, ``preprocess`` and
``inference`` (ONNX engine) are measured per image on the first
``--sample`` images and multiplied by the count. The table marks these
extrapolated values with ``*``.

Size series: ``--sample`` photos of ``benchmarks/make_large_jpegs.py``,
saved as JPEG with a longer side from 32 to 3000 pixels; each stage is timed
per image. ``decode (full)`` decodes without draft mode for comparison.

The table goes to standard output and the plot to ``--plot`` (PNG).

Usage::

    python benchmarks/scaling.py --plot docs/scaling.png
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Idle OpenMP threads (PyTorch, scikit-learn, FAISS) otherwise spin, which
# slows every side many times over on a machine busier than its cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _machine import describe_machine  # noqa: E402

SIZES = (32, 64, 128, 256, 512, 1024, 2000, 3000)
COUNTS = (1_000, 10_000, 100_000)


def per_image_stages(paths, backbone, engine) -> dict[str, float]:
    """Return seconds per image of read+hash, decode, decode (full), preprocess and inference."""
    from eclu.decode import decode_image, file_sha256, read_file
    from eclu.engines import pixel_transform

    transform = pixel_transform(backbone)
    totals = dict.fromkeys(("read+hash", "decode", "decode (full)", "preprocess", "inference"), 0.0)
    pixels = []
    for path in paths:
        tick = time.perf_counter()
        data, _ = read_file(path)
        file_sha256(data)
        totals["read+hash"] += time.perf_counter() - tick
        tick = time.perf_counter()
        result = decode_image(path, draft_size=backbone.resize_size, data=data)
        totals["decode"] += time.perf_counter() - tick
        tick = time.perf_counter()
        decode_image(path, data=data)
        totals["decode (full)"] += time.perf_counter() - tick
        tick = time.perf_counter()
        pixels.append(np.asarray(transform(result.image), dtype=np.uint8))
        totals["preprocess"] += time.perf_counter() - tick
    batch = np.stack(pixels)
    engine(batch[:8])
    tick = time.perf_counter()
    for start in range(0, len(batch), 64):
        engine(batch[start : start + 64])
    totals["inference"] = time.perf_counter() - tick
    return {stage: seconds / len(paths) for stage, seconds in totals.items()}


def size_folder(size: int, photos: list[Path], work: Path) -> list[Path]:
    """Save ``photos`` with a longer side of ``size`` pixels and return the new files."""
    from PIL import Image

    folder = work / f"size-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for photo in photos:
        path = folder / photo.name
        if not path.exists():
            with Image.open(photo) as image:
                image.draft("RGB", (size, size))
                image = image.convert("RGB")
                image.thumbnail((size, size), Image.Resampling.LANCZOS)
                image.save(path, quality=90)
        out.append(path)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("/tmp/eclu-large-jpegs"), help="large photo folder")
    parser.add_argument("--sample", type=int, default=128, help="images timed per point (default: 128)")
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS), help="image counts")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "eclu-embed-memory", help="scratch folder")
    parser.add_argument("--plot", type=Path, help="write the plot to this PNG file")
    args = parser.parse_args(argv)

    from embed_memory import link_folder
    from faiss_kmeans import synthetic_embeddings

    from eclu.backbones import load_backbone
    from eclu.cluster import ImageClusterer
    from eclu.engines import create_engine
    from eclu.scan import scan_folder

    print(f"machine: {describe_machine()}")
    backbone = load_backbone("efficientnet_lite0")
    engine = create_engine(backbone, "onnx", cache_dir=args.work / "onnx")

    # Count series.
    count_rows = []
    per_image = None
    for count in args.counts:
        folder = link_folder(count, args.work)
        tick = time.perf_counter()
        entries = scan_folder(folder)
        scan_seconds = time.perf_counter() - tick
        if per_image is None:
            per_image = per_image_stages([e.absolute for e in entries[: args.sample]], backbone, engine)
        X = synthetic_embeddings(count, 1280, 10)
        tick = time.perf_counter()
        ImageClusterer("kmeans", 10, n_init=3, random_state=0).fit(X)
        cluster_seconds = time.perf_counter() - tick
        del X
        row = {"images": count, "scan": scan_seconds, "cluster": cluster_seconds}
        for stage in ("read+hash", "decode", "preprocess", "inference"):
            row[stage] = per_image[stage] * count
        count_rows.append(row)
        print(f"count {count}: scan {scan_seconds:.1f} s, cluster {cluster_seconds:.1f} s", flush=True)

    # Size series.
    photos = sorted(args.photos.glob("*.jpg"))[: args.sample]
    if not photos:
        raise SystemExit(f"no JPEG photos found in {args.photos}: run benchmarks/make_large_jpegs.py first")
    size_rows = []
    for size in SIZES:
        paths = size_folder(size, photos, args.work)
        stages = per_image_stages(paths, backbone, engine)
        kib = sum(p.stat().st_size for p in paths) / len(paths) / 1024
        size_rows.append({"size": size, "kib": kib, **stages})
        print(f"size {size}: " + ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in stages.items()), flush=True)

    stages = ("scan", "read+hash", "decode", "preprocess", "inference", "cluster")
    print()
    print("Seconds per stage against the number of images (* = per-image time x count)")
    print("| images | " + " | ".join(stages) + " | total |")
    print("|---" * (len(stages) + 2) + "|")
    for row in count_rows:
        cells = [f"{row[s]:.1f}{'*' if s not in ('scan', 'cluster') else ''}" for s in stages]
        print(f"| {row['images']:,} | " + " | ".join(cells) + f" | {sum(row[s] for s in stages):.0f} |")
    size_stages = ("read+hash", "decode", "decode (full)", "preprocess", "inference")
    print()
    print("Milliseconds per image against the longer side of the image")
    print("| longer side px | KiB | " + " | ".join(size_stages) + " |")
    print("|---" * (len(size_stages) + 2) + "|")
    for row in size_rows:
        print(f"| {row['size']} | {row['kib']:.0f} | " + " | ".join(f"{row[s] * 1000:.2f}" for s in size_stages) + " |")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        counts = [row["images"] for row in count_rows]
        for stage in stages:
            left.plot(counts, [row[stage] for row in count_rows], marker="o", label=stage)
        left.set(xscale="log", yscale="log", xlabel="number of images", ylabel="seconds", title="Cost against number of images")
        left.legend(fontsize=8)
        sizes = [row["size"] for row in size_rows]
        for stage in size_stages:
            right.plot(sizes, [row[stage] * 1000 for row in size_rows], marker="o", label=stage)
        right.set(xscale="log", yscale="log", xlabel="longer side (pixels)", ylabel="ms per image", title="Cost per image against image size")
        right.legend(fontsize=8)
        figure.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
