"""Zero-shot results, prompt templates and label-score aggregation (no Qdrant, no torch)."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # no run-time import of the engines: the result types load without numpy (a fast CLI start-up)
    from .engines.base import Hit

# CLIP's first eight CIFAR templates: 10 classes x 8 templates = 80 prompts.
PHOTO_TEMPLATES = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
]
PLAIN_TEMPLATES = ["{}"]
TEMPLATE_SETS = {"photo": PHOTO_TEMPLATES, "plain": PLAIN_TEMPLATES}
AGGREGATIONS = ("max", "mean")


def _one_placeholder(template: str) -> bool:
    """True when ``template.format(name)`` fills exactly one plain '{}' (literal braces are written '{{' and '}}')."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError:  # a lone '{' or '}'
        return False
    return fields == [("", "", None)]


def resolve_templates(templates: str | Sequence[str] | None) -> list[str]:
    """A built-in set name ('photo', 'plain'), a file with one template per line, or a list of templates."""
    if templates is None:
        return list(PHOTO_TEMPLATES)
    if isinstance(templates, str):
        if templates in TEMPLATE_SETS:
            return list(TEMPLATE_SETS[templates])
        path = Path(templates)
        if path.is_file():
            out = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        elif "{" in templates:
            out = [templates]
        else:
            raise ConfigError(
                f"templates {templates!r} is not a built-in set ({', '.join(TEMPLATE_SETS)}), a file, "
                "or a template with '{}': pass one of these"
            )
    else:
        out = [str(t) for t in templates]
    bad = [t for t in out if not _one_placeholder(t)]
    if not out or bad:
        raise ConfigError(
            f"template {bad[0] if bad else '(none)'!r} is invalid: each template needs exactly one '{{}}' "
            "where the class name goes and no other field (write literal braces as '{{{{' and '}}}}'), for example "
            "'a photo of a {}.'"
        )
    return out


def resolve_classes(classes: str | Sequence[str]) -> list[str]:
    """A list of class names, a file with one class per line, or a comma-separated string."""
    if isinstance(classes, str):
        path = Path(classes)
        if path.is_file():
            out = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        else:
            out = [c.strip() for c in classes.split(",") if c.strip()]
    else:
        out = [str(c).strip() for c in classes]
    if not out or any(not c for c in out):
        raise ConfigError(f"classes {classes!r} is empty or has an empty name: give at least one class name")
    dup = sorted({c for c in out if out.count(c) > 1})
    if dup:
        raise ConfigError(f"class {dup[0]!r} appears twice: give each class once")
    return out


@dataclass
class LabelScore:
    """One label's score for one input, and the prompt that gave it (max aggregation)."""

    label: str
    score: float
    prompt: str | None = None


@dataclass
class Prediction:
    """The top labels for one input. ``label`` is None ("unknown") when no label shares an anchor with the
    input, or when the best score is below the label set's threshold tau."""

    label: str | None
    score: float
    top: list[LabelScore] = field(default_factory=list)
    prompt: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "prompt": self.prompt,
            "top": [vars(t) for t in self.top],
        }


@dataclass
class SearchHit:
    """One gallery item found for a query."""

    id: int
    score: float
    payload: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "payload": dict(self.payload)}


LABEL_TIE_TOL = 1e-6  # the result tie rule of relrep.rank_with_ties, for label scores


def rank_labels(scores: list[LabelScore], tol: float = LABEL_TIE_TOL) -> list[LabelScore]:
    """Higher score first; scores chaining within ``tol`` (relative to the largest) are ties, ordered by label name,
    so that engine noise in the last bits never decides which label comes first."""
    by_score = sorted(scores, key=lambda s: (-s.score, s.label))
    if not by_score:
        return by_score
    scale = tol * max(1.0, max(abs(s.score) for s in by_score))
    group, prev, keyed = 0, by_score[0].score, []
    for s in by_score:
        if prev - s.score > scale:
            group += 1
        prev = s.score
        keyed.append((group, s.label, s))
    return [s for _, _, s in sorted(keyed, key=lambda t: (t[0], t[1]))]


