"""Anchor pairs: add (vectors or uploads), replace, delete."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ..auth import Who
from ..deps import bounded, read_uploads, settings, store
from ..files import check_refs
from ..schemas import AddAnswer, AnchorsBody, DeleteAnswer, DeleteBody, ReplaceBody

router = APIRouter(prefix="/v1/anchors", tags=["anchors"])


@router.post("", response_model=AddAnswer)
def add_anchors(body: AnchorsBody, who: Who, request: Request) -> dict[str, Any]:
    """Add anchor pairs from vectors (explicit ids that exist are replaced). ``image_refs`` are paths relative to
    ASIF_SERVE_ROOT (403 for one that leaves it)."""
    a, t = store(request), who.scope(body.tenant)
    bounded(request, len(body.image_vectors), "anchors")
    check_refs(body.image_refs, who, settings(request).serve_admin_any_path)
    res = a.add_vectors(body.image_vectors, body.text_vectors, body.captions, body.payloads, t, body.ids,
                        image_refs=body.image_refs)
    return res.as_dict()


@router.post("/image", response_model=AddAnswer)
async def add_anchor_images(
    who: Who, request: Request, images: Annotated[list[UploadFile], File()], captions: Annotated[list[str], Form()],
    tenant: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Add anchor pairs from uploaded images and their captions (one caption field per image, in order). A pair's
    id comes from the uploaded file's bytes and the caption, as for the same file added by path."""
    from ...ingest import add_pairs

    a, t = store(request), who.scope(tenant)
    pics, digests = await read_uploads(request, images)
    res = await run_in_threadpool(lambda: add_pairs(a, pics, captions, t, digests=digests))
    return res.as_dict()


@router.put("", response_model=AddAnswer)
def replace_anchors(body: ReplaceBody, who: Who, request: Request) -> dict[str, Any]:
    """Replace existing anchors (same ids) by new pairs."""
    a, t = store(request), who.scope(body.tenant)
    bounded(request, len(body.ids), "anchors")
    return a.replace(body.ids, body.image_vectors, body.text_vectors, body.captions, body.payloads, t).as_dict()


@router.post("/delete", response_model=DeleteAnswer)
def delete_anchors(body: DeleteBody, who: Who, request: Request) -> dict[str, Any]:
    """Delete anchors of the tenant by ids, or all of them with all=true."""
    a, t = store(request), who.scope(body.tenant)
    if body.ids is not None:
        bounded(request, len(body.ids), "ids")
    return a.delete(body.ids, tenant=t, all=body.all).as_dict()
