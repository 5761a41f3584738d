"""Building relative indexes: define (a new definition revision), build (every item's top-k from the tenant's
anchors, in chunks, written with its sparse rep and payload), rebuild from the stored definition."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from .. import relrep
from ..engines.base import PointBatch
from ..errors import InvalidInputError
from ..topk import TopK
from .query import Queries
from .records import (
    MAX_ITEMS,
    RESERVED_FIELDS,
    IndexInfo,
    build_depth,
    index_filter,
    item_of,
    list_state,
    scope_revisions,
    stamp,
    to_sparse_vec,
    topk_payload,
)

BUILD_CHUNK = 4096  # items whose top-k a build computes at once


class Builder(Queries):
    """Building an index: its items' top-k from the tenant's anchors, written with their sparse reps; a rebuild from
    the stored definition."""

    def define(self, info: IndexInfo, item_vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]]) -> IndexInfo:
        """Define or redefine an index: a new definition revision (tenant copies of a shared index compare it)."""
        old = self.info(info.name, info.tenant, info.kind)
        info.definition = (old.definition if old is not None else 0) + 1
        info.copied_from = None
        if old is not None:
            info.slot = old.slot
        return self.build(info, item_vectors, payloads)

    def build(
        self,
        info: IndexInfo,
        item_vectors: np.ndarray,
        payloads: Sequence[Mapping[str, Any]],
        *,
        replace: bool = True,
        on_chunk: Callable[[list[int], list[relrep.SparseRep]], None] | None = None,
    ) -> IndexInfo:
        """Create (or recreate) the index: item reps from the tenant's anchors, written with their top-k.
        ``on_chunk(items, reps)``: called after each chunk of items is written (a tagging writes its tags there)."""
        vecs = np.asarray(item_vectors, dtype=np.float32)
        dim = self.fingerprint.text_dim if info.modality == "text" else self.fingerprint.image_dim
        if vecs.ndim != 2 or vecs.shape[1] != dim or vecs.shape[0] != len(payloads):
            raise InvalidInputError(
                f"item vectors have shape {vecs.shape}; expected ({len(payloads)}, {dim}) "
                f"for {info.modality} items of this store"
            )
        if vecs.shape[0] == 0:
            raise InvalidInputError(f"{info.kind} {info.name!r} has no items: give at least one")
        if vecs.shape[0] > MAX_ITEMS:
            raise InvalidInputError(
                f"{info.kind} {info.name!r} has {vecs.shape[0]} items; at most {MAX_ITEMS} fit one index: split it"
            )
        self.ensure_collections()
        if info.slot < 0:
            old = self.info(info.name, info.tenant, info.kind)
            info.slot = old.slot if old is not None and old.slot >= 0 else self.allocate_slot(info)
        info.revisions = scope_revisions(self.meta, info.tenant)
        # the new items overwrite the old ones in place (same ids), then the old ones past the new end go: a reader
        # never finds the index empty, and no collection is deleted; in chunks, so that a large index (a tagging of
        # 100k points) never holds every item's top-k at once
        thr = np.full(vecs.shape[0], -np.inf)
        comp = np.zeros(vecs.shape[0], bool)
        depth = build_depth(info)
        for start in range(0, vecs.shape[0], BUILD_CHUNK):
            sl = slice(start, start + BUILD_CHUNK)
            topk = self.anchor_topk(vecs[sl], info.modality, info.tenant, depth)
            complete = (topk.ids >= 0).sum(axis=1) < depth
            items = list(range(start, start + topk.ids.shape[0]))
            reps = self._write_items(info, items, vecs[sl], topk, complete, payloads[sl])
            thr[sl], comp[sl] = list_state(topk, complete)
            if on_chunk is not None:
                on_chunk(items, reps)
        if replace:
            extra = [r.id for r in self.engine.scroll(self.collection(info), filter=index_filter(info),
                                                       with_payload=False) if item_of(r.id) >= len(payloads)]
            if extra:
                self.engine.delete(self.collection(info), ids=extra)
        info.n_items = len(payloads)
        info.extra = {**info.extra, "anchors": self.scope_count(info.tenant)}
        self.forget_transitions(info.key)  # every item rewritten: no logged edit leads to the new state
        self.meta.put(info.key, asdict(info))
        self._thr[info.key] = (stamp(info), thr, comp)
        return info

    def _write_items(
        self,
        info: IndexInfo,
        item_ids: Sequence[int],
        vecs: np.ndarray | None,
        topk: TopK,
        complete: np.ndarray,
        payloads: Sequence[Mapping[str, Any]],
    ) -> list[relrep.SparseRep]:
        """Write items (their vectors, reps and top-k lists, over whatever they held); returns their reps."""
        reps = topk.cut(info.k).reps(info.p)
        self.items_written(info)
        self.written.setdefault(info.key, set()).update(int(i) for i in item_ids)
        part = {"tenant": info.tenant, "index": info.name, "kind": info.kind}
        coll = self.collection(info)
        for start in range(0, len(item_ids), 256):
            sl = slice(start, start + 256)
            pls = []
            for j, (item, pl) in enumerate(zip(item_ids[sl], payloads[sl], strict=True), start):
                ids_j, sims_j = topk.row(j)
                pls.append({**pl, **topk_payload(ids_j, sims_j, bool(complete[j])), **part, "item": int(item)})
            dense = {"item": vecs[sl]} if vecs is not None else {}
            self.engine.upsert(
                coll,
                PointBatch(self.point_ids(info, item_ids[sl]), dense,
                           {"rel": [to_sparse_vec(r) for r in reps[sl]]}, pls),
            )
        return list(reps)

    def append_items(
        self,
        info: IndexInfo,
        item_vectors: np.ndarray,
        payloads: Sequence[Mapping[str, Any]],
        *,
        on_chunk: Callable[[list[int], list[relrep.SparseRep]], None] | None = None,
    ) -> IndexInfo:
        """Add items after the last one (numbers ``n_items`` ..), their top-k from the tenant's current anchors, the
        other items untouched: the index must be current with the anchors (a tagging syncs it first)."""
        vecs = np.asarray(item_vectors, dtype=np.float32)
        n0, m = info.n_items, vecs.shape[0]
        if m == 0:
            return info
        if n0 + m > MAX_ITEMS:
            raise InvalidInputError(
                f"{info.kind} {info.name!r} would have {n0 + m} items; at most {MAX_ITEMS} fit one index: split it")
        cached = self._thr.get(info.key)
        valid = cached is not None and cached[0] == stamp(info) and cached[1].size == n0
        thr, comp = np.full(m, -np.inf), np.zeros(m, bool)
        depth = build_depth(info)
        for start in range(0, m, BUILD_CHUNK):
            sl = slice(start, start + BUILD_CHUNK)
            topk = self.anchor_topk(vecs[sl], info.modality, info.tenant, depth)
            complete = (topk.ids >= 0).sum(axis=1) < depth
            items = list(range(n0 + start, n0 + start + topk.ids.shape[0]))
            reps = self._write_items(info, items, vecs[sl], topk, complete, payloads[sl])
            thr[sl], comp[sl] = list_state(topk, complete)
            if on_chunk is not None:
                on_chunk(items, reps)
        info.n_items = n0 + m
        self.meta.put(info.key, asdict(info))
        if valid and cached is not None:
            self._thr[info.key] = (stamp(info), np.concatenate([cached[1], thr]), np.concatenate([cached[2], comp]))
        else:
            self._thr.pop(info.key, None)
        return info

    def remove_items(self, info: IndexInfo, items: Sequence[int]) -> IndexInfo:
        """Remove items, keeping item numbers dense: each of the last items that stays moves into a hole (same
        vectors, payload and top-k, a new number), and the tail goes. Returns the record with its new count."""
        n = info.n_items
        gone = {int(i) for i in items if 0 <= int(i) < n}
        if not gone:
            return info
        end = n - len(gone)
        cached = self._thr.get(info.key)
        valid = cached is not None and cached[0] == stamp(info) and cached[1].size == n
        self.items_written(info)
        holes = sorted(i for i in gone if i < end)
        movers = [i for i in range(end, n) if i not in gone]  # as many as holes
        if movers:
            recs = self.retrieve_items(info, movers, with_vectors=("item", "rel"))
            vecs = np.stack([np.asarray(recs[i].vectors["item"], np.float32) for i in movers])
            pls = [{**recs[i].payload, "item": h} for i, h in zip(movers, holes, strict=True)]
            rel = [recs[i].vectors["rel"] for i in movers]
            self.engine.upsert(self.collection(info), PointBatch(self.point_ids(info, holes), {"item": vecs},
                                                                 {"rel": rel}, pls))
            self.written.setdefault(info.key, set()).update(holes)
        self.engine.delete(self.collection(info), ids=self.point_ids(info, list(range(end, n))))
        info.n_items = end
        self.meta.put(info.key, asdict(info))
        if valid and cached is not None:
            thr, comp = cached[1].copy(), cached[2].copy()
            thr[holes], comp[holes] = thr[movers], comp[movers]
            self._thr[info.key] = (stamp(info), thr[:end], comp[:end])
        else:
            self._thr.pop(info.key, None)
        return info

    def rebuild(self, info: IndexInfo) -> IndexInfo:
        """Recompute every item of the index from its stored vector against the tenant's current anchors."""
        return self.build(info, *self.definition(info))

    def definition(self, info: IndexInfo) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """What an index was built from: its items' vectors and payloads (without the stored top-k state and the
        partition fields, which the index that is built from them sets)."""
        items = self.items(info, with_vectors=True)
        vecs = np.stack([r.vectors["item"] for r in items])
        return vecs, [{k: v for k, v in r.payload.items() if k not in RESERVED_FIELDS} for r in items]
