"""MappedEngine: attach the plugin to an existing anchors collection whose names differ.

The plugin thinks in its own names (collection ``<prefix>anchors``, vectors ``image`` and ``text``, payload
``caption``, ``image_ref``, ``tenant``). Wrapping an engine translates them, for that one collection, to the
names an existing collection uses (``ASIF_ANCHORS_COLLECTION``, ``ASIF_VECTOR_NAMES``, ``ASIF_PAYLOAD_NAMES``),
so nothing above the engine layer changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .base import (
    CollectionSpec,
    DenseQuery,
    Engine,
    Filter,
    HasId,
    Hit,
    Match,
    MatchAny,
    PointBatch,
    Query,
    Record,
    Relayout,
    query_batch_arrays,
)


class MappedEngine:
    """An engine whose anchors collection, vector names and payload field names are translated."""

    def __init__(
        self,
        inner: Engine,
        logical: str,
        physical: str,
        vectors: Mapping[str, str] | None = None,
        payload: Mapping[str, str] | None = None,
    ) -> None:
        self.inner = inner
        self.logical, self.physical = logical, physical
        self.vec = dict(vectors or {})
        self.vec_back = {v: k for k, v in self.vec.items()}
        self.pl = dict(payload or {})
        self.pl_back = {v: k for k, v in self.pl.items()}
        self.description = f"{inner.description}, anchors in {physical!r}"
        self.exclusive = inner.exclusive

    # -- names ---------------------------------------------------------------------------------
    def _name(self, name: str) -> tuple[str, bool]:
        return (self.physical, True) if name == self.logical else (name, False)

    def _key(self, key: str, on: bool) -> str:
        return self.pl.get(key, key) if on else key

    def _payload_out(self, pl: Mapping[str, Any] | None, on: bool) -> dict[str, Any] | None:
        if pl is None or not on:
            return dict(pl) if pl is not None else None
        return {self.pl.get(k, k): v for k, v in pl.items()}

    def _payload_in(self, pl: Mapping[str, Any] | None, on: bool) -> dict[str, Any] | None:
        if pl is None or not on:
            return dict(pl) if pl is not None else None
        return {self.pl_back.get(k, k): v for k, v in pl.items()}

    def _filter(self, f: Filter | None, on: bool) -> Filter | None:
        if f is None or not on:
            return f

        def cond(c: Match | MatchAny | HasId) -> Match | MatchAny | HasId:
            return c if isinstance(c, HasId) else replace(c, key=self._key(c.key, on))

        return Filter(must=tuple(cond(c) for c in f.must), must_not=tuple(cond(c) for c in f.must_not))

    def _record(self, r: Record, on: bool) -> Record:
        if not on:
            return r
        return Record(
            r.id,
            self._payload_in(r.payload, on) or {},
            {self.vec_back.get(k, k): v for k, v in r.vectors.items()},
        )

    # -- collections ---------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        return [self.logical if c == self.physical else c for c in self.inner.list_collections()]

    def collection_exists(self, name: str) -> bool:
        return self.inner.collection_exists(self._name(name)[0])

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        phys, on = self._name(name)
        if on:
            spec = replace(
                spec,
                dense={self.vec.get(k, k): d for k, d in spec.dense.items()},
                keyword_indexes={self._key(k, on): t for k, t in spec.keyword_indexes.items()},
            )
        self.inner.create_collection(phys, spec)

    def ensure_keyword_index(self, name: str, field: str, is_tenant: bool = False) -> None:
        phys, on = self._name(name)
        self.inner.ensure_keyword_index(phys, self._key(field, on), is_tenant)

    def collection_spec(self, name: str) -> CollectionSpec:
        phys, on = self._name(name)
        spec = self.inner.collection_spec(phys)
        if not on:
            return spec
        return replace(
            spec,
            dense={self.vec_back.get(k, k): d for k, d in spec.dense.items()},
            keyword_indexes={self.pl_back.get(k, k): t for k, t in spec.keyword_indexes.items()},
        )

    def delete_collection(self, name: str) -> None:
        self.inner.delete_collection(self._name(name)[0])

    # -- points --------------------------------------------------------------------------------
    def upsert(self, name: str, batch: PointBatch) -> None:
        phys, on = self._name(name)
        if on:
            batch = PointBatch(
                batch.ids,
                {self.vec.get(k, k): v for k, v in batch.dense.items()},
                {self.vec.get(k, k): v for k, v in batch.sparse.items()},
                None if batch.payloads is None else [self._payload_out(p, on) or {} for p in batch.payloads],
            )
        self.inner.upsert(phys, batch)

    def set_payload(self, name: str, ids: Sequence[int], payload: Mapping[str, Any]) -> None:
        phys, on = self._name(name)
        self.inner.set_payload(phys, ids, self._payload_out(payload, on) or {})

    def set_payloads(self, name: str, ids: Sequence[int], payloads: Sequence[Mapping[str, Any]]) -> None:
        phys, on = self._name(name)
        self.inner.set_payloads(phys, ids, [self._payload_out(p, on) or {} for p in payloads])

    def delete_payload(self, name: str, ids: Sequence[int], keys: Sequence[str]) -> None:
        phys, on = self._name(name)
        self.inner.delete_payload(phys, ids, [self._key(k, on) for k in keys])

    def delete(self, name: str, *, ids: Sequence[int] | None = None, filter: Filter | None = None) -> None:
        phys, on = self._name(name)
        self.inner.delete(phys, ids=ids, filter=self._filter(filter, on))

    def _queries(self, queries: Sequence[Query], on: bool) -> Sequence[Query]:
        if not on:
            return queries
        mapped: list[Query] = []
        for q in queries:
            wp = q.with_payload if isinstance(q.with_payload, bool) else [self._key(k, on) for k in q.with_payload]
            q2 = replace(q, filter=self._filter(q.filter, on), with_payload=wp)
            if isinstance(q2, DenseQuery):
                q2 = replace(q2, using=self.vec.get(q2.using, q2.using))
            mapped.append(q2)
        return mapped

    def query_batch_arrays(self, name: str, queries: Sequence[Query]) -> list[tuple[np.ndarray, np.ndarray]]:
        phys, on = self._name(name)
        return query_batch_arrays(self.inner, phys, self._queries(queries, on))

    def query_batch(self, name: str, queries: Sequence[Query]) -> list[list[Hit]]:
        phys, on = self._name(name)
        res = self.inner.query_batch(phys, self._queries(queries, on))
        if on:
            for hits in res:
                for h in hits:
                    h.payload = self._payload_in(h.payload, on)
        return res

    def retrieve(
        self, name: str, ids: Sequence[int], *, with_payload: bool | Sequence[str] = True,
        with_vectors: Sequence[str] = (),
    ) -> list[Record]:
        phys, on = self._name(name)
        wv = [self.vec.get(v, v) for v in with_vectors] if on else list(with_vectors)
        wp = with_payload if isinstance(with_payload, bool) else [self._key(k, on) for k in with_payload]
        return [self._record(r, on) for r in self.inner.retrieve(phys, ids, with_payload=wp, with_vectors=wv)]

    def scroll(
        self,
        name: str,
        *,
        filter: Filter | None = None,
        with_payload: bool | Sequence[str] = True,
        with_vectors: Sequence[str] = (),
        batch: int = 1000,
    ) -> Iterator[Record]:
        phys, on = self._name(name)
        wv = [self.vec.get(v, v) for v in with_vectors] if on else list(with_vectors)
        wp = with_payload if isinstance(with_payload, bool) else [self._key(k, on) for k in with_payload]
        for r in self.inner.scroll(phys, filter=self._filter(filter, on), with_payload=wp, with_vectors=wv,
                                   batch=batch):
            yield self._record(r, on)

    def count(self, name: str, filter: Filter | None = None) -> int:
        phys, on = self._name(name)
        return self.inner.count(phys, self._filter(filter, on))

    def optimize(self, name: str) -> bool:
        return self.inner.optimize(self._name(name)[0])

    def relayout(self, name: str) -> bool:
        """The inner engine's relayout of the physical collection (Qdrant Edge); False where there is none."""
        return isinstance(self.inner, Relayout) and bool(self.inner.relayout(self._name(name)[0]))

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
