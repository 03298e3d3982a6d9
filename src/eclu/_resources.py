"""Peak memory and package versions for run summaries."""

from __future__ import annotations

import importlib.metadata
import platform
import resource
import sys

__all__ = ["peak_rss_bytes", "package_versions"]

_PACKAGES = ("eclu", "torch", "timm", "scikit-learn", "numpy", "pillow", "pillow-heif", "faiss-cpu", "pyarrow")


def _maxrss_to_bytes(value: int) -> int:
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    return int(value) if sys.platform == "darwin" else int(value) * 1024


def peak_rss_bytes() -> int:
    """Return this process's peak resident set size in bytes.

    Decode workers are not included: a forked child inherits its parent's
    ``ru_maxrss``, so the children's figure would only repeat the parent's.
    """
    return _maxrss_to_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def package_versions() -> dict:
    """Return the versions of Python and of the packages a run depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
