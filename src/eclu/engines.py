"""Inference engines: run a backbone on batches of preprocessed images.

Every engine takes a batch of centre-cropped 8-bit RGB images, an array of
shape ``(n, height, width, 3)`` and dtype ``uint8``, and returns float32
embeddings of shape ``(n, dim)``. Scaling to [0, 1] and the backbone's
mean/std normalisation happen inside the engine, so decode processes send
8-bit pixels, a quarter of the bytes of float tensors.

``"torch"`` runs the timm model in eager mode. ``"onnx"`` exports the model
once to ONNX, with the normalisation and TensorFlow "same" padding folded
into a static graph, caches the ``.onnx`` file and runs it with ONNX
Runtime. ``quantize="int8"`` adds static int8 quantisation of the
convolutions that tolerate it, calibrated on fixed crops of scikit-learn's
sample photos so the quantised model does not depend on the collection
being embedded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "ENGINES",
    "QUANTIZATIONS",
    "InferenceEngine",
    "TorchEngine",
    "OnnxEngine",
    "create_engine",
    "engine_name",
    "pixel_transform",
    "default_threads",
    "available_cores",
]

#: Engine names accepted by :func:`create_engine`.
ENGINES = ("torch", "onnx")
#: Quantisation choices; ``None`` keeps float32.
QUANTIZATIONS = (None, "int8")

# Bumped when the exported graph or the calibration set changes, so cached
# ONNX files of an older export are not reused.
_EXPORT_VERSION = 2
_CALIBRATION_IMAGES = 96
_CALIBRATION_SEED = 0

#: Name of the int8 quantisation scheme, part of the feature-store key of
#: int8 embeddings, so embeddings of an earlier scheme are never mixed in.
INT8_SCHEME = "qdq-per-channel-conv-tail-cos0.99"

#: Mean cosine similarity to float32, on the calibration images, that int8
#: quantisation must keep. Convolutions that would break it stay float32.
INT8_MIN_COSINE = 0.99


def available_cores() -> int:
    """Return the number of CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads(num_workers: int) -> int:
    """Return the intra-op thread count for inference beside ``num_workers`` decode processes.

    Inference gets every core but half of those the decode processes take,
    because decoding a reduced JPEG costs less than a forward pass, so the
    decode processes sleep part of the time and their cores are shared.
    """
    return max(1, available_cores() - num_workers // 2)


def engine_name(engine: str, quantize: str | None = None) -> str:
    """Return the name that identifies an engine and quantisation in the feature-store key.

    Raises
    ------
    ValueError
        If ``engine`` or ``quantize`` is unknown, or ``quantize`` is used
        with the torch engine.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if quantize is not None and engine != "onnx":
        raise ValueError(f"quantize={quantize!r} needs engine='onnx'; the torch engine runs float32 only")
    return engine if quantize is None else f"{engine}-{quantize}"


def pixel_transform(backbone):
    """Return the PIL stage of the backbone's preprocessing: resize and centre crop.

    The timm evaluation transform is split before its tensor conversion. The
    engines apply the conversion and normalisation that follow it.

    Raises
    ------
    ValueError
        If the transform does not end with a tensor conversion and a
        normalisation, so it cannot be split.
    """
    import torchvision.transforms as T

    steps = list(backbone.transform().transforms)
    names = [type(step).__name__ for step in steps]
    if len(steps) < 2 or names[-2] not in ("ToTensor", "MaybeToTensor") or names[-1] != "Normalize":
        raise ValueError(
            f"backbone {backbone.name!r} has the preprocessing {names}, which does not end with "
            "a tensor conversion and a normalisation; it cannot run on 8-bit pixel batches"
        )
    return T.Compose(steps[:-2])


class InferenceEngine:
    """Base class: ``engine(pixels)`` maps a uint8 NHWC batch to float32 embeddings.

    Attributes
    ----------
    name : str
        Engine name as stored in the feature-store identity.
    num_threads : int
        Intra-op threads used for inference.
    """

    name = "base"

    def __init__(self, backbone, num_threads: int):
        if num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        self.backbone = backbone
        self.num_threads = num_threads
        config = backbone.data_config
        self.mean = np.asarray(config["mean"], dtype=np.float32)
        self.std = np.asarray(config["std"], dtype=np.float32)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TorchEngine(InferenceEngine):
    """Run the backbone's PyTorch model in eager mode.

    The normalisation repeats torchvision's ``ToTensor`` and ``Normalize``
    operation for operation, so its embeddings equal those of the timm
    transform followed by the model.
    """

    name = "torch"

    def __init__(self, backbone, num_threads: int):
        super().__init__(backbone, num_threads)
        import torch

        self._mean = torch.as_tensor(self.mean).view(1, 3, 1, 1)
        self._std = torch.as_tensor(self.std).view(1, 3, 1, 1)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
            batch = batch.float().div(255).sub(self._mean).div(self._std)
            with torch.inference_mode():
                features = self.backbone.model(batch.contiguous(memory_format=torch.channels_last))
            return features.float().cpu().numpy()
        finally:
            torch.set_num_threads(previous)


class OnnxEngine(InferenceEngine):
    """Run the backbone with ONNX Runtime from a cached ``.onnx`` export.

    Parameters
    ----------
    backbone : Backbone
        The loaded backbone; its PyTorch model is exported on first use.
    cache_dir : path-like
        Folder for the ``.onnx`` files. The file name is a hash of the
        backbone identity, the quantisation and the export version.
    quantize : {None, "int8"}
        ``"int8"`` quantises weights and activations statically.
    num_threads : int
        ONNX Runtime intra-op threads.
    """

    def __init__(self, backbone, cache_dir, quantize: str | None = None, num_threads: int = 1):
        super().__init__(backbone, num_threads)
        self.name = engine_name("onnx", quantize)
        self.quantize = quantize
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / f"{_export_key(backbone, quantize)}.onnx"
        if not self.path.is_file():
            _build_onnx(backbone, self.path, quantize)
        self.session = _open_session(self.path, num_threads)
        self._input = self.session.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        outputs = self.session.run(None, {self._input: np.ascontiguousarray(pixels, dtype=np.uint8)})
        return np.asarray(outputs[0], dtype=np.float32)


def create_engine(
    backbone,
    engine: str = "torch",
    *,
    quantize: str | None = None,
    cache_dir=None,
    num_threads: int | None = None,
) -> InferenceEngine:
    """Create an inference engine for a loaded backbone.

    Parameters
    ----------
    backbone : Backbone
        From :func:`eclu.backbones.load_backbone`.
    engine : {"torch", "onnx"}, default="torch"
        ``"onnx"`` runs ONNX Runtime; it needs the ``onnx`` extra.
    quantize : {None, "int8"}, default=None
        Static int8 quantisation; ONNX engine only.
    cache_dir : path-like, optional
        Where the ONNX engine keeps its exported models. Required for
        ``engine="onnx"``; :func:`eclu.embed.embed_entries` passes the
        feature store folder.
    num_threads : int, optional
        Intra-op threads; default :func:`available_cores`.

    Returns
    -------
    InferenceEngine
    """
    engine_name(engine, quantize)
    if num_threads is None:
        num_threads = available_cores()
    if engine == "torch":
        return TorchEngine(backbone, num_threads)
    if cache_dir is None:
        raise ValueError("engine='onnx' needs cache_dir, a folder for the exported .onnx files")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise ValueError(
            f"engine='onnx' needs the packages onnx and onnxruntime ({error}); "
            "install them with `pip install \"eclu[onnx]\"`"
        ) from None
    return OnnxEngine(backbone, cache_dir, quantize=quantize, num_threads=num_threads)


def _export_key(backbone, quantize) -> str:
    payload = {"identity": backbone.identity(engine_name("onnx", quantize)), "export": _EXPORT_VERSION}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    return f"{backbone.name}-{engine_name('onnx', quantize)}-{digest}"


def _open_session(path: Path, num_threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads would take CPU time from the decode processes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _build_onnx(backbone, path: Path, quantize) -> None:
    """Export the backbone to ``path``, quantised when asked, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    float_path = path.with_name(f".{path.stem}.{os.getpid()}.float.onnx")
    try:
        _export_float(backbone, float_path)
        if quantize == "int8":
            quantized_path = path.with_name(f".{path.stem}.{os.getpid()}.int8.onnx")
            with _root_logger_restored():
                _quantize_int8(backbone, float_path, quantized_path)
            os.replace(quantized_path, path)
        else:
            os.replace(float_path, path)
    finally:
        for leftover in path.parent.glob(f".{path.stem}.{os.getpid()}.*"):
            leftover.unlink()
    logger.info("Exported %s to %s in %.1f s", backbone.name, path, time.perf_counter() - started)


def _export_float(backbone, path: Path) -> None:
    import torch

    size = tuple(backbone.data_config["input_size"][1:])
    module = _pixel_model(_static_padding_copy(backbone.model, size), backbone.data_config)
    example = torch.zeros((1, *size, 3), dtype=torch.uint8)
    with warnings.catch_warnings():
        # The TorchScript exporter warns that strided Slice ops are not
        # constant-folded; the graph is still correct, and users cannot act on it.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["pixels"],
            output_names=["embeddings"],
            dynamic_axes={"pixels": {0: "batch"}, "embeddings": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def _pixel_model(model, data_config):
    """Wrap ``model`` so it takes uint8 NHWC pixels and normalises them itself."""
    import torch

    class PixelModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            mean = torch.tensor(data_config["mean"], dtype=torch.float32).view(1, 3, 1, 1)
            std = torch.tensor(data_config["std"], dtype=torch.float32).view(1, 3, 1, 1)
            # (x / 255 - mean) / std as one multiply and one subtraction.
            self.register_buffer("scale", 1.0 / (255.0 * std))
            self.register_buffer("shift", mean / std)

        def forward(self, pixels):
            batch = pixels.permute(0, 3, 1, 2).float()
            return self.model(batch * self.scale - self.shift)

    return PixelModel().eval()


def _static_padding_copy(model, size: tuple[int, int]):
    """Return a copy of ``model`` whose TensorFlow "same" convolutions pad by constants.

    timm computes "same" padding from the input shape at every call, which
    exports as shape arithmetic that ONNX Runtime's quantiser rejects. For a
    fixed input size the padding is constant, so each such convolution is
    replaced by a zero padding and a plain convolution, with the same weights.
    """
    import copy

    import torch
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import pad_same_arg

    model = copy.deepcopy(model).eval()
    input_sizes: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, Conv2dSame):
            hooks.append(
                module.register_forward_pre_hook(
                    lambda module, args, name=name: input_sizes.__setitem__(name, tuple(args[0].shape[-2:]))
                )
            )
    with torch.inference_mode():
        model(torch.zeros((1, 3, *size)))
    for hook in hooks:
        hook.remove()
    for name, input_size in input_sizes.items():
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        same = getattr(parent, child_name)
        conv = torch.nn.Conv2d(
            same.in_channels,
            same.out_channels,
            same.kernel_size,
            stride=same.stride,
            padding=0,
            dilation=same.dilation,
            groups=same.groups,
            bias=same.bias is not None,
        )
        conv.load_state_dict(same.state_dict())
        padding = pad_same_arg(list(input_size), list(same.kernel_size), list(same.stride), list(same.dilation))
        setattr(parent, child_name, torch.nn.Sequential(torch.nn.ZeroPad2d(padding), conv))
    return model.to(memory_format=torch.contiguous_format)


def calibration_pixels(backbone, count: int = _CALIBRATION_IMAGES, seed: int = _CALIBRATION_SEED) -> np.ndarray:
    """Return ``count`` preprocessed crops of scikit-learn's sample photos, for int8 calibration.

    The crops vary in position, scale and mirroring; they are the same on
    every machine for a given backbone, ``count`` and ``seed``.
    """
    from PIL import Image, ImageOps
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(array) for array in load_sample_images().images]
    transform = pixel_transform(backbone)
    rng = np.random.default_rng(seed)
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        width, height = photo.size
        side = int(min(width, height) * rng.uniform(0.3, 1.0))
        left = int(rng.integers(0, width - side + 1))
        top = int(rng.integers(0, height - side + 1))
        crop = photo.crop((left, top, left + side, top + side))
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        crops.append(np.asarray(transform(crop), dtype=np.uint8))
    return np.stack(crops)


