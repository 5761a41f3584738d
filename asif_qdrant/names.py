"""Collection names, derived from the settings' prefix (a bottom module: engines, meta and stores all use it)."""

from __future__ import annotations


def anchors_collection(prefix: str) -> str:
    return f"{prefix}anchors"


def meta_collection(prefix: str) -> str:
    return f"{prefix}meta"


def relindex_collection(prefix: str, tenant: str, name: str) -> str:
    return f"{prefix}rel__{tenant}__{name}"
