"""One Asif shared by threads: readers in parallel with a writer see only whole states, and nothing breaks.

The writer cycles a tenant's extra anchors through known states (none -> added -> replaced -> deleted), so every
state's answers can be computed beforehand, sequentially; each concurrent answer must equal one of them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, small_settings

from asif_qdrant import Asif
from asif_qdrant.locking import RWLock, WriteNeeded
from asif_qdrant.meta import index_key

TENANT = "t1"
CLASSES = ["alpha", "beta", "gamma", "delta"]
N_BASE, N_EXTRA = 40, 12
EXTRA_IDS = list(range(10_000, 10_000 + N_EXTRA))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class World:
    """The fixed inputs: base anchors, two versions of the extra anchors, the queries."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        self.base = (rng.standard_normal((N_BASE, IMG_DIM)), rng.standard_normal((N_BASE, TXT_DIM)))
        self.extra = (rng.standard_normal((N_EXTRA, IMG_DIM)), rng.standard_normal((N_EXTRA, TXT_DIM)))
        self.extra2 = (rng.standard_normal((N_EXTRA, IMG_DIM)), rng.standard_normal((N_EXTRA, TXT_DIM)))
        self.prompts = _unit(rng.standard_normal((len(CLASSES), TXT_DIM)))
        self.gallery = _unit(rng.standard_normal((10, IMG_DIM)))
        self.images = _unit(rng.standard_normal((3, IMG_DIM)))
        self.texts = _unit(rng.standard_normal((2, TXT_DIM)))

    def setup(self, a: Asif) -> None:
        self.base_ids = a.add_vectors(*self.base, captions=[f"base {i}" for i in range(N_BASE)]).ids
        a.add_vectors(np.ones((1, IMG_DIM)), np.ones((1, TXT_DIM)), captions=["own"], tenant=TENANT)
        a.define_labels("L", CLASSES, templates="plain", prompt_vectors=self.prompts, k=16)
        a.add_gallery("G", vectors=self.gallery, k=16)

    # the writer's edits, in order; after step i the store is in state i + 1 (state 0 = before the first)
    def steps(self, a: Asif) -> list[Any]:
        return [
            lambda: a.add_vectors(*self.extra, captions=[f"x {i}" for i in range(N_EXTRA)], tenant=TENANT,
                                  ids=EXTRA_IDS).ids,
            lambda: a.replace(EXTRA_IDS, *self.extra2, captions=[f"y {i}" for i in range(N_EXTRA)], tenant=TENANT),
            lambda: a.delete(EXTRA_IDS, tenant=TENANT).count,
        ]

    def classify(self, a: Asif) -> Any:
        preds = a.classify(vectors=self.images, labels="L", top=4, tenant=TENANT)
        return [[(s.label, s.score) for s in p.top] for p in preds]

    def search(self, a: Asif) -> Any:
        return [[(h.id, h.score) for h in hs] for hs in a.search(vector=self.texts, gallery="G", top=5, tenant=TENANT)]

    def explain(self, a: Asif) -> Any:
        e = a.explain(vector=self.images[0], labels="L", top=5, tenant=TENANT)
        return [(e.label, e.score)] + [(c.id, c.contribution) for c in e.contributions]

    def answers(self, a: Asif) -> dict[str, Any]:
        return {"classify": self.classify(a), "search": self.search(a), "explain": self.explain(a)}


def _same(x: Any, y: Any) -> bool:
    """Equal names/ids and scores within float32 rounding."""
    if len(x) != len(y):
        return False
    for u, v in zip(x, y, strict=True):
        if isinstance(u, list):
            if not _same(u, v):
                return False
        elif u[0] != v[0] or abs(float(u[1]) - float(v[1])) > 1e-5:
            return False
    return True


def _open(kind: str, path: Path) -> Asif:
    if kind == "edge":
        return Asif.open(path / "store", **small_settings())
    from qdrant_client import QdrantClient

    return Asif.open(client=QdrantClient(path=str(path / "local")), **small_settings())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["edge", "local"])
def test_readers_and_a_writer_see_only_whole_states(kind: str, tmp_path: Path) -> None:
    w = World()
    a = _open(kind, tmp_path)
    w.setup(a)
    steps = w.steps(a)
    states = [w.answers(a)]
    for step in steps:
        step()
        states.append(w.answers(a))
    # the states differ (otherwise the test could not tell a half-applied edit from a whole one)
    assert not (_same(states[0]["classify"], states[1]["classify"])
                and _same(states[0]["search"], states[1]["search"]))
    assert _same(states[0]["classify"], states[3]["classify"])

    errors: list[BaseException] = []
    mismatches: list[tuple[str, Any]] = []
    counts = {"classify": 0, "search": 0, "explain": 0}
    stop = threading.Event()

    def reader(what: str) -> None:
        fn = getattr(w, what)
        try:
            while not stop.is_set():
                got = fn(a)
                counts[what] += 1
                if not any(_same(got, s[what]) for s in states):
                    mismatches.append((what, got))
        except BaseException as e:  # noqa: BLE001 - any error fails the test below
            errors.append(e)

    def writer() -> None:
        try:
            for _ in range(6):
                for step in steps:
                    step()
                    time.sleep(0.005)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            stop.set()

    threads = [threading.Thread(target=reader, args=(n,)) for n in counts] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert mismatches == []
    assert min(counts.values()) >= 3, counts
    # the writer ended in state 0 (it ran whole cycles)
    assert _same(w.answers(a)["classify"], states[0]["classify"])
    a.close()
    b = _open(kind, tmp_path)
    try:
        again = w.answers(b)
        for what in counts:
            assert _same(again[what], states[0][what]), what
        assert b.count(TENANT) == 1
    finally:
        b.close()


