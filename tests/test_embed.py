"""Tests for eclu.embed: decoding workers, batched inference and the feature store."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from eclu.decode import decode_image
from eclu.embed import decode_item, default_num_workers, embed_entries
from eclu.scan import ScanEntry, scan_folder
from eclu.store import FeatureStore
from image_builders import FIXTURES, photo


@pytest.fixture
def photo_folder(tmp_path):
    """The four fixture photos, a byte copy of one, a hidden file and a broken file."""
    root = tmp_path / "photos"
    root.mkdir()
    for source in sorted(FIXTURES.glob("*.jpg")):
        shutil.copyfile(source, root / source.name)
    shutil.copyfile(FIXTURES / "china.jpg", root / "zz-copy.jpg")
    shutil.copyfile(FIXTURES / "china.jpg", root / ".hidden.jpg")
    (root / "empty.jpg").write_bytes(b"")
    return root


def test_embed_records_and_store(photo_folder, lite0, tmp_path):
    entries = scan_folder(photo_folder)
    store = FeatureStore(tmp_path / "store", lite0.identity())

    records = embed_entries(entries, lite0, store, batch_size=2, num_workers=0)

    assert [record.path for record in records] == [entry.path for entry in entries]
    by_path = {record.path: record for record in records}
    assert by_path[".hidden.jpg"].status == "hidden"
    assert by_path[".hidden.jpg"].source == ""
    assert by_path["empty.jpg"].status == "zero_size"
    ok = [record for record in records if record.status == "ok"]
    assert len(ok) == 5
    assert {record.source for record in ok} == {"embedded"}
    assert (by_path["china.jpg"].width, by_path["china.jpg"].height) == (240, 160)
    assert by_path["zz-copy.jpg"].sha256 == by_path["china.jpg"].sha256
    # Five files, four distinct contents.
    assert len(store) == 4
    vectors = store.get([record.sha256 for record in ok])
    assert vectors.shape == (5, 1280)
    assert np.all(np.isfinite(vectors))


def test_embed_second_pass_uses_store(photo_folder, lite0, tmp_path):
    entries = scan_folder(photo_folder)
    store = FeatureStore(tmp_path / "store", lite0.identity())
    first = embed_entries(entries, lite0, store, num_workers=0)

    second = embed_entries(entries, lite0, FeatureStore(tmp_path / "store", lite0.identity()), num_workers=0)

    ok = [record for record in second if record.status == "ok"]
    assert {record.source for record in ok} == {"store"}
    assert [(r.path, r.status, r.width, r.height, r.sha256) for r in second] == [
        (r.path, r.status, r.width, r.height, r.sha256) for r in first
    ]


def test_embed_keyed_by_content(photo_folder, lite0, tmp_path):
    store = FeatureStore(tmp_path / "store", lite0.identity())
    embed_entries(scan_folder(photo_folder), lite0, store, num_workers=0)
    # Renamed and swapped contents are found in the store, a re-encoded photo is new.
    shutil.copyfile(FIXTURES / "flower.jpg", photo_folder / "china.jpg")
    shutil.copyfile(FIXTURES / "china.jpg", photo_folder / "renamed.jpg")
    photo("flower.jpg").save(photo_folder / "flower.jpg", quality=70)

    records = embed_entries(scan_folder(photo_folder), lite0, store, num_workers=0)

    sources = {record.path: record.source for record in records}
    assert sources["china.jpg"] == "store"
    assert sources["renamed.jpg"] == "store"
    assert sources["flower.jpg"] == "embedded"
    assert sources["china-detail.jpg"] == "store"
    assert len(store) == 5


def test_embed_matches_model_output(lite0, tmp_path):
    entries = scan_folder(FIXTURES)
    store = FeatureStore(tmp_path / "store", lite0.identity())
    records = embed_entries(entries, lite0, store, num_workers=0)
    transform = lite0.transform()
    pictures = [decode_image(entry.absolute, draft_size=lite0.resize_size).image for entry in entries]

    with torch.inference_mode():
        direct = lite0.model(torch.stack([transform(picture) for picture in pictures])).numpy()

    stored = store.get([record.sha256 for record in records])
    assert np.allclose(stored, direct, atol=1e-3)


def test_embed_worker_processes_match(photo_folder, lite0, tmp_path):
    entries = scan_folder(photo_folder)
    in_process = FeatureStore(tmp_path / "a", lite0.identity())
    with_workers = FeatureStore(tmp_path / "b", lite0.identity())

    records = embed_entries(entries, lite0, in_process, num_workers=0)
    embed_entries(entries, lite0, with_workers, num_workers=2)

    hashes = [record.sha256 for record in records if record.status == "ok"]
    assert np.allclose(in_process.get(hashes), with_workers.get(hashes), atol=1e-5)


def test_embed_pixel_cap(photo_folder, lite0, tmp_path):
    store = FeatureStore(tmp_path / "store", lite0.identity())

    records = embed_entries(scan_folder(photo_folder), lite0, store, num_workers=0, max_pixels=1000)

    statuses = sorted(record.status for record in records)
    assert statuses == ["hidden"] + ["too_large"] * 5 + ["zero_size"]
    assert len(store) == 0


def test_embed_nothing(lite0, tmp_path):
    store = FeatureStore(tmp_path / "store", lite0.identity())

    assert embed_entries([], lite0, store, num_workers=0) == []


@pytest.mark.parametrize(("option", "value", "message"), [("batch_size", 0, "batch_size"), ("num_workers", -1, "num_workers")])
def test_embed_rejects_bad_options(lite0, tmp_path, option, value, message):
    store = FeatureStore(tmp_path / "store", lite0.identity())

    with pytest.raises(ValueError, match=message):
        embed_entries([], lite0, store, **{option: value})


def test_decode_item_hidden_not_read(tmp_path):
    entry = ScanEntry(".absent.jpg", tmp_path / ".absent.jpg", hidden=True)

    _, record, tensor = decode_item(entry, 0, None, 256, frozenset(), 10**8)

    assert record.status == "hidden"
    assert tensor is None


def test_default_num_workers():
    assert 1 <= default_num_workers() <= 8
