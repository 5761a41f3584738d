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


# -- one class per argument mistake (raised by asif_qdrant/validate.py) ------------------------------------------
# Each subclasses the error that the same mistake raised before, so that existing ``except`` clauses and the
# server's status mapping keep working. k and p were refused as ConfigError by the facade and as InvalidInputError
# by relrep; one class now serves both, and the server answers it as a bad argument (400).


class InvalidKError(ConfigError, InvalidInputError):
    """``k`` (anchors kept per representation) is not an integer in [1, max_k]."""


class InvalidPError(ConfigError, InvalidInputError):
    """``p`` (the exponent on similarities) is not a finite number in (0, MAX_P]."""


class InvalidTopError(ConfigError):
    """``top`` (results per query, or anchors shown) is not an integer in [1, max_top]."""


class InvalidCountError(ConfigError):
    """A count argument (n_labels, limit, keep, seeds, ...) is not a positive integer."""


class InvalidBatchSizeError(InvalidCountError):
    """``batch_size`` is not a positive integer within its bound."""


class InvalidNameError(ConfigError):
    """A label set or gallery name breaks the naming rule (1-64 letters, digits, '_', '.', '-')."""


class InvalidTenantError(InvalidNameError):
    """A tenant name breaks the naming rule."""


class InvalidIdError(InvalidInputError):
    """An anchor id is not an integer in [0, 2**32)."""


class TooManyItemsError(ConfigError):
    """A call or request holds more classes, templates, prompts, items or vectors than its bound allows."""


class RequestTooLargeError(TooManyItemsError):
    """One server request holds more vectors, images or anchors than ASIF_MAX_BATCH (HTTP 413)."""


class MissingExtraError(ConfigError):
    """An optional part (encoders, serve, eval) is used without its packages: the message names the pip extra."""


class LimitError(TooManyItemsError):
    """A request asks for more than a configured bound allows (classes, templates, ids, images, pixels)."""


class ImageTooLargeError(InvalidInputError):
    """An image whose header declares more pixels than ASIF_MAX_IMAGE_PIXELS (a decompression bomb), or a request
    whose images add up to more than ASIF_MAX_REQUEST_PIXELS; refused before decoding."""


class CancelledError(AsifError):
    """The work was stopped at a batch boundary because whoever asked for it went away (an HTTP client that
    disconnected); nothing of an edit was written."""


class AuthError(AsifError):
    """A server refused the request's API key (HTTP 401), or the key may not do what was asked (HTTP 403)."""


class ServerError(AsifError):
    """An ``asif serve`` server could not be reached, timed out, or failed (HTTP 5xx other than a busy store)."""


class RateLimitedError(AsifError):
    """A server refused the request past its key's rate limit (HTTP 429, ASIF_RATE_LIMIT), after the client's
    retries: send fewer requests, or raise the limit."""
