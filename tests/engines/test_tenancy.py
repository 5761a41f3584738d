"""Tenancy: relative indexes of every tenant in a fixed set of collections, partitioned by payload, isolated.

The property test draws tenant and index names from everything the validators accept (including '_', '__', '-',
'.', digits and names that are prefixes of others) and random edit sequences; after every step each tenant's answers
equal a from-scratch dense reference of its surviving anchors and definitions, and no answer of one tenant changes
(by even one bit) or names anything when another tenant edits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, edit_anchors, small_settings, unit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asif_qdrant import Asif, NotFoundError
from asif_qdrant.explain import explain
from asif_qdrant.names import relindex_collection
from asif_qdrant.relindex import RelIndexes, decode_topk
from asif_qdrant.relrep import dense_reference_scores

SHARED = "_shared"
K, P = 4, 3.0
CLASSES = list("abc")


def _open(kind: str, path: Path, **kw: Any) -> Asif:
    if kind == "edge":
        return Asif.open(path / "store", **small_settings(k=K, p=P, **kw))
    return Asif.open(url=":memory:", **small_settings(k=K, p=P, **kw))


class Model:
    """The reference: anchors and definitions in plain dicts."""

    def __init__(self) -> None:
        self.anchors: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}
        self.labels: dict[tuple[str, str], np.ndarray] = {}  # (tenant, name) -> prompt vectors
        self.galleries: dict[tuple[str, str], np.ndarray] = {}  # (tenant, name) -> image vectors

    def scope(self, tenant: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        ids = sorted(i for i, (t, _, _) in self.anchors.items() if t in (SHARED, tenant))
        img = np.array([self.anchors[i][1] for i in ids]).reshape(-1, IMG_DIM)
        txt = np.array([self.anchors[i][2] for i in ids]).reshape(-1, TXT_DIM)
        return ids, img, txt

    def visible(self, defs: dict[tuple[str, str], np.ndarray], tenant: str, name: str) -> np.ndarray | None:
        own = defs.get((tenant, name))
        return own if own is not None else defs.get((SHARED, name))

    def delete_tenant(self, tenant: str) -> None:
        self.anchors = {i: v for i, v in self.anchors.items() if v[0] != tenant}
        for defs in (self.labels, self.galleries):
            for key in [k for k in defs if k[0] == tenant]:
                del defs[key]


def _answers(a: Asif, model: Model, tenant: str, names: list[str], queries: np.ndarray,
             texts: np.ndarray) -> dict[str, Any]:
    """Everything ``tenant`` can see, checked against the reference; returned to compare across steps."""
    t_arg = None if tenant == SHARED else tenant
    ids, img, txt = model.scope(tenant)
    allowed = set(ids)
    out: dict[str, Any] = {"count": a.count(t_arg)}
    assert out["count"] == sum(1 for v in model.anchors.values() if v[0] == tenant)
    for name in names:
        prompts = model.visible(model.labels, tenant, name)
        if prompts is None:
            with pytest.raises(NotFoundError):
                a.classify(vectors=queries, labels=name, tenant=t_arg)
        else:
            preds = a.classify(vectors=queries, labels=name, top=len(CLASSES), tenant=t_arg)
            ref = (dense_reference_scores(queries, img, prompts, txt, K, P, anchor_ids=ids) if ids
                   else np.zeros((len(queries), len(prompts))))
            for b, pred in enumerate(preds):
                got = {s.label: s.score for s in pred.top}
                for c_i, c in enumerate(CLASSES):
                    assert abs(got.get(c, 0.0) - ref[b, c_i]) < 1e-5, (tenant, name, c, got, ref[b])
            out[f"labels:{name}"] = [[(s.label, s.score) for s in p.top] for p in preds]
            ex = explain(a, vector=queries[0], labels=name, tenant=t_arg, top=50)
            named = {c.id for e in ex.explained for c in e.contributions}
            assert named <= allowed and all(c.tenant in (tenant, SHARED) for e in ex.explained
                                            for c in e.contributions)
            out[f"explain:{name}"] = [(e.label, e.score, [(c.id, c.contribution) for c in e.contributions])
                                      for e in ex.explained]
            info = a.index_info(name, tenant, "labels")
            for r in a.relindexes.items(info):  # the tenant's index only ever holds anchors of its own scope
                assert set(decode_topk(r.payload)[0].tolist()) <= allowed
        gal = model.visible(model.galleries, tenant, name)
        if gal is None:
            with pytest.raises(NotFoundError):
                a.search(vector=texts, gallery=name, tenant=t_arg)
        else:
            owner = tenant if (tenant, name) in model.galleries else SHARED
            res = a.search(vector=texts, gallery=name, top=len(gal), tenant=t_arg)
            ref = (dense_reference_scores(texts, txt, gal, img, K, P, anchor_ids=ids) if ids
                   else np.zeros((len(texts), len(gal))))
            for b, hits in enumerate(res):
                got = {h.id: h.score for h in hits}
                for item in range(len(gal)):
                    assert abs(got.get(item, 0.0) - ref[b, item]) < 1e-5, (tenant, name, item, got, ref[b])
                assert all(h.payload["image_ref"] == f"{owner}/{name}/{h.id}" for h in hits)
            out[f"gallery:{name}"] = [[(h.id, h.score) for h in hs] for hs in res]
    listed = a.list_indexes(t_arg)  # after the queries, which make the tenant's copies of shared indexes
    assert all(i.tenant in (tenant, SHARED) for i in listed), (tenant, [(i.tenant, i.name) for i in listed])
    out["list"] = sorted((i.tenant, i.kind, i.name) for i in listed)
    return out


def _same(x: Any, y: Any, tol: float) -> bool:
    """Equal structure and labels; floats equal within ``tol`` (0 on Edge: bit for bit)."""
    if isinstance(x, float) and isinstance(y, float):
        return x == y if tol == 0 else abs(x - y) <= tol
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k], tol) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v, tol) for u, v in zip(x, y, strict=True))
    return bool(x == y)


# qdrant-client local mode scores with numpy, whose float32 sums are not bit-reproducible from one call to the next
# (the same query of one tenant, repeated between unrelated queries of that same tenant, moves by ~3e-8): there, an
# answer that does not depend on another tenant is checked to float32 rounding; Edge is checked bit for bit
NOISE = {"edge": 0.0, "local": 1e-6}

TRICKY = ["a", "a_b", "a__b", "b__c", "c", "a-b", "a.b", "ab", "a_", "0", "a0", "b", "a__b__c"]
name_st = st.one_of(st.sampled_from(TRICKY), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,5}", fullmatch=True))
op_st = st.tuples(
    st.sampled_from(["add", "add", "delete", "replace", "define", "define", "gallery", "delete_tenant",
                     "delete_index"]),
    st.integers(0, 3),  # tenant slot (0 = shared)
    st.integers(0, 1),  # name slot
    st.integers(1, 3),
    st.integers(0, 2**31),
)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 8 random edit sequences x every check: minutes on 2 loaded cores
@pytest.mark.parametrize("kind", ["edge", "local"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(
    tenants=st.lists(name_st, min_size=3, max_size=3, unique=True),
    names=st.lists(name_st, min_size=2, max_size=2, unique=True),
    steps=st.lists(op_st, min_size=3, max_size=8),
)
def test_isolation_and_exactness_under_random_edits(
    kind: str, tenants: list[str], names: list[str], steps: list, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RelIndexes, "rebuild", lambda self, info: pytest.fail("an index fell behind"))
    rng = np.random.default_rng(11)
    a = _open(kind, tmp_path_factory.mktemp("s"))
    everyone = [SHARED, *tenants]
    model = Model()
    queries, texts = rng.standard_normal((2, IMG_DIM)), rng.standard_normal((2, TXT_DIM))
    try:
        img, txt = rng.standard_normal((6, IMG_DIM)), rng.standard_normal((6, TXT_DIM))
        for i, pid in enumerate(a.add_vectors(img, txt).ids):
            model.anchors[pid] = (SHARED, unit(img[i]), unit(txt[i]))
        # a start where names are shared across tenants and kinds, so that every step has something to leak
        for t in tenants:
            img, txt = rng.standard_normal((2, IMG_DIM)), rng.standard_normal((2, TXT_DIM))
            for i, pid in enumerate(a.add_vectors(img, txt, tenant=t).ids):
                model.anchors[pid] = (t, unit(img[i]), unit(txt[i]))
        for t, name in ((SHARED, names[0]), (tenants[0], names[0]), (tenants[1], names[1])):
            prompts = unit(rng.standard_normal((len(CLASSES), TXT_DIM)))
            _define(a, name, CLASSES, templates="plain", prompt_vectors=prompts,
                            tenant=None if t == SHARED else t)
            model.labels[(t, name)] = prompts
        for t, name in ((tenants[1], names[0]), (tenants[2], names[0]), (SHARED, names[1])):
            gal = unit(rng.standard_normal((3, IMG_DIM)))
            _gallery(a, name, vectors=gal, tenant=None if t == SHARED else t,
                          payloads=[{"image_ref": f"{t}/{name}/{i}"} for i in range(3)])
            model.galleries[(t, name)] = gal
        n_collections = None
        before = {t: _answers(a, model, t, names, queries, texts) for t in everyone}
        for step, (op, t_i, n_i, n, seed) in enumerate(steps):
            r = np.random.default_rng([seed, step])
            tenant, name = everyone[t_i], names[n_i]
            t_arg = None if tenant == SHARED else tenant
            if op in ("add", "delete", "replace"):
                edit_anchors(a, model.anchors, op, tenant, n, r)
            elif op == "define":
                prompts = unit(r.standard_normal((len(CLASSES), TXT_DIM)))
                _define(a, name, CLASSES, templates="plain", prompt_vectors=prompts, tenant=t_arg)
                model.labels[(tenant, name)] = prompts
            elif op == "gallery":
                gal = unit(r.standard_normal((n + 1, IMG_DIM)))
                _gallery(a, name, vectors=gal, tenant=t_arg,
                              payloads=[{"image_ref": f"{tenant}/{name}/{i}"} for i in range(n + 1)])
                model.galleries[(tenant, name)] = gal
            elif op == "delete_tenant" and tenant != SHARED and tenant in a.tenants():
                a.delete_tenant(tenant)
                model.delete_tenant(tenant)
            elif op == "delete_index" and (tenant, name) in model.labels:
                a.delete_index(name, tenant=t_arg, kind="labels")
                del model.labels[(tenant, name)]
            after = {t: _answers(a, model, t, names, queries, texts) for t in everyone}
            if tenant != SHARED:  # an edit of one tenant changes no other tenant's answers, by exactly 0
                for t in everyone:
                    if t != tenant:
                        assert _same(after[t], before[t], NOISE[kind]), (op, tenant, t, after[t], before[t])
            before = after
            colls = sorted(a.engine.list_collections())
            n_collections = n_collections or colls
            assert colls == n_collections  # the set of collections never grows with tenants or indexes
    finally:
        a.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_joined_name_collisions_are_distinct_indexes(kind: str, tmp_path: Path, rng: np.random.Generator) -> None:
    """The issue's example: tenant 'a' with label set 'b__c' and tenant 'a__b' with label set 'c'."""
    a = _open(kind, tmp_path)
    try:
        a.add_vectors(rng.standard_normal((20, IMG_DIM)), rng.standard_normal((20, TXT_DIM)))
        a.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM)), tenant="a")
        a.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM)), tenant="a__b")
        _define(a, "b__c", ["x", "y"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)),
                        tenant="a")
        q = rng.standard_normal((3, IMG_DIM))
        def mine_now() -> list:
            return [[(s.label, s.score) for s in p.top] for p in a.classify(vectors=q, labels="b__c", tenant="a")]

        mine = mine_now()
        _define(a, "c", ["u", "v", "w"], templates="plain", prompt_vectors=rng.standard_normal((3, TXT_DIM)),
                        tenant="a__b")
        _gallery(a, "b__c", vectors=rng.standard_normal((4, IMG_DIM)), tenant="a",
                      payloads=[{"image_ref": f"a-private-{i}"} for i in range(4)])
        _gallery(a, "c", vectors=rng.standard_normal((4, IMG_DIM)), tenant="a__b",
                      payloads=[{"image_ref": f"ab-private-{i}"} for i in range(4)])
        assert _same(mine_now(), mine, NOISE[kind])
        found = a.search(vector=rng.standard_normal((2, TXT_DIM)), gallery="b__c", tenant="a")
        assert {h.payload["image_ref"] for hs in found for h in hs} <= {f"a-private-{i}" for i in range(4)}
        with pytest.raises(NotFoundError):
            a.classify(vectors=q, labels="c", tenant="a")
        assert a.delete_tenant("a__b") == {"anchors": 3, "indexes": 2}
        assert _same(mine_now(), mine, NOISE[kind])
        assert len(a.search(vector=rng.standard_normal((1, TXT_DIM)), gallery="b__c", tenant="a")[0]) > 0
        # exactly a__b's items are gone
        for modality in ("text", "image"):
            coll = relindex_collection(a.settings.prefix, modality)
            tenants = {r.payload["tenant"] for r in a.engine.scroll(coll, with_payload=["tenant"])}
            assert tenants == {"a"}
    finally:
        a.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_label_set_and_gallery_of_one_name_coexist(kind: str, tmp_path: Path, rng: np.random.Generator) -> None:
    a = _open(kind, tmp_path)
    try:
        a.add_vectors(rng.standard_normal((20, IMG_DIM)), rng.standard_normal((20, TXT_DIM)))
        _define(a, "L", ["x", "y"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)))
        q = rng.standard_normal((2, IMG_DIM))
        labels = [[(s.label, s.score) for s in p.top] for p in a.classify(vectors=q, labels="L")]
        _gallery(a, "L", vectors=rng.standard_normal((5, IMG_DIM)))
        assert _same([[(s.label, s.score) for s in p.top] for p in a.classify(vectors=q, labels="L")], labels,
                     NOISE[kind])
        assert len(a.search(vector=rng.standard_normal((1, TXT_DIM)), gallery="L", top=5)[0]) > 0
        assert sorted(i.kind for i in a.list_indexes()) == ["gallery", "labels"]
        with pytest.raises(Exception, match="both a label set and a gallery"):
            a.refresh("L")
        assert [i.kind for i in a.refresh("L", kind="gallery")] == ["gallery"]
        with pytest.raises(Exception, match="rename it"):
            _gallery(a, "G", vectors=rng.standard_normal((1, IMG_DIM)), payloads=[{"tenant": "other"}])
    finally:
        a.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_shared_redefinition_reaches_every_tenant_copy(kind: str, tmp_path: Path, rng: np.random.Generator) -> None:
    a = _open(kind, tmp_path)
    try:
        a.add_vectors(rng.standard_normal((20, IMG_DIM)), rng.standard_normal((20, TXT_DIM)))
        for t in ("t1", "t2"):
            a.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM)), tenant=t)
        _define(a, "L", ["x", "y"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)))
        q = rng.standard_normal((1, IMG_DIM))
        for t in ("t1", "t2"):
            assert {s.label for s in a.classify(vectors=q, labels="L", tenant=t, top=5)[0].top} <= {"x", "y"}
        assert {i.tenant for i in a.relindexes.infos() if i.name == "L"} == {SHARED, "t1", "t2"}  # copies made
        _define(a, "L", ["p", "q", "r"], templates="plain", prompt_vectors=rng.standard_normal((3, TXT_DIM)))
        for t in ("t1", "t2"):
            top = a.classify(vectors=q, labels="L", tenant=t, top=5)[0].top
            assert {s.label for s in top} <= {"p", "q", "r"} and top
        # a tenant's own definition of the same name is not a copy: a shared redefinition leaves it alone
        _define(a, "L", ["own"], templates="plain", prompt_vectors=rng.standard_normal((1, TXT_DIM)), tenant="t1")
        _define(a, "L", ["z"], templates="plain", prompt_vectors=rng.standard_normal((1, TXT_DIM)))
        assert {s.label for s in a.classify(vectors=q, labels="L", tenant="t1")[0].top} <= {"own"}
        assert {s.label for s in a.classify(vectors=q, labels="L", tenant="t2")[0].top} <= {"z"}
        assert a.index_info("L", "t1", "labels").classes == ["own"]
        assert a.index_info("L", "t2", "labels").classes == ["z"]
        assert a.delete_index("L", kind="labels").tenant == SHARED  # with t2's copy; t1's own definition stays
        with pytest.raises(NotFoundError):
            a.classify(vectors=q, labels="L", tenant="t2")
        assert a.index_info("L", "t1", "labels").classes == ["own"]
        coll = relindex_collection(a.settings.prefix, "text")
        assert {(r.payload["tenant"], r.payload["index"]) for r in a.engine.scroll(coll)} == {("t1", "L")}
    finally:
        a.close()


