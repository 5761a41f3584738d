"""ScopedLock: a tenant's edit excludes only that tenant; shared edits exclude everyone; repairs escalate."""

from __future__ import annotations

import threading

import pytest

from asif_qdrant.errors import StoreBusyError
from asif_qdrant.locking import ScopedLock

pytestmark = pytest.mark.timeout(30)


def _holding(lock: ScopedLock, tenant: str | None) -> tuple[threading.Event, threading.Event, threading.Thread]:
    held, release = threading.Event(), threading.Event()

    def edit() -> None:
        held.set()
        release.wait(10)

    t = threading.Thread(target=lock.write, args=(tenant, edit), daemon=True)
    t.start()
    assert held.wait(5)
    return held, release, t


def test_a_tenant_edit_blocks_its_own_tenant_only() -> None:
    lock = ScopedLock(timeout=0.2)
    _, release, t = _holding(lock, "acme")
    try:
        assert lock.read("globex", lambda: 1) == 1
        assert lock.write("globex", lambda: 2) == 2
        with pytest.raises(StoreBusyError, match="a read waited"):
            lock.read("acme", lambda: 3)
        with pytest.raises(StoreBusyError, match="an edit waited"):
            lock.write("acme", lambda: 4)
        with pytest.raises(StoreBusyError, match="an edit waited"):
            lock.write(None, lambda: 5)  # shared: the store-wide lock, behind every tenant's edit
    finally:
        release.set()
        t.join(5)
    assert lock.read("acme", lambda: 6) == 6


def test_a_shared_edit_blocks_every_tenant() -> None:
    lock = ScopedLock(timeout=0.2)
    _, release, t = _holding(lock, "_shared")
    try:
        for tenant in ("acme", "globex", None):
            with pytest.raises(StoreBusyError):
                lock.read(tenant, lambda: 0)
    finally:
        release.set()
        t.join(5)


def test_repairs_inside_a_read_escalate_to_the_lock_that_covers_them() -> None:
    lock = ScopedLock()
    seen: list[tuple[bool, bool]] = []

    def read_that_repairs(scope: str | None) -> str:
        lock.need_write(scope)
        seen.append((lock.store.holds_write, lock.tenant("acme").holds_write))
        return "done"

    assert lock.read("acme", read_that_repairs, "acme") == "done"
    assert seen[-1] == (False, True)  # the tenant's copy: acme's exclusive lock, the store's shared
    assert lock.read("acme", read_that_repairs, None) == "done"
    assert seen[-1][0] is True  # a shared record: the store-wide exclusive lock
