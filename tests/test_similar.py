"""Similar-image search: a persisted index, queries inside and outside the collection, growth."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_path
from eclu.collection import embed_folder
from eclu.similar import FILE_LIST, INDEX_FILE, SimilarityIndex
from eclu.variants import write_variants


@pytest.fixture(scope="module")
def flower_run(tmp_path_factory, feature_cache, lite0):
    """A run folder of 24 flower photos, 2 per species, without clusters."""
    source = shared_path("flowers12")
    folder = tmp_path_factory.mktemp("flowers")
    for species in sorted(path for path in source.iterdir() if path.is_dir()):
        (folder / species.name).mkdir()
        for image in sorted(species.glob("*.jpg"))[10:80:40]:
            (folder / species.name / image.name).symlink_to(image)
    run = tmp_path_factory.mktemp("flower-run")
    embed_folder(folder, run, cache_dir=feature_cache, num_workers=0, backbone=lite0)
    return folder, run


@pytest.fixture()
def index(flower_run, tmp_path):
    # Each test gets its own copy of the run folder, so growing the index stays local.
    import shutil

    _, run = flower_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return SimilarityIndex.build(copy)


@pytest.mark.slow
@pytest.mark.shared
def test_build_persists_index(index):
    assert len(index) == 24
    assert (index.run_dir / INDEX_FILE).is_file()
    assert (index.run_dir / FILE_LIST).is_file()
    loaded = SimilarityIndex.load(index.run_dir, build_missing=False)
    assert loaded.paths == index.paths
    assert loaded.index.ntotal == 24


@pytest.mark.slow
@pytest.mark.shared
def test_query_by_indexed_path(index, flower_run):
    folder, _ = flower_run
    query = index.paths[0]
    by_key = index.search(query, top=5)
    assert [match.rank for match in by_key] == [1, 2, 3, 4, 5]
    assert query not in [match.path for match in by_key]
    similarities = [match.similarity for match in by_key]
    assert similarities == sorted(similarities, reverse=True)
    assert all(-1.0 <= value <= 1.0 for value in similarities)
    by_file = index.search(folder / query, top=5)
    assert by_file == by_key


@pytest.mark.slow
@pytest.mark.shared
def test_query_by_new_image(index, flower_run, tmp_path):
    folder, _ = flower_run
    source = folder / "daisy" / sorted(path.name for path in (folder / "daisy").iterdir())[0]
    copies = write_variants(source, tmp_path / "outside", variants=("jpeg40",))
    matches = index.search(copies["jpeg40"], top=3)
    assert matches[0].path == f"daisy/{source.name}"
    assert matches[0].similarity > 0.9
    assert matches[1].similarity < matches[0].similarity


@pytest.mark.slow
@pytest.mark.shared
def test_add_folder_grows_index(index, flower_run, tmp_path):
    folder, _ = flower_run
    source = folder / "iris" / sorted(path.name for path in (folder / "iris").iterdir())[0]
    new = tmp_path / "new"
    written = write_variants(source, new, variants=("crop5", "half", "cmyk"))
    (new / "notes.jpg").write_bytes(b"not an image")

    result = index.add_folder(new, num_workers=0)
    assert sorted(result.added) == sorted(Path(path).resolve().as_posix() for path in written.values())
    assert result.skipped == [(str((new / "notes.jpg").resolve().as_posix()), "undecodable")]
    assert len(index) == 27

    reloaded = SimilarityIndex.load(index.run_dir, build_missing=False)
    assert len(reloaded) == 27
    matches = reloaded.search(written["crop5"], top=3)
    assert written["crop5"].resolve().as_posix() not in [match.path for match in matches]
    assert {match.path for match in matches[:3]} == {f"iris/{source.name}", written["half"].resolve().as_posix(), written["cmyk"].resolve().as_posix()}

    again = reloaded.add_folder(new, num_workers=0)
    assert again.added == []
    assert again.unchanged == 3
    assert len(reloaded) == 27


@pytest.mark.slow
@pytest.mark.shared
def test_cli_similar_and_index_add(index, flower_run, tmp_path, capsys):
    from eclu.cli import main

    folder, _ = flower_run
    source = folder / "pansy" / sorted(path.name for path in (folder / "pansy").iterdir())[0]
    written = write_variants(source, tmp_path / "new", variants=("half",))
    assert main(["index", "add", str(index.run_dir), str(tmp_path / "new"), "--num-workers", "0", "-q"]) == 0
    assert "Added 1 images" in capsys.readouterr().out
    assert main(["similar", str(index.run_dir), f"pansy/{source.name}", "--top", "2", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "path", "similarity"]
    assert lines[2].split()[1] == written["half"].resolve().as_posix()
    assert main(["index", "build", str(index.run_dir), "-q"]) == 0
    assert "Indexed 24 images" in capsys.readouterr().out


def test_missing_query_reported(tmp_path):
    import faiss

    index = SimilarityIndex(tmp_path, faiss.IndexFlatIP(4), [], [])
    with pytest.raises(FileNotFoundError, match="neither a file nor a path listed"):
        index.search(tmp_path / "absent.jpg")
    with pytest.raises(ValueError, match="top must be at least 1"):
        index.search("x", top=0)
