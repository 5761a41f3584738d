"""Relative indexes: collections of items (label prompts, gallery images) stored as sparse relative reps.

Layout (see DESIGN.md): the items of every tenant's label sets share one collection (``{prefix}relindex_text``, the
prompts' text vectors) and the items of every gallery another (``{prefix}relindex_image``); an item carries the payload
``tenant`` (keyword index, is_tenant), ``index`` (the name), ``kind`` and ``item`` (its number in the index), and every
read or write of items carries the filter on all three partition fields. Point ids are unique within a collection:
``slot << ITEM_BITS | item``, where the slot is allocated per index (a hash of its identity, probed until free) and
kept in its meta record.

Data flow of a query (see DESIGN.md): (1) one batch of dense top-k queries on the anchors, with the tenant
filter; (2) relative reps in numpy (relrep.py); (3) one batch of sparse dot-product queries on a relative
index. Each item also keeps its own dense vector (``item``) and its current top-k (ids and similarities)
so that later anchor edits can be applied to it incrementally.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from . import relrep
from .engines.base import (
    CollectionSpec,
    DenseQuery,
    Engine,
    Filter,
    HasId,
    Hit,
    Match,
    MatchAny,
    PointBatch,
    SearchOptions,
    SparseQuery,
    SparseVec,
    query_batch_arrays,
)
from .errors import ConfigError, InvalidInputError, NotFoundError
from .meta import TENANT_SHARED, Fingerprint, Meta, from_record, index_key
from .names import Modality, anchors_collection, relindex_collection
from .relrep import rank_with_ties
from .search_options import QUERY_CHUNK, TIE_MARGIN, SearchConfig, dense_topk
from .topk import TopK

Kind = Literal["labels", "gallery", "reference", "tagging"]  # reference: a label set's sample of anchor images
# (correction.py); a tagging: image items, the points of a user's collection
SCORE_SLACK = 1e-5
TOPK_FIELDS = frozenset({"topk", "complete", "thr"})
PAYLOAD_FIELDS = ["label", "prompt", "class_index", "template_index", "caption", "image_ref", "item"]
PARTITION_FIELDS = ("tenant", "index", "kind")
RESERVED_FIELDS = frozenset(PARTITION_FIELDS) | TOPK_FIELDS  # set by the plugin on every item
ITEM_BITS = 24
MAX_ITEMS = 1 << ITEM_BITS  # items per index
SLOT_BITS = 39  # slot << ITEM_BITS stays below 2**63


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
    slot: int = -1  # point ids of the items: slot << ITEM_BITS | item
    definition: int = 0  # revision of the definition (classes, templates, items): +1 on every redefinition
    copied_from: int | None = None  # a tenant copy of a shared index: the shared definition it was made from
    correction: str = "none"  # a label set's score correction (zeroshot.CORRECTIONS; correction.py keeps it exact)
    # a label set's coverage per class ({"class", "support", "verdict"}), as define_labels returns it; not kept up
    # to date in the store (None there): Asif.coverage computes the current one from the items (coverage.py)
    coverage: list[dict[str, Any]] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return index_key(self.tenant, self.kind, self.name)

    @property
    def modality(self) -> Modality:
        return item_modality(self.kind)

    def as_dict(self) -> dict[str, Any]:
        """What a user sees of the index (CLI --json, HTTP): its definition, not the bookkeeping fields."""
        return {"name": self.name, "tenant": self.tenant, "kind": self.kind, "k": self.k, "p": self.p,
                "n_items": self.n_items, "classes": list(self.classes), "templates": list(self.templates),
                "aggregation": self.aggregation, "tau": self.tau, "created_at": self.created_at,
                "extra": dict(self.extra), "correction": self.correction,
                **({"coverage": self.coverage} if self.coverage is not None else {})}

    def prompt_of(self, item_id: int) -> dict[str, Any]:
        """A label-set item's label and prompt, from its id (class-major: class * n_templates + template)."""
        ci, ti = divmod(int(item_id), len(self.templates))
        label = self.classes[ci]
        return {"label": label, "prompt": self.templates[ti].format(label), "class_index": ci, "template_index": ti}


