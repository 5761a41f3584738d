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

    def _acquire_read(self, what: str = "a read") -> None:
        with self._cond:
            self._wait(lambda: self._writer is not None or self._waiting_writers > 0, what)
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
        return self.read_for("a read", fn, *args, **kwargs)

    def read_for(self, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """:meth:`read`, naming what waits in the StoreBusyError ("an edit" of one tenant takes the store lock
        shared)."""
        reads, writes = self._depth()
        if reads or writes:  # nested: already covered by the outer section (a WriteNeeded travels up)
            return fn(*args, **kwargs)
        self._acquire_read(what)
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


class ScopedLock:
    """The store-wide lock plus one lock per tenant, so that one tenant's edit does not stop the others.

    - A read for tenant T holds the store lock shared and T's lock shared: it runs beside every other read, and
      beside the edits of other tenants.
    - A tenant-scoped edit (T's anchors, T's label sets and galleries, T's copies of shared ones) holds the store
      lock shared and T's lock exclusively: T's readers see the state before or after it, other tenants go on.
    - A shared edit (the shared anchors or definitions, migrations, optimize, closing) holds the store lock
      exclusively, as before.

    The order is always store, then tenant. A read that finds it must write raises WriteNeeded through
    :meth:`need_write`: a tenant-scoped repair is retried under T's exclusive lock, a shared one under the store's.
    """

    def __init__(self, timeout: float | None = None) -> None:
        self.store = RWLock(timeout)
        self.timeout = timeout
        self._tenants: dict[str, RWLock] = {}
        self._mu = threading.Lock()

    def tenant(self, name: str) -> RWLock:
        with self._mu:
            lock = self._tenants.get(name)
            if lock is None:
                lock = self._tenants[name] = RWLock(self.timeout)
            return lock

    @staticmethod
    def _scoped(tenant: str | None) -> bool:
        from .meta import TENANT_SHARED

        return tenant is not None and tenant != TENANT_SHARED

    def read(self, tenant: str | None, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if not self._scoped(tenant):
            return self.store.read(fn, *args, **kwargs)
        lock = self.tenant(tenant)  # type: ignore[arg-type]
        return self.store.read(lock.read, fn, *args, **kwargs)

    def write(self, tenant: str | None, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if not self._scoped(tenant) or self.store.holds_write:
            return self.store.write(fn, *args, **kwargs)
        lock = self.tenant(tenant)  # type: ignore[arg-type]
        return self.store.read_for("an edit", lock.write, fn, *args, **kwargs)

    def write_untimed(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return self.store.write_untimed(fn, *args, **kwargs)

    def holds_write(self, tenant: str | None) -> bool:
        if self.store.holds_write:
            return True
        return self._scoped(tenant) and self.tenant(tenant).holds_write  # type: ignore[arg-type]

    def need_write(self, tenant: str | None = None) -> None:
        """Before a write that a read may have to make, of ``tenant``'s records (None or the shared tenant: of
        records every tenant reads): raises WriteNeeded unless this thread holds the lock that covers it."""
        if not self.holds_write(tenant):
            raise WriteNeeded()
