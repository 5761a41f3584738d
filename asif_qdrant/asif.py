"""The facade users meet first: ``Asif.open()``, then add anchors, define labels, classify, search."""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import embedding
from . import migrate as _migrate
from .anchors import AddResult, AnchorStore
from .coverage import Coverage, label_coverage
from .edits import AnchorEdits
from .edits import DeleteResult as DeleteResult  # re-exported: the result type of Asif.delete
from .embedding import CacheArg, Embedder, ImageLimits
from .engines import create_engine
from .engines.base import Engine, Filter
from .errors import AsifError, FingerprintMismatchError, NotFoundError
from .handles import Indexes
from .locking import ScopedLock
from .meta import Fingerprint, Meta, validate_tenant
from .prototypes import Prototypes, mix_of, prototype_terms
from .relindex import IndexInfo, Kind, RelIndexes
from .search_options import SearchConfig
from .settings import AsifSettings
from .settings import make_settings as make_settings  # re-exported: the CLI, the server and the tools use it
from .stores import StoreParts
from .tagging import Taggings, TagInfo
from .teaching import TEACH_TEMPLATE, TeachReport
from .validate import check_name, check_top
from .zeroshot import (
    Prediction,
    SearchHit,
    check_correction,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

if TYPE_CHECKING:
    from .correction import Corrections
    from .doctor import DoctorReport
    from .encoders import Encoder
    from .explain import Explanation
    from .scoring import LabelModel


def _tenant_arg(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], str | None]:
    """How to find the tenant a call acts on: its ``tenant`` argument, or its ``info``'s tenant; None (store-wide)
    for a method without one. A tenant that is not valid is left for the method to refuse."""
    params = list(inspect.signature(fn).parameters)[1:]  # without self
    for name in ("tenant", "info"):
        if name in params:
            pos = params.index(name)

            def find(args: tuple[Any, ...], kwargs: dict[str, Any], name: str = name, pos: int = pos) -> str | None:
                value = kwargs.get(name, args[pos] if pos < len(args) else None)
                value = getattr(value, "tenant", None) if name == "info" else value
                try:
                    return validate_tenant(value)
                except AsifError:
                    return None
            return find
    return lambda args, kwargs: None


def _reads(fn: F) -> F:
    """A read of the store: runs under the facade's shared lock (and its tenant's), in parallel with other reads
    and with other tenants' edits."""
    tenant_of = _tenant_arg(fn)

    @functools.wraps(fn)
    def wrapper(self: Asif, *args: Any, **kwargs: Any) -> Any:  # inputs are encoded outside it (embedding.inputs)
        return embedding.reading(lambda: self._lock.read(tenant_of(args, kwargs), fn, self, *args, **kwargs))

    return cast(F, wrapper)


def _writes(fn: F) -> F:
    """An edit of the store, whole (readers see before or after): of one tenant's model under that tenant's
    exclusive lock (other tenants go on), of the shared anchors or definitions under the store's exclusive lock."""
    tenant_of = _tenant_arg(fn)

    @functools.wraps(fn)
    def wrapper(self: Asif, *args: Any, **kwargs: Any) -> Any:
        return self._lock.write(tenant_of(args, kwargs), fn, self, *args, **kwargs)

    return cast(F, wrapper)


