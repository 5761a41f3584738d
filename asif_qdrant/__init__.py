"""asif-qdrant: zero-shot multimodal models from two frozen unimodal encoders and image-caption pairs, on Qdrant."""

from .asif import Asif
from .errors import (
    AsifError,
    ConfigError,
    EncoderError,
    EngineError,
    FingerprintMismatchError,
    InvalidInputError,
    NotFoundError,
    SchemaError,
    StoreLockedError,
)
from .settings import AsifSettings

__all__ = [
    "Asif",
    "AsifError",
    "AsifSettings",
    "ConfigError",
    "EncoderError",
    "EngineError",
    "FingerprintMismatchError",
    "InvalidInputError",
    "NotFoundError",
    "SchemaError",
    "StoreLockedError",
]
