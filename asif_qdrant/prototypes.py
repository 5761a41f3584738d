"""Class prototypes of taught examples: the few-shot half of a tenant's model.

``asif teach`` stores each example as an anchor pair of the tenant (image + "a photo of a {class}.") with the
payload ``taught_class``. ASIF uses those pairs like any other anchor; on top of that, the mean of a class's taught
image vectors (its *prototype*, as in nearest-class-mean classification) is kept as one point of the collection
``{prefix}prototypes`` (dense vector ``image``, payload ``tenant`` and ``label``) and searched there at classify
time, with the tenant filter. A label's score is then

    score = ASIF score + weight * max(0, cos(image, prototype)) ** power

(:func:`prototype_terms`), so the prototype part is one additive term that ``explain`` shows as its own line. A
label without taught examples gets no term. The weight and power were chosen on a fixed development split of
CIFAR-10 (docs/coverage-and-teaching.md; benchmarks/eval_teach.py).

Freshness: prototypes are derived from the tenant's anchors. Every edit of a tenant that has (or adds) taught pairs
recomputes its prototypes from the taught pairs in the store (a filtered scroll of those pairs only), and stamps
them with the tenant's revision; a read that finds the stamp behind (an edit behind the plugin's back) recomputes
them first. Tenancy: a tenant's prototypes are its own taught pairs only, stored and searched under its tenant
filter, so they never reach another tenant; deleting the tenant deletes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .engines.base import CollectionSpec, DenseQuery, Engine, Filter, Match, MatchAny, PointBatch
from .meta import TENANT_SHARED, Fingerprint, Meta
from .names import anchors_collection, prototypes_collection

TAUGHT_FIELD = "taught_class"  # the payload field that marks an anchor pair as a taught example of a class


@dataclass(frozen=True)
class PrototypeMix:
    """How a label's prototype similarity enters its score: ``weight * max(0, cos) ** power``."""

    weight: float = 2.0
    power: float = 8.0


DEFAULT_MIX = PrototypeMix()


