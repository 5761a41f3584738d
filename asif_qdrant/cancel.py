"""Cancellation at batch boundaries: long loops (encoding, the anchor top-k of many items) call :func:`checkpoint`
between batches; a caller that can tell when its client went away (``asif serve``) installs a check with
:func:`cancel_when` for the duration of one request. Checkpoints sit only before the first write of an edit, so a
cancelled edit writes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import CancelledError

_check: ContextVar[Callable[[], bool] | None] = ContextVar("asif_cancel_check", default=None)


@contextmanager
def cancel_when(gone: Callable[[], bool]) -> Iterator[None]:
    """Within the block (this context: a thread, or a task and the threads it hands work to), checkpoints raise
    CancelledError once ``gone()`` is true."""
    token = _check.set(gone)
    try:
        yield
    finally:
        _check.reset(token)


def checkpoint() -> None:
    """Raise CancelledError when the current work's requester went away; otherwise nothing (and cheap)."""
    gone = _check.get()
    if gone is not None and gone():
        raise CancelledError("the request was cancelled: its client disconnected before the work was done")


__all__ = ["cancel_when", "checkpoint"]
