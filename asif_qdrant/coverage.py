"""Label coverage: how well the anchors support each class of a label set, and a verdict the user can act on.

ASIF can only recognise what its anchor captions talk about. A class whose prompts have no caption close to them
("a photo of a bonsai." against captions of dogs and beaches) gets a relative representation of generic neighbours,
and its scores are noise. The **support** of a class is the number of distinct anchor pairs whose caption lies within
cosine ``COVERAGE_FLOOR`` of at least one of the class's prompts: it is read from the prompts' stored top-k lists
(the label set's items), so it is exact under the freshness contract at no extra cost (the lists are kept exact on
every anchor edit, and the figure is computed on read). The verdict cuts the support at ``WEAK_BELOW`` and
``UNSUPPORTED_BELOW``.

How the figure and the cuts were chosen (docs/coverage-and-teaching.md, benchmarks/eval_coverage.py): among
candidate figures (best caption similarity, mean of the top 10, contrast with the k-th, the relative rep's
effective number of anchors, image coherence of the top anchors, separability from the other classes, counts above
floors 0.4-0.7), the count above 0.5 had the highest Spearman correlation with per-class top-1 accuracy on label sets
built from Flickr8k caption words (100 object names, half of them removed from the anchors). The floor is a cosine
of the text encoder, validated for all-MiniLM-L6-v2; another text encoder may need another floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .relindex import decode_topk

if TYPE_CHECKING:
    from .relindex import IndexInfo, RelIndexes

COVERAGE_FLOOR = 0.5  # caption-to-prompt cosine that counts as "talks about the class" (all-MiniLM-L6-v2)
UNSUPPORTED_BELOW = 10  # fewer supporting pairs than this: unsupported
WEAK_BELOW = 30  # fewer than this: weak
VERDICTS = ("supported", "weak", "unsupported")


def verdict_of(support: float) -> str:
    """'supported', 'weak' or 'unsupported' for a support figure."""
    if support < UNSUPPORTED_BELOW:
        return "unsupported"
    return "weak" if support < WEAK_BELOW else "supported"


def fix_for(label: str, verdict: str) -> str | None:
    """What to do about a class that is not supported (None when it is)."""
    if verdict == "supported":
        return None
    return (f"teach a few examples of {label!r} (asif teach FOLDER --tenant T, with FOLDER/{label}/*.jpg), or add "
            f"image-caption pairs whose captions mention it")


def class_support(
    item_classes: Sequence[int],
    topk_ids: Sequence[np.ndarray],
    topk_sims: Sequence[np.ndarray],
    n_classes: int,
    floor: float = COVERAGE_FLOOR,
) -> np.ndarray:
    """Per class, the number of distinct anchors whose similarity to at least one of the class's items (prompts)
    reaches ``floor``, from each item's stored top-k (ids and similarities). Pure numpy."""
    out = np.zeros(n_classes, np.int64)
    found: list[list[np.ndarray]] = [[] for _ in range(n_classes)]
    for c, ids, sims in zip(item_classes, topk_ids, topk_sims, strict=True):
        found[int(c)].append(np.asarray(ids, np.int64)[np.asarray(sims, np.float64) >= floor])
    for c, parts in enumerate(found):
        out[c] = np.unique(np.concatenate(parts)).size if parts else 0
    return out


@dataclass
class ClassCoverage:
    """One class's support (distinct anchor pairs whose caption is close to its prompts; higher = better
    supported) and verdict."""

    label: str
    support: int
    verdict: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.label, "support": self.support, "verdict": self.verdict}


@dataclass
class Coverage:
    """The coverage of a label set for one tenant's anchors."""

    labels: str
    tenant: str
    floor: float
    classes: list[ClassCoverage] = field(default_factory=list)

    def of(self, label: str) -> ClassCoverage | None:
        return next((c for c in self.classes if c.label == label), None)

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for c in self.classes if c.verdict == v) for v in VERDICTS}

    def as_dict(self) -> dict[str, Any]:
        """Exactly ``{"classes": [{"class", "support", "verdict"}, ...]}`` (the ``asif labels check --json`` output)."""
        return {"classes": [c.as_dict() for c in self.classes]}

    def warnings(self) -> list[str]:
        """One line per class that is not supported, with its fix (empty when every class is supported)."""
        return [f"class {c.label!r} is {c.verdict} by the anchors (support {c.support}): {c.fix}"
                for c in self.classes if c.verdict != "supported"]

    def table(self) -> str:
        w = max([5, *(len(c.label) for c in self.classes)])
        lines = [f"{'class':<{w}}  {'support':>7}  verdict"]
        lines += [f"{c.label:<{w}}  {c.support:>7}  {c.verdict}" for c in self.classes]
        n = self.counts()
        lines.append(f"{n['supported']} supported, {n['weak']} weak, {n['unsupported']} unsupported (support: anchor "
                     f"pairs whose caption is within cosine {self.floor:g} of the class's prompts)")
        lines += [f"fix: {c.label}: {c.fix}" for c in self.classes if c.fix]
        return "\n".join(lines)


def coverage_from_lists(labels: str, tenant: str, classes: Sequence[str], item_classes: Sequence[int],
                        topk_ids: Sequence[np.ndarray], topk_sims: Sequence[np.ndarray],
                        floor: float = COVERAGE_FLOOR) -> Coverage:
    """The coverage of a label set from its items' classes and stored top-k lists."""
    support = class_support(item_classes, topk_ids, topk_sims, len(classes), floor)
    out = []
    for label, s in zip(classes, support.tolist(), strict=True):
        v = verdict_of(s)
        out.append(ClassCoverage(label, int(s), v, fix_for(label, v)))
    return Coverage(labels, tenant, floor, out)


def coverage_from_dict(labels: str, tenant: str, d: dict[str, Any], floor: float = COVERAGE_FLOOR) -> Coverage:
    """A Coverage from its ``as_dict`` form (the HTTP answer), the fixes filled in again."""
    out = [ClassCoverage(str(c["class"]), int(c["support"]), str(c["verdict"]),
                         fix_for(str(c["class"]), str(c["verdict"]))) for c in d.get("classes", [])]
    return Coverage(labels, tenant, floor, out)


def label_coverage(relindexes: RelIndexes, info: IndexInfo, floor: float = COVERAGE_FLOOR) -> Coverage:
    """The coverage of the label set ``info`` (the index that answers for its tenant, current with the anchors),
    computed on read from its items' stored top-k lists: one scroll of the items' ``topk`` payloads."""
    if info.kind != "labels":
        raise ConfigError(f"{info.name!r} is a gallery: coverage is a property of a label set's classes")
    recs = relindexes.items(info, with_payload=True)
    lists = [decode_topk(r.payload) for r in recs]
    cls = [int(info.prompt_of(r.id)["class_index"]) for r in recs]
    return coverage_from_lists(info.name, info.tenant, info.classes, cls, [i for i, _ in lists],
                               [s for _, s in lists], floor)


__all__ = ["COVERAGE_FLOOR", "ClassCoverage", "Coverage", "class_support", "coverage_from_dict", "coverage_from_lists",
           "fix_for",
           "label_coverage", "verdict_of"]
