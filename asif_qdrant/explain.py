"""Why did the model say that? The anchor pairs behind one image's label scores.

An ASIF score is a sparse dot product: ``score = sum_a q[a] * r[a]`` over the anchors ``a`` that the image's
relative representation ``q`` shares with the prompt's ``r``. Each term is one anchor pair's contribution, so
the contributions of all shared anchors add up to the score. This module follows classify's data flow exactly:
(1) the image's top-k anchors (dense query with the tenant scope), (2) its relative rep, (3) the sparse query
on the label set's relative index (ranking and best prompt, as classify computes them); then it reads the best
prompt's top-k from its item in the relative index and splits the score per anchor (relrep.contributions).

Tenancy: the image's top-k is restricted to the tenant's scope (its own anchors plus the shared ones), and
shared anchors are a subset of it, so an explanation never names another tenant's anchor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import relrep
from .anchors import RESERVED_PAYLOAD_KEYS
from .coverage import label_coverage
from .engines.base import Hit
from .errors import ConfigError, InvalidInputError
from .meta import validate_tenant
from .relindex import decode_topk
from .validate import check_count, check_top
from .zeroshot import LabelScore

if TYPE_CHECKING:
    from .asif import Asif
    from .correction import Correction
    from .relindex import IndexInfo

RANKING_SHOWN = 5


@dataclass
class AnchorContribution:
    """One anchor pair's share of a label score.

    ``contribution = image_weight * prompt_weight``: the image's and the prompt's relative-rep values at this
    anchor. ``image_similarity`` is the cosine of the input image to the anchor's image; ``prompt_similarity``
    the cosine of the best prompt to the anchor's caption (None only with mean aggregation, when the anchor is
    outside the best prompt's top-k; ``prompt_weight`` is then the mean of the label's prompt weights).
    """

    id: int
    caption: str | None
    image_ref: str | None
    tenant: str | None
    payload: dict[str, Any]
    image_similarity: float
    prompt_similarity: float | None
    image_weight: float
    prompt_weight: float
    contribution: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "caption": self.caption, "image_ref": self.image_ref, "tenant": self.tenant,
            "payload": dict(self.payload), "image_similarity": self.image_similarity,
            "prompt_similarity": self.prompt_similarity, "image_weight": self.image_weight,
            "prompt_weight": self.prompt_weight, "contribution": self.contribution,
        }


@dataclass
class LabelExplanation:
    """One label's score split over the anchors that the image shares with its prompt(s).

    ``score`` is the exact (float64) sum of every shared anchor's contribution; ``index_score`` is the score
    the relative index returned (what classify reports; float32 values, so equal within ~1e-6).
    ``contributions`` lists the largest ``top`` of them, and ``rest`` is the sum of the others.
    """

    label: str
    score: float
    index_score: float
    prompt: str | None
    shared_anchors: int
    contributions: list[AnchorContribution] = field(default_factory=list)
    rest: float = 0.0
    correction: float = 0.0  # the label set's score correction (correction.py): score = contributions + rest + this
    prototype: float = 0.0  # the prototype part of the score (taught examples; prototypes.py), its own line
    prototype_similarity: float | None = None  # cosine of the image to the label's prototype
    support: int | None = None  # the label's coverage (coverage.py): support figure, verdict, and the fix
    verdict: str | None = None
    fix: str | None = None

    def add_prototype(self, term: float, similarity: float | None) -> None:
        """Add the prototype part: the contributions, ``rest`` and ``prototype`` still add up to ``score``."""
        self.prototype, self.prototype_similarity = float(term), similarity
        self.score += self.prototype
        self.index_score += self.prototype

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "score": self.score, "index_score": self.index_score, "prompt": self.prompt,
            "shared_anchors": self.shared_anchors, "rest": self.rest, "correction": self.correction,
            "prototype": self.prototype,
            "prototype_similarity": self.prototype_similarity, "support": self.support, "verdict": self.verdict,
            "fix": self.fix, "contributions": [c.as_dict() for c in self.contributions],
        }


DOMINANCE_SHARE = 0.5


@dataclass
class Dominance:
    """One anchor pair that carries most (at least ``DOMINANCE_SHARE``) of every label's score, through each
    label's best prompt: the labels are then told apart by little else, typically when a tenant taught one class
    only and its close example pair outweighs everything else for every prompt."""

    id: int
    caption: str | None
    tenant: str | None
    min_share: float
    max_share: float
    labels: int

    def message(self) -> str:
        return (f"anchor #{self.id} ({self.caption!r}, tenant {self.tenant}) carries {100 * self.min_share:.0f}-"
                f"{100 * self.max_share:.0f}% of the score of every one of the {self.labels} labels: the labels are "
                "told apart by little else. Teach every class (a few examples each), or delete the pair")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "caption": self.caption, "tenant": self.tenant, "min_share": self.min_share,
                "max_share": self.max_share, "labels": self.labels}


@dataclass
class Explanation:
    """The explanation of one input for a label set.

    ``predicted`` is classify's answer (None: unknown, or best score below tau). ``explained`` holds the
    explained labels, first the one asked for (or the top-ranked one), then the next ones of the ranking.
    ``label``, ``score``, ``prompt`` and ``contributions`` are those of the first explained label; with no
    shared anchor at all (the "unknown" case) the label is None, the score 0 and there are no contributions.
    ``dominant``: set when one anchor pair carries most of every label's score (see :class:`Dominance`).
    ``image_roots``: the folders that ingest recorded for the tenant's sources, which relative anchor
    ``image_ref``s are relative to (the report looks pictures up there).
    """

    labels: str
    tenant: str
    k: int
    p: float
    aggregation: str
    tau: float | None
    predicted: str | None
    ranking: list[LabelScore]
    explained: list[LabelExplanation]
    image: str | None = None
    query_anchors: int = 0
    image_roots: list[str] = field(default_factory=list)
    dominant: Dominance | None = None
    correction: str = "none"
    reference: int = 0  # reference anchor images the correction was computed on

    @property
    def main(self) -> LabelExplanation | None:
        return self.explained[0] if self.explained else None

    @property
    def label(self) -> str | None:
        return self.main.label if self.main else None

    @property
    def score(self) -> float:
        return self.main.score if self.main else 0.0

    @property
    def prompt(self) -> str | None:
        return self.main.prompt if self.main else None

    @property
    def contributions(self) -> list[AnchorContribution]:
        return self.main.contributions if self.main else []

    @property
    def unknown(self) -> bool:
        """True when no label shares an anchor with the input."""
        return not self.ranking

    @property
    def abstained(self) -> bool:
        """True when labels share anchors with the input but the best score is below tau."""
        return bool(self.ranking) and self.predicted is None

    def as_dict(self) -> dict[str, Any]:
        main = self.main
        return {
            "labels": self.labels, "tenant": self.tenant, "k": self.k, "p": self.p,
            "aggregation": self.aggregation, "tau": self.tau, "image": self.image,
            "query_anchors": self.query_anchors, "predicted": self.predicted, "image_roots": list(self.image_roots),
            "label": self.label, "score": self.score, "prompt": self.prompt,
            "shared_anchors": main.shared_anchors if main else 0, "rest": main.rest if main else 0.0,
            "contributions": [c.as_dict() for c in self.contributions],
            "ranking": [vars(r) for r in self.ranking],
            "explained": [e.as_dict() for e in self.explained],
            "dominant": self.dominant.as_dict() if self.dominant else None,
            "correction": self.correction, "reference": self.reference,
            "correction_term": main.correction if main else 0.0,
        }

    def text(self) -> str:
        """A few lines for a terminal."""
        head = f"{self.image}: " if self.image else ""
        if self.unknown and self.main is None:
            return f"{head}unknown: no label of {self.labels!r} shares an anchor with this image"
        lines = []
        if self.abstained and self.tau is not None and self.ranking[0].score < self.tau:
            lines.append(f"{head}unknown (best score {self.ranking[0].score:.4f} is below tau={self.tau:g})")
        elif self.abstained:
            lines.append(f"{head}unknown (the best label, {self.ranking[0].label!r}, has no support in the anchors: "
                         "no anchor caption is close to its prompts)")
        else:
            lines.append(f"{head}predicted {self.predicted or 'unknown'}")
        for ex in self.explained:
            cov = f" [{ex.verdict}, support {ex.support}]" if ex.verdict is not None else ""
            lines.append(f"{ex.label}: score {ex.score:.4f} via {ex.prompt!r} ({ex.shared_anchors} shared anchors)"
                         + cov)
            for c in ex.contributions:
                lines.append(
                    f"  {c.contribution:.4f}  #{c.id}  img~{c.image_similarity:.3f}  "
                    + (f"txt~{c.prompt_similarity:.3f}  " if c.prompt_similarity is not None else "")
                    + f"{c.caption or ''}"
                )
            if ex.rest > 0:
                lines.append(f"  {ex.rest:.4f}  (the other {ex.shared_anchors - len(ex.contributions)} anchors)")
            if self.correction != "none":
                lines.append(f"  {ex.correction:+.4f}  (correction {self.correction!r}: the prompt's score over "
                             f"{self.reference} reference anchor images)")
            if ex.prototype > 0:
                lines.append(f"  {ex.prototype:.4f}  prototype of the taught examples of {ex.label!r} "
                             f"(cos {ex.prototype_similarity:.3f})")
            if ex.fix is not None:
                lines.append(f"  warning: {ex.label!r} is {ex.verdict} by the anchors: {ex.fix}")
        if self.dominant is not None:
            lines.append(f"warning: {self.dominant.message()}")
        return "\n".join(lines)


def _label_hits(hits: Sequence[Hit], label: str) -> list[Hit]:
    return [h for h in hits if str((h.payload or {}).get("label")) == label]


def prompt_rep(info: IndexInfo, payload: Mapping[str, Any]) -> relrep.SparseRep:
    """A label-set item's relative rep, from its stored top-k (the first k of it)."""
    ids_pl, sims_pl = decode_topk(payload)
    return relrep.relative_rep(ids_pl[: info.k], sims_pl[: info.k], info.p)


