"""Tests for the eclu command line: cluster, evaluate, demo and backbones, end to end."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eclu.cli import main
from image_builders import FIXTURES


@pytest.fixture(autouse=True)
def detach_cli_logging():
    """Remove the handlers that a command attached to the ``eclu`` logger, so eclu.log files close."""
    yield
    root = logging.getLogger("eclu")
    for handler in list(root.handlers):
        if getattr(handler, "_eclu_cli", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.NOTSET)


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def read_summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The four fixture photos in two class folders."""
    root = tmp_path_factory.mktemp("photos")
    for source in sorted(FIXTURES.glob("*.jpg")):
        folder = root / source.stem.split("-")[0]
        folder.mkdir(exist_ok=True)
        shutil.copyfile(source, folder / source.name)
    return root


def test_cluster_digits(digits_folder, feature_cache, tmp_path, capsys):
    run = tmp_path / "run"

    code = main(["cluster", str(digits_folder), "--out", str(run), "-k", "10", "--cache", str(feature_cache), "--no-report"])

    out = capsys.readouterr().out
    assert code == 0
    assert "Clustered 200 of 200 images into 10 clusters" in out
    assert "clusters.csv" in out
    assert len((run / "clusters.csv").read_text(encoding="utf-8").splitlines()) == 201
    assert read_summary(run)["metrics"] is None
    log = (run / "eclu.log").read_text(encoding="utf-8")
    assert "Found 200 image files" in log
    assert "Loaded backbone efficientnet_lite0" in log

    code = main(["evaluate", str(run)])

    out = capsys.readouterr().out
    metrics = read_summary(run)["metrics"]
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["ACC", "NMI", "ARI"]
    assert f"{metrics['acc']:.4f}" in out
    assert metrics["n_images"] == 200
    assert metrics["acc"] >= 0.30


def test_cluster_labels_option(digits_folder, feature_cache, tmp_path, capsys):
    run = tmp_path / "run"

    code = main(
        ["cluster", str(digits_folder), "--out", str(run), "-k", "10", "--cache", str(feature_cache), "--labels", "folders", "--no-report"]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert "ACC" in out
    assert read_summary(run)["metrics"]["labels"] == "folders"


@pytest.mark.parametrize("mode", ["links", "copy"])
def test_cluster_export_leaves_originals(digits_folder, feature_cache, tmp_path, mode):
    before = tree_digest(digits_folder)
    run = tmp_path / "run"

    code = main(
        ["cluster", str(digits_folder), "--out", str(run), "-k", "10", "--cache", str(feature_cache), "--export", mode, "-q", "--no-report"]
    )

    assert code == 0
    exported = sorted((run / "clusters").glob("cluster-*/*.png"))
    assert len(exported) == 200
    assert len(list((run / "clusters").glob("cluster-*"))) == 10
    assert all(path.is_symlink() == (mode == "links") for path in exported)
    assert tree_digest(digits_folder) == before


def test_cluster_quiet(digits_folder, feature_cache, tmp_path, capsys):
    run = tmp_path / "run"

    code = main(["cluster", str(digits_folder), "--out", str(run), "-k", "3", "--cache", str(feature_cache), "-q", "--no-report"])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""
    assert "Clustered 200 of 200 images into 3 clusters" in captured.out
    assert "Found 200 image files" in (run / "eclu.log").read_text(encoding="utf-8")


def test_cluster_reports_skipped_files(photos, feature_cache, tmp_path, capsys):
    folder = tmp_path / "input"
    shutil.copytree(photos, folder)
    (folder / "empty.jpg").write_bytes(b"")

    code = main(["cluster", str(folder), "--out", str(tmp_path / "run"), "-k", "2", "--cache", str(feature_cache), "-q", "--no-report"])

    assert code == 0
    assert "Clustered 4 of 5 images" in capsys.readouterr().out


def test_demo(tmp_path, capsys):
    code = main(["demo", "--limit", "200", "--out", str(tmp_path / "demo"), "-q"])

    out = capsys.readouterr().out
    assert code == 0
    assert "Wrote 200 demo images" in out
    assert "ACC" in out
    summary = read_summary(tmp_path / "demo" / "run")
    assert summary["counts"]["ok"] == 200
    assert summary["n_clusters_found"] == 10
    assert summary["metrics"]["acc"] >= 0.30
    whitened = out.split("after PCA whitening")[1].split("\n")[3].split()
    assert float(whitened[0]) >= 0.30
    assert whitened[3:] == ["200", "10", "10"]
    assert (tmp_path / "demo" / "run" / "eclu.log").is_file()
    assert len(list((tmp_path / "demo" / "digits").glob("*/*.png"))) == 200


def test_weights_file_option(photos, tmp_path, lite0, capsys):
    from safetensors.torch import save_file

    weights = tmp_path / "lite0.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in lite0.model.state_dict().items()}, str(weights))

    code = main(["cluster", str(photos), "--out", str(tmp_path / "run"), "-k", "2", "--weights", str(weights), "--num-workers", "0", "-q", "--no-report"])

    assert code == 0
    summary = read_summary(tmp_path / "run")
    assert summary["backbone"]["weights"].startswith("file:")
    assert summary["counts"]["embedded"] == 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--backbone", "no_such_net"], "unknown backbone 'no_such_net'"),
        (["--backbone", "mobilenetv2"], "--weights FILE"),
        (["--weights", "{pickle}"], "never unpickles"),
        (["-k", "9"], "at most 4 clusters"),
    ],
)
def test_cluster_errors_without_traceback(photos, feature_cache, tmp_path, capsys, arguments, message):
    if "mobilenetv2" in arguments and os.environ.get("HF_HUB_OFFLINE") != "1":
        pytest.skip("HF_HUB_OFFLINE is not 1, so this case could reach the network")
    pickled = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)
    arguments = [argument.replace("{pickle}", str(pickled)) for argument in arguments]

    code = main(["cluster", str(photos), "--out", str(tmp_path / "run"), "--cache", str(feature_cache), "-q", "--no-report", *arguments])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("eclu cluster: error: ")
    assert message in err
    assert "Traceback" not in err


