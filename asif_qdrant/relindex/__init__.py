"""Relative indexes: collections of items (label prompts, gallery images) stored as sparse relative reps.

Data flow of a query (see DESIGN.md): (1) one batch of dense top-k queries on the anchors, with the tenant
filter (topk.py); (2) relative reps in numpy (relrep.py); (3) one batch of sparse dot-product queries on a relative
index. Each item also keeps its own dense vector (``item``) and its current top-k (ids and similarities)
so that later anchor edits can be applied to it incrementally.

One public class, :class:`RelIndexes`, made of its parts, each in its own module and each built on the one before
(imports point one way): records.py (IndexInfo, partition fields, slots and point ids, the top-k payload, the
meta records), query.py (step 1 through topk.py, items by number, step 3), build.py (define, build, rebuild),
freshness.py (incremental edits, is_current, the threshold caches), copies.py (tenant copies of shared indexes).
"""

from __future__ import annotations

from ..topk import LARGE_K, TopK, tenant_scope
from .build import BUILD_CHUNK
from .copies import TenantCopies
from .freshness import SCORE_SLACK
from .records import (
    ITEM_BITS,
    MAX_ITEMS,
    PARTITION_FIELDS,
    PAYLOAD_FIELDS,
    RESERVED_FIELDS,
    SLOT_BITS,
    TOPK_FIELDS,
    IndexInfo,
    Kind,
    decode_topk,
    depth_of,
    encode_topk,
    index_filter,
    index_state,
    item_modality,
    item_of,
    relindex_spec,
    scope_revisions,
    slot_candidate,
    to_sparse_vec,
    topk_payload,
    touched_key,
)


class RelIndexes(TenantCopies):
    """Build, query and keep relative indexes of one store (records, queries, build, freshness, tenant copies: one
    module each, see this package's docstring)."""


__all__ = [
    "BUILD_CHUNK",
    "ITEM_BITS",
    "LARGE_K",
    "MAX_ITEMS",
    "PARTITION_FIELDS",
    "PAYLOAD_FIELDS",
    "RESERVED_FIELDS",
    "SCORE_SLACK",
    "SLOT_BITS",
    "TOPK_FIELDS",
    "IndexInfo",
    "Kind",
    "RelIndexes",
    "TopK",
    "decode_topk",
    "depth_of",
    "encode_topk",
    "index_filter",
    "index_state",
    "item_modality",
    "item_of",
    "relindex_spec",
    "scope_revisions",
    "slot_candidate",
    "tenant_scope",
    "to_sparse_vec",
    "topk_payload",
    "touched_key",
]
