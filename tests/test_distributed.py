"""Tests for eclu.distributed: embedding on a local Ray cluster bound to 127.0.0.1."""

from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import shared_path
from eclu.distributed import _SortedHashes, embed_entries_ray
from eclu.scan import scan_folder
from eclu.store import FeatureStore

# Broken files from the odd-images set and the status each one must get.
BAD_FILES = {
    "truncated.jpg": "truncated",
    "broken.png": "undecodable",
    "empty.jpg": "zero_size",
    "notes.jpg": "undecodable",
}


def _link_cifar(folder: Path, per_class: int, with_bad_files: bool) -> Path:
    source = shared_path("cifar10-test")
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        (folder / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            (folder / class_dir.name / image.name).symlink_to(image)
    if with_bad_files:
        odd = shared_path("odd-images")
        (folder / "odd").mkdir()
        for name in BAD_FILES:
            (folder / "odd" / name).symlink_to(odd / name)
    return folder


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster started in this process, bound to 127.0.0.1, shut down afterwards.

    Two embedding workers take one logical CPU each, and the third CPU runs
    the decode tasks.
    """
    with pytest.MonkeyPatch.context() as patch:
        # Ray reads this when it is first imported. Set to 0 on Linux, it
        # makes a local node use 127.0.0.1 as its address, so every Ray
        # server listens on loopback only.
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = pytest.importorskip("ray")
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER:
            pytest.fail("ray was imported before this fixture, so a local node would listen on every interface")
        ray.init(
            address="local",
            num_cpus=3,
            include_dashboard=False,
            object_store_memory=1 << 30,
            logging_level=logging.WARNING,
        )
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def cifar2000(tmp_path_factory):
    """2,000 cifar10-test images (200 per class) and four broken files, as symbolic links."""
    return _link_cifar(tmp_path_factory.mktemp("cifar2000"), 200, with_bad_files=True)


@pytest.fixture(scope="module")
def single_run(cifar2000, feature_cache, tmp_path_factory):
    """The single-machine run over ``cifar2000``: k-means with k=10."""
    from eclu.pipeline import cluster_folder

    out = tmp_path_factory.mktemp("single-run")
    return cluster_folder(cifar2000, out, n_clusters=10, cache_dir=feature_cache)


@pytest.fixture(scope="module")
def ray_run_dir(ray_cluster, cifar2000, tmp_path_factory):
    """The same run through ``eclu cluster --ray``, embedding with two Ray workers into its own store."""
    from eclu.cli import main

    out = tmp_path_factory.mktemp("ray-run")
    status = main(["cluster", str(cifar2000), "--out", str(out), "-k", "10", "--ray", "auto", "--ray-workers", "2", "-q"])
    assert status == 0
    return out


def _read_manifest(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def _read_clusters(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["path"]: int(row["cluster"]) for row in csv.DictReader(handle)}


def _embeddings_by_path(run_dir: Path) -> dict:
    array = np.load(run_dir / "embeddings.npy", allow_pickle=False)
    paths = pq.read_table(run_dir / "embeddings.parquet").column("path").to_pylist()
    return dict(zip(paths, array))


def test_sorted_hashes_membership():
    digests = sorted(f"{value:064x}" for value in (3, 1, 2))
    hashes = _SortedHashes(np.asarray(digests, dtype="S64"))

    assert f"{2:064x}" in hashes
    assert f"{4:064x}" not in hashes
    assert f"{0:064x}" not in hashes
    assert f"{1:064x}" not in _SortedHashes(np.asarray([], dtype="S64"))


def test_core_does_not_import_ray():
    code = "import sys, eclu.pipeline, eclu.cli; eclu.cli.build_parser(); print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"


def test_ray_run_equals_single_machine(single_run, ray_run_dir):
    single_dir = single_run.out_dir

    assert (ray_run_dir / "summary.json").is_file()
    single_manifest = _read_manifest(single_dir / "manifest.csv")
    ray_manifest = _read_manifest(ray_run_dir / "manifest.csv")
    assert len(ray_manifest) == 2004
    assert ray_manifest.keys() == single_manifest.keys()
    for path, row in single_manifest.items():
        for column in ("status", "reason", "bytes", "width", "height", "sha256"):
            assert ray_manifest[path][column] == row[column], (path, column)

    single_embeddings = _embeddings_by_path(single_dir)
    ray_embeddings = _embeddings_by_path(ray_run_dir)
    assert len(ray_embeddings) == 2000
    assert ray_embeddings.keys() == single_embeddings.keys()
    paths = sorted(single_embeddings)
    np.testing.assert_allclose(
        np.stack([ray_embeddings[p] for p in paths]),
        np.stack([single_embeddings[p] for p in paths]),
        rtol=1e-4,
        atol=1e-5,
    )

    assert _read_clusters(ray_run_dir / "clusters.csv") == _read_clusters(single_dir / "clusters.csv")


def test_ray_run_reports_bad_files(ray_run_dir):
    manifest = _read_manifest(ray_run_dir / "manifest.csv")

    for name, status in BAD_FILES.items():
        assert manifest[f"odd/{name}"]["status"] == status, name
    assert sum(row["status"] == "ok" for row in manifest.values()) == 2000


def test_ray_run_store_is_complete(ray_run_dir):
    import json

    summary = json.loads((ray_run_dir / "summary.json").read_text(encoding="utf-8"))
    store = FeatureStore(Path(summary["store"]).parent, summary["backbone"])
    manifest = _read_manifest(ray_run_dir / "manifest.csv")
    hashes = {row["sha256"] for row in manifest.values() if row["status"] == "ok"}

    assert summary["counts"]["embedded"] == 2000
    assert summary["parameters"]["ray_workers"] == 2
    assert hashes <= store.hashes()
    assert len(list(store.path.glob("shard-*.parquet"))) >= 2


def _embed_workers() -> list:
    """Return the Ray worker processes of this test session that hold an embedding actor."""
    import psutil

    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            title = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "_EmbedWorker" in title:
            found.append(process)
    return found


def _kill_one_worker_after_first_shard(store_path: Path, state: dict, stop: threading.Event) -> None:
    """Wait for the first shard, then SIGKILL one embedding worker while blocks remain."""
    while not stop.is_set():
        shards = sorted(store_path.glob("shard-*.parquet"))
        workers = _embed_workers()
        if shards and workers:
            state["shards_before_kill"] = {shard.name: shard.stat().st_size for shard in shards}
            victim = workers[0]
            os.kill(victim.pid, signal.SIGKILL)
            state["killed_pid"] = victim.pid
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def killed_run(ray_cluster, lite0, tmp_path_factory):
    """Embed 300 images with two Ray workers and SIGKILL one worker after the first shard is written."""
    root = tmp_path_factory.mktemp("killed-run")
    folder = _link_cifar(root / "input", 30, with_bad_files=False)
    entries = scan_folder(folder)
    store = FeatureStore(root / "features", lite0.identity())
    state: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=_kill_one_worker_after_first_shard, args=(store.path, state, stop), daemon=True)
    killer.start()
    try:
        records = embed_entries_ray(entries, lite0, store, workers=2, block_size=30, batch_size=30)
    finally:
        stop.set()
        killer.join()
    return {"folder": folder, "entries": entries, "store": store, "records": records, **state}


def test_killed_worker_loses_nothing(killed_run, single_run):
    entries, store, records = killed_run["entries"], killed_run["store"], killed_run["records"]

    assert "killed_pid" in killed_run, "no embedding worker was found to kill"
    for name, size in killed_run["shards_before_kill"].items():
        assert (store.path / name).stat().st_size == size, name
    assert len(records) == 300
    assert [record.path for record in records] == [entry.path for entry in entries]
    assert all(record.status == "ok" for record in records)
    assert all(record.source == "embedded" for record in records)
    store.refresh()
    assert {record.sha256 for record in records} <= store.hashes()
    reference = _embeddings_by_path(single_run.out_dir)
    np.testing.assert_allclose(
        store.get([record.sha256 for record in records]),
        np.stack([reference[record.path] for record in records]),
        rtol=1e-4,
        atol=1e-5,
    )


def test_rerun_embeds_only_new_files(killed_run, lite0):
    folder, store = killed_run["folder"], killed_run["store"]
    source = shared_path("cifar10-test")
    for class_dir in sorted(folder.iterdir()):
        for image in sorted((source / class_dir.name).iterdir())[30:33]:
            (class_dir / image.name).symlink_to(image)
    (folder / "empty.jpg").write_bytes(b"")
    entries = scan_folder(folder)

    records = embed_entries_ray(entries, lite0, store, workers=2, block_size=30, batch_size=30)

    by_path = {record.path: record for record in records}
    assert len(records) == 331
    assert sum(record.source == "store" for record in records) == 300
    assert sum(record.source == "embedded" for record in records) == 30
    assert by_path["empty.jpg"].status == "zero_size"
    for record in killed_run["records"]:
        assert by_path[record.path].source == "store"
        assert (by_path[record.path].width, by_path[record.path].height) == (32, 32)
    store.refresh()
    assert {record.sha256 for record in records if record.status == "ok"} <= store.hashes()


def test_too_many_workers_rejected(ray_cluster, digits_folder, tmp_path, lite0):
    store = FeatureStore(tmp_path / "features", lite0.identity())

    with pytest.raises(ValueError, match="leaves less than one CPU for decoding"):
        embed_entries_ray(scan_folder(digits_folder), lite0, store, workers=3)
    assert store.hashes() == set()


def test_unreachable_address_fails_fast():
    import socket

    from eclu.distributed import _probe_address

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    # Nothing listens on the port any more, so the probe is refused at once.
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        _probe_address(f"127.0.0.1:{port}", timeout=5.0)
