"""Handles on one relative index (a label set, a gallery, a tagging): the operations that own it.

The facade validates its arguments, takes the lock and hands each call to a handle, the way qdrant-client's
``QdrantLocal`` hands a call to a ``LocalCollection``: define (refusing a name in use unless replaced), the copy and
freshness rules a query relies on (a tenant copy of a shared index, rebuilt when it falls behind), annotate,
refresh, delete (with a shared index's tenant copies), and the repairs ``asif doctor`` makes. The items and records
are written by :class:`~asif_qdrant.relindex.RelIndexes`; a label set's reference sample by
:class:`~asif_qdrant.correction.Corrections`; tags by :class:`~asif_qdrant.tagging.Taggings`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import AlreadyExistsError, ConfigError, InvalidInputError, NotFoundError
from .locking import ScopedLock
from .meta import TENANT_SHARED, Meta
from .prototypes import Prototypes
from .relindex import RESERVED_FIELDS, IndexInfo, Kind, RelIndexes
from .settings import AsifSettings
from .tagging import Taggings
from .validate import check_items, check_k_p, check_limit
from .zeroshot import AGGREGATIONS, SearchHit, resolve_classes, resolve_templates

if TYPE_CHECKING:
    from .correction import Corrections

WHAT: dict[Kind | None, str] = {"labels": "label set", "gallery": "gallery", "tagging": "tagging",
                                "reference": "reference sample", None: "relative index"}


class Stores(Protocol):
    """What a handle works with: the facade's long-lived stores (built on first use)."""

    settings: AsifSettings
    meta: Meta

    @property
    def relindexes(self) -> RelIndexes: ...

    @property
    def corrections(self) -> Corrections: ...

    @property
    def taggings(self) -> Taggings: ...

    @property
    def prototypes(self) -> Prototypes: ...


class IndexHandle:
    """One relative index of one tenant, by name (``kind`` None: the one of that name, whatever its kind)."""

    def __init__(self, stores: Stores, lock: ScopedLock, name: str, tenant: str, kind: Kind | None) -> None:
        self.stores, self.lock, self.name, self.tenant, self.kind = stores, lock, name, tenant, kind

    @property
    def relindexes(self) -> RelIndexes:
        return self.stores.relindexes

    def info(self) -> IndexInfo | None:
        """The tenant's own record of the index (or a copy of a shared one), None when it has none."""
        return self.relindexes.info(self.name, self.tenant, self.kind)

    def check_new(self, replace: bool) -> None:
        """AlreadyExistsError (naming --replace) when the tenant already has its own index of this name."""
        old = self.info()
        if old is None or replace or old.copied_from is not None:  # a tenant copy of a shared one is not its own
            return
        raise AlreadyExistsError(
            f"{WHAT[old.kind]} {self.name!r} already exists for tenant {self.tenant!r} ({old.n_items} items): pass "
            f"replace=True (--replace) to redefine it, pick another name, or delete it first "
            f"(asif {old.kind} delete {self.name})"
        )

    def define(self, info: IndexInfo, vectors: Any, payloads: Sequence[Mapping[str, Any]],
               replace: bool) -> IndexInfo:
        """(Re)define the index from encoded items (encoded before, outside the lock). The name is checked again
        under the lock: of two concurrent definitions of a new name, the second is refused."""
        self.check_new(replace)
        info = self.relindexes.define(info, vectors, payloads)
        if info.kind == "labels":
            self.stores.corrections.draw(info)  # the reference sample of its correction (or none)
            self.stores.taggings.after_labels(info.name, info.tenant)
        return info

    def current(self) -> IndexInfo:
        """The index that answers for the tenant, up to date with its anchors.

        A label set defined for all tenants gets a tenant copy once the tenant has anchors of its own. An index
        that is behind (an edit made behind the plugin's back, or an interrupted update) is rebuilt here, so a
        query never answers from a stale model: exactness over latency, and the rebuild happens once. A reader
        never writes: it asks for the exclusive lock (``need_write``) and comes back here under it."""
        ri, tenant, kind = self.relindexes, self.tenant, self.kind
        info = ri.require(self.name, tenant, kind)
        if info.tenant == tenant and info.copied_from is not None and tenant != TENANT_SHARED:
            shared = ri.info(self.name, TENANT_SHARED, kind)
            if shared is None:  # the shared definition was deleted (an interrupted delete_index): so is the copy
                self.lock.need_write(tenant)
                ri.delete(info)
                info = ri.require(self.name, tenant, kind)
            elif shared.definition != info.copied_from:  # redefined since the copy was made
                self.lock.need_write(tenant)
                info = ri.materialise(shared, tenant)
        elif info.tenant != tenant and self.stores.meta.revision(tenant) > 0:
            self.lock.need_write(tenant)
            info = ri.materialise(info, tenant)
        check_count = ri.count_check_due(info, self.stores.settings.staleness_check_s)
        if not ri.is_current(info, check_count):
            self.lock.need_write(info.tenant)  # the shared index itself: under the store-wide lock
            info = ri.rebuild(info)
        if check_count:
            ri.count_checked(info)
        return info

    def own(self) -> IndexInfo:
        """The tenant's own index: a set defined for all tenants gets a tenant copy first, so that one tenant's
        changes never change another tenant's answers."""
        info = self.relindexes.require(self.name, self.tenant, self.kind)
        return self.relindexes.materialise(info, self.tenant) if info.tenant != self.tenant else info

    def annotate(self, extra: Mapping[str, Any], tau: float | None) -> IndexInfo:
        """Store notes (``extra``) and optionally the threshold ``tau`` on the tenant's own copy."""
        info = self.relindexes.annotate(self.own(), extra, tau)
        if info.kind == "labels" and tau is not None:  # a new tau can turn tags into "unknown" (or back)
            self.stores.taggings.after_labels(self.name, self.tenant)
        return info

    def delete(self) -> IndexInfo:
        """Delete the tenant's own index; one defined for all tenants takes every tenant's copy with it (the copies
        first: an interrupted delete leaves no copy without its shared definition)."""
        ri, what = self.relindexes, WHAT[self.kind]
        info = self.info()
        if info is None:
            raise NotFoundError(f"{what} {self.name!r} does not exist for tenant {self.tenant!r}: see list_indexes()")
        if info.copied_from is not None:
            raise NotFoundError(
                f"{what} {self.name!r} does not exist for tenant {self.tenant!r} as its own: it is defined for all "
                "tenants (delete it without a tenant)"
            )
        for c in ri.copies_of(info) if self.tenant == TENANT_SHARED else []:
            ri.delete(c)
        if info.kind == "labels":
            self.stores.corrections.delete(info)
        ri.delete(info)
        if info.kind == "labels":
            self.stores.taggings.after_labels(self.name, self.tenant)
        return info

    # -- repairs (asif doctor, under the exclusive lock) ----------------------------------------------------------
    def record(self) -> IndexInfo:
        info = self.info()
        if info is None:
            raise NotFoundError(f"{WHAT[self.kind]} {self.name!r} does not exist for tenant {self.tenant!r}")
        return info

    def rebuild(self) -> IndexInfo:
        """Recompute every item from its stored vector against the tenant's current anchors."""
        return self.relindexes.rebuild(self.record())

    def drop(self) -> None:
        """Remove the index's items and record and nothing else: a tenant copy is made again on the tenant's next
        query; a record whose items are lost frees its name."""
        info = self.info()
        if info is not None:
            self.relindexes.delete(info)


