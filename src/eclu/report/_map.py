"""Project the embeddings to two dimensions for the report's map."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MAP_METHODS = ("auto", "umap", "pca")

#: UMAP needs a neighbourhood graph; below this many images PCA is used.
MIN_UMAP_IMAGES = 10

#: Dimensions kept by PCA before UMAP, which speeds up the neighbour search.
PCA_DIMENSIONS = 50

#: Optimisation epochs of the UMAP fit. umap-learn 0.5.12 defaults to 500 for up
#: to 10,000 images and 200 above, so this shortens the optimisation of a fit on
#: 10,000 images 2.5 times. With it set, ``transform`` runs 200 // 3 = 66 epochs.
UMAP_EPOCHS = 200


@dataclass
class Projection:
    """A 2-D map of the embeddings.

    Attributes
    ----------
    coordinates : ndarray of shape (n_images, 2)
        Map position of each image, in ``clusters.csv`` order.
    method : str
        ``"umap"`` or ``"pca"``.
    note : str
        How the map was made, and why PCA when UMAP was requested.
    """

    coordinates: np.ndarray
    method: str
    note: str


def project(embeddings, method: str = "auto", fit_size: int = 10_000, random_state: int = 0) -> Projection:
    """Return 2-D coordinates of ``embeddings`` from UMAP or PCA.

    Parameters
    ----------
    embeddings : array of shape (n_images, n_features)
        Row ``i`` belongs to image ``i``.
    method : {"auto", "umap", "pca"}, default="auto"
        ``"auto"`` is UMAP when umap-learn can be imported, else PCA.
    fit_size : int, default=10_000
        UMAP is fitted on a random sample of this many images and the others
        are placed with ``transform``, which bounds time and memory.
    random_state : int, default=0
        Seed of the sample and of UMAP.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"map method must be one of {', '.join(MAP_METHODS)}, got {method!r}")
    X = _normalise(np.asarray(embeddings, dtype=np.float32))
    n = X.shape[0]
    if n == 0:
        return Projection(np.zeros((0, 2), dtype=np.float32), "pca", "no images")

    reason = ""
    if method != "pca":
        if n < MIN_UMAP_IMAGES:
            reason = f"PCA, because UMAP needs at least {MIN_UMAP_IMAGES} images and the run has {n}"
        else:
            try:
                import umap  # noqa: F401
            except ImportError:
                reason = "PCA, because umap-learn is not installed (pip install umap-learn)"
    if method == "pca" or reason:
        return Projection(_pca(X, 2, random_state), "pca", reason or "PCA, as requested")
    return _umap(X, fit_size, random_state)


def _normalise(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def _pca(X: np.ndarray, n_components: int, random_state: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    n_components = min(n_components, X.shape[0], X.shape[1])
    if n_components < 1:
        return np.zeros((X.shape[0], 2), dtype=np.float32)
    reduced = PCA(n_components=n_components, random_state=random_state).fit_transform(X)
    if reduced.shape[1] < 2:
        reduced = np.hstack([reduced, np.zeros((X.shape[0], 2 - reduced.shape[1]), dtype=reduced.dtype)])
    return reduced.astype(np.float32)


def _umap(X: np.ndarray, fit_size: int, random_state: int) -> Projection:
    import umap

    n = X.shape[0]
    if X.shape[1] > PCA_DIMENSIONS and n > PCA_DIMENSIONS:
        X = _pca(X, PCA_DIMENSIONS, random_state)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(15, n - 1),
        min_dist=0.1,
        n_epochs=UMAP_EPOCHS,
        random_state=random_state,
    )
    with warnings.catch_warnings():
        # umap-learn warns that a fixed random_state turns off parallelism; the
        # seed is kept on purpose so that a report is reproducible.
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*", category=UserWarning)
        if n <= fit_size:
            coordinates = reducer.fit_transform(X)
            note = f"UMAP of all {n:,} images"
        else:
            sample = np.sort(np.random.default_rng(random_state).choice(n, size=fit_size, replace=False))
            rest = np.setdiff1d(np.arange(n), sample)
            coordinates = np.empty((n, 2), dtype=np.float32)
            coordinates[sample] = reducer.fit_transform(X[sample])
            coordinates[rest] = reducer.transform(X[rest])
            note = f"UMAP fitted on a random sample of {fit_size:,} images; the other {n - fit_size:,} are placed with its transform"
    logger.info("Map: %s", note)
    return Projection(np.asarray(coordinates, dtype=np.float32), "umap", note)


def cached_project(embeddings, cache_dir: Path, method: str = "auto", fit_size: int = 10_000, random_state: int = 0) -> Projection:
    """Return :func:`project` of ``embeddings``, reusing the result stored in ``cache_dir``.

    The stored map is reused when the embeddings' bytes and every parameter
    match, so rebuilding a report, for example after ``eclu evaluate``,
    skips UMAP. Otherwise the map is computed and stored as
    ``map-coordinates.npy`` with its key in ``map-coordinates.json``.
    """
    key = _projection_key(embeddings, method, fit_size, random_state)
    array_path = cache_dir / "map-coordinates.npy"
    key_path = cache_dir / "map-coordinates.json"
    if array_path.is_file() and key_path.is_file():
        try:
            stored = json.loads(key_path.read_text(encoding="utf-8"))
            coordinates = np.load(array_path)
        except (OSError, ValueError) as error:
            logger.warning("Cannot read the stored map in %s (%s); computing it again", cache_dir, error)
        else:
            if stored.get("key") == key and coordinates.shape == (len(embeddings), 2):
                logger.info("Map: reusing %s", array_path)
                return Projection(coordinates.astype(np.float32), stored["method"], stored["note"])

    projection = project(embeddings, method, fit_size=fit_size, random_state=random_state)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = array_path.with_name(f".{array_path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, projection.coordinates)
    os.replace(tmp, array_path)
    key_path.write_text(json.dumps({"key": key, "method": projection.method, "note": projection.note}), encoding="utf-8")
    return projection


def _projection_key(embeddings, method: str, fit_size: int, random_state: int) -> str:
    digest = hashlib.sha256()
    array = np.ascontiguousarray(embeddings, dtype=np.float32)
    digest.update(repr((array.shape, method, fit_size, random_state, UMAP_EPOCHS, PCA_DIMENSIONS, _umap_version())).encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _umap_version() -> str:
    try:
        from importlib.metadata import version

        return version("umap-learn")
    except ImportError:
        return ""
