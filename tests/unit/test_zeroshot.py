"""The zero-shot core through Qdrant equals a dense numpy reference of the paper's formulas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, open_store, random_pairs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asif_qdrant import Asif, ConfigError, InvalidInputError, NotFoundError
from asif_qdrant.relrep import dense_reference_scores


def _store_anchor_matrix(a: Asif, tenant_ids: list[int], img: np.ndarray, txt: np.ndarray):
    return np.asarray(tenant_ids, np.int64), img, txt


def reference(img_anchors, txt_anchors, anchor_ids, queries, prompts, k, p):
    return dense_reference_scores(queries, img_anchors, prompts, txt_anchors, k, p, anchor_ids=anchor_ids)


@pytest.mark.parametrize("k,p", [(5, 8.0), (3, 1.0), (100, 4.0)])
def test_classify_equals_dense_reference(store: Asif, rng: np.random.Generator, k: int, p: float) -> None:
    img, txt = random_pairs(rng, 40)
    ids = store.add_vectors(img, txt).ids
    classes = [f"c{i}" for i in range(6)]
    prompts = rng.standard_normal((6, TXT_DIM))
    store.define_labels("L", classes, templates="plain", prompt_vectors=prompts, k=k, p=p)
    queries = rng.standard_normal((7, IMG_DIM))
    preds = store.classify(vectors=queries, labels="L", top=6)
    ref = reference(img, txt, ids, queries, prompts, k, p)
    for b, pred in enumerate(preds):
        want = np.lexsort((np.arange(6), -ref[b]))
        got_labels = [ls.label for ls in pred.top]
        got_scores = [ls.score for ls in pred.top]
        nonzero = [classes[i] for i in want if ref[b, i] > 0]
        assert got_labels == nonzero
        np.testing.assert_allclose(got_scores, ref[b, want][: len(got_scores)], atol=1e-5)
        assert pred.label == (nonzero[0] if nonzero else None)


def test_search_equals_dense_reference(store: Asif, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 30)
    ids = store.add_vectors(img, txt).ids
    gallery = rng.standard_normal((12, IMG_DIM))
    store.add_gallery("G", vectors=gallery, k=6, p=8)
    queries = rng.standard_normal((4, TXT_DIM))
    res = store.search(vector=queries, gallery="G", top=5)
    ref = dense_reference_scores(queries, txt, gallery, img, 6, 8, anchor_ids=ids)
    for b, hits in enumerate(res):
        want = [i for i in np.lexsort((np.arange(12), -ref[b])) if ref[b, i] > 0][:5]
        assert [h.payload["item"] for h in hits] == want
        np.testing.assert_allclose([h.score for h in hits], ref[b, want], atol=1e-5)


def test_max_and_mean_aggregation(store: Asif, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 30)
    ids = store.add_vectors(img, txt).ids
    prompts = rng.standard_normal((3 * 2, TXT_DIM))  # 3 classes x 2 templates, class-major
    store.define_labels("L", ["a", "b", "c"], templates=["x {}", "y {}"], prompt_vectors=prompts, k=8, p=2)
    q = rng.standard_normal((1, IMG_DIM))
    ref = dense_reference_scores(q, img, prompts, txt, 8, 2, anchor_ids=ids)[0].reshape(3, 2)
    mx = store.classify(vectors=q, labels="L", top=3)[0]
    mean = store.classify(vectors=q, labels="L", top=3, aggregation="mean")[0]
    np.testing.assert_allclose(sorted((s.score for s in mx.top), reverse=True), np.sort(ref.max(1))[::-1], atol=1e-5)
    np.testing.assert_allclose(
        sorted((s.score for s in mean.top), reverse=True), np.sort(ref.mean(1))[::-1], atol=1e-5
    )
    best = int(np.argmax(ref.max(1)))
    assert mx.label == "abc"[best]
    assert mx.prompt == ["x {}", "y {}"][int(np.argmax(ref[best]))].format("abc"[best])


def test_unknown_when_no_shared_anchor(store: Asif) -> None:
    # anchors live on axis 0 (image) / axis 0 (text); the query points away from every anchor
    img = np.zeros((3, IMG_DIM)); img[:, 0] = 1; img[:, 1] = [0.1, 0.2, 0.3]
    txt = np.zeros((3, TXT_DIM)); txt[:, 0] = 1; txt[:, 1] = [0.3, 0.2, 0.1]
    store.add_vectors(img, txt)
    store.define_labels("L", ["a"], templates="plain", prompt_vectors=np.eye(TXT_DIM)[:1], k=2)
    q = np.zeros((1, IMG_DIM)); q[0, 0] = -1
    pred = store.classify(vectors=q, labels="L")[0]
    assert pred.label is None and pred.score == 0.0 and pred.top == []


def test_ties_k_larger_than_n_and_all_negative(store: Asif) -> None:
    # duplicated anchors give exactly tied similarities; k exceeds the number of anchors
    base_i = np.eye(IMG_DIM)[:4]
    base_t = np.eye(TXT_DIM)[:4]
    img = np.concatenate([base_i, base_i]); txt = np.concatenate([base_t, base_t])
    ids = store.add_vectors(img, txt, captions=[f"c{i}" for i in range(8)]).ids
    prompts = np.eye(TXT_DIM)[:4] + 0.1
    store.define_labels("L", ["a", "b", "c", "d"], templates="plain", prompt_vectors=prompts, k=50, p=3)
    q = np.eye(IMG_DIM)[:4] + 0.05
    preds = store.classify(vectors=q, labels="L", top=4)
    ref = dense_reference_scores(q, img, prompts, txt, 50, 3, anchor_ids=ids)
    for b in range(4):
        np.testing.assert_allclose(sorted((s.score for s in preds[b].top), reverse=True),
                                   sorted(ref[b][ref[b] > 0], reverse=True), atol=1e-5)
    # k=1 with exact ties: the tie rule (smaller id first) decides, as in the reference
    store.define_labels("T", ["a", "b", "c", "d"], templates="plain", prompt_vectors=prompts, k=1, p=3)
    preds = store.classify(vectors=q, labels="T", top=4)
    ref = dense_reference_scores(q, img, prompts, txt, 1, 3, anchor_ids=ids)
    for b in range(4):
        np.testing.assert_allclose(sorted((s.score for s in preds[b].top), reverse=True),
                                   sorted(ref[b][ref[b] > 0], reverse=True), atol=1e-5)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 25),
    k=st.integers(1, 30),
    p=st.sampled_from([1.0, 2.0, 8.0]),
    seed=st.integers(0, 10_000),
    grid=st.booleans(),
)
def test_property_random_data_matches_reference(tmp_path_factory, n, k, p, seed, grid) -> None:
    rng = np.random.default_rng(seed)
    img, txt = random_pairs(rng, n)
    prompts = rng.standard_normal((5, TXT_DIM))
    queries = rng.standard_normal((3, IMG_DIM))
    if grid:
        # +-1 on exactly 4 coordinates: unit vectors are exactly +-0.5, every cosine is an exact multiple of
        # 0.25 in any precision, so exact ties and all-negative rows are frequent and computed identically
        img, txt, prompts, queries = (_four_signs(rng, x.shape) for x in (img, txt, prompts, queries))
    a = Asif.open(url=":memory:", image_encoder=f"precomputed:img:{IMG_DIM}", text_encoder=f"precomputed:txt:{TXT_DIM}")
    try:
        ids = a.add_vectors(img, txt, ids=list(range(100, 100 + n))).ids
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts, k=k, p=p)
        preds = a.classify(vectors=queries, labels="L", top=5)
        ref = dense_reference_scores(queries, img, prompts, txt, k, p, anchor_ids=ids)
        for b in range(3):
            got = {s.label: s.score for s in preds[b].top}
            for i, c in enumerate("abcde"):
                assert abs(got.get(c, 0.0) - ref[b, i]) < 1e-5
            assert (preds[b].label is None) == (ref[b].max() <= 0)
    finally:
        a.close()


def _four_signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape)
    for row in out:
        row[rng.choice(shape[1], 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
    return out


def test_errors(store: Asif, rng: np.random.Generator) -> None:
    store.add_vectors(*random_pairs(rng, 5))
    with pytest.raises(NotFoundError, match="label set 'nope' does not exist"):
        store.classify(vectors=rng.standard_normal((1, IMG_DIM)), labels="nope")
    with pytest.raises(InvalidInputError, match="got 3 prompt vectors for 4 prompts"):
        store.define_labels("L", ["a", "b"], templates=["x {}", "y {}"], prompt_vectors=np.ones((3, TXT_DIM)))
    with pytest.raises(ConfigError, match="exactly one"):
        store.define_labels("L", ["a"], templates=["no slot"], prompt_vectors=np.ones((1, TXT_DIM)))
    with pytest.raises(ConfigError, match="k=0"):
        store.define_labels("L", ["a"], templates="plain", prompt_vectors=np.ones((1, TXT_DIM)), k=0)
    store.define_labels("L", ["a"], templates="plain", prompt_vectors=np.ones((1, TXT_DIM)))
    with pytest.raises(ConfigError, match="either images"):
        store.classify(labels="L")
    assert [i.name for i in store.list_indexes()] == ["L"]


def test_edits_are_visible_on_next_query(store: Asif, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 20)
    ids = store.add_vectors(img, txt).ids
    prompts = rng.standard_normal((4, TXT_DIM))
    store.define_labels("L", list("abcd"), templates="plain", prompt_vectors=prompts, k=5, p=8)
    q = rng.standard_normal((2, IMG_DIM))
    before = store.classify(vectors=q, labels="L", top=4)
    img2, txt2 = random_pairs(rng, 10)
    new = store.add_vectors(img2, txt2, tenant="acme").ids
    # the shared model does not see acme's anchors; acme's does
    assert [p.top for p in store.classify(vectors=q, labels="L", top=4)] == [p.top for p in before]
    got = store.classify(vectors=q, labels="L", top=4, tenant="acme")
    ref = dense_reference_scores(q, np.concatenate([img, img2]), prompts, np.concatenate([txt, txt2]), 5, 8,
                                 anchor_ids=ids + new)
    for b in range(2):
        np.testing.assert_allclose(sorted((s.score for s in got[b].top), reverse=True),
                                   sorted(ref[b][ref[b] > 0], reverse=True), atol=1e-5)
    store.delete(ids[:10])
    got = store.classify(vectors=q, labels="L", top=4)
    ref = dense_reference_scores(q, img[10:], prompts, txt[10:], 5, 8, anchor_ids=ids[10:])
    for b in range(2):
        np.testing.assert_allclose(sorted((s.score for s in got[b].top), reverse=True),
                                   sorted(ref[b][ref[b] > 0], reverse=True), atol=1e-5)


def test_open_store_helper_smoke(engine_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    a = open_store(engine_kind, tmp_path, request)
    try:
        assert a.count() == 0 and a.tenants() == []
        fp = a.fingerprint
        assert (fp.image_encoder, fp.image_dim, fp.text_encoder, fp.text_dim) == (
            f"precomputed:img:{IMG_DIM}", IMG_DIM, f"precomputed:txt:{TXT_DIM}", TXT_DIM)
    finally:
        a.close()
