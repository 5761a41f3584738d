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


class AuthError(AsifError):
    """A server refused the request's API key (HTTP 401), or the key may not do what was asked (HTTP 403)."""


class ServerError(AsifError):
    """An ``asif serve`` server could not be reached, timed out, or failed (HTTP 5xx other than a busy store)."""
