"""Encoders: the protocol, the registry and factory, and input helpers.

Importing this package does not import torch, timm or sentence-transformers; the adapters
(``timm_encoder``, ``st_encoder``) are imported by ``create_encoder`` when needed.
"""

from asif_qdrant.encoders.base import (
    DEFAULT_BATCH_SIZE,
    Encoder,
    EncoderFingerprint,
    ImageInput,
    Modality,
    check_vectors,
    load_image,
)
from asif_qdrant.encoders.precomputed import PrecomputedEncoder
from asif_qdrant.encoders.registry import (
    EncoderInfo,
    canonical_name,
    create_encoder,
    encoder_dim,
    encoder_info,
    families,
    list_encoders,
    register_family,
    register_model,
    split_name,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Encoder",
    "EncoderInfo",
    "EncoderFingerprint",
    "ImageInput",
    "Modality",
    "PrecomputedEncoder",
    "canonical_name",
    "check_vectors",
    "create_encoder",
    "encoder_dim",
    "encoder_info",
    "families",
    "list_encoders",
    "load_image",
    "register_family",
    "register_model",
    "split_name",
]
