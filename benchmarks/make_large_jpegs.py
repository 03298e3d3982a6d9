"""Write a folder of large JPEG photos for the embedding benchmarks.

The photos are made from real pictures: scikit-learn's two sample images and
the 1800x1200 landscape photo and 4800x3600 JPEG of the shared odd-images
set when it is present. Each output is a random crop of a source, maybe
mirrored, with a small brightness change, upscaled to at least 3000x2000, so
every file has different content and a different SHA-256.

Usage::

    python benchmarks/make_large_jpegs.py /tmp/eclu-large-jpegs --count 500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ODD_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "odd-images"


def load_sources() -> list[Image.Image]:
    """Return the source photos as RGB images."""
    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(array) for array in load_sample_images().images]
    for name in ("landscape_orient1.jpg", "very_large.jpg"):
        path = ODD_IMAGES / name
        if path.is_file():
            with Image.open(path) as image:
                sources.append(ImageOps.exif_transpose(image).convert("RGB"))
    return sources


def make_photo(source: Image.Image, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Crop, maybe mirror, brighten or darken, and upscale one source photo."""
    width, height = source.size
    scale = rng.uniform(0.6, 1.0)
    crop_w, crop_h = int(width * scale), int(height * scale)
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    image = source.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
    return image.resize(size, Image.Resampling.BILINEAR)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (outside the repository)")
    parser.add_argument("--count", type=int, default=500, help="number of photos (default: 500)")
    parser.add_argument("--width", type=int, default=3000, help="width in pixels (default: 3000)")
    parser.add_argument("--height", type=int, default=2000, help="height in pixels (default: 2000)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default: 90)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    sources = load_sources()
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for index in range(args.count):
        path = args.out / f"photo-{index:05d}.jpg"
        if path.exists():
            continue
        # One generator per file, so a resumed run writes the same photos.
        rng = np.random.default_rng([args.seed, index])
        source = sources[index % len(sources)]
        photo = make_photo(source, rng, (args.width, args.height))
        photo.save(path, quality=args.quality)
        written += 1
    print(f"{args.out}: {args.count} photos of {args.width}x{args.height} ({written} written now)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
