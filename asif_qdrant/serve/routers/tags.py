"""Tags on the users' collections (docs/tagging.md): tag (PUT), list, sync, explain one point's tag, delete; and the
periodic sync that ``asif serve`` runs with ASIF_TAG_SYNC_S."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Request

from ...asif import Asif
from ...errors import AsifError
from ...tagging import info_of
from ..auth import Who
from ..deps import bounded, settings, store
from ..errors import HTTPError, log
from ..schemas import TagBody, TagSyncBody

router = APIRouter(prefix="/v1", tags=["tags"])


@router.put("/tags/{field}")
def tag(field: str, body: TagBody, who: Who, request: Request) -> dict[str, Any]:
    """Tag every selected point of a collection in the payload field ``field`` (kept exact after every edit). A
    tenant key tags with its own model; an existing tagging of the field is run again."""
    a, t = store(request), who.scope(body.tenant)
    if not who.admin and body.collection not in tag_collections(settings(request).tag_collections):
        raise HTTPError(403, f"this API key may not tag collection {body.collection!r}: an admin lists the "
                        "collections tenant keys may tag in ASIF_TAG_COLLECTIONS")
    return a.tag(body.collection, vector=body.vector, labels=body.labels, field=field, tenant=t, filter=body.filter,
                 top=body.top, replace=body.replace).as_dict()


def tag_collections(value: str | None) -> set[str]:
    """The collections of ASIF_TAG_COLLECTIONS (comma-separated names)."""
    return {c.strip() for c in (value or "").split(",") if c.strip()}


@router.get("/tags")
def list_tags(who: Who, request: Request, tenant: str | None = None) -> list[dict[str, Any]]:
    return [i.as_dict() for i in store(request).list_tags(who.scope(tenant))]


@router.post("/tags/{field}/sync")
def sync_tags(field: str, body: TagSyncBody, who: Who, request: Request) -> dict[str, int]:
    """Pick up points added to or deleted from the tagged collection (and re-tag ``ids``)."""
    if body.ids is not None:
        bounded(request, len(body.ids), "ids")
    return store(request).sync_tags(field, who.scope(body.tenant), collection=body.collection, ids=body.ids)


@router.delete("/tags/{field}")
def delete_tags(field: str, who: Who, request: Request, tenant: str | None = None,
                collection: str | None = None) -> dict[str, Any]:
    return store(request).delete_tags(field, who.scope(tenant), collection=collection).as_dict()


@router.get("/tags/{field}/explain")
def explain_tag(field: str, point: str, who: Who, request: Request, tenant: str | None = None,
                collection: str | None = None, top: int = 10) -> dict[str, Any]:
    """The explanation of one point's stored tag (the same pairs as explaining its vector)."""
    pid: int | str = int(point) if point.isdigit() else point
    return store(request).explain_tag(field, pid, who.scope(tenant), collection=collection, top=top).as_dict()


def sync_tags_every(asif: Asif, every_s: float, stop: threading.Event) -> None:
    """``asif serve`` with ASIF_TAG_SYNC_S: sync every tagging of every tenant with its collection, every
    ``every_s`` seconds, until ``stop`` is set. A failure is logged and retried at the next round."""
    while not stop.wait(every_s):
        for info in asif.taggings.all():
            t = info_of(info)
            try:
                asif.sync_tags(t.field, t.tenant, collection=t.collection)
            except AsifError as e:
                log.warning("tag sync of %s:%s (tenant %s) failed: %s", t.collection, t.field, t.tenant, e)