def aggregate(
    hits: Sequence[Hit], n_templates: int, aggregation: str, top: int, tau: float | None = None,
    *, extra: Mapping[str, float] | None = None,
) -> Prediction:
    """Label scores from prompt hits: max over a label's templates (the paper), or their mean; ``extra``: a term
    added to a label's score (the prototype part of taught classes, prototypes.py; a label with no hit gets it
    alone)."""
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"aggregation {aggregation!r} is invalid: use 'max' or 'mean'")
    best: dict[str, LabelScore] = {}
    sums: dict[str, float] = {}
    for h in hits:
        pl = h.payload or {}
        label = str(pl.get("label"))
        sums[label] = sums.get(label, 0.0) + h.score
        cur = best.get(label)
        if cur is None or h.score > cur.score:
            best[label] = LabelScore(label, h.score, pl.get("prompt"))
    if aggregation == "mean":
        for label, ls in best.items():
            ls.score = sums[label] / n_templates
    for label, term in (extra or {}).items():
        if term > 0:
            best.setdefault(label, LabelScore(label, 0.0, None)).score += float(term)
    ranked = rank_labels(list(best.values()))[:top]
    if not ranked or ranked[0].score <= 0:
        return Prediction(None, 0.0, ranked)
    if tau is not None and ranked[0].score < tau:
        return Prediction(None, ranked[0].score, ranked, ranked[0].prompt)
    return Prediction(ranked[0].label, ranked[0].score, ranked, ranked[0].prompt)


# -- hub-corrected scores ------------------------------------------------------------------------------------------
CORRECTIONS = ("none", "mean", "zscore")
"""How a label set corrects its prompts' scores with a reference sample of the tenant's anchor images:

- ``none``: the ASIF score as the paper defines it;
- ``mean``: minus the prompt's mean score over the reference images (the part of the score every image gets: a
  prompt whose anchors are hubs, such as "dog" on Flickr8k, no longer wins by default);
- ``zscore``: the same, divided by the standard deviation of the prompt's scores over the reference images."""


def check_correction(correction: str) -> str:
    """``correction`` if it is one of CORRECTIONS, else ConfigError naming the choices."""
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction {correction!r} is invalid: use one of {', '.join(CORRECTIONS)}")
    return correction


def reference_shift_scale(ref_scores: Any, correction: str) -> tuple[Any, Any]:
    """Per prompt ``(shift, scale)`` from its scores over the reference images, ``ref_scores`` ``(n_ref, n_prompts)``:
    a corrected score is ``(score - shift) / scale``. ``none`` (or no reference image): shift 0, scale 1. A prompt
    whose reference scores are all equal keeps scale 1 under ``zscore`` (nothing to divide by)."""
    import numpy as np

    s = np.asarray(ref_scores, np.float64)
    n_p = s.shape[1] if s.ndim == 2 else 0
    shift, scale = np.zeros(n_p), np.ones(n_p)
    if check_correction(correction) == "none" or s.ndim != 2 or s.shape[0] == 0:
        return shift, scale
    shift = s.mean(axis=0)
    if correction == "zscore":
        sd = s.std(axis=0)
        scale = np.where(sd > 1e-12, sd, 1.0)
    return shift, scale


def corrected_label_scores(
    raw: Any, n_templates: int, aggregation: str, shift: Any, scale: Any
) -> tuple[Any, Any]:
    """Class-major raw prompt scores ``(n_prompts,)`` -> per class ``(scores, best template)``: each prompt's score
    corrected to ``(raw - shift) / scale``, then the max over a class's templates (or their mean; the best template
    is then the one with the largest corrected score)."""
    import numpy as np

    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"aggregation {aggregation!r} is invalid: use 'max' or 'mean'")
    c = ((np.asarray(raw, np.float64) - np.asarray(shift, np.float64)) / np.asarray(scale, np.float64))
    c = c.reshape(-1, n_templates)
    best = c.argmax(axis=1)
    agg = c.max(axis=1) if aggregation == "max" else c.mean(axis=1)
    return agg, best


def aggregate_corrected(
    raw: Any,
    classes: Sequence[str],
    templates: Sequence[str],
    aggregation: str,
    shift: Any,
    scale: Any,
    top: int,
    tau: float | None = None,
    *,
    extra: Mapping[str, float] | None = None,
) -> Prediction:
    """A Prediction from every prompt's raw score (0 where it shares no anchor with the input) and the label set's
    correction. Every class gets a score (a corrected score can be negative); the input is "unknown" only when no
    prompt shares an anchor with it (and no ``extra`` term is positive), or when the best score is below ``tau``.
    ``extra``: a term added to a label's corrected score (the prototype part of taught classes, as in aggregate)."""
    import numpy as np

    r = np.asarray(raw, np.float64)
    terms = {lb: float(t) for lb, t in (extra or {}).items() if t > 0}
    if not (r > 0).any() and not terms:
        return Prediction(None, 0.0, [])
    agg, best = corrected_label_scores(r, len(templates), aggregation, shift, scale)
    scores = [LabelScore(c, float(agg[i]) + terms.get(c, 0.0), templates[int(best[i])].format(c))
              for i, c in enumerate(classes)]
    ranked = rank_labels(scores)[:top]
    if tau is not None and ranked[0].score < tau:
        return Prediction(None, ranked[0].score, ranked, ranked[0].prompt)
    return Prediction(ranked[0].label, ranked[0].score, ranked, ranked[0].prompt)
