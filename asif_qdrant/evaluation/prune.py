"""Fine pruning: keep the anchors that matter most for one label set, as a specialised anchor set.

The original store is never touched. The kept anchors (vectors and payloads) are copied either into another
tenant of the same store (``into_tenant``; new ids, the source id kept in the payload field ``pruned_from``) or
into a new store on the same engine under another collection prefix (``into_prefix``; same ids, same tenants,
created with the migrations and the same encoder fingerprint). The label set is then defined again on the pruned
anchors (same classes, templates, k, p and aggregation; the prompt vectors are the ones stored with the label set,
so no text encoder is needed), ready to classify. A calibrated abstention threshold (tau) is not copied: scores
change with the anchors, so calibrate again.

Ranking criteria (ties: smaller anchor id first):

- ``"label_weight"``: an anchor's total weight in the label set's relative representations, i.e. the sum over
  the prompts of its value in each prompt's stored sparse ``rel`` vector. Anchors in no prompt's top-k weigh 0.
- ``"image_contribution"``: its total contribution on a sample of unlabelled image vectors: the sum over the
  images of (image-rep value x prompt-rep value) for the prompt that decides the image's label (the best-scoring
  prompt of the best label; with max aggregation, the best prompt). Needs ``sample_vectors``. Images whose
  label is "unknown" (no shared anchor) contribute nothing.

:func:`prune_curve_vectors` measures accuracy against the number kept without copying anything: the anchor
queries of both the images and the prompts are restricted to the kept ids with a ``HasId`` filter, which is
exactly the model of a store holding only those anchors (tests/test_prune.py checks it against a copy).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import relrep
from ..anchors import COPY_BATCH, copy_points
from ..engines.base import HasId, SparseVec
from ..errors import ConfigError, InvalidInputError, NotFoundError
from ..meta import TENANT_SHARED, validate_tenant
from ..relindex import IndexInfo, tenant_scope

if TYPE_CHECKING:
    from ..asif import Asif

CRITERIA = ("label_weight", "image_contribution")
ORIGIN_FIELD = "pruned_from"  # payload field of a tenant copy: the id of the source anchor


@dataclass
class PruneReport:
    """What :func:`prune` kept and where it went."""

    labels: str
    tenant: str
    criterion: str
    keep: int
    kept: int
    source_anchors: int
    into_tenant: str | None
    into_prefix: str | None
    ids: list[int] = field(default_factory=list)  # source ids of the kept anchors, best first
    target_ids: list[int] = field(default_factory=list)  # their ids where they were copied (same order)
    scores: list[float] = field(default_factory=list)  # the criterion's value of each kept anchor
    seconds: float = 0.0

    @property
    def target(self) -> str:
        return f"tenant {self.into_tenant!r}" if self.into_tenant is not None else f"prefix {self.into_prefix!r}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target": self.target}

    def summary(self) -> str:
        zero = sum(1 for s in self.scores if s <= 0)
        extra = f" ({zero} of them with {self.criterion} 0, kept by smaller id)" if zero else ""
        return (
            f"kept {self.kept} of {self.source_anchors} anchors of tenant {self.tenant!r} by {self.criterion}{extra}; "
            f"copied to {self.target} with label set {self.labels!r} ({self.seconds:.1f} s)"
        )


# -- ranking -------------------------------------------------------------------------------------------
def scope_ids(asif: Asif, tenant: str | None = None) -> np.ndarray:
    """Sorted ids of the anchors in ``tenant``'s model (the shared ones plus its own)."""
    t = validate_tenant(tenant)
    recs = asif.engine.scroll(asif.anchors.collection, filter=tenant_scope(t), with_payload=False)
    return np.array(sorted(r.id for r in recs), np.int64)


def current_label_set(asif: Asif, labels: str, tenant: str | None = None) -> IndexInfo:
    """The label set that answers for ``tenant``, up to date with its anchors (as classify would use it)."""
    return asif.index_info(labels, validate_tenant(tenant), "labels")


