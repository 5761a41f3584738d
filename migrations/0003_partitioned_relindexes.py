"""Relative indexes: from one collection per (tenant, index) to a fixed set of collections partitioned by payload.

Before: the items of index ``name`` of ``tenant`` lived in ``{prefix}rel__{tenant}__{name}`` (names could collide), its
record under the meta key ``relindex:{tenant}:{name}`` (a label set and a gallery of one name shared it).
After: every label-set item in ``{prefix}relindex_text``, every gallery item in ``{prefix}relindex_image``, with the
payload ``tenant`` / ``index`` / ``kind`` / ``item`` (keyword indexes; ``tenant`` is_tenant), point ids
``slot << 24 | item``, and the record under ``index:["tenant","kind","name"]``.

Each index is copied as it is (item vectors, sparse reps, stored top-k lists, payloads: answers are unchanged), its
count verified, and its new record written; the old records and collections are removed only once every new index
answers a query as its old collection did. Re-running after an interruption finishes the job: copies are idempotent
(same slot, same ids), and old collections whose record is already gone are removed.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np

from asif_qdrant.engines.base import PointBatch, SparseQuery, SparseVec
from asif_qdrant.errors import SchemaError
from asif_qdrant.meta import TENANT_SHARED
from asif_qdrant.migrate import MigrationContext
from asif_qdrant.names import legacy_relindex_collection
from asif_qdrant.relindex import IndexInfo, RelIndexes, index_filter

DESCRIPTION = (
    "relative indexes: every tenant's items in two collections (relindex_text, relindex_image) partitioned by payload "
    "tenant/index/kind (keyword indexes, tenant is_tenant); structured meta keys index:[tenant,kind,name]"
)
_FIELDS = {f.name for f in fields(IndexInfo)}
_LEGACY_PREFIX = "rel__"


def _new_info(v: dict[str, Any]) -> IndexInfo:
    info = IndexInfo(**{k: x for k, x in v.items() if k in _FIELDS})
    from_shared = bool(info.extra.pop("from_shared", False))
    info.slot, info.definition = -1, 0
    info.copied_from = 0 if from_shared and info.tenant != TENANT_SHARED else None
    return info


def _check_answers(ctx: MigrationContext, old_coll: str, ri: RelIndexes, info: IndexInfo, probe: Any) -> None:
    """The new index answers the probe (one of its own items' reps) exactly as the old collection does."""
    if not isinstance(probe, SparseVec) or len(probe) == 0:
        return
    old = ctx.engine.query_batch(old_coll, [SparseQuery("rel", probe, 10)])[0]
    new = ri.query(info, [_rep(probe)], limit=10, with_payload=False)[0]
    want = [(h.id, round(h.score, 5)) for h in old if h.score > 0]
    got = [(h.id, round(h.score, 5)) for h in new]
    if want != got:
        raise SchemaError(
            f"{info.kind} {info.name!r} of tenant {info.tenant!r} answers {got[:3]} after copying, {want[:3]} before: "
            "the old collection is kept; report this"
        )


def _rep(sv: SparseVec) -> Any:
    from asif_qdrant.relrep import SparseRep

    return SparseRep(np.asarray(sv.indices, np.int64), np.asarray(sv.values, np.float64))


def apply(ctx: MigrationContext) -> None:
    if ctx.fingerprint is None:
        raise SchemaError("relative indexes need the encoder dimensions: set ASIF_IMAGE_ENCODER and ASIF_TEXT_ENCODER")
    prefix = ctx.settings.prefix
    engine = ctx.engine
    ri = RelIndexes(engine, prefix, ctx.meta, ctx.fingerprint)
    ri.ensure_collections()
    old_records = list(ctx.meta.items("relindex"))
    copied: list[tuple[str, str, IndexInfo, Any]] = []
    # a copy of a shared label set made before definitions were tracked may be stale: rebuilt on its next query
    shared_defs = {(v["kind"], v["name"]): (v.get("classes"), v.get("templates"))
                   for _, v in old_records if v.get("tenant") == TENANT_SHARED}
    for key, v in old_records:
        old_coll = legacy_relindex_collection(prefix, v["tenant"], v["name"])
        info = _new_info(v)
        if not engine.collection_exists(old_coll):
            copied.append((key, old_coll, info, None))  # a record without items: nothing to copy, dropped below
            continue
        if info.copied_from is not None and shared_defs.get((info.kind, info.name)) != (info.classes, info.templates):
            info.copied_from = -1
        info.slot = ri.allocate_slot(info)
        recs = list(engine.scroll(old_coll, with_payload=True, with_vectors=("item", "rel")))
        recs.sort(key=lambda r: r.id)
        part = {"tenant": info.tenant, "index": info.name, "kind": info.kind}
        coll = ri.collection(info)
        for start in range(0, len(recs), 256):
            chunk = recs[start : start + 256]
            engine.upsert(coll, PointBatch(
                ri.point_ids(info, [r.id for r in chunk]),
                {"item": np.stack([np.asarray(r.vectors["item"], np.float32) for r in chunk])},
                {"rel": [r.vectors.get("rel") or SparseVec(np.zeros(0, np.uint32), np.zeros(0, np.float32))
                         for r in chunk]},
                [{**r.payload, **part, "item": int(r.id)} for r in chunk],
            ))
        n_new = engine.count(coll, index_filter(info))
        if n_new != len(recs) or engine.count(old_coll) != len(recs):
            raise SchemaError(
                f"{info.kind} {info.name!r} of tenant {info.tenant!r}: {len(recs)} items in {old_coll!r}, "
                f"{n_new} after copying; nothing was removed, run `asif migrate` again"
            )
        info.n_items = len(recs)
        ctx.meta.put(info.key, asdict(info))
        copied.append((key, old_coll, info, recs[0].vectors.get("rel") if recs else None))
    for _, old_coll, info, probe in copied:
        if probe is not None:
            _check_answers(ctx, old_coll, ri, info, probe)
    if copied:
        ctx.meta.delete(*[key for key, _, _, _ in copied])
    for name in engine.list_collections():  # every old collection, also those left by an interrupted run
        if name.startswith(prefix + _LEGACY_PREFIX):
            engine.delete_collection(name)
