"""Taggings: the points of a user's own collection labelled in one payload field, and kept exact.

A tagging is a third kind of relative index (kind ``tagging``, image items, see relindex.py): item ``i`` is one point
of the user's collection (its vector, and its point id in the item payload ``point``), with its top-k and threshold
kept exact by the same incremental machinery as label sets and galleries. What the plugin writes into the user's
point, under ``field``, is derived from that item and the label set, through the same query path as classify:

    {"label": best label or None, "score": float, "top": [[label, score], ...], "anchors": [3 anchor ids], "rev": int}

``anchors`` are the pairs that contribute most to the first label of ``top`` (explain's first pairs); ``rev`` is the
tagging's revision when the tag was last written (the tagging's own ``rev``, in :meth:`Taggings.list`, is the
latest): a tag is rewritten only when its value changes.

Freshness: after an anchor edit (``after_edit``), only the items whose top-k changed are scored again. If the edit
also moved some prompts of the label set (their first k neighbours), the items whose tag those prompts can change
are scored too (:meth:`Taggings._to_rescore`). These are found by transposed sparse queries (a prompt's rep against
the tagging's items, inside Qdrant). Scoring uses sparse queries on the label set and recomputes no item's top-k.
Only points whose tag changed are written. A label-set redefinition (``after_labels``) scores every item again (a
new k or p rebuilds the items).

Crash safety: a run (tag, re-score) marks the tagging ``pending`` with the next revision before writing any point
and clears the mark after the last one; a tagging found pending (an interrupted run) is run again from scratch by
``tag`` (same arguments), ``sync`` and the next edit, which write every selected point, so no point keeps a tag of a
revision that is not the tagging's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import relrep
from .engines.base import Engine, Filter, HasId, Match, MatchAny, SparseQuery, SparseVec, query_batch_arrays
from .errors import AlreadyExistsError, ConfigError, InvalidInputError, NotFoundError
from .explain import label_totals, prompt_rep
from .meta import TENANT_SHARED
from .names import anchors_collection, meta_collection, relindex_collection
from .relindex import MAX_ITEMS, IndexInfo, RelIndexes, decode_topk, index_filter, to_sparse_vec
from .scoring import LabelModel
from .zeroshot import LABEL_TIE_TOL

TAG_ANCHORS = 3  # anchor pairs named in a tag
MOVE_BATCH = 4  # transposed queries per engine call (_moved_prompts)
MOVE_MARGIN = 1e-4  # how close a score must come to matter after a prompt moved (_moved_prompts); float32 noise ~1e-7
WRITE_BATCH = 256  # tags written per engine call


@dataclass
class TagInfo:
    """One tagging: which points of which collection carry the tags of which label set, for one tenant."""

    collection: str
    field: str
    tenant: str
    vector: str
    labels: str
    top: int
    filter: dict[str, Any] | None
    points: int
    rev: int
    pending: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def tagging_name(collection: str, field: str) -> str:
    """The relative index of a tagging: one per (tenant, collection, field)."""
    return json.dumps([collection, field], separators=(",", ":"))


def info_of(info: IndexInfo) -> TagInfo:
    t = info.extra["tagging"]
    return TagInfo(t["collection"], t["field"], info.tenant, t["vector"], t["labels"], int(t["top"]), t["filter"],
                   info.n_items, int(t["rev"]), bool(t["pending"]))


# -- filters ----------------------------------------------------------------------------------------
def _condition(c: Any) -> Any:
    if isinstance(c, Mapping) and "has_id" in c:
        return HasId(tuple(int(i) for i in c["has_id"]))
    if isinstance(c, Mapping) and isinstance(c.get("key"), str) and isinstance(c.get("match"), Mapping):
        m = c["match"]
        if "value" in m:
            return Match(c["key"], m["value"])
        if "any" in m:
            return MatchAny(c["key"], tuple(m["any"]))
    raise ConfigError(
        f"filter condition {c!r} is not supported: use {{'key': FIELD, 'match': {{'value': V}}}}, "
        "{'key': FIELD, 'match': {'any': [V, ...]}} or {'has_id': [ID, ...]} under 'must' / 'must_not'"
    )


def filter_from_json(flt: Any) -> tuple[Filter | None, dict[str, Any] | None]:
    """A Qdrant-style filter (a dict or its JSON text: ``must`` / ``must_not`` lists of match conditions) as the
    engine's Filter, and its JSON form (kept with the tagging, so that a sync selects the same points)."""
    if flt is None:
        return None, None
    if isinstance(flt, str):
        try:
            flt = json.loads(flt)
        except json.JSONDecodeError as e:
            raise ConfigError(f"filter {flt!r} is not valid JSON ({e}): pass a Qdrant filter object") from None
    if not isinstance(flt, Mapping) or set(flt) - {"must", "must_not"}:
        raise ConfigError(f"filter {flt!r} is not supported: pass {{'must': [...], 'must_not': [...]}}")
    must = tuple(_condition(c) for c in flt.get("must") or ())
    must_not = tuple(_condition(c) for c in flt.get("must_not") or ())
    return Filter(must=must, must_not=must_not), {"must": list(flt.get("must") or []),
                                                   "must_not": list(flt.get("must_not") or [])}