def prompt_reps(asif: Asif, info: IndexInfo) -> list[relrep.SparseRep]:
    """The label set's stored relative representations (sparse ``rel`` vectors), in item-id (class-major) order."""
    recs = asif.relindexes.items(info, with_vectors=("rel",), with_payload=False)
    out = []
    for r in recs:
        sv = r.vectors.get("rel")
        if not isinstance(sv, SparseVec) or len(sv) == 0:
            out.append(relrep.SparseRep.empty())
        else:
            out.append(relrep.SparseRep(np.asarray(sv.indices, np.int64), np.asarray(sv.values, np.float64)))
    return out


def label_weights(asif: Asif, info: IndexInfo) -> dict[int, float]:
    """Per anchor id: its summed value over the label set's prompt representations (anchors absent weigh 0)."""
    reps = prompt_reps(asif, info)
    if not reps or all(r.is_empty for r in reps):
        return {}
    idx = np.concatenate([r.indices for r in reps])
    val = np.concatenate([r.values for r in reps])
    uniq, inv = np.unique(idx, return_inverse=True)
    sums = np.zeros(uniq.size, np.float64)
    np.add.at(sums, inv, val)
    return dict(zip(uniq.tolist(), sums.tolist(), strict=True))


def image_contributions(asif: Asif, info: IndexInfo, vectors: Any, tenant: str | None = None) -> dict[int, float]:
    """Per anchor id: its summed contribution to the deciding prompt's score over the sample images."""
    from .sweeps import check_image_vectors, rank_labels, sparse_scores

    t = validate_tenant(tenant)
    vecs = check_image_vectors(asif, vectors)
    p_reps = prompt_reps(asif, info)
    n_t = max(1, len(info.templates))
    totals: dict[int, float] = {}
    for start in range(0, vecs.shape[0], 512):
        img_reps = asif.relindexes.anchor_topk(vecs[start : start + 512], "image", t, info.k).reps(info.p)
        scores = sparse_scores(img_reps, p_reps)
        best = rank_labels(scores, info.classes, n_t, info.aggregation).top[:, 0]
        for b, c in enumerate(best.tolist()):
            if c < 0:
                continue  # "unknown": no prompt shares an anchor with this image
            j = c * n_t + int(np.argmax(scores[b, c * n_t : (c + 1) * n_t]))
            ids, contrib = relrep.contributions(img_reps[b], p_reps[j])
            for a, v in zip(ids.tolist(), contrib.tolist(), strict=True):
                totals[a] = totals.get(a, 0.0) + v
    return totals


def rank_anchors(
    asif: Asif,
    labels: str,
    criterion: str = "label_weight",
    *,
    sample_vectors: Any = None,
    tenant: str | None = None,
    info: IndexInfo | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every anchor of ``tenant``'s model, best first by ``criterion`` (ties: smaller id): (ids, scores)."""
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion {criterion!r} is invalid: use {' or '.join(repr(c) for c in CRITERIA)}")
    if criterion == "image_contribution" and sample_vectors is None:
        raise ConfigError(
            "criterion 'image_contribution' needs sample images: pass sample_vectors=... (CLI: --sample DIR), "
            "or use criterion 'label_weight'"
        )
    t = validate_tenant(tenant)
    info = info if info is not None else current_label_set(asif, labels, t)
    ids = scope_ids(asif, t)
    if ids.size == 0:
        raise InvalidInputError(f"tenant {t!r} has no anchors to prune: add anchor pairs first (asif ingest ...)")
    if criterion == "label_weight":
        w = label_weights(asif, info)
    else:
        w = image_contributions(asif, info, sample_vectors, t)
    scores = np.array([w.get(int(i), 0.0) for i in ids], np.float64)
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]


