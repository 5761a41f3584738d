"""Sweeps over k, p, templates and aggregation, and accuracy against the number of anchors.

Every setting is scored as ``define_labels(k, p, templates, aggregation)`` + ``classify`` would score it (the tests
check this), but without building one label set per setting:

- the anchors' top-k of the images and of the prompts is queried from Qdrant once, at the largest k, and cut for
  the smaller ones (with the tie rule, a top-k is a prefix of every larger top-k);
- relative reps come from :mod:`relrep` (the code that classify uses) and image-prompt scores are their sparse
  dot products, computed here in numpy (float64; Qdrant sums in float32, so scores agree to ~1e-7);
- labels are ranked as :func:`zeroshot.aggregate` ranks them (max or mean over a class's templates, ties by name,
  "unknown" when no prompt shares an anchor with the image). Sweeps report accuracy without abstention (no tau).

The anchor curve restricts the anchors to nested random subsets with a ``HasId`` filter on the same dense
queries: the store is never copied.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import relrep
from ..anchors import as_matrix
from ..engines.base import Filter, HasId
from ..errors import ConfigError, InvalidInputError
from ..extras import require
from ..meta import validate_tenant
from ..names import Modality
from ..relindex import IndexInfo, TopK, tenant_scope
from ..relrep import l2_normalize
from ..validate import check_p
from ..zeroshot import AGGREGATIONS, CORRECTIONS, TEMPLATE_SETS, reference_shift_scale, resolve_templates
from .evaluate import SweepRow, labelled_vectors, read_labelled

if TYPE_CHECKING:
    from ..asif import Asif

SWEEP_KEYS = ("k", "p", "templates", "aggregation", "correction")
OWN_TEMPLATES = "labelset"  # the label set's own templates, when they are not a built-in set
TOP = 5
_BLOCK_BYTES = 32 << 20  # memory of one gathered block in sparse_scores


# -- settings and their parsing ------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One point of a sweep: how a label set would be defined and aggregated."""

    k: int
    p: float
    templates: str
    aggregation: str
    correction: str = "none"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_sweep(specs: Iterable[str]) -> dict[str, list[Any]]:
    """``["k=200,800", "p=1,4,8"]`` -> ``{"k": [200, 800], "p": [1.0, 4.0, 8.0]}`` (validated)."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().lower()
        if not sep or not values.strip():
            raise ConfigError(f"sweep {spec!r} is malformed: write KEY=V1,V2,... for example k=200,800,3000")
        if key in out:
            raise ConfigError(f"sweep key {key!r} is given twice: give each key once, e.g. {key}=a,b,c")
        out[key] = [v.strip() for v in values.split(",") if v.strip()]
    return check_sweeps(out)


def check_sweeps(sweeps: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Validate the axes of a sweep: keys among k, p, templates, aggregation; each value valid; none empty."""
    out: dict[str, list[Any]] = {}
    for key, values in sweeps.items():
        if key not in SWEEP_KEYS:
            raise ConfigError(f"sweep key {key!r} is unknown: use {', '.join(SWEEP_KEYS)} (e.g. --sweep k=200,800)")
        vals = list(values)
        if not vals:
            raise ConfigError(f"sweep {key} has no values: give at least one, e.g. {key}=...")
        if key == "k":
            out[key] = [_int_k(v) for v in vals]
        elif key == "p":
            out[key] = [_float_p(v) for v in vals]
        elif key == "aggregation":
            bad = [v for v in vals if v not in AGGREGATIONS]
            if bad:
                raise ConfigError(f"aggregation {bad[0]!r} is invalid: use {' or '.join(AGGREGATIONS)}")
            out[key] = [str(v) for v in vals]
        elif key == "correction":
            bad = [v for v in vals if v not in CORRECTIONS]
            if bad:
                raise ConfigError(f"correction {bad[0]!r} is invalid: use {', '.join(CORRECTIONS)}")
            out[key] = [str(v) for v in vals]
        else:
            for v in vals:
                if v != OWN_TEMPLATES:
                    resolve_templates(str(v))  # raises ConfigError naming the bad set
            out[key] = [str(v) for v in vals]
        out[key] = list(dict.fromkeys(out[key]))
    return out


def _int_k(v: Any) -> int:
    try:
        k = int(v)
        if k != float(v) or k < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"k={v!r} is invalid: k is a number of anchors, an integer >= 1 (e.g. k=200,800)") from None
    return k