class Asif:
    """A zero-shot multimodal model made of two frozen encoders and a store of image-caption anchor pairs.

    >>> asif = Asif.open("./asif-data")            # embedded Qdrant Edge
    >>> asif = Asif.open(url="http://localhost:6333")  # a Qdrant server or cluster

    Threads: one ``Asif`` may be shared by any number of threads. Reads (classify, search, explain, the
    listings and counts) run in parallel; each edit (add, delete, replace, define a label set or gallery, refresh,
    delete a tenant, optimize, migrate) runs alone and whole, so every answer is that of the store before or
    after each concurrent edit, never of a half-applied one. A read never deletes or recreates a collection:
    when it finds an index to repair (an edit made behind the plugin's back) or to copy for a tenant, it waits for
    the exclusive lock, checks again and repairs it once. Encoding (images, captions, prompts) happens outside the
    lock. Across processes (several servers on one Qdrant), the revisions in the meta collection decide.
    """

    def __init__(
        self, engine: Engine, settings: AsifSettings, *, migrate: bool = True, fingerprint: Fingerprint | None = None
    ) -> None:
        """``fingerprint``: the encoders' names and dimensions for a new store, when no encoder is loaded to
        learn them (a store that has one keeps its own)."""
        self._lock = ScopedLock(settings.lock_timeout_s)
        self._cache_lock = threading.Lock()  # guards the encoders and the stores, built once by whoever asks first
        self.engine = engine
        self.settings = settings
        self.meta = Meta(engine, settings.prefix)
        if self.meta.exists():
            _migrate.check_schema(self.meta)
        self._parts = StoreParts(engine, settings, self.meta, fingerprint, self._cache_lock)
        self._encoders: dict[str, Encoder] = {}
        self.encoder_load_seconds = 0.0  # time spent loading models, kept out of throughput figures
        self._corrections: Corrections | None = None
        self._taggings: Taggings | None = None
        self._indexes = Indexes(self, self._lock)  # the handles on the label sets, galleries and taggings
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
        create: bool = True,
        **overrides: Any,
    ) -> Asif:
        """Open (or create) a store: embedded Qdrant Edge at ``path`` by default, a server at ``url``,
        or an existing ``QdrantClient``. Pending migrations are applied unless ``migrate=False``.
        ``create=False``: an embedded store whose folder does not exist is refused (NotFoundError) instead of
        created, so that a mistyped path does not look like an empty store."""
        s = make_settings(settings, path=path, url=url, api_key=api_key, **overrides)
        if not create and s.url is None and client is None and not Path(s.path).exists():
            raise NotFoundError(
                f"store {str(s.path)!r} does not exist: check --path (ASIF_PATH), or create it with "
                "`asif ingest FOLDER` (or Asif.open(path) with create=True)"
            )
        engine = create_engine(s, client=client)
        try:
            return cls(engine, s, migrate=migrate)
        except BaseException:
            engine.close()
            raise

    def close(self) -> None:
        """Close the store, after the reads and edits in flight (it takes the exclusive lock, waiting as long as
        they take, whatever ASIF_LOCK_TIMEOUT_S)."""
        self._lock.write_untimed(self._parts.close)

    def __enter__(self) -> Asif:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> Fingerprint:
        """The encoders' names and dimensions: the store's own, or (a new store) the settings' encoders'."""
        return self._parts.fingerprint

    def _context(self) -> _migrate.MigrationContext:
        return _migrate.MigrationContext(self.engine, self.settings, self.meta, self._parts.known_fingerprint)

    @_writes
    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names of the steps applied."""
        pending = [s for s in self.migration_status() if s.applied_at is None]
        if not pending:
            return []
        ctx = self._context()
        ctx.fingerprint = self.fingerprint
        return [f"{s.version:04d}_{s.name}" for s in _migrate.migrate(ctx)]

    @_writes
    def doctor(self, repair: bool = False) -> DoctorReport:
        """What is wrong with the store (schema, collections, relative indexes) and, with ``repair``, the repair of
        what can be rebuilt from what remains; lost anchors are reported, never invented."""
        from .doctor import diagnose

        ctx = self._context()
        try:
            ctx.fingerprint = self.fingerprint
        except AsifError:
            ctx.fingerprint = None
        return diagnose(self, ctx, self._indexes, repair)

    @_reads
    def migration_plan(self) -> list[tuple[str, list[str]]]:
        """What :meth:`migrate` would do: each pending step and the changes it would make; changes nothing."""
        return _migrate.dry_run(self._context())

    @_reads
    def migration_status(self) -> list[_migrate.StepState]:
        """Applied and pending migration steps; changes nothing."""
        return _migrate.status(self._context())

    @property
    def anchors(self) -> AnchorStore:
        """The anchor pairs' store: one long-lived object per facade."""
        return self._parts.anchors

    # -- anchors -------------------------------------------------------------------------------
    @_writes
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
        content_keys: Sequence[bytes] | None = None,
    ) -> AddResult:
        """Add anchor pairs from precomputed vectors, all or nothing: the result holds the id of every input row,
        the counts of added and already-stored pairs, and the relative-index items each index had updated.
        Explicit ``ids`` that exist for the tenant are replacements (the old pairs go through the incremental
        path, and come back when the write fails)."""
        return AnchorEdits(self).add(image_vectors, text_vectors, captions, payloads, tenant, ids,
                                     image_refs=image_refs, image_encoder=image_encoder, text_encoder=text_encoder,
                                     content_keys=content_keys)

    def teach(
        self,
        folder: str | Path,
        *,
        tenant: str | None,
        template: str = TEACH_TEMPLATE,
        per_class: int | None = None,
        cache: bool = True,
    ) -> TeachReport:
        """Teach by example: every image of ``folder/<class>/`` becomes an anchor pair of ``tenant``: the image,
        and ``template`` filled with the class name (``"a photo of a cat."``). The model changes at once, without
        training; a few examples per class lift zero-shot accuracy a lot (README, "Teaching by example"). Teach
        every class of the label set: one class alone can dominate every label's score (``explain`` warns).

        ``per_class``: only the first N images (sorted) of each class. Ids come from the content (the image
        file's bytes and the caption, as in ``asif add`` / ingest), so teaching the same examples again adds
        nothing. ``cache``: the store's embedding cache (shared with ingest), so images seen before are not
        encoded again. All or nothing: an unreadable image raises InvalidInputError naming it, before anything
        is stored. Encoding runs outside the lock; the pairs are added as one edit."""
        from .teaching import teach

        return teach(self, folder, tenant=tenant, template=template, per_class=per_class, cache=cache)

    def set_encoder(self, modality: str, encoder: Encoder) -> None:
        """Use an already loaded encoder (it must match the store's fingerprint)."""
        fp = self.fingerprint
        name, dim = (fp.image_encoder, fp.image_dim) if modality == "image" else (fp.text_encoder, fp.text_dim)
        if encoder.name != name or encoder.dim != dim:
            raise FingerprintMismatchError(
                f"{modality} encoder {encoder.name!r} ({encoder.dim}-d) does not match this store's {name!r} "
                f"({dim}-d): pass an encoder created with create_encoder({name!r})"
            )
        self._encoders[modality] = encoder

    @_writes
    def delete(
        self, ids: Sequence[int] | None = None, *, tenant: str | None = None, filter: Filter | None = None,
        all: bool = False,
    ) -> DeleteResult:
        """Delete anchors of ``tenant`` by ids or filter (or every one with ``all=True``): the result holds the ids
        deleted (``count`` of them) and the relative-index items each index had updated."""
        return AnchorEdits(self).delete(ids, tenant=tenant, filter=filter, all=all)

    @_writes
    def replace(
        self,
        ids: Sequence[int],
        image_vectors: Any,
        text_vectors: Any,
        captions: Sequence[str | None] | None = None,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        tenant: str | None = None,
    ) -> AddResult:
        """Replace the tenant's anchors ``ids`` by new pairs (same ids). Validated before anything changes."""
        return AnchorEdits(self).replace(ids, image_vectors, text_vectors, captions, payloads, tenant)

    @_writes
    def optimize(self, relayout: bool = True) -> bool:
        """Build the anchors collection's HNSW graph / quantized vectors, where it was created with them (search
        settings at creation). Qdrant Edge has no background optimizer: call this after bulk loads; a server is
        waited for. True if anything was rebuilt.

        ``relayout``: on Qdrant Edge, an anchors collection in more segments than search threads (a bulk load
        seals one every 64 MB), or in one (created before segment layouts existed), is first rewritten into one
        sealed segment per search thread (a copy, then a swap; ids, vectors and payloads unchanged, so label sets
        stay valid)."""
        return self.anchors.optimize(relayout)

    @_reads
    def tenants(self) -> list[str]:
        """Tenants with an anchor set (ever written through the plugin)."""
        return self.anchors.tenants()

    @_writes
    def copy_anchors_from(self, source: Asif, filter: Filter | None = None) -> int:
        """Copy ``source``'s anchors matching ``filter`` into this store (both on one engine, e.g. a store under
        another prefix); the copied tenants' revisions are bumped. Returns the number copied."""
        return self.anchors.copy_from(source.anchors, filter)

    @_writes
    def record_image_roots(self, tenant: str | None, source: str, roots: list[str]) -> None:
        """Record where the relative image refs of ``tenant``'s anchors from ``source`` live (used by ingest)."""
        self.anchors.record_image_roots(validate_tenant(tenant), source, roots)

    @_writes
    def delete_tenant(self, tenant: str) -> dict[str, int]:
        """Delete a tenant: its anchors, its label sets and galleries, and its meta records."""
        return AnchorEdits(self).delete_tenant(tenant)

    @_reads
    def image_roots(self, tenant: str | None = None) -> list[Path]:
        """The folders that relative anchor ``image_ref``s of ``tenant``'s scope (its own and the shared anchors)
        are relative to, as recorded by ingest for each source."""
        return self.anchors.image_roots(validate_tenant(tenant))

    @_reads
    def count(self, tenant: str | None = None, *, all_tenants: bool = False) -> int:
        """Anchors visible to ``tenant`` (its own; None = the shared set), or every anchor with all_tenants."""
        return self.anchors.count(tenant, all_tenants=all_tenants)

    @_reads
    def stats(self) -> dict[str, dict[str, int]]:
        """Per tenant: anchor count and revision."""
        return self.anchors.stats()

    # -- encoders ------------------------------------------------------------------------------
    def encoder(self, modality: str) -> Encoder:
        """The store's image or text encoder, loaded once."""
        enc = self._encoders.get(modality)
        if enc is not None:
            return enc
        with self._cache_lock:  # loaded once, even when several threads ask first at the same time
            if modality not in self._encoders:
                from .encoders import create_encoder

                t = time.perf_counter()
                name = self.fingerprint.image_encoder if modality == "image" else self.fingerprint.text_encoder
                self._encoders[modality] = create_encoder(name, cache_dir=self.settings.resolved_cache_dir)
                self.encoder_load_seconds += time.perf_counter() - t
            return self._encoders[modality]

    @property
    def image_limits(self) -> ImageLimits:
        """The decoding bounds of this store's settings (ASIF_MAX_IMAGE_PIXELS, ASIF_MAX_REQUEST_PIXELS)."""
        return ImageLimits(self.settings.max_image_pixels, self.settings.max_request_pixels)

    def embedder(self, cache: CacheArg = False) -> Embedder:
        """The one path from inputs to vectors with this store's encoders (embedding.py): decoding within
        :attr:`image_limits`, batches, progress, on_error. ``cache``: the store's embedding cache (True), an open
        EmbeddingCache, or none (False). Use it as a context manager when it opens the cache."""
        fp, (store, owned) = self.fingerprint, embedding.open_cache(self.settings.resolved_cache_dir, cache)
        return Embedder(self.encoder, {"image": (fp.image_encoder, fp.image_dim), "text": (fp.text_encoder,
                        fp.text_dim)}, self.image_limits, store, owns_cache=owned)

    def encode_images(self, images: Sequence[Any]) -> Any:
        """Vectors of images (paths, bytes or PIL images), decoded one at a time within :attr:`image_limits`."""
        return self.embedder().images(images, budget=True).vectors

    def encode_texts(self, texts: Sequence[str]) -> Any:
        return self.embedder().texts(texts)

    def input_vectors(self, modality: str, raw: Sequence[Any] | None, vectors: Any, what: str) -> Any:
        """A query's vectors: ``raw`` inputs encoded (outside the lock, in a read), or ``vectors`` validated."""
        return embedding.input_vectors(self.embedder(), modality, raw, vectors, what)

    # -- relative indexes ----------------------------------------------------------------------
    @property
    def relindexes(self) -> RelIndexes:
        """The label sets' and galleries' store: one long-lived object per facade, which owns the per-index caches
        (item thresholds, when the stored count was last checked). Its anchor search follows ``search_config``."""
        return self._parts.relindexes

    @property
    def corrections(self) -> Corrections:
        """The label sets' reference samples and score corrections (correction.py): one per facade (it caches)."""
        if self._corrections is None:
            from .correction import Corrections

            ri = self.relindexes
            with self._cache_lock:
                if self._corrections is None:
                    self._corrections = Corrections(ri)
        return self._corrections

    @property
    def taggings(self) -> Taggings:
        """The taggings' owner (tagging.py): payload tags on users' collections, kept fresh after every edit."""
        if self._taggings is None:
            self._taggings = Taggings(
                self.relindexes, lambda name, tenant: self.label_model(self.index_info(name, tenant, "labels"), tenant))
        return self._taggings

    # -- tags on the user's collections (tagging.py) ----------------------------------------------
    @_writes
    def tag(
        self, collection: str, *, vector: str, labels: str, field: str, tenant: str | None = None,
        filter: Any = None, top: int = 3, replace: bool = False,
    ) -> TagInfo:
        """Tag every selected point of ``collection`` (its dense vector ``vector``) with the label set ``labels``,
        in the payload field ``field``, and keep the tags exact after every edit (docs/tagging.md). ``filter``: a
        Qdrant filter (dict or JSON) selecting the points; ``replace``: overwrite a field that holds other data."""
        return self.taggings.tag(collection, vector=vector, labels=labels, field=field, tenant=validate_tenant(tenant),
                                 filter=filter, top=check_top(top, self.settings.max_top, "label"), replace=replace)

    @_reads
    def list_tags(self, tenant: str | None = None) -> list[TagInfo]:
        """The taggings of ``tenant`` (``pending``: interrupted; run tag or sync_tags again to finish it)."""
        from .tagging import info_of

        return [info_of(i) for i in self.taggings.all(validate_tenant(tenant))]

    @_writes
    def delete_tags(self, field: str, tenant: str | None = None, *, collection: str | None = None) -> TagInfo:
        """Remove the tagging of ``field``: the field leaves every point it tagged; the user's other data stays."""
        t = validate_tenant(tenant)
        return self.taggings.delete(self.taggings.find(field, t, collection))

    @_writes
    def sync_tags(
        self, field: str, tenant: str | None = None, *, collection: str | None = None, ids: Sequence[Any] | None = None
    ) -> dict[str, int]:
        """Pick up points added to or deleted from the tagged collection (and, with ``ids``, points whose vectors
        were overwritten in place, which cannot be detected); finishes an interrupted tagging."""
        t = validate_tenant(tenant)
        return self.taggings.sync(self.taggings.find(field, t, collection), ids)

    @_reads
    def explain_tag(
        self, field: str, point: Any, tenant: str | None = None, *, collection: str | None = None, top: int = 10
    ) -> Explanation:
        """Explain the stored tag of one point: the explanation of that point's vector with the tagging's labels."""
        t = validate_tenant(tenant)
        info = self.taggings.find(field, t, collection)
        vec = self.taggings.point_vector(info, point)
        return self.explain(vector=vec, labels=info.extra["tagging"]["labels"], top=top, tenant=t)

    @property
    def prototypes(self) -> Prototypes:
        """The class prototypes of the tenants' taught examples (prototypes.py): one long-lived object per facade."""
        return self._parts.prototypes

    def prototype_terms(self, info: IndexInfo, vectors: Any, tenant: str) -> Any:
        """The prototype part of each label score of ``info`` for each row of ``vectors`` (B, classes), or None
        when ``tenant`` has no taught example of these classes; brought up to date first when the tenant's anchors
        changed behind the plugin's back (classify and explain both add it, so their scores agree)."""
        pr = self.prototypes
        if not pr.is_current(tenant):
            self._lock.need_write(tenant)
            pr.refresh(tenant)
        cos = pr.similarities(tenant, info.classes, vectors)
        return None if cos is None else prototype_terms(cos, mix_of(info.extra))

    def label_model(self, info: IndexInfo, tenant: str) -> LabelModel:
        """What answers for ``tenant`` with the label set ``info`` (scoring.py): the one step 3 of classify,
        explain and the payload tags."""
        from .scoring import label_model

        return label_model(self, info, tenant)

    @property
    def search_config(self) -> SearchConfig:
        """How anchor queries run: exact by default; HNSW / quantization where both the search settings and the
        anchors collection (created with them) opt in."""
        return self._parts.search_config

    def define_labels(
        self,
        name: str,
        classes: str | Sequence[str],
        templates: str | Sequence[str] | None = None,
        prompt_vectors: Any = None,
        tenant: str | None = None,
        *,
        k: int | None = None,
        p: float | None = None,
        aggregation: str = "max",
        replace: bool = False,
        correction: str | None = None,
    ) -> IndexInfo:
        """Define a label set: one prompt per class x template, as a relative index. A name the tenant already
        has is refused unless ``replace=True`` (then it is redefined).

        ``templates``: 'photo' (default, 8 CLIP templates), 'plain' ('{}'), a file, or a list.
        ``prompt_vectors``: your own text vectors, one per prompt, class-major order.
        ``correction``: 'mean', 'zscore' or 'none' (the paper's scores; default ASIF_CORRECTION): see correction.py.
        Redefining a label set (for example with another correction) clears its tau: calibrate it again.
        """
        corr = check_correction(self.settings.correction if correction is None else correction)
        check_name(name)
        plan = self._indexes.labels(name, validate_tenant(tenant)).plan(
            classes, templates, k=k, p=p, aggregation=aggregation, replace=replace, correction=corr,
            own_vectors=prompt_vectors is not None)
        if prompt_vectors is None:  # encoded outside the lock
            vecs = self.encode_texts(plan.prompts)
        else:
            vecs = plan.check_vectors(self.input_vectors("text", None, prompt_vectors, "prompts"))
        info = self._build(*plan.items(), vecs, replace)
        # from the items just built (not through index_info, whose periodic count check must stay with the queries)
        info.coverage = self._lock.read(info.tenant, label_coverage, self.relindexes, info).as_dict()["classes"]
        return info

    def add_gallery(
        self,
        name: str,
        images: Sequence[Any] | None = None,
        vectors: Any = None,
        payloads: Sequence[dict[str, Any]] | None = None,
        tenant: str | None = None,
        *,
        k: int | None = None,
        p: float | None = None,
        replace: bool = False,
    ) -> IndexInfo:
        """Define a gallery of images for text-to-image search, as a relative index. A name the tenant already
        has is refused unless ``replace=True`` (then it is rebuilt from these images)."""
        check_name(name)
        plan = self._indexes.gallery(name, validate_tenant(tenant)).plan(
            k=k, p=p, replace=replace, n_images=len(images) if images is not None else None)
        vecs = self.input_vectors("image", images, vectors, "images")  # encoded outside the lock
        info, pls = plan.items(vecs.shape[0], images, payloads)
        return self._build(info, pls, vecs, replace)

    @_reads
    @_writes
    def delete_index(self, name: str, tenant: str | None = None, kind: Kind | None = None) -> IndexInfo:
        """Delete the label set or gallery ``name`` of ``tenant``; deleting one defined for all tenants (tenant None)
        deletes every tenant's copy of it too. ``kind`` None: the one of that name (refused when both exist)."""
        return self._indexes.get(name, validate_tenant(tenant), kind).delete()

    @_writes
    def _build(self, info: IndexInfo, payloads: Sequence[Mapping[str, Any]], vecs: Any, replace: bool) -> IndexInfo:
        """(Re)define an index from items encoded before, outside the lock (the name is checked again under it)."""
        return self._indexes.of(info).define(info, vecs, payloads, replace)

    @_reads
    def check_name_free(self, name: str, tenant: str | None = None, kind: Kind = "labels") -> None:
        """AlreadyExistsError (naming --replace) when ``tenant`` already has a label set or gallery ``name``."""
        self._indexes.get(name, validate_tenant(tenant), kind).check_new(False)

    def delete_labels(self, name: str, tenant: str | None = None) -> IndexInfo:
        """Delete a label set of ``tenant`` (its prompts and its record); anchors are not touched."""
        return self.delete_index(name, tenant, "labels")

    def delete_gallery(self, name: str, tenant: str | None = None) -> IndexInfo:
        """Delete a gallery of ``tenant`` (its items and its record); anchors are not touched."""
        return self.delete_index(name, tenant, "gallery")

    def list_labels(self, tenant: str | None = None) -> list[IndexInfo]:
        """The label sets visible to ``tenant``."""
        return self.list_indexes(tenant, "labels")

    def list_galleries(self, tenant: str | None = None) -> list[IndexInfo]:
        """The galleries visible to ``tenant``."""
        return self.list_indexes(tenant, "gallery")

    @_reads
    def list_indexes(self, tenant: str | None = None, kind: Kind | None = None) -> list[IndexInfo]:
        """Label sets and galleries visible to ``tenant`` (its own and the shared ones)."""
        return self._indexes.listing(validate_tenant(tenant), kind)

    @_reads
    def index_info(self, name: str, tenant: str, kind: Kind) -> IndexInfo:
        """The index that answers for ``tenant``, up to date with its anchors.

        A label set defined for all tenants gets a tenant copy once the tenant has anchors of its own. An index
        that is behind (an edit made behind the plugin's back, or an interrupted update) is rebuilt here, so a
        query never answers from a stale model: exactness over latency, and the rebuild happens once.
        """
        return self._indexes.get(name, tenant, kind).current()

    @_writes
    def annotate_index(
        self, name: str, tenant: str | None = None, kind: Kind = "labels", *, extra: Mapping[str, Any],
        tau: float | None = None,
    ) -> IndexInfo:
        """Store notes (``extra`` fields, e.g. a tuning or calibration record) and optionally the threshold ``tau``
        on the label set or gallery that answers for ``tenant``. A set defined for all tenants gets a tenant copy
        first, so that one tenant's notes and tau never change another tenant's answers."""
        return self._indexes.get(name, validate_tenant(tenant), kind).annotate(extra, tau)

    @_writes
    def refresh(
        self, name: str | None = None, *, tenant: str | None = None, kind: Kind | None = None
    ) -> list[IndexInfo]:
        """Rebuild one label set or gallery (or every one of ``tenant``) from the current anchors."""
        return self._indexes.refresh(name, validate_tenant(tenant), kind)

    # -- zero-shot -----------------------------------------------------------------------------
    @_reads
    def classify(
        self,
        images: Sequence[Any] | None = None,
        vectors: Any = None,
        labels: str = "",
        top: int = 5,
        tenant: str | None = None,
        *,
        aggregation: str | None = None,
        tau: float | None = None,
    ) -> list[Prediction]:
        """Zero-shot classification: the top labels of each image, each with its score and best prompt."""
        tenant = validate_tenant(tenant)
        top = check_top(top, self.settings.max_top, "label")
        model = self.label_model(self.index_info(labels, tenant, "labels"), tenant)
        vecs = self.input_vectors("image", images, vectors, "images")
        reps = self.relindexes.reps(vecs, "image", model.scope, model.part.k, model.part.p)
        return model.answer(self.relindexes, reps, vecs, top, aggregation, tau)[1]

    @_reads
    def search(
        self,
        text: str | Sequence[str] | None = None,
        vector: Any = None,
        gallery: str = "",
        top: int = 10,
        tenant: str | None = None,
    ) -> list[list[SearchHit]]:
        """Text-to-image search in a gallery: per query, the best items with their scores."""
        tenant = validate_tenant(tenant)
        top = check_top(top, self.settings.max_top, "result")
        info = self.index_info(gallery, tenant, "gallery")
        vecs = self.input_vectors("text", text, vector, "text")
        return self._indexes.gallery(gallery, tenant).search(info, vecs, top)

    @_reads
    def coverage(self, labels: str, tenant: str | None = None) -> Coverage:
        """How well ``tenant``'s anchors support each class of the label set ``labels``: per class, a support
        figure (anchor pairs whose caption is close to its prompts) and a verdict, supported / weak / unsupported,
        with the fix for the others (coverage.py). Computed on read from the label set's current items."""
        tenant = validate_tenant(tenant)
        return label_coverage(self.relindexes, self.index_info(labels, tenant, "labels"))

    # -- explanations and abstention -----------------------------------------------------------
    @_reads
    def explain(
        self,
        image: Any = None,
        vector: Any = None,
        labels: str = "",
        label: str | None = None,
        top: int = 10,
        tenant: str | None = None,
        *,
        n_labels: int = 1,
    ) -> Explanation:
        """Why one image gets its label: the score, the best prompt and the ``top`` anchor pairs that contribute
        most (their contributions add up to the score). Explains ``label`` when given, else the top label."""
        from .explain import explain

        return explain(self, image, vector, labels, label, top, tenant, n_labels=n_labels)

    def exclusive(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` under the facade's exclusive lock, whole, like an edit (for a tool that
        reads and then writes the store, such as evaluation.calibrate)."""
        return self._lock.write(None, fn, *args, **kwargs)