# -- copying -------------------------------------------------------------------------------------------
def open_prefix(asif: Asif, prefix: str, **overrides: Any) -> Asif:
    """A store under another collection prefix on the same engine, migrated, with ``asif``'s encoder fingerprint.

    It shares ``asif``'s engine: close one of the two, never both (closing either closes the engine)."""
    from ..asif import Asif, make_settings

    fp = asif.fingerprint
    if prefix == asif.settings.prefix:
        raise ConfigError(f"prefix {prefix!r} is this store's own: choose another prefix for the pruned store")
    settings = make_settings(
        asif.settings, prefix=prefix, image_encoder=fp.image_encoder, text_encoder=fp.text_encoder, **overrides
    )
    target = Asif(asif.engine, settings, migrate=False, fingerprint=fp)  # no encoder is loaded to learn the dims
    stored = target.meta.fingerprint()
    if stored is not None and stored != fp:
        raise ConfigError(
            f"prefix {prefix!r} already holds a store with encoders {stored.image_encoder}/{stored.text_encoder}, "
            f"not {fp.image_encoder}/{fp.text_encoder}: choose a new prefix"
        )
    target.migrate()
    return target


def _copy_into_prefix(asif: Asif, ids: np.ndarray, prefix: str, tenant: str) -> tuple[Asif, list[int]]:
    target = open_prefix(asif, prefix)
    have = target.count(all_tenants=True)
    if have:
        raise ConfigError(
            f"prefix {prefix!r} already holds {have} anchors: choose a new prefix for the pruned store "
            "(pruning never overwrites an anchor set)"
        )
    scope = tenant_scope(tenant).and_(HasId(tuple(int(i) for i in ids)))
    target.copy_anchors_from(asif, scope)  # copies the points and bumps the copied tenants' revisions
    target.optimize(relayout=False)  # HNSW / quantized vectors where the collection has them (Edge: only here)
    return target, [int(i) for i in ids]


def _copy_into_tenant(asif: Asif, ids: np.ndarray, into: str) -> list[int]:
    into = validate_tenant(into)
    if into == TENANT_SHARED:
        raise ConfigError(
            f"into_tenant={into!r} is the shared anchor set, which every tenant sees: name a new tenant, "
            "or use into_prefix=... for a separate store"
        )
    shared = asif.count(TENANT_SHARED)
    if shared:
        raise ConfigError(
            f"a tenant's model is the {shared} shared anchors plus its own, so tenant {into!r} would not be pruned: "
            "use into_prefix=... (a separate store on the same engine) instead"
        )
    have = asif.count(into)
    if have:
        raise ConfigError(
            f"tenant {into!r} already has {have} anchors: choose a new tenant (or delete it first: "
            f"asif tenants delete {into}); pruning never overwrites an anchor set"
        )
    reserved = {"tenant", "caption", "image_ref", "content_hash"}
    id_map: dict[int, int] = {}
    order = [int(i) for i in ids]
    for start in range(0, len(order), COPY_BATCH):
        chunk = order[start : start + COPY_BATCH]
        recs = {r.id: r for r in asif.engine.retrieve(
            asif.anchors.collection, chunk, with_payload=True, with_vectors=("image", "text"))}
        missing = [i for i in chunk if i not in recs]
        if missing:
            raise NotFoundError(f"anchor {missing[0]} disappeared while pruning: run the prune again")
        rows = [recs[i] for i in chunk]
        res = asif.add_vectors(
            np.stack([np.asarray(r.vectors["image"], np.float32) for r in rows]),
            np.stack([np.asarray(r.vectors["text"], np.float32) for r in rows]),
            captions=[r.payload.get("caption") for r in rows],
            payloads=[{**{k: v for k, v in r.payload.items() if k not in reserved}, ORIGIN_FIELD: r.id} for r in rows],
            tenant=into,
            image_refs=[r.payload.get("image_ref") for r in rows],
            content_keys=[f"{ORIGIN_FIELD}:{r.payload.get('content_hash') or r.id}".encode() for r in rows],
        )
        id_map.update(zip(chunk, res.ids, strict=True))
    return [id_map[i] for i in order]


def _define_like(target: Asif, info: IndexInfo, prompt_vectors: np.ndarray, tenant: str) -> IndexInfo:
    return target.define_labels(
        info.name, list(info.classes), list(info.templates), prompt_vectors=prompt_vectors, tenant=tenant,
        k=info.k, p=info.p, aggregation=info.aggregation, replace=True,
    )