class LabelSet(IndexHandle):
    """A label set: one prompt per class x template."""

    def plan(
        self, classes: str | Sequence[str], templates: str | Sequence[str] | None, *, k: int | None,
        p: float | None, aggregation: str, replace: bool, correction: str, own_vectors: bool,
    ) -> LabelPlan:
        """Check the definition before anything is encoded: the name is free (or ``replace``), the classes,
        templates, k, p, aggregation and item count are within the settings."""
        s = self.stores.settings
        self.check_new(replace)
        cls = resolve_classes(classes)
        tpl = resolve_templates(templates)
        check_limit(len(cls), s.max_classes, "classes", "ASIF_MAX_CLASSES")
        check_limit(len(tpl), s.max_templates, "templates", "ASIF_MAX_TEMPLATES")
        kk, pp = check_k_p(k, p, s.k, s.p, s.max_k)
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation {aggregation!r} is invalid: use 'max' or 'mean'")
        check_items(len(cls) * len(tpl), s.max_items,
                    f"label set {self.name!r} ({len(cls)} classes x {len(tpl)} templates)")
        return LabelPlan(self.name, self.tenant, kk, pp, cls, tpl, aggregation, correction, own_vectors)


class Gallery(IndexHandle):
    """A gallery of images for text-to-image search."""

    def plan(self, *, k: int | None, p: float | None, replace: bool, n_images: int | None) -> GalleryPlan:
        """Check the definition before the images are encoded (``n_images``: how many, when known)."""
        s = self.stores.settings
        self.check_new(replace)
        kk, pp = check_k_p(k, p, s.k, s.p, s.max_k)
        if n_images is not None:  # refused before encoding anything
            check_items(n_images, s.max_items, f"gallery {self.name!r}")
        return GalleryPlan(self.name, self.tenant, kk, pp, s.max_items)

    def search(self, info: IndexInfo, text_vectors: Any, top: int) -> list[list[SearchHit]]:
        """Per query vector, the ``top`` items of ``info`` (the index that answers for the tenant, current) with
        their scores and payloads."""
        ri = self.relindexes
        reps = ri.reps(text_vectors, "text", self.tenant, info.k, info.p)
        return [[SearchHit(h.id, h.score, dict(h.payload or {})) for h in hits]
                for hits in ri.query(info, reps, limit=min(top, max(1, info.n_items)))]


class Tagging(IndexHandle):
    """A tagging's relative index; its tags are :class:`~asif_qdrant.tagging.Taggings`' own operations."""

    def rerun(self) -> int:
        """Tag the tagging's collection again from its definition (a repair of lost items)."""
        return self.stores.taggings.rerun(self.record())


