"""The app factory: one FastAPI app over one shared :class:`~asif_qdrant.asif.Asif`, its state in ``app.state``
(the store, the settings, the keys, the rate limiter, the metrics, the serve root)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..asif import Asif, make_settings
from ..settings import AsifSettings
from .auth import Keys, RateLimiter, load_keys
from .errors import install_handlers, log
from .metrics import Metrics
from .middleware import BodyLimit, RequestContext
from .routers import anchors, health, indexes, query, tags, tenants
from .schemas import ERROR_RESPONSES

DESCRIPTION = (
    "Zero-shot classification and text-to-image search from two frozen encoders and image-caption anchor pairs, "
    "in Qdrant. Send an API key as `Authorization: Bearer <key>` (the Authorize button). Every error is "
    '`{"error": "<one line>"}`.'
)


def _state(app: FastAPI, asif: Asif | None, s: AsifSettings) -> None:
    st = app.state
    st.asif, st.settings, st.ready = asif, s, False
    st.keys = Keys(load_keys(s))
    st.rate_limiter = RateLimiter(s.rate_limit)
    st.metrics = Metrics()
    st.serve_root = Path(s.serve_root).expanduser().resolve() if s.serve_root is not None else None
    st.hidden_folders = tuple(str(x) for x in {st.serve_root, s.serve_root} if x is not None)


def create_app(asif: Asif | None = None, settings: AsifSettings | None = None) -> FastAPI:
    """The FastAPI app. With ``asif`` it serves that store (and leaves closing it to the caller); otherwise it
    opens the store from ``settings`` (the environment) at start-up and closes it at shutdown."""
    s = settings if settings is not None else (asif.settings if asif is not None else make_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = app.state.asif is None
        if owned:
            app.state.asif = Asif.open(settings=s)
        a: Asif = app.state.asif
        a.encoder("image")  # warm the encoders once, so that no request pays for loading them
        a.encoder("text")
        app.state.ready = True
        if app.state.keys.open:
            log.warning("no API keys configured (ASIF_API_KEYS): every request acts as admin")
        stop = threading.Event()
        if s.tag_sync_s is not None:
            threading.Thread(target=tags.sync_tags_every, args=(a, s.tag_sync_s, stop), daemon=True,
                             name="asif-tag-sync").start()
        try:
            yield
        finally:
            stop.set()
            app.state.ready = False
            if owned and app.state.asif is not None:
                app.state.asif.close()
                app.state.asif = None

    app = FastAPI(title="asif-qdrant", version="1", lifespan=lifespan, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, responses=ERROR_RESPONSES)
    _state(app, asif, s)
    install_handlers(app)
    for r in (health.router, query.router, anchors.router, indexes.router, tags.router, tenants.router):
        app.include_router(r)
    app.mount(health.ASSETS, StaticFiles(directory=health.assets_folder()), name="docs-assets")
    if s.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in s.cors_origins.split(",") if o.strip()],
                           allow_methods=["*"], allow_headers=["Authorization", "Content-Type", "X-API-Key",
                                                               "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])
    app.add_middleware(BodyLimit, limit=s.max_request_bytes)
    app.add_middleware(RequestContext, metrics=app.state.metrics)  # outermost: sees every answer, 413s included
    return app


def serve(
    host: str = "127.0.0.1", port: int = 8000, settings: AsifSettings | None = None, asif: Asif | None = None
) -> None:
    """Run the API with uvicorn, in this one process (it owns the store; with ``asif``, that open store, which the
    caller closes). Uvicorn's access log is off: the server writes its own JSON lines (logger ``asif.access``),
    with a request id and never a key."""
    import logging

    import uvicorn

    access = logging.getLogger("asif.access")
    access.setLevel(logging.INFO)
    if not access.handlers:  # one JSON object per line on stderr, next to uvicorn's own log
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.propagate = False
    uvicorn.run(create_app(asif=asif, settings=settings), host=host, port=port, log_level="info", access_log=False)
