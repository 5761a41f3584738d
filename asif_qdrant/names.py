"""Names shared by every layer: the two modalities, and collection names derived from the settings' prefix (a bottom
module: engines, encoders, meta and stores all use it)."""

from __future__ import annotations

from typing import Literal, TypeAlias

Modality: TypeAlias = Literal["image", "text"]
MODALITIES: tuple[Modality, ...] = ("image", "text")


def anchors_collection(prefix: str) -> str:
    return f"{prefix}anchors"


def meta_collection(prefix: str) -> str:
    return f"{prefix}meta"


def relindex_collection(prefix: str, modality: str) -> str:
    """The collection holding the items of every relative index whose items are of ``modality`` ('text' for label
    sets, 'image' for galleries), of every tenant: a fixed set of collections, partitioned by payload."""
    return f"{prefix}relindex_{modality}"


def legacy_relindex_collection(prefix: str, tenant: str, name: str) -> str:
    """The collection-per-index layout before migration 0003 (names could collide: kept only to migrate)."""
    return f"{prefix}rel__{tenant}__{name}"


def prototypes_collection(prefix: str) -> str:
    """The collection holding the class prototypes (means of taught example images) of every tenant, partitioned
    by the payload ``tenant``."""
    return f"{prefix}prototypes"
