"""The anchor store: image-caption pairs as paired named vectors in one collection, with tenancy and ids.

Ids are unsigned integers below 2**32 because they double as the indices of sparse vectors. When the caller
gives no ids, an id comes from a content hash (tenant, content key) with linear probing on collision, so
adding the same pair again writes nothing new.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .engines.base import Engine, Filter, HasId, Match, PointBatch, Relayout
from .errors import FingerprintMismatchError, InvalidInputError
from .meta import TENANT_SHARED, Fingerprint, Meta, validate_tenant
from .names import anchors_collection
from .relrep import l2_normalize
from .search_options import builds_index
from .validate import MAX_ANCHOR_ID, check_ids

if TYPE_CHECKING:
    from PIL import Image

RESERVED_PAYLOAD_KEYS = frozenset({"tenant", "caption", "image_ref", "content_hash"})


@dataclass
class AddResult:
    """What an add wrote: the id of every input row, and how many were new or already stored."""

    ids: list[int]
    added: int
    duplicates: int
    duplicate_rows: list[int] = field(default_factory=list)
    tenant: str = "_shared"
    new_ids: list[int] = field(default_factory=list)
    new_image: np.ndarray | None = None  # the normalised vectors of the rows written
    new_text: np.ndarray | None = None
    items_touched: dict[str, int] = field(default_factory=dict)  # relative-index items updated, per index

    def as_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "added": self.added, "duplicates": self.duplicates,
                "items_touched": dict(self.items_touched)}


_JSON_SCALARS = (str, bool, int, type(None))


def check_payload_value(value: Any, where: str) -> None:
    """Refuse what a Qdrant payload cannot hold (checked before anything is written): NaN or infinite numbers,
    keys that are not strings, values that are not JSON (str, number, bool, null, list, dict)."""
    if isinstance(value, _JSON_SCALARS):
        return
    if isinstance(value, float):
        if not np.isfinite(value):
            raise InvalidInputError(
                f"{where} is {float(value)}: payload numbers must be finite (Qdrant refuses NaN and infinity); "
                "store null or a string instead"
            )
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"{where} has the key {k!r}, which is not a string: payload keys are strings")
            check_payload_value(v, f"{where}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for j, v in enumerate(value):
            check_payload_value(v, f"{where}[{j}]")
        return
    raise InvalidInputError(
        f"{where} is a {type(value).__name__}, which a payload cannot hold: use str, number, bool, null, list or dict"
    )


def as_matrix(x: Any, dim: int, what: str, encoder: str) -> np.ndarray:
    """Validate a (n, dim) array of finite numbers; raise InvalidInputError or FingerprintMismatchError."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what} must be a 2-D array of numbers: {e}") from e
    if arr.ndim == 1 and arr.size == dim:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidInputError(f"{what} must be a 2-D array (n, {dim}); got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise FingerprintMismatchError(
            f"{what} have dimension {arr.shape[1]}, but this store's {encoder} vectors have dimension {dim}: "
            "encode with the store's encoder, or open another store (ASIF_PATH / ASIF_PREFIX) for this model"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InvalidInputError(
            f"{what} row {int(r)} column {int(c)} is {arr[r, c]}: every value must be finite; fix or drop that row"
        )
    return arr


ID_KEY_RECORD = "id_key"


def start_id(content: str, key: bytes) -> int:
    """Where the id probing of a content hash starts: a keyed hash of it (unguessable without the store's key)."""
    return int(hashlib.blake2b(content.encode(), key=key, digest_size=4).hexdigest(), 16)


def content_hash(tenant: str, key: bytes) -> str:
    return hashlib.blake2b(tenant.encode() + b"\0" + key, digest_size=16).hexdigest()


# -- content keys: what an anchor's id is hashed from (the same pair added twice gets the same id) ----------------
def file_digest(path: Path) -> bytes:
    """sha256 of a file's bytes; InvalidInputError naming the file when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError as e:
        raise InvalidInputError(f"image file {str(path)!r} cannot be read ({e.strerror or e}): check the path") from e


def pil_digest(img: Image.Image) -> bytes:
    """sha256 of a PIL image's mode, size and pixel bytes."""
    h = hashlib.sha256(f"{img.mode}\0{img.size[0]}x{img.size[1]}\0".encode())
    h.update(img.tobytes())
    return h.digest()


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def pair_key(image_digest: bytes, caption: str) -> bytes:
    """The content key of an anchor: the image's sha256 and the caption's UTF-8 bytes."""
    return image_digest + caption.encode()


def vector_key(image: np.ndarray, text: np.ndarray, caption: str | None) -> bytes:
    """Content key of a pair given as vectors (float32 bytes of both, and the caption)."""
    return image.astype(np.float32).tobytes() + text.astype(np.float32).tobytes() + (caption or "").encode()


COPY_BATCH = 1000  # points per batch when copying between collections


def copy_points(
    engine: Engine,
    source: str,
    target: str,
    *,
    filter: Filter | None = None,
    vectors: Sequence[str] = ("image", "text"),
    batch: int = COPY_BATCH,
) -> int:
    """Copy points (same ids, payloads and the named dense vectors) between two collections of one engine."""
    n = 0
    buf: list[Any] = []

    def flush() -> None:
        if buf:
            dense = {v: np.stack([np.asarray(r.vectors[v], np.float32) for r in buf]) for v in vectors}
            engine.upsert(target, PointBatch([r.id for r in buf], dense, payloads=[r.payload for r in buf]))
            buf.clear()

    for rec in engine.scroll(source, filter=filter, with_payload=True, with_vectors=tuple(vectors), batch=batch):
        buf.append(rec)
        n += 1
        if len(buf) >= batch:
            flush()
    flush()
    return n


class AnchorStore:
    """The anchors collection of one store."""

    def __init__(self, engine: Engine, prefix: str, meta: Meta, fingerprint: Fingerprint, batch_size: int = 256):
        self.engine = engine
        self.collection = anchors_collection(prefix)
        self.meta = meta
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self._id_lock = threading.Lock()

    # -- validation ----------------------------------------------------------------------------
    def check_encoders(self, image_encoder: str | None = None, text_encoder: str | None = None) -> None:
        fp = self.fingerprint
        for given, stored, what in (
            (image_encoder, fp.image_encoder, "image"),
            (text_encoder, fp.text_encoder, "text"),
        ):
            if given is not None and given != stored:
                raise FingerprintMismatchError(
                    f"{what} encoder {given!r} does not match this store's {stored!r}: re-encode with {stored!r}, "
                    "or use another store (ASIF_PATH / ASIF_PREFIX) for vectors from that encoder"
                )

    def validate_pairs(
        self,
        image_vectors: Any,
        text_vectors: Any,
        captions: Sequence[str | None] | None,
        payloads: Sequence[Mapping[str, Any]] | None,
        ids: Sequence[int] | None,
        image_refs: Sequence[str | None] | None,
    ) -> tuple[np.ndarray, np.ndarray, list[int] | None]:
        fp = self.fingerprint
        img = as_matrix(image_vectors, fp.image_dim, "image vectors", fp.image_encoder)
        txt = as_matrix(text_vectors, fp.text_dim, "text vectors", fp.text_encoder)
        n = img.shape[0]
        if n == 0:
            raise InvalidInputError("the batch is empty: pass at least one image-text pair")
        if txt.shape[0] != n:
            raise InvalidInputError(
                f"got {n} image vectors but {txt.shape[0]} text vectors: pass one text vector per image vector"
            )
        for seq, what in ((captions, "captions"), (payloads, "payloads"), (ids, "ids"), (image_refs, "image_refs")):
            if seq is not None and len(seq) != n:
                raise InvalidInputError(f"got {len(seq)} {what} for {n} pairs: pass one per pair, or none")
        if payloads is not None:
            for i, pl in enumerate(payloads):
                if not isinstance(pl, Mapping):
                    raise InvalidInputError(f"payload {i} is {type(pl).__name__}, not a dict: pass a dict per pair")
                clash = RESERVED_PAYLOAD_KEYS & set(pl)
                if clash:
                    raise InvalidInputError(
                        f"payload {i} uses reserved field(s) {sorted(clash)}: rename them; "
                        "tenant, caption and image_ref are set through their own arguments"
                    )
                check_payload_value(pl, f"payload {i}")
        id_list = None
        if ids is not None:
            id_list = check_ids(ids)
            if len(set(id_list)) != len(id_list):
                dup = next(v for v in id_list if id_list.count(v) > 1)
                raise InvalidInputError(f"id {dup} appears twice in the batch: give every pair its own id")
        if captions is not None:
            for i, c in enumerate(captions):
                if c is not None and not isinstance(c, str):
                    raise InvalidInputError(f"caption {i} is {type(c).__name__}, not a string")
        return l2_normalize(img, "image vectors"), l2_normalize(txt, "text vectors"), id_list

    # -- ids -----------------------------------------------------------------------------------
    def assign_ids(self, hashes: Sequence[str], create_key: bool = True) -> tuple[list[int], list[bool]]:
        """Ids for content hashes: the stored id where the same content is stored, else a free slot.

        Returns (ids, is_duplicate). Deterministic for a given store state and input order.
        """
        n = len(hashes)
        key = self.id_key(create_key)
        ids = [start_id(h, key) for h in hashes]
        dup = [False] * n
        resolved = [False] * n
        taken: dict[int, str] = {}
        # duplicates inside the batch itself
        first: dict[str, int] = {}
        for i, h in enumerate(hashes):
            if h in first:
                dup[i] = True
                resolved[i] = True
            else:
                first[h] = i
        while not all(resolved):
            pending = [i for i in range(n) if not resolved[i]]
            stored = {
                r.id: r.payload.get("content_hash")
                for r in self.engine.retrieve(self.collection, [ids[i] for i in pending], with_payload=True)
            }
            for i in pending:
                pid = ids[i]
                if pid in stored and stored[pid] == hashes[i]:
                    dup[i], resolved[i] = True, True
                elif pid in stored or (pid in taken and taken[pid] != hashes[i]):
                    ids[i] = (pid + 1) % (MAX_ANCHOR_ID + 1)  # linear probing
                else:
                    taken[pid] = hashes[i]
                    resolved[i] = True
        self._legacy_duplicates(hashes, ids, dup)
        for i in range(n):
            if dup[i] and hashes[i] in first and first[hashes[i]] != i:
                ids[i] = ids[first[hashes[i]]]
        return ids, dup

    def _legacy_duplicates(self, hashes: Sequence[str], ids: list[int], dup: list[bool]) -> None:
        """Pairs stored before ids were keyed sit at their unkeyed id: found there, they are duplicates (and keep
        that id), so stores written by earlier versions keep their ids and their duplicate detection."""
        todo = [i for i in range(len(hashes)) if not dup[i]]
        if not todo:
            return
        legacy = {int(hashes[i][:8], 16): i for i in todo}
        for r in self.engine.retrieve(self.collection, list(legacy), with_payload=True):
            i = legacy.get(r.id)
            if i is not None and r.payload.get("content_hash") == hashes[i]:
                ids[i], dup[i] = r.id, True

    def id_key(self, create: bool = True) -> bytes:
        """The store's secret for anchor ids (made by the first add, kept in the meta collection): a
        content-derived id cannot be computed outside the store, so a tenant cannot probe whether another tenant
        holds a pair. ``create=False`` (a read): without one yet, a throwaway key (nothing keyed is stored)."""
        cached = getattr(self, "_key", None)
        if cached is not None:
            return cast(bytes, cached)
        stored = self.meta.get(ID_KEY_RECORD)
        if not stored and not create:
            return b"unkeyed"
        if not stored:
            self.meta.put(ID_KEY_RECORD, {"key": secrets.token_hex(16)})
            stored = self.meta.get(ID_KEY_RECORD) or {}  # the one that won, if another process made one at once
        self._key = bytes.fromhex(str(stored["key"]))
        return self._key

    def stored_mask(self, hashes: Sequence[str]) -> list[bool]:
        """Whether each content hash is stored already (the id probing of :meth:`assign_ids`; writes nothing)."""
        unique = list(dict.fromkeys(hashes))
        _, dup = self.assign_ids(unique, create_key=False)  # without repeats in the batch, a duplicate is a stored pair
        stored = dict(zip(unique, dup, strict=True))
        return [stored[h] for h in hashes]

    # -- writes --------------------------------------------------------------------------------
    def add(
        self,
        image_vectors: Any,
        text_vectors: Any,
        *,
        captions: Sequence[str | None] | None = None,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        tenant: str | None = None,
        ids: Sequence[int] | None = None,
        image_refs: Sequence[str | None] | None = None,
        content_keys: Sequence[bytes] | None = None,
    ) -> AddResult:
        """Validate the whole input, then write it in batches; on a write failure, remove what this call added."""
        tenant = validate_tenant(tenant)
        img, txt, id_list = self.validate_pairs(image_vectors, text_vectors, captions, payloads, ids, image_refs)
        n = img.shape[0]
        if content_keys is not None and len(content_keys) != n:
            raise InvalidInputError(f"got {len(content_keys)} content keys for {n} pairs")
        if content_keys is None:
            content_keys = [vector_key(img[i], txt[i], captions[i] if captions else None) for i in range(n)]
        hashes = [content_hash(tenant, k) for k in content_keys]
        # ids are chosen and written under one store-wide mutex: two tenants' edits may run at once (each under
        # its own tenant's lock), and neither may take an id that the other is about to write
        with self._id_lock:
            if id_list is None:
                id_list, dup = self.assign_ids(hashes)
            else:
                self.check_id_owners(id_list, tenant)
                dup = [False] * n
            rows = [i for i in range(n) if not dup[i]]
            written: list[int] = []
            if rows:
                # bumped before writing: a crash after the upsert still leaves the relative indexes marked behind
                self.meta.bump_revision(tenant)
            try:
                for start in range(0, len(rows), self.batch_size):
                    chunk = rows[start : start + self.batch_size]
                    pls = []
                    for i in chunk:
                        pl: dict[str, Any] = dict(payloads[i]) if payloads is not None else {}
                        pl.update(
                            tenant=tenant,
                            caption=captions[i] if captions is not None else None,
                            image_ref=image_refs[i] if image_refs is not None else None,
                            content_hash=hashes[i],
                        )
                        pls.append(pl)
                    cids = [id_list[i] for i in chunk]
                    self.engine.upsert(
                        self.collection, PointBatch(cids, {"image": img[chunk], "text": txt[chunk]}, payloads=pls)
                    )
                    written.extend(cids)
            except Exception:
                if written and ids is None:
                    self.engine.delete(self.collection, ids=written)
                raise
        return AddResult(
            id_list, len(rows), n - len(rows), [i for i in range(n) if dup[i]], tenant,
            [id_list[i] for i in rows], img[rows], txt[rows],
        )

    def check_id_owners(self, ids: list[int], tenant: str) -> None:
        """An explicit id may replace an anchor of the same tenant, never another tenant's."""
        for start in range(0, len(ids), 1000):
            for r in self.engine.retrieve(self.collection, ids[start : start + 1000], with_payload=True):
                if r.payload.get("tenant") != tenant:
                    raise InvalidInputError(
                        f"id {r.id} is already used by another anchor set: pick another id or let the store "
                        "assign ids (ids=None)"
                    )

    def delete(
        self, *, ids: Sequence[int] | None = None, tenant: str | None = None, filter: Filter | None = None
    ) -> list[int]:
        """Delete the tenant's anchors with these ids, or matching ``filter``, or all of them. Returns their ids."""
        return self.delete_with_vectors(ids=ids, tenant=tenant, filter=filter)[0]

    def delete_with_vectors(
        self, *, ids: Sequence[int] | None = None, tenant: str | None = None, filter: Filter | None = None
    ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Like :meth:`delete`, also returning the deleted anchors' image and text vectors (read before)."""
        tenant = validate_tenant(tenant)
        scope = Filter(must=(Match("tenant", tenant),))
        if ids is not None:
            if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence | np.ndarray):
                raise InvalidInputError(f"ids={ids!r} is not a list of ids: pass ids=[1, 2, 3]")
            id_list = check_ids(list(ids))
            if not id_list:
                fp = self.fingerprint
                return [], np.zeros((0, fp.image_dim), np.float32), np.zeros((0, fp.text_dim), np.float32)
            scope = scope.and_(HasId(tuple(id_list)))
        if filter is not None:
            scope = Filter(must=scope.must + filter.must, must_not=scope.must_not + filter.must_not)
        recs = sorted(
            self.engine.scroll(self.collection, filter=scope, with_payload=False, with_vectors=("image", "text")),
            key=lambda r: r.id,
        )
        gone = [r.id for r in recs]
        fp = self.fingerprint
        img = np.zeros((len(recs), fp.image_dim), np.float32)
        txt = np.zeros((len(recs), fp.text_dim), np.float32)
        for i, r in enumerate(recs):
            img[i], txt[i] = np.asarray(r.vectors["image"]), np.asarray(r.vectors["text"])
        if gone:
            self.meta.bump_revision(tenant)  # before the delete, for the same reason as in add()
            for start in range(0, len(gone), 10_000):
                self.engine.delete(self.collection, ids=gone[start : start + 10_000])
        return gone, img, txt

    def own_records(self, ids: Sequence[int], tenant: str, *, with_vectors: bool = False) -> list[Any]:
        """The stored anchors among ``ids`` that belong to ``tenant`` (with their payloads, and their image and text
        vectors with ``with_vectors``): what a replacement removes, and what its rollback puts back."""
        vectors: tuple[str, ...] = ("image", "text") if with_vectors else ()
        return [r for r in self.engine.retrieve(self.collection, [int(i) for i in ids], with_payload=True,
                                                with_vectors=vectors)
                if r.payload.get("tenant") == tenant]

    def restore(self, tenant: str, ids: Sequence[int], before: Sequence[Any]) -> tuple[list[int], np.ndarray,
                                                                                      np.ndarray]:
        """Undo a replacement whose write failed: remove what was written under ``ids`` and put the old pairs
        ``before`` back (records from :meth:`own_records` with vectors: same ids, vectors and payloads). Returns
        the restored ids and their image and text vectors, for the relative indexes to follow."""
        self.meta.bump_revision(tenant)  # before the writes, for the same reason as in add()
        self.engine.delete(self.collection, ids=[int(i) for i in ids])
        fp = self.fingerprint
        if not before:
            return [], np.zeros((0, fp.image_dim), np.float32), np.zeros((0, fp.text_dim), np.float32)
        img = np.stack([np.asarray(r.vectors["image"], np.float32) for r in before])
        txt = np.stack([np.asarray(r.vectors["text"], np.float32) for r in before])
        old = [r.id for r in before]
        self.engine.upsert(self.collection, PointBatch(old, {"image": img, "text": txt},
                                                       payloads=[dict(r.payload) for r in before]))
        return old, img, txt

    def delete_tenant(self, tenant: str) -> list[int]:
        """Delete every anchor of ``tenant`` and its records (its revision, its image roots): the tenant is gone
        from :meth:`tenants`. Returns the ids deleted."""
        gone = self.delete(tenant=tenant)
        self.meta.delete(f"revision:{tenant}")
        self.meta.delete_image_roots(tenant)
        return gone

    def copy_from(self, source: AnchorStore, filter: Filter | None = None) -> int:
        """Copy ``source``'s anchors that match ``filter`` (same ids, payloads and vectors; both stores on one
        engine) into this store, then bump the revision of every tenant stored here, so that relative indexes built
        before the copy are known to be behind. Returns the number of points copied."""
        n = copy_points(self.engine, source.collection, self.collection, filter=filter)
        tenants = {r.payload.get("tenant", TENANT_SHARED) for r in self.engine.scroll(
            self.collection, with_payload=["tenant"])}
        for t in sorted(tenants):
            self.meta.bump_revision(t)
        return n

    def record_image_roots(self, tenant: str, source: str, roots: list[str]) -> None:
        """Record the folders that the relative ``image_ref``s of ``tenant``'s anchors from ``source`` (a captions
        file) are relative to (ingest's record, read back by ``Asif.image_roots``)."""
        self.meta.set_image_roots(validate_tenant(tenant), source, roots)

    def optimize(self, relayout: bool = True) -> bool:
        """Build the collection's HNSW graph / quantized vectors where it was created with them; on an engine that
        can (Qdrant Edge), first rewrite it into one sealed segment per search thread (``relayout``; ids, vectors
        and payloads unchanged). True if anything was rebuilt."""
        changed = False
        if relayout and isinstance(self.engine, Relayout):
            changed = bool(self.engine.relayout(self.collection))
        if builds_index(self.engine.collection_spec(self.collection)):
            changed = self.engine.optimize(self.collection) or changed
        return changed

    # -- reads ---------------------------------------------------------------------------------
    def image_roots(self, tenant: str) -> list[Path]:
        """The folders that relative ``image_ref``s of ``tenant``'s scope (its own and the shared anchors) are
        relative to, as recorded by :meth:`record_image_roots`."""
        scope = (tenant, TENANT_SHARED) if tenant != TENANT_SHARED else (tenant,)
        return [Path(r) for r in self.meta.image_roots(scope)]

    def count(self, tenant: str | None = None, *, all_tenants: bool = False) -> int:
        if all_tenants:
            return self.engine.count(self.collection)
        return self.engine.count(self.collection, Filter(must=(Match("tenant", validate_tenant(tenant)),)))

    def tenants(self) -> list[str]:
        return sorted({k.split(":", 1)[1] for k, _ in self.meta.items("revision")})

    def stats(self) -> dict[str, dict[str, int]]:
        """Per tenant: anchor count and revision."""
        out = {t: {"anchors": self.count(t), "revision": self.meta.revision(t)} for t in self.tenants()}
        if self.engine.collection_exists(self.collection):
            untagged = self.engine.count(self.collection) - sum(v["anchors"] for v in out.values())
            if untagged > 0:  # an attached collection before `asif migrate`: points without a tenant are shared
                shared = out.setdefault(TENANT_SHARED, {"anchors": 0, "revision": self.meta.revision(TENANT_SHARED)})
                shared["anchors"] += untagged
        return out
