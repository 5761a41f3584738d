"""Instant updates and tenancy: after any edit, the next answer equals a from-scratch dense reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, edit_anchors, small_settings, unit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asif_qdrant import Asif, ConfigError, InvalidInputError
from asif_qdrant.anchors import ID_KEY_RECORD
from asif_qdrant.coverage import COVERAGE_FLOOR
from asif_qdrant.engines.base import CollectionSpec, PointBatch
from asif_qdrant.relindex import RelIndexes, decode_topk
from asif_qdrant.relrep import dense_reference_scores
from asif_qdrant.tagging import Taggings
from asif_qdrant.zeroshot import reference_shift_scale

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


def _check(
    a: Asif, model: Model, tenant: str, queries: np.ndarray, prompts: np.ndarray, correction: str = "none",
    reference: np.ndarray | None = None,
) -> None:
    """classify equals the dense reference; with a correction, each prompt's score minus its mean (zscore: over its
    standard deviation) over the label set's reference images, all scored against the tenant's current anchors."""
    preds = a.classify(vectors=queries, labels="L", top=5, tenant=None if tenant == "_shared" else tenant)
    ids, img, txt = model.scope(tenant)
    if ids:
        ref = dense_reference_scores(queries, img, prompts, txt, K, P, anchor_ids=ids)
    else:
        ref = np.zeros((len(queries), len(prompts)))
    want, tol = ref, np.full(len(prompts), 1e-5)
    best_caption = (unit(prompts) @ txt.T).max(axis=1) if ids else np.full(len(prompts), -1.0)
    nil = {c for i, c in enumerate("abcde") if best_caption[i] < COVERAGE_FLOOR}
    if correction != "none":
        assert reference is not None
        ref_scores = (dense_reference_scores(reference, img, prompts, txt, K, P, anchor_ids=ids) if ids
                      else np.zeros((len(reference), len(prompts))))
        shift, scale = reference_shift_scale(ref_scores, correction)
        want, tol = (ref - shift) / scale, 1e-5 / scale  # the raw scores' float32 tolerance, scaled as they are
    # the tenant's tags of the same vectors (a tagging of a user's collection) hold classify's answers
    tagged = a.engine.collection_exists("photos")
    tags = {r.id: r.payload.get(f"tag_{tenant}") for r in a.engine.scroll("photos")} if tagged else {}
    for b, pred in enumerate(preds if tagged else []):
        tag = tags[b]
        # float32 noise of the stored reps, divided by a zscore's scale as the scores are
        assert tag is not None and tag["label"] == pred.label and abs(tag["score"] - pred.score) < tol.max() / 10, (
            tag, pred)
        assert [t[0] for t in tag["top"]] == [s.label for s in pred.top][:3]
    for b, pred in enumerate(preds):
        got = {s.label: s.score for s in pred.top}
        for i, c in enumerate("abcde"):
            if correction != "none" and ref[b].max() <= 0:
                assert not got  # nothing shared: unknown, no label scored
            else:
                assert abs(got.get(c, 0.0) - want[b, i]) < tol[i], (tenant, c, got, want[b])
        # with a correction, a first-ranked class the anchors do not support at all (no caption within the coverage
        # floor of its prompt) abstains
        nil_first = correction != "none" and bool(pred.top) and pred.top[0].label in nil
        assert (pred.label is None) == (ref[b].max() <= 0 or nil_first), (pred, nil)
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
@pytest.mark.parametrize("correction", ["none", "mean", "zscore"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
def test_random_edits_match_from_scratch_reference(
    kind: str, correction: str, steps: list, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the incremental path alone must keep every index (the label set, the reference sample its correction is
    # computed from, and the tagging) exact: a rebuild would hide a bug
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
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts, correction=correction)
        # the reference sample is drawn at definition: here every anchor (fewer than REFERENCE_SIZE), fixed after
        reference = np.stack([v for _, (_, v, _) in sorted(model.anchors.items())])
        a.engine.create_collection("photos", CollectionSpec(dense={"img": IMG_DIM}))
        a.engine.upsert("photos", PointBatch(list(range(len(queries))), {"img": queries.astype(np.float32)}))
        for t in TENANTS:
            a.tag("photos", vector="img", labels="L", field=f"tag_{t}", tenant=None if t == "_shared" else t)
        for step, (op, tenant, n, seed) in enumerate(steps):
            # distinct vectors per step: exact duplicates across tenants tie to the last bit, and local mode's
            # float64 matmul can order such ties differently by query shape (Edge scores each pair the same way)
            edit_anchors(a, model.anchors, op, tenant, n, np.random.default_rng([seed, step]))
            _check(a, model, tenant, queries, prompts, correction, reference)
        for t in TENANTS:
            _check(a, model, t, queries, prompts, correction, reference)
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
    # a fixed id key: content ids (and so a reference sample drawn by id) are the same on every run
    a.meta.put(ID_KEY_RECORD, {"key": "3d" * 16})
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


@pytest.mark.parametrize("kind", ["edge", "local"])
@pytest.mark.parametrize("correction", ["mean", "zscore"])
def test_correction_stays_exact_under_edits(
    kind: str, correction: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sample of 10 of 60 anchors is the reference; deleting sampled anchors, adding and replacing keep the
    correction equal to the from-scratch one (the sample is fixed at definition), without a rebuild; explain's
    contributions plus its correction line add up to classify's score."""
    import asif_qdrant.correction as correction_mod

    monkeypatch.setattr(RelIndexes, "rebuild", lambda self, info: pytest.fail("an index fell behind"))
    monkeypatch.setattr(correction_mod, "REFERENCE_SIZE", 10)
    rng = np.random.default_rng(13)
    opts = small_settings(k=K, p=P)
    a = Asif.open(tmp_path / "s", **opts) if kind == "edge" else Asif.open(url=":memory:", **opts)
    # a fixed id key: content ids (and so a reference sample drawn by id) are the same on every run
    a.meta.put(ID_KEY_RECORD, {"key": "3d" * 16})
    model = Model()
    try:
        img, txt = rng.standard_normal((60, IMG_DIM)), rng.standard_normal((60, TXT_DIM))
        for i, pid in enumerate(a.add_vectors(img, txt).ids):
            model.anchors[pid] = ("_shared", unit(img[i]), unit(txt[i]))
        prompts, queries = rng.standard_normal((5, TXT_DIM)), rng.standard_normal((4, IMG_DIM))
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts, correction=correction)
        sample = correction_mod.reference_ids(sorted(model.anchors))
        assert len(sample) == 10
        reference = np.stack([model.anchors[i][1] for i in sample])
        _check(a, model, "_shared", queries, prompts, correction, reference)
        for op, n in (("delete", 3), ("add", 4), ("replace", 2), ("delete", 20), ("add", 1)):
            if op == "delete":  # sampled anchors among them: the sample's vectors stay, their neighbours change
                gone = sample[:2] + [i for i in sorted(model.anchors) if i not in sample][: n - 2]
                assert a.delete(gone).count == len(gone)
                sample = sample[2:]
                for g in gone:
                    del model.anchors[g]
            else:
                edit_anchors(a, model.anchors, op, "_shared", n, rng)
            _check(a, model, "_shared", queries, prompts, correction, reference)
        ex = a.explain(vector=queries[0], labels="L", top=50, n_labels=5)
        pred = a.classify(vectors=queries[:1], labels="L", top=5)[0]
        scores = {s.label: s.score for s in pred.top}
        ids, img, txt = model.scope("_shared")
        shift, scale = reference_shift_scale(
            dense_reference_scores(reference, img, prompts, txt, K, P, anchor_ids=ids), correction)
        for e in ex.explained:
            total = sum(c.contribution for c in e.contributions) + e.rest + e.correction
            i = "abcde".index(e.label)
            assert abs(total - scores[e.label]) < 1e-5
            assert abs(e.correction + shift[i] / scale[i]) < 1e-6  # its own line: minus the (scaled) reference mean
        assert any(e.correction != 0.0 for e in ex.explained)
    finally:
        a.close()


