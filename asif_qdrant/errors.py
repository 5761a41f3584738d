"""The project's exceptions: one base, a few subclasses.

Every message names the bad value and says how to fix it.
"""

from __future__ import annotations


class AsifError(Exception):
    """Base class of every error that asif-qdrant raises on purpose."""


class ConfigError(AsifError):
    """A setting, argument or option has an invalid value."""


class InvalidInputError(AsifError):
    """Vectors, ids, captions or files given to the plugin are malformed."""


class NotFoundError(AsifError):
    """A label set, gallery, tenant, collection or file does not exist."""


class FingerprintMismatchError(AsifError):
    """Vectors or an encoder do not match the encoder fingerprint stored with the anchors."""


class AlreadyExistsError(ConfigError):
    """A label set or gallery of that name exists already (pass replace=True to redefine it)."""


class StoreBusyError(AsifError):
    """The store's lock was not free within ASIF_LOCK_TIMEOUT_S (a long edit in progress): retry."""


class StoreLockedError(AsifError):
    """The embedded store is already open in another process."""


class SchemaError(AsifError):
    """The store's schema is newer than this code, or a migration failed."""


class EngineError(AsifError):
    """The Qdrant engine (embedded or server) failed or refused an operation."""


class DiskFullError(EngineError):
    """Too little free space (or a read-only filesystem) where the embedded store must write."""


class EncoderError(AsifError):
    """An encoder could not be created or its weights could not be found."""


class LimitError(ConfigError):
    """A request asks for more than a configured bound allows (classes, templates, ids, images, pixels)."""


class ImageTooLargeError(InvalidInputError):
    """An image whose header declares more pixels than ASIF_MAX_IMAGE_PIXELS (a decompression bomb), or a request
    whose images add up to more than ASIF_MAX_REQUEST_PIXELS; refused before decoding."""


class CancelledError(AsifError):
    """The work was stopped at a batch boundary because whoever asked for it went away (an HTTP client that
    disconnected); nothing of an edit was written."""
