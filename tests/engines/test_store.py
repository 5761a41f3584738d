"""Engine layer and anchor store: the same behaviour on Edge, local mode and a server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, random_pairs, small_settings

from asif_qdrant import (
    Asif,
    ConfigError,
    FingerprintMismatchError,
    InvalidInputError,
    SchemaError,
    StoreLockedError,
)
from asif_qdrant.engines import DenseQuery, Filter, Match


def test_add_count_and_topk(store: Asif, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 50)
    ids = store.add_vectors(img, txt, captions=[f"c{i}" for i in range(50)], payloads=[{"n": i} for i in range(50)]).ids
    assert len(ids) == 50 and len(set(ids)) == 50
    assert all(0 <= i < 2**32 for i in ids)
    assert store.count() == 50
    # exact top-5 equals numpy cosine top-5
    q = rng.standard_normal(IMG_DIM).astype(np.float32)
    hits = store.engine.query_batch(store.anchors.collection, [DenseQuery("image", q, 5)])[0]
    unit = img / np.linalg.norm(img, axis=1, keepdims=True)
    sims = unit @ (q / np.linalg.norm(q))
    want = np.argsort(-sims)[:5]
    assert [h.id for h in hits] == [ids[i] for i in want]
    np.testing.assert_allclose([h.score for h in hits], sims[want], atol=1e-5)
    rec = store.engine.retrieve(store.anchors.collection, [ids[3]], with_vectors=["image", "text"])[0]
    assert rec.payload["caption"] == "c3" and rec.payload["n"] == 3 and rec.payload["tenant"] == "_shared"
    np.testing.assert_allclose(np.linalg.norm(rec.vectors["image"]), 1.0, atol=1e-5)


def test_the_stores_are_long_lived_and_keep_their_caches(store: Asif, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 12)
    store.add_vectors(img, txt)
    anchors, ri = store.anchors, store.relindexes
    store.define_labels("L", list("abc"), templates="plain", prompt_vectors=rng.standard_normal((3, TXT_DIM)))
    assert store.anchors is anchors and store.relindexes is ri  # one object each, not one per access
    info = store.index_info("L", None, "labels")
    ri.drop_caches()
    assert ri.count_check_due(info, 3600.0)
    store.classify(vectors=img[:2], labels="L")  # the read compares the stored count once ...
    assert not ri.count_check_due(info, 3600.0)  # ... and the store remembers it for the next hour


def test_same_pairs_again_write_nothing(store: Asif, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 10)
    first = store.add_vectors(img, txt, captions=["a"] * 10)
    again = store.add_vectors(img, txt, captions=["a"] * 10)
    assert first.added == 10 and again.added == 0 and again.duplicates == 10
    assert again.ids == first.ids
    assert store.count() == 10


def test_tenants_and_deletes(store: Asif, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 30)
    shared = store.add_vectors(img[:10], txt[:10]).ids
    a = store.add_vectors(img[10:20], txt[10:20], tenant="acme").ids
    store.add_vectors(img[20:], txt[20:], tenant="globex")
    assert (store.count(), store.count("acme"), store.count("globex")) == (10, 10, 10)
    assert store.stats() == {
        "_shared": {"anchors": 10, "revision": 1},
        "acme": {"anchors": 10, "revision": 1},
        "globex": {"anchors": 10, "revision": 1},
    }
    # a tenant cannot delete another tenant's anchors by id
    assert store.delete(ids=shared[:3], tenant="acme").count == 0
    assert store.count() == 10
    assert store.delete(ids=a[:4], tenant="acme").count == 4
    assert store.count("acme") == 6
    assert store.delete(tenant="globex", all=True).count == 10
    assert store.count("globex") == 0 and store.count(all_tenants=True) == 16
    store.add_vectors(img[:2], txt[:2], payloads=[{"src": "x"}, {"src": "y"}], tenant="acme")
    assert store.delete(tenant="acme", filter=Filter(must=(Match("src", "x"),))).count == 1
    assert store.count("acme") == 7


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("wrong_dim", FingerprintMismatchError, "dimension 5"),
        ("nan", InvalidInputError, "must be finite"),
        ("inf", InvalidInputError, "must be finite"),
        ("lengths", InvalidInputError, "10 image vectors but 9 text vectors"),
        ("big_id", InvalidInputError, "outside [0, 2**32)"),
        ("empty", InvalidInputError, "batch is empty"),
        ("encoder", FingerprintMismatchError, "does not match this store's"),
        ("dup_id", InvalidInputError, "appears twice"),
        ("reserved", InvalidInputError, "reserved field"),
        ("zero", InvalidInputError, "all zeros"),
        ("tenant", ConfigError, "tenant name"),
    ],
)
def test_bad_input_is_refused_and_store_unchanged(
    store: Asif, rng: np.random.Generator, case: str, error: type[Exception], message: str
) -> None:
    img, txt = random_pairs(rng, 10)
    store.add_vectors(img, txt)
    before = store.count(all_tenants=True)
    img2, txt2 = random_pairs(rng, 10)
    kw: dict = {}
    if case == "wrong_dim":
        img2 = rng.standard_normal((10, 5))
    elif case == "nan":
        img2[7, 2] = np.nan
    elif case == "inf":
        txt2[9, 0] = np.inf
    elif case == "lengths":
        txt2 = txt2[:9]
    elif case == "big_id":
        kw["ids"] = list(range(9)) + [2**32]
    elif case == "empty":
        img2, txt2 = img2[:0], txt2[:0]
    elif case == "encoder":
        kw["image_encoder"] = "timm:resnet50"
    elif case == "dup_id":
        kw["ids"] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1]
    elif case == "reserved":
        kw["payloads"] = [{}] * 9 + [{"tenant": "evil"}]
    elif case == "zero":
        img2[4] = 0
    elif case == "tenant":
        kw["tenant"] = "bad tenant!"
    with pytest.raises(error) as ei:
        store.add_vectors(img2, txt2, **kw)
    assert message in str(ei.value)
    assert store.count(all_tenants=True) == before


def test_reopen_edge_same_count_and_topk(tmp_path: Path, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 40)
    q = rng.standard_normal(IMG_DIM)
    with Asif.open(tmp_path / "s", **small_settings()) as a:
        a.add_vectors(img, txt)
        before = a.engine.query_batch(a.anchors.collection, [DenseQuery("image", q, 10)])[0]
    with Asif.open(tmp_path / "s") as b:  # fingerprint comes from the store, not the settings
        assert b.count() == 40
        assert b.fingerprint.image_dim == IMG_DIM and b.fingerprint.text_dim == TXT_DIM
        after = b.engine.query_batch(b.anchors.collection, [DenseQuery("image", q, 10)])[0]
    assert [h.id for h in after] == [h.id for h in before]
    np.testing.assert_allclose([h.score for h in after], [h.score for h in before], atol=1e-6)


@pytest.mark.slow
def test_locked_path_in_second_process(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "s"
    with Asif.open(path, **small_settings()) as a:
        a.add_vectors(*random_pairs(rng, 3))
        code = (
            "import sys\nfrom asif_qdrant import Asif, StoreLockedError\n"
            f"try:\n    Asif.open({str(path)!r})\nexcept StoreLockedError as e:\n    print('LOCKED', e); sys.exit(3)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3, proc.stderr
        assert str(path.resolve()) in proc.stdout and "another process" in proc.stdout
        assert a.count() == 3
    with pytest.raises(StoreLockedError):
        with Asif.open(path):
            Asif.open(path)


def test_other_encoder_setting_is_refused_on_existing_store(tmp_path: Path) -> None:
    Asif.open(tmp_path / "s", **small_settings()).close()
    with pytest.raises(FingerprintMismatchError, match="does not match this store's 'precomputed:img:8'"):
        Asif.open(tmp_path / "s", image_encoder="precomputed:other:8")


def test_schema_newer_than_code_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    with Asif.open(tmp_path / "s", **small_settings()) as a:
        a.add_vectors(*random_pairs(rng, 5))
        a.meta.put("migration:9999", {"version": 9999, "name": "future", "applied_at": 0.0})
    with pytest.raises(SchemaError, match="newer than this code"):
        Asif.open(tmp_path / "s")
    with pytest.raises(SchemaError):
        Asif.open(tmp_path / "s", migrate=False)


def test_migrations_status_and_rerun(engine_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from conftest import open_store

    a = open_store(engine_kind, tmp_path, request, migrate=False)
    try:
        states = a.migration_status()
        assert states and all(s.applied_at is None for s in states)
        assert not a.engine.collection_exists(a.anchors.collection)  # --list changes nothing
        applied = a.migrate()
        assert applied[0] == "0001_anchor_collection"
        assert all(s.applied_at is not None for s in a.migration_status())
        assert a.migrate() == []
        # every step is safe to run twice
        from asif_qdrant import migrate as m

        for step in m.discover_steps():
            step.apply(a._context())
        assert a.engine.collection_spec(a.anchors.collection).dense == {"image": IMG_DIM, "text": TXT_DIM}
    finally:
        a.close()


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="k=0"):
        Asif.open(tmp_path / "s", k=0)
    with pytest.raises(ConfigError, match="prefix"):
        Asif.open(tmp_path / "s", prefix="Bad Prefix")


def test_edge_counts_of_tenant_values_equal_a_scan(tmp_path: Path, rng: np.random.Generator) -> None:
    """EdgeEngine.count reads unfiltered and tenant-field counts from the id tracker and the payload index instead
    of scanning: after every kind of edit, on several segments and after a reopen, they equal a count by scroll."""
    from asif_qdrant.engines import MatchAny
    from asif_qdrant.engines.base import CollectionSpec, HnswSpec, PointBatch
    from asif_qdrant.engines.edge import EdgeEngine

    path = tmp_path / "s"
    eng = EdgeEngine(path)
    # a segment sealed every 64 KB of vectors (1,000 points of 16-d): several segments, as a large store has
    eng.create_collection("c", CollectionSpec(dense={"v": 16}, keyword_indexes={"tenant": True},
                                              hnsw=HnswSpec(m=0, indexing_threshold_kb=64)))
    tenants = ["a", "b", "c"]

    def upsert(ids: list[int], tenant: str | None = None) -> None:
        eng.upsert("c", PointBatch(ids, {"v": rng.standard_normal((len(ids), 16)).astype(np.float32)},
                                   payloads=[{"tenant": tenant or tenants[int(rng.integers(3))]} for _ in ids]))

    filters = [None, Filter(must=(Match("tenant", "a"),)), Filter(must=(MatchAny("tenant", ("a", "b")),)),
               Filter(must=(MatchAny("tenant", ("a", "a", "zz")),)), Filter(must=(MatchAny("tenant", ("b", "c")),))]

    def check(engine: EdgeEngine, step: str) -> None:
        held = [r.payload["tenant"] for r in engine.scroll("c", with_payload=True)]
        for f in filters:
            want = len(held) if f is None else sum(
                t in (f.must[0].values if isinstance(f.must[0], MatchAny) else (f.must[0].value,)) for t in held)
            assert engine.count("c", f) == want, (step, f)

    for s in range(0, 6000, 500):
        upsert(list(range(s, s + 500)))
    assert len(list((path / "collections" / "c" / "shard" / "segments").iterdir())) > 1
    check(eng, "insert")
    eng.delete("c", ids=list(range(0, 900)))
    check(eng, "delete by id")
    upsert(list(range(2000, 2600)), "c")  # points move to the appendable segment with another tenant
    check(eng, "re-upsert")
    eng.set_payload("c", list(range(3000, 3400)), {"tenant": "a"})
    check(eng, "set payload")
    eng.delete("c", filter=Filter(must=(Match("tenant", "b"),)))
    check(eng, "delete by filter")
    eng.optimize("c")
    check(eng, "optimize")
    eng.close()
    again = EdgeEngine(path)
    try:
        check(again, "reopen")
        assert again.count("c", Filter(must=(Match("tenant", "b"),))) == 0
    finally:
        again.close()
