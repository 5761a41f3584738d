"""Ingest image-caption pairs: captions files and folders (read with :mod:`asif_qdrant.readers`) into rows, batching,
progress, content-hash ids.

``ingest(asif, "data/flickr8k")`` reads a captions file, encodes each image once (however many captions
it has) and each caption, and adds one anchor per row. Ids come from a content hash of the image
file's bytes and the caption, so running it again writes nothing new, and a run that was killed
half-way, run again, ends with exactly the store of a clean run. Images and captions are encoded through
:mod:`asif_qdrant.embedding` (decoding with limits, batches, the on-disk embedding cache), and rows whose anchors
are stored already are not even decoded.

``ingest_vectors`` adds pairs that you encoded yourself (``.npz``); ``add_pairs`` is the Python API
for a few images (paths or PIL images) and their captions, and what ``Asif.teach`` adds its examples with.
"""

from __future__ import annotations

import os
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from .anchors import AddResult, content_hash, file_digest, pair_key, pil_digest, text_digest
from .embedding import CacheArg, Embedder, EncodedImages, check_on_error, decode_file, progress_bar
from .errors import AsifError, ConfigError, InvalidInputError, NotFoundError
from .meta import validate_tenant
from .readers import file_format, image_bases, resolve_image, rows_from_file
from .validate import check_batch_size, check_count

if TYPE_CHECKING:
    from .asif import Asif

CAPTION_FILES = ("captions.tsv", "captions.csv", "captions.jsonl")
REQUIRED_COLUMNS = ("image", "caption")
RESERVED_COLUMNS = frozenset({"image_ref", "content_hash"})
MAX_BAD_REPORTED = 20
ENCODE_BATCH = 32
OnError = Literal["skip", "fail"]
_COLUMNS_HELP = (
    "a header row with columns 'image' and 'caption' (optional 'tenant' and any payload columns), "
    "for example 'image<TAB>caption' in a .tsv file"
)


# -- rows ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One row of a captions file: a pair to add, or (``error`` set) a row that cannot be read."""

    line: int
    image: Path | None
    image_ref: str
    caption: str
    tenant: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def read_source(source: str | Path, captions_file: str | Path | None = None) -> Iterator[Row]:
    """The rows of a source: a folder holding a captions file (and the images, maybe under ``images/``),
    or a captions file whose ``image`` column holds paths (relative to its folder, or absolute).

    Raises NotFoundError when the source or its captions file is missing, and InvalidInputError when the
    captions file has an unknown format or lacks the required columns. Rows that cannot be read
    (wrong number of fields, invalid JSON, ...) are yielded with ``error`` set, for the caller to report.
    """
    path, bases = locate_captions(Path(source), None if captions_file is None else Path(captions_file))
    fmt = captions_format(path)
    resolved: dict[str, Path] = {}
    rows = 0
    for line, record in rows_from_file(path, fmt, "captions file", partial(_check_columns, path)):
        rows += 1
        yield _to_row(line, record, bases, resolved)
    if rows == 0:
        what = "has a header but no rows: add one row" if fmt != "jsonl" else "has no rows: add one JSON object"
        raise InvalidInputError(f"captions file {str(path)!r} {what} per image-caption pair")


def locate_captions(source: Path, captions_file: Path | None = None) -> tuple[Path, list[Path]]:
    """The captions file of ``source`` and the folders that relative image paths are looked up in."""
    source = source.expanduser()
    if not source.exists():
        raise NotFoundError(
            f"source {str(source)!r} does not exist: pass a folder with a captions file "
            f"({', '.join(CAPTION_FILES)}) or the captions file itself"
        )
    if source.is_file():
        if captions_file is not None:
            raise ConfigError(
                f"source {str(source)!r} is a file and captions_file={str(captions_file)!r} was also given: "
                "pass the captions file as the source, or a folder as the source together with captions_file"
            )
        return source, image_bases(source.parent)
    if captions_file is not None:
        cand = captions_file.expanduser()
        path = cand if cand.is_absolute() or not (source / cand).exists() else source / cand
        if not path.is_file():
            raise NotFoundError(
                f"captions file {str(captions_file)!r} was found neither in {str(source)!r} nor as given: "
                "check its name"
            )
        return path, list(dict.fromkeys(image_bases(source) + image_bases(path.parent)))
    for name in CAPTION_FILES:
        if (source / name).is_file():
            return source / name, image_bases(source)
    raise NotFoundError(
        f"folder {str(source)!r} holds no captions file (looked for {', '.join(CAPTION_FILES)}): add one with "
        f"{_COLUMNS_HELP}, or name yours with captions_file=... (--captions)"
    )


