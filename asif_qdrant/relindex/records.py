"""Relative-index records: the meta record of an index (IndexInfo), the partition fields and filters, slots and
point ids, the payload encoding of an item's top-k, and the base of RelIndexes (its state, reading and writing records,
the items generation, the thresholds saved at close).

Layout (see DESIGN.md): the items of every tenant's label sets share one collection (``{prefix}relindex_text``, the
prompts' text vectors) and the items of every gallery another (``{prefix}relindex_image``); an item carries the payload
``tenant`` (keyword index, is_tenant), ``index`` (the name), ``kind`` and ``item`` (its number in the index), and every
read or write of items carries the filter on all three partition fields. Point ids are unique within a collection:
``slot << ITEM_BITS | item``, where the slot is allocated per index (a hash of its identity, probed until free) and
kept in its meta record.

An index's per-item thresholds (what an anchor edit compares against) are cached per process under a stamp of the
revisions, the item count and an items generation (a token renewed in the record whenever items are written, so a
rewrite by another process that keeps revisions and count still invalidates the cache). On an exclusive engine (the
embedded store: one process) the thresholds of a large index are saved in the meta collection at close, under the
stamp they match, and serve the next process's first edit instead of a read of every item's payload.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from .. import relrep
from ..engines.base import CollectionSpec, Engine, Filter, Match, SparseVec
from ..errors import ConfigError, InvalidInputError, NotFoundError
from ..meta import TENANT_SHARED, Fingerprint, Meta, from_record, index_key
from ..names import Modality, anchors_collection, relindex_collection
from ..search_options import SearchConfig
from ..topk import TopK, tenant_scope

Kind = Literal["labels", "gallery", "reference", "tagging"]  # reference: a label set's sample of anchor images
# (correction.py); a tagging: image items, the points of a user's collection
TOPK_FIELDS = frozenset({"topk", "topk_tag", "complete", "thr"})
PAYLOAD_FIELDS = ["label", "prompt", "class_index", "template_index", "caption", "image_ref", "item"]
PARTITION_FIELDS = ("tenant", "index", "kind")
RESERVED_FIELDS = frozenset(PARTITION_FIELDS) | TOPK_FIELDS  # set by the plugin on every item
TRANSITIONS_KEPT = 8  # logged edits per index (RelIndexes.changed_items)
ITEM_BITS = 24
MAX_ITEMS = 1 << ITEM_BITS  # items per index
SLOT_BITS = 39  # slot << ITEM_BITS stays below 2**63
ITEMS_GEN = "items_gen"  # IndexInfo.extra: a fresh token whenever items are written (part of the thresholds' stamp)
SAVED_MIN_ITEMS = 2000  # indexes with at least this many items keep their thresholds in the store between processes


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
                "extra": {k: v for k, v in self.extra.items() if k != ITEMS_GEN}, "correction": self.correction,
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


def depth_of(k: int) -> int:
    """How many neighbours an item keeps: k for its representation plus a buffer (k/8, at least 8) so that
    deleting an anchor from its top-k rarely needs a new query: the next neighbour is already there."""
    return k + max(8, k // 8)


TAGGING_BUFFER = 8
"""The buffer a tagging's items get when they are built: the neighbours past k that the query of k fetches anyway."""


def build_depth(info: IndexInfo) -> int:
    """How many neighbours a build stores per item. Label sets and galleries: depth_of(k). A tagging: k plus
    TAGGING_BUFFER. A tagging has as many items as the user's collection has points, and a query of depth_of(k)
    neighbours per point costs ~6 % more than classify's query of k. Any list of k <= m <= depth_of(k) neighbours
    is valid (records.topk_payload). An item whose buffer a delete runs out of is queried again to depth_of(k)
    (freshness.apply_deleted), so the buffer fills only where edits need it."""
    return info.k + TAGGING_BUFFER if info.kind == "tagging" else depth_of(info.k)


def topk_tag(encoded: str) -> str:
    """A short digest of an item's stored list (``topk`` payload string): a reader that keeps decoded lists scrolls
    these 16 characters to learn which items changed, instead of every list (an item written before this field
    existed has none and is read whole)."""
    return hashlib.blake2b(encoded.encode("ascii"), digest_size=8).hexdigest()


