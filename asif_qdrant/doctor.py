"""`asif doctor`: what is wrong with a store, and the repair of what can be rebuilt from what remains.

Checked: the schema (every migration applied), the meta and anchors collections, the two relative-index collections
(the items of every tenant's label sets and galleries, partitioned by payload), each index's item count in its
partition, and that each index answers for its current anchors. Repaired (with ``repair=True``): pending or
lost schema steps are re-applied (every step is safe to run twice, so a deleted anchors collection comes back
empty), a lost relative-index collection is recreated, and relative indexes are rebuilt from their definitions: from
their own items when those remain, else a label set from its classes and templates with the store's text encoder;
a tenant copy of a shared index is removed and made again from the shared definition on the tenant's next query; a
gallery whose items are lost is reported and its record removed (its images cannot be re-encoded from nothing).
Lost anchors are reported, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import migrate as _migrate
from .errors import AsifError
from .handles import Indexes, Tagging
from .meta import TENANT_SHARED
from .names import anchors_collection, relindex_collection
from .relindex import IndexInfo, index_filter

if TYPE_CHECKING:
    from .asif import Asif


@dataclass
class Finding:
    """One problem: what is wrong, whether it can be repaired, and whether this run repaired it."""

    what: str
    repairable: bool
    repaired: bool = False
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "repairable": self.repairable, "repaired": self.repaired, "detail": self.detail}


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when nothing is wrong any more (nothing found, or everything found was repaired)."""
        return all(f.repaired for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "findings": [f.as_dict() for f in self.findings]}

    def table(self) -> str:
        if not self.findings:
            return "the store is healthy: nothing to repair"
        lines = []
        for f in self.findings:
            state = "repaired" if f.repaired else ("repairable (run asif doctor --repair)" if f.repairable else "lost")
            lines.append(f"- {f.what}: {state}" + (f" ({f.detail})" if f.detail else ""))
        return "\n".join(lines)


def diagnose(asif: Asif, ctx: _migrate.MigrationContext, indexes: Indexes, repair: bool = False) -> DoctorReport:
    """What is wrong with the store; with ``repair``, the repairs, made through the migrations (the schema) and
    the handles on the relative indexes (``indexes``, the facade's). Runs under the facade's exclusive lock."""
    rep = DoctorReport()
    engine, meta = asif.engine, asif.meta
    if not meta.exists():
        rep.findings.append(Finding(f"the meta collection {meta.collection!r} is missing", True,
                                    detail="the schema steps are re-applied; label sets defined before are lost"))
    pending = [s for s in _migrate.status(ctx) if s.applied_at is None] if meta.exists() else []
    for s in pending:
        rep.findings.append(Finding(f"migration {s.version:04d}_{s.name} is not applied", True))
    anchors = anchors_collection(asif.settings.prefix)
    if not engine.collection_exists(anchors):
        lost = sum(int(v.get("revision", 0)) > 0 for _, v in meta.items("revision")) if meta.exists() else 0
        rep.findings.append(Finding(
            f"the anchors collection {anchors!r} is missing", True,
            detail="it is recreated empty; the anchor pairs it held are lost (re-ingest them)"
            + (f"; {lost} anchor set(s) had been written" if lost else ""),
        ))
    schema_findings = list(rep.findings)
    if repair and schema_findings:
        _migrate.reapply(ctx)
        for f in schema_findings:
            f.repaired = True
    if not meta.exists() or not engine.collection_exists(anchors):
        return rep  # the indexes are checked against the anchors once those are back (--repair)
    ri = asif.relindexes
    try:
        infos = ri.infos()
    except AsifError as e:
        rep.findings.append(Finding("the relative-index records cannot be read", False, detail=str(e)))
        return rep
    # the items of every index live in one of two fixed collections (by item modality): a lost collection folder
    # loses the items of every index in it; it is recreated empty, and each of those indexes is repaired below
    for modality in ("text", "image"):
        coll = relindex_collection(asif.settings.prefix, modality)
        if not engine.collection_exists(coll):
            held = sorted(f"{i.kind} {i.name!r} of tenant {i.tenant!r}" for i in infos if i.modality == modality)
            f = Finding(f"the relative-index collection {coll!r} is missing", True,
                        detail="recreated empty" + (f"; it held the items of {', '.join(held)}" if held else ""))
            rep.findings.append(f)
            if repair:
                indexes.ensure_collections()
                f.repaired = True
    # shared definitions first: a tenant copy is made again from its shared definition
    for info in sorted(infos, key=lambda i: (i.tenant != TENANT_SHARED, i.tenant, i.kind, i.name)):
        _check_index(asif, rep, info, indexes, repair)
    return rep


def _check_index(asif: Asif, rep: DoctorReport, info: IndexInfo, indexes: Indexes, repair: bool) -> None:
    ri, engine = asif.relindexes, asif.engine
    handle = indexes.of(info)
    label = f"{info.kind} {info.name!r} of tenant {info.tenant!r}"
    coll = ri.collection(info)
    n = engine.count(coll, index_filter(info)) if engine.collection_exists(coll) else 0
    if n != info.n_items:
        what = f"{label}: {n} of its {info.n_items} items are stored in {coll!r}"
        if info.copied_from is not None and info.tenant != TENANT_SHARED:
            f = Finding(what, True, detail="a copy of the shared definition: made again on the tenant's next query")
            rep.findings.append(f)
            if repair:
                handle.drop()
                f.repaired = True
            return
        if info.kind == "labels" and info.extra.get("prompt_vectors"):
            f = Finding(what, False, detail="it was built from prompt vectors given by the caller, which the store "
                        "does not keep: define it again with them")
        elif info.kind == "labels":
            f = Finding(what, True, detail="rebuilt from its classes and templates")
        elif info.kind == "tagging":
            f = Finding(what, True, detail="tagged again from its collection")
        else:
            f = Finding(what, False, detail="its images are lost: add the gallery again (asif gallery add)")
        rep.findings.append(f)
        if repair and isinstance(handle, Tagging):
            try:
                handle.rerun()
                f.repaired = True
            except AsifError as e:
                f.repairable, f.detail = False, f"its collection cannot be tagged again ({e})"
        elif repair and f.repairable:
            try:
                asif.define_labels(info.name, info.classes, info.templates, tenant=info.tenant, k=info.k, p=info.p,
                                   aggregation=info.aggregation, replace=True)
                f.repaired = True
            except AsifError as e:
                f.repairable, f.detail = False, f"its prompts cannot be re-encoded ({e})"
        if repair and not f.repaired:
            handle.drop()  # a record without its items would only fail later: the name is free again
            f.detail += "; its record was removed: define it again"
        return
    if not ri.is_current(info):
        f = Finding(f"{label} is behind its anchors", True, detail="rebuilt from its items")
        rep.findings.append(f)
        if repair:
            handle.rebuild()
            f.repaired = True
