"""The readers-writer lock that makes one ``Asif`` safe to share between threads.

Reads (classify, search, explain, listings) hold the lock shared and run in parallel; an edit (add, delete,
replace, define, refresh, delete a tenant) holds it exclusively from its first write to its last, so a reader
sees the store before the edit or after it, never between. Writers are preferred: once a writer waits, new
readers queue behind it, so a stream of reads cannot starve an edit.

Both sides are re-entrant within one thread (an edit that calls another edit, a read inside an edit, a read
inside a read). A read that finds it must write (a relative index left behind by an edit made behind the
plugin's back, a shared label set that needs a tenant copy) never writes under the shared lock: it raises
:class:`WriteNeeded`, the outermost read releases the shared lock, takes the exclusive one and runs again from
the start, re-checking what it found, so the repair is made once, whole, and by one thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import StoreBusyError

T = TypeVar("T")


class WriteNeeded(BaseException):
    """Raised inside a shared (read) section that has to write; the outermost read retries exclusively.
    A BaseException, so that no `except Exception` on the way up can swallow it."""


class RWLock:
    """A re-entrant, writer-preferring readers-writer lock.

    ``timeout``: the longest wait, in seconds, for the outermost acquisition (a read behind an edit, an edit behind
    reads or another edit); past it, :class:`~asif_qdrant.errors.StoreBusyError` is raised and nothing has run.
    None: wait as long as it takes."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None
        self._waiting_writers = 0
        self._local = threading.local()

    # -- per-thread state ---------------------------------------------------------------------
    def _depth(self) -> tuple[int, int]:
        return getattr(self._local, "reads", 0), getattr(self._local, "writes", 0)

    @property
    def holds_write(self) -> bool:
        return self._depth()[1] > 0

    @property
    def holds_any(self) -> bool:
        r, w = self._depth()
        return r > 0 or w > 0

    # -- raw acquire / release ----------------------------------------------------------------
    def _wait(self, blocked: Callable[[], bool], what: str, timed: bool = True) -> None:
        """Wait on the condition (held) until ``blocked()`` is false, at most ``timeout`` seconds (if ``timed``)."""
        if self.timeout is None or not timed:
            while blocked():
                self._cond.wait()
            return
        deadline = time.monotonic() + self.timeout
        while blocked():
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreBusyError(
                    f"the store is busy: {what} waited more than {self.timeout:g} s for the edit (or the reads) in "
                    "progress; retry shortly, or raise ASIF_LOCK_TIMEOUT_S"
                )
            self._cond.wait(left)

    def _acquire_read(self) -> None:
        with self._cond:
            self._wait(lambda: self._writer is not None or self._waiting_writers > 0, "a read")
            self._readers += 1
        self._local.reads = 1

    def _release_read(self) -> None:
        self._local.reads = 0
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def _acquire_write(self, timed: bool = True) -> None:
        me = threading.get_ident()
        with self._cond:
            self._waiting_writers += 1
            try:
                self._wait(lambda: self._writer is not None or self._readers > 0, "an edit", timed)
            except BaseException:
                self._waiting_writers -= 1
                self._cond.notify_all()  # it gave up: the readers queued behind this writer may go on
                raise
            self._waiting_writers -= 1
            self._writer = me
        self._local.writes = 1

    def _release_write(self) -> None:
        self._local.writes = 0
        with self._cond:
            self._writer = None
            self._cond.notify_all()

    # -- what the facade uses -----------------------------------------------------------------
    def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` under the shared lock; if it raises WriteNeeded, run it again under the exclusive one."""
        reads, writes = self._depth()
        if reads or writes:  # nested: already covered by the outer section (a WriteNeeded travels up)
            return fn(*args, **kwargs)
        self._acquire_read()
        try:
            return fn(*args, **kwargs)
        except WriteNeeded:
            pass
        finally:
            self._release_read()
        return self.write(fn, *args, **kwargs)

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` under the exclusive lock (re-entrant). Inside a read section this raises WriteNeeded, so
        the outermost read gives up its shared lock and runs again exclusively (a lock is never upgraded)."""
        return self._write(True, fn, *args, **kwargs)

    def write_untimed(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like :meth:`write`, waiting as long as it takes whatever the timeout (closing the store must not give
        up half-way through the shutdown of a server)."""
        return self._write(False, fn, *args, **kwargs)

    def _write(self, timed: bool, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        reads, writes = self._depth()
        if writes:
            self._local.writes = writes + 1
            try:
                return fn(*args, **kwargs)
            finally:
                self._local.writes = writes
        if reads:
            raise WriteNeeded()
        self._acquire_write(timed)
        try:
            return fn(*args, **kwargs)
        finally:
            self._release_write()

    def need_write(self) -> None:
        """Call before a write that a read may have to make: raises WriteNeeded unless the lock is held
        exclusively by this thread."""
        if not self.holds_write:
            raise WriteNeeded()
