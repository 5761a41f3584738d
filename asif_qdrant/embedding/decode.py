"""Decoding with limits, one image at a time: what an encoder sees of a file path, an upload's bytes or a PIL image.

Every image that comes from outside (a file path, an uploaded file's bytes) is opened lazily, its size read from
the header and checked against ``max_pixels`` (``ASIF_MAX_IMAGE_PIXELS``) and the request's pixel budget
(``ASIF_MAX_REQUEST_PIXELS``) *before* any pixel is decoded; then it is decoded (JPEGs at a reduced scale where
PIL can) and shrunk to at most ``SHRINK_SIDE`` pixels on its longer side, so a batch holds small images only and
the peak memory of a request is about one full-size image plus a batch of shrunk ones. A decompression bomb is an
:class:`~asif_qdrant.errors.ImageTooLargeError` (HTTP 413 from ``asif serve``, one error line in the CLI).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ImageTooLargeError, InvalidInputError

DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: larger than any camera photo, 1/4 of a 13000 x 13000 bomb
DEFAULT_MAX_REQUEST_PIXELS = 1_000_000_000  # the images of one call together (about 25 s of decoding)
SHRINK_SIDE = 512  # longer side of a decoded image; the encoders resize to 224-300 px themselves


@dataclass(frozen=True)
class ImageLimits:
    """The bounds of decoding: pixels of one image, pixels of all images of one call (None: no total)."""

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_request_pixels: int | None = DEFAULT_MAX_REQUEST_PIXELS
    shrink_side: int = SHRINK_SIDE


class PixelBudget:
    """The pixels one call (one request) may still decode."""

    def __init__(self, limits: ImageLimits) -> None:
        self.limits = limits
        self.spent = 0

    def spend(self, pixels: int, name: str) -> None:
        total = self.limits.max_request_pixels
        self.spent += pixels
        if total is not None and self.spent > total:
            raise ImageTooLargeError(
                f"the images of this request add up to more than {total} pixels (at {name!r}): send fewer or "
                "smaller images per request (ASIF_MAX_REQUEST_PIXELS)"
            )


def _open(source: Any, name: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(source)
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"image {name!r} is too large to decode ({e}): send a smaller image") from None
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as exc:
        raise InvalidInputError(f"{name} is corrupt or not an image ({exc}): send a JPEG, PNG or WebP file") from None


def decode_opened(im: Any, name: str, limits: ImageLimits, budget: PixelBudget | None = None) -> Any:
    """Check an opened (not yet decoded) image's header size, then decode and shrink it; an RGB PIL image."""
    from PIL import Image, UnidentifiedImageError

    w, h = im.size
    if w * h > limits.max_pixels:
        im.close()
        raise ImageTooLargeError(
            f"{name} is {w}x{h} = {w * h / 1e6:.1f} MP, more than the {limits.max_pixels / 1e6:g} MP that one "
            "image may have (ASIF_MAX_IMAGE_PIXELS): shrink it first"
        )
    if budget is not None:
        budget.spend(w * h, name)
    side = limits.shrink_side
    try:
        with im:
            if im.format == "JPEG":
                im.draft("RGB", (side, side))  # decode at 1/2, 1/4 or 1/8 scale, still at least `side` px
            im.load()
            if max(im.size) > side:
                im.thumbnail((side, side), Image.Resampling.BICUBIC, reducing_gap=2.0)
            return im if im.mode == "RGB" else im.convert("RGB")
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{name} is too large to decode ({e}): send a smaller image") from None
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as exc:
        raise InvalidInputError(f"{name} is corrupt or not an image ({exc}): fix or remove the file") from None


def decode_file(path: str | Path, limits: ImageLimits = ImageLimits(), budget: PixelBudget | None = None) -> Any:
    """A file's image, checked and decoded as the module says; InvalidInputError naming a missing or bad file."""
    p = Path(path)
    name = f"image file {str(p)!r}"
    try:
        if not p.is_file():
            raise InvalidInputError(f"image file {str(p)!r} does not exist or is not a file: check the path")
    except (OSError, ValueError) as e:  # a NUL byte, an overlong name, a link loop
        raise InvalidInputError(f"image path {str(p)[:200]!r} cannot be read ({e}): check the path") from None
    return decode_opened(_open(p, name), name, limits, budget)


def decode_bytes(data: bytes, filename: str | None, limits: ImageLimits = ImageLimits(),
                 budget: PixelBudget | None = None) -> Any:
    """An uploaded file's image, checked and decoded as the module says."""
    name = f"upload {filename!r}"
    return decode_opened(_open(io.BytesIO(data), name), name, limits, budget)


def decode_image(item: Any, limits: ImageLimits = ImageLimits(), budget: PixelBudget | None = None) -> Any:
    """A file path, bytes, or PIL image -> an RGB PIL image (a PIL image is taken as it is, converted to RGB)."""
    from PIL import Image

    if isinstance(item, Image.Image):
        try:
            return item if item.mode == "RGB" else item.convert("RGB")
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"PIL image {item!r} cannot be converted to RGB: {exc}") from exc
    if isinstance(item, (bytes, bytearray)):
        return decode_bytes(bytes(item), None, limits, budget)
    if isinstance(item, (str, Path)):
        return decode_file(item, limits, budget)
    raise InvalidInputError(
        f"image input of type {type(item).__name__} is not supported: pass a file path (str or Path), the file's "
        "bytes or a PIL.Image.Image"
    )


class Uploads:
    """The uploaded images of one request: each decoded within ``limits`` under one pixel budget, with the sha256 of
    its bytes (an anchor's content key: the same as for the file added by path)."""

    def __init__(self, limits: ImageLimits) -> None:
        self.limits = limits
        self.budget = PixelBudget(limits)

    def decode(self, data: bytes, filename: str | None) -> tuple[Any, bytes]:
        """(the decoded image, the sha256 of ``data``)."""
        digest = hashlib.sha256(data).digest()
        return decode_bytes(data, filename, self.limits, self.budget), digest


__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_REQUEST_PIXELS",
    "SHRINK_SIDE",
    "ImageLimits",
    "PixelBudget",
    "Uploads",
    "decode_bytes",
    "decode_file",
    "decode_image",
    "decode_opened",
]