# -- pure numpy --------------------------------------------------------------------------------------------------
def class_means(vectors: np.ndarray, classes: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per class (sorted by name): the L2-normalised mean of its L2-normalised vectors, and its number of rows."""
    v = np.asarray(vectors, np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    names = sorted(set(classes))
    lab = np.asarray(list(classes), dtype=object)
    means = np.zeros((len(names), v.shape[1] if v.ndim == 2 else 0), np.float64)
    counts = np.zeros(len(names), np.int64)
    for i, c in enumerate(names):
        rows = v[lab == c]
        counts[i] = rows.shape[0]
        m = rows.mean(axis=0)
        means[i] = m / max(float(np.linalg.norm(m)), 1e-12)
    return names, means, counts


def prototype_terms(cos: np.ndarray, mix: PrototypeMix = DEFAULT_MIX) -> np.ndarray:
    """The additive prototype part of label scores from cosine similarities to the prototypes (any shape; NaN
    where a label has no prototype gives 0)."""
    c = np.nan_to_num(np.asarray(cos, np.float64), nan=0.0)
    return mix.weight * np.maximum(c, 0.0) ** mix.power


def mix_of(extra: Mapping[str, Any] | None) -> PrototypeMix:
    """The mix a label set uses: ``extra["prototype_mix"]`` (``{"weight", "power"}``, e.g. set by a tuning run
    through ``annotate_index``), else the default."""
    m = (extra or {}).get("prototype_mix")
    if not isinstance(m, Mapping):
        return DEFAULT_MIX
    return PrototypeMix(float(m.get("weight", DEFAULT_MIX.weight)), float(m.get("power", DEFAULT_MIX.power)))


def prototype_point_id(tenant: str, label: str) -> int:
    raw = json.dumps([tenant, label], separators=(",", ":")).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") >> 1


def prototypes_spec(dim: int) -> CollectionSpec:
    return CollectionSpec(dense={"image": dim}, keyword_indexes={"tenant": True, "label": False})


def _record_key(tenant: str) -> str:
    return f"prototypes:{tenant}"


# -- the store ---------------------------------------------------------------------------------------------------
class Prototypes:
    """The class prototypes of every tenant's taught examples, in one collection partitioned by tenant."""

    def __init__(self, engine: Engine, prefix: str, meta: Meta, fingerprint: Fingerprint) -> None:
        self.engine = engine
        self.meta = meta
        self.fingerprint = fingerprint
        self.collection = prototypes_collection(prefix)
        self.anchors = anchors_collection(prefix)

    def record(self, tenant: str) -> dict[str, Any] | None:
        """The tenant's prototype record: ``{"revision": r, "classes": {label: examples}}``; None if it never taught."""
        if tenant == TENANT_SHARED:
            return None
        return self.meta.get(_record_key(tenant))

    def taught_count(self, tenant: str) -> int:
        """How many taught pairs the tenant's prototypes are made of."""
        return int(sum((self.record(tenant) or {}).get("classes", {}).values()))

    def is_current(self, tenant: str) -> bool:
        """True when the tenant has no prototypes, or they were made at its current anchor revision."""
        rec = self.record(tenant)
        return rec is None or int(rec.get("revision", -1)) == self.meta.revision(tenant)

    def after_edit(self, tenant: str, payloads: Sequence[Mapping[str, Any]] | None = None) -> dict[str, int] | None:
        """Keep ``tenant``'s prototypes exact after an edit of its anchors: recomputed when it has prototypes or
        the edit adds taught pairs (``payloads`` of an add); else nothing to do (None)."""
        rec = self.record(tenant)
        added = sorted({str(p[TAUGHT_FIELD]) for p in payloads or () if p.get(TAUGHT_FIELD) is not None})
        if tenant == TENANT_SHARED or (rec is None and not added):
            return None
        known = sorted(set(rec.get("classes", {})) | set(added)) if rec is not None else added
        return self.refresh(tenant, known)

    def refresh(self, tenant: str, classes: Sequence[str] | None = None) -> dict[str, int]:
        """Recompute ``tenant``'s prototypes from its taught pairs in the store (of ``classes``; None: find every
        taught class with a scroll of the tenant's payloads). Returns examples per class."""
        if not self.engine.collection_exists(self.anchors):
            return {}
        own = Filter(must=(Match("tenant", tenant),))
        if classes is None:
            recs = self.engine.scroll(self.anchors, filter=own, with_payload=[TAUGHT_FIELD])
            classes = sorted({str(r.payload[TAUGHT_FIELD]) for r in recs if r.payload.get(TAUGHT_FIELD) is not None})
        taught: list[Any] = []
        if classes:
            flt = own.and_(MatchAny(TAUGHT_FIELD, tuple(classes)))
            taught = list(self.engine.scroll(self.anchors, filter=flt, with_payload=[TAUGHT_FIELD],
                                             with_vectors=("image",)))
        self._write(tenant, taught)
        names = sorted({str(r.payload[TAUGHT_FIELD]) for r in taught})
        counts = {c: sum(1 for r in taught if str(r.payload[TAUGHT_FIELD]) == c) for c in names}
        if counts or self.record(tenant) is not None:
            self.meta.put(_record_key(tenant), {"tenant": tenant, "revision": self.meta.revision(tenant),
                                                "classes": counts})
        return counts

    def _write(self, tenant: str, taught: Sequence[Any]) -> None:
        """Replace the tenant's prototype points by the class means of ``taught`` (records with image vectors)."""
        if not taught and not self.engine.collection_exists(self.collection):
            return
        if not self.engine.collection_exists(self.collection):
            self.engine.create_collection(self.collection, prototypes_spec(self.fingerprint.image_dim))
        labels = [str(r.payload[TAUGHT_FIELD]) for r in taught]
        names, means, counts = (class_means(np.stack([np.asarray(r.vectors["image"]) for r in taught]), labels)
                                if taught else ([], np.zeros((0, self.fingerprint.image_dim)), np.zeros(0)))
        keep = {prototype_point_id(tenant, c) for c in names}
        stale = [r.id for r in self.engine.scroll(self.collection, filter=Filter(must=(Match("tenant", tenant),)),
                                                  with_payload=False) if r.id not in keep]
        if names:
            ex = {c: sorted(r.id for r in taught if str(r.payload[TAUGHT_FIELD]) == c) for c in names}
            self.engine.upsert(self.collection, PointBatch(
                [prototype_point_id(tenant, c) for c in names], {"image": means.astype(np.float32)},
                payloads=[{"tenant": tenant, "label": c, "examples": int(n), "example_ids": ex[c][:50]}
                          for c, n in zip(names, counts, strict=True)]))
        if stale:
            self.engine.delete(self.collection, ids=stale)

    def similarities(self, tenant: str, classes: Sequence[str], vectors: np.ndarray) -> np.ndarray | None:
        """Cosine of each row of ``vectors`` to each class's prototype, ``(B, len(classes))``, NaN where a class has
        no taught example; None when the tenant has no prototype of these classes (one dense query per row)."""
        rec = self.record(tenant)
        have = [c for c in classes if c in (rec or {}).get("classes", {})]
        if not have or not self.engine.collection_exists(self.collection):
            return None
        flt = Filter(must=(Match("tenant", tenant), MatchAny("label", tuple(have))))
        qs = [DenseQuery("image", np.asarray(v, np.float32), len(have), flt, with_payload=["label"])
              for v in vectors]
        col = {c: j for j, c in enumerate(classes)}
        out = np.full((len(qs), len(classes)), np.nan)
        for i, hits in enumerate(self.engine.query_batch(self.collection, qs) if qs else []):
            for h in hits:
                out[i, col[str((h.payload or {})["label"])]] = h.score
        return out

    def delete_tenant(self, tenant: str) -> None:
        if self.engine.collection_exists(self.collection):
            self.engine.delete(self.collection, filter=Filter(must=(Match("tenant", tenant),)))
        self.meta.delete(_record_key(tenant))


__all__ = ["DEFAULT_MIX", "TAUGHT_FIELD", "PrototypeMix", "Prototypes", "class_means", "mix_of", "prototype_terms"]
