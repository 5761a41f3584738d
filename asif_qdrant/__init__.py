"""asif-qdrant: zero-shot multimodal models from two frozen unimodal encoders and image-caption pairs, on Qdrant."""

from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExistsError,
    AsifError,
    AuthError,
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
    RateLimitedError,
    RequestTooLargeError,
    SchemaError,
    ServerError,
    StoreBusyError,
    StoreLockedError,
    TooManyItemsError,
)

if TYPE_CHECKING:
    from .asif import Asif
    from .settings import AsifSettings

_LAZY = {"Asif": ".asif", "AsifSettings": ".settings"}


def __getattr__(name: str) -> Any:
    """``Asif`` and ``AsifSettings`` are imported on first use (PEP 562), so that ``import asif_qdrant.cli`` or
    ``asif_qdrant.client`` does not pay for the facade, pydantic and the engines when it does not need them."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "AuthError",
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
    "RateLimitedError",
    "RequestTooLargeError",
    "TooManyItemsError",
    "SchemaError",
    "ServerError",
    "StoreBusyError",
    "StoreLockedError",
]
