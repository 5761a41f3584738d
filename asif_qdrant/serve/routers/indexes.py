"""Label sets and galleries: define (PUT, 409 for an existing name unless replace), list, delete."""

from typing import Any

from fastapi import APIRouter, Request

from ..auth import Who
from ..deps import bounded, store
from ..schemas import GalleryBody, IndexAnswer, LabelsBody

router = APIRouter(prefix="/v1", tags=["indexes"])


@router.put("/labels/{name}", response_model=IndexAnswer)
def define_labels(name: str, body: LabelsBody, who: Who, request: Request) -> dict[str, Any]:
    """Define a label set; without a tenant (admin key), for every tenant. An existing name is refused (409)
    unless ``replace`` is true (then it is redefined). Classes, templates and prompts are bounded
    (ASIF_MAX_CLASSES, ASIF_MAX_TEMPLATES, ASIF_MAX_ITEMS); a client that disconnects stops the work."""
    a, t = store(request), who.scope(body.tenant)
    info = a.define_labels(name, body.classes, body.templates, body.prompt_vectors, t, k=body.k, p=body.p,
                           aggregation=body.aggregation, replace=body.replace)
    return info.as_dict()


@router.get("/labels/{name}/coverage")
def label_coverage(name: str, who: Who, request: Request, tenant: str | None = None) -> dict[str, Any]:
    """Per class of the label set: support (anchor pairs whose caption is close to its prompts; higher = better
    supported) and verdict (supported / weak / unsupported), from the tenant's current anchors."""
    return store(request).coverage(name, who.scope(tenant)).as_dict()


@router.get("/labels", response_model=list[IndexAnswer])
def list_labels(who: Who, request: Request, tenant: str | None = None) -> list[dict[str, Any]]:
    return [i.as_dict() for i in store(request).list_indexes(who.scope(tenant), "labels")]


@router.delete("/labels/{name}", response_model=IndexAnswer)
def delete_labels(name: str, who: Who, request: Request, tenant: str | None = None) -> dict[str, Any]:
    return store(request).delete_index(name, who.scope(tenant), "labels").as_dict()


@router.put("/galleries/{name}", response_model=IndexAnswer)
def define_gallery(name: str, body: GalleryBody, who: Who, request: Request) -> dict[str, Any]:
    """Define a gallery from image vectors (payloads are returned with search hits). An existing name is
    refused (409) unless ``replace`` is true (then it is rebuilt)."""
    a, t = store(request), who.scope(body.tenant)
    bounded(request, len(body.vectors), "gallery items")
    return a.add_gallery(name, vectors=body.vectors, payloads=body.payloads, tenant=t, k=body.k, p=body.p,
                         replace=body.replace).as_dict()


@router.get("/galleries", response_model=list[IndexAnswer])
def list_galleries(who: Who, request: Request, tenant: str | None = None) -> list[dict[str, Any]]:
    return [i.as_dict() for i in store(request).list_indexes(who.scope(tenant), "gallery")]


@router.delete("/galleries/{name}", response_model=IndexAnswer)
def delete_gallery(name: str, who: Who, request: Request, tenant: str | None = None) -> dict[str, Any]:
    return store(request).delete_index(name, who.scope(tenant), "gallery").as_dict()
