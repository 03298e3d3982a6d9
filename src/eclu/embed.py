"""Embed: decode images in worker processes and run the backbone on batches.

Files whose content hash already has an embedding in the feature store are
read but not decoded. So a second run over a folder embeds only new or
changed files, and a run that was killed resumes where its last shard ended.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .decode import DEFAULT_MAX_PIXELS, decode_image, file_sha256, read_file
from .engines import create_engine, default_threads, engine_name, pixel_transform
from .scan import ScanEntry
from .store import FeatureStore

logger = logging.getLogger(__name__)

__all__ = ["FileRecord", "embed_entries", "default_num_workers"]


@dataclass
class FileRecord:
    """Outcome of the decode and embed stages for one file, written as a ``manifest.csv`` row.

    ``source`` is ``"embedded"`` when this run computed the embedding,
    ``"store"`` when it was already in the feature store, and empty for files
    that were not embedded.
    """

    path: str
    status: str
    reason: str = ""
    bytes: int = 0
    width: int = 0
    height: int = 0
    sha256: str = ""
    source: str = ""


def default_num_workers() -> int:
    """Return the number of decode processes: one core is left for inference."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores - 1))


class _DecodeDataset:
    """Map-style dataset that decodes one file per item, for a DataLoader."""

    def __init__(self, entries, transform, draft_size, known, max_pixels):
        self.entries = entries
        self.transform = transform
        self.draft_size = draft_size
        self.known = known
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        return decode_item(self.entries[index], index, self.transform, self.draft_size, self.known, self.max_pixels)


def decode_item(entry: ScanEntry, index, transform, draft_size, known, max_pixels):
    """Decode one scan entry into ``(index, record, tensor or None)``."""
    record = FileRecord(entry.path, "ok")
    if entry.hidden:
        record.status, record.reason = "hidden", "hidden file, skipped"
        return index, record, None
    data, failure = read_file(entry.absolute)
    if failure is not None:
        record.status, record.reason, record.sha256 = failure.status, failure.reason, failure.sha256
        return index, record, None
    record.bytes = len(data)
    sha = file_sha256(data)
    record.sha256 = sha
    if sha in known:
        record.source = "store"
        return index, record, None
    result = decode_image(entry.absolute, draft_size=draft_size, max_pixels=max_pixels, data=data)
    record.status, record.reason = result.status, result.reason
    record.width, record.height = result.width, result.height
    if result.status != "ok":
        return index, record, None
    try:
        tensor = transform(result.image)
    except (OSError, ValueError) as error:
        record.status, record.reason = "undecodable", f"preprocessing failed: {error}"
        return index, record, None
    record.source = "embedded"
    return index, record, tensor


class _PixelArray:
    """Resize and centre-crop a PIL image, then return its 8-bit HWC pixels as a tensor."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image):
        import torch

        return torch.from_numpy(np.asarray(self.transform(image), dtype=np.uint8).copy())


def _collate(items):
    """Stack a batch's pixels in the decode process, so one shared-memory tensor crosses to the parent."""
    import torch

    pixels = [tensor for _, _, tensor in items if tensor is not None]
    stacked = torch.stack(pixels) if pixels else None
    return [(index, record, tensor is not None) for index, record, tensor in items], stacked


def embed_entries(
    entries: Sequence[ScanEntry],
    backbone,
    store: FeatureStore,
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    shard_size: int = 1024,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    engine: str = "torch",
    quantize: str | None = None,
    num_threads: int | None = None,
) -> list[FileRecord]:
    """Embed every scanned file that the store does not have yet.

    Parameters
    ----------
    entries : sequence of ScanEntry
        Files from :func:`eclu.scan.scan_folder`.
    backbone : Backbone
        From :func:`eclu.backbones.load_backbone`.
    store : FeatureStore
        Where embeddings are read from and written to; it must be the store
        of ``backbone.identity()``.
    batch_size : int, default=64
        Images per forward pass.
    num_workers : int, optional
        Decode processes; 0 decodes in this process. Default: one per core
        but one, at most 8.
    shard_size : int, default=1024
        Embeddings per store shard. A crash loses at most this many.
    max_pixels : int
        Decompressed pixel cap, see :func:`eclu.decode.decode_image`.
    progress : bool, default=False
        Show a progress bar on standard error.
    engine : {"torch", "onnx"}, default="torch"
        Inference engine, see :func:`eclu.engines.create_engine`. The ONNX
        engine keeps its exported model in the store folder.
    quantize : {None, "int8"}, default=None
        Static int8 quantisation; ONNX engine only.
    num_threads : int, optional
        Intra-op threads for inference. Default: every core but half of
        those the decode processes take, see
        :func:`eclu.engines.default_threads`.

    Returns
    -------
    list of FileRecord
        One per entry, in the order of ``entries``.

    Raises
    ------
    ValueError
        If the store belongs to another engine or quantisation than
        ``engine`` and ``quantize``.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers is None:
        num_workers = default_num_workers()
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 or more, got {num_workers}")

    wanted = engine_name(engine, quantize)
    stored = store.identity.get("engine", "torch")
    if stored != wanted:
        raise ValueError(
            f"the feature store {store.path} contains embeddings of engine {stored!r}, not {wanted!r}; "
            f"open the store with backbone.identity({wanted!r})"
        )
    if num_threads is None:
        num_threads = default_threads(num_workers)
    runner = create_engine(backbone, engine, quantize=quantize, cache_dir=store.path, num_threads=num_threads)
    logger.info("Embedding with engine %s, %d inference threads, %d decode processes", wanted, num_threads, num_workers)

    known = frozenset(store.hashes())
    transform = _PixelArray(pixel_transform(backbone))
    dataset = _DecodeDataset(list(entries), transform, backbone.resize_size, known, max_pixels)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
    )
    records: list[FileRecord | None] = [None] * len(dataset)
    embedded = 0
    with store.writer(shard_size) as writer, tqdm(
        total=len(dataset), disable=not progress, unit="img", desc="embed", dynamic_ncols=True
    ) as bar:
        for items, pixels in loader:
            batch = [record for _, record, decoded in items if decoded]
            if batch:
                vectors = runner(pixels.numpy())
                writer.add_batch(
                    [record.sha256 for record in batch],
                    vectors,
                    [(record.width, record.height) for record in batch],
                )
                embedded += len(batch)
            for index, record, _ in items:
                if record.source == "store":
                    record.width, record.height = store.image_size(record.sha256)
                records[index] = record
            bar.update(len(items))
    logger.info("Embedded %d images, %d taken from the store", embedded, sum(r.source == "store" for r in records))
    return records
