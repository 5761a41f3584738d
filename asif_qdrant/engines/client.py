"""ClientEngine: ``qdrant-client`` against a Qdrant server, a cluster, Qdrant Cloud, or local mode.

Local mode (``QdrantClient(":memory:")``) has the server's API and stands in for it in the tests.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as m

from ..errors import EngineError, NotFoundError, StoreLockedError
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
)
from .spec_json import spec_from_json, spec_to_json

T = TypeVar("T")
SPEC_METADATA_KEY = "asif_spec"  # the plugin's CollectionSpec, kept in the collection's metadata


def _local_client(location: str) -> QdrantClient:
    """qdrant-client local mode in memory (":memory:") or in a folder; a folder another client holds is a
    StoreLockedError, not a raw RuntimeError."""
    try:
        if location == ":memory:":
            return QdrantClient(location=location)
        return QdrantClient(path=location)
    except RuntimeError as e:
        if "already accessed" in str(e):
            raise StoreLockedError(
                f"the local Qdrant folder {location} is already open in another client or process: close it "
                "there, use another folder, or run a Qdrant server (ASIF_URL) that several processes can share"
            ) from e
        raise EngineError(f"cannot open the local Qdrant folder {location}: {e}") from e


class ClientEngine:
    """A Qdrant server (by URL and API key), an existing ``QdrantClient``, or local mode (``location=":memory:"``)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        location: str | None = None,
        prefer_grpc: bool = False,
        timeout: float = 60.0,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
    ) -> None:
        if client is not None:
            self.client = client
            self.description = "Qdrant via a user-supplied QdrantClient"
        elif location is not None:
            self.client = _local_client(location)
            self.description = f"Qdrant local mode ({location})"
        elif url is not None:
            self.client = QdrantClient(url=url, api_key=api_key, prefer_grpc=prefer_grpc, timeout=int(timeout))
            self.description = f"Qdrant server at {url}" + (" (gRPC)" if prefer_grpc else "")
        else:
            raise EngineError("ClientEngine needs a url, a client or a location (for example ':memory:')")
        self.url = url
        self.prefer_grpc = prefer_grpc and url is not None
        self.timeout = float(timeout)
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.write_consistency_factor = write_consistency_factor
        self.is_local = getattr(self.client, "_client", None).__class__.__name__ == "QdrantLocal"
        self.exclusive = self.is_local  # local mode locks its folder; a server is shared with other processes

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            with warnings.catch_warnings():
                # local mode warns that payload indexes and search params have no effect: known and harmless
                warnings.filterwarnings("ignore", category=UserWarning, message=r".*(no effect|Local mode).*")
                return fn()
        except (NotFoundError, EngineError):
            raise
        except Exception as e:
            msg = str(e).strip() or type(e).__name__
            if self.url and any(s in msg for s in ("Connection refused", "ConnectError", "connect", "UNAVAILABLE")):
                raise EngineError(
                    f"cannot reach the Qdrant server at {self.url} to {what}: {msg}. "
                    "Start it (docker compose up -d) or fix ASIF_URL / ASIF_API_KEY"
                ) from e
            raise EngineError(f"Qdrant ({self.description}) failed to {what}: {msg}") from e

    # -- collections ---------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        res = self._call("list collections", self.client.get_collections)
        return sorted(c.name for c in res.collections)

    def collection_exists(self, name: str) -> bool:
        return bool(self._call(f"check collection {name!r}", lambda: self.client.collection_exists(name)))

    def collection_spec(self, name: str) -> CollectionSpec:
        if not self.collection_exists(name):
            raise NotFoundError(f"collection {name!r} does not exist on {self.description}")
        info = self._call(f"read collection {name!r}", lambda: self.client.get_collection(name))
        stored = (getattr(info.config, "metadata", None) or {}).get(SPEC_METADATA_KEY)
        if isinstance(stored, dict):  # written by create_collection: the exact spec
            return spec_from_json(stored)
        vectors = info.config.params.vectors
        dense = {k: int(v.size) for k, v in vectors.items()} if isinstance(vectors, dict) else {}
        sparse = tuple(sorted((info.config.params.sparse_vectors or {}).keys()))
        sparse = tuple(s for s in sparse if s != "_none")
        kw: dict[str, bool] = {}
        for field_name, schema in (info.payload_schema or {}).items():
            params = getattr(schema, "params", None)
            kw[field_name] = bool(getattr(params, "is_tenant", False))
        return CollectionSpec(dense=dense, sparse=sparse, keyword_indexes=kw)

    def ensure_keyword_index(self, name: str, field: str, is_tenant: bool = False) -> None:
        if not self.collection_exists(name):
            raise NotFoundError(f"collection {name!r} does not exist on {self.description}")
        schema = m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=is_tenant)
        self._call(
            f"index field {field!r} of {name!r}",
            partial(self.client.create_payload_index, name, field, schema, wait=True),
        )

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        if self.collection_exists(name):
            # the collection is there (created earlier, or by someone else): its indexes must still exist
            have = self.collection_spec(name).keyword_indexes
            for f, is_tenant in spec.keyword_indexes.items():
                if have.get(f) != is_tenant:
                    self.ensure_keyword_index(name, f, is_tenant)
            return
        on_disk = spec.quantization is not None and spec.quantization.originals_on_disk
        vectors = {
            vname: m.VectorParams(
                size=dim,
                distance=m.Distance.COSINE,
                quantization_config=_client_quantization(spec.quantization),
                hnsw_config=_client_hnsw(spec.hnsw),
                on_disk=True if on_disk else None,
            )
            for vname, dim in spec.dense.items()
        }
        sparse = {s: m.SparseVectorParams() for s in spec.sparse}
        if not vectors and not sparse:
            sparse = {"_none": m.SparseVectorParams()}
        kwargs: dict[str, Any] = {"metadata": {SPEC_METADATA_KEY: spec_to_json(spec)}}
        threshold = spec.hnsw.indexing_threshold_kb if spec.hnsw is not None else None
        if threshold is not None:
            kwargs["optimizers_config"] = m.OptimizersConfigDiff(indexing_threshold=threshold)
        if not self.is_local:
            kwargs.update(
                shard_number=self.shard_number,
                replication_factor=self.replication_factor,
                write_consistency_factor=self.write_consistency_factor,
            )
        self._call(
            f"create collection {name!r}",
            lambda: self.client.create_collection(
                name, vectors_config=vectors, sparse_vectors_config=sparse or None, **kwargs
            ),
        )
        schemas: list[tuple[str, Any]] = [
            (f, m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=is_tenant))
            for f, is_tenant in spec.keyword_indexes.items()
        ] + [
            (f, m.IntegerIndexParams(type=m.IntegerIndexType.INTEGER, lookup=True, range=False))
            for f in spec.integer_indexes
        ]
        for field_name, schema in schemas:
            self._call(
                f"index field {field_name!r}",
                partial(self.client.create_payload_index, name, field_name, schema, wait=True),
            )

    def delete_collection(self, name: str) -> None:
        self._call(f"delete collection {name!r}", lambda: self.client.delete_collection(name))

    # -- points --------------------------------------------------------------------------------
    def upsert(self, name: str, batch: PointBatch) -> None:
        n = len(batch)
        if n == 0:
            return
        vectors: list[dict[str, Any]] = [{} for _ in range(n)]
        for vname, arr in batch.dense.items():
            rows = np.asarray(arr, dtype=np.float32).tolist()
            for i in range(n):
                vectors[i][vname] = rows[i]
        for vname, svs in batch.sparse.items():
            for i in range(n):
                vectors[i][vname] = m.SparseVector(indices=svs[i].indices.tolist(), values=svs[i].values.tolist())
        points = [
            m.PointStruct(
                id=_pid(batch.ids[i]),
                vector=vectors[i],
                payload=dict(batch.payloads[i]) if batch.payloads is not None else None,
            )
            for i in range(n)
        ]
        self._call(f"upsert {n} points into {name!r}", lambda: self.client.upsert(name, points=points, wait=True))

    def set_payload(self, name: str, ids: Sequence[int], payload: Mapping[str, Any]) -> None:
        self._call(
            f"set payload in {name!r}",
            lambda: self.client.set_payload(name, payload=dict(payload), points=[_pid(i) for i in ids], wait=True),
        )

    def set_payloads(self, name: str, ids: Sequence[int], payloads: Sequence[Mapping[str, Any]]) -> None:
        if len(ids) == 0:
            return
        ops = [m.SetPayloadOperation(set_payload=m.SetPayload(payload=dict(pl), points=[_pid(i)]))
               for i, pl in zip(ids, payloads, strict=True)]
        self._call(f"set payloads of {len(ops)} points in {name!r}",
                   lambda: self.client.batch_update_points(name, update_operations=ops, wait=True))

    def delete_payload(self, name: str, ids: Sequence[int], keys: Sequence[str]) -> None:
        if len(ids) == 0:
            return
        self._call(
            f"delete payload fields {list(keys)} in {name!r}",
            lambda: self.client.delete_payload(name, keys=list(keys), points=[_pid(i) for i in ids], wait=True),
        )

    def delete(self, name: str, *, ids: Sequence[int] | None = None, filter: Filter | None = None) -> None:
        if ids is not None:
            if len(ids) == 0:
                return
            selector: Any = m.PointIdsList(points=[int(i) for i in ids])
        elif filter is not None:
            selector = m.FilterSelector(filter=_client_filter(filter))
        else:
            raise EngineError("delete needs ids or a filter")
        self._call(f"delete points from {name!r}", lambda: self.client.delete(name, selector, wait=True))

    def query_batch(self, name: str, queries: Sequence[Query]) -> list[list[Hit]]:
        if not queries:
            return []
        reqs = [_client_query(q) for q in queries]
        res = self._call(f"query {name!r}", lambda: self.client.query_batch_points(name, requests=reqs))
        return [[Hit(int(p.id), float(p.score), p.payload) for p in r.points] for r in res]

    def retrieve(
        self, name: str, ids: Sequence[int], *, with_payload: bool | Sequence[str] = True,
        with_vectors: Sequence[str] = (),
    ) -> list[Record]:
        if len(ids) == 0:
            return []
        wv: bool | list[str] = list(with_vectors) if with_vectors else False
        wp: bool | list[str] = with_payload if isinstance(with_payload, bool) else list(with_payload)
        recs = self._call(
            f"retrieve points from {name!r}",
            lambda: self.client.retrieve(name, [_pid(i) for i in ids], with_payload=wp, with_vectors=wv),
        )
        return [_client_record(r) for r in recs]

    def scroll(
        self,
        name: str,
        *,
        filter: Filter | None = None,
        with_payload: bool | Sequence[str] = True,
        with_vectors: Sequence[str] = (),
        batch: int = 1000,
    ) -> Iterator[Record]:
        offset: Any = None
        wp: Any = with_payload if isinstance(with_payload, bool) else list(with_payload)
        cf = _client_filter(filter) if filter is not None else None
        wv: bool | list[str] = list(with_vectors) if with_vectors else False
        while True:
            recs, offset = self._call(
                f"scroll {name!r}",
                partial(
                    self.client.scroll,
                    name, scroll_filter=cf, limit=batch, offset=offset, with_payload=wp, with_vectors=wv,
                ),
            )
            for r in recs:
                yield _client_record(r)
            if offset is None:
                return

    def count(self, name: str, filter: Filter | None = None) -> int:
        cf = _client_filter(filter) if filter is not None else None
        res = self._call(f"count {name!r}", lambda: self.client.count(name, count_filter=cf, exact=True))
        return int(res.count)

    def optimize(self, name: str, poll_s: float = 0.5) -> bool:
        """A server optimizes in the background: wait (up to the client timeout) until the collection is green.
        Local mode has no optimizer (and no index): nothing to do. Returns False: nothing is rebuilt here."""
        if self.is_local:
            return False
        deadline = time.monotonic() + self.timeout
        while True:
            info = self._call(f"read collection {name!r}", lambda: self.client.get_collection(name))
            if info.status != m.CollectionStatus.YELLOW or time.monotonic() > deadline:
                return False
            time.sleep(poll_s)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self._call("close the client", self.client.close)