def _used_prompts(info: IndexInfo, mine: Sequence[Hit]) -> tuple[Hit, list[Hit], float]:
    """The best prompt of one label (the first hit with the largest score: aggregate's rule), the prompts whose
    terms make the label's score (the best one for max, all for mean) and that score."""
    best = max(mine, key=lambda h: h.score)
    if info.aggregation == "mean":
        return best, list(mine), sum(h.score for h in mine) / max(1, len(info.templates))
    return best, [best], best.score


def anchor_totals(
    info: IndexInfo, mine: Sequence[Hit], q_rep: relrep.SparseRep, prompt_reps: Mapping[int, relrep.SparseRep]
) -> list[tuple[int, float]]:
    """One label's score split per anchor, largest first (equal ones by smaller id): ``mine`` are the label's prompt
    hits, ``prompt_reps`` the reps of (at least) the prompts that make its score (the uncorrected case of
    label_totals)."""
    _, used, _ = _used_prompts(info, mine)
    weight = 1.0 / max(1, len(info.templates)) if info.aggregation == "mean" else 1.0
    totals: dict[int, float] = {}
    for h in used:
        ids, contrib = relrep.contributions(q_rep, prompt_reps[h.id])
        for a, c in zip(ids.tolist(), contrib.tolist(), strict=True):
            totals[a] = totals.get(a, 0.0) + weight * c
    return sorted(totals.items(), key=lambda t: (-t[1], t[0]))