@dataclass
class LabelPlan:
    """A label set checked before anything is encoded: :meth:`prompts` to encode, then :meth:`items`."""

    name: str
    tenant: str
    k: int
    p: float
    classes: list[str]
    templates: list[str]
    aggregation: str
    correction: str
    own_vectors: bool

    @property
    def prompts(self) -> list[str]:
        """One prompt per class x template, class-major."""
        return [t.format(c) for c in self.classes for t in self.templates]

    def check_vectors(self, vectors: Any) -> Any:
        """The caller's own prompt vectors: one per prompt, class-major order."""
        n = len(self.classes) * len(self.templates)
        if vectors.shape[0] != n:
            raise InvalidInputError(
                f"got {vectors.shape[0]} prompt vectors for {n} prompts ({len(self.classes)} classes x "
                f"{len(self.templates)} templates): pass one per prompt, class-major order"
            )
        return vectors

    def items(self) -> tuple[IndexInfo, list[dict[str, Any]]]:
        """The record and the items' payloads."""
        payloads = [{"label": c, "prompt": t.format(c), "class_index": ci, "template_index": ti}
                    for ci, c in enumerate(self.classes) for ti, t in enumerate(self.templates)]
        info = IndexInfo(self.name, self.tenant, "labels", self.k, self.p, len(payloads), {}, classes=self.classes,
                         templates=self.templates, aggregation=self.aggregation,
                         extra={"prompt_vectors": self.own_vectors}, correction=self.correction)
        return info, payloads


@dataclass
class GalleryPlan:
    """A gallery checked before its images are encoded; :meth:`items` checks the encoded ones."""

    name: str
    tenant: str
    k: int
    p: float
    max_items: int

    def items(self, n: int, images: Sequence[Any] | None,
              payloads: Sequence[Mapping[str, Any]] | None) -> tuple[IndexInfo, list[dict[str, Any]]]:
        """The record and the items' payloads of ``n`` encoded images (a path image gets its ``image_ref``)."""
        check_items(n, self.max_items, f"gallery {self.name!r}")
        if payloads is not None and len(payloads) != n:
            raise InvalidInputError(f"got {len(payloads)} payloads for {n} images: pass one per image, or none")
        pls: list[dict[str, Any]] = []
        for i in range(n):
            pl = dict(payloads[i]) if payloads is not None else {}
            bad = sorted(RESERVED_FIELDS.intersection(pl))
            if bad:
                raise InvalidInputError(
                    f"gallery payload {i} has the field {bad[0]!r}, which the plugin sets on every item "
                    f"({', '.join(sorted(RESERVED_FIELDS))}): rename it"
                )
            if images is not None and isinstance(images[i], (str, Path)):
                pl.setdefault("image_ref", str(images[i]))
            pl["item"] = i
            pls.append(pl)
        return IndexInfo(self.name, self.tenant, "gallery", self.k, self.p, n, {}), pls


HANDLES: dict[Kind | None, type[IndexHandle]] = {"labels": LabelSet, "gallery": Gallery, "tagging": Tagging,
                                                 None: IndexHandle}


class Indexes:
    """The relative indexes of one store, by name: ``indexes.labels(name, tenant)`` returns a handle."""

    def __init__(self, stores: Stores, lock: ScopedLock) -> None:
        self.stores, self.lock = stores, lock

    def get(self, name: str, tenant: str, kind: Kind | None) -> IndexHandle:
        return HANDLES.get(kind, IndexHandle)(self.stores, self.lock, name, tenant, kind)

    def labels(self, name: str, tenant: str) -> LabelSet:
        return LabelSet(self.stores, self.lock, name, tenant, "labels")

    def gallery(self, name: str, tenant: str) -> Gallery:
        return Gallery(self.stores, self.lock, name, tenant, "gallery")

    def of(self, info: IndexInfo) -> IndexHandle:
        """The handle of a record's index."""
        return self.get(info.name, info.tenant, info.kind)

    def listing(self, tenant: str, kind: Kind | None) -> list[IndexInfo]:
        """Label sets and galleries (or those of ``kind``) visible to ``tenant``: its own and the shared ones."""
        return [i for i in self.stores.relindexes.infos(tenant)
                if i.kind == kind or (kind is None and i.kind not in ("tagging", "reference"))]

    def refresh(self, name: str | None, tenant: str, kind: Kind | None) -> list[IndexInfo]:
        """Rebuild one index (or every one of ``tenant``, of ``kind``) from the current anchors; the tenant's tags
        follow the rebuilt items."""
        ri = self.stores.relindexes
        infos = ([ri.require(name, tenant, kind)] if name is not None
                 else [i for i in ri.infos(tenant, own=True) if kind is None or i.kind == kind])
        out = [ri.rebuild(i) for i in infos]
        if tenant != TENANT_SHARED:
            self.stores.prototypes.refresh(tenant)
        taggings = self.stores.taggings
        for tagging in taggings.all(tenant):
            taggings.refresh(tagging, None)
        return out

    def ensure_collections(self) -> None:
        """Create the relative-index collections that are missing (a repair: they come back empty)."""
        self.stores.relindexes.ensure_collections()
