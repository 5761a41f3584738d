"""Batches of inputs -> vectors with one store's encoders: each image decoded within the limits (decode.py), the
embedding cache by content key, a progress callback, an ``on_error`` policy, and a cancellation checkpoint
(:mod:`asif_qdrant.cancel`) before each batch."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..anchors import text_digest
from ..cancel import checkpoint
from ..embcache import EmbeddingCache
from ..errors import ConfigError, InvalidInputError
from .decode import ImageLimits, PixelBudget, decode_image

ENCODE_BATCH = 256  # items per encoder call between two cancellation checkpoints
OnError = Literal["skip", "fail"]
Progress = Callable[[int], object]  # called with the number of inputs just done
CacheArg = bool | EmbeddingCache


@dataclass
class Encoded:
    """The vectors of the inputs that could be read, in input order (row j is input ``kept[j]``), and the inputs
    skipped with why (index, reason)."""

    vectors: np.ndarray
    kept: list[int]
    skipped: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class EncodedImages:
    """The images that could be read and their vectors (row i is ``paths[i]``), and those skipped with why."""

    paths: list[Path]
    vectors: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)


def open_cache(folder: str | Path, cache: CacheArg) -> tuple[EmbeddingCache | None, bool]:
    """The embedding cache ``cache`` asks for (True: the one in ``folder``; False: none; or the one given), and
    whether the caller opened it and must close it."""
    if isinstance(cache, EmbeddingCache):
        return cache, False
    if cache is True:
        return EmbeddingCache.in_folder(folder), True
    if cache is False:
        return None, False
    raise ConfigError(f"cache={cache!r} is invalid: pass True (default), False, or an EmbeddingCache")


def check_on_error(on_error: str) -> OnError:
    """``on_error`` as given, when it is 'skip' or 'fail'; ConfigError otherwise."""
    if on_error not in ("skip", "fail"):
        raise ConfigError(f"on_error={on_error!r} is invalid: use 'skip' (go on without the file) or 'fail' (stop)")
    return on_error  # type: ignore[return-value]


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool = True) -> Iterator[Progress | None]:
    """A progress bar on stderr counting images, as a progress callback; None when not ``enabled``."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="img", desc=desc, dynamic_ncols=True, file=sys.stderr) as bar:
        yield bar.update


