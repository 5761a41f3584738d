"""HTTP errors: the status of each library error, the server's own refusals, and messages that speak HTTP.

Every error body is ``{"error": "<one line>"}``. The library's messages name CLI commands and Python arguments
where they help a CLI or library user; :func:`http_message` rewrites those hints into endpoints and fields."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AlreadyExistsError,
    AsifError,
    CancelledError,
    ConfigError,
    EncoderError,
    EngineError,
    FingerprintMismatchError,
    ImageTooLargeError,
    InvalidInputError,
    InvalidKError,
    InvalidPError,
    LimitError,
    NotFoundError,
    RequestTooLargeError,
    SchemaError,
    StoreBusyError,
    StoreLockedError,
)

log = logging.getLogger("asif.serve")
RETRY_AFTER_S = "1"  # seconds a client is told to wait after a 503 for a busy store
CLIENT_GONE = 499  # nginx's "client closed request": only ever seen in the access log and the metrics
STATUS: list[tuple[type[AsifError], int]] = [
    (RequestTooLargeError, 413),  # validate.check_request_count (ASIF_MAX_BATCH)
    (InvalidKError, 400),  # a bad argument, though also an InvalidInputError for relrep's callers
    (InvalidPError, 400),
    (NotFoundError, 404),
    (FingerprintMismatchError, 422),
    (ImageTooLargeError, 413),  # before InvalidInputError, its base
    (InvalidInputError, 422),
    (AlreadyExistsError, 409),  # before ConfigError, its base
    (LimitError, 413),
    (ConfigError, 400),
    (SchemaError, 409),
    (StoreBusyError, 503),
    (StoreLockedError, 503),
    (EngineError, 503),
    (EncoderError, 503),
    (CancelledError, CLIENT_GONE),
]


class HTTPError(Exception):
    """A refusal made by the server itself (auth, limits, paths), with its status code."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


def status_of(e: AsifError) -> int:
    for cls, code in STATUS:
        if isinstance(e, cls):
            return code
    return 400


# the library's CLI / Python hints -> the endpoint or field that does the same over HTTP
_HINTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\(asif labels add ([^ )]+) \.\.\.\)"), r"(PUT /v1/labels/\1)"),
    (re.compile(r"\(asif gallery add ([^ )]+) \.\.\.\)"), r"(PUT /v1/galleries/\1)"),
    (re.compile(r"\(asif labels delete ([^ )]+)\)"), r"(DELETE /v1/labels/\1)"),
    (re.compile(r"\(asif gallery delete ([^ )]+)\)"), r"(DELETE /v1/galleries/\1)"),
    (re.compile(r"pass replace=True \(--replace\)"), 'send "replace": true'),
    (re.compile(r"see list_indexes\(\)"), "see GET /v1/labels and GET /v1/galleries"),
    (re.compile(r"see `asif tenants list`"), "see GET /v1/tenants"),
    (re.compile(r"delete\(all=True\)"), 'POST /v1/anchors/delete with "all": true'),
    (re.compile(r"delete it without a tenant"), "delete it with an admin key, without a tenant"),
    (re.compile(r"ids=\[\.\.\.\], filter=\.\.\. or all=True"), 'ids ("ids": [...]) or "all": true'),
    (re.compile(r" \(add new ones with add_vectors\)"), " (add new ones with POST /v1/anchors)"),
    (re.compile(r"replace=True"), '"replace": true'),
    (re.compile(r"tenant='[^']*', --tenant [^ )]+"), '"tenant"'),
    (re.compile(r" \(--[a-z-]+\)"), ""),
    (re.compile(r"`asif [^`]+`"), "the admin"),
]


def http_message(message: str, hide: tuple[str, ...] = ()) -> str:
    """The library's message with CLI / Python hints rewritten for HTTP and server folders (``hide``) removed."""
    out = message
    for pattern, repl in _HINTS:
        out = pattern.sub(repl, out)
    for folder in hide:
        out = out.replace(folder.rstrip("/") + "/", "")
    return out


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    """Map every exception to ``{"error": ...}`` with its status; never a traceback in a body."""

    @app.exception_handler(AsifError)
    async def _asif_error(request: Request, e: AsifError) -> JSONResponse:
        busy = isinstance(e, (StoreBusyError, StoreLockedError, EngineError))
        hide: tuple[str, ...] = getattr(request.app.state, "hidden_folders", ())
        return error_response(status_of(e), http_message(str(e), hide),
                              {"Retry-After": RETRY_AFTER_S} if busy else None)

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, e: HTTPError) -> JSONResponse:
        headers = dict(e.headers or {})
        if e.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return error_response(e.status, str(e), headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(e.status_code, str(e.detail), dict(e.headers) if e.headers else None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        errs: list[Any] = list(e.errors())
        err = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        return error_response(422, f"{loc}: {err.get('msg')}")

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(e).__name__}); see the server log")
