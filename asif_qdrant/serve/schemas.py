"""Request and response bodies of the HTTP API (pydantic models; they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Matrix = list[list[float]]


class ErrorBody(BaseModel):
    """Every error: one line saying what is wrong and how to fix it."""

    error: str = Field(description="What went wrong and what to do about it.", examples=["invalid API key"])


_ERRORS: dict[int, str] = {
    400: "An argument has an invalid value (top, k, p, a name, a path).",
    401: "No API key, or an unknown one (send 'Authorization: Bearer <key>').",
    403: "The key may not do this: another tenant, an admin operation, a file outside the allowed folders.",
    404: "No such label set, gallery, tenant or file.",
    409: "The name exists already (send \"replace\": true), or the store's schema is newer than the server.",
    413: "Too much in one request: body bytes, items (ASIF_MAX_BATCH, ASIF_MAX_IDS, ASIF_MAX_CLASSES), or image "
         "pixels (ASIF_MAX_IMAGE_PIXELS, ASIF_MAX_REQUEST_PIXELS).",
    422: "Malformed input: wrong vector dimensions, NaN, a file that is not an image, a missing field.",
    429: "Past the per-key rate limit (ASIF_RATE_LIMIT); see Retry-After.",
    503: "The store is busy (an edit in progress past ASIF_LOCK_TIMEOUT_S) or not open yet; see Retry-After.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()
}


class ClassifyBody(BaseModel):
    labels: str = Field(description="The label set.")
    vectors: Matrix | None = Field(None, description="Image vectors, one per row (the store's image encoder).")
    paths: list[str] | None = Field(None, description="Image files, relative to the server's ASIF_SERVE_ROOT.")
    top: int = 5
    tenant: str | None = None


class SearchBody(BaseModel):
    gallery: str
    texts: list[str] | None = None
    vectors: Matrix | None = Field(None, description="Text vectors, one per row (the store's text encoder).")
    top: int = 10
    tenant: str | None = None


class ExplainBody(BaseModel):
    labels: str
    vector: list[float] | None = None
    path: str | None = Field(None, description="An image file, relative to the server's ASIF_SERVE_ROOT.")
    label: str | None = None
    top: int = 10
    n_labels: int = Field(1, ge=1, le=50)
    tenant: str | None = None


class AnchorsBody(BaseModel):
    image_vectors: Matrix
    text_vectors: Matrix
    captions: list[str | None] | None = None
    ids: list[int] | None = None
    payloads: list[dict[str, Any]] | None = None
    image_refs: list[str | None] | None = Field(
        None, description="Where each pair's image is, relative to ASIF_SERVE_ROOT (shown in explain reports)."
    )
    tenant: str | None = None


class ReplaceBody(BaseModel):
    ids: list[int]
    image_vectors: Matrix
    text_vectors: Matrix
    captions: list[str | None] | None = None
    payloads: list[dict[str, Any]] | None = None
    tenant: str | None = None


class DeleteBody(BaseModel):
    ids: list[int] | None = None
    all: bool = False
    tenant: str | None = None


class LabelsBody(BaseModel):
    classes: list[str]
    templates: str | list[str] | None = Field(None, description="'photo' (default), 'plain', or a list.")
    prompt_vectors: Matrix | None = None
    k: int | None = None
    p: float | None = None
    aggregation: Literal["max", "mean"] = "max"
    correction: Literal["none", "mean", "zscore"] | None = Field(
        None, description="Score correction by a reference sample of the anchor images (default ASIF_CORRECTION).")
    replace: bool = Field(False, description="Redefine the label set if the name exists (else 409).")
    tenant: str | None = None


class GalleryBody(BaseModel):
    vectors: Matrix
    payloads: list[dict[str, Any]] | None = None
    k: int | None = None
    p: float | None = None
    replace: bool = Field(False, description="Rebuild the gallery if the name exists (else 409).")
    tenant: str | None = None


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class AddAnswer(BaseModel):
    ids: list[int]
    added: int
    duplicates: int
    items_touched: dict[str, int]


class DeleteAnswer(BaseModel):
    deleted: list[int]
    items_touched: dict[str, int]


class IndexAnswer(BaseModel):
    name: str
    tenant: str
    kind: str
    k: int
    p: float
    n_items: int
    classes: list[str]
    templates: list[str]
    aggregation: str
    tau: float | None
    created_at: float
    extra: dict[str, Any]
    correction: str = "none"
    coverage: list[dict[str, Any]] | None = None  # a label set just defined: support and verdict per class


class PredictionsAnswer(BaseModel):
    predictions: list[dict[str, Any] | None]


class SearchAnswer(BaseModel):
    results: list[list[dict[str, Any]]]


class TagBody(BaseModel):
    collection: str = Field(description="The collection whose points are tagged (any collection the engine reaches).")
    vector: str = Field(description="Its dense image vector (named vector), made by the store's image encoder.")
    labels: str = Field(description="The label set.")
    filter: dict[str, Any] | None = Field(None, description="A Qdrant filter (must / must_not match conditions).")
    top: int = Field(3, description="Labels kept in each tag's 'top'.")
    replace: bool = Field(False, description="Overwrite the field where it holds other data.")
    tenant: str | None = None


class TagSyncBody(BaseModel):
    collection: str | None = Field(None, description="The collection (when the field is tagged in several).")
    ids: list[int | str] | None = Field(None, description="Re-tag these points (vectors overwritten in place).")
    tenant: str | None = None
