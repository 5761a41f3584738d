"""The CLI against a running ``asif serve`` (``asif --server URL``): the commands that have an HTTP equivalent
send their work through :class:`~asif_qdrant.client.AsifClient` and get the library's result types back, which
the command formats exactly as in embedded mode. Nothing here loads a model: the server's encoders are warm.

This module is imported only when ``--server`` (``ASIF_SERVER``) is given, so that the embedded CLI does not pay
for httpx, and the remote CLI pays for nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..client import AsifClient
from ..errors import ConfigError, InvalidInputError, NotFoundError
from ..zeroshot import Prediction

UPLOAD_IMAGES = 32  # images per upload request (the server's ASIF_MAX_BATCH is 256 by default)
UPLOAD_BYTES = 8 * 2**20  # bytes per upload request (the server's ASIF_MAX_REQUEST_BYTES is 16 MiB by default)

HTTP_COMMANDS = ("classify", "search", "explain", "add", "delete", "labels add|list|delete|check",
                 "gallery list|delete", "tenants list|stats|delete", "stats")


def connect(url: str, api_key: str | None) -> AsifClient:
    """The client of the command line; it waits for nothing (a server that does not answer is one error line)."""
    return AsifClient(url, api_key, retries=3)


def no_http_equivalent(command: str, why: str = "") -> ConfigError:
    """The error of a command that has no HTTP equivalent, run with --server."""
    return ConfigError(
        f"`asif {command}` has no HTTP equivalent{why}: run it without --server (ASIF_SERVER) on the machine that "
        f"holds the store, after stopping `asif serve` (the embedded store is opened by one process). Commands "
        f"that work with --server: {', '.join(HTTP_COMMANDS)}"
    )


def _batches(paths: Sequence[Path]) -> list[list[tuple[Path, bytes]]]:
    """Read every file once, in batches that fit the server's per-request limits."""
    out: list[list[tuple[Path, bytes]]] = [[]]
    size = 0
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError as e:
            raise NotFoundError(f"image {str(p)!r} cannot be read ({e.strerror}): check the path") from None
        if out[-1] and (len(out[-1]) >= UPLOAD_IMAGES or size + len(data) > UPLOAD_BYTES):
            out.append([])
            size = 0
        out[-1].append((p, data))
        size += len(data)
    return [b for b in out if b]


def classify_files(
    client: AsifClient, paths: Sequence[Path], labels: str, top: int, tenant: str | None, on_error: str
) -> tuple[list[Path], list[Prediction], list[tuple[str, str]]]:
    """Upload image files in batches and classify them: (the paths classified, their predictions, the skipped
    (path, why)). Each upload is named by its local path, so that the server's refusal names the file. With
    ``on_error="skip"`` a batch that the server refuses as unreadable is retried one image at a time."""
    kept: list[Path] = []
    preds: list[Prediction] = []
    skipped: list[tuple[str, str]] = []
    for batch in _batches(paths):
        try:
            got = client.classify(labels, images=[(str(p), b) for p, b in batch], top=top, tenant=tenant)
            kept += [p for p, _ in batch]
            preds += got
            continue
        except InvalidInputError as e:
            if on_error == "fail":
                raise InvalidInputError(f"{e}; or pass --on-error skip to go on without it") from None
        for p, b in batch:
            try:
                preds += client.classify(labels, images=[(str(p), b)], top=top, tenant=tenant)
                kept.append(p)
            except InvalidInputError as e:
                skipped.append((str(p), str(e)))
    return kept, preds, skipped