def prune(
    asif: Asif,
    labels: str,
    keep: int,
    *,
    into_tenant: str | None = None,
    into_prefix: str | None = None,
    criterion: str = "label_weight",
    sample_vectors: Any = None,
    tenant: str | None = None,
) -> PruneReport:
    """Keep the ``keep`` anchors of ``tenant``'s model that matter most for label set ``labels`` (see the module
    docstring for the criteria) and write them, with the label set, to ``into_tenant`` or ``into_prefix``.

    >>> rep = prune(asif, "cifar10", 2000, into_prefix="cifar_")
    >>> pruned = open_prefix(asif, "cifar_")   # shares asif's engine
    >>> pruned.classify(vectors=v, labels="cifar10")
    """
    t0 = time.perf_counter()
    if (into_tenant is None) == (into_prefix is None):
        raise ConfigError("give exactly one target: into_tenant=NAME (same store) or into_prefix=PREFIX (new store)")
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
        raise ConfigError(f"keep={keep!r} is invalid: the number of anchors to keep, an integer >= 1")
    t = validate_tenant(tenant)
    info = current_label_set(asif, labels, t)
    ranked, scores = rank_anchors(asif, labels, criterion, sample_vectors=sample_vectors, tenant=t, info=info)
    n = min(int(keep), ranked.size)
    kept, kept_scores = ranked[:n], scores[:n]
    from .sweeps import label_set_prompt_vectors

    pvecs = label_set_prompt_vectors(asif, info)
    if into_prefix is not None:
        target, target_ids = _copy_into_prefix(asif, kept, into_prefix, t)
        _define_like(target, info, pvecs, t)
    else:
        assert into_tenant is not None
        target_ids = _copy_into_tenant(asif, kept, into_tenant)
        _define_like(asif, info, pvecs, validate_tenant(into_tenant))
    return PruneReport(
        labels, t, criterion, int(keep), n, int(ranked.size), into_tenant, into_prefix,
        kept.tolist(), target_ids, kept_scores.tolist(), time.perf_counter() - t0,
    )


# -- accuracy against the number kept -------------------------------------------------------------------
@dataclass
class PruneCurveRow:
    keep: int
    kept: int
    selection: str  # the criterion, or "random"
    top1: float
    top5: float
    unknown: float
    seconds: float = 0.0


@dataclass
class PruneCurve:
    labels: str
    tenant: str
    n_images: int
    total_anchors: int
    criterion: str
    k: int
    p: float
    rows: list[PruneCurveRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "rows"}, "rows": [asdict(r) for r in self.rows]}

    def table(self) -> str:
        lines = [f"label set {self.labels!r}: {self.n_images} images, {self.total_anchors} anchors, "
                 f"k={self.k} p={self.p:g}"]
        lines.append(f"{'keep':>7} {'kept':>7} {'selection':<20} {'top-1':>7} {'top-5':>7} {'unknown':>8} {'s':>6}")
        for r in self.rows:
            lines.append(f"{r.keep:>7} {r.kept:>7} {r.selection:<20} {r.top1:>7.4f} {r.top5:>7.4f} "
                         f"{r.unknown:>8.4f} {r.seconds:>6.1f}")
        return "\n".join(lines)


