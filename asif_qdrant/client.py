"""A typed Python client for the HTTP API of ``asif serve`` (httpx): every endpoint, the library's result types.

>>> with AsifClient("http://127.0.0.1:8000", api_key="k-acme-123456") as c:  # doctest: +SKIP
...     c.classify("cifar10", images=["cat.jpg"])[0].label
'cat'

The answers are the library's own result types (:class:`~asif_qdrant.zeroshot.Prediction`,
:class:`~asif_qdrant.zeroshot.SearchHit`, :class:`~asif_qdrant.explain.Explanation`,
:class:`~asif_qdrant.relindex.IndexInfo`, :class:`~asif_qdrant.anchors.AddResult`,
:class:`~asif_qdrant.asif.DeleteResult`), equal to what an in-process :class:`~asif_qdrant.asif.Asif` answers.
Refusals come back as the library's errors, chosen by HTTP status and carrying the server's message (and the
status, as ``e.status``): 400 ConfigError, 401/403 AuthError, 404 NotFoundError, 409 AlreadyExistsError, 413
RequestTooLargeError, 422 InvalidInputError, 429 RateLimitedError and 503 StoreBusyError (after the retries, which
wait as the server's Retry-After says), anything else ServerError. The API key travels as a bearer token and is
never part of a message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx

from .errors import (
    AlreadyExistsError,
    AsifError,
    AuthError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    RequestTooLargeError,
    ServerError,
    StoreBusyError,
)
from .zeroshot import LabelScore, Prediction, SearchHit

if TYPE_CHECKING:  # imported where they are decoded: `asif --server classify` pays for neither numpy nor pydantic
    from .anchors import AddResult
    from .asif import DeleteResult
    from .coverage import Coverage
    from .explain import Explanation
    from .relindex import IndexInfo
    from .tagging import TagInfo

ERRORS: Mapping[int, type[AsifError]] = {
    400: ConfigError, 401: AuthError, 403: AuthError, 404: NotFoundError, 409: AlreadyExistsError,
    413: RequestTooLargeError, 422: InvalidInputError, 429: RateLimitedError, 503: StoreBusyError,
}
RETRIED = frozenset({429, 503})  # refused before any work: a busy store, a key past its rate limit
MAX_WAIT_S = 30.0  # the longest single wait between retries, whatever Retry-After says

# what an upload may be: a file path, raw bytes, (file name, bytes), or a PIL image (sent as PNG)
ImageInput = str | Path | bytes | tuple[str, bytes] | Any


def error_for(status: int, message: str) -> AsifError:
    """The library error for an HTTP status and the server's message, with ``status`` set on it."""
    e = ERRORS.get(status, ServerError)(message if status in ERRORS else f"HTTP {status}: {message}")
    e.status = status  # type: ignore[attr-defined]
    return e


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); ``default`` when absent or unreadable."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return default


def _rows(x: Any) -> list[list[float]]:
    """A matrix (numpy array or nested lists) as lists; one vector becomes one row."""
    rows: list[Any] = [r.tolist() if hasattr(r, "tolist") else r for r in (x.tolist() if hasattr(x, "tolist") else x)]
    if rows and not isinstance(rows[0], list | tuple):
        rows = [rows]
    return [[float(v) for v in r] for r in rows]


def _vector(x: Any) -> list[float]:
    rows = _rows(x)
    if len(rows) != 1:
        raise InvalidInputError(f"expected one vector, got {len(rows)} rows: pass a single vector")
    return rows[0]


def _upload(image: ImageInput, n: int) -> tuple[str, bytes]:
    """(file name, bytes) of one image to upload."""
    if isinstance(image, str | Path):
        path = Path(image)
        try:
            return path.name, path.read_bytes()
        except OSError as e:
            raise NotFoundError(f"image {str(path)!r} cannot be read ({e.strerror}): check the path") from None
    if isinstance(image, bytes):
        return f"image{n}", image
    if isinstance(image, tuple) and len(image) == 2 and isinstance(image[1], bytes):
        return str(image[0]), image[1]
    if hasattr(image, "save"):  # a PIL image
        import io

        buf = io.BytesIO()
        image.save(buf, "PNG")
        return f"image{n}.png", buf.getvalue()
    raise InvalidInputError(f"image {n} is a {type(image).__name__}: pass a path, bytes, (name, bytes) or a PIL image")


