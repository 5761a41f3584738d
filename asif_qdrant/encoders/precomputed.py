"""An encoder that only names a vector space, for vectors the user brings (no model, no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from asif_qdrant.encoders.base import DEFAULT_BATCH_SIZE, EncoderFingerprint, Modality, check_vectors
from asif_qdrant.errors import EncoderError

MAX_DIM = 65_536


def parse_precomputed(spec: str) -> tuple[str, int]:
    """Parse the part after ``precomputed:`` (``<name>:<dim>``) into (name, dim)."""
    name, sep, dim_s = spec.rpartition(":")
    if not sep or not name or not dim_s.isdigit() or not 1 <= int(dim_s) <= MAX_DIM:
        raise EncoderError(
            f"'precomputed:{spec}' is malformed: write it as precomputed:<name>:<dim> with a dim "
            f"between 1 and {MAX_DIM}, for example 'precomputed:clip-vit-b32-image:512'"
        )
    return name, int(dim_s)


class PrecomputedEncoder:
    """Describes vectors computed elsewhere: it has a fingerprint but cannot encode raw inputs."""

    def __init__(self, name: str, dim: int, modality: Modality = "image") -> None:
        self.model_name = name
        self.name = f"precomputed:{name}:{dim}"
        self.dim = dim
        self.modality: Modality = modality
        self.weights_source = "none (vectors are brought by the user)"

    @property
    def fingerprint(self) -> EncoderFingerprint:
        return EncoderFingerprint(self.name, self.dim)

    def __repr__(self) -> str:
        return f"PrecomputedEncoder({self.name!r}, modality={self.modality!r})"

    def encode(self, items: Sequence[Any], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Always raises: this encoder has no model."""
        raise EncoderError(
            f"encoder {self.name!r} cannot encode raw {self.modality}s: it only describes "
            f"vectors you compute yourself. Pass your own (n, {self.dim}) vectors instead, or choose a model "
            "encoder such as 'timm:tf_efficientnet_lite0' or 'st:all-MiniLM-L6-v2'"
        )

    def check(self, vectors: Any) -> np.ndarray:
        """Validate user vectors of shape (n, dim); return them float32 and L2-normalised."""
        return check_vectors(vectors, self.dim, what=f"vectors for {self.name!r}")
