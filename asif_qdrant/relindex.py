"""Relative indexes: collections of items (label prompts, gallery images) stored as sparse relative reps.

Data flow of a query (see DESIGN.md): (1) one batch of dense top-k queries on the anchors, with the tenant
filter; (2) relative reps in numpy (relrep.py); (3) one batch of sparse dot-product queries on a relative
index. Each item also keeps its own dense vector (``item``) and its current top-k (ids and similarities)
so that later anchor edits can be applied to it incrementally.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from . import relrep
from .engines.base import (
    CollectionSpec,
    DenseQuery,
    Engine,
    Filter,
    Hit,
    MatchAny,
    PointBatch,
    SparseQuery,
    SparseVec,
)
from .errors import ConfigError, InvalidInputError, NotFoundError
from .meta import TENANT_SHARED, Fingerprint, Meta, anchors_collection, relindex_collection

Kind = Literal["labels", "gallery"]
Modality = Literal["image", "text"]
# Extra neighbours fetched beyond k so that the tie rule (higher score, then smaller id) is applied here,
# whatever order an engine returns equal scores in.
TIE_MARGIN = 8
QUERY_CHUNK = 64
PAYLOAD_FIELDS = ["label", "prompt", "class_index", "template_index", "caption", "image_ref", "item"]


def item_modality(kind: Kind) -> Modality:
    """Label sets hold prompts (text); galleries hold images."""
    return "text" if kind == "labels" else "image"


@dataclass
class IndexInfo:
    """The meta record of one relative index."""

    name: str
    tenant: str
    kind: Kind
    k: int
    p: float
    n_items: int
    revisions: dict[str, int]
    created_at: float = field(default_factory=time.time)
    classes: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    aggregation: str = "max"
    tau: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"relindex:{self.tenant}:{self.name}"

    @property
    def modality(self) -> Modality:
        return item_modality(self.kind)


def tenant_scope(tenant: str) -> Filter:
    """The anchors that make up a tenant's model: the shared ones plus the tenant's own."""
    values = (TENANT_SHARED,) if tenant == TENANT_SHARED else (TENANT_SHARED, tenant)
    return Filter(must=(MatchAny("tenant", values),))


def scope_revisions(meta: Meta, tenant: str) -> dict[str, int]:
    tenants = [TENANT_SHARED] if tenant == TENANT_SHARED else [TENANT_SHARED, tenant]
    return {t: meta.revision(t) for t in tenants}


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
        return TopK(self.ids[:, :k], self.sims[:, :k])


def to_sparse_vec(rep: relrep.SparseRep) -> SparseVec:
    return SparseVec(rep.indices.astype(np.uint32), rep.values.astype(np.float32))


class RelIndexes:
    """Build, query and keep relative indexes of one store."""

    def __init__(self, engine: Engine, prefix: str, meta: Meta, fingerprint: Fingerprint) -> None:
        self.engine = engine
        self.prefix = prefix
        self.meta = meta
        self.fingerprint = fingerprint
        self.anchors = anchors_collection(prefix)

    # -- step (1): dense top-k on the anchors --------------------------------------------------
    def anchor_topk(self, vectors: np.ndarray, modality: Modality, tenant: str, k: int) -> TopK:
        """Exact top-k anchors of each row (cosine), within the tenant's scope, with the tie rule applied."""
        vecs = np.asarray(vectors, dtype=np.float32)
        b = vecs.shape[0]
        ids = np.full((b, k), -1, np.int64)
        sims = np.zeros((b, k), np.float64)
        scope = tenant_scope(tenant)
        for start in range(0, b, QUERY_CHUNK):
            chunk = vecs[start : start + QUERY_CHUNK]
            queries = [DenseQuery(modality, v, k + TIE_MARGIN, scope) for v in chunk]
            for j, hits in enumerate(self.engine.query_batch(self.anchors, queries)):
                if not hits:
                    continue
                hid = np.fromiter((h.id for h in hits), np.int64, len(hits))
                hs = np.fromiter((h.score for h in hits), np.float64, len(hits))
                order = np.lexsort((hid, -hs))[:k]
                ids[start + j, : order.size] = hid[order]
                sims[start + j, : order.size] = hs[order]
        return TopK(ids, sims)

    def reps(self, vectors: np.ndarray, modality: Modality, tenant: str, k: int, p: float) -> list[relrep.SparseRep]:
        return self.anchor_topk(vectors, modality, tenant, k).reps(p)

    # -- build ---------------------------------------------------------------------------------
    def info(self, name: str, tenant: str) -> IndexInfo | None:
        v = self.meta.get(f"relindex:{tenant}:{name}")
        return IndexInfo(**v) if v else None

    def require(self, name: str, tenant: str, kind: Kind | None = None) -> IndexInfo:
        info = self.info(name, tenant)
        if info is None and tenant != TENANT_SHARED:
            info = self.info(name, TENANT_SHARED)
        if info is None or (kind is not None and info.kind != kind):
            what = {"labels": "label set", "gallery": "gallery", None: "relative index"}[kind]
            have = sorted(i.name for i in self.list(tenant) if kind is None or i.kind == kind)
            raise NotFoundError(
                f"{what} {name!r} does not exist for tenant {tenant!r}; existing: {have or 'none'}. "
                f"Create it first (asif {'labels add' if kind != 'gallery' else 'gallery add'} {name} ...)"
            )
        return info

    def list(self, tenant: str | None = None) -> list[IndexInfo]:
        infos = [IndexInfo(**v) for _, v in self.meta.items("relindex")]
        if tenant is None:
            return infos
        return [i for i in infos if i.tenant in (tenant, TENANT_SHARED)]

    def collection(self, info: IndexInfo) -> str:
        return relindex_collection(self.prefix, info.tenant, info.name)

    def build(
        self,
        info: IndexInfo,
        item_vectors: np.ndarray,
        payloads: Sequence[Mapping[str, Any]],
        *,
        replace: bool = True,
    ) -> IndexInfo:
        """Create (or recreate) the index: item reps from the tenant's anchors, written with their top-k."""
        vecs = np.asarray(item_vectors, dtype=np.float32)
        dim = self.fingerprint.text_dim if info.modality == "text" else self.fingerprint.image_dim
        if vecs.ndim != 2 or vecs.shape[1] != dim or vecs.shape[0] != len(payloads):
            raise InvalidInputError(
                f"item vectors have shape {vecs.shape}; expected ({len(payloads)}, {dim}) "
                f"for {info.modality} items of this store"
            )
        if vecs.shape[0] == 0:
            raise InvalidInputError(f"{info.kind} {info.name!r} has no items: give at least one")
        coll = self.collection(info)
        if replace and self.engine.collection_exists(coll):
            self.engine.delete_collection(coll)
        self.engine.create_collection(coll, CollectionSpec(dense={"item": dim}, sparse=("rel",)))
        info.revisions = scope_revisions(self.meta, info.tenant)
        topk = self.anchor_topk(vecs, info.modality, info.tenant, info.k)
        self._write_items(coll, list(range(len(payloads))), vecs, topk, info.p, payloads)
        info.n_items = len(payloads)
        self.meta.put(info.key, asdict(info))
        return info

    def _write_items(
        self,
        coll: str,
        item_ids: Sequence[int],
        vecs: np.ndarray | None,
        topk: TopK,
        p: float,
        payloads: Sequence[Mapping[str, Any]],
    ) -> None:
        reps = topk.reps(p)
        for start in range(0, len(item_ids), 256):
            sl = slice(start, start + 256)
            pls = []
            for j, pl in enumerate(payloads[sl], start):
                ids_j, sims_j = topk.row(j)
                pls.append({**pl, "topk_ids": ids_j.tolist(), "topk_sims": sims_j.tolist()})
            dense = {"item": vecs[sl]} if vecs is not None else {}
            self.engine.upsert(
                coll,
                PointBatch(list(item_ids[sl]), dense, {"rel": [to_sparse_vec(r) for r in reps[sl]]}, pls),
            )

    def items(self, info: IndexInfo, with_vectors: bool = False) -> list[Any]:
        recs = self.engine.scroll(self.collection(info), with_vectors=("item",) if with_vectors else ())
        return sorted(recs, key=lambda r: r.id)

    def delete(self, info: IndexInfo) -> None:
        coll = self.collection(info)
        if self.engine.collection_exists(coll):
            self.engine.delete_collection(coll)
        self.meta.delete(info.key)

    # -- step (3): sparse queries on a relative index ------------------------------------------
    def query(self, info: IndexInfo, reps: Sequence[relrep.SparseRep], limit: int) -> list[list[Hit]]:
        """One batch of sparse dot-product queries; an empty rep shares no anchor and gets no hits."""
        coll = self.collection(info)
        out: list[list[Hit]] = [[] for _ in reps]
        todo = [i for i, r in enumerate(reps) if not r.is_empty]
        for start in range(0, len(todo), QUERY_CHUNK):
            idx = todo[start : start + QUERY_CHUNK]
            qs = [SparseQuery("rel", to_sparse_vec(reps[i]), limit, with_payload=PAYLOAD_FIELDS) for i in idx]
            for i, hits in zip(idx, self.engine.query_batch(coll, qs), strict=True):
                out[i] = [h for h in hits if h.score > 0]
        return out


def check_k_p(k: int | None, p: float | None, default_k: int, default_p: float) -> tuple[int, float]:
    kk = default_k if k is None else k
    pp = default_p if p is None else p
    if isinstance(kk, bool) or not isinstance(kk, (int, np.integer)) or kk < 1:
        raise ConfigError(f"k={kk!r} is invalid: k is the number of anchors kept, an integer >= 1 (default 800)")
    if not np.isfinite(pp) or pp <= 0:
        raise ConfigError(f"p={pp!r} is invalid: p is the exponent on similarities, a number > 0 (default 8)")
    return int(kk), float(pp)
