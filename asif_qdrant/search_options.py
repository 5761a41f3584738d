"""Scale options for the anchor queries: exact search (the default), HNSW, int8 or binary quantization.

Exact search is the plugin's contract: what a classify answers equals the paper's formulas. The options here are
opt-in and trade a measured accuracy cost (see benchmarks/bench_quantization.py) for speed and memory:

- ``quantization="int8"`` (or ``"binary"``, or TurboQuant ``"turbo4"`` / ``"turbo2"``: a random rotation, then 4 / 2
  bits per dimension): the anchors collection keeps a quantized copy of every vector in
  RAM and the float32 originals memory-mapped on disk. Without HNSW a query is a full scan of the quantized
  vectors; the ``oversampling`` x limit best candidates are then rescored with the originals (``rescore=True``).
- ``hnsw=True``: an HNSW graph (``hnsw_m`` links per node, ``hnsw_ef_construct``), searched with
  ``hnsw_ef`` candidates, never fewer than the query's limit (default ``max(limit, 2k)``).

Measured (benchmarks/bench_quantization.py; Flickr8k anchors (40k), CIFAR-10, k = 800, 2 cores):

- int8 + rescore: the same top-k as exact (overlap 1.000, 0 points of top-1 disagreement), 3x faster per anchor
  query; with 1280-d image + 768-d text vectors, ~2.3 KB of RAM per anchor instead of ~9 KB (the originals stay
  on disk and are paged in only to rescore). The safe choice.
- binary + rescore: 13-27 points of top-1 disagreement on these encoders: not recommended.
- HNSW: a 0.97 top-k overlap at ef = 2k still flips 4-5 % of top-1 labels; ef = 8k brings it to 0.4 points.
  An approximate top-k also breaks the exact freshness contract (an edit then equals a rebuild only approximately).

At 1M anchors with the Flickr8k structure (benchmarks/bench_scale_1m.py): turbo2 + rescore x2 keeps the exact top-k
(0.0 points) at 84 ms per image alone and 47 ms per image in batches, against 306 / 81 ms exact; int8 + rescore
268 ms; int8 + HNSW 19-46 ms but 6.5-15 points of top-1 disagreement. turbo2 is the option for large sets: in
bulk (benchmarks/bench_bulk.py --anchors 1000000, after ``asif optimize``) turbo2 + rescore x2 classifies in 0.75x
the time of the dense official-code computation with every top-1 equal to exact's; rescore x1 flips 1.6 %.

Quantized and graph-less collections on Qdrant Edge are sealed into segments while they are written (see
engines/edge.py): the sealed segments get their quantized vectors then, and the last, still open segment (up to
64 MB of vectors) is searched on its float32 vectors until ``optimize`` or later writes seal it.

The collection side (:meth:`SearchConfig.collection_options`) is applied when the anchors collection is created
(migration 0001); the query side (:meth:`SearchConfig.query_options`) travels with every anchor query as
:class:`~asif_qdrant.engines.base.SearchOptions`. Qdrant Edge builds the graph and the quantized vectors only in
``Engine.optimize`` (``asif optimize``, or after an ingest) and, without a graph, when it seals a segment, since it
has no background optimizer; until then a segment is searched exactly. The anchor queries themselves (step 1 of
every query, with the tie rule) are topk.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .engines.base import CollectionSpec, HnswSpec, QuantizationSpec, SearchOptions
from .errors import ConfigError
from .settings import (
    HNSW_EF_CONSTRUCT_MIN,
    HNSW_M_MAX,
    HNSW_M_MIN,
    OVERSAMPLING_MIN,
    QUANTIZATIONS,
    Quantization,
)
from .topk import EXACT, TIE_MARGIN


@dataclass(frozen=True)
class SearchConfig:
    """How anchor queries run. The default is exact search; every other value is opt-in."""

    quantization: Quantization = "none"
    hnsw: bool = False
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int | None = None
    oversampling: float = 2.0
    rescore: bool = True
    index_threshold_kb: int | None = None
    full_scan_threshold_kb: int | None = None

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(
                f"quantization={self.quantization!r} is invalid: use 'none' (exact, the default), 'int8', 'binary', "
                "'turbo4' or 'turbo2'"
            )
        if not HNSW_M_MIN <= int(self.hnsw_m) <= HNSW_M_MAX:
            raise ConfigError(
                f"hnsw_m={self.hnsw_m!r} is invalid: use {HNSW_M_MIN}..{HNSW_M_MAX} links per node (default 16)"
            )
        if int(self.hnsw_ef_construct) < HNSW_EF_CONSTRUCT_MIN:
            raise ConfigError(
                f"hnsw_ef_construct={self.hnsw_ef_construct!r} is invalid: use >= {HNSW_EF_CONSTRUCT_MIN} (default 100)"
            )
        if self.hnsw_ef is not None and int(self.hnsw_ef) < 1:
            raise ConfigError(
                f"hnsw_ef={self.hnsw_ef!r} is invalid: use >= k (it is raised to the query's limit anyway), "
                "or leave it unset for max(k + 8, 2k)"
            )
        if not (np.isfinite(self.oversampling) and self.oversampling >= OVERSAMPLING_MIN):
            raise ConfigError(
                f"oversampling={self.oversampling!r} is invalid: use a number >= {OVERSAMPLING_MIN:g} (default 2.0)"
            )
        for name in ("index_threshold_kb", "full_scan_threshold_kb"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise ConfigError(f"{name}={v!r} is invalid: use a size in KB >= 1, or leave it unset")

    @classmethod
    def from_settings(cls, settings: Any) -> SearchConfig:
        """The search settings of an ``AsifSettings`` (fields missing from older settings keep their defaults)."""
        fields = {f: getattr(settings, f) for f in cls.__dataclass_fields__ if hasattr(settings, f)}
        return cls(**fields)

    @property
    def exact(self) -> bool:
        """True when anchor queries are exact (no HNSW, no quantization): the default."""
        return self.quantization == "none" and not self.hnsw

    def describe(self) -> str:
        if self.exact:
            return "exact"
        parts = []
        if self.quantization != "none":
            parts.append(f"{self.quantization}" + (f"+rescore x{self.oversampling:g}" if self.rescore else ""))
        if self.hnsw:
            parts.append(f"hnsw(m={self.hnsw_m}, ef={self.hnsw_ef or 'max(k+8,2k)'})")
        return " ".join(parts)

    def collection_options(self) -> tuple[QuantizationSpec | None, HnswSpec | None]:
        """What the anchors collection is created with: (quantization, hnsw); (None, None) when exact.

        Quantization without HNSW builds no graph (``m=0``): a query scans the quantized vectors in full."""
        if self.exact:
            return None, None
        quant = QuantizationSpec(self.quantization) if self.quantization != "none" else None
        full_scan = self.full_scan_threshold_kb if self.full_scan_threshold_kb is not None else 10_000
        hnsw = HnswSpec(
            m=int(self.hnsw_m) if self.hnsw else 0,
            ef_construct=int(self.hnsw_ef_construct),
            full_scan_threshold=int(full_scan),
            indexing_threshold_kb=self.index_threshold_kb,
        )
        return quant, hnsw

    def for_collection(self, spec: CollectionSpec) -> SearchConfig:
        """These settings limited to what a collection was built with: a query is approximate only where both the
        settings and the collection opt in (a quantized store opened with quantization 'none' is searched exactly
        on its original vectors; settings asking for int8 on an unquantized store get exact search)."""
        quant = spec.quantization.kind if spec.quantization is not None and self.quantization != "none" else "none"
        graph = self.hnsw and spec.hnsw is not None and spec.hnsw.m > 0
        return replace(self, quantization=quant, hnsw=graph)  # type: ignore[arg-type]

    def query_options(self, k: int, limit: int | None = None) -> SearchOptions:
        """The SearchOptions of an anchor query for top-``k`` asking ``limit`` (default k + 8) neighbours."""
        if self.exact:
            return EXACT
        lim = int(limit) if limit is not None else int(k) + TIE_MARGIN
        ef = None
        if self.hnsw:
            ef = max(lim, int(self.hnsw_ef) if self.hnsw_ef is not None else max(lim, 2 * int(k)))
        if self.quantization == "none":
            return SearchOptions(exact=False, hnsw_ef=ef)
        return SearchOptions(
            exact=False, hnsw_ef=ef, quantization_rescore=self.rescore, quantization_oversampling=self.oversampling
        )


def builds_index(spec: CollectionSpec) -> bool:
    """True when a collection asks for something an optimizer builds (quantized vectors or an HNSW graph)."""
    return spec.quantization is not None or (spec.hnsw is not None and spec.hnsw.m > 0)
