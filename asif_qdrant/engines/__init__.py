"""Engines: the Qdrant operations the plugin needs, on Qdrant Edge or a Qdrant server."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from .base import (
    CollectionSpec,
    DenseQuery,
    Engine,
    Filter,
    HasId,
    Hit,
    Match,
    MatchAny,
    PointBatch,
    Record,
    SearchOptions,
    SparseQuery,
    SparseVec,
)

if TYPE_CHECKING:
    from ..settings import AsifSettings

__all__ = [
    "CollectionSpec",
    "DenseQuery",
    "Engine",
    "Filter",
    "HasId",
    "Hit",
    "Match",
    "MatchAny",
    "PointBatch",
    "Record",
    "SearchOptions",
    "SparseQuery",
    "SparseVec",
    "create_engine",
]


def create_engine(settings: AsifSettings, client: Any = None) -> Engine:
    """The engine the settings ask for: a given client, a server by URL, or Qdrant Edge under ``settings.path``,
    wrapped in a MappedEngine when the anchors live in an existing collection with names of its own."""
    engine = _base_engine(settings, client)
    if settings.anchors_collection or settings.vector_names or settings.payload_names:
        from ..names import anchors_collection
        from .mapped import MappedEngine

        logical = anchors_collection(settings.prefix)
        engine = MappedEngine(  # type: ignore[assignment]
            engine, logical, settings.anchors_collection or logical, settings.vector_names, settings.payload_names
        )
    return engine


def _base_engine(settings: AsifSettings, client: Any) -> Engine:
    from .client import ClientEngine

    server = partial(
        ClientEngine,
        shard_number=settings.shard_number,
        replication_factor=settings.replication_factor,
        write_consistency_factor=settings.write_consistency_factor,
    )
    if client is not None:
        return server(client=client)
    if settings.url is not None:
        if settings.url == ":memory:":
            return ClientEngine(location=":memory:")
        if settings.url.startswith("file:"):  # qdrant-client local mode in a folder, e.g. file:./qdrant-local
            return ClientEngine(location=settings.url.removeprefix("file:"))
        return server(
            settings.url, api_key=settings.api_key, prefer_grpc=settings.prefer_grpc, timeout=settings.timeout
        )
    from .edge import EdgeEngine

    return EdgeEngine(settings.path)
