"""Feature store: embeddings on disk, keyed by file content and backbone.

Layout of one store folder (one per backbone and preprocessing)::

    ROOT/<space>/space.json                    backbone, weights, preprocessing, dim
    ROOT/<space>/shard-<stamp>.npy             float32 array (n, dim)
    ROOT/<space>/shard-<stamp>.parquet         sha256, width, height for each row

A shard is written to temporary names and renamed into place, array first
and index last, so a shard exists for readers only once its Parquet index
exists. A process killed while embedding therefore loses at most the rows it
had not flushed yet, and several writers (processes or Ray actors) may add
shards to one store at the same time. Nothing is ever unpickled: arrays are
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

__all__ = ["FeatureStore", "ShardWriter", "space_key"]

_STORE_FORMAT = 1
_INDEX_SCHEMA = pa.schema(
    [("sha256", pa.string()), ("width", pa.int32()), ("height", pa.int32())]
)


def space_key(identity: dict) -> str:
    """Return a folder name for an embedding space described by ``identity``.

    The name is the backbone name followed by a hash of the whole identity
    (weights, preprocessing, store format), so two configurations that would
    give different vectors never share a folder.
    """
    payload = dict(identity, store_format=_STORE_FORMAT)
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(identity.get("backbone", "x")))
    return f"{name}-{digest[:12]}"


@dataclass(frozen=True)
class _Location:
    shard: str
    row: int


class FeatureStore:
    """Embeddings of one embedding space, stored as shards in a folder.

    Parameters
    ----------
    root : path-like
        Folder holding one sub-folder per embedding space. It may be shared
        between runs (a cache folder) or live inside a run's output folder.
    identity : dict
        Describes the embedding space: backbone name, weights, preprocessing
        and embedding dimension. Its hash names the sub-folder.

    Attributes
    ----------
    path : Path
        The folder of this embedding space.
    dim : int or None
        Embedding dimension, known once a shard was written.
    """

    def __init__(self, root, identity: dict):
        self.identity = dict(identity)
        self.path = Path(root) / space_key(self.identity)
        self.path.mkdir(parents=True, exist_ok=True)
        meta = self.path / "space.json"
        if not meta.exists():
            _atomic_write_text(meta, json.dumps(self.identity, indent=2, sort_keys=True))
        self._index: dict[str, _Location] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._loaded_shards: set[str] = set()
        self.dim: int | None = self.identity.get("dim")
        self.refresh()

    # -- reading ---------------------------------------------------------
    def refresh(self) -> None:
        """Load the index of shards written since the last refresh."""
        for index_file in sorted(self.path.glob("shard-*.parquet")):
            shard = index_file.name[: -len(".parquet")]
            if shard in self._loaded_shards:
                continue
            try:
                table = pq.read_table(index_file)
            except (OSError, pa.ArrowInvalid) as error:
                logger.warning("Ignoring unreadable store shard %s: %s", index_file, error)
                continue
            columns = table.to_pydict()
            for row, (sha, width, height) in enumerate(
                zip(columns["sha256"], columns["width"], columns["height"])
            ):
                # The first shard that stored a hash wins, so readers agree.
                if sha not in self._index:
                    self._index[sha] = _Location(shard, row)
                    self._sizes[sha] = (width, height)
            self._loaded_shards.add(shard)
        if self.dim is None and self._loaded_shards:
            first = next(iter(sorted(self._loaded_shards)))
            self.dim = int(np.load(self.path / f"{first}.npy", mmap_mode="r").shape[1])

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._index

    def hashes(self) -> set[str]:
        """Return the set of content hashes that have an embedding."""
        return set(self._index)

    def image_size(self, sha256: str) -> tuple[int, int]:
        """Return the (width, height) recorded with an embedding."""
        return self._sizes[sha256]

    def get(self, hashes: Sequence[str], dtype=np.float32) -> np.ndarray:
        """Return the embeddings of ``hashes`` as an array, in that order.

        Raises
        ------
        KeyError
            If a hash has no embedding in this store.
        """
        missing = [sha for sha in hashes if sha not in self._index]
        if missing:
            raise KeyError(
                f"{len(missing)} hashes have no embedding in {self.path}, "
                f"for example {missing[0]}; embed those files first"
            )
        if not hashes:
            return np.zeros((0, self.dim or 0), dtype=dtype)
        out = np.empty((len(hashes), self.dim), dtype=dtype)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for position, sha in enumerate(hashes):
            location = self._index[sha]
            by_shard.setdefault(location.shard, []).append((position, location.row))
        for shard, pairs in by_shard.items():
            array = np.load(self.path / f"{shard}.npy", mmap_mode="r", allow_pickle=False)
            positions = np.fromiter((p for p, _ in pairs), dtype=np.int64, count=len(pairs))
            rows = np.fromiter((r for _, r in pairs), dtype=np.int64, count=len(pairs))
            order = np.argsort(rows, kind="stable")
            out[positions[order]] = array[rows[order]]
        return out

    # -- writing ---------------------------------------------------------
    def writer(self, shard_size: int = 1024) -> "ShardWriter":
        """Return a writer that adds embeddings in shards of ``shard_size`` rows."""
        return ShardWriter(self, shard_size)

    def export(self, hashes: Sequence[str], paths: Sequence[str], npy_path, parquet_path) -> None:
        """Write the embeddings of ``hashes`` as one ``.npy`` plus a Parquet index.

        Row ``i`` of the array belongs to ``paths[i]``. The index has the
        columns ``row``, ``path`` and ``sha256``.
        """
        if len(hashes) != len(paths):
            raise ValueError(f"got {len(hashes)} hashes but {len(paths)} paths")
        array = self.get(hashes)
        _atomic_save_npy(Path(npy_path), array)
        table = pa.table(
            {
                "row": pa.array(np.arange(len(paths), dtype=np.int64)),
                "path": pa.array(list(paths), pa.string()),
                "sha256": pa.array(list(hashes), pa.string()),
            }
        )
        _atomic_write_parquet(Path(parquet_path), table)


class ShardWriter:
    """Buffer embeddings and write them to a store as atomic shards.

    Use it as a context manager, or call :meth:`close`: rows still buffered
    when it closes are flushed. Rows lost by a crash are embedded again by
    the next run.
    """

    def __init__(self, store: FeatureStore, shard_size: int = 1024):
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.store = store
        self.shard_size = shard_size
        self._vectors: list[np.ndarray] = []
        self._hashes: list[str] = []
        self._sizes: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self.rows_written = 0

    def add(self, sha256: str, vector: np.ndarray, width: int, height: int) -> None:
        """Buffer one embedding, and flush when the buffer contains a full shard."""
        self.add_batch([sha256], np.asarray(vector)[None, :], [(width, height)])

    def add_batch(self, hashes: Sequence[str], vectors: np.ndarray, sizes: Iterable[tuple[int, int]]) -> None:
        """Buffer a batch of embeddings with their image sizes."""
        vectors = np.asarray(vectors, dtype=np.float32)
        sizes = list(sizes)
        if not (len(hashes) == len(vectors) == len(sizes)):
            raise ValueError("hashes, vectors and sizes must have the same length")
        with self._lock:
            self._hashes.extend(hashes)
            self._vectors.extend(vectors)
            self._sizes.extend(sizes)
            if len(self._hashes) >= self.shard_size:
                self._flush_locked()

    def flush(self) -> None:
        """Write the buffered rows as one shard."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._hashes:
            return
        array = np.stack(self._vectors).astype(np.float32, copy=False)
        stamp = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        shard = f"shard-{stamp}"
        _atomic_save_npy(self.store.path / f"{shard}.npy", array)
        table = pa.table(
            {
                "sha256": pa.array(self._hashes, pa.string()),
                "width": pa.array([w for w, _ in self._sizes], pa.int32()),
                "height": pa.array([h for _, h in self._sizes], pa.int32()),
            },
            schema=_INDEX_SCHEMA,
        )
        _atomic_write_parquet(self.store.path / f"{shard}.parquet", table)
        logger.debug("Wrote %d embeddings to %s", len(self._hashes), shard)
        self.rows_written += len(self._hashes)
        self._vectors, self._hashes, self._sizes = [], [], []
        self.store.refresh()

    def close(self) -> None:
        """Flush the remaining rows."""
        self.flush()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = _temporary_name(path)
    with open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_write_parquet(path: Path, table: pa.Table) -> None:
    tmp = _temporary_name(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = _temporary_name(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
