"""Step 3 of classify: from an image's relative representation to its label scores, one path for every answer.

classify, explain and the payload tags (tagging.py) all answer through a :class:`LabelModel`: what turns relative
reps into classify's predictions for one tenant and one label set. It bundles

- ``info``: the label set asked for (classes, templates, aggregation, tau);
- ``part`` and ``scope``: the label set whose prompts give the ASIF part of the scores, and the anchor scope of the
  inputs' relative reps (the tenant's own; for a tenant whose own anchors are all taught examples, the shared model's:
  taught pairs enter through their prototypes, see :func:`asif_part`);
- ``correction``: the label set's hub correction per prompt (correction.py), or None;
- the prototype part of taught classes (prototypes.py), computed from the input vectors;
- ``nil``: the classes the anchors do not support at all (coverage.py: no anchor caption close to any of their
  prompts). Under a correction, such a class *abstains* when it ranks first (the answer is "unknown", its score and
  the ranking are kept): a corrected score can lift a class the anchors know nothing about above the others, and
  ASIF should say it does not know rather than guess. A taught class (positive prototype part) is never nil.

:meth:`LabelModel.state` is what the scores depend on besides the reps: a tagging re-scores every item when it moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import relrep
from .engines.base import Hit
from .meta import TENANT_SHARED
from .prototypes import mix_of
from .zeroshot import Prediction, aggregate, aggregate_corrected

if TYPE_CHECKING:
    from .asif import Asif
    from .correction import Correction
    from .relindex import IndexInfo, RelIndexes

Terms = dict[str, float] | None


@dataclass
class LabelModel:
    """Everything that turns relative reps of images into classify's answers for one tenant and label set."""

    info: IndexInfo
    part: IndexInfo
    scope: str
    tenant: str
    correction: Correction | None = None
    nil: frozenset[str] = frozenset()
    prototypes: Callable[[np.ndarray], np.ndarray | None] | None = None  # vectors -> (B, classes) terms
    prototype_state: Any = None
    _payloads: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def taught(self) -> bool:
        """Whether the tenant has taught examples of these classes (the scores then need the input vectors)."""
        return self.prototypes is not None

    def terms(self, vectors: Any) -> list[Terms]:
        """The prototype part of each label's score for each row of ``vectors`` (None per row when untaught)."""
        n = len(vectors)
        t = self.prototypes(np.asarray(vectors, np.float32)) if self.prototypes is not None and n else None
        if t is None:
            return [None] * n
        return [dict(zip(self.info.classes, row.tolist(), strict=True)) for row in t]

    def hits(self, ri: RelIndexes, reps: Sequence[relrep.SparseRep]) -> list[list[Hit]]:
        """Every prompt hit of each rep (sparse queries on the ASIF part's label set), ranked, with its payload."""
        hits = ri.query(self.part, reps, limit=max(1, self.part.n_items), with_payload=False)
        for hs in hits:
            for h in hs:
                pl = self._payloads.get(h.id)
                if pl is None:
                    pl = self._payloads[h.id] = self.part.prompt_of(h.id)
                h.payload = pl
        return hits

    def predict(
        self, hits: Sequence[Sequence[Hit]], terms: Sequence[Terms], top: int, aggregation: str | None = None,
        tau: float | None = None,
    ) -> list[Prediction]:
        """classify's answers from each input's prompt hits and prototype terms."""
        agg = aggregation or self.info.aggregation
        t = tau if tau is not None else self.info.tau
        if self.correction is None:
            n_tpl = max(1, len(self.info.templates))
            return [aggregate(h, n_tpl, agg, top, t, extra=x) for h, x in zip(hits, terms, strict=True)]
        out = []
        for hs, x in zip(hits, terms, strict=True):
            raw = np.zeros(self.part.n_items)
            for h in hs:
                raw[h.id] = h.score
            pred = aggregate_corrected(raw, self.part.classes, self.part.templates, agg, self.correction.shift,
                                       self.correction.scale, top, t, extra=x)
            out.append(self._abstain_nil(pred, x))
        return out

    def _abstain_nil(self, pred: Prediction, terms: Terms) -> Prediction:
        """Under a correction, a first-ranked class with nil support (and no taught example) abstains."""
        if pred.label is None or pred.label not in self.nil or (terms or {}).get(pred.label, 0.0) > 0:
            return pred
        return Prediction(None, pred.score, pred.top, pred.prompt)

    def answer(
        self, ri: RelIndexes, reps: Sequence[relrep.SparseRep], vectors: Any, top: int,
        aggregation: str | None = None, tau: float | None = None,
    ) -> tuple[list[list[Hit]], list[Prediction]]:
        """Hits and predictions of relative reps (``vectors``: the images they were made of, for the prototypes)."""
        hits = self.hits(ri, reps)
        return hits, self.predict(hits, self.terms(vectors), top, aggregation, tau)

    def state(self) -> list[Any]:
        """What the scores depend on besides the inputs' reps (JSON): which label set records, which definitions,
        the correction's values, the tenant's prototypes. Equal states give equal scores for equal reps."""
        corr = None
        if self.correction is not None:
            h = hashlib.blake2b(digest_size=16)
            h.update(np.ascontiguousarray(self.correction.shift, np.float64).tobytes())
            h.update(np.ascontiguousarray(self.correction.scale, np.float64).tobytes())
            corr = [self.correction.method, h.hexdigest()]
        i, p = self.info, self.part
        return [i.key, i.definition, i.copied_from, i.tau, i.aggregation, p.key, p.definition, p.copied_from, p.k,
                p.p, self.scope, corr, sorted(self.nil), self.prototype_state,
                repr(mix_of(i.extra)) if self.taught else None]


def asif_part(asif: Asif, info: IndexInfo, tenant: str, taught: bool) -> tuple[IndexInfo, str]:
    """The label set and anchor scope that give the ASIF part of ``tenant``'s scores. With prototypes (``taught``),
    taught pairs enter through them, not as anchors: a pair captioned with the prompt itself turns ASIF into 1-NN on
    the examples (docs/coverage-and-teaching.md), so when all of the tenant's own anchors are taught pairs, the ASIF
    part is the shared model's (the same label set defined for all tenants)."""
    if not taught or tenant == TENANT_SHARED or info.copied_from is None:
        return info, tenant
    if asif.prototypes.taught_count(tenant) < asif.anchors.count(tenant):
        return info, tenant
    return asif.index_info(info.name, TENANT_SHARED, "labels"), TENANT_SHARED


def label_model(asif: Asif, info: IndexInfo, tenant: str) -> LabelModel:
    """The model that answers for ``tenant`` with the label set ``info`` (the index that answers for it, current):
    the ASIF part and scope, the correction (its reference drawn and current), the prototypes and the nil classes."""
    rec = asif.prototypes.record(tenant) if tenant != TENANT_SHARED else None
    taught = rec is not None and any(c in rec.get("classes", {}) for c in info.classes)
    part, scope = asif_part(asif, info, tenant, taught)
    model = LabelModel(info, part, scope, tenant)
    if taught:
        model.prototypes = lambda vecs: asif.prototype_terms(info, vecs, tenant)
        model.prototype_state = [rec.get("revision"), rec.get("classes")] if rec else None
    if part.correction != "none":
        cs = asif.corrections
        model.correction = cs.correction(part, cs.reference(asif, part, scope))
        model.nil = cs.nil_classes(part)
    return model


__all__ = ["LabelModel", "asif_part", "label_model"]