def label_totals(
    info: IndexInfo, label: str, hits: Sequence[Hit], q_rep: relrep.SparseRep,
    prompt_reps: Callable[[list[int]], Mapping[int, relrep.SparseRep]], corr: Correction | None = None,
) -> tuple[list[tuple[int, float]], int, float, float] | None:
    """One label's score split per anchor (largest first, equal ones by smaller id), its best prompt item, the score
    classify reports for it and the correction term (score = sum of the totals + correction); None when the label
    shares no anchor with the input. ``prompt_reps(items)``: the reps of those prompt items. Shared by explain and
    the payload tags (tagging.py), so that a tag's anchors are the pairs its explanation shows first."""
    if corr is not None:
        if not hits:  # unknown: nothing shared, nothing corrected (classify answers no label)
            return None
        weights, best_id, index_score, correction = corrected_weights(info, label, hits, corr)
        reps = prompt_reps(list(weights))
        totals: dict[int, float] = {}
        for item, weight in weights.items():
            ids, contrib = relrep.contributions(q_rep, reps[item])
            for a, c in zip(ids.tolist(), contrib.tolist(), strict=True):
                totals[a] = totals.get(a, 0.0) + weight * c
        return sorted(totals.items(), key=lambda t: (-t[1], t[0])), best_id, index_score, correction
    mine = _label_hits(hits, label)
    if not mine:
        return None
    best, used, index_score = _used_prompts(info, mine)
    return anchor_totals(info, mine, q_rep, prompt_reps([h.id for h in used])), best.id, index_score, 0.0


