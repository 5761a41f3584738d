"""The anchors collection: named dense vectors ``image`` and ``text`` (cosine) and the tenant index."""

from __future__ import annotations

from asif_qdrant.engines.base import CollectionSpec
from asif_qdrant.errors import SchemaError
from asif_qdrant.migrate import MigrationContext
from asif_qdrant.names import anchors_collection
from asif_qdrant.search_options import SearchConfig

DESCRIPTION = "anchors collection: dense 'image' and 'text' vectors (cosine), keyword index on 'tenant' (is_tenant)"


def apply(ctx: MigrationContext) -> None:
    fp = ctx.fingerprint
    if fp is None:
        raise SchemaError(
            "the anchors collection needs the encoder dimensions: set ASIF_IMAGE_ENCODER and ASIF_TEXT_ENCODER "
            "(for example precomputed:my-image-model:1280) and run again"
        )
    name = anchors_collection(ctx.settings.prefix)
    quantization, hnsw = SearchConfig.from_settings(ctx.settings).collection_options()  # (None, None): exact
    ctx.engine.create_collection(
        name,
        CollectionSpec(
            dense={"image": fp.image_dim, "text": fp.text_dim},
            keyword_indexes={"tenant": True},
            quantization=quantization,
            hnsw=hnsw,
        ),
    )
    stored = ctx.engine.collection_spec(name)
    if dict(stored.dense) != {"image": fp.image_dim, "text": fp.text_dim}:
        raise SchemaError(
            f"collection {name!r} already exists with vectors {dict(stored.dense)}, which do not match the encoders "
            f"{fp.image_encoder} ({fp.image_dim}) and {fp.text_encoder} ({fp.text_dim}): use another ASIF_PREFIX"
        )
    if ctx.meta.fingerprint() is None:
        ctx.meta.set_fingerprint(fp)
