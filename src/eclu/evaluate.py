"""Evaluate: compare cluster assignments with known class labels."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "ClusteringScores",
    "clustering_accuracy",
    "score_clustering",
    "labels_from_folders",
    "labels_from_csv",
]


@dataclass(frozen=True)
class ClusteringScores:
    """Agreement between clusters and classes.

    Attributes
    ----------
    acc : float
        Clustering accuracy: the share of images whose cluster maps to their
        class under the best one-to-one matching (Hungarian algorithm).
    nmi : float
        Normalised mutual information (arithmetic mean normalisation).
    ari : float
        Adjusted Rand index.
    n_images : int
        Images that had a label and a cluster.
    n_classes, n_clusters : int
        Distinct classes and clusters among them.
    """

    acc: float
    nmi: float
    ari: float
    n_images: int
    n_classes: int
    n_clusters: int

    def as_dict(self) -> dict:
        return {
            "acc": self.acc,
            "nmi": self.nmi,
            "ari": self.ari,
            "n_images": self.n_images,
            "n_classes": self.n_classes,
            "n_clusters": self.n_clusters,
        }


def clustering_accuracy(y_true, y_pred) -> float:
    """Return the clustering accuracy under the best one-to-one label matching.

    Clusters left without a class (when there are more clusters than
    classes) count as wrong for all their members.
    """
    from scipy.optimize import linear_sum_assignment

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("cannot score an empty clustering")
    _, true_ids = np.unique(y_true, return_inverse=True)
    _, pred_ids = np.unique(y_pred, return_inverse=True)
    contingency = np.zeros((pred_ids.max() + 1, true_ids.max() + 1), dtype=np.int64)
    np.add.at(contingency, (pred_ids, true_ids), 1)
    rows, cols = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, cols].sum() / y_true.size)


def score_clustering(y_true, y_pred) -> ClusteringScores:
    """Return ACC, NMI and ARI of ``y_pred`` against ``y_true``.

    Samples whose predicted label is negative (noise) count as their own
    cluster for ACC, NMI and ARI alike.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    return ClusteringScores(
        acc=clustering_accuracy(y_true, y_pred),
        nmi=float(normalized_mutual_info_score(y_true, y_pred)),
        ari=float(adjusted_rand_score(y_true, y_pred)),
        n_images=int(y_true.size),
        n_classes=int(np.unique(y_true).size),
        n_clusters=int(np.unique(y_pred).size),
    )


def labels_from_folders(paths: Sequence[str]) -> list[str | None]:
    """Return the class of each relative path: its top-level folder name.

    Files directly in the root have no class (None).
    """
    labels: list[str | None] = []
    for path in paths:
        parts = path.split("/")
        labels.append(parts[0] if len(parts) > 1 else None)
    return labels


def labels_from_csv(csv_path, paths: Sequence[str]) -> list[str | None]:
    """Return the class of each relative path from a CSV with ``path`` and ``label`` columns."""
    csv_path = Path(csv_path)
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(
                f"labels file {csv_path} needs a header with the columns 'path' and 'label'; "
                f"found {reader.fieldnames}"
            )
        table = {row["path"].replace("\\", "/"): row["label"] for row in reader}
    return [table.get(path) for path in paths]