def _float_p(v: Any) -> float:
    try:
        p = float(v)
    except (TypeError, ValueError):
        p = math.nan
    if not math.isfinite(p) or p <= 0:
        raise ConfigError(f"p={v!r} is invalid: p is the exponent on similarities, a number > 0 (e.g. p=1,4,8)")
    return check_p(p)


def template_set_name(templates: Sequence[str]) -> str:
    """'photo' / 'plain' when ``templates`` is a built-in set, else 'labelset'."""
    for name, tpl in TEMPLATE_SETS.items():
        if list(templates) == list(tpl):
            return name
    return OWN_TEMPLATES


def grid(axes: Mapping[str, Sequence[Any]], defaults: Setting | None = None) -> list[Setting]:
    """Every combination of the axes (templates, then k, then p, then aggregation, then correction); a key not in
    ``axes`` keeps its value in ``defaults`` (correction: 'none' without defaults)."""
    a = check_sweeps(axes)
    for key in SWEEP_KEYS:
        if key not in a:
            if defaults is None and key != "correction":
                raise ConfigError(f"sweep has no values for {key!r}: give {key}=... or a label set's defaults")
            a[key] = [getattr(defaults, key) if defaults is not None else "none"]
    return [Setting(k, p, t, g, c) for t in a["templates"] for k in a["k"] for p in a["p"] for g in a["aggregation"]
            for c in a["correction"]]


# -- step (1) with a restricted anchor set ---------------------------------------------------------
def anchor_ids(asif: Asif, tenant: str | None = None) -> np.ndarray:
    """The ids of the anchors in ``tenant``'s model (shared + own), sorted."""
    t = validate_tenant(tenant)
    recs = asif.engine.scroll(asif.anchors.collection, filter=tenant_scope(t), with_payload=False)
    return np.array(sorted(r.id for r in recs), np.int64)


def anchor_topk_within(
    asif: Asif,
    vectors: np.ndarray,
    modality: Modality,
    tenant: str,
    k: int,
    *,
    restrict: Sequence[int] | np.ndarray | None = None,
    exclude: Sequence[int] | np.ndarray | None = None,
) -> TopK:
    """Exact top-k anchors of each row within the tenant's scope, optionally only among ``restrict`` ids and never
    among ``exclude`` ids (``HasId`` filters on the dense queries), with RelIndexes.anchor_topk's tie rule."""
    must = (HasId(tuple(int(i) for i in restrict)),) if restrict is not None else ()
    must_not = (HasId(tuple(int(i) for i in exclude)),) if exclude is not None and len(exclude) else ()
    within = Filter(must=must, must_not=must_not) if must or must_not else None
    return asif.relindexes.anchor_topk(vectors, modality, tenant, k, within)


# -- step (3) in numpy ------------------------------------------------------------------------------
def _padded(reps: Sequence[relrep.SparseRep]) -> tuple[np.ndarray, np.ndarray]:
    width = max([len(r) for r in reps] + [1])
    ids = np.full((len(reps), width), -1, np.int64)
    vals = np.zeros((len(reps), width), np.float64)
    for i, r in enumerate(reps):
        ids[i, : len(r)] = r.indices
        vals[i, : len(r)] = r.values
    return ids, vals