def _verify(url: str) -> Any:
    """httpx's ``verify``: the default (certifi's CAs) for https; for plain http, a TLS context that trusts no
    certificate, so that the client does not spend a CLI call's start-up parsing a CA bundle that no request uses
    (and any TLS it were asked to make would fail closed)."""
    if url.startswith("https://"):
        return True
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# -- decoding the server's JSON into the library's result types ----------------------------------
def prediction_from_dict(d: Mapping[str, Any]) -> Prediction:
    return Prediction(d["label"], d["score"], [LabelScore(**t) for t in d["top"]], d.get("prompt"))


def hit_from_dict(d: Mapping[str, Any]) -> SearchHit:
    return SearchHit(d["id"], d["score"], dict(d.get("payload") or {}))


def index_from_dict(d: Mapping[str, Any]) -> IndexInfo:
    """An IndexInfo from its public fields (``IndexInfo.as_dict``); the server keeps the bookkeeping ones."""
    from .relindex import IndexInfo

    return IndexInfo(d["name"], d["tenant"], d["kind"], d["k"], d["p"], d["n_items"], {},
                     classes=list(d.get("classes") or []), templates=list(d.get("templates") or []),
                     aggregation=d.get("aggregation", "max"), tau=d.get("tau"),
                     created_at=d.get("created_at", 0.0), extra=dict(d.get("extra") or {}),
                     correction=d.get("correction", "none"), coverage=d.get("coverage"))


def explanation_from_dict(d: Mapping[str, Any]) -> Explanation:
    from .explain import AnchorContribution, Dominance, Explanation, LabelExplanation

    explained = [
        LabelExplanation(e["label"], e["score"], e["index_score"], e["prompt"], e["shared_anchors"],
                         [AnchorContribution(**c) for c in e["contributions"]], e["rest"],
                         prototype=e.get("prototype", 0.0), prototype_similarity=e.get("prototype_similarity"),
                         support=e.get("support"), verdict=e.get("verdict"), fix=e.get("fix"),
                         correction=e.get("correction", 0.0))
        for e in d["explained"]
    ]
    dom = d.get("dominant")
    return Explanation(
        d["labels"], d["tenant"], d["k"], d["p"], d["aggregation"], d["tau"], d["predicted"],
        [LabelScore(**r) for r in d["ranking"]], explained, image=d.get("image"),
        query_anchors=d.get("query_anchors", 0), image_roots=list(d.get("image_roots") or []),
        dominant=Dominance(**dom) if dom else None, correction=d.get("correction", "none"),
        reference=d.get("reference", 0),
    )


def add_from_dict(d: Mapping[str, Any], tenant: str | None) -> AddResult:
    """``tenant``: the one the request named (a tenant key's requests act on its own tenant)."""
    from .anchors import AddResult
    from .meta import TENANT_SHARED

    return AddResult(list(d["ids"]), d["added"], d["duplicates"], tenant=tenant or TENANT_SHARED,
                     items_touched=dict(d.get("items_touched") or {}))


