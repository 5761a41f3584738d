"""``asif serve``: an HTTP JSON API over the facade (FastAPI), for services in any language.

The process owns the store (so the embedded store's one-process lock is no obstacle) and the warm encoders;
every request is a call on one shared, thread-safe :class:`~asif_qdrant.asif.Asif` (reads in parallel, each edit
whole). API keys map to tenants (``ASIF_API_KEYS`` / ``ASIF_API_KEYS_FILE``): a tenant key sees and edits only
its tenant's model (its own anchors plus the shared ones) and can never name another tenant; an ``@admin`` key
manages the shared anchors and the tenants. Errors are ``{"error": "<the library's one-line message>"}``.

Endpoints (see ``/docs`` for the interactive page, ``/openapi.json`` for the document):

- ``POST /v1/classify`` (vectors or server-side paths under ``ASIF_SERVE_ROOT``), ``POST /v1/classify/image``
  (multipart upload); ``POST /v1/search``; ``POST /v1/explain`` and ``POST /v1/explain/image`` (``?format=html``
  for the report)
- ``POST /v1/anchors`` (vectors), ``POST /v1/anchors/image`` (images + captions), ``PUT /v1/anchors`` (replace),
  ``POST /v1/anchors/delete``
- ``PUT|GET|DELETE /v1/labels[/{name}]``, ``PUT|GET|DELETE /v1/galleries[/{name}]``
- ``GET /v1/tenants``, ``GET /v1/tenants/stats``, ``DELETE /v1/tenants/{tenant}``; ``GET /healthz``
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations (local ones included) at runtime
import hmac
import io
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .asif import Asif, make_settings
from .errors import (
    AlreadyExistsError,
    AsifError,
    ConfigError,
    EncoderError,
    EngineError,
    FingerprintMismatchError,
    InvalidInputError,
    InvalidKError,
    InvalidPError,
    NotFoundError,
    RequestTooLargeError,
    SchemaError,
    StoreBusyError,
    StoreLockedError,
)
from .meta import TENANT_SHARED, validate_tenant
from .relindex import IndexInfo
from .settings import AsifSettings
from .validate import check_request_count

log = logging.getLogger("asif.serve")
ADMIN = "@admin"
RETRY_AFTER_S = "1"  # seconds a client is told to wait after a 503 for a busy store
STATUS: list[tuple[type[AsifError], int]] = [
    (RequestTooLargeError, 413),  # validate.check_request_count (ASIF_MAX_BATCH)
    (InvalidKError, 400),  # a bad argument, though also an InvalidInputError for relrep's callers
    (InvalidPError, 400),
    (NotFoundError, 404),
    (FingerprintMismatchError, 422),
    (InvalidInputError, 422),
    (AlreadyExistsError, 409),  # before ConfigError, its base
    (ConfigError, 400),
    (SchemaError, 409),
    (StoreBusyError, 503),
    (StoreLockedError, 503),
    (EngineError, 503),
    (EncoderError, 503),
]


class HTTPError(Exception):
    """A refusal made by the server itself (auth, limits), with its status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_of(e: AsifError) -> int:
    for cls, code in STATUS:
        if isinstance(e, cls):
            return code
    return 400


# -- keys ----------------------------------------------------------------------------------------
def parse_keys(text: str, source: str) -> dict[str, str]:
    """KEY=TENANT pairs (commas or new lines; '#' comments) -> {key: tenant or '@admin'}. Keys are never echoed."""
    keys: dict[str, str] = {}
    for n, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, tenant = (x.strip() for x in line.partition("="))
        if not sep or not key or not tenant:
            raise ConfigError(f"{source} entry {n} is not KEY=TENANT (or KEY=@admin): write one pair per entry")
        if len(key) < 8:
            raise ConfigError(f"{source} entry {n} has a key shorter than 8 characters: use long random keys")
        if tenant != ADMIN:
            tenant = validate_tenant(tenant)
            if tenant == TENANT_SHARED:
                raise ConfigError(f"{source} entry {n} maps a key to {TENANT_SHARED!r}: use @admin for the shared set")
        keys[key] = tenant
    return keys


