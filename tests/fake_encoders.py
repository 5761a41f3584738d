"""Deterministic stand-ins for the store's encoders, for tests of the CLI and the API without a model.

A store made with ``conftest.small_settings()`` has the fingerprint precomputed:img:8 / precomputed:txt:6;
:func:`install_fakes` replaces ``asif_qdrant.encoders.create_encoder`` (through which the facade loads its
encoders) by a factory of a pixel encoder and a character encoder under those names, so that a CLI command, which
opens its own store, encodes real images and texts. A :class:`Clock` makes loading and encoding take exact fake
seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM
from PIL import Image

import asif_qdrant.encoders as encoders_pkg

LOAD_S, IMAGE_S, CAPTION_S = 100.0, 1.0, 0.25  # fake seconds: loading one model, encoding one image / caption
CLASSES = ["red", "green", "blue"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class Clock:
    """time.perf_counter that moves only when a fake model loads or encodes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, s: float) -> None:
        self.now += s


class PixelEncoder:
    """8-d image features from the mean colour and its spread."""

    name, dim, modality = f"precomputed:img:{IMG_DIM}", IMG_DIM, "image"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock

    def encode(self, items: Any, batch_size: int = 64) -> np.ndarray:
        out = []
        for im in items:
            a = np.asarray((im if isinstance(im, Image.Image) else Image.open(im)).convert("RGB").resize((8, 8)),
                           np.float32) / 255.0
            m, sd = a.mean(axis=(0, 1)), a.std(axis=(0, 1))
            v = np.concatenate([m, sd, [m.sum(), 1.0]]) + 1e-3
            out.append(v / np.linalg.norm(v))
        if self.clock is not None:
            self.clock.advance(IMAGE_S * len(out))
        return np.asarray(out, np.float32)


class CharEncoder:
    """6-d text features from character counts."""

    name, dim, modality = f"precomputed:txt:{TXT_DIM}", TXT_DIM, "text"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock

    def encode(self, items: Any, batch_size: int = 64) -> np.ndarray:
        out = []
        for t in items:
            v = np.array([t.count(c) for c in "redgbl"], np.float32) + 0.1
            out.append(v / np.linalg.norm(v))
        if self.clock is not None:
            self.clock.advance(CAPTION_S * len(out))
        return np.asarray(out, np.float32)


def install_fakes(monkeypatch: pytest.MonkeyPatch, clock: Clock | None = None) -> list[str]:
    """Replace the encoder factory; loading a model takes LOAD_S on ``clock``. Returns the names loaded."""
    loaded: list[str] = []

    def create(name: str, **_: Any) -> Any:
        loaded.append(name)
        if clock is not None:
            clock.advance(LOAD_S)
        return PixelEncoder(clock) if name.startswith("precomputed:img") else CharEncoder(clock)

    monkeypatch.setattr(encoders_pkg, "create_encoder", create)
    return loaded


def shade(colour: tuple[int, int, int], rng: np.random.Generator, noise: float) -> Image.Image:
    base = np.array(colour, np.float32) + rng.normal(0, noise, 3)
    px = np.clip(base + rng.normal(0, noise, (16, 16, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(px, "RGB")
