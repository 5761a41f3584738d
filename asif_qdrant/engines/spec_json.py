"""CollectionSpec to and from JSON (Edge keeps it beside each shard)."""

from __future__ import annotations

from typing import Any

from .base import CollectionSpec, HnswSpec, QuantizationSpec


def spec_to_json(spec: CollectionSpec) -> dict[str, Any]:
    return {
        "dense": dict(spec.dense),
        "sparse": list(spec.sparse),
        "keyword_indexes": dict(spec.keyword_indexes),
        "integer_indexes": list(spec.integer_indexes),
        "quantization": None if spec.quantization is None else vars(spec.quantization),
        "hnsw": None if spec.hnsw is None else vars(spec.hnsw),
    }


def spec_from_json(d: dict[str, Any]) -> CollectionSpec:
    return CollectionSpec(
        dense={k: int(v) for k, v in d.get("dense", {}).items()},
        sparse=tuple(d.get("sparse", ())),
        keyword_indexes=dict(d.get("keyword_indexes", {})),
        integer_indexes=tuple(d.get("integer_indexes", ())),
        quantization=QuantizationSpec(**d["quantization"]) if d.get("quantization") else None,
        hnsw=HnswSpec(**d["hnsw"]) if d.get("hnsw") else None,
    )