# -- the tags ---------------------------------------------------------------------------------------
def _rep_of(rec: Any) -> relrep.SparseRep:
    sv = rec.vectors.get("rel")
    if sv is None or len(sv) == 0:
        return relrep.SparseRep(np.zeros(0, np.int64), np.zeros(0, np.float64))
    return relrep.SparseRep(np.asarray(sv.indices, np.int64), np.asarray(sv.values, np.float64))


class _Scorer:
    """Tags for a tagging's items against one label model (its prompts' reps read once): classify's answer for each
    item's vector, through the same LabelModel."""

    def __init__(self, ri: RelIndexes, model: LabelModel, top: int, prompts: dict[int, relrep.SparseRep],
                 own_reps: bool) -> None:
        self.relindexes, self.model, self.top, self.prompts = ri, model, top, prompts
        self.own_reps = own_reps  # the items' stored reps are the model's (same scope, k and p)

    @property
    def needs_vectors(self) -> bool:
        """Whether scoring needs the items' vectors (prototype terms, or reps made again in another scope)."""
        return self.model.taught or not self.own_reps

    def tags_of(self, recs: Sequence[Any]) -> list[dict[str, Any]]:
        """The tags of item records (with their ``rel`` vector, and their ``item`` vector when needs_vectors)."""
        m = self.model
        vecs = (np.stack([np.asarray(r.vectors["item"], np.float32) for r in recs]) if self.needs_vectors and recs
                else np.zeros((len(recs), 0), np.float32))
        reps = ([_rep_of(r) for r in recs] if self.own_reps
                else self.relindexes.reps(vecs, "image", m.scope, m.part.k, m.part.p))
        return self.tags(reps, vecs)

    def tags(self, reps: Sequence[relrep.SparseRep], vecs: np.ndarray) -> list[dict[str, Any]]:
        m = self.model
        hits, preds = m.answer(self.relindexes, reps, vecs, self.top)
        out = []
        for rep, hs, pred in zip(reps, hits, preds, strict=True):
            anchors: list[int] = []
            if pred.top:
                found = label_totals(m.part, pred.top[0].label, hs, rep, lambda items: self.prompts, m.correction)
                anchors = [a for a, _ in (found[0] if found else [])[:TAG_ANCHORS]]
            out.append({"label": pred.label, "score": float(pred.score),
                        "top": [[s.label, float(s.score)] for s in pred.top], "anchors": anchors})
        return out


def _equal(a: Any, b: Any) -> bool:
    """Equal values, floats within 1e-12 (relative): a payload's float64 may come back from the engine's JSON a
    last bit off (Qdrant Edge), while a changed score moves by at least a float32 step (~6e-8)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-12 * max(1.0, abs(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _same(stored: Any, tag: Mapping[str, Any]) -> bool:
    """Whether a point's stored tag already holds ``tag`` (its ``rev`` aside)."""
    if not isinstance(stored, Mapping) or set(stored) - {"rev"} != set(tag):
        return False
    return all(_equal(stored[k], v) for k, v in tag.items())


