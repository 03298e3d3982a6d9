"""Precision and recall of duplicate detection on a constructed set of known duplicates.

Usage::

    python benchmarks/near_duplicates.py IMAGE_FOLDER [--sources 60] [--cache DIR]

The script links every image of IMAGE_FOLDER into a work folder and leaves
out the images that duplicate an earlier one (the data set's own duplicates).
It writes the edited copies of :func:`eclu.variants.write_variants` (byte
copy, PNG copy, PNG with a text chunk, half size, JPEG quality 40, EXIF
orientation 6 with rotated pixels, CMYK, 5% crop) of ``--sources`` of the
rest. Then it embeds everything with the default backbone and groups
duplicates at several thresholds, with and without the thumbnail check.

A pair of files is a true duplicate pair when both come from the same
source image. Precision is the share of the pairs that share a reported
group that are true pairs. Recall is the share of true pairs that share a
reported group. The script also prints, for each edit, the lowest
similarity to its source, and the highest similarity between two unrelated
images, which bound the thresholds that separate them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np

from eclu._resources import peak_rss_bytes
from eclu.collection import embed_folder
from eclu.duplicates import DEFAULT_THRESHOLD, DEFAULT_THUMBNAIL_THRESHOLD, group_duplicates
from eclu.neighbors import normalize_rows
from eclu.scan import scan_folder
from eclu.variants import VARIANTS, write_variants


def link_originals(image_folder: Path, work: Path) -> dict[str, str]:
    """Link every image into ``work/originals``; return each link's source path."""
    source_of = {}
    for entry in scan_folder(image_folder):
        if entry.hidden:
            continue
        link = work / "originals" / entry.path
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(entry.absolute.resolve())
        source_of[f"originals/{entry.path}"] = entry.path
    return source_of


def distinct_originals(folder, max_similarity: float) -> list[str]:
    """Drop originals until no two left have a cosine similarity of ``max_similarity`` or more.

    Public data sets contain duplicates of their own (re-encoded or mirrored
    copies); they would count as false pairs although they are duplicates.
    """
    vectors = normalize_rows(folder.embeddings)
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -1.0)
    kept: list[int] = []
    dropped = np.zeros(len(vectors), dtype=bool)
    for row in range(len(vectors)):
        if dropped[row]:
            continue
        kept.append(row)
        dropped |= scores[row] >= max_similarity
    return [folder.paths[row] for row in kept]


def write_sources(originals: list[str], source_of, work: Path, n_sources: int, seed: int) -> None:
    """Write the edited copies of ``n_sources`` originals into ``work/variants``, replacing earlier ones."""
    shutil.rmtree(work / "variants", ignore_errors=True)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(originals), size=min(n_sources, len(originals)), replace=False).tolist())
    for position in chosen:
        original = originals[position]
        stem = source_of[original].rsplit(".", 1)[0].replace("/", "__")
        for path in write_variants(work / original, work / "variants", stem=stem).values():
            source_of[path.relative_to(work).as_posix()] = source_of[original]


def true_pairs(paths: list[str], source_of: dict[str, str]) -> set[tuple[str, str]]:
    by_source = defaultdict(list)
    for path in paths:
        by_source[source_of[path]].append(path)
    return {pair for members in by_source.values() for pair in combinations(sorted(members), 2)}


def reported_pairs(report) -> set[tuple[str, str]]:
    return {
        pair
        for group in report.groups
        for pair in combinations(sorted(member.path for member in group.files), 2)
    }


