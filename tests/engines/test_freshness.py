"""Instant updates and tenancy: after any edit, the next answer equals a from-scratch dense reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, edit_anchors, small_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asif_qdrant import Asif, ConfigError, InvalidInputError
from asif_qdrant.engines.base import CollectionSpec, PointBatch
from asif_qdrant.relindex import RelIndexes, decode_topk
from asif_qdrant.relrep import dense_reference_scores
from asif_qdrant.tagging import Taggings

TENANTS = ["_shared", "t1", "t2", "t3"]
K, P = 4, 3.0


class Model:
    """The reference: every tenant's anchors, kept in plain dicts."""

    def __init__(self) -> None:
        self.anchors: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}

    def scope(self, tenant: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        ids = sorted(i for i, (t, _, _) in self.anchors.items() if t in ("_shared", tenant))
        img = np.array([self.anchors[i][1] for i in ids]).reshape(-1, IMG_DIM)
        txt = np.array([self.anchors[i][2] for i in ids]).reshape(-1, TXT_DIM)
        return ids, img, txt


def _check(a: Asif, model: Model, tenant: str, queries: np.ndarray, prompts: np.ndarray) -> None:
    preds = a.classify(vectors=queries, labels="L", top=5, tenant=None if tenant == "_shared" else tenant)
    ids, img, txt = model.scope(tenant)
    if ids:
        ref = dense_reference_scores(queries, img, prompts, txt, K, P, anchor_ids=ids)
    else:
        ref = np.zeros((len(queries), len(prompts)))
    # the tenant's tags of the same vectors (a tagging of a user's collection) hold classify's answers
    tagged = a.engine.collection_exists("photos")
    tags = {r.id: r.payload.get(f"tag_{tenant}") for r in a.engine.scroll("photos")} if tagged else {}
    for b, pred in enumerate(preds if tagged else []):
        tag = tags[b]
        assert tag is not None and tag["label"] == pred.label and abs(tag["score"] - pred.score) < 1e-6, (tag, pred)
        assert [t[0] for t in tag["top"]] == [s.label for s in pred.top][:3]
    for b, pred in enumerate(preds):
        got = {s.label: s.score for s in pred.top}
        for i, c in enumerate("abcde"):
            assert abs(got.get(c, 0.0) - ref[b, i]) < 1e-5, (tenant, c, got, ref[b])
        assert (pred.label is None) == (ref[b].max() <= 0)
    # the tenant's index only ever holds anchors of its own scope
    ri = a.relindexes
    info = ri.info("L", tenant) or ri.info("L", "_shared")
    allowed = set(ids)
    for r in ri.items(info):
        assert set(decode_topk(r.payload)[0].tolist()) <= allowed


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "delete", "replace", "classify"]),
        st.sampled_from(TENANTS),
        st.integers(1, 4),
        st.integers(0, 2**31),
    ),
    min_size=3,
    max_size=12,
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["edge", "local"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
def test_random_edits_match_from_scratch_reference(
    kind: str, steps: list, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the incremental path alone must keep every index (and tagging) exact: a rebuild would hide a bug
    monkeypatch.setattr(RelIndexes, "rebuild", lambda self, info: pytest.fail("an index fell behind"))
    monkeypatch.setattr(Taggings, "rerun", lambda self, *a, **k: pytest.fail("a tagging fell behind"))
    rng = np.random.default_rng(7)
    if kind == "edge":
        a = Asif.open(tmp_path_factory.mktemp("s") / "store", **small_settings(k=K, p=P))
    else:
        a = Asif.open(url=":memory:", **small_settings(k=K, p=P))
    model = Model()
    prompts = rng.standard_normal((5, TXT_DIM))
    queries = rng.standard_normal((3, IMG_DIM))
    try:
        img, txt = rng.standard_normal((6, IMG_DIM)), rng.standard_normal((6, TXT_DIM))
        for i, pid in enumerate(a.add_vectors(img, txt).ids):
            model.anchors[pid] = ("_shared", img[i] / np.linalg.norm(img[i]), txt[i] / np.linalg.norm(txt[i]))
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts)
        a.engine.create_collection("photos", CollectionSpec(dense={"img": IMG_DIM}))
        a.engine.upsert("photos", PointBatch(list(range(len(queries))), {"img": queries.astype(np.float32)}))
        for t in TENANTS:
            a.tag("photos", vector="img", labels="L", field=f"tag_{t}", tenant=None if t == "_shared" else t)
        for step, (op, tenant, n, seed) in enumerate(steps):
            # distinct vectors per step: exact duplicates across tenants tie to the last bit, and local mode's
            # float64 matmul can order such ties differently by query shape (Edge scores each pair the same way)
            edit_anchors(a, model.anchors, op, tenant, n, np.random.default_rng([seed, step]))
            _check(a, model, tenant, queries, prompts)
        for t in TENANTS:
            _check(a, model, t, queries, prompts)
    finally:
        a.close()


def test_edit_reports_items_touched(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with Asif.open(tmp_path / "s", **small_settings(k=2, p=2)) as a:
        a.add_vectors(rng.standard_normal((10, IMG_DIM)), rng.standard_normal((10, TXT_DIM)))
        prompts = np.eye(TXT_DIM)[:3]
        a.define_labels("L", list("abc"), templates="plain", prompt_vectors=prompts)
        # a new anchor identical to prompt 'a' beats its threshold (sim 1.0) and nobody else's necessarily;
        # the in-process threshold cache is dropped first, so the thresholds are read back from the items
        a.relindexes.drop_caches()
        res = a.add_vectors(rng.standard_normal((1, IMG_DIM)), prompts[:1])
        assert res.items_touched["_shared/L"] >= 1
        item0 = a.relindexes.items(a.relindexes.info("L", "_shared"))[0]
        assert decode_topk(item0.payload)[0][0] == res.ids[0]
        d = a.delete(res.ids)
        assert d.deleted == res.ids and d.items_touched["_shared/L"] >= 1
        item0 = a.relindexes.items(a.relindexes.info("L", "_shared"))[0]
        assert res.ids[0] not in decode_topk(item0.payload)[0]


def test_behind_the_back_edit_is_detected_and_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    with Asif.open(tmp_path / "s", **small_settings(k=3, p=2)) as a:
        img, txt = rng.standard_normal((8, IMG_DIM)), rng.standard_normal((8, TXT_DIM))
        ids = a.add_vectors(img, txt).ids
        prompts = rng.standard_normal((3, TXT_DIM))
        a.define_labels("L", list("abc"), templates="plain", prompt_vectors=prompts)
        # delete anchors directly in Qdrant, not through the plugin
        a.engine.delete(a.anchors.collection, ids=ids[:4])
        q = rng.standard_normal((2, IMG_DIM))
        preds = a.classify(vectors=q, labels="L", top=3)
        ref = dense_reference_scores(q, img[4:], prompts, txt[4:], 3, 2, anchor_ids=ids[4:])
        for b in range(2):
            np.testing.assert_allclose(sorted((s.score for s in preds[b].top), reverse=True),
                                       sorted(ref[b][ref[b] > 1e-9], reverse=True), atol=1e-5)


def test_replace_and_tenant_validation(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    with Asif.open(tmp_path / "s", **small_settings()) as a:
        ids = a.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM)), tenant="t1").ids
        with pytest.raises(InvalidInputError, match="does not exist for tenant 't2'"):
            a.replace(ids[:1], rng.standard_normal((1, IMG_DIM)), rng.standard_normal((1, TXT_DIM)), tenant="t2")
        with pytest.raises(ConfigError, match="tenant name"):
            a.count("../etc")
        assert a.count("t1") == 3


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_buffer_and_requery_paths_stay_exact(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Items keep k + buffer neighbours: small deletes use the buffer, a big one exhausts it and re-queries."""
    monkeypatch.setattr(RelIndexes, "rebuild", lambda self, info: pytest.fail("an index fell behind"))
    rng = np.random.default_rng(11)
    opts = small_settings(k=K, p=P)
    a = Asif.open(tmp_path / "s", **opts) if kind == "edge" else Asif.open(url=":memory:", **opts)
    model = Model()
    try:
        img, txt = rng.standard_normal((60, IMG_DIM)), rng.standard_normal((60, TXT_DIM))
        for i, pid in enumerate(a.add_vectors(img, txt).ids):
            model.anchors[pid] = ("_shared", img[i] / np.linalg.norm(img[i]), txt[i] / np.linalg.norm(txt[i]))
        prompts, queries = rng.standard_normal((5, TXT_DIM)), rng.standard_normal((4, IMG_DIM))
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts)
        ids = sorted(model.anchors)
        for batch in ([ids[0]], ids[1:3], ids[3:40]):  # the last one exhausts every buffer
            assert a.delete(batch).count == len(batch)
            for g in batch:
                del model.anchors[g]
            _check(a, model, "_shared", queries, prompts)
        img, txt = rng.standard_normal((30, IMG_DIM)), rng.standard_normal((30, TXT_DIM))
        for i, pid in enumerate(a.add_vectors(img, txt).ids):
            model.anchors[pid] = ("_shared", img[i] / np.linalg.norm(img[i]), txt[i] / np.linalg.norm(txt[i]))
        _check(a, model, "_shared", queries, prompts)
    finally:
        a.close()


@pytest.mark.slow
def test_add_with_existing_ids_is_a_replacement_kept_incrementally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RelIndexes, "rebuild", lambda self, info: pytest.fail("an index fell behind"))
    rng = np.random.default_rng(21)
    with Asif.open(tmp_path / "s", **small_settings(k=K, p=P)) as a:
        img, txt = rng.standard_normal((20, IMG_DIM)), rng.standard_normal((20, TXT_DIM))
        ids = a.add_vectors(img, txt, ids=list(range(20))).ids
        prompts, queries = rng.standard_normal((5, TXT_DIM)), rng.standard_normal((3, IMG_DIM))
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts)
        img[:5], txt[:5] = rng.standard_normal((5, IMG_DIM)), rng.standard_normal((5, TXT_DIM))
        a.add_vectors(img[:5], txt[:5], ids=ids[:5])  # overwrite five anchors in place
        model = Model()
        for i, pid in enumerate(ids):
            model.anchors[pid] = ("_shared", img[i] / np.linalg.norm(img[i]), txt[i] / np.linalg.norm(txt[i]))
        assert a.count() == 20
        _check(a, model, "_shared", queries, prompts)
        with pytest.raises(InvalidInputError, match="already used by another anchor set"):
            a.add_vectors(img[:2], txt[:2], ids=ids[:2], tenant="t1")
        assert a.count() == 20 and a.count("t1") == 0