def touched_key(info: IndexInfo) -> str:
    """How an edit's result names an index it updated: tenant/name (a label set's reference sample: :reference)."""
    return f"{info.tenant}/{info.name}" + (":reference" if info.kind == "reference" else "")


def index_filter(info: IndexInfo) -> Filter:
    """The items of one index: its tenant, name and kind (never a name alone)."""
    return Filter(must=(Match("tenant", info.tenant), Match("index", info.name), Match("kind", info.kind)))


def relindex_spec(dim: int) -> CollectionSpec:
    """An item collection: the item's own dense vector, its sparse relative rep, the partition indexes."""
    return CollectionSpec(
        dense={"item": dim}, sparse=("rel",), keyword_indexes={"tenant": True, "index": False, "kind": False}
    )


def slot_candidate(tenant: str, kind: str, name: str, salt: int) -> int:
    raw = json.dumps([tenant, kind, name, salt], separators=(",", ":")).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") >> (64 - SLOT_BITS)


def item_of(point_id: int) -> int:
    return int(point_id) & (MAX_ITEMS - 1)


def tenant_scope(tenant: str) -> Filter:
    """The anchors that make up a tenant's model: the shared ones plus the tenant's own."""
    values = (TENANT_SHARED,) if tenant == TENANT_SHARED else (TENANT_SHARED, tenant)
    return Filter(must=(MatchAny("tenant", values),))


def scope_revisions(meta: Meta, tenant: str) -> dict[str, int]:
    tenants = [TENANT_SHARED] if tenant == TENANT_SHARED else [TENANT_SHARED, tenant]
    return {t: meta.revision(t) for t in tenants}


def encode_topk(ids: np.ndarray, sims: np.ndarray) -> str:
    """An item's top-k as one compact payload string: base64 of uint32 ids then float64 similarities.

    One string instead of two lists of k numbers makes rewriting an item ~10x cheaper."""
    raw = np.asarray(ids, "<u4").tobytes() + np.asarray(sims, "<f8").tobytes()
    return base64.b64encode(raw).decode("ascii")


def decode_topk(payload: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64, sims float64) of an item's stored top-k, in tie-rule order."""
    raw = base64.b64decode(payload.get("topk", ""))
    n = len(raw) // 12
    return np.frombuffer(raw[: 4 * n], "<u4").astype(np.int64), np.frombuffer(raw[4 * n :], "<f8").copy()


BUILD_CHUNK = 4096  # items whose top-k a build computes at once
LARGE_K = 4096  # above this, a query's top-k width is bounded by the anchor count (one count query)


