"""Embed on a Ray cluster: a Ray Data pipeline that writes to the feature store.

The file listing from :func:`eclu.scan.scan_folder` is split into blocks of
``block_size`` files. Each block is read, hashed and decoded in a Ray task
(with :func:`eclu.embed.decode_item`, so file statuses are the same as in a
single-machine run) and then embedded by one of ``workers`` Ray actors. Each
actor loads the backbone once and writes the embeddings of every block it
processes as one feature-store shard, atomically, so a shard either exists
whole or not at all.

Fault tolerance comes from Ray's defaults, which this module keeps because
Ray 2.60 deprecates passing them to ``map_batches``. Ray core retries a task
whose process died up to 3 times (``max_retries=3``), and Ray Data restarts
a dead actor without limit (``max_restarts=-1``) and retries its unfinished
block on a live actor (``max_task_retries=-1``). Shards written before a
failure stay in the store. A block that is retried after its shard was
written only writes a second shard with the same hashes, which readers
ignore.

Every node must see the input files and the feature store folder at the same
absolute paths (a shared file system), and must have ECLU installed with the
same backbone weights. Ray is an optional dependency (``pip install
eclu[ray]``): this module imports it only when a function runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from .decode import DEFAULT_MAX_PIXELS
from .embed import FileRecord, decode_item
from .scan import ScanEntry
from .store import FeatureStore

logger = logging.getLogger(__name__)

__all__ = ["embed_entries_ray"]

#: Blocks that one Ray worker process decodes before Ray replaces it.
DECODE_TASKS_PER_PROCESS = 100

# Record fields that travel through the pipeline as columns, besides "index".
_TEXT_FIELDS = ("path", "status", "reason", "sha256", "source")
_INT_FIELDS = ("bytes", "width", "height")


class _SortedHashes:
    """Membership test on a sorted array of hex digests, for :func:`decode_item`.

    A NumPy array is read from the Ray object store without a copy, so every
    decode task can test against millions of stored hashes cheaply.
    """

    def __init__(self, digests: np.ndarray):
        self.digests = digests

    def __contains__(self, sha256: str) -> bool:
        if not len(self.digests):
            return False
        key = sha256.encode("ascii")
        position = int(np.searchsorted(self.digests, key))
        return position < len(self.digests) and self.digests[position] == key


def _decode_block(batch: dict, *, transform, draft_size: int, known, max_pixels: int) -> dict:
    """Read, hash and decode one block of files (a Ray Data map function).

    Returns the record fields as columns plus ``pixels``: one preprocessed
    float32 tensor per file to embed, and an empty array for every other file.
    """
    import ray

    if isinstance(known, ray.ObjectRef):
        known = ray.get(known)
    hashes = _SortedHashes(known)
    columns: dict[str, list] = {name: [] for name in ("index", *_TEXT_FIELDS, *_INT_FIELDS, "pixels")}
    for index, path, absolute, hidden in zip(batch["index"], batch["path"], batch["absolute"], batch["hidden"]):
        entry = ScanEntry(str(path), Path(str(absolute)), hidden=bool(hidden))
        _, record, tensor = decode_item(entry, int(index), transform, draft_size, hashes, max_pixels)
        columns["index"].append(int(index))
        for name in (*_TEXT_FIELDS, *_INT_FIELDS):
            columns[name].append(getattr(record, name))
        pixels = tensor.numpy() if tensor is not None else np.zeros((0, 0, 0), dtype=np.float32)
        columns["pixels"].append(pixels)
    return _to_batch(columns)


def _to_batch(columns: dict[str, list]) -> dict:
    batch = {"index": np.asarray(columns["index"], dtype=np.int64)}
    for name in _TEXT_FIELDS:
        batch[name] = np.asarray(columns[name], dtype=object)
    for name in _INT_FIELDS:
        batch[name] = np.asarray(columns[name], dtype=np.int64)
    # Tensors of different shapes (empty for files that are not embedded)
    # become a variable-shaped tensor column in Ray Data.
    pixels = np.empty(len(columns["pixels"]), dtype=object)
    pixels[:] = columns["pixels"]
    batch["pixels"] = pixels
    return batch


class _EmbedWorker:
    """Ray Data actor that loads the backbone once, embeds blocks and writes one shard per block."""

    def __init__(self, *, backbone: str, weights, crop_pct, store_root: str, identity: dict, batch_size: int):
        from .backbones import load_backbone

        self.backbone = load_backbone(backbone, weights=weights, crop_pct=crop_pct)
        found = self.backbone.identity()
        if found != identity:
            raise RuntimeError(
                f"backbone {backbone!r} on this Ray node gives the embedding space {found}, "
                f"but the driver uses {identity}; install the same ECLU, timm and weights "
                "package versions on every node"
            )
        self.store = FeatureStore(store_root, identity)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        import torch

        pixels = batch.pop("pixels")
        rows = [row for row in range(len(pixels)) if np.size(pixels[row])]
        if not rows:
            return batch
        vectors = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            inputs = torch.from_numpy(np.stack([pixels[row] for row in chunk]).astype(np.float32, copy=False))
            with torch.inference_mode():
                features = self.backbone.model(inputs.contiguous(memory_format=torch.channels_last))
            vectors.append(features.float().cpu().numpy())
        # One shard per block: the shard exists whole once this call returns,
        # and a block retried after a failure writes its rows again.
        writer = self.store.writer(shard_size=len(rows))
        writer.add_batch(
            [str(batch["sha256"][row]) for row in rows],
            np.concatenate(vectors),
            [(int(batch["width"][row]), int(batch["height"][row])) for row in rows],
        )
        writer.close()
        return batch


def embed_entries_ray(
    entries: Sequence[ScanEntry],
    backbone,
    store: FeatureStore,
    *,
    address: str = "auto",
    workers: int = 2,
    worker_cpus: float = 1.0,
    weights=None,
    batch_size: int = 64,
    block_size: int = 256,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
) -> list[FileRecord]:
    """Embed every scanned file that the store does not have yet, on a Ray cluster.

    The records and the store content are the same as those of
    :func:`eclu.embed.embed_entries`. The embeddings can differ by float32
    rounding, because the actors run the model on other batches.

    Parameters
    ----------
    entries : sequence of ScanEntry
        Files from :func:`eclu.scan.scan_folder`, at paths every Ray node can read.
    backbone : Backbone
        The loaded backbone; each actor loads its own copy by name.
    store : FeatureStore
        The store of ``backbone.identity()``, in a folder every node can write.
    address : str, default="auto"
        Ray cluster to connect to, as for ``ray.init(address=...)``: ``"auto"``
        (the cluster started on this machine with ``ray start``),
        ``"ray://HOST:10001"`` (Ray Client) or ``"HOST:6379"``. When this
        process is already connected to Ray, that connection is used and
        ``address`` is ignored.
    workers : int, default=2
        Embedding actors, each holding one copy of the backbone.
    worker_cpus : float, default=1.0
        CPUs that Ray reserves for each actor; PyTorch in the actor uses as
        many threads as Ray sets ``OMP_NUM_THREADS`` to.
    weights : path-like, optional
        Local weights file the backbone was loaded with; every node must be
        able to read it at this path.
    batch_size : int, default=64
        Images per forward pass.
    block_size : int, default=256
        Files per block: the unit of decoding, of retries and of store shards.
        A block in flight holds about ``block_size`` preprocessed images
        (600 kB each at 224 x 224) in the Ray object store.
    max_pixels : int
        Decompressed pixel cap, see :func:`eclu.decode.decode_image`.
    progress : bool, default=False
        Show Ray Data's progress bars on standard error.

    Returns
    -------
    list of FileRecord
        One per entry, in the order of ``entries``.

    Raises
    ------
    ImportError
        If Ray is not installed.
    ConnectionError
        If connecting to a Ray cluster at ``address`` fails.
    ValueError
        If the workers would take every CPU of the cluster, leaving none for
        decoding.
    ray.exceptions.RayError
        If a block still fails after Ray's retries.
    RuntimeError
        If the pipeline returned no record for some files.
    """
    for name, value in (("workers", workers), ("batch_size", batch_size), ("block_size", block_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if worker_cpus <= 0:
        raise ValueError(f"worker_cpus must be positive, got {worker_cpus}")
    try:
        import ray
    except ImportError:
        raise ImportError(
            "embedding on Ray needs the ray package; install it with `pip install 'eclu[ray]'`"
        ) from None

    entries = list(entries)
    records: list[FileRecord | None] = [None] * len(entries)
    if not entries:
        return []
    started_here = _connect(ray, address)
    context = ray.data.DataContext.get_current()
    progress_before = context.enable_progress_bars
    context.enable_progress_bars = progress
    try:
        _check_resources(ray, workers, worker_cpus)
        dataset = _build_dataset(
            ray, entries, backbone, store, workers, worker_cpus, weights, batch_size, block_size, max_pixels
        )
        duplicates = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for row, index in enumerate(batch["index"]):
                if records[index] is not None:
                    # A block retried after its output was delivered.
                    duplicates += 1
                    continue
                records[index] = _record_from_batch(batch, row)
    finally:
        context.enable_progress_bars = progress_before
        if started_here:
            ray.shutdown()
    missing = [entries[i].path for i, record in enumerate(records) if record is None]
    if missing:
        raise RuntimeError(
            f"the Ray pipeline returned no record for {len(missing)} files, for example {missing[0]}; "
            "run the command again: embeddings already written are kept in the store"
        )
    if duplicates:
        logger.info("Ignored %d records of blocks that Ray ran twice", duplicates)

    store.refresh()
    for record in records:
        if record.source == "store":
            record.width, record.height = store.image_size(record.sha256)
    embedded = sum(record.source == "embedded" for record in records)
    from_store = sum(record.source == "store" for record in records)
    logger.info("Embedded %d images on Ray with %d workers, %d taken from the store", embedded, workers, from_store)
    return records


def _connect(ray, address: str) -> bool:
    """Connect to Ray unless this process is connected already, and return whether it connected now."""
    if ray.is_initialized():
        logger.info("Using the Ray cluster this process is already connected to")
        return False
    logger.info("Connecting to the Ray cluster at %s", address)
    _probe_address(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as error:
        raise ConnectionError(
            f"failed to connect to a Ray cluster at {address!r}: {str(error).rstrip('.')}. Start one with "
            "`ray start --head` (and `ray start --address HEAD:6379` on the other nodes), "
            "or pass its address"
        ) from None
    return True


def _probe_address(address: str, timeout: float = 10.0) -> None:
    """Raise ConnectionError when HOST:PORT does not accept a TCP connection.

    ``ray.init`` retries an unreachable address for minutes, so a plain TCP
    connection with a timeout is tried first. ``auto`` and ``local`` are
    left to Ray.
    """
    import socket

    target = address.removeprefix("ray://")
    host, separator, port = target.rpartition(":")
    if not separator or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise ConnectionError(
            f"failed to connect to a Ray cluster at {address!r}: {error}. Start one with "
            "`ray start --head` (and `ray start --address HEAD:6379` on the other nodes), "
            "or pass its address"
        ) from None


def _check_resources(ray, workers: int, worker_cpus: float) -> None:
    """Raise if the actors would take every CPU, so that no decode task could run."""
    total = ray.cluster_resources().get("CPU", 0)
    if workers * worker_cpus > total - 1:
        # NOTE: an autoscaling cluster could add CPUs later, but this check
        # counts only the CPUs of the nodes that are running now.
        raise ValueError(
            f"{workers} Ray workers with {worker_cpus} CPUs each need {workers * worker_cpus:g} of the "
            f"{total:g} CPUs of the Ray cluster, which leaves less than one CPU for decoding; "
            "use fewer workers or add nodes"
        )


def _build_dataset(ray, entries, backbone, store, workers, worker_cpus, weights, batch_size, block_size, max_pixels):
    import pyarrow as pa

    known = np.sort(np.asarray(sorted(store.hashes()), dtype="S64"))
    table = pa.table(
        {
            "index": pa.array(np.arange(len(entries), dtype=np.int64)),
            "path": pa.array([entry.path for entry in entries], pa.string()),
            "absolute": pa.array([str(entry.absolute) for entry in entries], pa.string()),
            "hidden": pa.array([entry.hidden for entry in entries], pa.bool_()),
        }
    )
    blocks = [table.slice(start, block_size) for start in range(0, len(entries), block_size)]
    logger.info("Embedding %d files in %d blocks of up to %d on Ray", len(entries), len(blocks), block_size)
    dataset = ray.data.from_arrow(blocks)
    dataset = dataset.map_batches(
        _decode_block,
        batch_size=block_size,
        batch_format="numpy",
        fn_kwargs={
            "transform": backbone.transform(),
            "draft_size": backbone.resize_size,
            "known": ray.put(known),
            "max_pixels": max_pixels,
        },
        num_cpus=1,
        # Ray Data fuses a map step into the next one when their remote
        # arguments are equal, which would move decoding into the actors.
        # A limit on calls that the actors do not have keeps decoding in
        # separate tasks, and replacing a decode process after that many
        # blocks also returns the memory that image decoders leave behind.
        max_calls=DECODE_TASKS_PER_PROCESS,
    )
    return dataset.map_batches(
        _EmbedWorker,
        batch_size=block_size,
        batch_format="numpy",
        fn_constructor_kwargs={
            "backbone": backbone.name,
            "weights": str(weights) if weights is not None else None,
            # The actors rebuild the backbone with the driver's crop, which
            # may differ from the registry's.
            "crop_pct": backbone.data_config["crop_pct"],
            "store_root": str(store.path.parent),
            "identity": store.identity,
            "batch_size": batch_size,
        },
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=worker_cpus,
    )


def _record_from_batch(batch: dict, row: int) -> FileRecord:
    values = {name: str(batch[name][row]) for name in _TEXT_FIELDS}
    values.update({name: int(batch[name][row]) for name in _INT_FIELDS})
    return FileRecord(**values)