def captions_format(path: Path) -> str:
    """'tsv', 'csv' or 'jsonl', from the file's suffix; InvalidInputError for anything else."""
    return file_format(path, "captions file", _COLUMNS_HELP.replace("a header row with ", ""))


def _check_columns(path: Path, columns: Sequence[str]) -> None:
    if not columns:
        raise InvalidInputError(f"captions file {str(path)!r} is empty: it needs {_COLUMNS_HELP}")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InvalidInputError(
            f"captions file {str(path)!r} has columns {list(columns)} and lacks {missing}: it needs {_COLUMNS_HELP}"
        )
    reserved = sorted(RESERVED_COLUMNS & set(columns))
    if reserved:
        raise InvalidInputError(
            f"captions file {str(path)!r} has reserved column(s) {reserved}: rename them (the store sets "
            "image_ref from the image column and content_hash itself)"
        )
    dup = sorted({c for c in columns if list(columns).count(c) > 1})
    if dup:
        raise InvalidInputError(f"captions file {str(path)!r} repeats column(s) {dup}: give every column its own name")


MAX_CAPTION_CHARS = 20_000  # longer captions are bad rows (reported, skipped with --on-error skip)
def _to_row(line: int, record: dict[str, Any] | str, bases: list[Path], resolved: dict[str, Path]) -> Row:
    if isinstance(record, str):
        return Row(line, None, "", "", error=record)
    image, caption, tenant = record.get("image"), record.get("caption"), record.get("tenant")
    payload = {k: v for k, v in record.items() if k not in ("image", "caption", "tenant")}
    ref = image.strip() if isinstance(image, str) else ""
    error = None
    if not ref:
        error = "the row has no image path"
    elif not isinstance(caption, str):
        error = f"the caption is not a string (got {type(caption).__name__})"
    elif tenant is not None and not isinstance(tenant, str):
        error = f"the tenant is not a string (got {type(tenant).__name__})"
    elif RESERVED_COLUMNS & set(payload):
        error = f"the row uses reserved field(s) {sorted(RESERVED_COLUMNS & set(payload))}: rename them"
    if error:
        return Row(line, None, ref, caption if isinstance(caption, str) else "", error=error)
    if ref not in resolved:
        resolved[ref] = resolve_image(ref, bases)
    return Row(line, resolved[ref], ref, str(caption).strip(), (tenant or "").strip() or None, payload)


