"""ECLU: cluster image collections with pretrained neural-network features.

The top-level names are imported on first use, so ``import eclu`` stays
fast and loads neither PyTorch nor scikit-learn.
"""

from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    "cluster_folder": "eclu.pipeline",
    "evaluate_run": "eclu.pipeline",
    "ClusterRun": "eclu.pipeline",
    "ImageClusterer": "eclu.cluster",
    "FeatureStore": "eclu.store",
    "load_backbone": "eclu.backbones",
    "list_backbones": "eclu.backbones",
    "scan_folder": "eclu.scan",
    "decode_image": "eclu.decode",
    "embed_entries": "eclu.embed",
    "score_clustering": "eclu.evaluate",
    "clustering_accuracy": "eclu.evaluate",
    "export_clusters": "eclu.export",
    "find_duplicates": "eclu.duplicates",
    "move_duplicates": "eclu.quarantine",
    "find_outliers": "eclu.outliers",
    "SimilarityIndex": "eclu.similar",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eclu' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
