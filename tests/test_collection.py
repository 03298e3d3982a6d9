"""Embedding a folder into a run folder without clustering, and reading it back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from eclu.collection import embed_folder, load_run_backbone, load_run_embeddings


@pytest.fixture(scope="module")
def quarters(tmp_path_factory):
    """The four quarters of scikit-learn's china.jpg as PNG files, plus one undecodable file."""
    from sklearn.datasets import load_sample_image

    folder = tmp_path_factory.mktemp("quarters")
    pixels = load_sample_image("china.jpg")
    height, width = pixels.shape[0] // 2, pixels.shape[1] // 2
    for row in range(2):
        for column in range(2):
            part = pixels[row * height : (row + 1) * height, column * width : (column + 1) * width]
            Image.fromarray(part).save(folder / f"q{row}{column}.png")
    (folder / "broken.jpg").write_bytes(b"not a picture")
    return folder


def test_embed_folder_writes_run(quarters, tmp_path, feature_cache, lite0):
    folder = embed_folder(quarters, tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)
    assert folder.paths == ["q00.png", "q01.png", "q10.png", "q11.png"]
    assert folder.embeddings.shape == (4, lite0.dim)
    assert [record.status for record in folder.records] == ["undecodable", "ok", "ok", "ok", "ok"]
    for name in ("manifest.csv", "embeddings.npy", "embeddings.parquet", "summary.json"):
        assert (tmp_path / "run" / name).is_file(), name
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["input"] == str(quarters.resolve())
    assert summary["counts"]["ok"] == 4
    assert summary["counts"]["skipped"] == {"undecodable": 1}
    paths, hashes, embeddings = load_run_embeddings(tmp_path / "run")
    assert paths == folder.paths
    assert hashes == folder.hashes
    np.testing.assert_array_equal(np.asarray(embeddings), folder.embeddings)
    assert load_run_backbone(tmp_path / "run").identity() == lite0.identity()


def test_existing_run_of_other_input_rejected(quarters, tmp_path, feature_cache, lite0):
    embed_folder(quarters, tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(other / "red.png")
    with pytest.raises(ValueError, match="is the run folder of"):
        embed_folder(other, tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)


def test_existing_run_files_left_alone(quarters, tmp_path, feature_cache, lite0):
    embed_folder(quarters, tmp_path / "run", cache_dir=feature_cache, num_workers=0, backbone=lite0)
    before = (tmp_path / "run" / "summary.json").read_bytes()
    again = embed_folder(quarters, tmp_path / "run", num_workers=0)
    assert again.paths == ["q00.png", "q01.png", "q10.png", "q11.png"]
    assert all(record.source == "store" for record in again.ok_records())
    assert (tmp_path / "run" / "summary.json").read_bytes() == before


def test_missing_embeddings_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an ECLU run folder with embeddings"):
        load_run_embeddings(tmp_path)
    with pytest.raises(ValueError, match="needs out_dir or cache_dir"):
        embed_folder(tmp_path)


def test_run_with_crop_reopened(quarters, tmp_path, feature_cache):
    from eclu.pipeline import cluster_folder

    run_dir = tmp_path / "run"
    cluster_folder(quarters, run_dir, n_clusters=2, cache_dir=feature_cache, num_workers=0, crop_pct=1.0, report=False)
    model = load_run_backbone(run_dir)
    assert model.data_config["crop_pct"] == 1.0
    # Embedding the same folder into the run again keeps the run's crop.
    again = embed_folder(quarters, run_dir, num_workers=0)
    assert again.backbone.data_config["crop_pct"] == 1.0
    np.testing.assert_allclose(again.embeddings, np.load(run_dir / "embeddings.npy"), rtol=1e-5, atol=1e-5)
