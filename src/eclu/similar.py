"""Similar-image search: a FAISS index persisted in a run folder, with its file list.

A run folder's index is two files::

    index.faiss     FAISS IndexFlatIP of unit-length embeddings (exact cosine search)
    index.parquet   row, path, sha256 of every indexed image

Paths of the run's own images are relative to its input folder. Images added
later from another folder are listed by absolute path, unless they lie
inside the input folder. Adding images appends rows; the existing ones are
not computed again.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .collection import load_run_backbone, load_run_embeddings
from .decode import DEFAULT_MAX_PIXELS, file_sha256, read_file
from .embed import embed_entries
from .neighbors import normalize_rows
from .outputs import read_summary
from .scan import ScanEntry, scan_folder
from .store import FeatureStore

logger = logging.getLogger(__name__)

__all__ = ["AddResult", "Match", "SimilarityIndex", "INDEX_FILE", "FILE_LIST"]

INDEX_FILE = "index.faiss"
FILE_LIST = "index.parquet"


@dataclass(frozen=True)
class Match:
    """One search result.

    Attributes
    ----------
    rank : int
        1 for the most similar image.
    path : str
        Path as listed in ``index.parquet``.
    similarity : float
        Cosine similarity of the embeddings, at most 1.
    """

    rank: int
    path: str
    similarity: float


@dataclass
class AddResult:
    """Outcome of :meth:`SimilarityIndex.add_folder`, by file.

    Attributes
    ----------
    added : list of str
        Paths appended to the index.
    updated : list of str
        Paths already indexed whose file content changed; their vectors
        were replaced.
    unchanged : int
        Paths already indexed with the same content.
    skipped : list of (str, str)
        Files not embedded, as ``(path, status)``.
    """

    added: list = field(default_factory=list)
    updated: list = field(default_factory=list)
    unchanged: int = 0
    skipped: list = field(default_factory=list)


class SimilarityIndex:
    """The similar-image index of a run folder.

    Use :meth:`build` to make it from the run's embeddings, :meth:`load` to
    open it (building it on first use), :meth:`add_folder` to grow it and
    :meth:`search` to query it.

    Attributes
    ----------
    run_dir : Path
    paths : list of str
        Row ``i`` of the index belongs to ``paths[i]``.
    hashes : list of str
        SHA-256 of each indexed file.
    """

    def __init__(self, run_dir, index, paths: list, hashes: list):
        self.run_dir = Path(run_dir)
        self.index = index
        self.paths = list(paths)
        self.hashes = list(hashes)
        self._row_of_path = {path: row for row, path in enumerate(self.paths)}
        self._backbone = None

    def __len__(self) -> int:
        return len(self.paths)

    # -- building, loading, saving --------------------------------------
    @classmethod
    def build(cls, run_dir) -> "SimilarityIndex":
        """Build the index from a run's ``embeddings.npy`` and save it in the run folder."""
        import faiss

        paths, hashes, embeddings = load_run_embeddings(run_dir)
        index = faiss.IndexFlatIP(embeddings.shape[1])
        if len(paths):
            index.add(normalize_rows(embeddings))
        built = cls(run_dir, index, paths, hashes)
        built.save()
        logger.info("Built a similarity index of %d images in %s", len(paths), run_dir)
        return built

    @classmethod
    def load(cls, run_dir, build_missing: bool = True) -> "SimilarityIndex":
        """Open a run folder's index; build it first when it is absent and ``build_missing``.

        Raises
        ------
        FileNotFoundError
            If there is no index and ``build_missing`` is False.
        ValueError
            If the index and its file list disagree (a save was interrupted).
        """
        import faiss

        run_dir = Path(run_dir)
        index_path, list_path = run_dir / INDEX_FILE, run_dir / FILE_LIST
        if not (index_path.is_file() and list_path.is_file()):
            if build_missing:
                return cls.build(run_dir)
            raise FileNotFoundError(f"{index_path} not found; build it with `eclu index build {run_dir}`")
        index = faiss.read_index(str(index_path))
        columns = pq.read_table(list_path, columns=["path", "sha256"]).to_pydict()
        if index.ntotal != len(columns["path"]):
            raise ValueError(
                f"{index_path} contains {index.ntotal} vectors but {list_path} lists {len(columns['path'])} files; "
                f"rebuild it with `eclu index build {run_dir}` and add the extra folders again"
            )
        return cls(run_dir, index, columns["path"], columns["sha256"])

    def save(self) -> None:
        """Write ``index.faiss`` and ``index.parquet`` atomically, index first."""
        import faiss

        index_path = self.run_dir / INDEX_FILE
        tmp = index_path.with_name(f".{index_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, index_path)
        table = pa.table(
            {
                "row": pa.array(np.arange(len(self.paths), dtype=np.int64)),
                "path": pa.array(self.paths, pa.string()),
                "sha256": pa.array(self.hashes, pa.string()),
            }
        )
        list_path = self.run_dir / FILE_LIST
        tmp = list_path.with_name(f".{list_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, list_path)

    # -- growing ---------------------------------------------------------
    def add_folder(
        self,
        folder,
        *,
        weights=None,
        batch_size: int = 64,
        num_workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = False,
    ) -> AddResult:
        """Embed the images under ``folder`` and add them to the index, then save it.

        Images are embedded with the run's backbone into the run's feature
        store. A path already indexed with the same content is left alone;
        with other content its vector is replaced.

        Parameters
        ----------
        folder : path-like
            Folder of new images (or one image file), scanned recursively.
        weights : path-like, optional
            The weights file the run was made with, if it used one.
        batch_size, num_workers, max_pixels, progress
            As for :func:`eclu.embed.embed_entries`.

        Returns
        -------
        AddResult
        """
        folder = Path(folder)
        entries = scan_folder(folder)
        base = self._path_base(folder)
        store = self._store(weights)
        records = embed_entries(
            entries,
            self._backbone,
            store,
            batch_size=batch_size,
            num_workers=num_workers,
            max_pixels=max_pixels,
            progress=progress,
        )
        store.refresh()
        result = AddResult()
        new_paths, new_hashes, changed_rows = [], [], {}
        for entry, record in zip(entries, records):
            key = self._index_path(entry.absolute, base)
            if record.status != "ok":
                result.skipped.append((key, record.status))
                continue
            row = self._row_of_path.get(key)
            if row is None:
                new_paths.append(key)
                new_hashes.append(record.sha256)
            elif self.hashes[row] != record.sha256:
                changed_rows[row] = record.sha256
            else:
                result.unchanged += 1
        if changed_rows:
            self._replace_rows(changed_rows, store)
            result.updated = [self.paths[row] for row in sorted(changed_rows)]
        if new_paths:
            self.index.add(normalize_rows(store.get(new_hashes)))
            for key, sha in zip(new_paths, new_hashes):
                self._row_of_path[key] = len(self.paths)
                self.paths.append(key)
                self.hashes.append(sha)
            result.added = new_paths
        if new_paths or changed_rows:
            self.save()
        logger.info(
            "Added %d images to the index of %s (%d replaced, %d unchanged, %d skipped)",
            len(result.added), self.run_dir, len(result.updated), result.unchanged, len(result.skipped),
        )
        return result

    def _replace_rows(self, changed_rows: dict, store: FeatureStore) -> None:
        import faiss

        # IndexFlatIP cannot overwrite a row, so it is refilled from its own vectors.
        vectors = self.index.reconstruct_n(0, self.index.ntotal)
        rows = sorted(changed_rows)
        vectors[rows] = normalize_rows(store.get([changed_rows[row] for row in rows]))
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        self.index = index
        for row in rows:
            self.hashes[row] = changed_rows[row]

    # -- searching -------------------------------------------------------
    def search(self, query, top: int = 10, *, weights=None) -> list[Match]:
        """Return the ``top`` images most similar to ``query``.

        Parameters
        ----------
        query : path-like
            An image file, inside the collection or not, or a path as
            listed in the index. An indexed image is not returned as its
            own match, and its stored vector is used. A new image is
            embedded with the run's backbone and kept in the feature store.
        top : int, default=10
            Number of results.
        weights : path-like, optional
            The weights file the run was made with, if it used one.

        Returns
        -------
        list of Match
            Most similar first.

        Raises
        ------
        FileNotFoundError
            If ``query`` is neither a file nor an indexed path.
        ValueError
            If the query image cannot be decoded.
        """
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        vector, own_row = self._query_vector(query, weights)
        return self.search_vector(vector, top, exclude_row=own_row)

    def search_vector(self, vector, top: int = 10, exclude_row: int | None = None) -> list[Match]:
        """Return the ``top`` rows most similar to an embedding, leaving out ``exclude_row``."""
        if len(self.paths) == 0:
            return []
        query = normalize_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        wanted = min(top + (exclude_row is not None), len(self.paths))
        scores, rows = self.index.search(query, wanted)
        matches = []
        for row, score in zip(rows[0].tolist(), scores[0].tolist()):
            if row < 0 or row == exclude_row:
                continue
            matches.append(Match(len(matches) + 1, self.paths[row], float(min(score, 1.0))))
            if len(matches) == top:
                break
        return matches

    def _query_vector(self, query, weights):
        query_path = Path(query)
        if not query_path.is_file():
            row = self._row_of_path.get(str(query))
            if row is None:
                raise FileNotFoundError(
                    f"query image {query} not found: it is neither a file nor a path listed in "
                    f"{self.run_dir / FILE_LIST}"
                )
            return self.index.reconstruct(row), row
        key = self._index_path(query_path, self._path_base(query_path.parent))
        own_row = self._row_of_path.get(key)
        data, failure = read_file(query_path)
        if failure is not None:
            raise ValueError(f"cannot read query image {query_path}: {failure.reason}")
        sha = file_sha256(data)
        if own_row is not None and self.hashes[own_row] == sha:
            return self.index.reconstruct(own_row), own_row
        store = self._store(weights)
        record = embed_entries([ScanEntry(query_path.name, query_path.resolve())], self._backbone, store, num_workers=0)[0]
        if record.status != "ok":
            raise ValueError(f"cannot embed query image {query_path}: {record.status}: {record.reason}")
        store.refresh()
        return store.get([record.sha256])[0], own_row

    # -- helpers ---------------------------------------------------------
    def _input_dir(self) -> Path | None:
        summary_path = self.run_dir / "summary.json"
        if not summary_path.is_file():
            return None
        recorded = read_summary(summary_path).get("input")
        return Path(recorded) if recorded else None

    def _path_base(self, folder: Path) -> Path | None:
        """Return the run's input folder when ``folder`` lies inside it, else None."""
        input_dir = self._input_dir()
        if input_dir is None:
            return None
        folder = folder.resolve() if folder.is_dir() else folder.resolve().parent
        return input_dir if folder.is_relative_to(input_dir) else None

    @staticmethod
    def _index_path(absolute: Path, base: Path | None) -> str:
        # Relative to the run's input folder when inside it, so the run's own
        # images keep the paths they were indexed under; absolute otherwise.
        # Folder links are resolved, the file itself is not, so a linked
        # image keeps its own name.
        location = Path(absolute).absolute().parent.resolve() / Path(absolute).name
        if base is not None and location.is_relative_to(base):
            return location.relative_to(base).as_posix()
        return location.as_posix()

    def _store(self, weights) -> FeatureStore:
        if self._backbone is None:
            self._backbone = load_run_backbone(self.run_dir, weights=weights)
        summary = read_summary(self.run_dir / "summary.json")
        return FeatureStore(Path(summary["store"]).parent, self._backbone.identity())
