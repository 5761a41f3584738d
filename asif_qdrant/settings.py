"""One settings object, validated once and passed down. Nothing else reads the environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

# The search options' rules, in one place: the settings enforce them when loaded, search_options.SearchConfig when it
# is made directly (benchmarks, tests).
Quantization = Literal["none", "int8", "binary", "turbo4", "turbo2"]
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
HNSW_M_MIN, HNSW_M_MAX = 4, 128
HNSW_EF_CONSTRUCT_MIN = 4
OVERSAMPLING_MIN = 1.0

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


def rate_per_second(text: str) -> tuple[float, float]:
    """'20/s' or '600/min' -> (requests per second, burst = the count); ValueError naming the form otherwise."""
    m = _RATE_RE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"rate limit {text!r} is not COUNT/PERIOD: write it as e.g. '20/s', '600/min' or '5000/h'")
    n = float(m.group(1))
    return n / _PER[m.group(2)], max(1.0, n)


_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class AsifSettings(BaseSettings):
    """Settings for asif-qdrant. Every field can be set with an ``ASIF_`` environment variable.

    Example: ``ASIF_PATH=/data/asif ASIF_K=400 asif classify cat.jpg --labels cifar10``.
    """

    model_config = SettingsConfigDict(env_prefix="ASIF_", extra="forbid", validate_assignment=True)

    path: Path = Field(Path("./asif-data"), description="Folder of the embedded Qdrant Edge store.")
    url: str | None = Field(
        None, description="URL of a Qdrant server or cluster; overrides path (':memory:' or file:FOLDER: local mode)."
    )
    api_key: str | None = Field(None, description="API key for the Qdrant server.")
    prefer_grpc: bool = Field(False, description="Talk to the server over gRPC.")
    timeout: float = Field(60.0, gt=0, description="Server request timeout in seconds.")
    prefix: str = Field("asif_", description="Prefix of every collection name the plugin creates.")
    k: int = Field(800, ge=1, le=10_000_000, description="Anchors kept in each relative representation (top-k).")
    p: float = Field(3.0, gt=0, le=64, description="Exponent applied to the kept similarities (3: chosen on "
                     "CIFAR-10 and checked on Flickr8k, docs/results.md; the paper's 8 before).")
    correction: Literal["none", "mean", "zscore"] = Field(
        "none", description="Score correction of new label sets: a prompt's score minus its mean (zscore: and over its "
        "standard deviation) over a reference sample of the anchor images; none: the paper's scores.")
    image_encoder: str = Field("timm:tf_efficientnet_lite0", description="Image encoder name (see `asif encoders`).")
    text_encoder: str = Field("st:all-MiniLM-L6-v2", description="Text encoder name (see `asif encoders`).")
    cache_dir: Path | None = Field(None, description="Embedding and model cache folder; default: <path>/cache.")
    shard_number: int | None = Field(None, ge=1, description="Shards per collection on a server.")
    replication_factor: int | None = Field(None, ge=1, description="Replicas per shard on a server.")
    write_consistency_factor: int | None = Field(None, ge=1, description="Replicas that must ack a write.")
    anchors_collection: str | None = Field(
        None, description="Attach to this existing collection as the anchors (default: <prefix>anchors)."
    )
    vector_names: dict[str, str] = Field(
        default_factory=dict, description='Its vector names, e.g. {"image": "img", "text": "txt"} (JSON in the env).'
    )
    payload_names: dict[str, str] = Field(
        default_factory=dict, description='Its payload field names, e.g. {"caption": "title"} (JSON in the env).'
    )
    staleness_check_s: float = Field(
        1.0, ge=0, description="Seconds between anchor-count checks that catch edits made behind the plugin's back."
    )
    batch_size: int = Field(256, ge=1, le=100_000, description="Points per upsert or query batch.")
    tag_sync_s: float | None = Field(
        None, gt=0, description="`asif serve`: seconds between syncs of every tagging with its collection (points "
        "added or deleted behind the plugin's back); unset: no periodic sync."
    )
    # bounds on one request, so that a typo (k=10**9) fails at once instead of allocating gigabytes
    max_k: int = Field(
        100_000, ge=1, le=10_000_000, description="Largest k a label set, gallery or query may ask for."
    )
    max_items: int = Field(
        1_000_000, ge=1, description="Largest number of items (classes x templates, gallery images) in one call."
    )
    max_top: int = Field(10_000, ge=1, description="Largest `top` (results per query) one call may ask for.")
    max_classes: int = Field(10_000, ge=1, description="Most classes in one label set definition.")
    max_templates: int = Field(100, ge=1, description="Most templates in one label set definition.")
    max_ids: int = Field(100_000, ge=1, description="Most anchor ids that one delete or replace may name.")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Most pixels (width x height, read from the header before decoding) that one "
        "image may have; larger ones (decompression bombs) are refused (HTTP 413)."
    )
    max_request_pixels: int = Field(
        1_000_000_000, ge=1, description="Most pixels that the images of one call (one request) may add up to."
    )
    lock_timeout_s: float | None = Field(
        None, gt=0, description="Longest wait (seconds) of a read or an edit for the store's lock while another edit "
        "runs; past it: StoreBusyError (HTTP 503 from `asif serve`), nothing done. Unset: wait as long as it takes."
    )
    # `asif serve` (asif_qdrant/serve.py)
    api_keys: str | None = Field(
        None, description='Server API keys as KEY=TENANT pairs, comma-separated ("k1=acme,k2=globex,k0=@admin"); '
        "@admin manages shared anchors and tenants. Unset (and no keys file): the server is open to anyone."
    )
    api_keys_file: Path | None = Field(None, description="A file of KEY=TENANT lines (# comments), read at start.")
    serve_root: Path | None = Field(
        None, description="Folder under which the server may read images by path (classify/explain); unset: none."
    )
    max_request_bytes: int = Field(16 * 2**20, ge=1024, description="Largest request body the server accepts.")
    max_batch: int = Field(256, ge=1, description="Most vectors, images or anchors in one server request.")
    serve_admin_any_path: bool = Field(
        False, description="Let admin keys name image files outside ASIF_SERVE_ROOT and the ingest roots (tenant "
        "keys never can)."
    )
    rate_limit: str | None = Field(
        None, description='Requests per API key (or per client address without a valid key), e.g. "20/s" or '
        '"600/min"; past it: HTTP 429 with Retry-After. Unset: no limit.'
    )
    tag_collections: str | None = Field(
        None, description="Collections that tenant API keys may tag (PUT /v1/tags), comma-separated; an admin key "
        "may tag any collection. Unset: tenant keys tag nothing, since a tagging writes into the collection's points."
    )
    cors_origins: str | None = Field(
        None, description='Origins allowed to call the server from a browser, comma-separated ("*" for any); unset: '
        "CORS off."
    )
    # search: exact by default; the rest is opt-in (see asif_qdrant/search_options.py). Quantization and HNSW are
    # applied when the anchors collection is created; Qdrant Edge builds them in `asif optimize`.
    quantization: Quantization = Field(
        "none", description="Quantize the anchor vectors: int8, binary, or TurboQuant turbo4 / turbo2 (kept in RAM; "
        "originals on disk, used to rescore)."
    )
    hnsw: bool = Field(False, description="Search the anchors with an HNSW graph instead of a full scan.")
    hnsw_m: int = Field(16, ge=HNSW_M_MIN, le=HNSW_M_MAX, description="HNSW links per node.")
    hnsw_ef_construct: int = Field(
        100, ge=HNSW_EF_CONSTRUCT_MIN, description="HNSW candidates while building the graph."
    )
    hnsw_ef: int | None = Field(
        None, ge=1, description="HNSW candidates per query (raised to at least k + 8); default max(k + 8, 2k)."
    )
    oversampling: float = Field(
        2.0, ge=OVERSAMPLING_MIN, description="Quantized candidates fetched per result, for rescoring."
    )
    rescore: bool = Field(True, description="Rescore quantized candidates with the original vectors.")
    index_threshold_kb: int | None = Field(
        None, ge=1, description="Segments above this size (KB) get the HNSW graph / quantized vectors built."
    )
    full_scan_threshold_kb: int | None = Field(
        None, ge=1, description="Filters matching less than this (KB of vectors) are searched by a full scan."
    )

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, v: str) -> str:
        if not _PREFIX_RE.fullmatch(v):
            raise ValueError(
                f"prefix {v!r} is not a valid collection prefix: use 1-32 lowercase letters, digits, '_' or '-', "
                "starting with a letter or digit (for example 'asif_')"
            )
        return v

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, v: str | None) -> str | None:
        if v is not None:
            rate_per_second(v)
        return v

    @field_validator("image_encoder", "text_encoder")
    @classmethod
    def _check_encoder(cls, v: str) -> str:
        if ":" not in v or not v.split(":", 1)[1]:
            raise ValueError(
                f"encoder name {v!r} has no family prefix: write it as FAMILY:MODEL, "
                "for example 'timm:tf_efficientnet_lite0' or 'st:all-MiniLM-L6-v2'"
            )
        return v

    @field_validator("vector_names")
    @classmethod
    def _check_vector_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - {"image", "text"})
        if bad:
            raise ValueError(f"vector_names keys {bad} are unknown: map 'image' and/or 'text' to your vector names")
        return v

    @field_validator("payload_names")
    @classmethod
    def _check_payload_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - {"caption", "image_ref", "tenant", "content_hash"})
        if bad:
            raise ValueError(
                f"payload_names keys {bad} are unknown: map 'caption', 'image_ref', 'tenant' or 'content_hash'"
            )
        return v

    @model_validator(mode="after")
    def _check_server_settings(self) -> AsifSettings:
        if (
            self.replication_factor is not None
            and self.write_consistency_factor is not None
            and self.write_consistency_factor > self.replication_factor
        ):
            raise ValueError(
                f"write_consistency_factor={self.write_consistency_factor} exceeds "
                f"replication_factor={self.replication_factor}: lower it to at most the replication factor"
            )
        if self.k > self.max_k:
            raise ValueError(f"k={self.k} exceeds max_k={self.max_k}: lower ASIF_K or raise ASIF_MAX_K")
        return self

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.path / "cache"


def make_settings(settings: AsifSettings | None = None, **overrides: Any) -> AsifSettings:
    """Settings from the environment (or ``settings``) with ``overrides`` applied; ConfigError when invalid."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        if settings is None:
            return AsifSettings(**overrides)
        return settings.model_copy(update=overrides) if not overrides else AsifSettings(
            **{**settings.model_dump(exclude_unset=True), **overrides}
        )
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "settings"
        raise ConfigError(
            f"setting {loc}={err.get('input')!r} is invalid: {err['msg']} (set it as an argument or ASIF_{loc.upper()})"
        ) from None