# -- the report ------------------------------------------------------------------------------------
@dataclass
class IngestReport:
    """What an ingest did: counts, the first bad rows, and throughput."""

    source: str = ""
    rows: int = 0
    added: int = 0
    duplicates: int = 0
    skipped: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    images: int = 0
    images_encoded: int = 0
    captions_encoded: int = 0
    cache_hits: int = 0
    seconds: float = 0.0  # without model loading (model_load_seconds)
    model_load_seconds: float = 0.0

    def _rate(self, n: int) -> float:
        return round(n / self.seconds, 2) if self.seconds > 0 else 0.0

    @property
    def images_per_s(self) -> float:
        return self._rate(self.images_encoded)

    @property
    def captions_per_s(self) -> float:
        return self._rate(self.captions_encoded)

    @property
    def anchors_per_s(self) -> float:
        return self._rate(self.added)

    @property
    def rows_per_s(self) -> float:
        return self._rate(self.rows)

    def bad(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.bad_rows) < MAX_BAD_REPORTED:
            self.bad_rows.append((line, reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "added": self.added,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "bad_rows": [{"line": ln, "reason": r} for ln, r in self.bad_rows],
            "images": self.images,
            "images_encoded": self.images_encoded,
            "captions_encoded": self.captions_encoded,
            "cache_hits": self.cache_hits,
            "seconds": round(self.seconds, 3),
            "model_load_seconds": round(self.model_load_seconds, 3),
            "images_per_s": self.images_per_s,
            "captions_per_s": self.captions_per_s,
            "anchors_per_s": self.anchors_per_s,
            "rows_per_s": self.rows_per_s,
        }

    def summary(self) -> str:
        lines = [
            f"{self.rows} rows from {self.source or 'input'}: {self.added} added, {self.duplicates} already stored "
            f"(duplicates), {self.skipped} skipped (bad rows)",
            f"encoded {self.images_encoded} of {self.images} images ({self.images_per_s}/s) and "
            f"{self.captions_encoded} captions ({self.captions_per_s}/s); {self.cache_hits} embedding cache hits",
            f"{self.seconds:.1f} s, {self.anchors_per_s} anchors/s"
            + (f" (plus {self.model_load_seconds:.1f} s loading models)" if self.model_load_seconds >= 0.05 else ""),
        ]
        if self.bad_rows:
            shown = "; ".join(f"line {ln}: {r}" for ln, r in self.bad_rows[:5])
            more = f" (and {self.skipped - 5} more)" if self.skipped > 5 else ""
            lines.append(f"bad rows: {shown}{more}")
        return "\n".join(lines)


# -- ingest ----------------------------------------------------------------------------------------
@dataclass
class _Pending:
    """A row that passed the cheap checks: its tenant, content key and hash."""

    row: Row
    tenant: str
    digest: bytes
    hash: str


class _Ingest:
    """One run of :func:`ingest`: its options, embedder and report."""

    def __init__(self, asif: Asif, embedder: Embedder, report: IngestReport, on_error: OnError, tenant: str):
        self.asif = asif
        self.embedder = embedder
        self.report = report
        self.on_error = on_error
        self.tenant = tenant
        self.bad_in_batch: list[tuple[int, str]] = []

    def bad(self, row: Row, reason: str) -> None:
        self.bad_in_batch.append((row.line, reason))

    def precheck(self, row: Row) -> str | None:
        """The reason a row is bad without opening its image, or None."""
        if row.error:
            return row.error
        if not row.caption:
            return "the caption is empty"
        if len(row.caption) > MAX_CAPTION_CHARS:
            return (f"the caption has {len(row.caption)} characters, more than {MAX_CAPTION_CHARS}: shorten it "
                    "(a text encoder reads only its first few hundred tokens)")
        if row.image is None or not row.image.is_file():
            return f"image file {str(row.image or row.image_ref)!r} does not exist"
        try:
            validate_tenant(row.tenant)
        except ConfigError as e:
            return str(e)
        return None

    def batch(self, groups: list[tuple[Path, list[Row]]]) -> None:
        """Validate, encode and write one batch of images and their rows."""
        self.bad_in_batch = []
        pending = self._digest(groups)
        pending = self._drop_stored(pending)
        vectors = self._image_vectors(pending)
        pending = [p for p in pending if p.digest in vectors]
        self._raise_or_record(groups)
        if pending:
            self._write(pending, vectors)

    def _digest(self, groups: list[tuple[Path, list[Row]]]) -> list[_Pending]:
        out = []
        for path, rows in groups:
            try:
                digest = file_digest(path)
            except InvalidInputError as e:
                for row in rows:
                    self.bad(row, str(e))
                continue
            for row in rows:
                tenant = validate_tenant(row.tenant or self.tenant)
                h = content_hash(tenant, pair_key(digest, row.caption))
                out.append(_Pending(row, tenant, digest, h))
        return out

    def _drop_stored(self, pending: list[_Pending]) -> list[_Pending]:
        if not pending:
            return pending
        stored = self.asif.anchors.stored_mask([p.hash for p in pending])
        self.report.duplicates += sum(stored)
        return [p for p, s in zip(pending, stored, strict=True) if not s]

    def _image_vectors(self, pending: list[_Pending]) -> dict[bytes, np.ndarray]:
        """Vectors of the pending rows' images by digest; rows whose image cannot be decoded are marked bad."""
        if not pending:
            return {}
        by_digest: dict[bytes, list[_Pending]] = {}
        for p in pending:
            by_digest.setdefault(p.digest, []).append(p)
        digests = list(by_digest)
        before = self.embedder.encoded["image"]
        enc = self.embedder.images([by_digest[d][0].row.image for d in digests], keys=digests, on_error="skip",
                                   batch=len(digests))
        for i, why in enc.skipped:  # with on_error="fail", _raise_or_record raises before anything is written
            for p in by_digest[digests[i]]:
                self.bad(p.row, why)
        self.report.images_encoded += self.embedder.encoded["image"] - before
        return {digests[i]: v for i, v in zip(enc.kept, enc.vectors, strict=True)}

    def _raise_or_record(self, groups: list[tuple[Path, list[Row]]]) -> None:
        if not self.bad_in_batch:
            return
        self.bad_in_batch.sort()
        if self.on_error == "fail":
            line, reason = self.bad_in_batch[0]
            lines = [r.line for _, rows in groups for r in rows]
            raise InvalidInputError(
                f"{self.report.source} line {line}: {reason}. Nothing of this batch (lines {min(lines)}-{max(lines)}) "
                "was written; fix or remove the row and run again (rows already stored are skipped), "
                "or use on_error='skip' (--on-error skip) to skip bad rows"
            )
        for line, reason in self.bad_in_batch:
            self.report.bad(line, reason)

    def _write(self, pending: list[_Pending], vectors: dict[bytes, np.ndarray]) -> None:
        caps = [p.row.caption for p in pending]
        before = self.embedder.encoded["text"]
        texts = dict(zip(caps, self.embedder.texts(caps), strict=True))
        self.report.captions_encoded += self.embedder.encoded["text"] - before
        by_tenant: dict[str, list[_Pending]] = {}
        for p in pending:
            by_tenant.setdefault(p.tenant, []).append(p)
        for tenant, ps in by_tenant.items():
            res = self.asif.add_vectors(
                np.stack([vectors[p.digest] for p in ps]),
                np.stack([texts[p.row.caption] for p in ps]),
                captions=[p.row.caption for p in ps],
                payloads=[p.row.payload for p in ps],
                tenant=tenant,
                image_refs=[p.row.image_ref for p in ps],
                content_keys=[pair_key(p.digest, p.row.caption) for p in ps],
            )
            self.report.added += res.added
            self.report.duplicates += res.duplicates


def group_by_image(rows: Sequence[Row]) -> list[tuple[Path, list[Row]]]:
    """Rows grouped by image file, in order of first appearance."""
    groups: dict[Path, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.image, []).append(row)  # type: ignore[arg-type]
    return list(groups.items())


def _check_options(on_error: str, batch_size: int, limit: int | None) -> None:
    if on_error not in ("skip", "fail"):
        raise ConfigError(f"on_error={on_error!r} is invalid: use 'skip' (report bad rows) or 'fail' (stop at one)")
    check_batch_size(batch_size, "images")
    if limit is not None:
        check_count(limit, "limit", "rows (or None for all)")


def ingest(
    asif: Asif,
    source: str | Path,
    *,
    tenant: str | None = None,
    on_error: OnError = "skip",
    batch_size: int = 64,
    progress: bool = True,
    limit: int | None = None,
    captions_file: str | Path | None = None,
    cache: CacheArg = True,
    on_batch: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Add the image-caption pairs of ``source`` (a folder or a captions file) as anchors.

    Each image is encoded once for all its captions; ``batch_size`` images (and their captions) are
    validated, encoded and written together. ``tenant`` applies to rows without a ``tenant`` column
    value (default: the shared anchors). ``limit`` reads only the first rows. Bad rows (missing or
    corrupt images, empty captions, unreadable rows) are skipped and reported with their line numbers,
    or with ``on_error="fail"`` raise InvalidInputError before anything of their batch is written.
    ``cache`` is the embedding cache (True: the store's, in ``settings.resolved_cache_dir``).
    ``on_batch`` is called with the running report after each batch is written.
    """
    _check_options(on_error, batch_size, limit)
    default_tenant = validate_tenant(tenant)
    t0 = time.perf_counter()
    load0 = asif.encoder_load_seconds
    caption_path, bases = locate_captions(Path(source), None if captions_file is None else Path(captions_file))
    report = IngestReport(source=str(caption_path))
    rows = list(islice(read_source(source, captions_file), limit))
    report.rows = len(rows)
    run = _Ingest(asif, asif.embedder(cache), report, on_error, default_tenant)
    try:
        good = _precheck_rows(run, rows)
        _record_image_roots(asif, caption_path, bases, good, default_tenant)
        groups = group_by_image(good)
        report.images = len(groups)
        _run_batches(run, groups, batch_size, progress, on_batch)
        if report.added:
            asif.optimize(relayout=False)  # HNSW / quantized vectors where the store asks for them (Edge: only here)
    finally:
        report.cache_hits = run.embedder.cache_hits
        report.model_load_seconds = asif.encoder_load_seconds - load0
        report.seconds = time.perf_counter() - t0 - report.model_load_seconds  # rates exclude loading models
        run.embedder.close()
    report.bad_rows.sort()
    return report


def image_roots_of(bases: Sequence[Path], rows: Sequence[Row], sample: int = 200) -> list[str]:
    """The absolute folders among ``bases`` that hold the relative images of ``rows`` (a sample of them)."""
    refs = [r.image_ref for r in rows[:sample] if r.image_ref and not Path(r.image_ref).expanduser().is_absolute()]
    return [str(Path(os.path.abspath(b))) for b in bases if any((b / ref).is_file() for ref in refs)]


def _record_image_roots(asif: Asif, caption_path: Path, bases: Sequence[Path], rows: Sequence[Row],
                        default_tenant: str) -> None:
    roots = image_roots_of(bases, rows)
    if not roots:
        return
    source = os.path.abspath(caption_path)
    tenants = set()
    for r in rows:
        try:
            tenants.add(validate_tenant(r.tenant) if r.tenant else default_tenant)
        except AsifError:
            continue  # a row with a bad tenant name is reported by the batch that writes it
    for tenant in sorted(tenants):
        asif.record_image_roots(tenant, source, roots)


def _precheck_rows(run: _Ingest, rows: list[Row]) -> list[Row]:
    good = []
    for row in rows:
        reason = run.precheck(row)
        if reason is None:
            good.append(row)
        elif run.on_error == "fail":
            raise InvalidInputError(
                f"{run.report.source} line {row.line}: {reason}. Nothing was written; fix or remove the row, "
                "or use on_error='skip' (--on-error skip) to skip bad rows"
            )
        else:
            run.report.bad(row.line, reason)
    return good


def _run_batches(
    run: _Ingest,
    groups: list[tuple[Path, list[Row]]],
    batch_size: int,
    progress: bool,
    on_batch: Callable[[IngestReport], None] | None,
) -> None:
    from tqdm.auto import tqdm

    report = run.report
    with tqdm(total=len(groups), unit="img", desc="ingest", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(groups), batch_size):
            chunk = groups[start : start + batch_size]
            run.batch(chunk)
            bar.set_postfix_str(f"added={report.added} dup={report.duplicates} bad={report.skipped}", refresh=False)
            bar.update(len(chunk))
            if on_batch is not None:
                on_batch(report)


# -- the Python API ---------------------------------------------------------------------------------
def add_pairs(
    asif: Asif,
    images: Sequence[str | Path | Image.Image],
    captions: Sequence[str],
    tenant: str | None = None,
    payloads: Sequence[Mapping[str, Any]] | None = None,
    *,
    cache: CacheArg = True,
    digests: Sequence[bytes] | None = None,
) -> AddResult:
    """Encode images (paths or PIL images) and their captions and add them as anchor pairs: the AddResult holds
    their ids, the counts of added and already-stored pairs, and the relative-index items updated.

    An image that repeats (same file bytes, or same pixels) is encoded once. Ids come from the content,
    so adding the same pairs again writes nothing new and returns the stored ids. ``digests``: the sha256 of each
    image's file bytes when the caller has them but passes decoded images (an upload), so that the pair gets the
    id that adding the file by path gives; by default a PIL image is keyed on its pixels.
    """
    if isinstance(images, str | Path | Image.Image) or isinstance(captions, str):
        raise InvalidInputError("images and captions must be lists (one caption per image): wrap a single one in [...]")
    images, captions = list(images), list(captions)
    if len(images) != len(captions):
        raise InvalidInputError(f"got {len(images)} images and {len(captions)} captions: pass one caption per image")
    if not images:
        raise InvalidInputError("no pairs given: pass at least one image and its caption")
    caps = _check_captions(captions)
    if digests is None:
        digests = [_image_digest(im) for im in images]
    elif len(digests) != len(images):
        raise InvalidInputError(f"got {len(digests)} digests for {len(images)} images: pass one per image, or none")
    with asif.embedder(cache) as embedder:  # outside the lock; add_vectors is the one edit
        image_vectors = embedder.images(images, keys=digests, batch=ENCODE_BATCH).vectors
        text_vectors = embedder.texts(caps, batch=ENCODE_BATCH)
    res = asif.add_vectors(
        image_vectors,
        text_vectors,
        captions=caps,
        payloads=payloads,
        tenant=tenant,
        image_refs=[None if isinstance(im, Image.Image) else str(im) for im in images],
        content_keys=[pair_key(d, c) for d, c in zip(digests, caps, strict=True)],
    )
    return res


def _check_captions(captions: list[Any]) -> list[str]:
    out = []
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise InvalidInputError(f"caption {i} is a {type(c).__name__} ({c!r:.60}), not a string: pass strings")
        if not c.strip():
            raise InvalidInputError(f"caption {i} is empty: give every image a caption")
        out.append(c.strip())
    return out


def _image_digest(image: Any) -> bytes:
    if isinstance(image, Image.Image):
        return pil_digest(image)
    if isinstance(image, str | Path):
        path = Path(image).expanduser()
        if not path.is_file():
            decode_file(path)  # raises InvalidInputError naming the file
        return file_digest(path)
    raise InvalidInputError(
        f"image input of type {type(image).__name__} is not supported: pass a file path or a PIL.Image.Image"
    )


# -- bring your own vectors --------------------------------------------------------------------------
VECTOR_ARRAYS = ("image_vectors", "text_vectors")
OPTIONAL_ARRAYS = ("captions", "ids", "image_refs")


def ingest_vectors(asif: Asif, file: str | Path, *, tenant: str | None = None) -> IngestReport:
    """Add pairs you encoded yourself, from a ``.npz`` with arrays ``image_vectors`` (n, image dim) and
    ``text_vectors`` (n, text dim), and optional ``captions``, ``ids`` and ``image_refs`` (n each).

    The store validates everything before it writes anything.
    """
    t0 = time.perf_counter()
    path = Path(file).expanduser()
    if not path.is_file():
        raise NotFoundError(f"vectors file {str(path)!r} does not exist: check the path")
    arrays = _read_vectors_file(path)
    n = int(np.shape(arrays["image_vectors"])[0]) if np.ndim(arrays["image_vectors"]) else 0
    res = asif.add_vectors(
        arrays["image_vectors"],
        arrays["text_vectors"],
        captions=_strings(arrays.get("captions"), "captions", path),
        tenant=tenant,
        ids=_ids(arrays.get("ids"), path),
        image_refs=_strings(arrays.get("image_refs"), "image_refs", path),
    )
    report = IngestReport(source=str(path), rows=n, added=res.added, duplicates=res.duplicates)
    if res.added:
        asif.optimize(relayout=False)
    report.seconds = time.perf_counter() - t0
    return report


def _read_vectors_file(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        raise ConfigError(
            f"reading {str(path)!r} needs Parquet support, which this version does not have: save the vectors as "
            ".npz (np.savez(path, image_vectors=..., text_vectors=..., captions=..., ids=..., image_refs=...))"
        )
    if suffix != ".npz":
        raise InvalidInputError(
            f"vectors file {str(path)!r} has an unknown format (suffix {suffix or '(none)'!r}): use a .npz file "
            "with arrays image_vectors and text_vectors (optional captions, ids, image_refs)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            missing = [a for a in VECTOR_ARRAYS if a not in names]
            if missing:
                raise InvalidInputError(
                    f"vectors file {str(path)!r} has arrays {names} and lacks {missing}: save it with "
                    "np.savez(path, image_vectors=..., text_vectors=...) (optional captions, ids, image_refs)"
                )
            return {a: npz[a] for a in (*VECTOR_ARRAYS, *OPTIONAL_ARRAYS) if a in names}
    except AsifError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise InvalidInputError(
                f"vectors file {str(path)!r} holds an object array, which is not loaded for safety: save strings "
                "as np.array(captions, dtype=str) and numbers as numeric arrays"
            ) from e
        raise InvalidInputError(
            f"vectors file {str(path)!r} cannot be read as .npz ({e}): save it with np.savez"
        ) from e
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InvalidInputError(f"vectors file {str(path)!r} is not a valid .npz ({e}): save it with np.savez") from e


def _strings(arr: np.ndarray | None, what: str, path: Path) -> list[str | None] | None:
    if arr is None:
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "US":
        raise InvalidInputError(
            f"array {what!r} in {str(path)!r} has dtype {arr.dtype} and shape {arr.shape}: save it as a 1-D "
            f"string array, np.array({what}, dtype=str)"
        )
    return [x.decode() if isinstance(x, bytes) else str(x) for x in arr.tolist()]


def _ids(arr: np.ndarray | None, path: Path) -> list[int] | None:
    if arr is None:
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise InvalidInputError(
            f"array 'ids' in {str(path)!r} has dtype {arr.dtype} and shape {arr.shape}: save it as a 1-D integer "
            "array of ids in [0, 2**32), or leave it out to let the store assign ids"
        )
    return [int(x) for x in arr.tolist()]


__all__ = [
    "CAPTION_FILES",
    "IngestReport",
    "Row",
    "add_pairs",
    "captions_format",
    "file_digest",
    "group_by_image",
    "ingest",
    "ingest_vectors",
    "locate_captions",
    "pair_key",
    "pil_digest",
    "read_source",
    "text_digest",
]


def encode_image_files(
    asif: Asif,
    paths: Sequence[Path],
    *,
    on_error: OnError = "fail",
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "encode",
) -> EncodedImages:
    """Encode image files in batches with the store's image encoder (``Asif.embedder().files``). A missing or
    corrupt file raises InvalidInputError naming it (``on_error="fail"``) or is skipped and listed (``"skip"``)."""
    check_on_error(on_error)
    with progress_bar(len(paths), desc, progress) as bar:
        return asif.embedder().files(paths, on_error=on_error, batch=batch_size, progress=bar)
