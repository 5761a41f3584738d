"""The long-lived parts of one open store, each built once on first use by whichever thread asks first: the
encoder fingerprint, the anchor store, the relative indexes, the prototypes, and how anchor queries run.

They own per-store caches (item thresholds, count checks, id keys), so the facade keeps one of each for its life.
"""

from __future__ import annotations

import threading

from .anchors import AnchorStore
from .engines.base import Engine
from .errors import FingerprintMismatchError
from .meta import Fingerprint, Meta
from .prototypes import Prototypes
from .relindex import RelIndexes
from .search_options import SearchConfig
from .settings import AsifSettings


def fingerprint_from_settings(settings: AsifSettings) -> Fingerprint:
    """The fingerprint of a new store: the settings' encoders, their dimensions known or learnt by loading them."""
    from .encoders import create_encoder, encoder_dim

    dims = []
    for name in (settings.image_encoder, settings.text_encoder):
        dim = encoder_dim(name)
        if dim is None:
            dim = create_encoder(name, cache_dir=settings.resolved_cache_dir).dim
        dims.append(int(dim))
    return Fingerprint(settings.image_encoder, dims[0], settings.text_encoder, dims[1])


def check_settings_encoders(settings: AsifSettings, stored: Fingerprint) -> None:
    """Encoders set explicitly (argument or environment) must be the store's own."""
    explicit = settings.model_fields_set
    for fname, stored_name in (("image_encoder", stored.image_encoder), ("text_encoder", stored.text_encoder)):
        asked = getattr(settings, fname)
        if fname in explicit and asked != stored_name:
            raise FingerprintMismatchError(
                f"{fname.replace('_', ' ')} {asked!r} does not match this store's {stored_name!r}: "
                f"unset ASIF_{fname.upper()}, or use another store (ASIF_PATH / ASIF_PREFIX) for {asked!r}"
            )


class StoreParts:
    """The parts of one store; ``lock`` guards their construction (the facade's, shared with its encoders)."""

    def __init__(self, engine: Engine, settings: AsifSettings, meta: Meta, fingerprint: Fingerprint | None,
                 lock: threading.Lock) -> None:
        """``fingerprint``: the encoders' names and dimensions for a new store, when no encoder is loaded to learn
        them; a store that has one keeps its own (and refuses settings that name other encoders)."""
        self.engine, self.settings, self.meta, self.lock = engine, settings, meta, lock
        stored = meta.fingerprint()
        if stored is not None:
            check_settings_encoders(settings, stored)
        self.known_fingerprint: Fingerprint | None = stored if stored is not None else fingerprint
        self.search: SearchConfig | None = None  # final once known (exact, or the anchors collection's own)
        self.anchor_store: AnchorStore | None = None
        self.relative_indexes: RelIndexes | None = None
        self.closed = False
        self.prototype_store: Prototypes | None = None

    @property
    def fingerprint(self) -> Fingerprint:
        if self.known_fingerprint is None:
            self.known_fingerprint = self.meta.fingerprint() or fingerprint_from_settings(self.settings)
        return self.known_fingerprint

    @property
    def anchors(self) -> AnchorStore:
        store = self.anchor_store
        if store is None:
            fp = self.fingerprint
            with self.lock:
                if self.anchor_store is None:
                    self.anchor_store = AnchorStore(self.engine, self.settings.prefix, self.meta, fp,
                                                    self.settings.batch_size)
                store = self.anchor_store
        return store

    @property
    def relindexes(self) -> RelIndexes:
        ri = self.relative_indexes
        if ri is None:
            search, fp = self.search_config, self.fingerprint  # outside the lock: they may build the anchor store
            with self.lock:
                if self.relative_indexes is None:
                    self.relative_indexes = RelIndexes(self.engine, self.settings.prefix, self.meta, fp,
                                                       search=search)
                ri = self.relative_indexes
        if self.search is None:  # exact until the anchors collection exists and says how it was made
            ri.search = self.search_config
        return ri

    @property
    def prototypes(self) -> Prototypes:
        pr = self.prototype_store
        if pr is None:
            fp = self.fingerprint
            with self.lock:
                if self.prototype_store is None:
                    self.prototype_store = Prototypes(self.engine, self.settings.prefix, self.meta, fp)
                pr = self.prototype_store
        return pr

    def close(self) -> None:
        """Keep what the next process can reuse (the large indexes' thresholds), then close the engine."""
        try:
            if self.relative_indexes is not None and not self.closed:
                self.relative_indexes.save_thresholds()
        finally:
            self.closed = True
            self.engine.close()

    @property
    def search_config(self) -> SearchConfig:
        if self.search is None:
            cfg = SearchConfig.from_settings(self.settings)
            if cfg.exact:
                self.search = cfg
            elif self.engine.collection_exists(self.anchors.collection):
                self.search = cfg.for_collection(self.engine.collection_spec(self.anchors.collection))
            else:
                return cfg
        return self.search