def depth_of(k: int) -> int:
    """How many neighbours an item keeps: k for its representation plus a buffer (k/8, at least 8) so that
    deleting an anchor from its top-k rarely needs a new query: the next neighbour is already there."""
    return k + max(8, k // 8)


def topk_payload(ids: np.ndarray, sims: np.ndarray, complete: bool) -> dict[str, Any]:
    """What an item stores: its nearest anchors (exact top-m, k <= m <= depth, in tie-rule order), whether the
    list holds every anchor in scope (``complete``), and its threshold (the last similarity) when it does not."""
    return {
        "topk": encode_topk(ids, sims),
        "complete": bool(complete),
        "thr": None if complete or ids.size == 0 else float(sims[-1]),
    }


def _list_state(topk: TopK, complete: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds (last similarity; -inf for complete lists) and complete flags of rows of a TopK."""
    n = (topk.ids >= 0).sum(axis=1)
    last = topk.sims[np.arange(len(n)), np.maximum(n - 1, 0)]
    thr = np.where(complete | (n == 0), -np.inf, last)
    return thr.astype(np.float64), complete.astype(bool)


def _stamp(info: IndexInfo) -> tuple[Any, ...]:
    return (tuple(sorted(info.revisions.items())), info.extra.get("anchors"), info.n_items)


def _still_exact(stored_sims: np.ndarray, new_sims: np.ndarray, k: int) -> bool:
    """After an edit, is the first k of an item's new list (``new_sims``, made from its stored list of similarities
    ``stored_sims`` by removing or merging anchors) exact without a query? The anchors below a stored list lie at
    most relrep.TIE_TOL above its lowest similarity (a tie group spans at most TIE_TOL), so k entries more than
    2 * TIE_TOL above it come before every one of them."""
    if stored_sims.size == 0:
        return True
    floor = float(np.min(stored_sims)) + 2 * relrep.TIE_TOL
    return int((np.asarray(new_sims, np.float64) > floor).sum()) >= k


def to_sparse_vec(rep: relrep.SparseRep) -> SparseVec:
    return SparseVec(rep.indices.astype(np.uint32), rep.values.astype(np.float32))


class RelIndexes:
    """Build, query and keep relative indexes of one store."""

    def __init__(
        self,
        engine: Engine,
        prefix: str,
        meta: Meta,
        fingerprint: Fingerprint,
        search: SearchConfig | None = None,
    ) -> None:
        self.engine = engine
        self.prefix = prefix
        self.meta = meta
        self.fingerprint = fingerprint
        self.anchors = anchors_collection(prefix)
        self.search = search if search is not None else SearchConfig()  # exact unless the settings opt in
        # per index: (state stamp, thresholds, complete flags) of every item, kept by the process that edits, so that
        # an edit does not read every item's payload; the stamp (revisions, anchor count) guards it
        self._thr: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}
        self._count_checked: dict[str, float] = {}  # per index: when its stored item count was last compared
        self._cache_lock = threading.Lock()  # readers share this object: its caches change under this lock
        self._create_lock = threading.Lock()  # collection creation and slot allocation, across tenants' edits
        self._edit_counts: dict[str, int] = {}
        # per index key: the items whose stored top-k was (re)written since ``written`` was last cleared; the owners
        # of derived state (tagging.py: payload tags) read it after an edit to update only what changed
        self.written: dict[str, set[int]] = {}
        self.previous: dict[str, dict[int, str]] = {}  # per index key: the stored top-k of each rewritten item before

    # -- step (1): dense top-k on the anchors --------------------------------------------------
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
        quantization (see search_options.py); ``options`` overrides them for this call."""
        scope = tenant_scope(tenant)
        if within is not None:
            scope = Filter(must=scope.must + within.must, must_not=scope.must_not + within.must_not)
        if k > LARGE_K:  # more columns than anchors in scope buy nothing: a large k is cut to the scope's count
            k = max(1, min(k, self.engine.count(self.anchors, scope)))
        opts = options if options is not None else self.search.query_options(k, k + TIE_MARGIN)
        return dense_topk(self.engine, self.anchors, vectors, modality, scope, k, opts)

    def reps(self, vectors: np.ndarray, modality: Modality, tenant: str, k: int, p: float) -> list[relrep.SparseRep]:
        return self.anchor_topk(vectors, modality, tenant, k).reps(p)

    # -- build ---------------------------------------------------------------------------------
    def info(self, name: str, tenant: str, kind: Kind | None = None) -> IndexInfo | None:
        """The meta record of ``tenant``'s own index (not the shared one); ``kind`` None: the label set, else the
        gallery of that name, refused when both exist."""
        if kind is None:
            found = [i for i in (self.info(name, tenant, "labels"), self.info(name, tenant, "gallery")) if i]
            if len(found) > 1:
                raise ConfigError(
                    f"tenant {tenant!r} has both a label set and a gallery named {name!r}: say which one "
                    "(kind='labels' or kind='gallery')"
                )
            return found[0] if found else None
        key = index_key(tenant, kind, name)
        v = self.meta.get(key)
        return from_record(IndexInfo, v, key) if v else None

    def require(self, name: str, tenant: str, kind: Kind | None = None) -> IndexInfo:
        info = self.info(name, tenant, kind)
        if info is None and tenant != TENANT_SHARED:
            info = self.info(name, TENANT_SHARED, kind)
        if info is None:
            what = {"labels": "label set", "gallery": "gallery", "reference": "reference sample",
                    None: "relative index"}[kind]
            have = sorted({i.name for i in self.infos(tenant) if kind is None or i.kind == kind})
            close = difflib.get_close_matches(name, have, n=1, cutoff=0.6)
            hint = (f"did you mean {close[0]!r}? " if close else "")
            raise NotFoundError(
                f"{what} {name!r} does not exist for tenant {tenant!r}: {hint}existing: {have or 'none'}. "
                f"Create it first (asif {'labels add' if kind != 'gallery' else 'gallery add'} {name} ...)"
            )
        return info

    def infos(self, tenant: str | None = None, *, own: bool = False) -> list[IndexInfo]:
        """Every index record; with ``tenant``: that tenant's and the shared ones (only its own with ``own``)."""
        if tenant is None:
            return [from_record(IndexInfo, v, k) for k, v in self.meta.items("index")]
        scope = [tenant] if own or tenant == TENANT_SHARED else [tenant, TENANT_SHARED]
        return [from_record(IndexInfo, v, k) for k, v in self.meta.items("index", {"tenant": scope})]

    def collection(self, info: IndexInfo) -> str:
        """The collection that holds the items of ``info`` (and of every index of its kind)."""
        return relindex_collection(self.prefix, info.modality)

    def ensure_collections(self) -> None:
        """The item collections (one per item modality); a no-op when they exist. Two tenants' first definitions
        may run at once (each under its own tenant's lock): the check and the creation happen under one mutex."""
        with self._create_lock:
            self._ensure_collections()

    def _ensure_collections(self) -> None:
        for modality, dim in (("text", self.fingerprint.text_dim), ("image", self.fingerprint.image_dim)):
            name = relindex_collection(self.prefix, modality)
            if not self.engine.collection_exists(name):
                self.engine.create_collection(name, relindex_spec(dim))

    def point_ids(self, info: IndexInfo, items: Sequence[int] | np.ndarray) -> list[int]:
        if info.slot < 0:
            raise InvalidInputError(f"{info.kind} {info.name!r} of tenant {info.tenant!r} has no slot: rebuild it")
        base = int(info.slot) << ITEM_BITS
        return [base | int(i) for i in items]

    def allocate_slot(self, info: IndexInfo) -> int:
        """A slot for a new index: its identity's hash, probed until no other index's items use it."""
        coll = self.collection(info)
        for salt in range(64):
            slot = slot_candidate(info.tenant, info.kind, info.name, salt)
            recs = self.engine.retrieve(coll, [slot << ITEM_BITS], with_payload=True)
            if not recs or all(recs[0].payload.get(f) == getattr(info, n) for f, n in
                               (("tenant", "tenant"), ("index", "name"), ("kind", "kind"))):
                return slot
        raise ConfigError(f"no free slot for {info.kind} {info.name!r} of tenant {info.tenant!r}")  # 2**-39 per try

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
        for start in range(0, vecs.shape[0], BUILD_CHUNK):
            sl = slice(start, start + BUILD_CHUNK)
            topk = self.anchor_topk(vecs[sl], info.modality, info.tenant, depth_of(info.k))
            complete = (topk.ids >= 0).sum(axis=1) < depth_of(info.k)
            items = list(range(start, start + topk.ids.shape[0]))
            self._write_items(info, items, vecs[sl], topk, complete, payloads[sl])
            thr[sl], comp[sl] = _list_state(topk, complete)
            if on_chunk is not None:
                on_chunk(items, topk.cut(info.k).reps(info.p))
        if replace:
            extra = [r.id for r in self.engine.scroll(self.collection(info), filter=index_filter(info),
                                                       with_payload=False) if item_of(r.id) >= len(payloads)]
            if extra:
                self.engine.delete(self.collection(info), ids=extra)
        info.n_items = len(payloads)
        info.extra = {**info.extra, "anchors": self.scope_count(info.tenant)}
        self.meta.put(info.key, asdict(info))
        self._thr[info.key] = (_stamp(info), thr, comp)
        return info

    def _write_items(
        self,
        info: IndexInfo,
        item_ids: Sequence[int],
        vecs: np.ndarray | None,
        topk: TopK,
        complete: np.ndarray,
        payloads: Sequence[Mapping[str, Any]],
    ) -> None:
        reps = topk.cut(info.k).reps(info.p)
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

    def retrieve_items(
        self, info: IndexInfo, items: Sequence[int], with_vectors: Sequence[str] = ()
    ) -> dict[int, Any]:
        """Items of ``info`` by number: item -> Record (its ``id`` is the item number)."""
        recs = self.engine.retrieve(self.collection(info), self.point_ids(info, items), with_vectors=with_vectors)
        out = {}
        for r in recs:
            r.id = item_of(r.id)
            out[r.id] = r
        return out

    # -- freshness: incremental updates after anchor edits ---------------------------------------
    def affected(self, tenant: str) -> list[IndexInfo]:
        """Indexes whose model includes ``tenant``'s anchors: its own, or every index for the shared set."""
        return self.infos() if tenant == TENANT_SHARED else self.infos(tenant, own=True)

    def apply_added(
        self, tenant: str, ids: Sequence[int], image: np.ndarray, text: np.ndarray
    ) -> dict[str, int]:
        """New anchors enter only the items whose threshold they beat. Returns items touched per index."""
        self._edit_counts, self.written, self.previous = {}, {}, {}
        touched: dict[str, int] = {}
        if len(ids) == 0:
            return touched
        new_ids = np.asarray(ids, np.int64)
        for info in self.affected(tenant):
            if not self._in_step(info, tenant, +len(ids)):
                continue  # already behind (an edit it missed): rebuilt on its next query
            thr, complete = self._thresholds(info)
            sims = self._item_sims(info, text if info.modality == "text" else image)
            # candidates: a new anchor within SCORE_SLACK of an item's threshold (a superset, so that a score
            # computed in the other direction, anchor->item, cannot miss an entrant by a rounding error)
            enter = complete | ((sims + SCORE_SLACK) >= thr[None, :]).any(axis=0)
            items = np.flatnonzero(enter)
            n_changed = self._merge_items(info, items, new_ids, thr, complete) if items.size else 0
            touched[touched_key(info)] = n_changed
            self._mark_current(info, thr, complete)
        return touched

    def _item_sims(self, info: IndexInfo, vectors: np.ndarray) -> np.ndarray:
        """(n_vectors, n_items) similarities of anchor vectors to every item: one dense query per vector."""
        vecs = np.asarray(vectors, np.float32)
        flt = index_filter(info)
        hits = query_batch_arrays(  # arrays: a tagging has as many items as the user's collection has points
            self.engine, self.collection(info), [DenseQuery("item", v, info.n_items, flt) for v in vecs]
        )
        sims = np.full((vecs.shape[0], info.n_items), -np.inf)
        for a, (ids, scores) in enumerate(hits):
            sims[a, ids & (MAX_ITEMS - 1)] = scores
        return sims

    def _thresholds(self, info: IndexInfo) -> tuple[np.ndarray, np.ndarray]:
        """Every item's threshold (last similarity of its list; -inf where the list is complete) and flag."""
        cached = self._thr.get(info.key)
        if cached is not None and cached[0] == _stamp(info) and cached[1].size == info.n_items:
            return cached[1].copy(), cached[2].copy()
        thr = np.full(info.n_items, -np.inf)
        complete = np.zeros(info.n_items, bool)
        for r in self.engine.scroll(self.collection(info), filter=index_filter(info), with_payload=["thr", "complete"]):
            it = item_of(r.id)
            complete[it] = bool(r.payload.get("complete"))
            if r.payload.get("thr") is not None:
                thr[it] = float(r.payload["thr"])
        return thr, complete

    def _merge_items(
        self, info: IndexInfo, items: np.ndarray, new_ids: np.ndarray, thr: np.ndarray, complete: np.ndarray
    ) -> int:
        """Merge new anchors into the candidate items' top-k; rewrite the items that changed. Returns how many.

        The new anchors' similarities are recomputed item->anchor, restricted to the new ids: the same
        computation as a from-scratch query, so ties are decided exactly as a rebuild would decide them.
        """
        recs = self.retrieve_items(info, items.tolist(), with_vectors=("item",))
        scope = tenant_scope(info.tenant).and_(HasId(tuple(int(i) for i in new_ids)))
        queries = [
            DenseQuery(info.modality, np.asarray(recs[it].vectors["item"], np.float32), len(new_ids), scope)
            for it in items.tolist()
        ]
        depth = depth_of(info.k)
        changed: list[int] = []
        redo: list[int] = []
        ids_out = np.full((items.size, depth), -1, np.int64)
        sims_out = np.zeros((items.size, depth), np.float64)
        comp_out = np.zeros(items.size, bool)
        for it, hits in zip(items.tolist(), self.engine.query_batch(self.anchors, queries), strict=True):
            pl = recs[it].payload
            cur_ids, cur_sims = decode_topk(pl)
            held = set(cur_ids.tolist())
            cand = [(h.id, h.score) for h in hits if h.id not in held]
            if not cand:
                continue
            m_ids, m_sims, entered = relrep.merge_new_anchors(
                cur_ids, cur_sims, [c[0] for c in cand], [c[1] for c in cand], depth
            )
            if entered and not pl.get("complete") and not _still_exact(cur_sims, m_sims, info.k):
                redo.append(it)  # a tie group at the k-th place may reach anchors below the stored list
            elif entered:
                row = len(changed)
                ids_out[row, : m_ids.size] = m_ids
                sims_out[row, : m_sims.size] = m_sims
                # a complete list stays complete while nothing had to be dropped to stay within depth
                comp_out[row] = bool(pl.get("complete")) and m_ids.size == cur_ids.size + len(cand)
                changed.append(it)
        if changed:
            n = len(changed)
            topk = TopK(ids_out[:n], sims_out[:n])
            self._rewrite(info, changed, recs, topk, comp_out[:n])
            thr[changed], complete[changed] = _list_state(topk, comp_out[:n])
        if redo:
            vecs = np.stack([np.asarray(recs[i].vectors["item"], np.float32) for i in redo])
            topk = self.anchor_topk(vecs, info.modality, info.tenant, depth)
            comp = (topk.ids >= 0).sum(axis=1) < depth
            self._rewrite(info, redo, recs, topk, comp)
            thr[redo], complete[redo] = _list_state(topk, comp)
        return len(changed) + len(redo)

    def _rewrite(
        self, info: IndexInfo, items: list[int], recs: dict[int, Any], topk: TopK, complete: np.ndarray
    ) -> None:
        vecs = np.stack([np.asarray(recs[i].vectors["item"], np.float32) for i in items])
        pls = [{k: v for k, v in recs[i].payload.items() if k not in TOPK_FIELDS} for i in items]
        before = self.previous.setdefault(info.key, {})
        for i in items:  # the first state of this edit (an item may be rewritten twice in one edit)
            before.setdefault(int(i), str(recs[i].payload.get("topk", "")))
        self._write_items(info, items, vecs, topk, complete, pls)

    def apply_deleted(
        self, tenant: str, ids: Sequence[int], image: np.ndarray, text: np.ndarray
    ) -> dict[str, int]:
        """Deleted anchors leave the items that held them; their next neighbours fill the holes.

        The holders are found like entrants: a deleted anchor is in an item's list only if its similarity
        reaches the item's threshold (one dense query of its vector against the items), confirmed on the stored
        lists. A holder whose list still has at least k anchors (or held every anchor) needs no query: its list
        is still the exact top of the remaining anchors. Only holders whose buffer ran out are re-queried.
        """
        self._edit_counts, self.written, self.previous = {}, {}, {}
        touched: dict[str, int] = {}
        if len(ids) == 0:
            return touched
        gone = np.asarray(ids, np.int64)
        for info in self.affected(tenant):
            if not self._in_step(info, tenant, -len(ids)):
                continue
            thr, complete = self._thresholds(info)
            sims = self._item_sims(info, text if info.modality == "text" else image)
            cand = np.flatnonzero(complete | ((sims + SCORE_SLACK) >= thr[None, :]).any(axis=0))
            recs = list(self.retrieve_items(info, cand.tolist(), with_vectors=("item",)).values()) if cand.size else []
            depth = depth_of(info.k)
            kept: list[tuple[Any, np.ndarray, np.ndarray]] = []
            requery: list[Any] = []
            for r in recs:
                ids_r, sims_r = decode_topk(r.payload)
                rest_ids, rest_sims, n_gone = relrep.remove_anchors(ids_r, sims_r, gone)
                if not n_gone:
                    continue
                if r.payload.get("complete") or _still_exact(sims_r, rest_sims, info.k):
                    kept.append((r, rest_ids, rest_sims))
                else:
                    requery.append(r)
            by_id = {r.id: r for r in recs}
            if kept:
                topk = TopK(np.full((len(kept), depth), -1, np.int64), np.zeros((len(kept), depth)))
                comp = np.array([bool(r.payload.get("complete")) for r, _, _ in kept])
                for row, (_, i_r, s_r) in enumerate(kept):
                    topk.ids[row, : i_r.size], topk.sims[row, : s_r.size] = i_r, s_r
                items = [r.id for r, _, _ in kept]
                self._rewrite(info, items, by_id, topk, comp)
                thr[items], complete[items] = _list_state(topk, comp)
            if requery:
                items = [r.id for r in requery]
                vecs = np.stack([np.asarray(r.vectors["item"], np.float32) for r in requery])
                topk = self.anchor_topk(vecs, info.modality, info.tenant, depth)
                comp = (topk.ids >= 0).sum(axis=1) < depth
                self._rewrite(info, items, by_id, topk, comp)
                thr[items], complete[items] = _list_state(topk, comp)
            touched[touched_key(info)] = len(kept) + len(requery)
            self._mark_current(info, thr, complete)
        return touched

    def _in_step(self, info: IndexInfo, tenant: str, delta: int) -> bool:
        """True when the index was current just before this edit (so applying the edit makes it current)."""
        before = dict(info.revisions)
        before[tenant] = before.get(tenant, 0) + 1
        if before != scope_revisions(self.meta, info.tenant):
            return False
        return bool(info.extra.get("anchors", -1) + delta == self._edit_count(info.tenant))

    def _edit_count(self, tenant: str) -> int:
        """The scope's anchor count after the edit being applied: counted once per edit, not once per index."""
        if tenant not in self._edit_counts:
            self._edit_counts[tenant] = self.scope_count(tenant)
        return self._edit_counts[tenant]

    def is_current(self, info: IndexInfo, check_count: bool = True) -> bool:
        """Revisions match (edits through the plugin, from any process) and, with ``check_count``, the anchor
        count matches too (catches adds and deletes made behind the plugin's back)."""
        if info.revisions != scope_revisions(self.meta, info.tenant):
            return False
        return not check_count or info.extra.get("anchors") == self.scope_count(info.tenant)

    def rebuild(self, info: IndexInfo) -> IndexInfo:
        """Recompute every item of the index from its stored vector against the tenant's current anchors."""
        return self.build(info, *self.definition(info))

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
            sims = self._item_sims(info, vecs)
            items = np.flatnonzero(complete | ((sims + SCORE_SLACK) >= thr[None, :]).any(axis=0))
            if items.size:
                self._merge_items(info, items, np.asarray([r.id for r in own], np.int64), thr, complete)
        info.revisions = revisions
        info.extra = {**info.extra, "anchors": self.scope_count(info.tenant)}
        self.meta.put(info.key, asdict(info))
        self._thr[info.key] = (_stamp(info), thr, complete)
        return info

    def definition(self, info: IndexInfo) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """What an index was built from: its items' vectors and payloads (without the stored top-k state and the
        partition fields, which the index that is built from them sets)."""
        items = self.items(info, with_vectors=True)
        vecs = np.stack([r.vectors["item"] for r in items])
        return vecs, [{k: v for k, v in r.payload.items() if k not in RESERVED_FIELDS} for r in items]

    def _mark_current(self, info: IndexInfo, thr: np.ndarray, complete: np.ndarray) -> None:
        info.revisions = scope_revisions(self.meta, info.tenant)
        info.extra = {**info.extra, "anchors": self._edit_count(info.tenant)}
        self.meta.put(info.key, asdict(info))
        self._thr[info.key] = (_stamp(info), thr, complete)

    def drop_caches(self) -> None:
        """Forget the in-process caches (item thresholds, count checks): the next use reads the stored items."""
        with self._cache_lock:
            self._thr.clear()
            self._count_checked.clear()

    def count_check_due(self, info: IndexInfo, every_s: float) -> bool:
        """Whether ``info``'s stored item count is due a comparison (at most once per ``every_s`` seconds)."""
        with self._cache_lock:
            return time.monotonic() - self._count_checked.get(info.key, -1e9) >= every_s

    def count_checked(self, info: IndexInfo) -> None:
        """Note that ``info``'s stored item count was just compared."""
        with self._cache_lock:
            self._count_checked[info.key] = time.monotonic()

    def annotate(self, info: IndexInfo, extra: Mapping[str, Any], tau: float | None = None) -> IndexInfo:
        """Store notes about an index (merged into ``extra``; e.g. how it was tuned or calibrated) and, when given,
        its decision threshold ``tau``; the items are not touched."""
        info.extra = {**info.extra, **extra}
        if tau is not None:
            info.tau = float(tau)
        self.meta.put(info.key, asdict(info))
        return info

    def scope_count(self, tenant: str) -> int:
        return self.engine.count(self.anchors, tenant_scope(tenant))

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

    def delete(self, info: IndexInfo) -> None:
        """Delete one index: its items (by filter) and its record. The collections stay."""
        self._thr.pop(info.key, None)
        coll = self.collection(info)
        if self.engine.collection_exists(coll):
            self.engine.delete(coll, filter=index_filter(info))
        self.meta.delete(info.key)

    def copies_of(self, shared: IndexInfo) -> list[IndexInfo]:
        """The tenant copies of a shared index."""
        recs = self.meta.items("index", {"name": shared.name, "kind": shared.kind})
        return [i for i in (from_record(IndexInfo, v, k) for k, v in recs)
                if i.tenant != TENANT_SHARED and i.copied_from is not None]

    def delete_tenant(self, tenant: str) -> int:
        """Delete every index of ``tenant`` (its items by the tenant filter, its records); return how many."""
        own = self.infos(tenant, own=True)
        for modality in ("text", "image"):
            coll = relindex_collection(self.prefix, modality)
            if self.engine.collection_exists(coll):
                self.engine.delete(coll, filter=Filter(must=(Match("tenant", tenant),)))
        for info in own:
            self._thr.pop(info.key, None)
        if own:
            self.meta.delete(*[i.key for i in own])
        return len(own)

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