class Taggings:
    """The taggings of one store: create, keep fresh after edits, sync with the user's collection, delete.

    ``model_for(name, tenant)``: the label model that answers for a tenant with a label set (the facade's
    label_model of its index_info: tenant copies, repairs, corrections and prototypes included), so that tags always
    are classify's answers."""

    def __init__(self, ri: RelIndexes, model_for: Callable[[str, str], LabelModel]) -> None:
        self.relindexes = ri
        self.engine: Engine = ri.engine
        self.model_for = model_for
        # per (label set, prompt): the prompt's stored top-k and its rep, computed again only when the top-k changed
        self._prompts: dict[tuple[str, int], tuple[str, int, float, relrep.SparseRep]] = {}

    def _scorer(self, model: LabelModel, top: int, info: IndexInfo | None = None) -> _Scorer:
        """A scorer for the model, with its prompts' reps (a rep is made again only where its item changed).
        ``info``: the tagging whose stored item reps are used when they are the model's (same scope, k and p)."""
        linfo = model.part
        reps = {}
        recs = self.relindexes.items(linfo, with_payload=["topk_tag"])  # which lists changed: their digests only
        stale = [r.id for r in recs if (hit := self._prompts.get((linfo.key, int(r.id)))) is None
                 or r.payload.get("topk_tag") is None or hit[:3] != (r.payload["topk_tag"], linfo.k, linfo.p)]
        full = self.relindexes.retrieve_items(linfo, stale) if stale else {}
        for r in recs:
            key = (linfo.key, int(r.id))
            if r.id in full:
                pl = full[r.id].payload
                state = str(pl.get("topk_tag") or pl.get("topk", ""))
                self._prompts[key] = (state, linfo.k, linfo.p, prompt_rep(linfo, pl))
            reps[int(r.id)] = self._prompts[key][3]
        own = info is None or (model.scope == info.tenant and (linfo.k, linfo.p) == (info.k, info.p))
        return _Scorer(self.relindexes, model, top, reps, own)

    # -- lookups ----------------------------------------------------------------------------------
    def all(self, tenant: str | None = None) -> list[IndexInfo]:
        """Every tagging (of ``tenant`` only, when given)."""
        infos = self.relindexes.infos() if tenant is None else self.relindexes.infos(tenant, own=True)
        return [i for i in infos if i.kind == "tagging"]

    def find(self, field: str, tenant: str, collection: str | None = None) -> IndexInfo:
        """The tenant's tagging of ``field`` (in ``collection``, needed when several collections use the field)."""
        found = [i for i in self.all(tenant) if info_of(i).field == field
                 and (collection is None or info_of(i).collection == collection)]
        if not found:
            have = sorted(f"{info_of(i).collection}:{info_of(i).field}" for i in self.all(tenant))
            raise NotFoundError(f"tenant {tenant!r} has no tagging of field {field!r}"
                                f"{f' in {collection!r}' if collection else ''}: existing: {have or 'none'}. "
                                "Create it with tag(COLLECTION, vector=..., labels=..., field=...)")
        if len(found) > 1:
            raise ConfigError(f"field {field!r} is tagged in several collections "
                              f"({', '.join(info_of(i).collection for i in found)}): name the collection")
        return found[0]

    # -- checks -----------------------------------------------------------------------------------
    def _check_target(self, collection: str, vector: str, field: str) -> None:
        prefix = self.relindexes.prefix
        own = {anchors_collection(prefix), meta_collection(prefix), relindex_collection(prefix, "text"),
               relindex_collection(prefix, "image")}
        if not isinstance(collection, str) or not collection:
            raise ConfigError(f"collection {collection!r} is invalid: name an existing collection")
        if collection in own:
            raise ConfigError(f"collection {collection!r} is one of the plugin's own collections: tag a collection "
                              "of your points (copy a gallery's images into one to tag them)")
        if not isinstance(field, str) or not field or "." in field or field in ("", "id"):
            raise ConfigError(f"field {field!r} is invalid: name one top-level payload field, without '.' "
                              "(for example 'category')")
        if not self.engine.collection_exists(collection):
            have = [c for c in self.engine.list_collections() if c not in own]
            raise NotFoundError(f"collection {collection!r} does not exist on {self.engine.description}: "
                                f"existing: {have or 'none'}")
        spec = self.engine.collection_spec(collection)
        if vector in spec.sparse:
            raise InvalidInputError(f"vector {vector!r} of {collection!r} is a sparse vector: tag with a dense image "
                                    f"vector ({', '.join(spec.dense) or 'none'})")
        if vector not in spec.dense:
            raise NotFoundError(f"collection {collection!r} has no vector named {vector!r}: its dense vectors are "
                                f"{sorted(spec.dense) or 'none'}")
        dim = self.relindexes.fingerprint.image_dim
        if spec.dense[vector] != dim:
            raise InvalidInputError(
                f"vector {vector!r} of {collection!r} has {spec.dense[vector]} dimensions, but this store's image "
                f"encoder {self.relindexes.fingerprint.image_encoder!r} has {dim}: tag vectors made by that encoder"
            )

    def _select(
        self, collection: str, vector: str, flt: Filter | None, field: str
    ) -> tuple[list[Any], np.ndarray, list[Any]]:
        """The selected points: ids (in scroll order), vectors, and what each holds under ``field`` now."""
        recs = self.engine.scroll(collection, filter=flt, with_payload=True, with_vectors=(vector,))
        pids: list[Any] = []
        rows: list[np.ndarray] = []
        held: list[Any] = []
        for r in recs:
            v = r.vectors.get(vector)
            if v is None:
                continue  # a point without this vector is not selected
            arr = np.asarray(v, np.float32)
            if arr.ndim != 1:
                raise InvalidInputError(f"vector {vector!r} of {collection!r} is a multi-vector: tag with a dense "
                                        "single vector per point")
            pids.append(r.id)
            rows.append(arr)
            held.append(r.payload.get(field))
        dim = self.relindexes.fingerprint.image_dim
        return pids, (np.stack(rows) if rows else np.zeros((0, dim), np.float32)), held

    # -- tag --------------------------------------------------------------------------------------
    def tag(
        self, collection: str, *, vector: str, labels: str, field: str, tenant: str, filter: Any = None,
        top: int = 3, replace: bool = False,
    ) -> TagInfo:
        """Register a tagging and tag every selected point (see the module docstring). A re-run of an existing
        tagging (same collection and field) runs it again (it finishes an interrupted one)."""
        self._check_target(collection, vector, field)
        flt, flt_json = filter_from_json(filter)
        model = self.model_for(labels, tenant)
        old = self.relindexes.info(tagging_name(collection, field), tenant, "tagging")
        others = [i for i in self.relindexes.infos() if i.kind == "tagging" and i.tenant != tenant
                  and info_of(i).collection == collection and info_of(i).field == field]
        if others:  # never, even with replace: one tenant's run would overwrite another's tags
            raise AlreadyExistsError(f"field {field!r} of {collection!r} is already tagged by another tenant: "
                                     "pick another field")
        pids, vecs, held = self._select(collection, vector, flt, field)
        if not pids:
            raise InvalidInputError(f"the filter {flt_json!r} selects no point of {collection!r} with a vector "
                                    f"{vector!r}: nothing to tag")
        if old is None and not replace:
            busy = [p for p, h in zip(pids, held, strict=True) if h is not None]
            if busy:
                raise AlreadyExistsError(
                    f"field {field!r} already holds data on {len(busy)} selected points of {collection!r} (point "
                    f"{busy[0]!r}): pass replace=True (--replace) to overwrite it, or tag into another field"
                )
        spec = {"collection": collection, "field": field, "vector": vector, "labels": labels, "top": int(top),
                "filter": flt_json, "rev": 0, "pending": True}
        return info_of(self._run(spec, tenant, model, old, pids, vecs))

    def _run(
        self, spec: dict[str, Any], tenant: str, model: LabelModel, old: IndexInfo | None, pids: list[Any],
        vecs: np.ndarray,
    ) -> IndexInfo:
        """Build the tagging's items from the selected points and write every point's tag (pending until done)."""
        name = tagging_name(spec["collection"], spec["field"])
        rev = (int(old.extra["tagging"]["rev"]) if old is not None else 0) + 1
        spec = {**spec, "rev": rev, "pending": True}
        linfo = model.info
        info = IndexInfo(name, tenant, "tagging", linfo.k, linfo.p, len(pids), {}, extra={"tagging": spec})
        if old is not None:
            info.slot = old.slot
            self.relindexes.annotate(old, {"tagging": spec})  # pending from the first write on
        scorer = self._scorer(model, spec["top"], info)
        coll, field = spec["collection"], spec["field"]

        def write_chunk(items: list[int], reps: list[relrep.SparseRep]) -> None:
            vv = vecs[items]
            if not scorer.own_reps:  # the model's reps are made in another scope (a fully taught tenant)
                reps = self.relindexes.reps(vv, "image", model.scope, model.part.k, model.part.p)
            self._write(coll, field, [pids[i] for i in items], scorer.tags(reps, vv), rev)

        if old is None:
            self.relindexes.annotate(info, {})  # the record exists (pending) before any point is written
        info = self.relindexes.build(info, vecs, [{"point": p} for p in pids], on_chunk=write_chunk)
        if old is not None:  # points tagged before and not selected now lose the tag
            gone = set(self._points(old).values()) - set(pids)
            self.engine.delete_payload(coll, sorted(gone, key=str), [field])
        return self._done(info, model)

    def _done(self, info: IndexInfo, model: LabelModel) -> IndexInfo:
        spec = {**info.extra["tagging"], "pending": False, "label_state": model.state()}
        return self.relindexes.annotate(info, {"tagging": spec})

    def _write(self, collection: str, field: str, pids: Sequence[Any], tags: Sequence[dict[str, Any]],
               rev: int) -> None:
        for start in range(0, len(pids), WRITE_BATCH):
            self.engine.set_payloads(collection, pids[start : start + WRITE_BATCH],
                                     [{field: {**t, "rev": rev}} for t in tags[start : start + WRITE_BATCH]])

    def _points(self, info: IndexInfo) -> dict[int, Any]:
        """Item number -> the user's point id."""
        return {r.id: r.payload.get("point") for r in self.relindexes.items(info, with_payload=["point"])}

    # -- freshness --------------------------------------------------------------------------------
    def after_edit(self, tenant: str) -> dict[str, int]:
        """After an anchor edit of ``tenant`` (or a refresh): bring every affected tagging up to date. Returns the
        points rewritten per tagging."""
        out = {}
        for info in self.relindexes.affected(tenant):
            if info.kind == "tagging":  # ri.written live: a label set repaired on the way (model_for) counts too
                out[f"{info.tenant}/{info.name}"] = self.refresh(info, self.relindexes.written)
        return out

    def after_labels(self, name: str, tenant: str) -> dict[str, int]:
        """After the label set ``name`` of ``tenant`` was (re)defined or deleted: every tagging that uses it (every
        tenant's, for a shared one) is scored again; one whose label set is gone is deleted (its tags removed)."""
        out = {}
        for info in self.all(None if tenant == TENANT_SHARED else tenant):
            if info.extra["tagging"]["labels"] == name:
                try:
                    out[f"{info.tenant}/{info.name}"] = self.refresh(info, None)
                except NotFoundError:
                    self.delete(info)
        return out

    def refresh(self, info: IndexInfo, written: Mapping[str, set[int]] | None) -> int:
        """Bring one tagging up to date; ``written``: the items (per index key) whose top-k the edit rewrote, None
        to score every item again. Returns how many points were rewritten."""
        spec = info.extra["tagging"]
        model = self.model_for(spec["labels"], info.tenant)
        linfo = model.info
        if spec.get("pending") or (linfo.k, linfo.p) != (info.k, info.p) or not self.relindexes.is_current(info, False):
            return self.rerun(info, model)
        scorer = self._scorer(model, int(spec["top"]), info)
        items = self._to_rescore(info, model, None if not scorer.own_reps else written, scorer.prompts)
        wv: tuple[str, ...] = ("rel", "item") if scorer.needs_vectors else ("rel",)
        recs = (self.relindexes.items(info, with_vectors=wv, with_payload=["point"]) if items is None
                else list(self.relindexes.retrieve_items(info, sorted(items), with_vectors=wv,
                                                         with_payload=["point"]).values()))
        if not recs:
            self._done(info, model)
            return 0
        coll, field = spec["collection"], spec["field"]
        changed: list[tuple[Any, dict[str, Any]]] = []
        for start in range(0, len(recs), 4096):
            chunk = recs[start : start + 4096]
            tags = scorer.tags_of(chunk)
            pids = [r.payload.get("point") for r in chunk]
            stored = {r.id: r.payload.get(field) for r in self.engine.retrieve(coll, pids, with_payload=[field])}
            # a point deleted from the collection is skipped (a sync removes its item)
            changed += [(p, t) for p, t in zip(pids, tags, strict=True) if p in stored and not _same(stored[p], t)]
        if changed:
            rev = int(spec["rev"]) + 1
            info = self.relindexes.annotate(info, {"tagging": {**spec, "rev": rev, "pending": True}})
            self._write(coll, field, [p for p, _ in changed], [t for _, t in changed], rev)
        self._done(info, model)
        return len(changed)

    def _to_rescore(
        self, info: IndexInfo, model: LabelModel, written: Mapping[str, set[int]] | None,
        prompts_now: Mapping[int, relrep.SparseRep],
    ) -> set[int] | None:
        """The items whose tag an edit may have changed (None: every item). Those are the items whose top-k the
        edit rewrote, plus more where the edit also changed the representation of some of the label set's prompts
        (their first k neighbours; an edit in the buffer beyond them changes no score):

        - under the paper's scores (max aggregation, no correction, no prototypes), the items that
          :meth:`_moved_prompts` finds: those for which a moved prompt could be or become its class's best and
          that class is in the stored tag's top or reaches it;
        - otherwise, every item that shares an anchor with a moved prompt's top-k, before or after the edit (one
          sparse query). No other item's scores moved.

        Every item when anything else the scores depend on moved (model.state(): a correction, the prototypes...).
        ``prompts_now``: the label set's prompt reps after the edit."""
        if written is None or model.state() != info.extra["tagging"].get("label_state"):
            return None
        linfo = model.part
        items = set(written.get(info.key, ()))
        prompts = written.get(linfo.key, set())
        if not prompts:
            return items
        before = self.relindexes.previous.get(linfo.key, {})
        if not prompts <= set(before):  # rewritten by a build (no earlier state kept): every item
            return None
        recs = self.relindexes.retrieve_items(linfo, sorted(prompts)).values()
        now = {r.id: str(r.payload.get("topk", "")) for r in recs}
        k = linfo.k  # a prompt's rep is made of its first k neighbours (explain.prompt_rep)
        moved: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in prompts:
            (b_ids, b_sims), (n_ids, n_sims) = (decode_topk({"topk": t}) for t in (before[j], now.get(j, "")))
            if not (np.array_equal(b_ids[:k], n_ids[:k]) and np.array_equal(b_sims[:k], n_sims[:k])):
                moved[j] = (b_ids[:k], n_ids[:k])
        if not moved:
            return items
        if (model.correction is None and not model.taught and model.info.aggregation == "max"
                and set(moved) <= set(prompts_now)):  # (a sync after a redefinition finds an older edit's log)
            olds = {j: prompt_rep(linfo, {"topk": before[j]}) for j in moved}
            return items | self._moved_prompts(info, model, olds, prompts_now)
        anchors = np.unique(np.concatenate([a for pair in moved.values() for a in pair])).astype(np.uint32)
        if anchors.size:
            q = SparseQuery("rel", SparseVec(anchors, np.ones(anchors.size, np.float32)), info.n_items,
                            index_filter(info))
            ids, scores = query_batch_arrays(self.engine, self.relindexes.collection(info), [q])[0]
            items.update((ids[scores > 0] & (MAX_ITEMS - 1)).tolist())
        return items

    def _moved_prompts(
        self, info: IndexInfo, model: LabelModel, olds: Mapping[int, relrep.SparseRep],
        prompts_now: Mapping[int, relrep.SparseRep],
    ) -> set[int]:
        """The items whose tag moved prompts (``olds``: their reps before the edit) may change, under max
        aggregation without correction or prototypes. A class's score is the largest score of its prompts. The
        scores of every prompt of a class with a moved prompt are read with transposed sparse queries (the
        prompt's rep against the tagging's items, inside Qdrant). An item's tag can only change when:

        1. a moved prompt scores, before or after the edit, at least its class's best unmoved prompt (less
           MOVE_MARGIN). Otherwise the class's score and best prompt (the tag's anchors) are unchanged; and
        2. that class is in the stored tag's ``top``, or its score before or after reaches the last score of a
           full ``top`` (less the margin and the label tie chain, zeroshot.rank_labels). Otherwise it stays out.

        The margins are far wider than float32 noise between the two query directions."""
        linfo = model.part
        n_tpl, n = len(linfo.templates), info.n_items
        classes = sorted({j // n_tpl for j in olds})
        queries: list[SparseQuery] = []
        where: list[tuple[int, int]] = []  # (class row, 0 unmoved / 1 before / 2 after) of each query
        flt = index_filter(info)
        for row, ci in enumerate(classes):
            for j in range(ci * n_tpl, (ci + 1) * n_tpl):
                reps = [(0, prompts_now[j])] if j not in olds else [(1, olds[j]), (2, prompts_now[j])]
                for kind, rep in reps:
                    if rep.indices.size:  # an empty rep scores 0 everywhere
                        queries.append(SparseQuery("rel", to_sparse_vec(rep), n, flt))
                        where.append((row, kind))
        best = np.zeros((len(classes), 3, n))  # per class: best unmoved, best moved before, best moved after
        coll = self.relindexes.collection(info)
        for start in range(0, len(queries), MOVE_BATCH):  # each answer holds up to every item: a few at a time
            answers = query_batch_arrays(self.engine, coll, queries[start : start + MOVE_BATCH])
            for (row, kind), (ids, scores) in zip(where[start : start + MOVE_BATCH], answers, strict=True):
                its = ids & (MAX_ITEMS - 1)
                best[row, kind, its] = np.maximum(best[row, kind, its], scores)
        moved_best = best[:, 1:].max(axis=1)
        maybe = (moved_best > 0) & (moved_best >= best[:, 0] - MOVE_MARGIN)  # (classes, items): rule 1
        cand = np.flatnonzero(maybe.any(axis=0))
        if cand.size == 0:
            return set()
        spec = info.extra["tagging"]
        points = {r.id: r.payload.get("point") for r in self.relindexes.retrieve_items(
            info, cand.tolist(), with_payload=["point"]).values()}
        stored: dict[Any, Any] = {r.id: r.payload.get(spec["field"]) for r in self.engine.retrieve(
            spec["collection"], [p for p in points.values() if p is not None], with_payload=[spec["field"]])}
        score = best.max(axis=1)  # a class's score before or after, whichever is larger
        # a label tie chain spans at most (classes + 1) * LABEL_TIE_TOL: scores here are dots of unit reps (<= 1)
        margin = MOVE_MARGIN + (len(linfo.classes) + 1) * LABEL_TIE_TOL
        out: set[int] = set()
        for it in map(int, cand.tolist()):
            tag = stored.get(points.get(it))
            top = tag.get("top") if isinstance(tag, Mapping) else None
            if not isinstance(top, list) or not all(isinstance(t, list) and len(t) == 2 for t in top):
                out.add(it)  # no tag, or not one this tagging wrote: score it
                continue
            labels = {t[0] for t in top}
            last = float(top[-1][1]) if len(top) >= int(spec["top"]) else -np.inf
            if any(maybe[row, it] and (linfo.classes[ci] in labels or score[row, it] >= last - margin)
                   for row, ci in enumerate(classes)):
                out.add(it)
        return out

    def rerun(self, info: IndexInfo, model: LabelModel | None = None) -> int:
        """Run a tagging again from scratch (its stored arguments): every selected point is written."""
        spec = info.extra["tagging"]
        model = model or self.model_for(spec["labels"], info.tenant)
        flt, _ = filter_from_json(spec["filter"])
        pids, vecs, _ = self._select(spec["collection"], spec["vector"], flt, spec["field"])
        if not pids:
            self.delete(info)
            return 0
        self._run(spec, info.tenant, model, info, pids, vecs)
        return len(pids)

    # -- the user's collection moves --------------------------------------------------------------
    def sync(self, info: IndexInfo, ids: Sequence[Any] | None = None) -> dict[str, int]:
        """Pick up points added to or deleted from the selection (and, with ``ids``, points whose vectors were
        overwritten in place), incrementally: the items of deleted points leave the tagging, added points become new
        items (their top-k computed, the others untouched) and get their tags; an interrupted or stale tagging is
        run again. Returns counts."""
        spec = info.extra["tagging"]
        flt, _ = filter_from_json(spec["filter"])
        now = [r.id for r in self.engine.scroll(spec["collection"], filter=flt, with_payload=False)]
        held = self._points(info)  # item -> point
        have, now_set = set(held.values()), set(now)
        redo = {p for p in (ids or ()) if p in now_set and p in have}  # overwritten in place: out, then in again
        added = [p for p in now if p not in have or p in redo]
        gone_items = [it for it, p in held.items() if p not in now_set or p in redo]
        counts = {"added": len(set(now) - have), "deleted": len(have - now_set)}
        if spec.get("pending") or not self.relindexes.is_current(info):
            return {**counts, "rewritten": self.rerun(info), "points": len(now)}
        rewritten = self.refresh(info, self.relindexes.written)
        info = self.relindexes.require(info.name, info.tenant, "tagging")
        if added or gone_items:
            left = [held[i] for i in gone_items if held[i] not in now_set]
            rewritten += self._sync_items(info, added, gone_items, left)
        return {**counts, "rewritten": rewritten, "points": len(now)}

    def _sync_items(self, info: IndexInfo, added: list[Any], gone_items: list[int], left: list[Any]) -> int:
        """Remove the items ``gone_items`` (their points ``left`` the selection lose the tag), then add the points
        ``added`` as new items with their tags; pending until done (a crash midway makes the next run a rerun)."""
        spec = info.extra["tagging"]
        rev = int(spec["rev"]) + 1
        info = self.relindexes.annotate(info, {"tagging": {**spec, "rev": rev, "pending": True}})
        coll, field = spec["collection"], spec["field"]
        if gone_items:
            info = self.relindexes.remove_items(info, gone_items)
            existing = {r.id for r in self.engine.retrieve(coll, left, with_payload=False)} if left else set()
            self.engine.delete_payload(coll, [p for p in left if p in existing], [field])
        if added:
            recs = {r.id: r for r in self.engine.retrieve(coll, added, with_vectors=(spec["vector"],))}
            pids = [p for p in added if p in recs and recs[p].vectors.get(spec["vector"]) is not None]
            vecs = np.stack([np.asarray(recs[p].vectors[spec["vector"]], np.float32) for p in pids]) if pids \
                else np.zeros((0, self.relindexes.fingerprint.image_dim), np.float32)
            model = self.model_for(spec["labels"], info.tenant)
            scorer = self._scorer(model, int(spec["top"]), info)
            n0 = info.n_items

            def write_chunk(items: list[int], reps: list[relrep.SparseRep]) -> None:
                vv = vecs[[i - n0 for i in items]]
                if not scorer.own_reps:
                    reps = self.relindexes.reps(vv, "image", model.scope, model.part.k, model.part.p)
                self._write(coll, field, [pids[i - n0] for i in items], scorer.tags(reps, vv), rev)

            info = self.relindexes.append_items(info, vecs, [{"point": p} for p in pids], on_chunk=write_chunk)
            self._done(info, model)
            return len(pids)
        self._done(info, self.model_for(spec["labels"], info.tenant))
        return 0

    def delete(self, info: IndexInfo) -> TagInfo:
        """Remove the tagging's field from every point it tagged, then its items and record."""
        t = info_of(info)
        if self.engine.collection_exists(t.collection):
            pids = list(self._points(info).values())
            for start in range(0, len(pids), 1024):
                self.engine.delete_payload(t.collection, pids[start : start + 1024], [t.field])
        self.relindexes.delete(info)
        return t

    def point_vector(self, info: IndexInfo, point: Any) -> np.ndarray:
        """The vector of one tagged point (to explain its tag)."""
        t = info_of(info)
        recs = self.engine.retrieve(t.collection, [point], with_vectors=(t.vector,))
        if not recs or recs[0].vectors.get(t.vector) is None:
            raise NotFoundError(f"point {point!r} of {t.collection!r} does not exist or has no vector {t.vector!r}")
        if t.field not in recs[0].payload:
            raise NotFoundError(f"point {point!r} of {t.collection!r} has no tag {t.field!r}: run sync_tags")
        return np.asarray(recs[0].vectors[t.vector], np.float32)[None, :]


__all__ = ["TagInfo", "Taggings", "filter_from_json", "info_of", "tagging_name"]
