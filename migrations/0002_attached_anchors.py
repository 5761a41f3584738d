"""Anchors of an attached collection: integer ids below 2**32, a tenant on every point, the tenant index.

For a collection the plugin created this changes nothing. For an existing collection attached with
ASIF_ANCHORS_COLLECTION, points without a tenant join the shared anchors, and ids that cannot be
sparse-vector indices are refused with the fix.
"""

from __future__ import annotations

from asif_qdrant.errors import SchemaError
from asif_qdrant.meta import TENANT_SHARED
from asif_qdrant.migrate import MigrationContext
from asif_qdrant.names import anchors_collection

DESCRIPTION = "attached anchors: integer ids < 2**32, a tenant on every point (default shared), tenant index"


def plan(ctx: MigrationContext) -> list[str]:
    """What apply would change in the user's collection (its own name), changing nothing."""
    name = anchors_collection(ctx.settings.prefix)
    shown = ctx.settings.anchors_collection or name
    engine = ctx.engine
    if not engine.collection_exists(name):
        return [f"nothing in {shown!r} (it does not exist yet)"]
    out = []
    if engine.collection_spec(name).keyword_indexes.get("tenant") is not True:
        out.append(f"create the keyword index 'tenant' (is_tenant) on {shown!r}")
    total = engine.count(name)
    missing = sum(1 for rec in engine.scroll(name, with_payload=["tenant"]) if not rec.payload.get("tenant"))
    if missing:
        out.append(f"set tenant={TENANT_SHARED!r} on {missing} of the {total} points of {shown!r} (they join the "
                   "shared anchors); no other field or vector changes")
    return out or [f"nothing in {shown!r}: every point has a tenant"]


def apply(ctx: MigrationContext) -> None:
    name = anchors_collection(ctx.settings.prefix)
    shown = ctx.settings.anchors_collection or name  # messages name the user's collection
    engine = ctx.engine
    spec = engine.collection_spec(name)
    if spec.keyword_indexes.get("tenant") is not True:
        engine.ensure_keyword_index(name, "tenant", True)
    missing: list[int] = []
    try:
        for rec in engine.scroll(name, with_payload=["tenant"]):
            if not isinstance(rec.id, int):  # a UUID id (engines hand them through as strings)
                raise ValueError(f"point id {rec.id!r}")
            if rec.id >= 2**32:
                raise SchemaError(
                    f"anchor id {rec.id} in {shown!r} is not below 2**32: anchor ids double as sparse-vector indices; "
                    "re-key the collection with small integer ids, or ingest the pairs into a new store"
                )
            if not rec.payload.get("tenant"):
                missing.append(rec.id)
    except ValueError as e:  # a UUID id cannot become an int
        raise SchemaError(
            f"collection {shown!r} has non-integer point ids ({e}): anchor ids must be integers below 2**32; "
            "re-key the collection, or ingest the pairs into a new store"
        ) from e
    for start in range(0, len(missing), 1000):
        engine.set_payload(name, missing[start : start + 1000], {"tenant": TENANT_SHARED})