def sparse_scores(queries: Sequence[relrep.SparseRep], items: Sequence[relrep.SparseRep]) -> np.ndarray:
    """``(len(queries), len(items))`` sparse dot products (float64): ``out[i, j] == relrep.sparse_dot(q_i, it_j)``.

    Items become a dense matrix over the anchor ids they use (blocks of items, to bound memory); each query
    gathers the rows of its own ids: cost ~ nnz(queries) x n_items, not n_anchors.
    """
    out = np.zeros((len(queries), len(items)), np.float64)
    if not len(queries) or not len(items):
        return out
    cols = np.unique(np.concatenate([r.indices for r in items]))
    if cols.size == 0:
        return out
    qids, qvals = _padded(queries)
    pos = np.minimum(np.searchsorted(cols, qids), cols.size - 1)
    pos = np.where(cols[pos] == qids, pos, cols.size)  # ids no item uses read the all-zero sentinel row
    block = max(1, min(len(items), (2 * _BLOCK_BYTES) // (8 * (cols.size + 1))))
    for j0 in range(0, len(items), block):
        its = items[j0 : j0 + block]
        mat = np.zeros((cols.size + 1, len(its)), np.float64)
        lens = [len(r) for r in its]
        if sum(lens):
            rows = np.searchsorted(cols, np.concatenate([r.indices for r in its]))
            mat[rows, np.repeat(np.arange(len(its)), lens)] = np.concatenate([r.values for r in its])
        step = max(1, _BLOCK_BYTES // (8 * qids.shape[1] * len(its)))
        for s0 in range(0, len(queries), step):
            g = mat[pos[s0 : s0 + step]]  # (c, width, block)
            out[s0 : s0 + step, j0 : j0 + len(its)] = np.matmul(qvals[s0 : s0 + step, None, :], g)[:, 0, :]
    return out


@dataclass
class Ranked:
    """Per image: up to ``TOP`` class indices (best first; -1 = none) and their scores."""

    top: np.ndarray  # (B, TOP) int64
    scores: np.ndarray  # (B, TOP) float64
    # (B,) bool: the first class abstains (a nil-support class under a correction, as scoring.LabelModel rules): the
    # ranking stays, the answer is "unknown"
    abstain: np.ndarray | None = None

    def labels(self, classes: Sequence[str]) -> list[list[str | None]]:
        """Ranked label names per image, ``[None]`` for "unknown" (as score_predictions reads them)."""
        out: list[list[str | None]] = []
        for row in self.top:
            names: list[str | None] = [classes[c] for c in row if c >= 0]
            out.append(names or [None])
        return out


def rank_labels(
    scores: np.ndarray, classes: Sequence[str], n_templates: int, aggregation: str,
    shift: np.ndarray | None = None, scale: np.ndarray | None = None, nil: np.ndarray | None = None,
) -> Ranked:
    """Labels ranked from class-major prompt scores ``(B, C * T)``, as zeroshot.aggregate ranks them (with a
    correction ``shift`` / ``scale`` per prompt: as zeroshot.aggregate_corrected ranks them)."""
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"aggregation {aggregation!r} is invalid: use 'max' or 'mean'")
    b, c = scores.shape[0], len(classes)
    s = np.where(scores > 0, scores, 0.0).reshape(b, c, n_templates)
    if shift is not None and scale is not None:
        known = np.asarray((s > 0).any(axis=(1, 2)), bool)
        cs = ((s.reshape(b, -1) - shift) / scale).reshape(b, c, n_templates)
        agg = cs.max(axis=2) if aggregation == "max" else cs.mean(axis=2)
        agg = np.where(known[:, None], agg, -np.inf)
    else:
        present = (s > 0).any(axis=2)
        agg = s.max(axis=2) if aggregation == "max" else s.sum(axis=2) / n_templates
        agg = np.where(present, agg, -np.inf)
    name_rank = np.broadcast_to(np.argsort(np.argsort(np.asarray(classes, dtype=object))), agg.shape)
    order = np.lexsort((name_rank, -agg), axis=-1)[:, :TOP]
    top = order.astype(np.int64)
    top_s = np.take_along_axis(agg, order, axis=1)
    if top.shape[1] < TOP:
        top = np.pad(top, ((0, 0), (0, TOP - top.shape[1])), constant_values=-1)
        top_s = np.pad(top_s, ((0, 0), (0, TOP - top_s.shape[1])), constant_values=-np.inf)
    top[~np.isfinite(top_s)] = -1
    abstain = None
    if nil is not None and shift is not None:  # under a correction, a nil-support first class abstains
        abstain = (top[:, 0] >= 0) & np.asarray(nil, bool)[np.maximum(top[:, 0], 0)]
    return Ranked(top, np.where(top >= 0, top_s, 0.0), abstain)


def truth_indices(truth: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Index of each true label in ``classes`` (-2 when absent: never counted as correct)."""
    where = {c: i for i, c in enumerate(classes)}
    return np.array([where.get(t, -2) for t in truth], np.int64)


def accuracy(ranked: Ranked, truth_idx: np.ndarray) -> tuple[float, float, float]:
    """(top-1, top-5, unknown) fractions."""
    n = max(1, truth_idx.size)
    answered = np.ones(ranked.top.shape[0], bool) if ranked.abstain is None else ~ranked.abstain
    top1 = float(((ranked.top[:, 0] == truth_idx) & answered).sum()) / n
    top5 = float(((ranked.top == truth_idx[:, None]).any(axis=1) & answered).sum()) / n  # as evaluate counts
    unknown = float(((ranked.top[:, 0] < 0) | ~answered).sum()) / n
    return top1, top5, unknown


# -- prompts -----------------------------------------------------------------------------------------
def label_set_prompt_vectors(asif: Asif, info: IndexInfo) -> np.ndarray:
    """The prompt vectors stored with a label set (class-major): no text encoder needed."""
    items = asif.relindexes.items(info, with_vectors=True)
    return np.stack([np.asarray(r.vectors["item"], np.float32) for r in items])


def prompt_sets(
    asif: Asif,
    classes: Sequence[str],
    names: Iterable[str],
    prompt_vectors: Mapping[str, np.ndarray] | None = None,
    info: IndexInfo | None = None,
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Templates and class-major prompt vectors of each named template set: given in ``prompt_vectors``, else the
    label set's stored ones (when they are its templates and classes), else encoded with the text encoder."""
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    fp = asif.fingerprint
    for name in names:
        if name == OWN_TEMPLATES:
            if info is None:
                raise ConfigError(f"template set {OWN_TEMPLATES!r} means a label set's own templates: name a label set")
            tpl = list(info.templates)
        else:
            tpl = resolve_templates(name)
        n = len(classes) * len(tpl)
        if prompt_vectors is not None and name in prompt_vectors:
            vecs = as_matrix(prompt_vectors[name], fp.text_dim, f"prompt vectors of {name!r}", fp.text_encoder)
            if vecs.shape[0] != n:
                raise InvalidInputError(
                    f"got {vecs.shape[0]} prompt vectors for template set {name!r}; expected {n} ({len(classes)} "
                    f"classes x {len(tpl)} templates, class-major)"
                )
            vecs = l2_normalize(vecs, f"prompt vectors of {name!r}")
        elif info is not None and list(info.templates) == tpl and list(info.classes) == list(classes):
            vecs = label_set_prompt_vectors(asif, info)
        else:
            vecs = l2_normalize(np.asarray(asif.encode_texts([t.format(c) for c in classes for t in tpl]),
                                           np.float32), "prompt vectors")
        out[name] = (tpl, vecs)
    return out


def check_image_vectors(asif: Asif, vectors: Any) -> np.ndarray:
    fp = asif.fingerprint
    arr = as_matrix(vectors, fp.image_dim, "image vectors", fp.image_encoder)
    if arr.shape[0] == 0:
        raise InvalidInputError("image vectors are empty: pass at least one")
    return l2_normalize(arr, "image vectors")


# -- the grid scorer -------------------------------------------------------------------------------
class GridScorer:
    """Scores a fixed set of images against the prompts of a label set for many settings.

    The anchors' top-k of the images and of each template set's prompts is queried once, at ``kmax``; every
    setting with k <= kmax is a cut of it. ``restrict`` / ``exclude``: anchor ids the model is limited to / never
    uses (the anchor curve's subsets).
    """

    def __init__(
        self,
        asif: Asif,
        vectors: np.ndarray,
        classes: Sequence[str],
        prompts: Mapping[str, tuple[list[str], np.ndarray]],
        kmax: int,
        tenant: str | None = None,
        *,
        restrict: Sequence[int] | np.ndarray | None = None,
        exclude: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        self.tenant = validate_tenant(tenant)
        self.classes = list(classes)
        self.kmax = int(kmax)
        self.templates = {name: tpl for name, (tpl, _) in prompts.items()}
        vecs = check_image_vectors(asif, vectors)
        kw = {"restrict": restrict, "exclude": exclude}
        self.image_top = anchor_topk_within(asif, vecs, "image", self.tenant, self.kmax, **kw)
        self.prompt_top = {
            name: anchor_topk_within(asif, pv, "text", self.tenant, self.kmax, **kw)
            for name, (_, pv) in prompts.items()
        }
        self._scores: dict[tuple[str, int, float], np.ndarray] = {}
        self._asif, self._within = asif, kw
        self._reference: TopK | None = None

    def reference_top(self) -> TopK:
        """The top-kmax anchors of the reference sample that a corrected label set draws (correction.py), among the
        anchors this scorer's model uses; queried once, when a setting with a correction is first scored."""
        if self._reference is None:
            from ..correction import reference_ids

            ids = anchor_ids(self._asif, self.tenant)
            if self._within["restrict"] is not None:
                ids = np.intersect1d(ids, np.asarray(self._within["restrict"], np.int64))
            if self._within["exclude"] is not None:
                ids = np.setdiff1d(ids, np.asarray(self._within["exclude"], np.int64))
            chosen = reference_ids(ids.tolist())
            recs = {r.id: r for r in self._asif.engine.retrieve(self._asif.anchors.collection, chosen,
                                                                 with_vectors=("image",))}
            vecs = np.stack([np.asarray(recs[i].vectors["image"], np.float32) for i in chosen])
            self._reference = anchor_topk_within(self._asif, vecs, "image", self.tenant, self.kmax, **self._within)
        return self._reference

    def shift_scale(self, s: Setting) -> tuple[np.ndarray, np.ndarray]:
        """The correction of setting ``s`` per prompt, from the reference sample's scores (zeroshot)."""
        ref = self.reference_top().cut(s.k).reps(s.p)
        prm = self.prompt_top[s.templates].cut(s.k).reps(s.p)
        return reference_shift_scale(sparse_scores(ref, prm), s.correction)

    def nil_classes(self, templates: str) -> np.ndarray:
        """(C,) bool: classes whose prompts have no anchor caption within the coverage floor (coverage.py's support
        0: their best anchor's similarity is below it), among the anchors this scorer's model uses."""
        from ..coverage import COVERAGE_FLOOR

        top = self.prompt_top[templates]
        best = np.where(top.ids[:, 0] >= 0, top.sims[:, 0], -np.inf)
        return np.asarray((best < COVERAGE_FLOOR).reshape(len(self.classes), -1).all(axis=1), bool)

    def scores(self, templates: str, k: int, p: float) -> np.ndarray:
        """``(B, C * T)`` image-prompt scores at (k, p)."""
        if k > self.kmax:
            raise ConfigError(f"k={k} is above the k={self.kmax} this scorer queried: create it with kmax >= {k}")
        key = (templates, int(k), float(p))
        if key not in self._scores:
            img = self.image_top.cut(k).reps(p)
            prm = self.prompt_top[templates].cut(k).reps(p)
            self._scores[key] = sparse_scores(img, prm)
        return self._scores[key]

    def ranked(self, s: Setting) -> Ranked:
        sc = self.scores(s.templates, s.k, s.p)
        if s.correction != "none":
            shift, scale = self.shift_scale(s)
            return rank_labels(sc, self.classes, len(self.templates[s.templates]), s.aggregation, shift, scale,
                               self.nil_classes(s.templates))
        return rank_labels(sc, self.classes, len(self.templates[s.templates]), s.aggregation)

    def rows(self, settings: Sequence[Setting], truth: Sequence[str]) -> list[SweepRow]:
        """Top-1 / top-5 / unknown of every setting (scores shared by the aggregations of a (templates, k, p))."""
        tidx = truth_indices(truth, self.classes)
        out = []
        for i, s in enumerate(settings):
            top1, top5, unk = accuracy(self.ranked(s), tidx)
            out.append(SweepRow(s.k, s.p, s.templates, s.aggregation, top1, top5, unk, len(tidx), s.correction))
            nxt = settings[i + 1] if i + 1 < len(settings) else None
            if nxt is None or (nxt.templates, nxt.k, nxt.p) != (s.templates, s.k, s.p):
                self._scores.pop((s.templates, s.k, s.p), None)  # bounded memory over long grids
        return out


def sweep_settings(
    asif: Asif,
    vectors: np.ndarray,
    truth: Sequence[str],
    classes: Sequence[str],
    settings: Sequence[Setting],
    *,
    prompt_vectors: Mapping[str, np.ndarray] | None = None,
    info: IndexInfo | None = None,
    tenant: str | None = None,
) -> list[SweepRow]:
    """Top-1 / top-5 of each setting on images given as vectors (one anchor query per image, at the largest k)."""
    if not settings:
        raise ConfigError("no settings to evaluate: give at least one value per swept key")
    if len(truth) != np.asarray(vectors).shape[0]:
        raise InvalidInputError(f"got {len(truth)} labels for {np.asarray(vectors).shape[0]} image vectors")
    prompts = prompt_sets(asif, classes, dict.fromkeys(s.templates for s in settings), prompt_vectors, info)
    scorer = GridScorer(asif, vectors, classes, prompts, max(s.k for s in settings), tenant)
    return scorer.rows(list(settings), truth)


# -- sweeps on labelled images ---------------------------------------------------------------------------
@dataclass
class SweepReport:
    labels: str
    n: int
    anchors: int
    axes: dict[str, list[Any]]
    rows: list[SweepRow]
    seconds: float = 0.0

    @property
    def best(self) -> SweepRow:
        return max(self.rows, key=lambda r: (r.top1, r.top5))

    def as_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "n": self.n, "anchors": self.anchors, "axes": self.axes,
                "rows": [r.as_dict() for r in self.rows], "best": self.best.as_dict(), "seconds": self.seconds}

    def table(self) -> str:
        lines = [f"label set {self.labels!r}: {self.n} images, {self.anchors} anchors; "
                 f"{len(self.rows)} settings in {self.seconds:.1f} s (no abstention)"]
        lines.append(f"{'k':>6} {'p':>5}  {'templates':<10} {'agg':<5} {'top-1':>7} {'top-5':>7} {'unknown':>8}")
        best = self.best
        for r in self.rows:
            mark = "  <- best" if r is best else ""
            lines.append(f"{r.k:>6} {r.p:>5g}  {r.templates:<10} {r.aggregation:<5} {r.top1:>7.4f} {r.top5:>7.4f} "
                         f"{r.unknown:>8.4f}{mark}")
        return "\n".join(lines)

    def to_json(self) -> str:
        import json

        return json.dumps(self.as_dict(), indent=2)


def require_label_set(asif: Asif, labels: str, tenant: str, data_labels: Sequence[str], source: Any) -> IndexInfo:
    info = asif.index_info(labels, validate_tenant(tenant), "labels")  # up to date with the anchors
    missing = sorted(set(data_labels) - set(info.classes))
    if missing:
        raise InvalidInputError(
            f"classes {missing} of {source} are not in label set {labels!r} ({info.classes}): define the label set "
            "with these names, or map them with a class map (--classes-map FILE)"
        )
    return info


def defaults_of(info: IndexInfo) -> Setting:
    return Setting(info.k, info.p, template_set_name(info.templates), info.aggregation, info.correction)


def run_sweep(
    asif: Asif,
    folder: str | Path,
    labels: str,
    sweeps: Mapping[str, Sequence[Any]],
    *,
    tenant: str | None = None,
    limit: int | None = None,
    mapping: Mapping[str, str] | str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> SweepReport:
    """Top-1/top-5 of label set ``labels`` on labelled images for every combination of the swept values (keys k, p,
    templates, aggregation; a key not swept keeps the label set's value). Images are encoded once (cached) and the
    anchors are queried once per image, at the largest k."""
    t = validate_tenant(tenant)
    axes = check_sweeps(sweeps)
    data = read_labelled(folder, mapping, limit, seed)
    info = require_label_set(asif, labels, t, data.labels, folder)
    settings = grid(axes, defaults_of(info))
    vecs = labelled_vectors(asif, data, progress=progress)
    t0 = time.perf_counter()
    rows = sweep_settings(asif, vecs, data.labels, info.classes, settings, info=info, tenant=t)
    return SweepReport(labels, len(data), asif.count(tenant), axes, rows, time.perf_counter() - t0)


# -- accuracy against the number of anchors ---------------------------------------------------------------
def parse_sizes(spec: str | Sequence[int | str]) -> list[int | str]:
    """``"500,1000,all"`` -> ``[500, 1000, "all"]``."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[int | str] = []
    for s in items:
        if isinstance(s, str) and s.lower() == "all":
            out.append("all")
            continue
        try:
            n = int(s)
            if n < 1 or n != float(s):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(
                f"anchor count {s!r} is invalid: give integers >= 1 or 'all', e.g. --anchors 500,1000,all"
            ) from None
        out.append(n)
    if not out:
        raise ConfigError("no anchor counts given: e.g. --anchors 500,1000,2000,all")
    return out


def nested_subsets(ids: np.ndarray, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Subsets of ``ids`` of each size, all prefixes of one seeded permutation of the sorted ids (so each subset
    holds every smaller one). Each subset is returned sorted."""
    perm = np.random.default_rng(seed).permutation(np.sort(np.asarray(ids, np.int64)))
    return [np.sort(perm[: int(n)]) for n in sizes]


@dataclass
class AnchorCountPoint:
    """One point of the accuracy-versus-anchor-count curve (one subset size and seed)."""

    anchors: int
    seed: int
    top1: float
    top5: float
    unknown: float


@dataclass
class CurveReport:
    labels: str
    n_images: int
    n_classes: int
    total_anchors: int
    setting: Setting
    points: list[AnchorCountPoint] = field(default_factory=list)
    seconds: float = 0.0
    plot: str | None = None

    @property
    def chance(self) -> float:
        return 1.0 / self.n_classes if self.n_classes else 0.0

    def summary(self) -> list[dict[str, Any]]:
        """Per anchor count: mean, std, min and max top-1 over the seeds (and mean top-5)."""
        out = []
        for n in sorted({p.anchors for p in self.points}):
            pts = [p for p in self.points if p.anchors == n]
            a = np.array([p.top1 for p in pts])
            out.append({"anchors": n, "seeds": len(pts), "top1_mean": float(a.mean()), "top1_std": float(a.std()),
                        "top1_min": float(a.min()), "top1_max": float(a.max()),
                        "top5_mean": float(np.mean([p.top5 for p in pts])),
                        "unknown_mean": float(np.mean([p.unknown for p in pts]))})
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "n_images": self.n_images, "n_classes": self.n_classes,
                "total_anchors": self.total_anchors, "setting": self.setting.as_dict(), "chance": self.chance,
                "summary": self.summary(), "points": [asdict(p) for p in self.points], "seconds": self.seconds,
                "plot": self.plot}

    def table(self) -> str:
        s = self.setting
        lines = [f"label set {self.labels!r}: {self.n_images} images, {self.n_classes} classes; k={s.k} p={s.p:g} "
                 f"templates={s.templates} aggregation={s.aggregation} ({self.seconds:.0f} s)"]
        lines.append(f"{'anchors':>8} {'seeds':>5} {'top-1 mean':>10} {'std':>7} {'min':>7} {'max':>7} "
                     f"{'top-5':>7} {'unknown':>8}")
        for r in self.summary():
            lines.append(f"{r['anchors']:>8} {r['seeds']:>5} {r['top1_mean']:>10.4f} {r['top1_std']:>7.4f} "
                         f"{r['top1_min']:>7.4f} {r['top1_max']:>7.4f} {r['top5_mean']:>7.4f} "
                         f"{r['unknown_mean']:>8.4f}")
        lines.append(f"random guess: {self.chance:.4f} (1/{self.n_classes} classes)")
        if self.plot:
            lines.append(f"plot: {self.plot}")
        return "\n".join(lines)


def curve_vectors(
    asif: Asif,
    vectors: np.ndarray,
    truth: Sequence[str],
    classes: Sequence[str],
    sizes: Sequence[int | str],
    seeds: int | Sequence[int] = 3,
    *,
    setting: Setting,
    prompt_vectors: Mapping[str, np.ndarray] | None = None,
    info: IndexInfo | None = None,
    tenant: str | None = None,
    labels: str = "",
    progress: bool = False,
) -> CurveReport:
    """Accuracy with nested random subsets of the tenant's anchors (sizes; 'all' = every anchor), per seed.

    A subset's model is exactly the model of a store holding only that subset: both the images' and the prompts'
    top-k are taken among the subset (HasId filter on the dense queries)."""
    t = validate_tenant(tenant)
    ids = anchor_ids(asif, t)
    if ids.size == 0:
        raise InvalidInputError(f"tenant {t!r} has no anchors: add anchor pairs first (asif ingest ...)")
    parsed = parse_sizes(sizes) if isinstance(sizes, str) else parse_sizes(list(sizes))
    too_big = [n for n in parsed if n != "all" and int(n) > ids.size]
    if too_big:
        raise ConfigError(f"anchor count {too_big[0]} is more than the {ids.size} anchors of tenant {t!r}: "
                          "use smaller counts, or 'all'")
    counts = sorted({ids.size if n == "all" else int(n) for n in parsed})
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ConfigError("seeds must be >= 1: the number of random subsets per anchor count")
    vecs = check_image_vectors(asif, vectors)
    if len(truth) != vecs.shape[0]:
        raise InvalidInputError(f"got {len(truth)} labels for {vecs.shape[0]} image vectors")
    prompts = prompt_sets(asif, classes, [setting.templates], prompt_vectors, info)
    report = CurveReport(labels, vecs.shape[0], len(classes), int(ids.size), setting)
    t0 = time.perf_counter()
    full: AnchorCountPoint | None = None
    for seed in seed_list:
        for n, subset in zip(counts, nested_subsets(ids, counts, seed), strict=True):
            if n == ids.size and full is not None:  # every seed's full set is the same set
                report.points.append(AnchorCountPoint(n, seed, full.top1, full.top5, full.unknown))
                continue
            scorer = GridScorer(asif, vecs, classes, prompts, setting.k, t, restrict=None if n == ids.size else subset)
            top1, top5, unk = accuracy(scorer.ranked(setting), truth_indices(truth, classes))
            pt = AnchorCountPoint(n, seed, top1, top5, unk)
            report.points.append(pt)
            if n == ids.size:
                full = pt
            if progress:
                print(f"  anchors {n:>6}  seed {seed}: top-1 {top1:.4f}  ({time.perf_counter() - t0:.0f} s)",
                      file=sys.stderr, flush=True)
    report.seconds = time.perf_counter() - t0
    return report


def anchor_curve(
    asif: Asif,
    source: str | Path,
    labels: str,
    sizes: str | Sequence[int | str] = "500,1000,2000,5000,10000,all",
    seeds: int | Sequence[int] = 3,
    *,
    limit: int | None = None,
    mapping: Mapping[str, str] | str | Path | None = None,
    tenant: str | None = None,
    k: int | None = None,
    p: float | None = None,
    plot: str | Path | None = None,
    progress: bool = True,
) -> CurveReport:
    """Top-1 of label set ``labels`` on labelled images against the number of anchor pairs (nested random subsets,
    several seeds), with the label set's k, p, templates and aggregation (or the given k, p). Writes a PNG with
    ``plot``."""
    t = validate_tenant(tenant)
    data = read_labelled(source, mapping, limit)
    info = require_label_set(asif, labels, t, data.labels, source)
    d = defaults_of(info)
    setting = Setting(_int_k(k) if k is not None else d.k, _float_p(p) if p is not None else d.p, d.templates,
                      d.aggregation, d.correction)
    vecs = labelled_vectors(asif, data, progress=progress)
    rep = curve_vectors(asif, vecs, data.labels, info.classes, sizes, seeds, setting=setting, info=info, tenant=t,
                        labels=labels, progress=progress)
    if plot is not None:
        rep.plot = str(plot_curve(rep, plot))
    return rep


def plot_curve(report: CurveReport, path: str | Path) -> Path:
    """Accuracy against the number of anchors (log x): mean over seeds, min-max band, random-guess line."""
    require("matplotlib", "eval", "plotting the anchor curve").use("Agg")
    import matplotlib.pyplot as plt

    rows = report.summary()
    x = np.array([r["anchors"] for r in rows], float)
    mean = np.array([r["top1_mean"] for r in rows])
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.fill_between(x, [r["top1_min"] for r in rows], [r["top1_max"] for r in rows], alpha=0.25,
                    label=f"min-max over {rows[0]['seeds'] if rows else 0} seeds")
    ax.plot(x, mean, "o-", label="top-1 (mean)")
    ax.axhline(report.chance, color="grey", ls="--", label=f"random guess (1/{report.n_classes})")
    ax.set_xscale("log")
    ax.set_xlabel("anchor pairs")
    ax.set_ylabel("top-1 accuracy")
    s = report.setting
    ax.set_title(f"{report.labels or 'zero-shot'}: {report.n_images} images, k={s.k}, p={s.p:g}, {s.templates}")
    ax.set_ylim(0, max(1e-3, float(mean.max()) * 1.15 if mean.size else 1.0))
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="upper left")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


__all__ = [
    "CurveReport", "GridScorer", "Ranked", "Setting", "SweepReport", "anchor_curve", "anchor_ids",
    "anchor_topk_within", "check_sweeps", "curve_vectors", "grid", "nested_subsets", "parse_sizes", "parse_sweep",
    "plot_curve", "prompt_sets", "rank_labels", "run_sweep", "sparse_scores", "sweep_settings",
    "sweep_vectors",
]


def sweep_vectors(
    asif: Asif,
    vectors: np.ndarray,
    truth: Sequence[str],
    classes: Sequence[str],
    ks: Sequence[int],
    ps: Sequence[float],
    *,
    template_sets: Sequence[str] = ("photo",),
    aggregations: Sequence[str] = ("max",),
    tenant: str | None = None,
    prompt_cache: dict[str, np.ndarray] | None = None,
) -> list[SweepRow]:
    """Top-1/top-5 for every (k, p, templates, aggregation): the anchors' top-k is queried once, at the
    largest k, and cut for the smaller ones; prompts are encoded once per template set (``prompt_cache``: template
    set name -> class-major prompt vectors, filled in when empty). See sweep_settings."""
    axes: dict[str, list[Any]] = {"k": list(ks), "p": list(ps), "templates": list(template_sets),
                                  "aggregation": list(aggregations)}
    settings = grid(axes)
    given = {name: prompt_cache[name] for name in template_sets if prompt_cache is not None and name in prompt_cache}
    prompts = prompt_sets(asif, classes, template_sets, given)
    if prompt_cache is not None:
        prompt_cache.update({name: v for name, (_, v) in prompts.items()})
    return sweep_settings(asif, vectors, truth, classes, settings, prompt_vectors={n: v for n, (_, v) in
                                                                                    prompts.items()}, tenant=tenant)
