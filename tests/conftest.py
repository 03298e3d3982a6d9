"""Shared fixtures: real images made from package data, and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Hub look-ups fail at once instead of retrying when a test requests a hub model.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_path(name: str) -> Path:
    """Return ``../shared/data/NAME``, or skip the test when it is absent."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared data folder {path} is absent; it holds the data sets for this test")
    return path


@pytest.fixture(scope="session")
def lite0():
    """The default offline backbone, loaded once per test session."""
    from eclu.backbones import load_backbone

    return load_backbone("efficientnet_lite0")


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory):
    """200 of scikit-learn's handwritten digits as PNG files, one folder per digit."""
    from eclu.demo import write_digits_folder

    folder = tmp_path_factory.mktemp("digits")
    write_digits_folder(folder, limit=200)
    return folder


@pytest.fixture(scope="session")
def cifar1000(tmp_path_factory):
    """Folder of 1,000 cifar10-test images, the first 100 of each class, as symbolic links."""
    source = shared_path("cifar10-test")
    folder = tmp_path_factory.mktemp("cifar1000")
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        (folder / class_dir.name).mkdir()
        for image in sorted(class_dir.iterdir())[:100]:
            (folder / class_dir.name / image.name).symlink_to(image)
    return folder


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory):
    """A feature store folder shared by the whole test session, so images are embedded once."""
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def cifar1000_run(cifar1000, feature_cache, tmp_path_factory):
    """A k-means run (k=10, default backbone) over ``cifar1000``, evaluated against its folders."""
    from eclu.pipeline import cluster_folder

    out = tmp_path_factory.mktemp("cifar1000-run")
    return cluster_folder(cifar1000, out, n_clusters=10, cache_dir=feature_cache, labels="folders")