# -- migration 0003: from one collection per (tenant, index) ------------------------------------------------------
def _downgrade(a: Asif) -> None:
    """Rewrite a store into the layout of the code before migration 0003, as that code wrote it: a collection
    ``{prefix}rel__{tenant}__{name}`` per index (point id = item number, no partition payload), the record under
    ``relindex:{tenant}:{name}`` (tenant copies marked ``extra.from_shared``), and 0003 not applied."""
    from dataclasses import asdict

    from asif_qdrant.engines.base import CollectionSpec, PointBatch
    from asif_qdrant.names import legacy_relindex_collection

    ri = a.relindexes
    for info in ri.infos():
        old = legacy_relindex_collection(a.settings.prefix, info.tenant, info.name)
        dim = a.fingerprint.text_dim if info.kind == "labels" else a.fingerprint.image_dim
        a.engine.create_collection(old, CollectionSpec(dense={"item": dim}, sparse=("rel",)))
        recs = ri.items(info, with_vectors=("item", "rel"))
        drop = {"tenant", "index", "kind"} | ({"item"} if info.kind == "labels" else set())
        a.engine.upsert(old, PointBatch(
            [r.id for r in recs], {"item": np.stack([r.vectors["item"] for r in recs])},
            {"rel": [r.vectors["rel"] for r in recs]},
            [{k: v for k, v in r.payload.items() if k not in drop} for r in recs],
        ))
        v = asdict(info)
        for f in ("slot", "definition", "copied_from"):
            v.pop(f)
        if info.copied_from is not None:
            v["extra"]["from_shared"] = True
        a.meta.put(f"relindex:{info.tenant}:{info.name}", v)
        a.meta.delete(info.key)
    for modality in ("text", "image"):
        a.engine.delete_collection(relindex_collection(a.settings.prefix, modality))
    a.meta.delete("migration:0003")


