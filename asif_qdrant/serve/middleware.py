"""ASGI middleware of the server: the body-size limit, and per request its id (``X-Request-ID``, echoed), one
JSON access-log line (never a key), the metrics, and the watch for a client that goes away (its work stops at
the next batch, see :mod:`asif_qdrant.cancel`)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from ..cancel import cancel_when
from .metrics import Metrics

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
access_log = logging.getLogger("asif.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _BodyTooLarge(Exception):
    pass


async def _no_receive() -> Any:
    return {"type": "http.disconnect"}


class BodyLimit:
    """A body over ``limit`` bytes gets 413 (by its Content-Length, or while it streams)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        seen = 0
        started = False

        async def counting_receive() -> Any:
            nonlocal seen
            msg = await receive()
            if msg.get("type") == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return msg

        async def tracking_send(msg: Any) -> None:
            nonlocal started
            if msg.get("type") == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await JSONResponse(
            {"error": f"request body exceeds {self.limit} bytes: send fewer items per request "
                      "(ASIF_MAX_REQUEST_BYTES)"},
            status_code=413,
        )({"type": "http"}, _no_receive, send)


class RequestContext:
    """Request id, access log, metrics and the disconnect watch, around every HTTP request."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        gone = threading.Event()
        status = 500
        body_done = asyncio.Event()
        watcher: asyncio.Task[None] | None = None

        async def watch() -> None:  # after the body: the next message can only be the client going away
            msg = await receive()
            if msg.get("type") == "http.disconnect":
                gone.set()

        async def wrapped_receive() -> Any:
            nonlocal watcher
            if body_done.is_set():  # the app asks again (a streaming response): wait for the watcher's verdict
                while not gone.is_set():
                    await asyncio.sleep(0.05)
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg.get("type") == "http.disconnect":
                gone.set()
            elif not msg.get("more_body", False):
                body_done.set()
                watcher = asyncio.ensure_future(watch())
            return msg

        async def wrapped_send(msg: Any) -> None:
            nonlocal status
            if msg.get("type") == "http.response.start":
                status = int(msg["status"])
                msg = {**msg, "headers": [*msg.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(msg)

        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            with cancel_when(gone.is_set):
                await self.app(scope, wrapped_receive, wrapped_send)
        finally:
            self.metrics.in_flight.dec()
            if watcher is not None:
                watcher.cancel()
            self._record(scope, rid, status if not gone.is_set() or status != 500 else 499, start)

    def _record(self, scope: Scope, rid: str, status: int, start: float) -> None:
        seconds = time.perf_counter() - start
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        tenant = scope.get("state", {}).get("tenant")
        self.metrics.observe(scope["method"], route, status, seconds, tenant)
        client = scope.get("client")
        access_log.info(json.dumps({
            "ts": round(time.time(), 3), "request_id": rid, "method": scope["method"], "path": scope["path"],
            "route": route, "status": status, "ms": round(seconds * 1000, 2), "tenant": tenant,
            "client": client[0] if client else None,
        }))
