"""The engine layer: the few Qdrant operations the plugin needs, behind one small Protocol.

Nothing above this layer knows whether it runs on Qdrant Edge (embedded) or on a Qdrant server.
Filters, queries and results are plain dataclasses here; each engine translates them.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Match:
    """Payload field ``key`` equals ``value``."""

    key: str
    value: str | int | bool


@dataclass(frozen=True)
class MatchAny:
    """Payload field ``key`` equals one of ``values``."""

    key: str
    values: tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True)
class HasId:
    """Point id is one of ``ids``."""

    ids: tuple[int, ...]


Condition = Match | MatchAny | HasId


@dataclass(frozen=True)
class Filter:
    """All of ``must`` and none of ``must_not``."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def and_(self, *conds: Condition) -> Filter:
        return Filter(must=self.must + tuple(conds), must_not=self.must_not)


@dataclass(frozen=True)
class SparseVec:
    """A sparse vector: sorted unique ``indices`` (uint32) and their ``values``."""

    indices: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])


@dataclass(frozen=True)
class SearchOptions:
    """How a dense query is executed. Exact by default (the plugin's contract is exactness).

    ``exact=False`` lets the engine use what the collection was built with: the HNSW graph (searched with
    ``hnsw_ef`` candidates; keep it >= the query's limit) and quantized vectors (``quantization_rescore``:
    re-rank the ``quantization_oversampling`` x limit best quantized candidates with the original vectors).
    ``search_options.SearchConfig`` derives these from the settings.
    """

    exact: bool = True
    hnsw_ef: int | None = None
    quantization_rescore: bool | None = None
    quantization_oversampling: float | None = None
    quantization_ignore: bool = False


@dataclass(frozen=True)
class DenseQuery:
    """Nearest neighbours of ``vector`` on the named dense vector ``using``."""

    using: str
    vector: np.ndarray
    limit: int
    filter: Filter | None = None
    with_payload: bool | Sequence[str] = False
    options: SearchOptions = SearchOptions()
    score_threshold: float | None = None  # only hits scoring at least this much (Qdrant's score_threshold)


@dataclass(frozen=True)
class SparseQuery:
    """Dot product of ``vector`` with the named sparse vector ``using``."""

    using: str
    vector: SparseVec
    limit: int
    filter: Filter | None = None
    with_payload: bool | Sequence[str] = False


Query = DenseQuery | SparseQuery


@dataclass
class Hit:
    """One scored point."""

    id: int
    score: float
    payload: dict[str, Any] | None = None


@dataclass
class Record:
    """One retrieved point: payload and the vectors asked for (dense as float32 arrays, sparse as SparseVec)."""

    id: int
    payload: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, np.ndarray | SparseVec] = field(default_factory=dict)


@dataclass(frozen=True)
class QuantizationSpec:
    """Opt-in quantization of the dense vectors: ``kind`` is ``int8`` or ``binary``.

    The quantized vectors stay in RAM (``always_ram``); the original float32 vectors, read only to rescore the
    best candidates, are memory-mapped from disk when ``originals_on_disk`` (that is where the memory saving is).
    """

    kind: str
    always_ram: bool = True
    originals_on_disk: bool = True


