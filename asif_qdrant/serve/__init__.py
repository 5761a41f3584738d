"""``asif serve``: an HTTP JSON API over the facade (FastAPI), for services in any language.

The process owns the store (so the embedded store's one-process lock is no obstacle) and the warm encoders;
every request is a call on one shared, thread-safe :class:`~asif_qdrant.asif.Asif`. API keys map to tenants
(``ASIF_API_KEYS`` / ``ASIF_API_KEYS_FILE``): a tenant key sees and edits only its tenant's model and can never
name another tenant; an ``@admin`` key manages the shared anchors and the tenants. Errors are
``{"error": "<one line>"}``. See docs/serving.md for the security settings, metrics, health and limits.

Modules: ``app`` (the factory, ``app.state``), ``auth`` (keys -> principal, rate limit), ``routers/`` (one per
resource), ``schemas`` (bodies and the error model), ``files`` (which files a request may name), ``deps``
(shared request helpers), ``middleware`` (body limit, request id, access log, disconnects), ``metrics``,
``errors`` (statuses, messages that speak HTTP).
"""

from .app import create_app, serve
from .auth import ADMIN, Keys, Principal, load_keys, parse_keys
from .errors import HTTPError, status_of

__all__ = ["ADMIN", "HTTPError", "Keys", "Principal", "create_app", "load_keys", "parse_keys", "serve", "status_of"]
