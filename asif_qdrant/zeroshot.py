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
