"""Reading inputs, once for the whole package: rows of CSV/TSV/JSONL files (sqlite-utils' ``rows_from_file`` is the
model), image folders (one sub-folder per class, or searched recursively), image specs (files, folders, globs) and
image references relative to a file's folder. Ingest, teaching and the evaluation tools all read through here."""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, NotFoundError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
ROW_FORMATS: Mapping[str, str] = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_FIELD_LIMIT = 64 * 2**20  # the csv module's own limit (128 KiB) would refuse the whole file at one long field

# (line, record): a record is the row's fields by column, or (a string) why the row cannot be read
RowRecord = tuple[int, "dict[str, Any] | str"]


def file_format(path: Path, what: str, expect: str, formats: Mapping[str, str] = ROW_FORMATS) -> str:
    """'tsv', 'csv' or 'jsonl' from ``path``'s suffix; InvalidInputError naming the suffixes that work.
    ``what`` names the file in messages ("captions file"); ``expect`` says what its rows hold."""
    fmt = formats.get(path.suffix.lower())
    if fmt is None:
        first: dict[str, str] = {}
        for suffix, f in formats.items():
            first.setdefault(f, suffix)  # one suffix per format, in the order given
        known = list(first.values())
        listed = ", ".join(known[:-1]) + " or " + known[-1] if len(known) > 1 else known[0]
        raise InvalidInputError(
            f"{what} {str(path)!r} has an unknown format (suffix {path.suffix or '(none)'!r}): use a "
            f"{listed} file with {expect}"
        )
    return fmt


def rows_from_file(
    path: Path,
    fmt: str,
    what: str,
    check_columns: Callable[[list[str]], None] | None = None,
    *,
    lower_keys: bool = False,
) -> Iterator[RowRecord]:
    """(line, record) for each non-empty data row of a CSV/TSV file with a header row, or of a JSONL file of
    objects. A row that cannot be read (wrong field count, invalid JSON, not an object) comes as (line, reason),
    for the caller to report or refuse. ``check_columns`` sees the header (CSV/TSV: stripped, lower-case) or the
    first object's keys and raises for a file that cannot be right. Files that are not UTF-8, or whose quoting
    cannot be parsed, raise InvalidInputError naming ``what`` and the file."""
    try:
        if fmt == "jsonl":
            yield from _jsonl_rows(path, check_columns, lower_keys)
        else:
            yield from _delimited_rows(path, "\t" if fmt == "tsv" else ",", what, check_columns)
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{what} {str(path)!r} is not UTF-8 text ({e}): save it as UTF-8") from e
    except csv.Error as e:
        raise InvalidInputError(f"{what} {str(path)!r} cannot be parsed ({e}): fix the quoting there") from e


def _delimited_rows(
    path: Path, delimiter: str, what: str, check_columns: Callable[[list[str]], None] | None
) -> Iterator[RowRecord]:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        columns = [h.strip().lower() for h in header or []]
        if check_columns is not None:
            check_columns(columns)
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not any(x.strip() for x in fields):
                continue
            if len(fields) != len(columns):
                names = ", ".join(columns)
                yield line, f"the row has {len(fields)} fields but the header has {len(columns)} ({names})"
                continue
            yield line, dict(zip(columns, fields, strict=True))


def _jsonl_rows(path: Path, check_columns: Callable[[list[str]], None] | None, lower_keys: bool) -> Iterator[RowRecord]:
    checked = check_columns is None
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                yield line, f"the row is not valid JSON ({e.msg} at column {e.colno})"
                continue
            if not isinstance(obj, dict):
                yield line, f"the row is a JSON {type(obj).__name__}, not an object"
                continue
            if lower_keys:
                obj = {str(k).lower(): v for k, v in obj.items()}
            if not checked and check_columns is not None:
                check_columns([str(k) for k in obj])
                checked = True
            yield line, obj


# -- image references ---------------------------------------------------------------------------------
def image_bases(folder: Path) -> list[Path]:
    """Where relative image paths of a file in ``folder`` are looked up: the folder, then its ``images/``."""
    return [folder, folder / "images"]


def resolve_image(ref: str, bases: Sequence[Path]) -> Path:
    """The file that an image reference names: absolute, or the first base folder holding it (else the first)."""
    p = Path(ref).expanduser()
    if p.is_absolute():
        return p
    for base in bases:
        if (base / p).is_file():
            return (base / p).resolve()
    return (bases[0] / p).resolve()


# -- image folders and specs --------------------------------------------------------------------------
def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def class_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """(class folder name, its image files sorted) for each sub-folder of ``root``, sorted by name; sub-folders
    without images are kept (with no files) for the caller to judge. NotFoundError when ``root`` is no folder."""
    if not root.is_dir():
        raise NotFoundError(
            f"folder {str(root)!r} does not exist: give a folder with one sub-folder of images per class, "
            f"e.g. {root}/cat/1.jpg, {root}/dog/1.jpg"
        )
    return [(d.name, sorted(p for p in d.iterdir() if is_image_file(p)))
            for d in sorted(p for p in root.iterdir() if p.is_dir())]


def images_under(folder: Path) -> list[Path]:
    """The image files under ``folder``, searched recursively, sorted."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and is_image_file(f))


def expand_images(specs: Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files that ``specs`` name: files as given, folders searched recursively (sorted), and glob
    patterns (``photos/*.jpg``, ``**`` recursive). Returns the files (without repeats) and the specs that name
    nothing, each with the reason."""
    out: list[Path] = []
    bad: list[tuple[str, str]] = []
    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_dir():
            found = images_under(p)
            if not found:
                bad.append((str(spec), "the folder holds no images (" + ", ".join(sorted(IMAGE_SUFFIXES)) + ")"))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif glob.has_magic(str(spec)):
            found = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
            if not found:
                bad.append((str(spec), "the pattern matches no file"))
            out.extend(found)
        else:
            bad.append((str(spec), "no such file or folder"))
    return list(dict.fromkeys(out)), bad


__all__ = [
    "IMAGE_SUFFIXES",
    "ROW_FORMATS",
    "RowRecord",
    "class_folders",
    "expand_images",
    "file_format",
    "image_bases",
    "images_under",
    "is_image_file",
    "resolve_image",
    "rows_from_file",
]