def _explain_label(
    asif: Asif,
    info: IndexInfo,
    label: str,
    hits: Sequence[Hit],
    q_rep: relrep.SparseRep,
    q_sims: dict[int, float],
    top: int,
    corr: Correction | None = None,
) -> LabelExplanation:
    def reps(items: list[int]) -> dict[int, relrep.SparseRep]:
        got = asif.relindexes.retrieve_items(info, items)
        return {i: prompt_rep(info, got[i].payload) for i in items}

    found = label_totals(info, label, hits, q_rep, reps, corr)
    if found is None:
        return LabelExplanation(label, 0.0, 0.0, None, 0)
    ranked, best_id, index_score, correction = found
    recs = asif.relindexes.retrieve_items(info, [best_id])
    best_pl = recs[best_id].payload
    best_ids, best_sims = decode_topk(best_pl)
    prompt_sims = dict(zip(best_ids.tolist(), best_sims.tolist(), strict=True))
    score = float(sum(c for _, c in ranked)) + correction
    shown = ranked[:top]
    anchors = {r.id: r.payload for r in asif.engine.retrieve(asif.anchors.collection, [a for a, _ in shown])}
    q_weights = dict(zip(q_rep.indices.tolist(), q_rep.values.tolist(), strict=True))
    out = []
    for a, c in shown:
        pl = anchors.get(a, {})
        qw = q_weights[a]
        out.append(AnchorContribution(
            id=a,
            caption=pl.get("caption"),
            image_ref=pl.get("image_ref"),
            tenant=pl.get("tenant"),
            payload={k: v for k, v in pl.items() if k not in RESERVED_PAYLOAD_KEYS},
            image_similarity=float(q_sims[a]),
            prompt_similarity=float(prompt_sims[a]) if a in prompt_sims else None,
            image_weight=qw,
            prompt_weight=c / qw,
            contribution=c,
        ))
    rest = float(sum(c for _, c in ranked[top:]))
    prompt = best_pl.get("prompt") or info.prompt_of(best_id)["prompt"]
    return LabelExplanation(label, score, float(index_score), prompt, len(ranked), out, rest, correction)


def corrected_weights(
    info: IndexInfo, label: str, hits: Sequence[Hit], corr: Correction
) -> tuple[dict[int, float], int, float, float]:
    """With a correction: the weight of each prompt item of ``label`` in its score, the best prompt item, the
    reported (corrected) score and the correction term, so that score = sum(weight * raw) + correction."""
    n_tpl = max(1, len(info.templates))
    items = [info.classes.index(label) * n_tpl + t for t in range(n_tpl)]
    raw = {h.id: h.score for h in hits}
    corrected = [(raw.get(i, 0.0) - corr.shift[i]) / corr.scale[i] for i in items]
    best = items[int(np.argmax(corrected))]
    if info.aggregation == "mean":
        used = {i: 1.0 / (n_tpl * float(corr.scale[i])) for i in items}
        score = float(np.mean(corrected))
    else:
        used = {best: 1.0 / float(corr.scale[best])}
        score = float(max(corrected))
    return used, best, score, -float(sum(w * corr.shift[i] for i, w in used.items()))


def _add_prototypes_and_coverage(
    asif: Asif, info: IndexInfo, vecs: Any, tenant: str, explained: list[LabelExplanation], extra: dict[str, float]
) -> None:
    """Each explained label's prototype line (as classify adds it) and its coverage verdict."""
    cos = asif.prototypes.similarities(tenant, info.classes, vecs) if extra else None
    cov = label_coverage(asif.relindexes, info)
    for ex in explained:
        term = extra.get(ex.label, 0.0)
        if term > 0 and cos is not None:
            ex.add_prototype(term, float(cos[0, info.classes.index(ex.label)]))
        c = cov.of(ex.label)
        if c is not None:
            ex.support, ex.verdict, ex.fix = c.support, c.verdict, c.fix


