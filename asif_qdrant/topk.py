"""Step 1 of every query: the top-k anchors of a batch of inputs (dense, cosine), in tie-rule order.

One module for the whole step: the tenant's scope filter, the query margin and chunking, the dense top-k with its
tie rule applied here (:func:`dense_topk`; the tie rule's math is relrep's :func:`~asif_qdrant.relrep.tie_order`),
the scoped anchor top-k of a store (:func:`anchor_topk`, which ``RelIndexes.anchor_topk`` calls), and the
:class:`TopK` result that steps 2 and 3 consume. The opt-in HNSW / quantization settings that shape the queries
live in search_options.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import relrep
from .engines.base import (
    DenseQuery,
    Engine,
    Filter,
    MatchAny,
    SearchOptions,
    query_batch_arrays,
)
from .meta import TENANT_SHARED
from .names import Modality

if TYPE_CHECKING:
    from .search_options import SearchConfig

EXACT = SearchOptions()
# Extra neighbours fetched beyond k so that the tie rule (higher score, then smaller id) is applied here, whatever
# order an engine returns equal scores in.
TIE_MARGIN = 8
QUERY_CHUNK = 64
LARGE_K = 4096  # above this, a query's top-k width is bounded by the anchor count (one count query)


@dataclass
class TopK:
    """Per input row: its top-k anchor ids (-1 padded) and similarities, in tie-rule order."""

    ids: np.ndarray  # (B, k) int64, -1 where fewer than k anchors exist
    sims: np.ndarray  # (B, k) float64

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        keep = self.ids[i] >= 0
        return self.ids[i][keep], self.sims[i][keep]

    def reps(self, p: float) -> list[relrep.SparseRep]:
        return relrep.relative_reps_batch(self.ids, self.sims, p)

    def cut(self, k: int) -> TopK:
        """The first ``k`` of every row (relrep.cut_to_k, which checks the rows are in tie-rule order)."""
        ids, sims = relrep.cut_to_k(self.ids, self.sims, k)
        return TopK(ids, sims)


def tenant_scope(tenant: str) -> Filter:
    """The anchors that make up a tenant's model: the shared ones plus the tenant's own."""
    values = (TENANT_SHARED,) if tenant == TENANT_SHARED else (TENANT_SHARED, tenant)
    return Filter(must=(MatchAny("tenant", values),))


def dense_topk(
    engine: Engine,
    collection: str,
    vectors: np.ndarray,
    using: str,
    filter: Filter | None,
    k: int,
    options: SearchOptions = EXACT,
) -> TopK:
    """Top-k neighbours of each row on the dense vector ``using`` (cosine), with the tie rule applied here
    (higher similarity, similarities within relrep.TIE_TOL are ties broken by smaller id; k + 8 fetched, more when
    a tie group reaches past them, so that neither the engine's order of equal scores nor its noise can matter).

    This is step (1) of a query (:func:`anchor_topk`) with an explicit filter and SearchOptions: a
    restriction to some anchor ids (``HasId``) evaluates a pruned anchor set without copying it."""

    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim == 1:
        vecs = vecs[None, :]
    b = vecs.shape[0]
    ids = np.full((b, k), -1, np.int64)
    sims = np.zeros((b, k), np.float64)
    for start in range(0, b, QUERY_CHUNK):
        chunk = vecs[start : start + QUERY_CHUNK]
        queries = [DenseQuery(using, v, k + TIE_MARGIN, filter, options=options) for v in chunk]
        for j, (hid, hs) in enumerate(query_batch_arrays(engine, collection, queries)):
            limit = k + TIE_MARGIN
            # a tie group (similarities within relrep.TIE_TOL) that reaches the k-th place and the end of what was
            # fetched may hold more anchors below: fetch more until it ends among them (or every anchor came back)
            while hid.size >= limit and not relrep.exact_prefix(hs, k):
                limit *= 4
                [(hid, hs)] = query_batch_arrays(engine, collection, [DenseQuery(using, chunk[j], limit, filter,
                                                                                 options=options)])
            if not hid.size:
                continue
            order = relrep.tie_order(hid, hs)[:k]
            ids[start + j, : order.size] = hid[order]
            sims[start + j, : order.size] = hs[order]
    return TopK(ids, sims)


def anchor_topk(
    engine: Engine,
    anchors: str,
    search: SearchConfig,
    vectors: np.ndarray,
    modality: Modality,
    tenant: str,
    k: int,
    within: Filter | None = None,
    options: SearchOptions | None = None,
) -> TopK:
    """Top-k anchors of each row (cosine), within the tenant's scope (and ``within``, e.g. a subset of ids for an
    anchor curve), with the tie rule applied. Exact unless the store's search settings (``search``) opt in to HNSW
    or quantization (see search_options.py); ``options`` overrides them for this call."""
    scope = tenant_scope(tenant)
    if within is not None:
        scope = Filter(must=scope.must + within.must, must_not=scope.must_not + within.must_not)
    if k > LARGE_K:  # more columns than anchors in scope buy nothing: a large k is cut to the scope's count
        k = max(1, min(k, engine.count(anchors, scope)))
    opts = options if options is not None else search.query_options(k, k + TIE_MARGIN)
    return dense_topk(engine, anchors, vectors, modality, scope, k, opts)


def topk_overlap(a: TopK, b: TopK) -> float:
    """Mean fraction of row i's top-k ids in ``a`` found in row i's top-k of ``b`` (1.0 = identical sets)."""
    fr = []
    for i in range(a.ids.shape[0]):
        x, y = a.ids[i][a.ids[i] >= 0], b.ids[i][b.ids[i] >= 0]
        if x.size:
            fr.append(np.intersect1d(x, y).size / x.size)
    return float(np.mean(fr)) if fr else 1.0
