"""A query's inputs -> its vectors, encoded outside the store's lock.

A query takes either raw inputs (images, texts) or vectors (validated: a finite (n, dim) array, L2-normalised).
Raw inputs are encoded with the store's lock released: a read section (the facade's ``_reads``) runs inside
:func:`reading`; when the query asks for raw inputs to be encoded (:func:`input_vectors`), it stops there with
:class:`EncodeFirst`, the lock is released as the exception leaves the section, the inputs are encoded, and the
section runs again from the start, this time getting the vectors at once. Everything the query checks before its
inputs (tenant, ``top``, the label set) is checked in the same order as before, under the lock; an edit can take
the lock while the encoder runs; and a read retried for a repair (``locking.WriteNeeded``) does not encode again.
Outside a read section (an edit, or no lock at all), inputs are encoded where they are asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np

from ..anchors import as_matrix
from ..errors import ConfigError, InvalidInputError
from ..relrep import l2_normalize
from .embedder import Embedder

T = TypeVar("T")


class EncodeFirst(BaseException):
    """Raised inside a read section that needs inputs encoded: the section leaves the lock, and :func:`reading`
    encodes them and runs it again. A BaseException, so that no ``except Exception`` on the way up swallows it."""

    def __init__(self, encode: Callable[[], np.ndarray]) -> None:
        super().__init__("inputs to encode outside the lock")
        self.encode = encode


class Section:
    """The inputs one read section has had encoded, in the order it asked for them (a section runs the same way
    each time, so its n-th request is the same inputs)."""

    def __init__(self) -> None:
        self.vectors: list[np.ndarray] = []
        self.asked = 0

    def vectors_of(self, encode: Callable[[], np.ndarray]) -> np.ndarray:
        i, self.asked = self.asked, self.asked + 1
        if i < len(self.vectors):
            return self.vectors[i]
        raise EncodeFirst(encode)


_section: ContextVar[Section | None] = ContextVar("asif_read_section", default=None)


def reading(section: Callable[[], T]) -> T:
    """Run ``section`` (a call that takes the store's lock shared), encoding the inputs it asks for outside the lock
    (see the module). Nested in another section, it is part of that one."""
    if _section.get() is not None:
        return section()
    state = Section()
    token = _section.set(state)
    try:
        while True:
            state.asked = 0
            try:
                return section()
            except EncodeFirst as need:  # the lock is released: encode, then run the section again
                state.vectors.append(need.encode())
    finally:
        _section.reset(token)


def outside_the_lock(encode: Callable[[], np.ndarray]) -> np.ndarray:
    """``encode()``, done outside the lock when called inside a read section (the section runs again after it)."""
    state = _section.get()
    return encode() if state is None else state.vectors_of(encode)


def input_vectors(embedder: Embedder, modality: str, raw: Sequence[Any] | None, vectors: Any, what: str) -> Any:
    """The vectors of a query's inputs: ``raw`` (images or texts) encoded (outside the lock), or ``vectors``
    validated and L2-normalised; exactly one of the two."""
    if (raw is None) == (vectors is None):
        raise ConfigError(f"pass either {what}=... or vectors=..., not both and not neither")
    if raw is not None:
        return outside_the_lock(lambda: encode_raw(embedder, modality, raw, what))
    name, dim = embedder.spaces[modality]
    arr = as_matrix(vectors, dim, f"{modality} vectors", name)
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{modality} vectors are empty: pass at least one")
    return l2_normalize(arr, f"{modality} vectors")


def encode_raw(embedder: Embedder, modality: str, raw: Sequence[Any], what: str) -> np.ndarray:
    """Raw inputs -> vectors; the images of one call decode under one pixel budget (a request's)."""
    if isinstance(raw, (str, bytes)) and modality == "text":
        raw = [raw]
    raw = list(raw)
    if not raw:
        raise InvalidInputError(f"{what} is empty: pass at least one")
    return embedder.images(raw, budget=True).vectors if modality == "image" else embedder.texts(raw)


__all__ = ["EncodeFirst", "Section", "encode_raw", "input_vectors", "outside_the_lock", "reading"]