def test_a_stale_index_is_repaired_once_under_the_write_lock(tmp_path: Path) -> None:
    """An edit behind the plugin's back: concurrent readers all answer the repaired state; one rebuild."""
    w = World()
    a = _open("edge", tmp_path)
    w.setup(a)
    before = w.classify(a)  # the tenant copy of L exists now
    # remove a base anchor directly in the engine: the revisions do not move, the anchor count does
    a.engine.delete(a.anchors.collection, ids=w.base_ids[:20])
    a.settings.staleness_check_s = 0.0
    fresh_rebuilds: list[str] = []
    ri_cls = type(a.relindexes)
    original = ri_cls.rebuild

    def counting(self: Any, info: Any) -> Any:
        fresh_rebuilds.append(info.key)
        assert a._lock.holds_write  # a rebuild only ever runs under the exclusive lock
        return original(self, info)

    ri_cls.rebuild = counting  # type: ignore[method-assign]
    try:
        results: list[Any] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                results.append(w.classify(a))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        ri_cls.rebuild = original  # type: ignore[method-assign]
    assert errors == []
    assert fresh_rebuilds == [index_key(TENANT, "labels", "L")]
    assert len(results) == 4
    repaired = results[0]
    assert all(_same(r, repaired) for r in results)
    a.refresh("L", tenant=TENANT)  # a rebuild from scratch answers the same
    assert _same(w.classify(a), repaired)
    assert not _same(repaired, before)  # and the edit behind the plugin's back did change the answers
    a.close()


def test_rwlock_reads_share_writes_exclude_and_a_read_that_must_write_retries() -> None:
    lock = RWLock()
    inside = threading.Barrier(2, timeout=5)

    def shared() -> int:
        inside.wait()  # both readers are inside at once, or this times out
        return 1

    out: list[int] = []
    ts = [threading.Thread(target=lambda: out.append(lock.read(shared))) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out == [1, 1]

    runs: list[bool] = []

    def repairing() -> str:
        runs.append(lock.holds_write)
        lock.need_write()
        return "repaired"

    assert lock.read(repairing) == "repaired"
    assert runs == [False, True]  # first under the shared lock, then again under the exclusive one
    with pytest.raises(WriteNeeded):
        lock._acquire_read()
        try:
            lock.write(lambda: None)  # an edit inside a read is never run under the shared lock
        finally:
            lock._release_read()
    # nested: a read inside a write, a write inside a write
    assert lock.write(lambda: lock.read(lambda: lock.write(lambda: 5))) == 5


@pytest.mark.slow  # waits out real lock timeouts (seconds)
def test_rwlock_timeout_refuses_a_waiter_whole_and_lets_the_queue_move() -> None:
    """A waiter past the timeout gets StoreBusyError and nothing of it runs; a writer that gives up lets the
    readers queued behind it in at once (not at their own deadline); the lock stays usable."""
    from asif_qdrant.errors import StoreBusyError

    lock = RWLock(timeout=1.0)
    reading, done = threading.Event(), threading.Event()
    ran: list[str] = []

    def long_read() -> None:
        reading.set()
        done.wait(20)

    holder = threading.Thread(target=lock.read, args=(long_read,))
    holder.start()
    assert reading.wait(5)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            lock.write(lambda: ran.append("write"))
        except StoreBusyError as e:
            errors.append(e)

    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.5)  # the writer waits; a new reader queues behind it (writers are preferred)
    t0 = time.monotonic()
    assert lock.read(lambda: "late read") == "late read"
    waited = time.monotonic() - t0
    w.join(5)
    assert ran == [] and len(errors) == 1 and "an edit waited more than 1 s" in str(errors[0])
    assert waited < 0.95, waited  # let in when the writer gave up (~0.5 s), before its own 1 s deadline
    done.set()
    holder.join(5)
    assert lock.write(lambda: "write after") == "write after"

    reading.clear()
    done.clear()
    blocker = threading.Thread(target=lock.write, args=(long_read,))  # now an edit holds it
    blocker.start()
    assert reading.wait(5)
    with pytest.raises(StoreBusyError, match="a read waited more than 1 s"):
        lock.read(lambda: ran.append("read"))
    assert ran == []
    threading.Timer(1.5, done.set).start()  # the edit ends after the timeout: an untimed write (close) waits
    assert lock.write_untimed(lambda: "closed") == "closed"
    blocker.join(5)
    assert lock.read(lambda: 7) == 7
