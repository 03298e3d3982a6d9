"""Decode: read one image file into an upright 8-bit RGB picture, or report why it failed."""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .scan import sniff_format

logger = logging.getLogger(__name__)

__all__ = ["DecodeResult", "decode_image", "file_sha256", "STATUSES", "DEFAULT_MAX_PIXELS"]

#: Every status a file can get, in the order reports list them.
STATUSES = (
    "ok",
    "hidden",
    "missing",
    "zero_size",
    "truncated",
    "undecodable",
    "unsupported_format",
    "too_large",
)

#: Default cap on decompressed pixels; the same value as Pillow's own warning limit.
DEFAULT_MAX_PIXELS = 89_478_485

#: Colour that transparent pixels are composited on.
DEFAULT_BACKGROUND = (255, 255, 255)

_HEIF_REGISTERED = False


@dataclass
class DecodeResult:
    """Outcome of decoding one file.

    Attributes
    ----------
    status : str
        ``"ok"`` or one of :data:`STATUSES`.
    reason : str
        Why the file was not decoded; empty when ``status`` is ``"ok"``.
    image : PIL.Image.Image or None
        The upright RGB picture, possibly reduced by JPEG draft mode.
    width, height : int
        Size of the upright picture at full resolution; 0 when unknown.
    nbytes : int
        File size in bytes.
    sha256 : str
        Hex digest of the file's bytes; empty when the file could not be read.
    """

    status: str
    reason: str = ""
    image: Image.Image | None = field(default=None, repr=False)
    width: int = 0
    height: int = 0
    nbytes: int = 0
    sha256: str = ""
    format: str = ""


def file_sha256(data: bytes) -> str:
    """Return the SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _register_heif() -> None:
    """Let Pillow open HEIC files through pillow-heif, once per process."""
    global _HEIF_REGISTERED
    if _HEIF_REGISTERED:
        return
    _HEIF_REGISTERED = True
    try:
        import pillow_heif
    except ImportError:
        logger.info("pillow-heif is not installed, so HEIC files cannot be decoded")
        return
    pillow_heif.register_heif_opener()


def read_file(path) -> tuple[bytes | None, DecodeResult | None]:
    """Read a whole file; return its bytes, or a failed result saying why."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, DecodeResult("missing", f"file not found: {path}")
    except IsADirectoryError:
        return None, DecodeResult("undecodable", f"is a folder, not a file: {path}")
    except OSError as error:
        return None, DecodeResult("missing", f"cannot read file: {error}")
    if not data:
        return None, DecodeResult("zero_size", "file is empty (0 bytes)", sha256=file_sha256(b""))
    return data, None


def decode_image(
    path,
    *,
    draft_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    data: bytes | None = None,
) -> DecodeResult:
    """Decode an image file into an upright 8-bit RGB picture.

    The file is recognised by its content, not its name. The EXIF
    orientation is applied. Every Pillow mode is converted to RGB: CMYK and
    YCCK through Pillow's colour conversion, 16-bit and 32-bit grey by their
    nominal value range, palette and alpha images composited on
    ``background``, and 1-bit and grey images expanded. Animated and
    multi-page files give their first frame.

    Parameters
    ----------
    path : path-like
        The file.
    draft_size : int, optional
        Smallest side the caller needs. JPEG files are then decoded at the
        largest reduction (1/2, 1/4 or 1/8) that keeps both sides at least
        this large, which is much faster for photos than a full decode.
        Pictures of any format that are still at least twice this size are
        then shrunk by an integer factor with ``Image.reduce``.
    max_pixels : int, default=89_478_485
        Files with more pixels get status ``too_large`` and are not decoded.
        NOTE: Pillow itself rejects files above twice its
        ``Image.MAX_IMAGE_PIXELS`` (178,956,970 pixels by default) while
        opening them, so a larger ``max_pixels`` does not decode those.
    background : tuple of 3 ints, default=(255, 255, 255)
        Colour behind transparent pixels.
    data : bytes, optional
        The file's content, when the caller has read it already.

    Returns
    -------
    DecodeResult
        Never raises for a bad file: the status and reason describe what failed.
    """
    if data is None:
        data, failure = read_file(path)
        if failure is not None:
            return failure
    result = DecodeResult("ok", nbytes=len(data), sha256=file_sha256(data))
    sniffed = sniff_format(data[:16])
    if sniffed == "HEIF":
        _register_heif()
    try:
        image, width, height = _open_upright(data, draft_size, max_pixels, result)
    except _DecodeFailure as failure:
        result.status, result.reason = failure.status, failure.reason
        return result
    result.width, result.height = width, height
    try:
        result.image = to_rgb(image, background)
    except (OSError, ValueError) as error:
        result.status, result.reason = "undecodable", f"colour conversion failed: {error}"
        return result
    if draft_size:
        result.image = _reduce_to(result.image, draft_size)
    return result