def topk_payload(ids: np.ndarray, sims: np.ndarray, complete: bool) -> dict[str, Any]:
    """What an item stores: its nearest anchors (exact top-m, k <= m <= depth, in tie-rule order), whether the
    list holds every anchor in scope (``complete``), and its threshold (the last similarity) when it does not."""
    enc = encode_topk(ids, sims)
    return {
        "topk": enc,
        "topk_tag": topk_tag(enc),
        "complete": bool(complete),
        "thr": None if complete or ids.size == 0 else float(sims[-1]),
    }


def list_state(topk: TopK, complete: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds (last similarity; -inf for complete lists) and complete flags of rows of a TopK."""
    n = (topk.ids >= 0).sum(axis=1)
    last = topk.sims[np.arange(len(n)), np.maximum(n - 1, 0)]
    thr = np.where(complete | (n == 0), -np.inf, last)
    return thr.astype(np.float64), complete.astype(bool)


def index_state(info: IndexInfo) -> tuple[Any, ...]:
    """What an index's items depend on: its record, definition, k and p, its scope's revisions, anchor count and
    item count. Equal states have equal stored lists (the freshness contract)."""
    return (info.key, info.definition, info.copied_from, info.k, info.p, tuple(sorted(info.revisions.items())),
            info.extra.get("anchors"), info.n_items)


def stamp(info: IndexInfo) -> tuple[Any, ...]:
    """What an index's cached item thresholds are valid for: its revisions, anchor count, item count and items
    generation (a new token at every write of items, so that items rewritten with nothing else changing, a tagging's
    sync of overwritten points, cannot leave a cache looking valid)."""
    return (tuple(sorted(info.revisions.items())), info.extra.get("anchors"), info.n_items, info.extra.get(ITEMS_GEN))


def saved_key(key: str) -> str:
    """The meta record that keeps index ``key``'s thresholds between processes."""
    return f"thr:{key}"


def _stamp_digest(st: tuple[Any, ...]) -> str:
    return hashlib.blake2b(repr(st).encode(), digest_size=16).hexdigest()


def to_sparse_vec(rep: relrep.SparseRep) -> SparseVec:
    return SparseVec(rep.indices.astype(np.uint32), rep.values.astype(np.float32))


class IndexRecords:
    """The records of one store's relative indexes: the object's state, the meta records (read, require, list,
    annotate, delete), the item collections and the slots that make the items' point ids."""

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
        self._saved_dropped: set[str] = set()  # index keys whose saved thresholds this process dropped (items_written)
        self._count_checked: dict[str, float] = {}  # per index: when its stored item count was last compared
        self._cache_lock = threading.Lock()  # readers share this object: its caches change under this lock
        self._create_lock = threading.Lock()  # collection creation and slot allocation, across tenants' edits
        self._edit_counts: dict[str, int] = {}
        # per index key: the items whose stored top-k was (re)written since ``written`` was last cleared; the owners
        # of derived state (tagging.py: payload tags) read it after an edit to update only what changed
        self.written: dict[str, set[int]] = {}
        self.previous: dict[str, dict[int, str]] = {}  # per index key: the stored top-k of each rewritten item before
        # per index key: the last incremental edits made by this process, (state before, state after, items written):
        # a reader that decoded the lists at one state learns which items can differ at a later one (changed_items)
        self.transitions: dict[str, list[tuple[tuple[Any, ...], tuple[Any, ...], frozenset[int]]]] = {}

    def log_transition(self, key: str, before: tuple[Any, ...], after: tuple[Any, ...], items: set[int]) -> None:
        """Record that this process moved index ``key`` from state ``before`` to ``after`` writing ``items``."""
        with self._cache_lock:
            log = self.transitions.setdefault(key, [])
            log.append((before, after, frozenset(items)))
            del log[:-TRANSITIONS_KEPT]

    def forget_transitions(self, key: str) -> None:
        """Forget the logged edits of index ``key``: its items were rewritten otherwise (a build, a copy, a delete)."""
        with self._cache_lock:
            self.transitions.pop(key, None)

    def changed_items(self, key: str, since: tuple[Any, ...], now: tuple[Any, ...]) -> set[int] | None:
        """The items whose stored lists may differ between state ``since`` and state ``now`` of index ``key``, when
        this process made every edit in between (a chain of logged transitions); None when it cannot tell (an edit
        by another process, a build, a copy: the reader then reads every item)."""
        if since == now:
            return set()
        with self._cache_lock:
            log = list(self.transitions.get(key, ()))
        out: set[int] = set()
        state = since
        for before, after, items in log:
            if before == state:
                out |= items
                state = after
                if state == now:
                    return out
        return None

    # -- records -------------------------------------------------------------------------------
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

    # -- collections and point ids ---------------------------------------------------------------
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

    # -- notes, counts, deletion -----------------------------------------------------------------
    def annotate(self, info: IndexInfo, extra: Mapping[str, Any], tau: float | None = None) -> IndexInfo:
        """Store notes about an index (merged into ``extra``; e.g. how it was tuned or calibrated) and, when given,
        its decision threshold ``tau``; the items are not touched."""
        info.extra = {**info.extra, **extra}
        if tau is not None:
            info.tau = float(tau)
        self.meta.put(info.key, asdict(info))
        return info

    # -- thresholds kept between processes -------------------------------------------------------------
    def items_written(self, info: IndexInfo) -> None:
        """Before items of ``info`` are written: a new items generation (the record stored after the write carries
        it), and its saved thresholds dropped, so that a crash between the write and the record can leave no saved
        copy that looks valid. Dropped once per process: on an exclusive engine no other process saves meanwhile."""
        info.extra = {**info.extra, ITEMS_GEN: secrets.token_hex(8)}
        if info.key not in self._saved_dropped:
            self.meta.delete(saved_key(info.key))
            self._saved_dropped.add(info.key)

    def save_thresholds(self) -> int:
        """Keep the cached thresholds of large indexes in the store (at close), so that the next process's first
        edit does not read every item's payload (16 s for a tagging of 100,000 points). Only on an engine that one
        process holds at a time (the embedded store, local mode); only caches that match the stored record.
        Returns how many were saved."""
        if not getattr(self.engine, "exclusive", False):
            return 0
        n = 0
        with self._cache_lock:
            cached = list(self._thr.items())
        for key, (st, thr, comp) in cached:
            rec = self.meta.get(key) if thr.size >= SAVED_MIN_ITEMS else None
            if rec is None or stamp(from_record(IndexInfo, rec, key)) != st:
                continue
            self.meta.put(saved_key(key), {
                "stamp": _stamp_digest(st), "n": int(thr.size),
                "thr": base64.b64encode(np.asarray(thr, "<f8").tobytes()).decode("ascii"),
                "complete": base64.b64encode(np.packbits(comp).tobytes()).decode("ascii"),
            })
            self._saved_dropped.discard(key)
            n += 1
        return n

    def saved_thresholds(self, info: IndexInfo) -> tuple[np.ndarray, np.ndarray] | None:
        """The thresholds and complete flags a previous process saved for ``info``, when they are valid for its
        stored record (same stamp: revisions, anchor count, item count and items generation); else None."""
        if not getattr(self.engine, "exclusive", False) or info.n_items < SAVED_MIN_ITEMS:
            return None
        rec = self.meta.get(saved_key(info.key))
        if rec is None or rec.get("stamp") != _stamp_digest(stamp(info)) or rec.get("n") != info.n_items:
            return None
        thr = np.frombuffer(base64.b64decode(rec["thr"]), "<f8").astype(np.float64)
        comp = np.unpackbits(np.frombuffer(base64.b64decode(rec["complete"]), np.uint8))[: info.n_items].astype(bool)
        return (thr, comp) if thr.size == info.n_items else None

    def scope_count(self, tenant: str) -> int:
        return self.engine.count(self.anchors, tenant_scope(tenant))

    def delete(self, info: IndexInfo) -> None:
        """Delete one index: its items (by filter) and its record. The collections stay."""
        self._thr.pop(info.key, None)
        self.forget_transitions(info.key)
        coll = self.collection(info)
        if self.engine.collection_exists(coll):
            self.engine.delete(coll, filter=index_filter(info))
        self.meta.delete(info.key, saved_key(info.key))

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
            self.meta.delete(*[i.key for i in own], *[saved_key(i.key) for i in own])
        return len(own)