# -- translation -------------------------------------------------------------------------------
def _pid(i: Any) -> Any:
    """A point id as Qdrant takes it: an unsigned integer, or a UUID string (a user's collection may use either;
    the plugin's own collections use integers)."""
    return i if isinstance(i, str) else int(i)


def _client_condition(c: Match | MatchAny | HasId) -> Any:
    if isinstance(c, Match):
        return m.FieldCondition(key=c.key, match=m.MatchValue(value=c.value))
    if isinstance(c, MatchAny):
        return m.FieldCondition(key=c.key, match=m.MatchAny(any=cast(Any, list(c.values))))
    return m.HasIdCondition(has_id=[int(i) for i in c.ids])


def _client_filter(f: Filter) -> m.Filter:
    return m.Filter(
        must=[_client_condition(c) for c in f.must] or None,
        must_not=[_client_condition(c) for c in f.must_not] or None,
    )


def _client_query(q: Query) -> m.QueryRequest:
    flt = _client_filter(q.filter) if q.filter is not None else None
    wp: Any = q.with_payload if isinstance(q.with_payload, bool) else list(q.with_payload)
    if isinstance(q, DenseQuery):
        o = q.options
        quant = None
        if o.quantization_ignore or o.quantization_rescore is not None or o.quantization_oversampling is not None:
            quant = m.QuantizationSearchParams(
                ignore=o.quantization_ignore, rescore=o.quantization_rescore, oversampling=o.quantization_oversampling
            )
        return m.QueryRequest(
            query=np.asarray(q.vector, dtype=np.float32).tolist(),
            using=q.using,
            limit=q.limit,
            filter=flt,
            with_payload=wp,
            params=m.SearchParams(exact=o.exact, hnsw_ef=o.hnsw_ef, quantization=quant),
            score_threshold=q.score_threshold,
        )
    sv = m.SparseVector(indices=q.vector.indices.tolist(), values=q.vector.values.tolist())
    return m.QueryRequest(query=sv, using=q.using, limit=q.limit, filter=flt, with_payload=wp)