class AsifClient:
    """The HTTP API of ``asif serve``, one method per endpoint.

    ``url``: the server (``http://host:8000``); ``api_key``: sent as ``Authorization: Bearer``; ``timeout``:
    seconds per request (or an ``httpx.Timeout``); ``retries``: how many times a 503 (a busy store) or a 429 (the
    key's rate limit) is retried,
    waiting the server's Retry-After, else ``backoff * 2**attempt`` seconds (at most 30 s each); ``transport``:
    an httpx transport (tests). Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"server URL {url!r} is not an http(s) URL: use e.g. http://127.0.0.1:8000")
        if retries < 0 or backoff < 0:
            raise ConfigError(f"retries={retries}, backoff={backoff}: use numbers >= 0")
        self.url = url.rstrip("/")
        self.retries, self.backoff = retries, backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport,
                                  verify=_verify(self.url))

    # -- life cycle -------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AsifClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:  # never the key
        return f"AsifClient({self.url!r})"

    # -- transport --------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with the retries on 429 and 503; any other refusal raises the library's error for its
    status."""
        for attempt in range(self.retries + 1):
            try:
                r = self._http.request(method, path, **kwargs)
            except httpx.TimeoutException:
                raise ServerError(f"{method} {self.url}{path} timed out: the server is slow or stuck; "
                                  "retry, or raise the client's timeout") from None
            except httpx.TransportError as e:
                raise ServerError(f"cannot reach the asif server at {self.url} ({type(e).__name__}): is "
                                  "`asif serve` running there? check --server (ASIF_SERVER)") from None
            if r.status_code in RETRIED and attempt < self.retries:
                time.sleep(min(MAX_WAIT_S, retry_after(r.headers.get("retry-after"), self.backoff * 2**attempt)))
                continue
            if r.status_code >= 400:
                raise error_for(r.status_code, self._message(r))
            return r
        raise AssertionError("unreachable")  # pragma: no cover  (the loop returns or raises)

    @staticmethod
    def _message(r: httpx.Response) -> str:
        try:
            body = r.json()
        except ValueError:
            return r.text.strip()[:500] or r.reason_phrase
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])
        return r.text.strip()[:500]

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    @staticmethod
    def _files(field: str, images: Sequence[ImageInput]) -> list[tuple[str, tuple[str, bytes, str]]]:
        if isinstance(images, str | Path | bytes):
            raise InvalidInputError("images must be a list: wrap a single image in [...]")
        return [(field, (*_upload(im, n), "application/octet-stream")) for n, im in enumerate(images)]

    # -- health -----------------------------------------------------------------------------------
    def healthz(self) -> dict[str, Any]:
        """``GET /healthz``: {"status": "ok"} once the server's store is open and its encoders are warm."""
        return dict(self._json("GET", "/healthz"))

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.2) -> None:
        """Wait until :meth:`healthz` answers (a server that is starting), at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.healthz()
                return
            except (ServerError, StoreBusyError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(interval)

    # -- queries ----------------------------------------------------------------------------------
    def classify(
        self,
        labels: str,
        *,
        vectors: Any = None,
        paths: Sequence[str] | None = None,
        images: Sequence[ImageInput] | None = None,
        top: int = 5,
        tenant: str | None = None,
    ) -> list[Prediction]:
        """Classify images given as exactly one of: ``vectors`` (the store's image encoder), ``paths`` (files
        under the server's ASIF_SERVE_ROOT) or ``images`` (uploaded: paths on this machine, bytes, PIL images)."""
        if sum(x is not None for x in (vectors, paths, images)) != 1:
            raise ConfigError("pass exactly one of vectors, paths and images")
        if images is not None:
            data = _drop_none({"labels": labels, "top": str(top), "tenant": tenant})
            got = self._json("POST", "/v1/classify/image", data=data, files=self._files("images", images))
        else:
            body = {"labels": labels, "top": top, "tenant": tenant,
                    "vectors": _rows(vectors) if vectors is not None else None,
                    "paths": [str(p) for p in paths] if paths is not None else None}
            got = self._json("POST", "/v1/classify", json=_drop_none(body))
        return [prediction_from_dict(p) for p in got["predictions"]]

    def search(
        self,
        gallery: str,
        *,
        texts: str | Sequence[str] | None = None,
        vectors: Any = None,
        top: int = 10,
        tenant: str | None = None,
    ) -> list[list[SearchHit]]:
        """Text-to-image search in a gallery: one list of hits per query text (or text vector)."""
        body = {"gallery": gallery, "top": top, "tenant": tenant,
                "texts": [texts] if isinstance(texts, str) else (list(texts) if texts is not None else None),
                "vectors": _rows(vectors) if vectors is not None else None}
        got = self._json("POST", "/v1/search", json=_drop_none(body))
        return [[hit_from_dict(h) for h in hits] for hits in got["results"]]

    def _explain(self, fmt: Literal["json", "html"], labels: str, vector: Any, path: str | None,
                 image: ImageInput | None, label: str | None, top: int, n_labels: int,
                 tenant: str | None) -> httpx.Response:
        if sum(x is not None for x in (vector, path, image)) != 1:
            raise ConfigError("pass exactly one of vector, path and image")
        params = {"format": fmt}
        if image is not None:
            data = _drop_none({"labels": labels, "label": label, "top": str(top), "n_labels": str(n_labels),
                               "tenant": tenant})
            return self.request("POST", "/v1/explain/image", params=params, data=data,
                                files=self._files("image", [image]))
        body = {"labels": labels, "label": label, "top": top, "n_labels": n_labels, "tenant": tenant,
                "vector": _vector(vector) if vector is not None else None, "path": path}
        return self.request("POST", "/v1/explain", params=params, json=_drop_none(body))

    def explain(
        self,
        labels: str,
        *,
        vector: Any = None,
        path: str | None = None,
        image: ImageInput | None = None,
        label: str | None = None,
        top: int = 10,
        n_labels: int = 1,
        tenant: str | None = None,
    ) -> Explanation:
        """Why one image gets its label; the image is exactly one of ``vector``, ``path`` (under the server's
        ASIF_SERVE_ROOT) and ``image`` (uploaded)."""
        r = self._explain("json", labels, vector, path, image, label, top, n_labels, tenant)
        return explanation_from_dict(r.json())

    def explain_html(
        self,
        labels: str,
        *,
        vector: Any = None,
        path: str | None = None,
        image: ImageInput | None = None,
        label: str | None = None,
        top: int = 10,
        n_labels: int = 1,
        tenant: str | None = None,
    ) -> str:
        """The self-contained HTML report of :meth:`explain` (``?format=html``)."""
        return self._explain("html", labels, vector, path, image, label, top, n_labels, tenant).text

    # -- anchors ----------------------------------------------------------------------------------
    def add_anchors(
        self,
        image_vectors: Any,
        text_vectors: Any,
        captions: Sequence[str | None] | None = None,
        *,
        ids: Sequence[int] | None = None,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        image_refs: Sequence[str | None] | None = None,
        tenant: str | None = None,
    ) -> AddResult:
        """Add anchor pairs from vectors (explicit ids that exist are replaced)."""
        body = {"image_vectors": _rows(image_vectors), "text_vectors": _rows(text_vectors),
                "captions": list(captions) if captions is not None else None,
                "ids": [int(i) for i in ids] if ids is not None else None,
                "payloads": [dict(p) for p in payloads] if payloads is not None else None,
                "image_refs": list(image_refs) if image_refs is not None else None, "tenant": tenant}
        return add_from_dict(self._json("POST", "/v1/anchors", json=_drop_none(body)), tenant)

    def add_images(self, images: Sequence[ImageInput], captions: Sequence[str], *,
                   tenant: str | None = None) -> AddResult:
        """Add anchor pairs from images (uploaded) and their captions, one caption per image; the server encodes
        both."""
        if isinstance(captions, str):
            raise InvalidInputError("captions must be a list (one caption per image): wrap a single one in [...]")
        data: dict[str, Any] = _drop_none({"captions": list(captions), "tenant": tenant})
        got = self._json("POST", "/v1/anchors/image", data=data, files=self._files("images", images))
        return add_from_dict(got, tenant)

    def replace_anchors(
        self,
        ids: Sequence[int],
        image_vectors: Any,
        text_vectors: Any,
        captions: Sequence[str | None] | None = None,
        *,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        tenant: str | None = None,
    ) -> AddResult:
        """Replace existing anchors (same ids) by new pairs."""
        body = {"ids": [int(i) for i in ids], "image_vectors": _rows(image_vectors),
                "text_vectors": _rows(text_vectors), "captions": list(captions) if captions is not None else None,
                "payloads": [dict(p) for p in payloads] if payloads is not None else None, "tenant": tenant}
        return add_from_dict(self._json("PUT", "/v1/anchors", json=_drop_none(body)), tenant)

    def delete_anchors(self, ids: Sequence[int] | None = None, *, all: bool = False,
                       tenant: str | None = None) -> DeleteResult:
        """Delete the tenant's anchors by id, or all of them with ``all=True``."""
        body = {"ids": [int(i) for i in ids] if ids is not None else None, "all": all, "tenant": tenant}
        got = self._json("POST", "/v1/anchors/delete", json=_drop_none(body))
        from .asif import DeleteResult

        return DeleteResult(list(got["deleted"]), dict(got.get("items_touched") or {}))

    # -- label sets and galleries -------------------------------------------------------------------
    def define_labels(
        self,
        name: str,
        classes: Sequence[str],
        templates: str | Sequence[str] | None = None,
        prompt_vectors: Any = None,
        *,
        k: int | None = None,
        p: float | None = None,
        aggregation: Literal["max", "mean"] = "max",
        replace: bool = False,
        tenant: str | None = None,
        correction: Literal["none", "mean", "zscore"] | None = None,
    ) -> IndexInfo:
        """Define a label set (``templates``: 'photo', 'plain' or a list); an existing name is AlreadyExistsError
        unless ``replace``. ``correction``: see Asif.define_labels (default: the server's ASIF_CORRECTION)."""
        if isinstance(classes, str):
            raise InvalidInputError("classes must be a list of class names: wrap a single one in [...]")
        body = {"classes": list(classes), "templates": templates if templates is None or isinstance(templates, str)
                else list(templates), "prompt_vectors": _rows(prompt_vectors) if prompt_vectors is not None else None,
                "k": k, "p": p, "aggregation": aggregation, "replace": replace, "tenant": tenant,
                "correction": correction}
        return index_from_dict(self._json("PUT", f"/v1/labels/{_name(name)}", json=_drop_none(body)))

    def coverage(self, name: str, tenant: str | None = None) -> Coverage:
        """Support and verdict per class of a label set (``Asif.coverage``)."""
        from .coverage import coverage_from_dict

        d = self._json("GET", f"/v1/labels/{_name(name)}/coverage", params=_drop_none({"tenant": tenant}))
        return coverage_from_dict(name, tenant or "_shared", d)

    def list_labels(self, tenant: str | None = None) -> list[IndexInfo]:
        return [index_from_dict(d) for d in self._json("GET", "/v1/labels", params=_drop_none({"tenant": tenant}))]

    def delete_labels(self, name: str, tenant: str | None = None) -> IndexInfo:
        return index_from_dict(self._json("DELETE", f"/v1/labels/{_name(name)}",
                                          params=_drop_none({"tenant": tenant})))

    def define_gallery(
        self,
        name: str,
        vectors: Any,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        *,
        k: int | None = None,
        p: float | None = None,
        replace: bool = False,
        tenant: str | None = None,
    ) -> IndexInfo:
        """Define a gallery from image vectors (payloads come back with the search hits)."""
        body = {"vectors": _rows(vectors), "payloads": [dict(x) for x in payloads] if payloads is not None else None,
                "k": k, "p": p, "replace": replace, "tenant": tenant}
        return index_from_dict(self._json("PUT", f"/v1/galleries/{_name(name)}", json=_drop_none(body)))

    def list_galleries(self, tenant: str | None = None) -> list[IndexInfo]:
        return [index_from_dict(d) for d in self._json("GET", "/v1/galleries",
                                                       params=_drop_none({"tenant": tenant}))]

    def delete_gallery(self, name: str, tenant: str | None = None) -> IndexInfo:
        return index_from_dict(self._json("DELETE", f"/v1/galleries/{_name(name)}",
                                          params=_drop_none({"tenant": tenant})))

    # -- tenants ----------------------------------------------------------------------------------
    def tenants(self) -> list[str]:
        """Every tenant (admin key), or the key's own."""
        return [str(t) for t in self._json("GET", "/v1/tenants")]

    def stats(self) -> dict[str, dict[str, int]]:
        """Anchors and revision per tenant (a tenant key: its own and the shared set)."""
        return {str(t): dict(v) for t, v in self._json("GET", "/v1/tenants/stats").items()}

    # -- tags on the users' collections (docs/tagging.md): the facade's signatures ------------------
    def tag(
        self, collection: str, *, vector: str, labels: str, field: str, tenant: str | None = None,
        filter: Any = None, top: int = 3, replace: bool = False,
    ) -> TagInfo:
        """Tag every selected point of ``collection`` in the payload field ``field`` (kept exact after every edit);
        a tenant key may tag only the collections listed in the server's ASIF_TAG_COLLECTIONS."""
        body = {"collection": collection, "vector": vector, "labels": labels, "filter": _filter_body(filter),
                "top": top, "replace": replace, "tenant": tenant}
        return tag_info_from_dict(self._json("PUT", f"/v1/tags/{_name(field)}", json=_drop_none(body)))

    def list_tags(self, tenant: str | None = None) -> list[TagInfo]:
        got = self._json("GET", "/v1/tags", params=_drop_none({"tenant": tenant}))
        return [tag_info_from_dict(t) for t in got]

    def sync_tags(self, field: str, tenant: str | None = None, *, collection: str | None = None,
                  ids: Sequence[Any] | None = None) -> dict[str, int]:
        """Pick up points added to or deleted from the tagged collection (and re-tag ``ids``)."""
        body = {"collection": collection, "tenant": tenant, "ids": list(ids) if ids is not None else None}
        return dict(self._json("POST", f"/v1/tags/{_name(field)}/sync", json=_drop_none(body)))

    def delete_tags(self, field: str, tenant: str | None = None, *, collection: str | None = None) -> TagInfo:
        params = _drop_none({"tenant": tenant, "collection": collection})
        return tag_info_from_dict(self._json("DELETE", f"/v1/tags/{_name(field)}", params=params))

    def explain_tag(self, field: str, point: Any, tenant: str | None = None, *, collection: str | None = None,
                    top: int = 10) -> Explanation:
        """The explanation of one point's stored tag (the same pairs as explaining its vector)."""
        params = _drop_none({"point": str(point), "tenant": tenant, "collection": collection, "top": str(top)})
        return explanation_from_dict(self._json("GET", f"/v1/tags/{_name(field)}/explain", params=params))

    def delete_tenant(self, tenant: str) -> dict[str, int]:
        """Delete a tenant and everything it owns (admin key)."""
        return dict(self._json("DELETE", f"/v1/tenants/{_name(tenant)}"))


def tag_info_from_dict(d: Mapping[str, Any]) -> TagInfo:
    from .tagging import TagInfo

    return TagInfo(**{k: d[k] for k in ("collection", "field", "tenant", "vector", "labels", "top", "filter",
                                        "points", "rev", "pending")})


def _filter_body(flt: Any) -> dict[str, Any] | None:
    """A tagging's filter as the JSON object the server takes (a dict, or its JSON text)."""
    if flt is None or isinstance(flt, Mapping):
        return dict(flt) if flt is not None else None
    import json

    try:
        out = json.loads(flt)
    except (TypeError, json.JSONDecodeError) as e:
        raise ConfigError(f"filter {flt!r} is not valid JSON ({e}): pass a Qdrant filter object") from None
    if not isinstance(out, dict):
        raise ConfigError(f"filter {flt!r} is not a JSON object: pass {{'must': [...], 'must_not': [...]}}")
    return out


def _name(name: str) -> str:
    """A name as one URL path segment (the server validates it; '/' or '?' must not change the endpoint)."""
    from urllib.parse import quote

    return quote(name, safe="")