def dominance(asif: Asif, info: IndexInfo, hits: Sequence[Hit], q_rep: relrep.SparseRep) -> Dominance | None:
    """The anchor that carries at least DOMINANCE_SHARE of every label's score (by each label's best prompt), if
    one does and at least two labels score above 0; else None."""
    best: dict[str, Hit] = {}
    for h in hits:
        lb = str((h.payload or {}).get("label"))
        if h.score > 0 and (lb not in best or h.score > best[lb].score):
            best[lb] = h
    if len(best) < 2:
        return None
    recs = list(asif.relindexes.retrieve_items(info, [h.id for h in best.values()]).values())
    if len(recs) != len(best):
        return None
    top_ids, shares = set(), []
    for r in recs:
        ids_pl, sims_pl = decode_topk(r.payload)
        ids, contrib = relrep.contributions(q_rep, relrep.relative_rep(ids_pl[: info.k], sims_pl[: info.k], info.p))
        total = float(contrib.sum())
        if total <= 0:
            return None
        i = int(contrib.argmax())
        top_ids.add(int(ids[i]))
        shares.append(float(contrib[i]) / total)
    if len(top_ids) != 1 or min(shares) < DOMINANCE_SHARE:
        return None
    a = top_ids.pop()
    recs_a = asif.engine.retrieve(asif.anchors.collection, [a])
    pl = recs_a[0].payload if recs_a else {}
    return Dominance(a, pl.get("caption"), pl.get("tenant"), min(shares), max(shares), len(best))


def explain(
    asif: Asif,
    image: Any = None,
    vector: Any = None,
    labels: str = "",
    label: str | None = None,
    top: int = 10,
    tenant: str | None = None,
    *,
    n_labels: int = 1,
) -> Explanation:
    """Explain one input's classification with the label set ``labels``: its score, best prompt, and the
    ``top`` anchor pairs that contribute most. Explains ``label`` when given (it must be a class of the label
    set), else the top-ranked label; ``n_labels`` > 1 also explains the next labels of the ranking.

    ``image``: a path or PIL image (encoded with the store's image encoder); or ``vector``: one image vector.
    """
    tenant = validate_tenant(tenant)
    top = check_top(top, asif.settings.max_top, "anchor")
    n_labels = check_count(n_labels, "n_labels", "labels to explain")
    if image is not None and isinstance(image, (list, tuple)):
        raise InvalidInputError(f"explain takes one image; got {len(image)}: call it once per image")
    info = asif.index_info(labels, tenant, "labels")
    if label is not None and label not in info.classes:
        shown = ", ".join(info.classes[:10]) + (", ..." if len(info.classes) > 10 else "")
        raise ConfigError(f"label {label!r} is not a class of label set {labels!r} ({shown}): pick one of them")
    vecs = asif.input_vectors("image", None if image is None else [image], vector, "image")
    if vecs.shape[0] != 1:
        raise InvalidInputError(f"explain takes one image vector; got {vecs.shape[0]} rows: pass a single row")
    ri = asif.relindexes
    model = asif.label_model(info, tenant)  # classify's step 3: the ASIF part, scope, correction, prototypes
    part, corr = model.part, model.correction
    topk = ri.anchor_topk(vecs, "image", model.scope, part.k)
    q_ids, q_sim_arr = topk.row(0)
    q_rep = topk.reps(part.p)[0]
    hits = model.hits(ri, [q_rep])[0]
    terms = model.terms(vecs)
    extra = terms[0] or {}
    pred = model.predict([hits], terms, max(1, len(info.classes)))[0]
    q_sims = dict(zip(q_ids.tolist(), q_sim_arr.tolist(), strict=True))
    order = [s.label for s in pred.top]
    if label is not None:
        order = [label] + [lb for lb in order if lb != label]
    explained = [_explain_label(asif, part, lb, hits, q_rep, q_sims, top, corr) for lb in order[:n_labels]]
    _add_prototypes_and_coverage(asif, info, vecs, tenant, explained, extra)
    return Explanation(
        labels=labels, tenant=tenant, k=info.k, p=info.p, aggregation=info.aggregation, tau=info.tau,
        predicted=pred.label, ranking=pred.top[: max(RANKING_SHOWN, n_labels)], explained=explained,
        image=str(image) if isinstance(image, (str, Path)) else None, query_anchors=len(q_rep),
        image_roots=[str(r) for r in asif.image_roots(tenant)], dominant=dominance(asif, part, hits, q_rep),
        correction=part.correction, reference=corr.reference if corr is not None else 0,
    )


__all__ = ["AnchorContribution", "Dominance", "Explanation", "LabelExplanation", "anchor_totals", "dominance",
           "explain", "prompt_rep"]