def test_missing_input_folder(tmp_path, capsys):
    code = main(["cluster", str(tmp_path / "absent"), "--out", str(tmp_path / "run"), "-q"])

    err = capsys.readouterr().err
    assert code == 2
    assert "input folder not found" in err


def test_evaluate_not_a_run(tmp_path, capsys):
    code = main(["evaluate", str(tmp_path)])

    assert code == 2
    assert "not an ECLU run folder" in capsys.readouterr().err


def test_backbones_list(capsys):
    code = main(["backbones"])

    out = capsys.readouterr().out
    assert code == 0
    for name in ("efficientnet_lite0", "efficientnet_lite2", "mobilenetv2", "resnet50", "vgg16", "convnext_xlarge"):
        assert name in out


def test_bad_option_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cluster", str(tmp_path), "--out", str(tmp_path / "run"), "-k", "0"])

    assert exit_info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_console_script_exit_code(tmp_path):
    """The installed ``eclu`` command prints one error line and exits with 2."""
    script = Path(sys.executable).parent / "eclu"
    if not script.is_file():
        pytest.skip(f"console script {script} is not installed")
    env = dict(os.environ, HF_HUB_OFFLINE="1")

    completed = subprocess.run(
        [str(script), "cluster", str(FIXTURES), "--out", str(tmp_path / "run"), "--backbone", "no_such_net", "-q", "--no-report"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )

    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert "unknown backbone 'no_such_net'" in completed.stderr


@pytest.mark.parametrize("value", ["abc", "0", "2", "nan"])
def test_bad_crop_pct(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["cluster", str(tmp_path), "--out", str(tmp_path / "run"), "--crop-pct", value])

    assert exit_info.value.code == 2
    assert f"--crop-pct: must be a number from 0.1 to 1.5, got '{value}'" in capsys.readouterr().err
