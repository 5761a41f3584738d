"""Edits of the anchors and what follows them: add (explicit ids that exist are replacements, rolled back when the
write fails), replace, delete, delete a tenant; the relative indexes, taggings and prototypes follow each edit.

The facade takes the lock and delegates here; the anchor points and their records are written by
:class:`~asif_qdrant.anchors.AnchorStore`, the indexes' items by :class:`~asif_qdrant.relindex.RelIndexes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .anchors import AddResult, AnchorStore
from .engines.base import Filter
from .errors import ConfigError, InvalidInputError, NotFoundError
from .meta import TENANT_SHARED, validate_tenant
from .prototypes import Prototypes
from .relindex import RelIndexes
from .settings import AsifSettings
from .tagging import Taggings
from .validate import check_limit


@dataclass
class DeleteResult:
    """The ids deleted, and how many relative-index items each index had updated."""

    deleted: list[int]
    items_touched: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """How many anchors were deleted."""
        return len(self.deleted)

    def as_dict(self) -> dict[str, Any]:
        return {"deleted": list(self.deleted), "items_touched": dict(self.items_touched)}


class Stores(Protocol):
    """What the edits work with: the facade's long-lived stores."""

    settings: AsifSettings

    @property
    def anchors(self) -> AnchorStore: ...

    @property
    def relindexes(self) -> RelIndexes: ...

    @property
    def taggings(self) -> Taggings: ...

    @property
    def prototypes(self) -> Prototypes: ...


def check_id_count(ids: Any, max_ids: int) -> None:
    """At most ``max_ids`` ids in one call (ASIF_MAX_IDS); a value that is not a list is refused further down."""
    if ids is not None and hasattr(ids, "__len__") and not isinstance(ids, (str, bytes)):
        check_limit(len(ids), max_ids, "ids", "ASIF_MAX_IDS")


class AnchorEdits:
    """The edits of one store's anchors. Runs under the facade's exclusive lock (of the tenant, or of the store)."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def add(
        self,
        image_vectors: Any,
        text_vectors: Any,
        captions: Sequence[str | None] | None,
        payloads: Sequence[Mapping[str, Any]] | None,
        tenant: str | None,
        ids: Sequence[int] | None,
        *,
        image_refs: Sequence[str | None] | None = None,
        image_encoder: str | None = None,
        text_encoder: str | None = None,
        content_keys: Sequence[bytes] | None = None,
    ) -> AddResult:
        """Add anchor pairs, all or nothing (see ``Asif.add_vectors``). Explicit ``ids`` that exist for the tenant
        are replacements: the old pairs leave through the incremental path first, and come back when the write
        fails, so that a failed edit changes nothing."""
        store = self.stores.anchors
        store.check_encoders(image_encoder, text_encoder)
        kwargs: dict[str, Any] = {"captions": captions, "payloads": payloads, "tenant": tenant, "ids": ids,
                                  "image_refs": image_refs, "content_keys": content_keys}
        removed: dict[str, int] = {}
        if ids is None:
            res = store.add(image_vectors, text_vectors, **kwargs)
        else:
            # validate everything first, then remove the old pairs through the incremental path, so that the
            # relative indexes stay exact without a rebuild
            store.validate_pairs(image_vectors, text_vectors, captions, payloads, ids, image_refs)
            t = validate_tenant(tenant)
            store.check_id_owners([int(i) for i in ids], t)
            before = store.own_records(ids, t, with_vectors=True)
            if before:
                removed = self.delete([r.id for r in before], tenant=t).items_touched
            try:
                res = store.add(image_vectors, text_vectors, **kwargs)
            except BaseException:
                self.restore(t, [int(i) for i in ids], before)
                raise
        if res.new_ids and res.new_image is not None and res.new_text is not None:
            res.items_touched = self.stores.relindexes.apply_added(res.tenant, res.new_ids, res.new_image,
                                                                   res.new_text)
        for key, n in removed.items():
            res.items_touched[key] = res.items_touched.get(key, 0) + n
        if res.new_ids or removed:
            self.stores.prototypes.after_edit(res.tenant, payloads)  # before the tags: taught classes score with them
        if res.new_ids and res.new_image is not None and res.new_text is not None:
            self.stores.taggings.after_edit(res.tenant)
        return res

    def restore(self, tenant: str, ids: list[int], before: list[Any]) -> None:
        """Undo a replacement whose write failed: the anchors come back as they were (same ids, vectors and
        payloads) and the relative indexes, taggings and prototypes follow."""
        old, img, txt = self.stores.anchors.restore(tenant, ids, before)
        if old:
            self.stores.relindexes.apply_added(tenant, old, img, txt)
        self.stores.prototypes.after_edit(tenant)  # before the tags: taught classes score with them
        if old:
            self.stores.taggings.after_edit(tenant)

    def replace(
        self,
        ids: Sequence[int],
        image_vectors: Any,
        text_vectors: Any,
        captions: Sequence[str | None] | None,
        payloads: Sequence[Mapping[str, Any]] | None,
        tenant: str | None,
    ) -> AddResult:
        """Replace the tenant's anchors ``ids`` by new pairs (same ids); validated before anything changes, and
        refused when one of the ids is not an anchor of the tenant."""
        t = validate_tenant(tenant)
        check_id_count(ids, self.stores.settings.max_ids)
        store = self.stores.anchors
        store.validate_pairs(image_vectors, text_vectors, captions, payloads, ids, None)
        existing = {r.id for r in store.own_records(ids, t)}
        missing = [i for i in ids if int(i) not in existing]
        if missing:
            raise InvalidInputError(
                f"anchor id {missing[0]} does not exist for tenant {t!r}: replace only existing anchors "
                "(add new ones with add_vectors)"
            )
        return self.add(image_vectors, text_vectors, captions, payloads, t, ids)

    def delete(
        self, ids: Sequence[int] | None = None, *, tenant: str | None = None, filter: Filter | None = None,
        all: bool = False,
    ) -> DeleteResult:
        """Delete anchors of ``tenant`` by ids or filter (or every one with ``all``); the relative indexes,
        taggings and prototypes follow."""
        if ids is None and filter is None and not all:
            raise ConfigError("delete needs ids=[...], filter=... or all=True (to delete every anchor of the tenant)")
        t = validate_tenant(tenant)
        check_id_count(ids, self.stores.settings.max_ids)
        gone, img, txt = self.stores.anchors.delete_with_vectors(ids=ids, tenant=t, filter=filter)
        touched = self.stores.relindexes.apply_deleted(t, gone, img, txt) if gone else {}
        if gone:
            self.stores.prototypes.after_edit(t)
            self.stores.taggings.after_edit(t)
        return DeleteResult(gone, touched)

    def delete_tenant(self, tenant: str) -> dict[str, int]:
        """Delete a tenant: its taggings (their tags leave the user's points first), its label sets and galleries,
        its prototypes, its anchors and its records."""
        t = validate_tenant(tenant)
        if t == TENANT_SHARED:
            raise ConfigError(
                f"{TENANT_SHARED!r} holds the anchors every tenant shares and cannot be deleted as a tenant: "
                "delete its anchors with delete(all=True) instead"
            )
        if t not in self.stores.anchors.tenants():
            raise NotFoundError(f"tenant {t!r} does not exist: see `asif tenants list`")
        taggings = self.stores.taggings
        for info in taggings.all(t):
            taggings.delete(info)
        n_indexes = self.stores.relindexes.delete_tenant(t)
        self.stores.prototypes.delete_tenant(t)
        anchors = self.stores.anchors.delete_tenant(t)
        return {"anchors": len(anchors), "indexes": n_indexes}
