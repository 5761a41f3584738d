"""Queries on relative indexes: the anchor top-k of step 1 (delegated to topk.py), items by number, and step 3:
one batch of sparse dot-product queries on an index, ranked under the tie rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import relrep, topk
from ..engines.base import Filter, Hit, SearchOptions, SparseQuery
from ..names import Modality
from ..relrep import rank_with_ties
from ..topk import QUERY_CHUNK, TIE_MARGIN, TopK
from .records import PAYLOAD_FIELDS, IndexInfo, IndexRecords, index_filter, item_of, to_sparse_vec


class Queries(IndexRecords):
    """Reading an index: step (1) through topk.py, its items by number, and step (3), the sparse queries."""

    # -- step (1): dense top-k on the anchors (topk.py) ------------------------------------------
    def anchor_topk(
        self,
        vectors: np.ndarray,
        modality: Modality,
        tenant: str,
        k: int,
        within: Filter | None = None,
        options: SearchOptions | None = None,
    ) -> TopK:
        """Top-k anchors of each row (cosine), within the tenant's scope (and ``within``, e.g. a subset of ids for an
        anchor curve), with the tie rule applied. Exact unless the store's search settings opt in to HNSW or
        quantization (see search_options.py); ``options`` overrides them for this call. Step 1: topk.py."""
        return topk.anchor_topk(self.engine, self.anchors, self.search, vectors, modality, tenant, k, within, options)

    def reps(self, vectors: np.ndarray, modality: Modality, tenant: str, k: int, p: float) -> list[relrep.SparseRep]:
        return self.anchor_topk(vectors, modality, tenant, k).reps(p)

    # -- items ---------------------------------------------------------------------------------
    def items(
        self, info: IndexInfo, with_vectors: bool | Sequence[str] = False, with_payload: bool | Sequence[str] = True
    ) -> list[Any]:
        """The items of one index in item order (``id`` = item number); ``with_vectors`` True means ``item``."""
        vecs = ("item",) if with_vectors is True else (tuple(with_vectors) if with_vectors else ())
        recs = list(self.engine.scroll(self.collection(info), filter=index_filter(info), with_payload=with_payload,
                                       with_vectors=vecs))
        for r in recs:
            r.id = item_of(r.id)
        return sorted(recs, key=lambda r: r.id)

    def retrieve_items(
        self, info: IndexInfo, items: Sequence[int], with_vectors: Sequence[str] = (),
        with_payload: bool | Sequence[str] = True,
    ) -> dict[int, Any]:
        """Items of ``info`` by number: item -> Record (its ``id`` is the item number)."""
        recs = self.engine.retrieve(self.collection(info), self.point_ids(info, items), with_vectors=with_vectors,
                                    with_payload=with_payload)
        out = {}
        for r in recs:
            r.id = item_of(r.id)
            out[r.id] = r
        return out

    # -- step (3): sparse queries on a relative index ------------------------------------------
    def query(
        self, info: IndexInfo, reps: Sequence[relrep.SparseRep], limit: int, with_payload: bool = True
    ) -> list[list[Hit]]:
        """One batch of sparse dot-product queries; an empty rep shares no anchor and gets no hits.

        A label set's items need no payload: item id = class_index * n_templates + template_index.
        """
        coll = self.collection(info)
        out: list[list[Hit]] = [[] for _ in reps]
        todo = [i for i, r in enumerate(reps) if not r.is_empty]
        wp: bool | list[str] = PAYLOAD_FIELDS if with_payload else False
        fetch = min(limit + TIE_MARGIN, max(limit, info.n_items))
        for start in range(0, len(todo), QUERY_CHUNK):
            idx = todo[start : start + QUERY_CHUNK]
            flt = index_filter(info)
            qs = [SparseQuery("rel", to_sparse_vec(reps[i]), fetch, flt, with_payload=wp) for i in idx]
            for i, hits in zip(idx, self.engine.query_batch(coll, qs), strict=True):
                out[i] = self._ranked(coll, flt, reps[i], hits, limit, fetch, wp)
        return out

    def _ranked(
        self, coll: str, flt: Filter, rep: relrep.SparseRep, hits: list[Hit], limit: int, fetch: int,
        wp: bool | list[str],
    ) -> list[Hit]:
        """The first ``limit`` hits (ids: item numbers) under the tie rule (score, then smaller item number;
        relrep.rank_with_ties): fetched with a margin, and again with more while ties reach the end of what was
        fetched."""
        while True:
            hits = [Hit(item_of(h.id), h.score, h.payload) for h in hits if h.score > 0]
            order = rank_with_ties([h.id for h in hits], [h.score for h in hits])
            ranked = [hits[j] for j in order]
            if len(hits) < fetch or len(ranked) <= limit:
                return ranked[:limit]
            tol = relrep.RESULT_TIE_TOL * max(1.0, max(abs(h.score) for h in hits))
            tail = np.sort(np.array([h.score for h in hits], np.float64))[::-1][limit - 1 :]
            if (-np.diff(tail) > tol).any():  # the limit-th hit's group of ties ends among those fetched
                return ranked[:limit]
            fetch *= 2
            hits = self.engine.query_batch(
                coll, [SparseQuery("rel", to_sparse_vec(rep), fetch, flt, with_payload=wp)])[0]
