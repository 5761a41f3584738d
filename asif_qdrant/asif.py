"""The facade users meet first: ``Asif.open()``, then add anchors, define labels, classify, search."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import migrate as _migrate
from .anchors import AddResult, AnchorStore
from .engines import create_engine
from .engines.base import Engine, Filter
from .errors import ConfigError, FingerprintMismatchError
from .meta import Fingerprint, Meta
from .settings import AsifSettings


def make_settings(settings: AsifSettings | None = None, **overrides: Any) -> AsifSettings:
    """Settings from the environment (or ``settings``) with ``overrides`` applied; ConfigError when invalid."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        if settings is None:
            return AsifSettings(**overrides)
        return settings.model_copy(update=overrides) if not overrides else AsifSettings(
            **{**settings.model_dump(exclude_unset=True), **overrides}
        )
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "settings"
        raise ConfigError(
            f"setting {loc}={err.get('input')!r} is invalid: {err['msg']} (set it as an argument or ASIF_{loc.upper()})"
        ) from None


def _fingerprint_from_settings(settings: AsifSettings) -> Fingerprint:
    from .encoders import create_encoder, encoder_dim

    dims = []
    for name in (settings.image_encoder, settings.text_encoder):
        dim = encoder_dim(name)
        if dim is None:
            dim = create_encoder(name, cache_dir=settings.resolved_cache_dir).dim
        dims.append(int(dim))
    return Fingerprint(settings.image_encoder, dims[0], settings.text_encoder, dims[1])


class Asif:
    """A zero-shot multimodal model made of two frozen encoders and a store of image-caption anchor pairs.

    >>> asif = Asif.open("./asif-data")            # embedded Qdrant Edge
    >>> asif = Asif.open(url="http://localhost:6333")  # a Qdrant server or cluster
    """

    def __init__(self, engine: Engine, settings: AsifSettings, *, migrate: bool = True) -> None:
        self.engine = engine
        self.settings = settings
        self.meta = Meta(engine, settings.prefix)
        if self.meta.exists():
            _migrate.check_schema(self.meta)
        stored = self.meta.fingerprint()
        if stored is not None:
            self._check_settings_encoders(stored)
            self._fingerprint: Fingerprint | None = stored
        else:
            self._fingerprint = None
        if migrate:
            self.migrate()

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        settings: AsifSettings | None = None,
        migrate: bool = True,
        **overrides: Any,
    ) -> Asif:
        """Open (or create) a store: embedded Qdrant Edge at ``path`` by default, a server at ``url``,
        or an existing ``QdrantClient``. Pending migrations are applied unless ``migrate=False``."""
        s = make_settings(settings, path=path, url=url, api_key=api_key, **overrides)
        engine = create_engine(s, client=client)
        try:
            return cls(engine, s, migrate=migrate)
        except BaseException:
            engine.close()
            raise

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Asif:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_settings_encoders(self, stored: Fingerprint) -> None:
        explicit = self.settings.model_fields_set
        for field, stored_name in (("image_encoder", stored.image_encoder), ("text_encoder", stored.text_encoder)):
            asked = getattr(self.settings, field)
            if field in explicit and asked != stored_name:
                raise FingerprintMismatchError(
                    f"{field.replace('_', ' ')} {asked!r} does not match this store's {stored_name!r}: "
                    f"unset ASIF_{field.upper()}, or use another store (ASIF_PATH / ASIF_PREFIX) for {asked!r}"
                )

    # -- schema --------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> Fingerprint:
        if self._fingerprint is None:
            self._fingerprint = self.meta.fingerprint() or _fingerprint_from_settings(self.settings)
        return self._fingerprint

    def _context(self) -> _migrate.MigrationContext:
        return _migrate.MigrationContext(self.engine, self.settings, self.meta, self._fingerprint)

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names of the steps applied."""
        pending = [s for s in self.migration_status() if s.applied_at is None]
        if not pending:
            return []
        ctx = self._context()
        ctx.fingerprint = self.fingerprint
        return [f"{s.version:04d}_{s.name}" for s in _migrate.migrate(ctx)]

    def migration_status(self) -> list[_migrate.StepState]:
        """Applied and pending migration steps; changes nothing."""
        return _migrate.status(self._context())

    @property
    def anchors(self) -> AnchorStore:
        return AnchorStore(self.engine, self.settings.prefix, self.meta, self.fingerprint, self.settings.batch_size)

    # -- anchors -------------------------------------------------------------------------------
    def add_vectors(
        self,
        image_vectors: Any,
        text_vectors: Any,
        captions: Sequence[str | None] | None = None,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        tenant: str | None = None,
        ids: Sequence[int] | None = None,
        *,
        image_refs: Sequence[str | None] | None = None,
        image_encoder: str | None = None,
        text_encoder: str | None = None,
    ) -> list[int]:
        """Add anchor pairs from precomputed vectors; return their ids. All-or-nothing per call."""
        return self.add_vectors_result(
            image_vectors, text_vectors, captions, payloads, tenant, ids,
            image_refs=image_refs, image_encoder=image_encoder, text_encoder=text_encoder,
        ).ids

    def add_vectors_result(
        self,
        image_vectors: Any,
        text_vectors: Any,
        captions: Sequence[str | None] | None = None,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        tenant: str | None = None,
        ids: Sequence[int] | None = None,
        *,
        image_refs: Sequence[str | None] | None = None,
        image_encoder: str | None = None,
        text_encoder: str | None = None,
        content_keys: Sequence[bytes] | None = None,
    ) -> AddResult:
        """Like :meth:`add_vectors`, with the counts of added and duplicate pairs."""
        store = self.anchors
        store.check_encoders(image_encoder, text_encoder)
        return store.add(
            image_vectors, text_vectors, captions=captions, payloads=payloads, tenant=tenant, ids=ids,
            image_refs=image_refs, content_keys=content_keys,
        )

    def delete(
        self, ids: Sequence[int] | None = None, *, tenant: str | None = None, filter: Filter | None = None,
        all: bool = False,
    ) -> int:
        """Delete anchors of ``tenant`` by ids or filter (or every one with ``all=True``); return how many."""
        if ids is None and filter is None and not all:
            raise ConfigError("delete needs ids=[...], filter=... or all=True (to delete every anchor of the tenant)")
        return self.anchors.delete(ids=ids, tenant=tenant, filter=filter)

    def count(self, tenant: str | None = None, *, all_tenants: bool = False) -> int:
        """Anchors visible to ``tenant`` (its own; None = the shared set), or every anchor with all_tenants."""
        return self.anchors.count(tenant, all_tenants=all_tenants)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per tenant: anchor count and revision."""
        return self.anchors.stats()
