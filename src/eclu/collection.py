"""Embed a folder into a run folder without clustering it, and read a run's embeddings back.

``eclu duplicates`` needs the embeddings of a folder but no clusters, and
``eclu outliers``, ``eclu similar`` and ``eclu index`` work on any run folder
that contains ``embeddings.npy`` and ``embeddings.parquet``, whether
``eclu cluster`` or ``eclu duplicates`` wrote it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from . import __version__
from ._resources import package_versions, peak_rss_bytes
from .backbones import load_backbone, resolve_backbone
from .decode import DEFAULT_MAX_PIXELS
from .embed import FileRecord, embed_entries
from .outputs import read_summary, write_manifest, write_summary
from .scan import scan_folder
from .store import FeatureStore

logger = logging.getLogger(__name__)

__all__ = ["EmbeddedFolder", "embed_folder", "load_run_embeddings", "load_run_backbone"]


@dataclass
class EmbeddedFolder:
    """The embeddings of the decodable images of one folder.

    Attributes
    ----------
    input_dir : Path
        The scanned folder.
    paths : list of str
        Relative paths of the decodable images, sorted.
    hashes : list of str
        SHA-256 of each file's content, in ``paths`` order.
    embeddings : ndarray of float32, shape (n, dim)
        Row ``i`` belongs to ``paths[i]``.
    records : list of FileRecord
        One per file found, including the skipped ones.
    backbone : Backbone
        The loaded backbone, so callers can embed more images.
    store : FeatureStore
        The store the embeddings were read from.
    """

    input_dir: Path
    paths: list
    hashes: list
    embeddings: np.ndarray = field(repr=False)
    records: list = field(repr=False)
    backbone: object = field(repr=False)
    store: FeatureStore = field(repr=False)

    def ok_records(self) -> list[FileRecord]:
        """Return the records of the embedded images, in ``paths`` order."""
        return [record for record in self.records if record.status == "ok"]


def embed_folder(
    input_dir,
    out_dir=None,
    *,
    backbone="efficientnet_lite0",
    weights=None,
    batch_size: int = 64,
    num_workers: int | None = None,
    cache_dir=None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
) -> EmbeddedFolder:
    """Scan and embed a folder; with ``out_dir``, make it a run folder.

    Images that the feature store has already are not decoded again.

    Parameters
    ----------
    input_dir : path-like
        Folder of images, scanned recursively. It is only read.
    out_dir : path-like, optional
        Run folder. A new one gets ``manifest.csv``, ``embeddings.npy``,
        ``embeddings.parquet`` and ``summary.json``. An existing run folder
        (one with ``summary.json``) must have been made from the same input
        with the same backbone, and its files are left as they are, so its
        ``clusters.csv`` keeps matching its ``embeddings.npy``.
    backbone : str or Backbone, default="efficientnet_lite0"
        A name for :func:`eclu.backbones.load_backbone`, or a loaded backbone.
    weights, batch_size, num_workers, max_pixels, progress
        As for :func:`eclu.pipeline.cluster_folder`.
    cache_dir : path-like, optional
        Feature store folder; default ``out_dir/features``, or the store of
        an existing run folder.

    Returns
    -------
    EmbeddedFolder

    Raises
    ------
    ValueError
        If ``out_dir`` is a run folder of another input or backbone.
    """
    started = time.perf_counter()
    input_dir = Path(input_dir)
    entries = scan_folder(input_dir)
    logger.info("Found %d image files under %s", len(entries), input_dir)
    existing_run = out_dir is not None and (Path(out_dir) / "summary.json").is_file()
    summary = read_summary(Path(out_dir) / "summary.json") if existing_run else {}
    if isinstance(backbone, str):
        # An existing run of the same backbone keeps the centre crop it was embedded with.
        recorded = summary.get("backbone", {})
        same_backbone = recorded.get("backbone") == resolve_backbone(backbone).name
        crop_pct = recorded.get("crop_pct") if same_backbone else None
        model = load_backbone(backbone, weights=weights, crop_pct=crop_pct)
    else:
        model = backbone

    if existing_run:
        _check_same_run(Path(out_dir), summary, input_dir, model)
        store_root = Path(cache_dir) if cache_dir is not None else Path(summary["store"]).parent
    elif cache_dir is not None:
        store_root = Path(cache_dir)
    elif out_dir is not None:
        store_root = Path(out_dir) / "features"
    else:
        raise ValueError("embed_folder needs out_dir or cache_dir to know where the feature store is")
    store = FeatureStore(store_root, model.identity())

    records = embed_entries(
        entries, model, store, batch_size=batch_size, num_workers=num_workers, max_pixels=max_pixels, progress=progress
    )
    store.refresh()
    ok = [record for record in records if record.status == "ok"]
    paths = [record.path for record in ok]
    hashes = [record.sha256 for record in ok]
    embeddings = store.get(hashes)

    if out_dir is not None and not existing_run:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_manifest(out_dir / "manifest.csv", records)
        store.export(hashes, paths, out_dir / "embeddings.npy", out_dir / "embeddings.parquet")
        write_summary(out_dir / "summary.json", _summary(input_dir, store, model, records, started))
    return EmbeddedFolder(input_dir, paths, hashes, embeddings, records, model, store)


def _check_same_run(out_dir: Path, summary: dict, input_dir: Path, model) -> None:
    recorded_input = summary.get("input")
    if recorded_input and Path(recorded_input) != input_dir.resolve():
        raise ValueError(
            f"{out_dir} is the run folder of {recorded_input}, not of {input_dir.resolve()}; "
            "choose another --out folder"
        )
    recorded = _model_identity(summary.get("backbone", {}))
    current = _model_identity(model.identity())
    if recorded != current:
        raise ValueError(
            f"{out_dir} was made with backbone {recorded.get('backbone')!r} "
            f"({recorded.get('weights')}), not {current['backbone']!r} ({current['weights']}); "
            "pass the same --backbone and --weights, or choose another --out folder"
        )


def _summary(input_dir: Path, store: FeatureStore, model, records, started: float) -> dict:
    ok = sum(record.status == "ok" for record in records)
    skipped: dict[str, int] = {}
    for record in records:
        if record.status != "ok":
            skipped[record.status] = skipped.get(record.status, 0) + 1
    return {
        "eclu_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": str(input_dir.resolve()),
        "store": str(store.path.resolve()),
        "backbone": model.identity(),
        "algorithm": None,
        "counts": {
            "files": len(records),
            "ok": ok,
            "embedded": sum(record.source == "embedded" for record in records),
            "from_store": sum(record.source == "store" for record in records),
            "skipped": skipped,
        },
        "timings": {"total": round(time.perf_counter() - started, 3)},
        "peak_rss_bytes": peak_rss_bytes(),
        "metrics": None,
        "versions": package_versions(),
    }


def load_run_embeddings(run_dir) -> tuple[list[str], list[str], np.ndarray]:
    """Read a run's ``embeddings.parquet`` and ``embeddings.npy``.

    Returns
    -------
    paths : list of str
    hashes : list of str
    embeddings : ndarray of float32, memory-mapped, row ``i`` for ``paths[i]``

    Raises
    ------
    FileNotFoundError
        If the run folder has no embeddings.
    """
    run_dir = Path(run_dir)
    index_file = run_dir / "embeddings.parquet"
    array_file = run_dir / "embeddings.npy"
    for required in (index_file, array_file):
        if not required.is_file():
            raise FileNotFoundError(
                f"{required} not found: {run_dir} is not an ECLU run folder with embeddings; "
                "make one with `eclu cluster` or `eclu duplicates`"
            )
    columns = pq.read_table(index_file, columns=["path", "sha256"]).to_pydict()
    embeddings = np.load(array_file, mmap_mode="r", allow_pickle=False)
    if len(embeddings) != len(columns["path"]):
        raise ValueError(
            f"{array_file} has {len(embeddings)} rows but {index_file} lists {len(columns['path'])} files; "
            "run the command that made the run folder again"
        )
    return columns["path"], columns["sha256"], embeddings


def load_run_backbone(run_dir, weights=None):
    """Load the backbone a run was embedded with, checking that it gives the same vectors.

    Raises
    ------
    ValueError
        If the loaded backbone differs from the recorded one, for example
        because the run used ``--weights FILE`` and ``weights`` is missing.
    """
    run_dir = Path(run_dir)
    summary = read_summary(run_dir / "summary.json")
    recorded = summary["backbone"]
    model = load_backbone(recorded["backbone"], weights=weights, crop_pct=recorded.get("crop_pct"))
    current = _model_identity(model.identity())
    expected = _model_identity(recorded)
    if current != expected:
        keys = sorted(current.keys() | expected.keys())
        differing = ", ".join(key for key in keys if current.get(key) != expected.get(key))
        raise ValueError(
            f"the backbone loaded for {run_dir} differs from the one the run used in: {differing} "
            f"(weights {current['weights']} against {expected.get('weights')}); if the run used "
            "--weights FILE, pass the same file with --weights"
        )
    return model


def _model_identity(identity: dict) -> dict:
    """Return the parts of a backbone identity that fix the model and its preprocessing, not the engine."""
    return {key: value for key, value in identity.items() if key not in ("engine", "int8_scheme")}