def _store_answers(a: Asif, q: np.ndarray, t: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tenant, labels in ((None, "L"), ("t1", "L"), ("t2", "L"), ("t2", "M")):
        out[f"{tenant}:{labels}"] = [[(s.label, s.score) for s in p.top]
                                     for p in a.classify(vectors=q, labels=labels, tenant=tenant, top=5)]
    for tenant, gallery in ((None, "S"), ("t1", "S"), ("t1", "G")):
        out[f"{tenant}:{gallery}"] = [[(h.id, h.score, h.payload.get("image_ref")) for h in hs]
                                      for hs in a.search(vector=t, gallery=gallery, tenant=tenant, top=6)]
    return out


def _old_layout_store(kind: str, tmp_path: Path, rng: np.random.Generator) -> tuple[Asif, dict[str, Any], Any]:
    a = _open(kind, tmp_path)
    a.add_vectors(rng.standard_normal((30, IMG_DIM)), rng.standard_normal((30, TXT_DIM)))
    for t in ("t1", "t2"):
        a.add_vectors(rng.standard_normal((4, IMG_DIM)), rng.standard_normal((4, TXT_DIM)), tenant=t)
    _define(a, "L", CLASSES, templates=["a {}", "the {}"], prompt_vectors=rng.standard_normal((6, TXT_DIM)))
    _define(a, "M", ["m", "n"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)), tenant="t2")
    _gallery(a, "S", vectors=rng.standard_normal((5, IMG_DIM)), payloads=[{"image_ref": f"s{i}"} for i in range(5)])
    _gallery(a, "G", vectors=rng.standard_normal((6, IMG_DIM)), tenant="t1",
                  payloads=[{"image_ref": f"g{i}"} for i in range(6)])
    q, t = rng.standard_normal((4, IMG_DIM)), rng.standard_normal((3, TXT_DIM))
    want = _store_answers(a, q, t)  # this also made t1's and t2's copies of L and t1's copy of S
    assert {(i.tenant, i.name) for i in a.relindexes.infos()} >= {("t1", "L"), ("t2", "L"), ("t1", "S")}
    _downgrade(a)
    assert [s.applied_at is None for s in a.migration_status()][-1]
    return a, want, (q, t)


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_migration_0003_moves_collection_per_index_store_and_answers_the_same(
    kind: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    a, want, (q, t) = _old_layout_store(kind, tmp_path, rng)
    try:
        n_old = len([c for c in a.engine.list_collections() if "rel__" in c])
        assert n_old == 7
        b = Asif(a.engine, a.settings)  # opening the store applies the pending step
        assert all(s.applied_at is not None for s in b.migration_status())
        assert sorted(b.engine.list_collections()) == sorted(
            f"{b.settings.prefix}{n}" for n in ("anchors", "meta", "relindex_text", "relindex_image"))
        assert list(b.meta.items("relindex")) == []
        assert _same(_store_answers(b, q, t), want, NOISE[kind])
        for info in b.relindexes.infos():
            assert len(b.relindexes.items(info)) == info.n_items
    finally:
        a.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_migration_0003_interrupted_is_finished_by_running_it_again(
    kind: str, tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asif_qdrant import SchemaError

    a, want, (q, t) = _old_layout_store(kind, tmp_path, rng)
    try:
        b = Asif(a.engine, a.settings, migrate=False)
        real_upsert = b.engine.upsert

        def crash_on_galleries(name: str, batch: Any) -> None:
            if name.endswith("relindex_image"):
                raise OSError("disk full (simulated)")
            real_upsert(name, batch)

        monkeypatch.setattr(b.engine, "upsert", crash_on_galleries)
        with pytest.raises(SchemaError, match="run `asif migrate` again"):
            b.migrate()
        assert len([c for c in b.engine.list_collections() if "rel__" in c]) == 7  # nothing old removed
        monkeypatch.setattr(b.engine, "upsert", real_upsert)
        assert b.migrate() == ["0003_partitioned_relindexes"]
        assert _same(_store_answers(b, q, t), want, NOISE[kind])
        for info in b.relindexes.infos():  # the labels copied by the first run were not copied twice
            assert len(b.relindexes.items(info)) == info.n_items
        assert not [c for c in b.engine.list_collections() if "rel__" in c]
    finally:
        a.close()


def _define(a: Any, *args: Any, **kw: Any) -> Any:
    """Define or redefine a label set: these tests redefine on purpose."""
    return a.define_labels(*args, replace=True, **kw)


def _gallery(a: Any, *args: Any, **kw: Any) -> Any:
    return a.add_gallery(*args, replace=True, **kw)
