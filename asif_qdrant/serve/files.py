"""Which image files a request may name: only files inside the serve root (``ASIF_SERVE_ROOT``) or the folders
that ingest recorded for the caller's anchors, after resolving links; everything else is 403 (for tenant keys
always; for admin keys unless ``ASIF_SERVE_ADMIN_ANY_PATH``). Bad paths (a NUL byte, an overlong name, a link
loop) are 400, missing files 404, never 500; messages name the path as the caller gave it, never a server folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ..errors import NotFoundError
from .auth import Principal
from .errors import HTTPError

MAX_PATH_CHARS = 1024
MAX_NAME_CHARS = 255


def inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def check_syntax(ref: str, what: str) -> None:
    """400 for a path that no file system can hold (NUL, overlong); the message shows the path cut short."""
    shown = repr(ref[:60] + ("..." if len(ref) > 60 else ""))
    if "\x00" in ref:
        raise HTTPError(400, f"{what} {shown} contains a NUL byte: send a plain relative path")
    if len(ref) > MAX_PATH_CHARS or any(len(part) > MAX_NAME_CHARS for part in ref.split("/")):
        raise HTTPError(400, f"{what} {shown} is too long (at most {MAX_PATH_CHARS} characters, {MAX_NAME_CHARS} "
                             "per name): send a shorter path")


def resolve(ref: str, roots: Sequence[Path], what: str = "path") -> Path:
    """The file ``ref`` (relative to the first root that holds it) resolved, links included; 403 outside the roots."""
    check_syntax(ref, what)
    if not roots:
        raise HTTPError(403, "reading images by path is off: upload the image, or set ASIF_SERVE_ROOT")
    last: Path | None = None
    for root in roots:
        try:
            p = (root / ref).resolve(strict=False)
        except (OSError, RuntimeError, ValueError):  # a link loop (RuntimeError on Python < 3.13), a bad name
            raise HTTPError(400, f"{what} {ref[:200]!r} cannot be resolved (a link loop?): check the path") from None
        if not inside(p, roots):
            raise HTTPError(403, f"{what} {ref[:200]!r} is outside the serve root: give a path relative to "
                                 "ASIF_SERVE_ROOT")
        try:
            if p.is_file():
                return p
        except OSError:
            raise HTTPError(400, f"{what} {ref[:200]!r} cannot be read: check the path") from None
        last = last or p
    raise NotFoundError(f"image {ref[:200]!r} does not exist under the serve root: check the path")


def check_refs(refs: Sequence[str | None] | None, who: Principal, any_path: bool) -> None:
    """``image_refs`` stored with new anchors: relative paths that stay inside their root (no '..', not absolute),
    so that a report can never show a file from elsewhere; admin keys may be let through (ASIF_SERVE_ADMIN_ANY_PATH)."""
    if refs is None or (who.admin and any_path):
        return
    for i, ref in enumerate(refs):
        if ref is None:
            continue
        check_syntax(ref, f"image_refs[{i}]")
        pure = PurePosixPath(ref.replace(os.sep, "/"))
        if pure.is_absolute() or ref.startswith("~") or ".." in pure.parts or (len(ref) > 1 and ref[1] == ":"):
            raise HTTPError(403, f"image_refs[{i}] {ref[:200]!r} leaves the serve root: give a path relative to "
                                 "ASIF_SERVE_ROOT, without '..'")


def allowed_roots(serve_root: Path | None, recorded: Sequence[Path]) -> list[Path]:
    """The folders whose files a caller's reports may show: the serve root and the recorded ingest roots, resolved."""
    out = [serve_root] if serve_root is not None else []
    for r in recorded:
        try:
            out.append(Path(r).expanduser().resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    return list(dict.fromkeys(out))