def load_keys(settings: AsifSettings) -> dict[str, str]:
    keys: dict[str, str] = {}
    if settings.api_keys:
        keys.update(parse_keys(settings.api_keys, "ASIF_API_KEYS"))
    if settings.api_keys_file is not None:
        path = Path(settings.api_keys_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"keys file {str(path)!r} does not exist: check ASIF_API_KEYS_FILE")
        keys.update(parse_keys(path.read_text(encoding="utf-8"), f"keys file {str(path)!r}"))
    return keys


@dataclass(frozen=True)
class Principal:
    """Who is asking: a tenant, or an admin (tenant None)."""

    tenant: str | None

    @property
    def admin(self) -> bool:
        return self.tenant is None

    def scope(self, requested: str | None) -> str:
        """The tenant a request acts on. A tenant key may name only its own tenant; the refusal is the same
        whether the named tenant exists or not."""
        if self.tenant is None:
            return validate_tenant(requested)
        if requested is not None and requested != self.tenant:
            raise HTTPError(403, "this API key may only use its own tenant: leave 'tenant' out")
        return self.tenant

    def require_admin(self, what: str) -> None:
        if not self.admin:
            raise HTTPError(403, f"{what} needs an admin key")


class Keys:
    """Constant-time lookup of a presented key among the configured ones (every key is compared)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = [(k.encode(), t) for k, t in keys.items()]

    @property
    def open(self) -> bool:
        return not self._keys

    def identify(self, presented: str | None) -> Principal:
        if self.open:
            return Principal(None)
        if not presented:
            raise HTTPError(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        given = presented.encode()
        found: str | None = None
        for key, tenant in self._keys:
            if hmac.compare_digest(key, given):
                found = tenant
        if found is None:
            raise HTTPError(401, "invalid API key")
        return Principal(None if found == ADMIN else found)


# -- request size ----------------------------------------------------------------------------------
class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413 (by its Content-Length, or while it streams)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
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

    async def _refuse(self, send: Callable[[Any], Awaitable[None]]) -> None:
        await JSONResponse(
            {"error": f"request body exceeds {self.limit} bytes: send fewer items per request "
                      "(ASIF_MAX_REQUEST_BYTES)"},
            status_code=413,
        )({"type": "http"}, _no_receive, send)


async def _no_receive() -> Any:
    return {"type": "http.disconnect"}


# -- request bodies --------------------------------------------------------------------------------
Matrix = list[list[float]]


class ClassifyBody(BaseModel):
    labels: str = Field(description="The label set.")
    vectors: Matrix | None = Field(None, description="Image vectors, one per row (the store's image encoder).")
    paths: list[str] | None = Field(None, description="Image files under the server's ASIF_SERVE_ROOT.")
    top: int = 5
    tenant: str | None = None


class SearchBody(BaseModel):
    gallery: str
    texts: list[str] | None = None
    vectors: Matrix | None = Field(None, description="Text vectors, one per row (the store's text encoder).")
    top: int = 10
    tenant: str | None = None


class TagBody(BaseModel):
    collection: str = Field(..., description="The collection whose points are tagged (any the engine reaches).")
    vector: str = Field(..., description="Its dense image vector (named vector) made by the store's image encoder.")
    labels: str = Field(..., description="The label set.")
    filter: dict[str, Any] | None = Field(None, description="A Qdrant filter (must / must_not match conditions).")
    top: int = Field(3, description="Labels kept in each tag's 'top'.")
    replace: bool = Field(False, description="Overwrite the field where it holds other data.")
    tenant: str | None = None


class TagSyncBody(BaseModel):
    collection: str | None = Field(None, description="The collection (when the field is tagged in several).")
    ids: list[int | str] | None = Field(None, description="Re-tag these points (vectors overwritten in place).")
    tenant: str | None = None


class ExplainBody(BaseModel):
    labels: str
    vector: list[float] | None = None
    path: str | None = Field(None, description="An image file under the server's ASIF_SERVE_ROOT.")
    label: str | None = None
    top: int = 10
    n_labels: int = Field(1, ge=1, le=50)
    tenant: str | None = None


class AnchorsBody(BaseModel):
    image_vectors: Matrix
    text_vectors: Matrix
    captions: list[str | None] | None = None
    ids: list[int] | None = None
    payloads: list[dict[str, Any]] | None = None
    image_refs: list[str | None] | None = None
    tenant: str | None = None


class ReplaceBody(BaseModel):
    ids: list[int]
    image_vectors: Matrix
    text_vectors: Matrix
    captions: list[str | None] | None = None
    payloads: list[dict[str, Any]] | None = None
    tenant: str | None = None


class DeleteBody(BaseModel):
    ids: list[int] | None = None
    all: bool = False
    tenant: str | None = None


class LabelsBody(BaseModel):
    classes: list[str]
    templates: str | list[str] | None = Field(None, description="'photo' (default), 'plain', or a list.")
    prompt_vectors: Matrix | None = None
    k: int | None = None
    p: float | None = None
    aggregation: Literal["max", "mean"] = "max"
    replace: bool = Field(False, description="Redefine the label set if the name exists (else 409).")
    tenant: str | None = None


class GalleryBody(BaseModel):
    vectors: Matrix
    payloads: list[dict[str, Any]] | None = None
    k: int | None = None
    p: float | None = None
    replace: bool = Field(False, description="Rebuild the gallery if the name exists (else 409).")
    tenant: str | None = None


def info_dict(info: IndexInfo) -> dict[str, Any]:
    d = asdict(info)
    return {k: d[k] for k in ("name", "tenant", "kind", "k", "p", "n_items", "classes", "templates", "aggregation",
                              "tau")}


def sync_tags_every(asif: Asif, every_s: float, stop: threading.Event) -> None:
    """``asif serve`` with ASIF_TAG_SYNC_S: sync every tagging of every tenant with its collection, every
    ``every_s`` seconds, until ``stop`` is set. A failure is logged and retried at the next round."""
    while not stop.wait(every_s):
        for t in asif.taggings.all():
            spec = t.extra["tagging"]
            try:
                asif.sync_tags(spec["field"], t.tenant, collection=spec["collection"])
            except AsifError as e:
                log.warning("tag sync of %s:%s (tenant %s) failed: %s", spec["collection"], spec["field"], t.tenant, e)


# -- the app ---------------------------------------------------------------------------------------
def create_app(asif: Asif | None = None, settings: AsifSettings | None = None) -> FastAPI:
    """The FastAPI app. With ``asif`` it serves that store (and leaves closing it to the caller); otherwise it
    opens the store from ``settings`` (the environment) at start-up and closes it at shutdown."""
    s = settings if settings is not None else (asif.settings if asif is not None else make_settings())
    keys = Keys(load_keys(s))
    root = Path(s.serve_root).expanduser().resolve() if s.serve_root is not None else None
    state: dict[str, Asif | None] = {"asif": asif}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state["asif"] is None
        if owned:
            state["asif"] = Asif.open(settings=s)
        a = store()
        a.encoder("image")  # warm the encoders once, so that no request pays for loading them
        a.encoder("text")
        if keys.open:
            log.warning("no API keys configured (ASIF_API_KEYS): every request acts as admin")
        stop = threading.Event()
        if s.tag_sync_s is not None:
            threading.Thread(target=sync_tags_every, args=(a, s.tag_sync_s, stop), daemon=True,
                             name="asif-tag-sync").start()
        try:
            yield
        finally:
            stop.set()
            if owned and state["asif"] is not None:
                state["asif"].close()
                state["asif"] = None

    app = FastAPI(title="asif-qdrant", version="1", lifespan=lifespan,
                  description="Zero-shot classification and text-to-image search from two frozen encoders and "
                  "image-caption anchor pairs, in Qdrant.")

    @app.exception_handler(AsifError)
    async def _asif_error(request: Request, e: AsifError) -> JSONResponse:
        headers = {"Retry-After": RETRY_AFTER_S} if isinstance(e, StoreBusyError) else None
        return JSONResponse({"error": str(e)}, status_code=status_of(e), headers=headers)

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, e: HTTPError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse({"error": str(e)}, status_code=e.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        err = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        return JSONResponse({"error": f"{loc}: {err.get('msg')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(e).__name__}); see the server log"}, status_code=500)

    app.add_middleware(BodyLimit, limit=s.max_request_bytes)

    def store() -> Asif:
        a = state["asif"]
        if a is None:
            raise HTTPError(503, "the store is not open (the server is starting or stopping): retry")
        return a

    def principal(request: Request) -> Principal:
        auth = request.headers.get("authorization", "")
        presented = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")
        return keys.identify(presented)

    Who = Annotated[Principal, Depends(principal)]

    def bounded(n: int, what: str) -> None:
        check_request_count(n, s.max_batch, what)

    def server_path(rel: str) -> Path:
        if root is None:
            raise HTTPError(403, "reading images by path is off: upload the image, or set ASIF_SERVE_ROOT")
        p = (root / rel).resolve()
        if not p.is_relative_to(root):
            raise HTTPError(403, f"path {rel!r} is outside the serve root: give a path relative to ASIF_SERVE_ROOT")
        if not p.is_file():
            raise NotFoundError(f"image {rel!r} does not exist under the serve root: check the path")
        return p

    async def read_images(files: list[UploadFile]) -> list[Any]:
        from PIL import Image, UnidentifiedImageError

        bounded(len(files), "images")
        out = []
        for f in files:
            data = await f.read()
            try:
                im = Image.open(io.BytesIO(data))
                im.load()
            except (UnidentifiedImageError, OSError, ValueError):
                raise InvalidInputError(
                    f"upload {f.filename!r} is not an image PIL can read: send a JPEG, PNG or WebP file"
                ) from None
            out.append(im.convert("RGB"))
        return out

    def predictions(preds: list[Any]) -> dict[str, Any]:
        return {"predictions": [p.as_dict() for p in preds]}

    def explanation(a: Asif, ex: Any, fmt: str, image: Any, tenant: str) -> Any:
        if fmt == "html":
            from .evaluation.report import render_html

            roots = a.image_roots(tenant) + ([root] if root is not None else [])
            return HTMLResponse(render_html(ex, image, image_roots=roots))
        return ex.as_dict()

    # -- health ----------------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness and readiness: 200 once the store is open and the encoders are loaded."""
        store()
        return {"status": "ok"}

    # -- queries ---------------------------------------------------------------------------------
    @app.post("/v1/classify", tags=["query"])
    def classify(body: ClassifyBody, who: Who) -> dict[str, Any]:
        """Classify images given as vectors, or as files under the server's ASIF_SERVE_ROOT."""
        a, t = store(), who.scope(body.tenant)
        if (body.vectors is None) == (body.paths is None):
            raise ConfigError("pass either vectors or paths, not both and not neither")
        if body.vectors is not None:
            bounded(len(body.vectors), "vectors")
            return predictions(a.classify(vectors=body.vectors, labels=body.labels, top=body.top, tenant=t))
        paths = body.paths or []
        bounded(len(paths), "paths")
        files = [server_path(p) for p in paths]
        return predictions(a.classify(images=files, labels=body.labels, top=body.top, tenant=t))

    @app.post("/v1/classify/image", tags=["query"])
    async def classify_image(
        who: Who, images: Annotated[list[UploadFile], File(description="One or more image files.")],
        labels: Annotated[str, Form()], top: Annotated[int, Form()] = 5,
        tenant: Annotated[str | None, Form()] = None,
    ) -> Any:
        """Classify uploaded images (multipart/form-data)."""
        from starlette.concurrency import run_in_threadpool

        a, t = store(), who.scope(tenant)
        pics = await read_images(images)
        preds = await run_in_threadpool(a.classify, images=pics, labels=labels, top=top, tenant=t)
        return predictions(preds)

    @app.post("/v1/search", tags=["query"])
    def search(body: SearchBody, who: Who) -> dict[str, Any]:
        """Text-to-image search in a gallery, by texts or text vectors."""
        a, t = store(), who.scope(body.tenant)
        n = len(body.texts or []) + len(body.vectors or [])
        bounded(n, "queries")
        res = a.search(text=body.texts, vector=body.vectors, gallery=body.gallery, top=body.top, tenant=t)
        return {"results": [[{"id": h.id, "score": h.score, "payload": h.payload} for h in hs] for hs in res]}

    @app.post("/v1/explain", tags=["query"])
    def explain(body: ExplainBody, who: Who, format: Literal["json", "html"] = "json") -> Any:
        """Why one image (a vector, or a file under ASIF_SERVE_ROOT) gets its label; ?format=html for the report."""
        a, t = store(), who.scope(body.tenant)
        if (body.vector is None) == (body.path is None):
            raise ConfigError("pass either vector or path, not both and not neither")
        image = server_path(body.path) if body.path is not None else None
        ex = a.explain(image=image, vector=body.vector, labels=body.labels, label=body.label, top=body.top,
                       tenant=t, n_labels=body.n_labels)
        return explanation(a, ex, format, image, t)

    @app.post("/v1/explain/image", tags=["query"])
    async def explain_image(
        who: Who, image: Annotated[UploadFile, File()], labels: Annotated[str, Form()],
        label: Annotated[str | None, Form()] = None, top: Annotated[int, Form()] = 10,
        n_labels: Annotated[int, Form()] = 1, tenant: Annotated[str | None, Form()] = None,
        format: Annotated[Literal["json", "html"], Query()] = "json",
    ) -> Any:
        """Explain an uploaded image; ?format=html for the report."""
        from starlette.concurrency import run_in_threadpool

        a, t = store(), who.scope(tenant)
        pic = (await read_images([image]))[0]
        ex = await run_in_threadpool(a.explain, image=pic, labels=labels, label=label, top=top, tenant=t,
                                     n_labels=n_labels)
        return explanation(a, ex, format, pic, t)

    # -- anchors ---------------------------------------------------------------------------------
    def add_result(res: Any) -> dict[str, Any]:
        return {"ids": res.ids, "added": res.added, "duplicates": res.duplicates, "items_touched": res.items_touched}

    @app.post("/v1/anchors", tags=["anchors"])
    def add_anchors(body: AnchorsBody, who: Who) -> dict[str, Any]:
        """Add anchor pairs from vectors (explicit ids that exist are replaced)."""
        a, t = store(), who.scope(body.tenant)
        bounded(len(body.image_vectors), "anchors")
        res = a.add_vectors(body.image_vectors, body.text_vectors, body.captions, body.payloads, t, body.ids,
                            image_refs=body.image_refs)
        return add_result(res)

    @app.post("/v1/anchors/image", tags=["anchors"])
    async def add_anchor_images(
        who: Who, images: Annotated[list[UploadFile], File()], captions: Annotated[list[str], Form()],
        tenant: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        """Add anchor pairs from uploaded images and their captions (one caption field per image, in order)."""
        from starlette.concurrency import run_in_threadpool

        a, t = store(), who.scope(tenant)
        pics = await read_images(images)
        from .ingest import add_pairs

        res = await run_in_threadpool(add_pairs, a, pics, captions, t)
        return add_result(res)

    @app.put("/v1/anchors", tags=["anchors"])
    def replace_anchors(body: ReplaceBody, who: Who) -> dict[str, Any]:
        """Replace existing anchors (same ids) by new pairs."""
        a, t = store(), who.scope(body.tenant)
        bounded(len(body.ids), "anchors")
        return add_result(a.replace(body.ids, body.image_vectors, body.text_vectors, body.captions, body.payloads, t))

    @app.post("/v1/anchors/delete", tags=["anchors"])
    def delete_anchors(body: DeleteBody, who: Who) -> dict[str, Any]:
        """Delete anchors of the tenant by ids, or all of them with all=true."""
        a, t = store(), who.scope(body.tenant)
        if body.ids is not None:
            bounded(len(body.ids), "ids")
        res = a.delete(body.ids, tenant=t, all=body.all)
        return {"deleted": res.deleted, "items_touched": res.items_touched}

    # -- label sets and galleries ------------------------------------------------------------------
    @app.put("/v1/labels/{name}", tags=["indexes"])
    def define_labels(name: str, body: LabelsBody, who: Who) -> dict[str, Any]:
        """Define a label set; without a tenant (admin key), for every tenant. An existing name is refused (409)
        unless ``replace`` is true (then it is redefined)."""
        a, t = store(), who.scope(body.tenant)
        info = a.define_labels(name, body.classes, body.templates, body.prompt_vectors, t, k=body.k, p=body.p,
                               aggregation=body.aggregation, replace=body.replace)
        return info_dict(info)

    @app.get("/v1/labels", tags=["indexes"])
    def list_labels(who: Who, tenant: str | None = None) -> list[dict[str, Any]]:
        return [info_dict(i) for i in store().list_indexes(who.scope(tenant), "labels")]

    @app.delete("/v1/labels/{name}", tags=["indexes"])
    def delete_labels(name: str, who: Who, tenant: str | None = None) -> dict[str, Any]:
        return info_dict(store().delete_index(name, who.scope(tenant), "labels"))

    # -- tags on the user's collections ------------------------------------------------------------
    @app.put("/v1/tags/{field}", tags=["tags"])
    def tag(field: str, body: TagBody, who: Who) -> dict[str, Any]:
        """Tag every selected point of a collection in the payload field ``field`` (kept exact after every edit).
        A tenant key tags with its own model; an existing tagging of the field is run again."""
        a, t = store(), who.scope(body.tenant)
        return a.tag(body.collection, vector=body.vector, labels=body.labels, field=field, tenant=t,
                     filter=body.filter, top=body.top, replace=body.replace).as_dict()

    @app.get("/v1/tags", tags=["tags"])
    def list_tags(who: Who, tenant: str | None = None) -> list[dict[str, Any]]:
        return [i.as_dict() for i in store().list_tags(who.scope(tenant))]

    @app.post("/v1/tags/{field}/sync", tags=["tags"])
    def sync_tags(field: str, body: TagSyncBody, who: Who) -> dict[str, int]:
        """Pick up points added to or deleted from the tagged collection (and re-tag ``ids``)."""
        if body.ids is not None:
            bounded(len(body.ids), "ids")
        return store().sync_tags(field, who.scope(body.tenant), collection=body.collection, ids=body.ids)

    @app.delete("/v1/tags/{field}", tags=["tags"])
    def delete_tags(field: str, who: Who, tenant: str | None = None, collection: str | None = None) -> dict[str, Any]:
        return store().delete_tags(field, who.scope(tenant), collection=collection).as_dict()

    @app.get("/v1/tags/{field}/explain", tags=["tags"])
    def explain_tag(field: str, point: str, who: Who, tenant: str | None = None, collection: str | None = None,
                    top: int = 10) -> dict[str, Any]:
        """The explanation of one point's stored tag (the same pairs as explaining its vector)."""
        pid: int | str = int(point) if point.isdigit() else point
        return store().explain_tag(field, pid, who.scope(tenant), collection=collection, top=top).as_dict()

    @app.put("/v1/galleries/{name}", tags=["indexes"])
    def define_gallery(name: str, body: GalleryBody, who: Who) -> dict[str, Any]:
        """Define a gallery from image vectors (payloads are returned with search hits). An existing name is
        refused (409) unless ``replace`` is true (then it is rebuilt)."""
        a, t = store(), who.scope(body.tenant)
        bounded(len(body.vectors), "gallery items")
        return info_dict(a.add_gallery(name, vectors=body.vectors, payloads=body.payloads, tenant=t, k=body.k,
                                       p=body.p, replace=body.replace))

    @app.get("/v1/galleries", tags=["indexes"])
    def list_galleries(who: Who, tenant: str | None = None) -> list[dict[str, Any]]:
        return [info_dict(i) for i in store().list_indexes(who.scope(tenant), "gallery")]

    @app.delete("/v1/galleries/{name}", tags=["indexes"])
    def delete_gallery(name: str, who: Who, tenant: str | None = None) -> dict[str, Any]:
        return info_dict(store().delete_index(name, who.scope(tenant), "gallery"))

    # -- tenants ---------------------------------------------------------------------------------
    @app.get("/v1/tenants", tags=["tenants"])
    def list_tenants(who: Who) -> list[str]:
        """Every tenant (admin key), or the key's own tenant."""
        names = store().tenants()
        return names if who.admin else [t for t in names if t == who.tenant]

    @app.get("/v1/tenants/stats", tags=["tenants"])
    def tenant_stats(who: Who) -> dict[str, Any]:
        """Anchors and revision per tenant (a tenant key: its own and the shared set)."""
        data = store().stats()
        return data if who.admin else {t: v for t, v in data.items() if t in (who.tenant, TENANT_SHARED)}

    @app.delete("/v1/tenants/{tenant}", tags=["tenants"])
    def delete_tenant(tenant: str, who: Who) -> dict[str, Any]:
        who.require_admin("deleting a tenant")
        return store().delete_tenant(tenant)

    return app


def serve(
    host: str = "127.0.0.1", port: int = 8000, settings: AsifSettings | None = None, asif: Asif | None = None
) -> None:
    """Run the API with uvicorn, in this one process (it owns the store; with ``asif``, that open store, which the
    caller closes). No access log: nothing of a request's headers (keys) is ever written."""
    import uvicorn

    uvicorn.run(create_app(asif=asif, settings=settings), host=host, port=port, log_level="info", access_log=False)
