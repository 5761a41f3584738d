"""Tenants: list, per-tenant stats, delete (admin)."""

from typing import Any

from fastapi import APIRouter, Request

from ...meta import TENANT_SHARED
from ..auth import Who
from ..deps import store

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


@router.get("")
def list_tenants(who: Who, request: Request) -> list[str]:
    """Every tenant (admin key), or the key's own tenant."""
    names = store(request).tenants()
    return names if who.admin else [t for t in names if t == who.tenant]


@router.get("/stats")
def tenant_stats(who: Who, request: Request) -> dict[str, Any]:
    """Anchors and revision per tenant (a tenant key: its own and the shared set)."""
    data = store(request).stats()
    return data if who.admin else {t: v for t, v in data.items() if t in (who.tenant, TENANT_SHARED)}


@router.delete("/{tenant}")
def delete_tenant(tenant: str, who: Who, request: Request) -> dict[str, Any]:
    who.require_admin("deleting a tenant")
    return store(request).delete_tenant(tenant)
