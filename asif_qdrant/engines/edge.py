"""EdgeEngine: Qdrant Edge (``qdrant-edge-py``), the real Qdrant engine in-process. The embedded default.

Layout under ``path``: ``collections/<name>/shard`` (one Edge shard per collection) and
``collections/<name>/spec.json`` (the plugin's CollectionSpec). A lock file keeps a second process out.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import qdrant_edge as qe

from ..errors import DiskFullError, EngineError, NotFoundError, StoreLockedError
from .base import (
    CollectionSpec,
    DenseQuery,
    Filter,
    HasId,
    Hit,
    HnswSpec,
    Match,
    MatchAny,
    PointBatch,
    QuantizationSpec,
    Query,
    Record,
    SparseVec,
    hits_to_arrays,
)
from .spec_json import spec_from_json, spec_to_json

T = TypeVar("T")

# Segment layout of a collection with dense vectors and no HNSW graph (exact search, or a full scan of quantized
# vectors). Edge searches the segments of a shard in parallel on its search thread pool (one thread per CPU), but
# a bulk load fills one appendable segment, and one segment is searched by one thread. So the engine seals the
# appendable segment (an optimizer pass: no graph, m = 0) each time SEAL_KB of the largest vector has been written
# to it, and lets the merge optimizer keep at most SEGMENTS segments. Measured (benchmarks/bench_topk.py, 100k x
# 1280-d, k = 800, 2 cores): one segment 58-66 ms per exact query, 4-8 sealed segments 28-34 ms.
SEAL_KB = 65_536
SEGMENTS = 32
LAYOUT_FILE = "layout.json"


# Qdrant Edge preallocates and memory-maps its files (a new collection's write-ahead log is 32 MiB): a write that
# finds the disk full does not fail, the process dies of SIGBUS. So writes that grow the store first check that
# this much is free, plus a multiple of what they write.
DISK_RESERVE = 64 * 2**20
DISK_GROWTH = 4  # bytes of disk per byte written, for the WAL, the segment and its indexes


def check_free_space(path: Path, need: int, what: str) -> None:
    """Raise DiskFullError naming the folder and the bytes needed when ``path``'s filesystem has less than
    ``need`` bytes free."""
    try:
        free = shutil.disk_usage(path).free
    except OSError as e:
        raise DiskFullError(f"cannot read the free space of {path} ({e}) before {what}") from e
    if free < need:
        raise DiskFullError(
            f"not enough free disk space in {path} to {what}: {need / 2**20:.1f} MiB needed, "
            f"{free / 2**20:.1f} MiB free. Free some space there, or move the store (ASIF_PATH) to a larger disk; "
            "nothing was written"
        )


def _read_only_message(path: Path, e: OSError) -> str:
    return (
        f"the embedded store at {path} is on a read-only filesystem or not writable ({e.strerror or e}): "
        "Qdrant Edge needs to write there even to read (its lock and write-ahead log); copy the store to a "
        "writable folder and point ASIF_PATH at it"
    )


def _locked_message(path: Path) -> str:
    return (
        f"the embedded store at {path} is already open in another process. "
        "Close that process (or call Asif.close() there), point ASIF_PATH at another folder, "
        "or run a Qdrant server (docker compose up -d) and set ASIF_URL so that several processes can share it"
    )


def _payload_size(payload: Mapping[str, Any]) -> int:
    """About the bytes a payload takes as JSON (for the free-space check): long strings (an item's top-k list) are
    counted by their length instead of being serialised again."""
    return sum(len(k) + (len(v) + 4 if isinstance(v, str) else len(json.dumps(v, default=str)))
               for k, v in payload.items()) + 2


class EdgeEngine:
    """Qdrant Edge shards under one folder; exact search; one process at a time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().resolve()
        try:
            (self.path / "collections").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise DiskFullError(_read_only_message(self.path, e)) from e
            raise EngineError(f"cannot create the store folder {self.path}: {e}. Choose a writable ASIF_PATH") from e
        try:
            self._lock_file = open(self.path / ".lock", "a+")  # noqa: SIM115 - held for the engine's life
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise DiskFullError(_read_only_message(self.path, e)) from e
            if e.errno == errno.ENOSPC:
                raise DiskFullError(f"the disk of {self.path} is full: free some space there") from e
            raise EngineError(f"cannot open the lock file of {self.path}: {e}") from e
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._lock_file.close()
            raise StoreLockedError(_locked_message(self.path)) from e
        self._shards: dict[str, qe.EdgeShard] = {}
        self._specs: dict[str, CollectionSpec] = {}
        self._recover_relayouts()
        self._layouts: dict[str, dict[str, int] | None] = {}
        self._unsealed: dict[str, int] = {}  # bytes of the largest vector written since the last seal
        self.description = f"Qdrant Edge at {self.path}"
        self.exclusive = True  # the folder is locked for this process (flock above)
        self._closed = False

    # -- helpers -------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self.path / "collections" / name

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as e:  # qdrant-edge raises bare Exception
            msg = str(e)
            if "WouldBlock" in msg:
                raise StoreLockedError(_locked_message(self.path)) from e
            raise EngineError(f"Qdrant Edge failed to {what}: {msg}") from e

    def _shard(self, name: str) -> qe.EdgeShard:
        if self._closed:
            raise EngineError(f"the store at {self.path} is closed: open it again with Asif.open()")
        shard = self._shards.get(name)
        if shard is None:
            d = self._dir(name)
            if not (d / "spec.json").exists():
                raise NotFoundError(
                    f"collection {name!r} does not exist in {self.path}: run `asif migrate` for a new store, or "
                    "`asif doctor --repair` for a damaged one"
                )
            shard = self._call(f"open collection {name!r}", lambda: qe.EdgeShard.load(str(d / "shard")))
            _release_freed_memory()  # loading replays the WAL: its buffers are freed, but glibc keeps them
            self._shards[name] = shard
        return shard

    # -- collections ---------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        root = self.path / "collections"
        return sorted(p.name for p in root.iterdir() if (p / "spec.json").exists() and not p.name.startswith("."))

    # -- segment layout: relayout ------------------------------------------------------------------
    def relayout(self, name: str, batch: int = 1000) -> bool:
        """Rewrite a collection into as many sealed segments as Edge has search threads (one per CPU), each
        searched by its own thread: a collection created without a segment layout (before it existed: one segment,
        one core), or one that holds more segments than that while each could be larger than SEAL_KB (a bulk
        load seals every SEAL_KB: 4 segments at 40k anchors of 1280-d, 32 at 1M). Each segment returns its own
        top k to be merged, so fewer, larger segments return fewer points: at 40k anchors, 2 segments instead of 4
        took exact classify from 4.47 to 3.93 ms per image in batches and from 15.2 to 11.3 ms one image at a time
        (benchmarks/bench_bulk.py, README "Performance"); one segment is slower (one core).

        A copy (same ids, vectors and payloads) is written beside it and swapped in once its count matches; until
        then the collection is untouched, and an interrupted run leaves it as it was. Needs free disk for one more
        copy. False if there is nothing to do."""
        spec = self.collection_spec(name)
        standard = _segment_layout(spec)
        if standard is None:
            return False
        seal_kb, batch = _balanced_seal(spec, self.count(name), standard["seal_kb"], batch)
        layout = self._layout(name)
        if layout is not None:
            segments = int(self._call(f"read info of {name!r}", self._shard(name).info).segments_count)
            if segments <= search_threads() + 1 or layout["seal_kb"] >= seal_kb:
                return False
        tmp = f".relayout-{name}"
        self.delete_collection(tmp)  # what an interrupted run left
        self.create_collection(tmp, spec, seal_kb=seal_kb)
        n = 0
        recs: list[Record] = []

        def write() -> None:
            if recs:
                self.upsert(tmp, PointBatch(
                    [r.id for r in recs],
                    {v: np.stack([np.asarray(r.vectors[v], np.float32) for r in recs]) for v in spec.dense},
                    {v: [cast(SparseVec, r.vectors[v]) for r in recs] for v in spec.sparse},
                    payloads=[r.payload for r in recs],
                ))
                recs.clear()

        try:
            for rec in self.scroll(name, with_vectors=(*spec.dense, *spec.sparse), batch=batch):
                recs.append(rec)
                n += 1
                if len(recs) >= batch:
                    write()
            write()
            self._call(f"seal {tmp!r}", self._shard(tmp).optimize)  # the last segment too, once above SEAL_KB
            if self.count(tmp) != n or self.count(name) != n:
                raise EngineError(
                    f"relayout of {name!r} stopped: the collection changed while it was copied; run it again"
                )
        except BaseException:
            self.delete_collection(tmp)  # the original is untouched; drop the partial copy (and its disk) now
            raise
        for c in (tmp, name):
            shard = self._shards.pop(c)
            self._call(f"flush {c!r}", shard.flush)
            self._call(f"close {c!r}", shard.close)
        self._specs.pop(name, None)
        self._layouts.pop(name, None)
        old = self._dir(f".old-{name}")
        os.replace(self._dir(name), old)  # from here on, _recover_relayouts finishes the swap after a crash
        os.replace(self._dir(tmp), self._dir(name))
        shutil.rmtree(old)
        self._layouts.pop(tmp, None)
        self._unsealed.pop(tmp, None)
        return True

    def _recover_relayouts(self) -> None:
        """Finish or undo a relayout that a crash interrupted in its swap."""
        root = self.path / "collections"
        for old in root.glob(".old-*"):
            name = old.name[len(".old-"):]
            tmp = root / f".relayout-{name}"
            if (root / name / "spec.json").exists():  # swapped: drop the old copy
                shutil.rmtree(old)
            elif tmp.exists() and (tmp / "spec.json").exists():  # the copy was complete: finish the swap
                os.replace(tmp, root / name)
                shutil.rmtree(old)
            else:
                os.replace(old, root / name)
        for tmp in root.glob(".relayout-*"):  # a copy interrupted before its swap: the original is intact
            shutil.rmtree(tmp)

    def collection_exists(self, name: str) -> bool:
        return (self._dir(name) / "spec.json").exists()

    def collection_spec(self, name: str) -> CollectionSpec:
        if name not in self._specs:
            f = self._dir(name) / "spec.json"
            if not f.exists():
                raise NotFoundError(f"collection {name!r} does not exist in {self.path}")
            self._specs[name] = spec_from_json(json.loads(f.read_text()))
        return self._specs[name]

    def create_collection(self, name: str, spec: CollectionSpec, seal_kb: int | None = None) -> None:
        """``seal_kb``: seal the collection's segments at this size instead of SEAL_KB (``relayout``)."""
        d = self._dir(name)
        if (d / "spec.json").exists():
            return
        if d.exists():  # a half-created collection from a crash: start it again
            shutil.rmtree(d)
        check_free_space(self.path, DISK_RESERVE, f"create collection {name!r}")
        d.mkdir(parents=True)
        on_disk = spec.quantization is not None and spec.quantization.originals_on_disk
        layout = _segment_layout(spec)
        threshold_kb = layout["seal_kb"] if layout is not None else None
        if layout is not None and seal_kb is not None:
            layout = {**layout, "seal_kb": int(seal_kb)}
        hnsw = spec.hnsw if layout is None or spec.hnsw is not None else HnswSpec(m=0)
        vectors = {
            vname: qe.EdgeVectorParams(
                size=dim,
                distance=qe.Distance.Cosine,
                quantization_config=_edge_quantization(spec.quantization),
                hnsw_config=_edge_hnsw(hnsw),
                memory=qe.Memory.Cold if on_disk else None,
            )
            for vname, dim in spec.dense.items()
        }
        sparse = {s: qe.EdgeSparseVectorParams() for s in spec.sparse}
        if not vectors and not sparse:
            sparse = {"_none": qe.EdgeSparseVectorParams()}  # Edge needs at least one vector
        optimizers: qe.EdgeOptimizersConfig | None
        if layout is not None:
            # the optimizer seals (and quantizes) a segment above the standard size: relayout's last segment too
            optimizers = qe.EdgeOptimizersConfig(
                indexing_threshold=threshold_kb,
                default_segment_number=layout["segments"],
            )
            (d / LAYOUT_FILE).write_text(json.dumps(layout))
        else:
            threshold = spec.hnsw.indexing_threshold_kb if spec.hnsw is not None else None
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=threshold) if threshold is not None else None
        config = qe.EdgeConfig(vectors=vectors or None, sparse_vectors=sparse or None, optimizers=optimizers)
        shard = self._call(f"create collection {name!r}", lambda: qe.EdgeShard.create(str(d / "shard"), config))
        ops = [
            qe.UpdateOperation.create_field_index(f, qe.KeywordIndexParams(is_tenant=is_tenant))
            for f, is_tenant in spec.keyword_indexes.items()
        ] + [
            qe.UpdateOperation.create_field_index(f, qe.IntegerIndexParams(lookup=True, range=False))
            for f in spec.integer_indexes
        ]
        for op in ops:
            self._call(f"index a payload field of {name!r}", partial(shard.update, op))
        self._call("flush", shard.flush)
        tmp = d / "spec.json.tmp"
        tmp.write_text(json.dumps(spec_to_json(spec)))
        tmp.replace(d / "spec.json")  # the collection exists once its spec is written
        self._shards[name] = shard
        self._specs[name] = spec

    def ensure_keyword_index(self, name: str, field: str, is_tenant: bool = False) -> None:
        spec = self.collection_spec(name)
        if spec.keyword_indexes.get(field) == is_tenant:
            return
        shard = self._shard(name)
        op = qe.UpdateOperation.create_field_index(field, qe.KeywordIndexParams(is_tenant=is_tenant))
        self._call(f"index payload field {field!r} of {name!r}", partial(shard.update, op))
        self._call("flush", shard.flush)
        new = replace(spec, keyword_indexes={**spec.keyword_indexes, field: is_tenant})
        d = self._dir(name)
        tmp = d / "spec.json.tmp"
        tmp.write_text(json.dumps(spec_to_json(new)))
        tmp.replace(d / "spec.json")
        self._specs[name] = new

    def delete_collection(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        self._specs.pop(name, None)
        self._layouts.pop(name, None)
        self._unsealed.pop(name, None)
        if shard is not None:
            self._call(f"close collection {name!r}", shard.close)
        d = self._dir(name)
        if d.exists():
            (d / "spec.json").unlink(missing_ok=True)
            shutil.rmtree(d)

    # -- points --------------------------------------------------------------------------------
    def upsert(self, name: str, batch: PointBatch) -> None:
        if len(batch) == 0:
            return
        shard = self._shard(name)
        payloads = batch.payloads
        size = sum(int(np.asarray(a).nbytes) for a in batch.dense.values())
        size += sum(16 * len(sv) for svs in batch.sparse.values() for sv in svs)
        if payloads is not None:
            size += sum(_payload_size(p) for p in payloads)
        check_free_space(self.path, DISK_RESERVE + DISK_GROWTH * size, f"write {len(batch)} points into {name!r}")
        # lists, not arrays: Edge converts a list ~2.5x faster than a numpy array (same float32 values)
        dense = {vname: np.asarray(arr, np.float32).tolist() for vname, arr in batch.dense.items()}
        points = []
        for i, pid in enumerate(batch.ids):
            vec: dict[str, Any] = {vname: rows[i] for vname, rows in dense.items()}
            for vname, svs in batch.sparse.items():
                sv = svs[i]
                vec[vname] = qe.SparseVector(np.asarray(sv.indices).tolist(), np.asarray(sv.values).tolist())
            points.append(qe.Point(int(pid), vec, dict(payloads[i]) if payloads is not None else None))
        op = qe.UpdateOperation.upsert_points(points)
        self._call(f"upsert {len(points)} points into {name!r}", lambda: shard.update(op))
        self._seal_if_due(name, shard, batch)

    def _layout(self, name: str) -> dict[str, int] | None:
        """The collection's segment layout (written at creation; None for collections created before it or with
        an HNSW graph or without dense vectors: those are left to ``optimize``)."""
        if name not in self._layouts:
            f = self._dir(name) / LAYOUT_FILE
            self._layouts[name] = json.loads(f.read_text()) if f.exists() else None
        return self._layouts[name]

    def _seal_if_due(self, name: str, shard: qe.EdgeShard, batch: PointBatch) -> None:
        layout = self._layout(name)
        if layout is None or not batch.dense:
            return
        largest = max(int(a.shape[1]) if a.ndim == 2 else 0 for a in batch.dense.values()) * 4
        pending = self._unsealed.get(name, 0) + largest * len(batch)
        if pending >= layout["seal_kb"] * 1024:
            # seals the appendable segment (plain, or quantized where the spec asks) and merges the smallest
            # segments above SEGMENTS: a copy of what was just written, no graph
            self._call(f"seal a segment of {name!r}", shard.optimize)
            _release_freed_memory()
            pending = 0
        self._unsealed[name] = pending

    def set_payload(self, name: str, ids: Sequence[int], payload: Mapping[str, Any]) -> None:
        shard = self._shard(name)
        op = qe.UpdateOperation.set_payload([int(i) for i in ids], dict(payload))
        self._call(f"set payload in {name!r}", lambda: shard.update(op))

    def set_payloads(self, name: str, ids: Sequence[int], payloads: Sequence[Mapping[str, Any]]) -> None:
        shard = self._shard(name)
        for pid, pl in zip(ids, payloads, strict=True):
            op = qe.UpdateOperation.set_payload([int(pid)], dict(pl))
            self._call(f"set payload in {name!r}", lambda: shard.update(op))  # noqa: B023 (called at once)

    def delete_payload(self, name: str, ids: Sequence[int], keys: Sequence[str]) -> None:
        if len(ids) == 0:
            return
        shard = self._shard(name)
        op = qe.UpdateOperation.delete_payload([int(i) for i in ids], list(keys))
        self._call(f"delete payload fields {list(keys)} in {name!r}", lambda: shard.update(op))

    def delete(self, name: str, *, ids: Sequence[int] | None = None, filter: Filter | None = None) -> None:
        shard = self._shard(name)
        if ids is not None:
            if len(ids) == 0:
                return
            op = qe.UpdateOperation.delete_points([int(i) for i in ids])
        elif filter is not None:
            op = qe.UpdateOperation.delete_points_by_filter(_edge_filter(filter))
        else:
            raise EngineError("delete needs ids or a filter")
        self._call(f"delete points from {name!r}", lambda: shard.update(op))

    def query_batch(self, name: str, queries: Sequence[Query]) -> list[list[Hit]]:
        if not queries:
            return []
        shard = self._shard(name)
        filters: dict[int, qe.Filter] = {}
        reqs = [_edge_query(q, filters) for q in queries]
        res = self._call(
            f"query {name!r}", lambda: shard.query_batch(qe.QueryBatchRequest(reqs))
        )
        return [[Hit(int(p.id), float(p.score), p.payload) for p in hits] for hits in res]

    def query_batch_arrays(self, name: str, queries: Sequence[Query]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``query_batch`` without payloads, each result as (ids int64, scores float64): the dense top-k's bulk
        path (one ``Hit`` per neighbour cost ~4x the arrays; benchmarks/bench_bulk.py)."""
        if not queries:
            return []
        shard = self._shard(name)
        filters: dict[int, qe.Filter] = {}
        reqs = [_edge_query(replace(q, with_payload=False), filters) for q in queries]
        res = self._call(f"query {name!r}", lambda: shard.query_batch(qe.QueryBatchRequest(reqs)))
        return [hits_to_arrays(hits) for hits in res]

    def retrieve(
        self, name: str, ids: Sequence[int], *, with_payload: bool | Sequence[str] = True,
        with_vectors: Sequence[str] = (),
    ) -> list[Record]:
        if len(ids) == 0:
            return []
        shard = self._shard(name)
        wv: bool | list[str] = list(with_vectors) if with_vectors else False
        wp: Any = with_payload if isinstance(with_payload, bool) else qe.PayloadSelector.Include(list(with_payload))
        recs = self._call(
            f"retrieve points from {name!r}", lambda: shard.retrieve([int(i) for i in ids], wp, wv)
        )
        return [_edge_record(r) for r in recs]

    def scroll(
        self,
        name: str,
        *,
        filter: Filter | None = None,
        with_payload: bool | Sequence[str] = True,
        with_vectors: Sequence[str] = (),
        batch: int = 1000,
    ) -> Iterator[Record]:
        shard = self._shard(name)
        wp: Any = with_payload if isinstance(with_payload, bool) else qe.PayloadSelector.Include(list(with_payload))
        offset: Any = None
        ef = _edge_filter(filter) if filter is not None else None
        wv: bool | list[str] = list(with_vectors) if with_vectors else False
        while True:
            req = qe.ScrollRequest(offset=offset, limit=batch, filter=ef, with_payload=wp, with_vector=wv)
            recs, offset = self._call(f"scroll {name!r}", partial(shard.scroll, req))
            for r in recs:
                yield _edge_record(r)
            if offset is None:
                return

    def count(self, name: str, filter: Filter | None = None) -> int:
        """Exact count. All points, or the points of some values of a tenant field (``is_tenant`` keyword index,
        one value per point, as the plugin writes ``tenant``), are read from the id tracker and the payload index
        (one value at a time: Edge's estimate of a Match on one indexed value is that index's exact count; of a
        MatchAny it is not), not by a scan: 0.06 ms instead of 6-8 ms at 100k anchors, which an edit pays once
        (tests/engines/test_store.py compares both after deletes, moves, payload changes, merges and a reopen)."""
        shard = self._shard(name)
        if filter is None:
            reqs = [qe.CountRequest(exact=False)]
        else:
            values = self._tenant_values(name, filter)
            if values is None:
                req = qe.CountRequest(exact=True, filter=_edge_filter(filter))
                return int(self._call(f"count {name!r}", lambda: shard.count(req)))
            key, vals = values
            reqs = [qe.CountRequest(exact=False, filter=_edge_filter(Filter(must=(Match(key, v),)))) for v in vals]
        return sum(int(self._call(f"count {name!r}", partial(shard.count, r))) for r in reqs)

    def _tenant_values(self, name: str, filter: Filter) -> tuple[str, list[str]] | None:
        """(field, distinct values) for a filter that is one Match / MatchAny of strings on a tenant field; None for
        any other filter (counted by a scan)."""
        if filter.must_not or len(filter.must) != 1:
            return None
        (c,) = filter.must
        if not isinstance(c, Match | MatchAny) or not self.collection_spec(name).keyword_indexes.get(c.key):
            return None
        vals = [c.value] if isinstance(c, Match) else list(dict.fromkeys(c.values))
        if not all(isinstance(v, str) for v in vals):
            return None
        return c.key, [str(v) for v in vals]

    def optimize(self, name: str) -> bool:
        """Run Edge's optimizers until none is planned: merge segments and build the HNSW graph and quantized
        storage where the spec asks for them (Edge has no background optimizer). True if anything changed."""
        shard = self._shard(name)
        changed = bool(self._call(f"optimize {name!r}", shard.optimize))
        self._call(f"flush {name!r}", shard.flush)
        _release_freed_memory()
        return changed

    def indexed_vectors(self, name: str) -> int:
        """How many vectors sit in indexed (optimized) segments: 0 until ``optimize`` built something."""
        shard = self._shard(name)
        return int(self._call(f"read info of {name!r}", shard.info).indexed_vectors_count)

    def flush(self) -> None:
        for name, shard in self._shards.items():
            self._call(f"flush {name!r}", shard.flush)

    def close(self) -> None:
        if self._closed:
            return
        try:
            for name, shard in list(self._shards.items()):
                self._call(f"flush {name!r}", shard.flush)
                self._call(f"close {name!r}", shard.close)
        finally:
            self._shards.clear()
            self._closed = True
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()


def _release_freed_memory() -> None:
    """Give memory that was freed back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Opening a shard replays its write-ahead log (the last operations, up to a few hundred MB after a bulk load);
    the replay's buffers are freed once the shard is loaded, but glibc keeps the freed heap, which a 100k-anchor
    store showed as 2.7 GB of resident anonymous memory (benchmarks/bench_memory.py)."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


# -- translation -------------------------------------------------------------------------------
def _edge_condition(c: Match | MatchAny | HasId) -> Any:
    if isinstance(c, Match):
        return qe.FieldCondition(c.key, match=qe.MatchValue(c.value))
    if isinstance(c, MatchAny):
        return qe.FieldCondition(c.key, match=qe.MatchAny(cast(Any, list(c.values))))
    return qe.HasIdCondition({int(i) for i in c.ids})


def _edge_filter(f: Filter) -> qe.Filter:
    return qe.Filter(
        must=[_edge_condition(c) for c in f.must] or None,
        must_not=[_edge_condition(c) for c in f.must_not] or None,
    )


def _edge_query(q: Query, filters: dict[int, qe.Filter] | None = None) -> qe.QueryRequest:
    """The Edge request of a query; ``filters`` caches translated filters by identity within one batch (the
    queries of a batch share one Filter object, whose translation is a tenth of the request's cost)."""
    flt = None
    if q.filter is not None:
        flt = filters.get(id(q.filter)) if filters is not None else None
        if flt is None:
            flt = _edge_filter(q.filter)
            if filters is not None:
                filters[id(q.filter)] = flt
    wp: Any = q.with_payload if isinstance(q.with_payload, bool) else qe.PayloadSelector.Include(list(q.with_payload))
    if isinstance(q, DenseQuery):
        o = q.options
        quant = None
        if o.quantization_ignore or o.quantization_rescore is not None or o.quantization_oversampling is not None:
            quant = qe.QuantizationSearchParams(
                ignore=o.quantization_ignore, rescore=o.quantization_rescore, oversampling=o.quantization_oversampling
            )
        params = qe.SearchParams(hnsw_ef=o.hnsw_ef, exact=o.exact, quantization=quant)
        vec = np.asarray(q.vector, dtype=np.float32).tolist()  # a list converts ~2.5x faster than an array
        return qe.QueryRequest(
            limit=q.limit, query=qe.Query.Nearest(vec, using=q.using), filter=flt, with_payload=wp,
            with_vector=False, params=params, score_threshold=q.score_threshold,
        )
    sv = qe.SparseVector(np.asarray(q.vector.indices).tolist(), np.asarray(q.vector.values).tolist())
    return qe.QueryRequest(
        limit=q.limit, query=qe.Query.Nearest(sv, using=q.using), filter=flt, with_payload=wp, with_vector=False
    )


def _edge_record(r: Any) -> Record:
    vectors: dict[str, np.ndarray | SparseVec] = {}
    for vname, v in (r.vector or {}).items():
        if isinstance(v, qe.SparseVector):
            vectors[vname] = SparseVec(np.asarray(v.indices, dtype=np.uint32), np.asarray(v.values, dtype=np.float32))
        else:
            vectors[vname] = np.asarray(v, dtype=np.float32)
    return Record(int(r.id), dict(r.payload or {}), vectors)


def _edge_quantization(q: QuantizationSpec | None) -> Any:
    if q is None:
        return None
    memory = qe.Memory.Pinned if q.always_ram else qe.Memory.Cold
    if q.kind == "int8":
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=memory)
    if q.kind == "binary":
        return qe.BinaryQuantizationConfig(memory=memory)
    bits = {"turbo4": qe.TurboQuantBitSize.Bits4, "turbo2": qe.TurboQuantBitSize.Bits2}
    if q.kind in bits:
        return qe.TurboQuantQuantizationConfig(bits=bits[q.kind], memory=memory)
    raise EngineError(
        f"unknown quantization {q.kind!r}: use 'int8', 'binary', 'turbo4' or 'turbo2' (or no quantization)"
    )


def _segment_layout(spec: CollectionSpec) -> dict[str, int] | None:
    """The segment layout for a new collection: sealed segments for dense vectors without an HNSW graph."""
    if not spec.dense or (spec.hnsw is not None and spec.hnsw.m > 0):
        return None
    seal = spec.hnsw.indexing_threshold_kb if spec.hnsw is not None else None
    return {"seal_kb": int(seal or SEAL_KB), "segments": SEGMENTS}


def search_threads() -> int:
    """Edge's search threads: one per CPU (its default, which the engine keeps)."""
    return os.cpu_count() or 1


def _balanced_seal(spec: CollectionSpec, n: int, seal_kb: int, batch: int) -> tuple[int, int]:
    """(seal size in KB, write batch) that split n points into search_threads() segments of equal size: a seal is
    checked after each batch, so the batch divides a segment. Never below ``seal_kb``, the layout's own (a small
    collection keeps it)."""
    per_point = max(spec.dense.values(), default=0) * 4
    points = -(-n // search_threads())  # per segment
    chunks = max(1, -(-points // batch))
    batch = -(-points // chunks)
    return max(int(seal_kb), batch * chunks * per_point // 1024), batch


def _edge_hnsw(h: HnswSpec | None) -> Any:
    if h is None:
        return None
    return qe.HnswIndexConfig(m=h.m, ef_construct=h.ef_construct, full_scan_threshold=h.full_scan_threshold)
