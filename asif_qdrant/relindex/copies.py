"""Tenant copies of a relative index defined once for all tenants: materialised from the shared index's items
(exact over the shared anchors), then the tenant's own anchors enter them as an edit would."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from ..engines.base import Filter, Match, PointBatch, SparseVec
from ..meta import TENANT_SHARED, from_record
from .freshness import Freshness
from .records import IndexInfo, index_filter, item_of, scope_revisions, stamp


class TenantCopies(Freshness):
    """Tenant copies of shared label sets and galleries: made from the shared items' lists, then merged with the
    tenant's own anchors as an edit would be."""

    def materialise(self, shared: IndexInfo, tenant: str) -> IndexInfo:
        """A tenant's own copy of a label set or gallery defined once for all tenants (made again, in place, when
        the shared definition has changed since: ``copied_from`` records the definition it was made from)."""
        own = self.info(shared.name, tenant, shared.kind)
        info = IndexInfo(**{**asdict(shared), "tenant": tenant, "revisions": {},
                            "slot": own.slot if own is not None else -1, "copied_from": shared.definition})
        info.extra = {k: v for k, v in shared.extra.items() if k != "anchors"}
        if not self.is_current(shared):  # the copy starts from the shared items' lists: only exact ones will do
            return self.build(info, *self.definition(shared))
        return self._copy_and_merge(shared, info)

    def _copy_and_merge(self, shared: IndexInfo, info: IndexInfo) -> IndexInfo:
        """A tenant copy made without a query per item: the shared index's items (exact over the shared anchors)
        are copied, then the tenant's own anchors enter them as an edit would (entrants by threshold, merged with
        the same tie rule): the result is what a build from scratch gives, at the cost of a few own anchors."""
        self.ensure_collections()
        if info.slot < 0:
            info.slot = self.allocate_slot(info)
        revisions = scope_revisions(self.meta, info.tenant)  # before reading: an edit in between shows as behind
        recs = self.items(shared, with_vectors=("item", "rel"))
        part = {"tenant": info.tenant, "index": info.name, "kind": info.kind}
        coll = self.collection(info)
        empty = SparseVec(np.zeros(0, np.uint32), np.zeros(0, np.float32))
        self.items_written(info)
        for start in range(0, len(recs), 256):
            chunk = recs[start : start + 256]
            self.engine.upsert(coll, PointBatch(
                self.point_ids(info, [r.id for r in chunk]),
                {"item": np.stack([np.asarray(r.vectors["item"], np.float32) for r in chunk])},
                {"rel": [r.vectors.get("rel") or empty for r in chunk]},
                [{**r.payload, **part} for r in chunk],
            ))
        extra = [r.id for r in self.engine.scroll(coll, filter=index_filter(info), with_payload=False)
                 if item_of(r.id) >= len(recs)]
        if extra:
            self.engine.delete(coll, ids=extra)
        info.n_items = len(recs)
        thr, complete = self._thresholds(shared)
        own = sorted(self.engine.scroll(self.anchors, filter=Filter(must=(Match("tenant", info.tenant),)),
                                        with_payload=False, with_vectors=(info.modality,)), key=lambda r: r.id)
        if own:
            vecs = np.stack([np.asarray(r.vectors[info.modality], np.float32) for r in own])
            items = self._candidates(info, vecs, thr, complete)
            if items.size:
                self._merge_items(info, items, np.asarray([r.id for r in own], np.int64), thr, complete)
        info.revisions = revisions
        info.extra = {**info.extra, "anchors": self.scope_count(info.tenant)}
        self.meta.put(info.key, asdict(info))
        self._thr[info.key] = (stamp(info), thr, complete)
        self.forget_transitions(info.key)  # every item rewritten: no logged edit leads to the new state
        return info

    def copies_of(self, shared: IndexInfo) -> list[IndexInfo]:
        """The tenant copies of a shared index."""
        recs = self.meta.items("index", {"name": shared.name, "kind": shared.kind})
        return [i for i in (from_record(IndexInfo, v, k) for k, v in recs)
                if i.tenant != TENANT_SHARED and i.copied_from is not None]
