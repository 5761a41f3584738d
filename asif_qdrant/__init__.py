"""asif-qdrant: zero-shot multimodal models from two frozen unimodal encoders and image-caption pairs, on Qdrant."""

from .asif import Asif
from .errors import (
    AlreadyExistsError,
    AsifError,
    ConfigError,
    DiskFullError,
    EncoderError,
    EngineError,
    FingerprintMismatchError,
    InvalidBatchSizeError,
    InvalidCountError,
    InvalidIdError,
    InvalidInputError,
    InvalidKError,
    InvalidNameError,
    InvalidPError,
    InvalidTenantError,
    InvalidTopError,
    MissingExtraError,
    NotFoundError,
    RequestTooLargeError,
    SchemaError,
    StoreBusyError,
    StoreLockedError,
    TooManyItemsError,
)
from .settings import AsifSettings

try:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    __version__ = _version("asif-qdrant")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "AlreadyExistsError",
    "Asif",
    "AsifError",
    "AsifSettings",
    "ConfigError",
    "DiskFullError",
    "EncoderError",
    "EngineError",
    "FingerprintMismatchError",
    "InvalidInputError",
    "InvalidBatchSizeError",
    "InvalidCountError",
    "InvalidIdError",
    "InvalidKError",
    "InvalidNameError",
    "InvalidPError",
    "InvalidTenantError",
    "InvalidTopError",
    "MissingExtraError",
    "NotFoundError",
    "RequestTooLargeError",
    "TooManyItemsError",
    "SchemaError",
    "StoreBusyError",
    "StoreLockedError",
]