class Embedder:
    """Inputs -> vectors with one store's encoders: images (file paths, bytes, PIL images) and texts.

    ``encoder(modality)`` returns the store's encoder, loaded on first use, so a full cache hit loads no model;
    ``spaces``: per modality the encoder's name and dimension (the cache's namespace); ``cache``: the embedding
    cache (None: none), closed by :meth:`close` when ``owns_cache``. Counts ``cache_hits`` and ``encoded`` inputs.
    Encoding never takes the store's lock: callers encode first, then write or query.
    """

    def __init__(self, encoder: Callable[[str], Any], spaces: Mapping[str, tuple[str, int]], limits: ImageLimits,
                 cache: EmbeddingCache | None = None, *, owns_cache: bool = False) -> None:
        self.encoder = encoder
        self.spaces = dict(spaces)
        self.limits = limits
        self.cache = cache
        self.owns_cache = owns_cache
        self.cache_hits = 0
        self.encoded = {"image": 0, "text": 0}

    def close(self) -> None:
        if self.owns_cache and self.cache is not None:
            self.cache.close()
        self.cache = None

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images -------------------------------------------------------------------------------
    def images(
        self, items: Sequence[Any], *, keys: Sequence[bytes] | None = None, on_error: OnError = "fail",
        batch: int = ENCODE_BATCH, budget: bool = False, progress: Progress | None = None, hint: str = "",
    ) -> Encoded:
        """Vectors of images, decoded one at a time within the limits (``budget``: all of them under one pixel
        budget, as one request), ``batch`` decoded images per encoder call, a cancellation checkpoint before each.

        ``keys`` (a content key per image): each key is encoded once, and through the cache when there is one.
        ``on_error``: 'fail' raises the first unreadable image's InvalidInputError (``hint`` appended); 'skip'
        lists it in ``skipped`` and goes on."""
        items, on_error = list(items), check_on_error(on_error)
        slots: list[Any] = list(range(len(items))) if keys is None else [bytes(k) for k in keys]
        if len(slots) != len(items):
            raise InvalidInputError(f"got {len(slots)} keys for {len(items)} images: pass one per image, or none")
        found = self._cached("image", slots) if keys is not None else {}
        todo = _firsts(slots, found)
        pixels = PixelBudget(self.limits) if budget else None
        bad: dict[Any, str] = {}
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            checkpoint()
            ok, pics = [], []
            for i in chunk:
                try:
                    pics.append(decode_image(items[i], self.limits, pixels))
                    ok.append(slots[i])
                except InvalidInputError as e:
                    if on_error == "fail":
                        if hint:
                            raise InvalidInputError(f"{e}{hint}") from None
                        raise
                    bad[slots[i]] = str(e)
            if pics:
                found.update(self._encode("image", ok, pics, keys is not None))
            if progress is not None:
                progress(len(chunk))
        kept = [i for i, s in enumerate(slots) if s not in bad]
        skipped = [(i, bad[s]) for i, s in enumerate(slots) if s in bad]
        return Encoded(self._stack("image", [found[slots[i]] for i in kept]), kept, skipped)

    def files(self, paths: Sequence[Path], *, on_error: OnError = "fail", batch: int = 64,
              progress: Progress | None = None) -> EncodedImages:
        """Image files in batches: a missing or corrupt file raises InvalidInputError naming it (``"fail"``, with
        the hint to skip it) or is skipped and listed (``"skip"``)."""
        enc = self.images(paths, on_error=on_error, batch=batch, progress=progress,
                          hint="; or pass --on-error skip (on_error='skip') to go on without it")
        return EncodedImages([paths[i] for i in enc.kept], enc.vectors.astype(np.float32, copy=False),
                             [(str(paths[i]), why) for i, why in enc.skipped])

    # -- texts --------------------------------------------------------------------------------
    def texts(self, texts: Sequence[str], *, batch: int = ENCODE_BATCH, progress: Progress | None = None) -> np.ndarray:
        """Vectors of ``texts``, each distinct text encoded once (keyed by the sha256 of its UTF-8 bytes, through
        the cache when there is one), ``batch`` per encoder call with a cancellation checkpoint before each.
        ``progress`` counts the texts encoded."""
        texts = list(texts)
        keyed = all(isinstance(t, str) for t in texts)  # else the encoder names the bad one, by its position
        slots: list[Any] = [text_digest(t) for t in texts] if keyed else list(range(len(texts)))
        found = self._cached("text", slots) if keyed else {}
        todo = _firsts(slots, found)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            checkpoint()
            found.update(self._encode("text", [slots[i] for i in chunk], [texts[i] for i in chunk], keyed))
            if progress is not None:
                progress(len(chunk))
        return self._stack("text", [found[s] for s in slots])

    # -- the cache ----------------------------------------------------------------------------
    def _cached(self, modality: str, slots: Sequence[Any]) -> dict[Any, np.ndarray]:
        if self.cache is None or not slots:
            return {}
        found = self.cache.get_many(*self.spaces[modality], [bytes(s) for s in dict.fromkeys(slots)])
        self.cache_hits += len(found)
        return dict(found)

    def _encode(self, modality: str, slots: Sequence[Any], inputs: list[Any], keyed: bool
                ) -> dict[Any, np.ndarray]:
        vecs = np.asarray(self.encoder(modality).encode(inputs))
        self.encoded[modality] += len(inputs)
        if not keyed:
            return dict(zip(slots, vecs, strict=True))
        new = {s: np.asarray(v, np.float32) for s, v in zip(slots, vecs, strict=True)}
        if self.cache is not None:
            self.cache.put_many(*self.spaces[modality], new)
        return new

    def _stack(self, modality: str, rows: list[np.ndarray]) -> np.ndarray:
        return np.stack(rows) if rows else np.zeros((0, self.spaces[modality][1]), np.float32)


def _firsts(slots: Sequence[Any], found: Mapping[Any, Any]) -> list[int]:
    """The index of the first input of each slot not found already, in input order."""
    seen: set[Any] = set()
    out = []
    for i, s in enumerate(slots):
        if s not in found and s not in seen:
            seen.add(s)
            out.append(i)
    return out


__all__ = ["ENCODE_BATCH", "CacheArg", "Embedder", "Encoded", "EncodedImages", "OnError", "Progress",
           "check_on_error", "open_cache", "progress_bar"]