def _client_record(r: Any) -> Record:
    vectors: dict[str, np.ndarray | SparseVec] = {}
    raw = r.vector if isinstance(r.vector, dict) else {}
    for vname, v in raw.items():
        if isinstance(v, m.SparseVector):
            vectors[vname] = SparseVec(np.asarray(v.indices, dtype=np.uint32), np.asarray(v.values, dtype=np.float32))
        else:
            vectors[vname] = np.asarray(v, dtype=np.float32)
    return Record(_pid(r.id), dict(r.payload or {}), vectors)


def _client_quantization(q: QuantizationSpec | None) -> Any:
    if q is None:
        return None
    if q.kind == "int8":
        return m.ScalarQuantization(
            scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=q.always_ram)
        )
    if q.kind == "binary":
        return m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=q.always_ram))
    tb = m.TurboQuantBitSize
    bits = {"turbo4": tb.BITS4, "turbo2": tb.BITS2}
    if q.kind in bits:
        return m.TurboQuantization(turbo=m.TurboQuantQuantizationConfig(bits=bits[q.kind], always_ram=q.always_ram))
    raise EngineError(
        f"unknown quantization {q.kind!r}: use 'int8', 'binary', 'turbo4' or 'turbo2' (or no quantization)"
    )


def _client_hnsw(h: HnswSpec | None) -> Any:
    if h is None:
        return None
    return m.HnswConfigDiff(m=h.m, ef_construct=h.ef_construct, full_scan_threshold=h.full_scan_threshold)
