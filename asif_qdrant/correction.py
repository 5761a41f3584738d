"""Hub-corrected label scores: the reference sample a label set's correction is computed from, kept exact.

Flickr8k captions are full of dogs, so the prompts "a photo of a dog." share anchor mass with almost every image and
win by default (a hub). A label set with ``correction="mean"`` subtracts from each prompt's score its mean score over
a *reference sample* of the tenant's anchor images (``"zscore"`` also divides by the standard deviation); the math
is :func:`zeroshot.reference_shift_scale` / :func:`zeroshot.aggregate_corrected`, in numpy.

The reference is part of the label set's model:

- it is drawn when the label set is defined (or refreshed): the ``REFERENCE_SIZE`` anchors of the tenant's scope whose
  ids have the smallest hash (deterministic, spread over the whole set); their image vectors are stored as the items
  of a relative index of kind ``reference`` that carries the label set's name, tenant, k and p;
- the freshness machinery keeps those items' top-k exact under every anchor edit, exactly as it keeps a gallery's, so
  a tenant copy, a stale index repaired by a rebuild and an incremental edit all give the reference reps that a
  rebuild from scratch gives;
- the correction ``(shift, scale)`` per prompt is a bounded recompute from the stored lists of the reference items and
  the prompts (``REFERENCE_SIZE`` x prompts sparse dots), cached in the process per state of both indexes (their
  revisions, anchor counts and definitions), so the first answer after an edit recomputes it and the next ones reuse it.

A label set defined on an empty scope gets its reference when it first answers with anchors in scope.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import relrep
from .engines.base import Hit
from .meta import TENANT_SHARED
from .relindex import IndexInfo, RelIndexes, decode_topk, index_state, tenant_scope
from .zeroshot import Prediction, aggregate_corrected, reference_shift_scale

if TYPE_CHECKING:
    from .asif import Asif

REFERENCE_KIND = "reference"
REFERENCE_SIZE = 500


def id_hash(anchor_id: int) -> int:
    """The order in which anchors enter a reference sample (a fixed hash of the id, so the sample is spread over the
    whole anchor set and does not depend on insertion order)."""
    return int.from_bytes(hashlib.blake2b(int(anchor_id).to_bytes(8, "little"), digest_size=8).digest(), "big")


def reference_ids(ids: Sequence[int], size: int | None = None) -> list[int]:
    """The reference sample drawn from anchor ``ids``: the ``size`` (default REFERENCE_SIZE) ids with the smallest
    :func:`id_hash`, sorted."""
    n = REFERENCE_SIZE if size is None else size
    return sorted(sorted((int(i) for i in ids), key=id_hash)[:n])


@dataclass(frozen=True)
class Correction:
    """Per prompt (class-major): corrected score = (raw - shift) / scale; ``reference``: images it was computed on."""

    method: str
    shift: np.ndarray
    scale: np.ndarray
    reference: int

    def of_prompt(self, item: int) -> tuple[float, float]:
        return float(self.shift[item]), float(self.scale[item])


def reference_info(label: IndexInfo) -> IndexInfo:
    """The record of a label set's reference sample (a relative index of image items)."""
    return IndexInfo(label.name, label.tenant, REFERENCE_KIND, label.k, label.p, 0, {})  # type: ignore[arg-type]


