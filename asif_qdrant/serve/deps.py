"""What the routers share: the open store (``app.state``), request bounds, uploads decoded within the limits,
image paths confined to the allowed folders, and answers that never show a server folder to a tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ..asif import Asif
from ..embedding import Uploads
from ..settings import AsifSettings
from ..validate import check_request_count
from .auth import Principal
from .errors import HTTPError
from .files import allowed_roots, resolve


def store(request: Request) -> Asif:
    a: Asif | None = request.app.state.asif
    if a is None:
        raise HTTPError(503, "the store is not open (the server is starting or stopping): retry",
                        {"Retry-After": "1"})
    return a


def settings(request: Request) -> AsifSettings:
    s: AsifSettings = request.app.state.settings
    return s


def bounded(request: Request, n: int, what: str) -> None:
    """One request's count of vectors, paths, anchors or ids within ASIF_MAX_BATCH (validate.check_request_count)."""
    check_request_count(n, settings(request).max_batch, what)


async def read_images(request: Request, files: list[UploadFile]) -> list[Any]:
    """Uploaded images, each size-checked from its header and decoded shrunk, one at a time (in a worker thread),
    within one pixel budget for the request."""
    return (await read_uploads(request, files))[0]


async def read_uploads(request: Request, files: list[UploadFile]) -> tuple[list[Any], list[bytes]]:
    """The decoded images of :func:`read_images` and the sha256 of each upload's bytes (an anchor's content key,
    the same as for the file added by path)."""
    bounded(request, len(files), "images")
    uploads = Uploads(store(request).image_limits)  # one pixel budget for the request
    out, digests = [], []
    for f in files:
        data = await f.read()
        image, digest = await run_in_threadpool(uploads.decode, data, f.filename)
        out.append(image)
        digests.append(digest)
        del data
    return out, digests


def roots_for(request: Request, a: Asif, tenant: str) -> list[Path]:
    """The folders whose files ``tenant``'s requests and reports may reach: the serve root, then the folders
    ingest recorded for the tenant's anchors (its own and the shared ones)."""
    return allowed_roots(request.app.state.serve_root, a.image_roots(tenant))


def image_path(request: Request, who: Principal, a: Asif, tenant: str, ref: str) -> Path:
    """The file a request names by path: inside the allowed folders (links resolved), else 403/400/404."""
    root = request.app.state.serve_root
    if root is None:
        raise HTTPError(403, "reading images by path is off: upload the image, or set ASIF_SERVE_ROOT")
    if who.admin and settings(request).serve_admin_any_path and Path(ref).is_absolute():
        return resolve(ref, [Path("/")])
    return resolve(ref, roots_for(request, a, tenant))


def _relative(ref: str, roots: list[Path]) -> str:
    p = Path(ref)
    if not p.is_absolute():
        return ref
    for r in roots:
        if p.is_relative_to(r):
            return str(p.relative_to(r))
    return p.name


def redact(who: Principal, ex: Any, roots: list[Path], shown: str | None) -> Any:
    """An explanation as a caller may see it: the query named as the caller named it; for tenant keys, no server
    folder (no ingest roots, anchor image_refs relative to their folder, or just the file name)."""
    ex.image = shown
    if not who.admin:
        ex.image_roots = []
        for e in ex.explained:
            for c in e.contributions:
                if c.image_ref:
                    c.image_ref = _relative(c.image_ref, roots)
    return ex
