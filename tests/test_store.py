"""Tests for eclu.store: sharded embeddings keyed by content hash and embedding space."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eclu.store import FeatureStore, space_key

IDENTITY = {"backbone": "efficientnet_lite0", "weights": "package:x==1", "mean": [0.5] * 3, "dim": 4}


def digest_of(i: int) -> str:
    """Return the SHA-256 hex digest of ``str(i)``, used as the content hash of file number ``i``."""
    return hashlib.sha256(str(i).encode()).hexdigest()


def vectors(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start * 4, (start + n) * 4, dtype=np.float32).reshape(n, 4)


def fill(store: FeatureStore, n: int, shard_size: int, start: int = 0) -> None:
    with store.writer(shard_size) as writer:
        for i in range(start, start + n):
            writer.add(digest_of(i), vectors(1, i)[0], 10 + i, 20 + i)


def shard_indexes(store: FeatureStore) -> list:
    return sorted(store.path.glob("shard-*.parquet"))


def test_space_key_follows_identity():
    changed_weights = dict(IDENTITY, weights="file:abc")
    changed_mean = dict(IDENTITY, mean=[0.485, 0.456, 0.406])

    assert space_key(IDENTITY) == space_key(dict(IDENTITY))
    assert space_key(IDENTITY).startswith("efficientnet_lite0-")
    assert space_key(changed_weights) != space_key(IDENTITY)
    assert space_key(changed_mean) != space_key(IDENTITY)
    assert "/" not in space_key(dict(IDENTITY, backbone="a/b"))


def test_store_round_trip(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)
    fill(store, 10, shard_size=4)

    assert len(shard_indexes(store)) == 3
    assert len(store) == 10
    assert digest_of(3) in store
    assert store.hashes() == {digest_of(i) for i in range(10)}
    assert store.image_size(digest_of(7)) == (17, 27)
    order = [9, 0, 5, 5, 2]
    assert np.array_equal(store.get([digest_of(i) for i in order]), np.concatenate([vectors(1, i) for i in order]))


def test_store_reopened_sees_shards(tmp_path):
    fill(FeatureStore(tmp_path, IDENTITY), 6, shard_size=4)

    reopened = FeatureStore(tmp_path, IDENTITY)

    assert len(reopened) == 6
    assert reopened.dim == 4
    assert np.array_equal(reopened.get([digest_of(5)]), vectors(1, 5))


def test_store_spaces_kept_apart(tmp_path):
    fill(FeatureStore(tmp_path, IDENTITY), 3, shard_size=8)

    other = FeatureStore(tmp_path, dict(IDENTITY, weights="file:abc"))

    assert len(other) == 0
    assert (other.path / "space.json").is_file()


def test_store_get_missing_hash(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)
    fill(store, 2, shard_size=8)

    with pytest.raises(KeyError, match="1 hashes have no embedding"):
        store.get([digest_of(0), digest_of(99)])


def test_store_get_nothing(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)

    empty = store.get([])

    assert empty.shape == (0, 4)
    assert empty.dtype == np.float32


def test_store_first_shard_wins(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)
    with store.writer(1) as writer:
        writer.add(digest_of(0), np.ones(4), 1, 1)
        writer.add(digest_of(0), np.zeros(4), 2, 2)

    reopened = FeatureStore(tmp_path, IDENTITY)

    assert np.array_equal(reopened.get([digest_of(0)]), np.ones((1, 4)))
    assert reopened.image_size(digest_of(0)) == (1, 1)


def test_store_partial_shard_ignored(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)
    fill(store, 4, shard_size=4)
    # What a writer killed between its two renames, or during one, leaves behind.
    np.save(store.path / "shard-99999999999999999999-deadbeef.npy", vectors(2, 50))
    (store.path / ".shard-x.parquet.123.abcd.tmp").write_bytes(b"partial")

    reopened = FeatureStore(tmp_path, IDENTITY)

    assert reopened.hashes() == {digest_of(i) for i in range(4)}


def test_store_unreadable_index_skipped(tmp_path, caplog):
    store = FeatureStore(tmp_path, IDENTITY)
    fill(store, 4, shard_size=4)
    (store.path / "shard-99999999999999999999-deadbeef.parquet").write_bytes(b"not parquet")

    with caplog.at_level(logging.WARNING, logger="eclu.store"):
        reopened = FeatureStore(tmp_path, IDENTITY)

    assert len(reopened) == 4
    assert "Ignoring unreadable store shard" in caplog.text


def test_store_never_unpickles(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)
    shard = "shard-00000000000000000001-00000000"
    np.save(store.path / f"{shard}.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    table = pa.table({"sha256": [digest_of(0)], "width": pa.array([1], pa.int32()), "height": pa.array([1], pa.int32())})
    pq.write_table(table, store.path / f"{shard}.parquet")
    reopened = FeatureStore(tmp_path, dict(IDENTITY))

    # numpy refuses to memory-map or load object arrays without unpickling them.
    with pytest.raises(ValueError, match="Python objects|allow_pickle"):
        reopened.get([digest_of(0)])


def test_store_two_writers(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)
    second = FeatureStore(tmp_path, IDENTITY)

    with store.writer(3) as first_writer, second.writer(3) as second_writer:
        for i in range(5):
            first_writer.add(digest_of(i), vectors(1, i)[0], 1, 1)
            second_writer.add(digest_of(100 + i), vectors(1, 100 + i)[0], 1, 1)

    reopened = FeatureStore(tmp_path, IDENTITY)
    assert len(reopened) == 10
    assert np.array_equal(reopened.get([digest_of(104)]), vectors(1, 104))


def test_store_export(tmp_path):
    store = FeatureStore(tmp_path / "store", IDENTITY)
    fill(store, 5, shard_size=2)
    hashes = [digest_of(4), digest_of(1), digest_of(1)]
    paths = ["b/x.jpg", "a/y.jpg", "a/copy of y.jpg"]

    store.export(hashes, paths, tmp_path / "embeddings.npy", tmp_path / "embeddings.parquet")

    array = np.load(tmp_path / "embeddings.npy", allow_pickle=False)
    index = pq.read_table(tmp_path / "embeddings.parquet").to_pydict()
    assert np.array_equal(array, np.concatenate([vectors(1, 4), vectors(1, 1), vectors(1, 1)]))
    assert index == {"row": [0, 1, 2], "path": paths, "sha256": hashes}
    assert not list(tmp_path.glob(".*.tmp"))


def test_store_export_length_mismatch(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)

    with pytest.raises(ValueError, match="2 hashes but 1 paths"):
        store.export([digest_of(0), digest_of(1)], ["a.jpg"], tmp_path / "e.npy", tmp_path / "e.parquet")


def test_writer_rejects_bad_input(tmp_path):
    store = FeatureStore(tmp_path, IDENTITY)

    with pytest.raises(ValueError, match="shard_size must be at least 1"):
        store.writer(0)
    with pytest.raises(ValueError, match="same length"):
        store.writer(4).add_batch([digest_of(0)], vectors(2), [(1, 1)])