def _reduce_to(image: Image.Image, draft_size: int) -> Image.Image:
    """Shrink ``image`` by the largest integer factor that keeps both sides at least ``draft_size``.

    ``Image.reduce`` averages blocks of pixels, which is much cheaper than
    resampling the full picture, and does for PNG, WebP, TIFF and other
    formats what JPEG draft mode does while decoding.
    """
    factor = min(image.size) // draft_size
    if factor < 2:
        return image
    return image.reduce(factor)


class _DecodeFailure(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _open_upright(data: bytes, draft_size, max_pixels, result: DecodeResult):
    sniffed = sniff_format(data[:16])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
            image = Image.open(io.BytesIO(data))
            result.format = image.format or ""
            width, height = image.size
            if width <= 0 or height <= 0:
                raise _DecodeFailure("undecodable", f"image has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise _DecodeFailure(
                    "too_large",
                    f"{width}x{height} = {width * height} pixels is more than the cap of "
                    f"{max_pixels}; raise max_pixels to decode it",
                )
            orientation = _exif_orientation(image)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            result.width, result.height = width, height
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
    except _DecodeFailure:
        raise
    except Image.DecompressionBombError as error:
        raise _DecodeFailure("too_large", str(error)) from None
    except UnidentifiedImageError:
        if sniffed in ("HEIF", "AVIF"):
            raise _DecodeFailure(
                "unsupported_format",
                f"{sniffed} file, but no decoder for it is installed; install pillow-heif",
            ) from None
        if sniffed is not None:
            raise _DecodeFailure("undecodable", f"{sniffed} signature but Pillow cannot read it") from None
        raise _DecodeFailure("undecodable", "not an image file Pillow can identify") from None
    except ValueError as error:
        message = str(error)
        if "too large" in message.lower():
            raise _DecodeFailure("too_large", message) from None
        raise _DecodeFailure("undecodable", message) from None
    except (OSError, SyntaxError, EOFError, IndexError, struct.error) as error:
        message = str(error) or type(error).__name__
        lowered = message.lower()
        if "truncat" in lowered or "end of file" in lowered or isinstance(error, EOFError):
            raise _DecodeFailure("truncated", message) from None
        raise _DecodeFailure("undecodable", message) from None
    if orientation not in (None, 1):
        try:
            image = ImageOps.exif_transpose(image)
        except (OSError, ValueError, SyntaxError) as error:
            logger.warning("Ignoring the EXIF orientation of a file that cannot apply it: %s", error)
    return image, width, height


def _exif_orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except (OSError, ValueError, SyntaxError, TypeError):
        return None


def to_rgb(image: Image.Image, background=DEFAULT_BACKGROUND) -> Image.Image:
    """Convert a Pillow image of any mode to 8-bit RGB."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _wide_grey_to_rgb(image)
    if mode == "P":
        if "transparency" in image.info:
            image = image.convert("RGBA")
            mode = "RGBA"
        else:
            return image.convert("RGB")
    if mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        canvas = Image.new("RGB", image.size, tuple(background))
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    if mode in ("L", "1") and "transparency" in image.info:
        return to_rgb(image.convert("RGBA"), background)
    return image.convert("RGB")


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    array = np.asarray(image)
    if image.mode.startswith("I;16"):
        scaled = array.astype(np.float32) / 257.0
    elif image.mode == "I":
        # 16-bit PNG files open as mode I on some Pillow versions.
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        scaled = array.astype(np.float32) * (255.0 / top)
    else:
        # Floating-point pictures are taken as 0..1 when no value exceeds 1,
        # as 0..255 when none exceeds 255, and are scaled by their maximum above that.
        array = np.nan_to_num(array.astype(np.float32))
        top = float(array.max(initial=0))
        if top <= 1.0:
            scaled = array * 255.0
        elif top <= 255.0:
            scaled = array
        else:
            scaled = array * (255.0 / top)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")