@dataclass(frozen=True)
class HnswSpec:
    """Opt-in HNSW index for the dense vectors.

    ``m=0`` builds no graph: with quantization, a search is then a full scan of the quantized vectors.
    ``full_scan_threshold`` (KB of vectors): a filter matching less than this is searched by a full scan.
    ``indexing_threshold_kb``: segments larger than this get their graph and quantized storage built by the
    optimizer (None: the engine's default, 10-20 MB; Qdrant Edge builds them only in ``Engine.optimize``).
    """

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold: int = 10_000
    indexing_threshold_kb: int | None = None


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection holds: dense vectors (name -> dim, cosine), sparse vectors, keyword indexes."""

    dense: Mapping[str, int] = field(default_factory=dict)
    sparse: tuple[str, ...] = ()
    keyword_indexes: Mapping[str, bool] = field(default_factory=dict)  # field -> is_tenant
    integer_indexes: tuple[str, ...] = ()  # fields with an integer lookup index (match on ids in arrays)
    quantization: QuantizationSpec | None = None
    hnsw: HnswSpec | None = None


@dataclass
class PointBatch:
    """Points to upsert, column-wise: ids, dense vectors (n, dim) per name, sparse vectors per name, payloads."""

    ids: Sequence[int]
    dense: Mapping[str, np.ndarray] = field(default_factory=dict)
    sparse: Mapping[str, Sequence[SparseVec]] = field(default_factory=dict)
    payloads: Sequence[Mapping[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.ids)


@runtime_checkable
class Engine(Protocol):
    """The Qdrant operations the plugin needs. Implementations: EdgeEngine, ClientEngine."""

    description: str
    exclusive: bool  # only this process reaches the store while it is open (embedded, local mode): caches may persist

    def list_collections(self) -> list[str]: ...

    def collection_exists(self, name: str) -> bool: ...

    def create_collection(self, name: str, spec: CollectionSpec) -> None: ...

    def collection_spec(self, name: str) -> CollectionSpec: ...

    def delete_collection(self, name: str) -> None: ...

    def ensure_keyword_index(self, name: str, field: str, is_tenant: bool = False) -> None:
        """Create a keyword index on payload ``field`` of an existing collection (``is_tenant``: the tenant
        partitioning hint), and record it in the collection's spec. A no-op when the index exists."""
        ...

    def upsert(self, name: str, batch: PointBatch) -> None: ...

    def set_payload(self, name: str, ids: Sequence[int], payload: Mapping[str, Any]) -> None: ...

    def set_payloads(self, name: str, ids: Sequence[int], payloads: Sequence[Mapping[str, Any]]) -> None:
        """Set each point's own payload fields (merged into what it holds): one batch, not one call per point."""
        ...

    def delete_payload(self, name: str, ids: Sequence[int], keys: Sequence[str]) -> None:
        """Remove the payload fields ``keys`` from the points ``ids`` (their other fields and vectors stay)."""
        ...

    def delete(self, name: str, *, ids: Sequence[int] | None = None, filter: Filter | None = None) -> None: ...

    def query_batch(self, name: str, queries: Sequence[Query]) -> list[list[Hit]]: ...

    def retrieve(
        self, name: str, ids: Sequence[int], *, with_payload: bool | Sequence[str] = True,
        with_vectors: Sequence[str] = (),
    ) -> list[Record]: ...

    def scroll(
        self,
        name: str,
        *,
        filter: Filter | None = None,
        with_payload: bool | Sequence[str] = True,
        with_vectors: Sequence[str] = (),
        batch: int = 1000,
    ) -> Iterator[Record]: ...

    def count(self, name: str, filter: Filter | None = None) -> int: ...

    def optimize(self, name: str) -> bool:
        """Build what the collection's spec asks for (HNSW graph, quantized storage) and merge small segments.

        Qdrant Edge has no background optimizer: call this after bulk loads. A server optimizes in the
        background; its engine waits until the collection is optimized. Returns True if anything was rebuilt.
        """
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Relayout(Protocol):
    """An optional engine capability, checked with ``isinstance``: rewrite a collection made before segment
    layouts existed into sealed segments (Qdrant Edge). True if it was rewritten."""

    def relayout(self, name: str) -> bool: ...


@runtime_checkable
class ArrayQueries(Protocol):
    """An optional engine capability, checked with ``isinstance``: answer a batch of queries with each query's hits
    as two arrays (ids int64, scores float64), in the engine's order, without payloads (Qdrant Edge builds them
    straight from its results instead of one ``Hit`` per neighbour)."""

    def query_batch_arrays(self, name: str, queries: Sequence[Query]) -> list[tuple[np.ndarray, np.ndarray]]: ...


def query_batch_arrays(engine: Engine, name: str, queries: Sequence[Query]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, its hits as two arrays (ids int64, scores float64), in the engine's order, without payloads.

    The bulk path of the dense anchor top-k (k + 8 hits per image): an engine with the ``ArrayQueries`` capability
    answers with arrays itself; any other engine gets its ``query_batch`` converted here."""
    if isinstance(engine, ArrayQueries):
        return engine.query_batch_arrays(name, queries)
    return [hits_to_arrays(hits) for hits in engine.query_batch(name, queries)]


_ID, _SCORE = operator.attrgetter("id"), operator.attrgetter("score")  # map(attrgetter) beats a generator by ~25 %


def hits_to_arrays(hits: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64, scores float64) of hits (anything with ``id`` and ``score``)."""
    n = len(hits)
    return (np.fromiter(map(_ID, hits), np.int64, n), np.fromiter(map(_SCORE, hits), np.float64, n))