def _quantize_int8(backbone, float_path: Path, out_path: Path) -> None:
    """Quantise the longest tail of convolutions that keeps the embeddings close to float32.

    Early layers of some backbones amplify small input changes. Random noise
    of one grey level on each pixel moves the float32 EfficientNet-Lite0
    embeddings to a mean cosine similarity of 0.87, and quantising its stem
    convolution alone moves them to about 0.65. So the convolutions are
    quantised from the last one backwards. A bisection finds the earliest
    starting point at which the calibration images keep a mean cosine
    similarity of at least :data:`INT8_MIN_COSINE`, and the convolutions
    before it stay float32.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared_path = out_path.with_name(out_path.name.replace(".int8.", ".prepared."))
    quant_pre_process(str(float_path), str(prepared_path), skip_symbolic_shape=True)
    convolutions = [node.name for node in onnx.load(str(prepared_path)).graph.node if node.op_type == "Conv"]
    pixels = calibration_pixels(backbone)
    reference = _run_onnx(float_path, pixels)

    def cosine_from(first: int) -> float:
        _quantize_nodes(prepared_path, out_path, pixels, convolutions[first:])
        return _mean_cosine(reference, _run_onnx(out_path, pixels))

    # Bisection invariant: quantising from ``low`` on fails, from ``high`` on
    # passes. Quantising from len(convolutions) on changes nothing, so it passes.
    passing_path = out_path.with_name(out_path.name.replace(".int8.", ".int8-passing."))
    low, high = -1, len(convolutions)
    cosine = 1.0
    while high - low > 1:
        middle = (low + high) // 2
        middle_cosine = cosine_from(middle)
        if middle_cosine >= INT8_MIN_COSINE:
            high, cosine = middle, middle_cosine
            os.replace(out_path, passing_path)
        else:
            low = middle
    first = high
    if first < len(convolutions):
        os.replace(passing_path, out_path)
    else:
        _quantize_nodes(prepared_path, out_path, pixels, [])
        logger.warning(
            "No convolution of %s could be quantised to int8 without the calibration images falling below "
            "a mean cosine of %.2f to float32; the int8 model is the float32 model",
            backbone.name,
            INT8_MIN_COSINE,
        )
    logger.info(
        "Quantised %d of %d convolutions of %s to int8 (the first %d stay float32); "
        "mean cosine to float32 on the calibration images %.4f",
        len(convolutions) - first,
        len(convolutions),
        backbone.name,
        first,
        cosine,
    )


@contextlib.contextmanager
def _root_logger_restored():
    """Remove the handlers that code run inside adds to the root logger, and restore its level.

    ONNX Runtime's quantiser logs through module-level ``logging`` calls,
    which install a handler on the root logger when it has none. Every later
    record of the application would then print twice.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _quantize_nodes(prepared_path: Path, out_path: Path, pixels: np.ndarray, nodes: list) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"pixels": pixels[i : i + 16]} for i in range(0, len(pixels), 16)])

        def get_next(self):
            return next(self._batches, None)

    if not nodes:
        import shutil

        shutil.copyfile(prepared_path, out_path)
        return
    quantize_static(
        str(prepared_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        nodes_to_quantize=list(nodes),
    )


def _run_onnx(path: Path, pixels: np.ndarray) -> np.ndarray:
    session = _open_session(path, available_cores())
    return session.run(None, {session.get_inputs()[0].name: pixels})[0]


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)))
