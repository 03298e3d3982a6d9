"""Inference engines: ONNX against PyTorch on real images, int8, caching, store keys."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from eclu.embed import embed_entries
from eclu.engines import (
    OnnxEngine,
    TorchEngine,
    create_engine,
    default_threads,
    engine_name,
    pixel_transform,
)
from eclu.scan import scan_folder
from eclu.store import FeatureStore

pytest.importorskip("onnxruntime")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def real_images():
    """24 real photos: two per flowers12 species, plus one per cifar10-test class."""
    images = []
    flowers = shared_path("flowers12")
    for species in sorted(p for p in flowers.iterdir() if p.is_dir()):
        images += [Image.open(path).convert("RGB") for path in sorted(species.iterdir())[:2]]
    cifar = shared_path("cifar10-test")
    for name in sorted(p for p in cifar.iterdir() if p.is_dir())[:10]:
        images.append(Image.open(sorted(name.iterdir())[0]).convert("RGB"))
    return images


@pytest.fixture(scope="module")
def pixels(lite0, real_images):
    transform = pixel_transform(lite0)
    return np.stack([np.asarray(transform(image), dtype=np.uint8) for image in real_images])


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-engines")


@pytest.fixture(scope="module")
def onnx_float(lite0, engine_dir):
    return create_engine(lite0, "onnx", cache_dir=engine_dir, num_threads=2)


@pytest.fixture(scope="module")
def torch_vectors(lite0, pixels):
    return TorchEngine(lite0, num_threads=2)(pixels)


def test_torch_engine_equals_timm_transform(lite0, real_images, torch_vectors):
    import torch

    transform = lite0.transform()
    batch = torch.stack([transform(image) for image in real_images])
    with torch.inference_mode():
        expected = lite0.model(batch.contiguous(memory_format=torch.channels_last)).numpy()
    np.testing.assert_allclose(torch_vectors, expected, rtol=0, atol=1e-5)


def test_onnx_matches_torch_to_1e3_cosine(onnx_float, pixels, torch_vectors):
    vectors = onnx_float(pixels)
    assert vectors.shape == (len(pixels), 1280)
    assert vectors.dtype == np.float32
    assert _cosine(vectors, torch_vectors).min() >= 1 - 1e-3


def test_onnx_batch_size_does_not_change_vectors(onnx_float, pixels):
    whole = onnx_float(pixels)
    one_by_one = np.concatenate([onnx_float(pixels[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(one_by_one, whole[:5], rtol=1e-4, atol=1e-4)


def test_onnx_export_is_cached(lite0, onnx_float, engine_dir):
    files = sorted(engine_dir.glob("*.onnx"))
    assert [f.name for f in files] == [onnx_float.path.name]
    stamp = onnx_float.path.stat().st_mtime_ns
    again = create_engine(lite0, "onnx", cache_dir=engine_dir, num_threads=1)
    assert again.path == onnx_float.path
    assert again.path.stat().st_mtime_ns == stamp
    assert not list(engine_dir.glob(".*"))


@pytest.mark.slow
def test_int8_runs_and_stays_correlated(lite0, engine_dir, pixels, torch_vectors):
    import logging

    root_handlers = list(logging.getLogger().handlers)
    engine = create_engine(lite0, "onnx", quantize="int8", cache_dir=engine_dir, num_threads=2)
    # The quantiser's root-logger handler would print every later record twice.
    assert logging.getLogger().handlers == root_handlers
    assert isinstance(engine, OnnxEngine)
    assert engine.name == "onnx-int8"
    vectors = engine(pixels)
    assert vectors.shape == (len(pixels), 1280)
    assert np.isfinite(vectors).all()
    # Convolutions that would pull the calibration images below a mean
    # cosine of 0.99 stay float32; quantising all of them gives about 0.6.
    assert _cosine(vectors, torch_vectors).mean() > 0.95
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(engine.path)).graph
    quantised = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    assert any(node.input[1] in quantised for node in convolutions)
    assert any(node.input[1] not in quantised for node in convolutions)


def test_engine_changes_store_key(lite0, tmp_path):
    paths = {
        name: FeatureStore(tmp_path, lite0.identity(name)).path
        for name in (engine_name("torch"), engine_name("onnx"), engine_name("onnx", "int8"))
    }
    assert len(set(paths.values())) == 3
    assert lite0.identity("onnx")["engine"] == "onnx"
    assert lite0.identity()["engine"] == "torch"


def test_embed_rejects_store_of_other_engine(lite0, digits_folder, tmp_path):
    store = FeatureStore(tmp_path, lite0.identity("torch"))
    with pytest.raises(ValueError, match="engine 'torch', not 'onnx'"):
        embed_entries(scan_folder(digits_folder)[:2], lite0, store, engine="onnx", num_workers=0)


def test_embed_entries_onnx_matches_torch(lite0, digits_folder, tmp_path):
    entries = scan_folder(digits_folder)[:40]
    vectors = {}
    for engine in ("torch", "onnx"):
        store = FeatureStore(tmp_path, lite0.identity(engine))
        records = embed_entries(entries, lite0, store, engine=engine, batch_size=16, num_workers=1)
        assert [record.status for record in records] == ["ok"] * 40
        assert sum(record.source == "embedded" for record in records) == 40
        vectors[engine] = store.get([record.sha256 for record in records])
    assert _cosine(vectors["onnx"], vectors["torch"]).min() >= 1 - 1e-3


@pytest.mark.parametrize(
    ("engine", "quantize", "message"),
    [("tensorrt", None, "engine must be"), ("onnx", "int4", "quantize must be"), ("torch", "int8", "needs engine='onnx'")],
)
def test_engine_name_rejects_bad_values(engine, quantize, message):
    with pytest.raises(ValueError, match=message):
        engine_name(engine, quantize)


def test_create_engine_needs_cache_dir(lite0):
    with pytest.raises(ValueError, match="cache_dir"):
        create_engine(lite0, "onnx")


def test_default_threads_leaves_room_for_workers(monkeypatch):
    monkeypatch.setattr("eclu.engines.available_cores", lambda: 8)
    assert default_threads(0) == 8
    assert default_threads(1) == 8
    assert default_threads(4) == 6
    monkeypatch.setattr("eclu.engines.available_cores", lambda: 1)
    assert default_threads(3) == 1