class Corrections:
    """The reference samples of label sets and their corrections (one per facade: it owns the cache)."""

    def __init__(self, ri: RelIndexes) -> None:
        self.ri = ri
        self._cache: dict[str, tuple[tuple[Any, ...], Correction]] = {}
        # per index (key, k, p): item -> (its stored list's payload string, rep ids, rep values)
        self._decoded: dict[tuple[str, int, float], dict[int, tuple[Any, np.ndarray, np.ndarray, float]]] = {}
        self._indexed: dict[str, tuple[Any, relrep.CooIndex]] = {}  # per reference index: its reps, joined
        self._changed: dict[tuple[str, int, float], int] = {}  # per index: bumped when a decoded rep changes
        self._nil: dict[str, tuple[tuple[Any, ...], frozenset[str]]] = {}
        self._decoded_at: dict[tuple[str, int, float], tuple[Any, ...]] = {}  # per index: the state last decoded
        # per (label set, reference): the score matrix and the lists (item -> payload string) it was computed from
        self._matrix: dict[tuple[Any, ...], tuple[np.ndarray, dict[int, Any], dict[int, Any]]] = {}
        self._lock = threading.Lock()

    # -- edits (under the facade's exclusive lock) ---------------------------------------------------------------
    def draw(self, label: IndexInfo) -> IndexInfo | None:
        """(Re)draw the reference sample of ``label`` from its tenant's current anchors, or delete it when the label
        set has no correction (with the tenant copies of a shared one). None when the scope has no anchor."""
        self.delete(label)
        if label.kind != "labels" or label.correction == "none":
            return None
        engine, coll = self.ri.engine, self.ri.anchors
        ids = [r.id for r in engine.scroll(coll, filter=tenant_scope(label.tenant), with_payload=False)]
        chosen = reference_ids(ids)
        if not chosen:
            return None
        recs = {r.id: r for r in engine.retrieve(coll, chosen, with_vectors=("image",))}
        vecs = np.stack([np.asarray(recs[i].vectors["image"], np.float32) for i in chosen])
        payloads = [{"anchor": int(a), "item": j} for j, a in enumerate(chosen)]
        return self.ri.define(reference_info(label), vecs, payloads)

    def delete(self, label: IndexInfo) -> None:
        """Delete the reference sample of ``label`` (and, for a shared label set, its tenant copies), and forget
        what this object cached about the label set (a redefinition may reuse its record's state)."""
        self.forget(label.key)
        old = self.ri.info(label.name, label.tenant, REFERENCE_KIND)  # type: ignore[arg-type]
        if old is None:
            return
        if old.tenant == TENANT_SHARED:
            for c in self.ri.copies_of(old):
                self.ri.delete(c)
        self.ri.delete(old)

    def forget(self, key: str) -> None:
        """Drop the caches of the label set ``key`` (its correction, nil classes, score matrices, decoded lists)."""
        with self._lock:
            for d in (self._cache, self._nil):
                d.pop(key, None)
            for mk in [m for m in self._matrix if m[0] == key]:
                del self._matrix[mk]
            for dk in [k for k in self._decoded if k[0] == key]:
                self._decoded.pop(dk, None)
                self._decoded_at.pop(dk, None)

    # -- reads -----------------------------------------------------------------------------------------------------
    def reference(self, asif: Asif, label: IndexInfo, tenant: str) -> IndexInfo | None:
        """The reference index that answers for ``tenant`` with ``label`` (a tenant copy, repaired when needed, as
        Asif.index_info does for the label set), or None while the scope it is drawn from has no anchor. The sample
        belongs to the label set's definition: a copy of a shared label set uses the shared one's sample."""
        ri = self.ri
        origin = TENANT_SHARED if label.tenant == TENANT_SHARED or label.copied_from is not None else label.tenant
        if ri.info(label.name, tenant, REFERENCE_KIND) is None and ri.info(label.name, origin, REFERENCE_KIND) is None:  # type: ignore[arg-type]
            owner = ri.info(label.name, origin, "labels")
            if owner is None or ri.scope_count(origin) == 0:
                return None
            # defined on an empty scope: drawn now (a reader never writes: inside a read, exclusive() makes the whole
            # call run again under the exclusive lock)
            asif.exclusive(self.draw, owner)
        return asif.index_info(label.name, tenant, REFERENCE_KIND)  # type: ignore[arg-type]

    def correction(self, label: IndexInfo, ref: IndexInfo | None) -> Correction:
        """The label set's correction per prompt, computed from the stored top-k lists of its reference items and
        prompts (exact under the freshness contract), cached per state of both indexes. After an edit, only the
        reference rows and prompt columns of the score matrix whose stored list changed are computed again (each
        score is the same float64 sum, in the same order, as a full recompute)."""
        if ref is None or label.correction == "none":
            return Correction(label.correction, np.zeros(label.n_items), np.ones(label.n_items), 0)
        key = (index_state(label), index_state(ref), label.correction)
        with self._lock:
            hit = self._cache.get(label.key)
        if hit is not None and hit[0] == key:
            return hit[1]
        scores = self._scores(label, ref)  # (reference images, prompts)
        shift, scale = reference_shift_scale(scores, label.correction)
        corr = Correction(label.correction, shift, scale, scores.shape[0])
        with self._lock:
            self._cache[label.key] = (key, corr)
        return corr

    def nil_classes(self, label: IndexInfo) -> frozenset[str]:
        """The classes of ``label`` that no anchor supports (coverage support 0), cached per state of the label set:
        under a correction they abstain when they rank first (scoring.py)."""
        key = ("nil", *index_state(label))
        with self._lock:
            hit = self._nil.get(label.key)
        if hit is not None and hit[0] == key:
            return hit[1]
        from .coverage import COVERAGE_FLOOR

        self._rows(label)  # the prompts' lists, decoded where they changed (nothing read when none did)
        with self._lock:
            best = {i: v[3] for i, v in self._decoded.get((label.key, label.k, label.p), {}).items()}
        n_tpl = max(1, len(label.templates))
        # support 0 (coverage.py): no anchor of any of the class's prompt lists within the floor
        nil = frozenset(c for j, c in enumerate(label.classes)
                        if all(best.get(j * n_tpl + t, -np.inf) < COVERAGE_FLOOR for t in range(n_tpl)))
        with self._lock:
            self._nil[label.key] = (key, nil)
        return nil

    def _scores(self, label: IndexInfo, ref: IndexInfo) -> np.ndarray:
        """The reference x prompt score matrix, updated where a stored list changed since it was last computed."""
        p_rows, r_rows = self._rows(label), self._rows(ref)
        p_sig, r_sig = self._signature(label), self._signature(ref)
        mkey = (label.key, ref.key, label.k, label.p, ref.k, ref.p)
        with self._lock:
            old = self._matrix.get(mkey)
        if old is None or old[0].shape != (r_rows[3], p_rows[3]) or len(old[1]) != len(p_sig) \
                or len(old[2]) != len(r_sig):
            scores = relrep.coo_scores_indexed(*p_rows, self._index(ref)).T
        else:
            scores = old[0].copy()
            moved_p = np.array([j for j, s in p_sig.items() if old[1].get(j) != s], np.int64)
            moved_r = np.array([i for i, s in r_sig.items() if old[2].get(i) != s], np.int64)
            if moved_r.size:  # those reference rows against every prompt
                sub = _subset(*r_rows, moved_r)
                scores[moved_r, :] = relrep.coo_scores_indexed(*p_rows, relrep.coo_index(*sub)).T
            if moved_p.size:  # those prompt columns against every reference row
                scores[:, moved_p] = relrep.coo_scores_indexed(*_subset(*p_rows, moved_p), self._index(ref)).T
        with self._lock:
            self._matrix[mkey] = (scores, p_sig, r_sig)
        return scores

    def _signature(self, info: IndexInfo) -> dict[int, Any]:
        """Item -> its stored list's payload string, as last decoded (see _rows)."""
        with self._lock:
            return {i: v[0] for i, v in self._decoded.get((info.key, info.k, info.p), {}).items()}

    def _index(self, ref: IndexInfo) -> relrep.CooIndex:
        """The reference reps, indexed for the join with the prompts; rebuilt only when one of its items changed."""
        rows = self._rows(ref)
        sig = (ref.k, ref.p, self._changed.get((ref.key, ref.k, ref.p), 0))
        with self._lock:
            hit = self._indexed.get(ref.key)
        if hit is not None and hit[0] == sig:
            return hit[1]
        index = relrep.coo_index(*rows)
        with self._lock:
            self._indexed[ref.key] = (sig, index)
        return index

    def _rows(self, info: IndexInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The relative reps of an index's items as coordinates (item, anchor id, value), from their stored lists:
        what a query against the index scores (relrep.relative_rep of the first k). An item whose stored list is the
        one seen before reuses its decoded rep: when this process made every edit since the lists were last decoded
        (RelIndexes.changed_items), only the items those edits wrote are read; otherwise every item's ``topk_tag``
        digest is read, and the lists whose digest changed (an item without a digest, written before it existed, is
        read whole every time)."""
        dkey, now = (info.key, info.k, info.p), index_state(info)
        with self._lock:
            seen = self._decoded.setdefault(dkey, {})
            at = self._decoded_at.get(dkey)
        changed = self.ri.changed_items(info.key, at, now) if at is not None and len(seen) == info.n_items else None
        if changed is not None:
            items = sorted(seen)
            todo = list(self.ri.retrieve_items(info, sorted(changed)).values()) if changed else []
        else:
            recs = self.ri.items(info, with_payload=["topk_tag"])
            items = [r.id for r in recs]
            stale = [r.id for r in recs if seen.get(r.id, ("",))[0] != r.payload.get("topk_tag", r.id)]
            todo = list(self.ri.retrieve_items(info, stale).values()) if stale else []
        for r in todo:  # the key an unchanged list is recognised by
            r.payload["topk_tag"] = r.payload.get("topk_tag") or r.payload.get("topk")
        todo = [r for r in todo if seen.get(r.id, ("",))[0] != r.payload["topk_tag"]]
        if todo:
            self._decode(info, seen, todo)
        if len(seen) != len(items):  # items gone (a shorter redefinition): forget them
            with self._lock:
                for gone in set(seen) - set(items):
                    del seen[gone]
                self._changed[dkey] = self._changed.get(dkey, 0) + 1
        with self._lock:
            self._decoded_at[dkey] = now
        parts = [seen[i] for i in items]
        lens = [p[1].size for p in parts]
        rows = np.repeat(np.array(items, np.int64), lens)
        cols = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        vals_all = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
        return rows, cols, vals_all, len(items)

    def _decode(self, info: IndexInfo, seen: dict[int, Any], todo: list[Any]) -> None:
        """Decode the stored lists of ``todo`` (records with ``topk`` and ``topk_tag``) into ``seen``."""
        ids = np.full((len(todo), info.k), -1, np.int64)
        sims = np.zeros((len(todo), info.k))
        for row, r in enumerate(todo):
            i, sm = decode_topk(r.payload)
            ids[row, : min(info.k, i.size)], sims[row, : min(info.k, sm.size)] = i[: info.k], sm[: info.k]
        vals = relrep.rep_rows(ids, sims, info.p)
        # per item: its list's digest, its rep (anchor ids, values) and its best similarity (coverage's nil test)
        fresh = {r.id: (r.payload["topk_tag"], ids[row][vals[row] > 0], vals[row][vals[row] > 0],
                        float(sims[row, 0]) if ids[row, 0] >= 0 else -np.inf)
                 for row, r in enumerate(todo)}
        dkey = (info.key, info.k, info.p)
        with self._lock:
            seen.update(fresh)
            self._changed[dkey] = self._changed.get(dkey, 0) + 1

    def predict(
        self, label: IndexInfo, corr: Correction, hits: list[Hit], aggregation: str, top: int, tau: float | None,
        *, extra: Mapping[str, float] | None = None,
    ) -> Prediction:
        """classify's answer for one input from its raw prompt hits (item ids), the correction and ``extra`` (the
        prototype part of each taught class, prototypes.py)."""
        raw = np.zeros(label.n_items)
        for h in hits:
            raw[h.id] = h.score
        return aggregate_corrected(raw, label.classes, label.templates, aggregation, corr.shift, corr.scale, top, tau,
                                   extra=extra)


def _subset(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int,
            which: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The coordinates of rows ``which`` only, renumbered 0..len(which)-1 in that order."""
    pos = np.full(n, -1, np.int64)
    pos[which] = np.arange(which.size)
    keep = pos[rows] >= 0
    return pos[rows[keep]], cols[keep], vals[keep], int(which.size)


__all__ = ["REFERENCE_KIND", "REFERENCE_SIZE", "Correction", "Corrections", "id_hash",
           "reference_ids", "reference_info"]