def random_subset(ids: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A uniform random sample of ``n`` of ``ids`` (sorted), seeded by (seed, n)."""
    rng = np.random.default_rng([int(seed), int(n)])
    return np.sort(rng.choice(np.sort(ids), size=min(int(n), ids.size), replace=False))


def restricted_ranking(
    asif: Asif, info: IndexInfo, vectors: np.ndarray, within: np.ndarray | None, tenant: str
) -> Any:
    """Labels ranked for ``vectors`` by the model of the anchors ``within`` (None: all of ``tenant``'s model):
    images' and prompts' top-k both restricted with a HasId filter (no copy). Returns sweeps.Ranked."""
    from .sweeps import OWN_TEMPLATES, GridScorer, Setting, prompt_sets

    prompts = prompt_sets(asif, info.classes, [OWN_TEMPLATES], None, info)
    scorer = GridScorer(asif, vectors, info.classes, prompts, info.k, tenant, restrict=within)
    return scorer.ranked(Setting(info.k, info.p, OWN_TEMPLATES, info.aggregation, info.correction))


def prune_curve_vectors(
    asif: Asif,
    labels: str,
    vectors: Any,
    truth: Sequence[str],
    keeps: Sequence[int] = (40000, 10000, 2000, 500),
    random_baseline: bool = True,
    seed: int = 0,
    *,
    criterion: str = "label_weight",
    sample_vectors: Any = None,
    tenant: str | None = None,
    progress: bool = False,
) -> PruneCurve:
    """Accuracy on labelled image vectors of the label set pruned to each size in ``keeps`` by ``criterion``, and
    (``random_baseline``) of a uniform random anchor set of the same size. A size above the anchor count keeps
    every anchor. Nothing is copied: anchor queries are restricted to the kept ids (see the module docstring)."""
    import sys

    from .sweeps import accuracy, check_image_vectors, truth_indices

    t = validate_tenant(tenant)
    if not keeps or any(isinstance(n, bool) or int(n) < 1 for n in keeps):
        raise ConfigError(f"keeps={list(keeps)!r} is invalid: give anchor counts >= 1, e.g. [40000, 10000, 2000, 500]")
    info = current_label_set(asif, labels, t)
    vecs = check_image_vectors(asif, vectors)
    if len(truth) != vecs.shape[0]:
        raise InvalidInputError(f"got {len(truth)} labels for {vecs.shape[0]} image vectors: pass one per vector")
    ranked, _ = rank_anchors(asif, labels, criterion, sample_vectors=sample_vectors, tenant=t, info=info)
    total = int(ranked.size)
    tidx = truth_indices(truth, info.classes)
    curve = PruneCurve(labels, t, vecs.shape[0], total, criterion, info.k, info.p)
    done: dict[tuple[int, ...] | None, tuple[float, float, float]] = {}

    def evaluate(within: np.ndarray | None) -> tuple[float, float, float]:
        key = None if within is None else tuple(within.tolist())
        if key not in done:
            done[key] = accuracy(restricted_ranking(asif, info, vecs, within, t), tidx)
        return done[key]

    for keep in sorted({int(n) for n in keeps}, reverse=True):
        n = min(keep, total)
        selections: list[tuple[str, np.ndarray | None]] = [(criterion, None if n == total else np.sort(ranked[:n]))]
        if random_baseline:
            selections.append(("random", None if n == total else random_subset(ranked, n, seed)))
        for name, within in selections:
            t0 = time.perf_counter()
            top1, top5, unk = evaluate(within)
            curve.rows.append(PruneCurveRow(keep, n, name, top1, top5, unk, time.perf_counter() - t0))
            if progress:
                print(f"  keep {n:>6} {name:<18} top-1 {top1:.4f}", file=sys.stderr, flush=True)
    return curve


# -- CLI helper ------------------------------------------------------------------------------------------
def sample_image_vectors(asif: Asif, folder: str | Path, limit: int | None = 1000, seed: int = 0) -> np.ndarray:
    """Embeddings of a deterministic sample of ``limit`` images found under ``folder`` (any layout), cached."""
    from ..readers import IMAGE_SUFFIXES, images_under
    from .evaluate import cached_image_vectors

    root = Path(folder)
    if not root.is_dir():
        raise NotFoundError(f"sample folder {root} does not exist: give a folder of unlabelled images")
    paths = images_under(root)
    if not paths:
        raise InvalidInputError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if limit is not None and len(paths) > limit:
        pick = np.random.default_rng(seed).choice(len(paths), size=int(limit), replace=False)
        paths = [paths[i] for i in sorted(pick.tolist())]
    return cached_image_vectors(asif, paths)


__all__ = [
    "CRITERIA", "PruneCurve", "PruneCurveRow", "PruneReport", "copy_points", "image_contributions", "label_weights",
    "open_prefix", "prune", "prune_curve_vectors", "random_subset", "rank_anchors", "sample_image_vectors",
    "scope_ids",
]