def similarity_margins(paths, vectors, source_of):
    """Return the lowest similarity of each edit to its source and the top unrelated similarities."""
    row_of = {path: row for row, path in enumerate(paths)}
    lowest: dict[str, float] = {}
    for path in paths:
        if not path.startswith("variants/"):
            continue
        edit = path.rsplit("_", 1)[1].split(".")[0]
        edit = "png_text" if path.endswith("_png_text.png") else edit
        original = row_of[f"originals/{source_of[path]}"]
        score = float(vectors[row_of[path]] @ vectors[original])
        lowest[edit] = min(lowest.get(edit, 1.0), score)
    originals = [row for path, row in row_of.items() if path.startswith("originals/")]
    block = vectors[originals]
    scores = block @ block.T
    np.fill_diagonal(scores, -1.0)
    upper = scores[np.triu_indices(len(originals), k=1)]
    return lowest, np.sort(upper)[::-1][:5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("image_folder", type=Path, help="folder of distinct images, scanned recursively")
    parser.add_argument("--sources", type=int, default=60, help="images to write edited copies of (default: 60)")
    parser.add_argument("--work", type=Path, help="work folder, kept for a later run; its variants/ folder is rewritten (default: a temporary folder)")
    parser.add_argument("--cache", type=Path, help="feature store folder, reused across runs")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing the sources (default: 0)")
    parser.add_argument(
        "--thresholds",
        default="0.90,0.93,0.95,0.97",
        help="comma-separated cosine similarity thresholds to score with thumbnails on (default: 0.90 to 0.97)",
    )
    parser.add_argument(
        "--distinct-below",
        type=float,
        default=0.97,
        help="leave out originals this similar to an earlier one, as the data set's own duplicates (default: 0.97)",
    )
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch) / "collection"
        work.mkdir(parents=True, exist_ok=True)
        cache = args.cache or Path(scratch) / "features"
        source_of = link_originals(args.image_folder, work)
        tick = time.perf_counter()
        originals = embed_folder(work / "originals", cache_dir=cache, progress=True)
        kept = distinct_originals(originals, args.distinct_below)
        print(
            f"originals: {len(originals.paths)}, of which {len(originals.paths) - len(kept)} left out as duplicates "
            f"of another original (cosine similarity >= {args.distinct_below})"
        )
        kept = [f"originals/{path}" for path in kept]
        write_sources(kept, source_of, work, args.sources, args.seed)
        folder = embed_folder(work, cache_dir=cache, progress=True)
        embed_seconds = time.perf_counter() - tick
        wanted = set(kept) | {path for path in folder.paths if path.startswith("variants/")}
        rows = [row for row, path in enumerate(folder.paths) if path in wanted]
        paths = [folder.paths[row] for row in rows]
        hashes = [folder.hashes[row] for row in rows]
        embeddings = np.asarray(folder.embeddings)[rows]
        records = [folder.ok_records()[row] for row in rows]
        kinds = Counter("original" if path.startswith("originals/") else "edited copy" for path in paths)
        print(
            f"collection: {len(paths)} images ({kinds['original']} originals, "
            f"{kinds['edited copy']} edited copies of {args.sources} sources, {len(VARIANTS)} edits each); "
            f"embedded in {embed_seconds:.0f} s"
        )
        truth = true_pairs(paths, source_of)
        vectors = normalize_rows(embeddings)
        lowest, unrelated = similarity_margins(paths, vectors, source_of)
        print("lowest similarity of each edit to its source: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(lowest.items())))
        print("highest similarities between two originals: " + ", ".join(f"{v:.3f}" for v in unrelated))

        print(f"{'threshold':>9}  {'thumbnails':>10}  {'pairs':>6}  {'true':>6}  {'precision':>9}  {'recall':>6}  seconds")
        settings = [(float(t), DEFAULT_THUMBNAIL_THRESHOLD) for t in args.thresholds.split(",")]
        settings.append((DEFAULT_THRESHOLD, None))
        for threshold, thumbnail_threshold in sorted(set(settings), key=lambda s: (s[1] is None, s[0])):
            tick = time.perf_counter()
            report = group_duplicates(
                paths,
                hashes,
                embeddings,
                root=work,
                threshold=threshold,
                thumbnail_threshold=thumbnail_threshold,
                sizes=[(record.width, record.height) for record in records],
                file_sizes=[record.bytes for record in records],
            )
            seconds = time.perf_counter() - tick
            found = reported_pairs(report)
            hits = len(found & truth)
            precision = hits / len(found) if found else 1.0
            recall = hits / len(truth) if truth else 1.0
            default = threshold == DEFAULT_THRESHOLD and thumbnail_threshold == DEFAULT_THUMBNAIL_THRESHOLD
            thumbnails = "off" if thumbnail_threshold is None else f"{thumbnail_threshold:.2f}"
            print(
                f"{threshold:>9.2f}  {thumbnails:>10}  {len(found):>6}  {len(truth):>6}  {precision:>9.4f}  "
                f"{recall:>6.4f}  {seconds:.1f}{'  (default)' if default else ''}"
            )
            if default:
                for first, second in sorted(found - truth)[:10]:
                    print(f"    false pair: {first}  {second}")
                for first, second in sorted(truth - found)[:10]:
                    print(f"    missed pair: {first}  {second}")
    print(f"peak RSS {peak_rss_bytes() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
