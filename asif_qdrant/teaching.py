"""Teaching by example: a folder per class (``examples/<class>/<image>``) becomes a tenant's anchor pairs, each
image paired with a template filled with its class ("a photo of a cat."). The model changes at once, without
training; :meth:`asif_qdrant.asif.Asif.teach` delegates here. This module holds the examples of a folder, their
captions, the report, and :func:`teach`, which adds them with :func:`asif_qdrant.ingest.add_pairs` (one algorithm for
both: content-hash ids, the embedding cache, encoding outside the lock, one edit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, InvalidInputError
from .meta import TENANT_SHARED, validate_tenant
from .readers import class_folders

if TYPE_CHECKING:
    from .asif import Asif

TEACH_TEMPLATE = "a photo of a {}."


@dataclass
class TeachReport:
    """What teach added: per class, the example images taught and the caption they were paired with."""

    tenant: str
    template: str
    classes: dict[str, int] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    added: int = 0
    duplicates: int = 0
    items_touched: dict[str, int] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "template": self.template, "classes": dict(self.classes),
                "captions": dict(self.captions), "added": self.added, "duplicates": self.duplicates,
                "items_touched": dict(self.items_touched), "ids": list(self.ids)}

    def summary(self) -> str:
        per = ", ".join(f"{c} {n}" for c, n in self.classes.items())
        note = ""
        if len(self.classes) == 1:
            note = ("\nnote: one class taught: its close pairs can dominate every label's score; teach every class "
                    "of the label set (see `asif explain`)")
        return (f"taught tenant {self.tenant!r} {self.added} new pair(s) ({self.duplicates} already stored) with "
                f"{self.template!r}: {per}" + note)


def teach_caption(template: str, class_name: str) -> str:
    """The caption an example of ``class_name`` is paired with; ConfigError for a template without one ``{}``."""
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ConfigError(f"template {template!r} is invalid: use exactly one '{{}}' where the class name goes, "
                          f"e.g. {TEACH_TEMPLATE!r}")
    return template.format(class_name.replace("_", " ").strip())


def teach_examples(folder: str | Path, per_class: int | None = None) -> dict[str, list[Path]]:
    """The example images of a folder per class (``folder/<class>/<image>``), sorted; the first ``per_class``."""
    root = Path(folder).expanduser()
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise ConfigError(f"per_class={per_class!r} is invalid: pass a positive number of examples, or None for all")
    out = {name: files[:per_class] for name, files in class_folders(root) if files}
    if not out:
        raise InvalidInputError(f"{str(root)!r} has no class sub-folders with images: lay them out as "
                                f"{root}/<class>/<image>.jpg")
    return out


def teach(asif: Asif, folder: str | Path, *, tenant: str | None, template: str = TEACH_TEMPLATE,
          per_class: int | None = None, cache: bool = True) -> TeachReport:
    """:meth:`asif_qdrant.asif.Asif.teach`: the examples of ``folder`` added as ``tenant``'s anchor pairs."""
    from .ingest import add_pairs

    t = validate_tenant(tenant)
    if t == TENANT_SHARED:
        raise ConfigError("teach needs a tenant (tenant='acme', --tenant acme): examples are a tenant's own pairs, "
                          "so that they do not change every tenant's model")
    examples = teach_examples(folder, per_class)
    caps = {c: teach_caption(template, c) for c in examples}
    res = add_pairs(asif, [p for fs in examples.values() for p in fs],
                    [caps[c] for c, fs in examples.items() for _ in fs], t,
                    [{"taught_class": c} for c, fs in examples.items() for _ in fs], cache=cache)
    return TeachReport(t, template, {c: len(f) for c, f in examples.items()}, caps, res.added, res.duplicates,
                       res.items_touched, res.ids)


__all__ = ["TEACH_TEMPLATE", "TeachReport", "teach", "teach_caption", "teach_examples"]