def test_correction_reference_drawn_once_anchors_exist(tmp_path: Path) -> None:
    """A corrected label set defined on an empty store draws its reference sample when it first answers."""
    rng = np.random.default_rng(17)
    with Asif.open(tmp_path / "s", **small_settings(k=K, p=P)) as a:
        prompts, queries = rng.standard_normal((5, TXT_DIM)), rng.standard_normal((3, IMG_DIM))
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts, correction="mean")
        assert a.relindexes.info("L", "_shared", "reference") is None
        model = Model()
        edit_anchors(a, model.anchors, "add", "_shared", 8, rng)
        reference = np.stack([v for _, (_, v, _) in sorted(model.anchors.items())])
        _check(a, model, "_shared", queries, prompts, "mean", reference)
        assert a.relindexes.info("L", "_shared", "reference").n_items == 8
        assert [i.kind for i in a.list_indexes()] == ["labels"]  # the reference is not the user's index
        a.delete_labels("L")
        assert a.relindexes.info("L", "_shared", "reference") is None


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_correction_updated_in_place_equals_a_full_recompute(kind: str, tmp_path: Path) -> None:
    # after each edit, the cached score matrix is updated only where a stored list changed: the correction must be
    # the one a fresh Corrections object computes from scratch
    from asif_qdrant.correction import Corrections

    rng = np.random.default_rng(11)
    a = (Asif.open(tmp_path / "s", **small_settings(k=K, p=P)) if kind == "edge"
         else Asif.open(url=":memory:", **small_settings(k=K, p=P)))
    try:
        ids = a.add_vectors(rng.standard_normal((20, IMG_DIM)), rng.standard_normal((20, TXT_DIM))).ids
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=rng.standard_normal((5, TXT_DIM)),
                        correction="zscore")
        q = rng.standard_normal((2, IMG_DIM))
        for step in range(6):
            if step % 2:
                a.delete([ids.pop(int(rng.integers(0, len(ids))))])
            else:
                ids += a.add_vectors(rng.standard_normal((2, IMG_DIM)), rng.standard_normal((2, TXT_DIM))).ids
            a.classify(vectors=q, labels="L")
            part = a.index_info("L", "_shared", "labels")
            ref = a.corrections.reference(a, part, "_shared")
            got, fresh = a.corrections.correction(part, ref), Corrections(a.relindexes).correction(part, ref)
            # equal up to the last bits of a float64 sum (decoding a batch of lists or one list rounds alike)
            np.testing.assert_allclose(got.shift, fresh.shift, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(got.scale, fresh.scale, rtol=1e-12, atol=1e-15)
    finally:
        a.close()


def test_changed_items_follows_only_this_process_incremental_edits(tmp_path: Path) -> None:
    from asif_qdrant.relindex import index_state

    rng = np.random.default_rng(12)
    with Asif.open(tmp_path / "s", **small_settings(k=K, p=P)) as a:
        ids = a.add_vectors(rng.standard_normal((12, IMG_DIM)), rng.standard_normal((12, TXT_DIM))).ids
        prompts = rng.standard_normal((4, TXT_DIM))
        a.define_labels("L", list("abcd"), templates="plain", prompt_vectors=prompts)
        ri = a.relindexes

        def state() -> tuple:
            return index_state(a.index_info("L", "_shared", "labels"))

        key, s0 = a.index_info("L", "_shared", "labels").key, state()
        a.add_vectors(rng.standard_normal((1, IMG_DIM)), prompts[:1])  # enters prompt a's list at least
        w1, s1 = set(ri.written.get(key, ())), state()
        a.delete(ids[:2])
        w2, s2 = set(ri.written.get(key, ())), state()
        assert 0 in w1 and s0 != s1 != s2
        assert ri.changed_items(key, s0, s2) == w1 | w2 and ri.changed_items(key, s1, s2) == w2
        assert ri.changed_items(key, s2, s2) == set()
        a.define_labels("L", list("abcd"), templates="plain", prompt_vectors=prompts[::-1], replace=True)
        assert ri.changed_items(key, s2, state()) is None  # a build: every item rewritten, no chain
