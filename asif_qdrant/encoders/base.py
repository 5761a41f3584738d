"""The Encoder protocol, the fingerprint, and input helpers shared by every adapter (no torch here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

import numpy as np
from PIL import Image

from asif_qdrant import validate
from asif_qdrant.embedding import ImageLimits, decode_image
from asif_qdrant.errors import FingerprintMismatchError, InvalidInputError
from asif_qdrant.names import Modality
from asif_qdrant.relrep import l2_normalize

ImageInput: TypeAlias = str | Path | Image.Image
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True, slots=True)
class EncoderFingerprint:
    """What identifies an encoder's vector space: its full name and its dimension."""

    name: str
    dim: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderFingerprint:
        try:
            return cls(name=str(data["name"]), dim=int(data["dim"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"encoder fingerprint {dict(data)!r} is malformed: it needs a 'name' (str) and a 'dim' (int)"
            ) from exc

    def check_matches(self, other: EncoderFingerprint, what: str = "vectors") -> None:
        """Raise FingerprintMismatchError when ``other`` is a different vector space."""
        if self != other:
            raise FingerprintMismatchError(
                f"{what} come from encoder {other.name!r} (dim {other.dim}) but the store was built with "
                f"{self.name!r} (dim {self.dim}): use {self.name!r}, "
                "or rebuild the anchors with the new encoder"
            )


@runtime_checkable
class Encoder(Protocol):
    """A frozen unimodal encoder: batched, float32, L2-normalised rows of shape (n, dim)."""

    name: str
    dim: int
    modality: Modality

    @property
    def fingerprint(self) -> EncoderFingerprint: ...

    def encode(self, items: Sequence[Any], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray: ...


def check_batch_size(batch_size: int) -> int:
    """Return ``batch_size`` or raise InvalidBatchSizeError (a ConfigError) when it is not a positive int."""
    return validate.check_batch_size(batch_size, "inputs")


def check_vectors(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """Validate user-given vectors of shape (n, dim) and return them float32 and L2-normalised."""
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} cannot be read as a float array: pass a (n, {dim}) array") from exc
    if arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidInputError(f"{what} have shape {arr.shape}: expected (n, {dim}) for this encoder")
    return l2_normalize(arr, what)


def load_image(item: ImageInput, limits: ImageLimits | None = None) -> Image.Image:
    """Open a file path or take a PIL image, decoded (size-checked from the header first, shrunk) and converted to
    RGB, through :mod:`asif_qdrant.embedding` with ``limits`` (default: 40 MP per image).

    Raises InvalidInputError naming the file when it is missing, unreadable or not an image, ImageTooLargeError for
    an image over the limits.
    """
    return cast(Image.Image, decode_image(item, limits if limits is not None else ImageLimits()))


def check_texts(items: Sequence[Any]) -> list[str]:
    """Return ``items`` as a list of str or raise InvalidInputError naming the first bad one."""
    if isinstance(items, str):
        raise InvalidInputError("texts must be a list of str, not a single str: wrap it as [text]")
    texts = list(items)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInputError(f"text #{i} is a {type(t).__name__} ({t!r:.60}), not a str: pass strings")
    return texts


def check_images(items: Sequence[Any]) -> list[ImageInput]:
    """Return ``items`` as a list (a lone path or image is refused, to catch a missing [...])."""
    if isinstance(items, str | Path | Image.Image):
        raise InvalidInputError("images must be a list of paths or PIL images, not a single one: wrap it")
    return list(items)
