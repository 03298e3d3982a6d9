"""Shared fixtures: real images made from package data, and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Hub look-ups fail at once instead of retrying when a test asks for a hub model.
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
