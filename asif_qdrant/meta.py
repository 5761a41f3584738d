"""The meta collection: applied migrations, the encoder fingerprint, tenant revisions, relative-index records.

A small key-value store on a Qdrant collection (one point per key, id = hash of the key).
Collection names live here too, so that one module owns them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from .engines.base import CollectionSpec, Engine, Filter, Match, MatchAny, PointBatch
from .errors import SchemaError
from .names import meta_collection
from .validate import check_tenant_name

R = TypeVar("R")


def from_record(cls: type[R], value: Any, key: str) -> R:
    """A dataclass from a stored meta record; a record with unknown or missing fields is a SchemaError that names
    the record and the fields, not a TypeError."""
    if not isinstance(value, dict):
        raise SchemaError(f"meta record {key!r} is a {type(value).__name__}, not an object: run `asif doctor`")
    try:
        return cls(**value)
    except TypeError as e:
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        raise SchemaError(
            f"meta record {key!r} has fields {sorted(value)} where {cls.__name__} has {known} ({e}): the store was "
            "written by another version or edited by hand; run `asif doctor` to see what can be repaired"
        ) from None

TENANT_SHARED = "_shared"


def validate_tenant(tenant: str | None) -> str:
    """The tenant name to use: ``None`` means the shared anchors. Raises InvalidTenantError
    (a ConfigError) for a bad name."""
    if tenant is None or tenant == TENANT_SHARED:
        return TENANT_SHARED
    return check_tenant_name(tenant, TENANT_SHARED)


def index_key(tenant: str, kind: str, name: str) -> str:
    """The meta key of one relative index: structured (a JSON list), so no two (tenant, kind, name) share it."""
    return "index:" + json.dumps([tenant, kind, name], separators=(",", ":"))


@dataclass(frozen=True)
class Fingerprint:
    """Which encoders made the anchor vectors, and their dimensions."""

    image_encoder: str
    image_dim: int
    text_encoder: str
    text_dim: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key_id(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


class Meta:
    """Key-value records in the meta collection."""

    def __init__(self, engine: Engine, prefix: str) -> None:
        self.engine = engine
        self.collection = meta_collection(prefix)

    def ensure(self) -> None:
        self.engine.create_collection(self.collection, CollectionSpec(keyword_indexes={"kind": False}))

    def exists(self) -> bool:
        return self.engine.collection_exists(self.collection)

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.exists():
            return None
        recs = self.engine.retrieve(self.collection, [_key_id(key)])
        return dict(recs[0].payload.get("value", {})) if recs else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        kind = key.split(":", 1)[0]
        payload = {"key": key, "kind": kind, "value": value, "updated_at": time.time()}
        self.engine.upsert(self.collection, PointBatch([_key_id(key)], payloads=[payload]))

    def delete(self, *keys: str) -> None:
        self.engine.delete(self.collection, ids=[_key_id(k) for k in keys])

    def items(
        self, kind: str, where: Mapping[str, str | Sequence[str]] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every record whose key starts with ``kind:``, in key order; ``where``: fields of the value that must
        equal the given value (or one of the given values), filtered inside the engine."""
        if not self.exists():
            return iter(())
        conds: list[Match | MatchAny] = [Match("kind", kind)]
        for f, v in (where or {}).items():
            conds.append(Match(f"value.{f}", v) if isinstance(v, str) else MatchAny(f"value.{f}", tuple(v)))
        recs = self.engine.scroll(self.collection, filter=Filter(must=tuple(conds)))
        return iter(sorted((r.payload["key"], dict(r.payload.get("value", {}))) for r in recs))

    # -- typed helpers -------------------------------------------------------------------------
    def fingerprint(self) -> Fingerprint | None:
        v = self.get("fingerprint")
        return from_record(Fingerprint, v, "fingerprint") if v else None

    def set_fingerprint(self, fp: Fingerprint) -> None:
        self.put("fingerprint", fp.as_dict())

    def revision(self, tenant: str) -> int:
        v = self.get(f"revision:{tenant}")
        return int(v["revision"]) if v else 0

    def bump_revision(self, tenant: str) -> int:
        rev = self.revision(tenant) + 1
        self.put(f"revision:{tenant}", {"tenant": tenant, "revision": rev})
        return rev

    def set_image_roots(self, tenant: str, source: str, roots: list[str]) -> None:
        """Record the folders that the relative ``image_ref``s of ``tenant``'s anchors from ``source`` (a captions
        file) are relative to, so that reports can show the anchor pictures."""
        digest = hashlib.blake2b(source.encode(), digest_size=8).hexdigest()
        self.put(f"image_root:{tenant}:{digest}", {"tenant": tenant, "source": source, "roots": list(roots)})

    def image_roots(self, tenants: tuple[str, ...]) -> list[str]:
        """The recorded image roots of these tenants' sources, without repeats."""
        recs = [v for _, v in self.items("image_root") if v.get("tenant") in tenants]
        return list(dict.fromkeys(r for v in recs for r in v.get("roots", [])))

    def delete_image_roots(self, tenant: str) -> None:
        keys = [k for k, v in self.items("image_root") if v.get("tenant") == tenant]
        if keys:
            self.delete(*keys)
