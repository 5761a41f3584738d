"""Label coverage and taught prototypes on every engine: exact against numpy references, fresh under anchor edits,
private to their tenant, and visible in explain as their own line."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, random_pairs, unit

from asif_qdrant import Asif
from asif_qdrant.coverage import COVERAGE_FLOOR
from asif_qdrant.prototypes import DEFAULT_MIX, TAUGHT_FIELD
from asif_qdrant.relrep import dense_reference_scores

pytestmark = pytest.mark.timeout(120)
CLASSES = ["a", "b", "c"]


def _reference_support(prompts: np.ndarray, texts: np.ndarray) -> list[int]:
    """Per class (one prompt each): anchors whose caption is within the floor (every list is complete here)."""
    sims = unit(prompts.astype(np.float64)) @ unit(texts.astype(np.float64)).T
    return [int((sims[c] >= COVERAGE_FLOOR).sum()) for c in range(len(prompts))]


def _store_with_labels(store: Asif, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img, txt = random_pairs(rng, 30)
    prompts = rng.standard_normal((3, TXT_DIM)).astype(np.float32)
    txt[:12] = prompts[0] + 0.3 * rng.standard_normal((12, TXT_DIM))  # twelve captions about class a
    txt[12:14] = prompts[1] + 0.3 * rng.standard_normal((2, TXT_DIM))  # two about b, none about c
    store.add_vectors(img, txt, captions=[f"c{i}" for i in range(30)])
    store.define_labels("L", CLASSES, templates=["{}"], prompt_vectors=prompts, k=40, p=4)
    return img, txt, prompts


def test_coverage_counts_match_numpy_and_follow_edits(store: Asif, rng: np.random.Generator) -> None:
    img, txt, prompts = _store_with_labels(store, rng)
    cov = store.coverage("L")
    ref = _reference_support(prompts, txt)
    assert [c.support for c in cov.classes] == ref and ref[0] >= 12 and ref[2] < 10
    assert cov.of("c") is not None and cov.of("c").verdict == "unsupported"  # type: ignore[union-attr]
    # twenty more pairs about c: support follows the edit (computed on read from the items kept exact)
    new_txt = prompts[2] + 0.3 * rng.standard_normal((20, TXT_DIM)).astype(np.float32)
    ids = store.add_vectors(random_pairs(rng, 20)[0], new_txt, captions=[f"n{i}" for i in range(20)]).ids
    ref2 = _reference_support(prompts, np.vstack([txt, new_txt]))
    assert [c.support for c in store.coverage("L").classes] == ref2 and ref2[2] >= 20
    store.delete(ids[:15])
    ref3 = _reference_support(prompts, np.vstack([txt, new_txt[15:]]))
    assert [c.support for c in store.coverage("L").classes] == ref3


def test_define_labels_returns_coverage_and_explain_shows_the_verdict(store: Asif, rng: np.random.Generator) -> None:
    img, txt, prompts = _store_with_labels(store, rng)
    info = store.define_labels("L", CLASSES, templates=["{}"], prompt_vectors=prompts, k=40, p=4, replace=True)
    assert info.coverage == store.coverage("L").as_dict()["classes"]
    assert store.index_info("L", "_shared", "labels").coverage is None  # not stored: computed on read
    ex = store.explain(vector=img[0], labels="L", label="c")
    assert ex.main is not None and ex.main.verdict == "unsupported" and ex.main.fix is not None
    assert "warning: 'c' is unsupported" in ex.text()


def _teach(store: Asif, tenant: str, vecs: np.ndarray, labels: list[str], cap: np.ndarray) -> list[int]:
    return store.add_vectors(vecs, np.stack([cap[CLASSES.index(c)] for c in labels]),
                             captions=[f"a photo of a {c}." for c in labels], tenant=tenant,
                             payloads=[{TAUGHT_FIELD: c} for c in labels]).ids


def _expected(store_img: np.ndarray, store_txt: np.ndarray, prompts: np.ndarray, q: np.ndarray,
              taught: dict[str, np.ndarray]) -> np.ndarray:
    """ASIF score (dense reference over every anchor in scope) + weight * max(0, cos to class mean) ** power."""
    asif = dense_reference_scores(q, store_img, prompts, store_txt, 40, 4)
    for j, c in enumerate(CLASSES):
        if c in taught:
            m = unit(unit(taught[c].astype(np.float64)).mean(0))
            asif[:, j] += DEFAULT_MIX.weight * np.maximum(unit(q.astype(np.float64)) @ m, 0) ** DEFAULT_MIX.power
    return asif


def test_taught_prototypes_enter_scores_exactly_and_stay_fresh(store: Asif, rng: np.random.Generator) -> None:
    img, txt, prompts = _store_with_labels(store, rng)
    cap = rng.standard_normal((3, TXT_DIM)).astype(np.float32)
    ex_img = rng.standard_normal((4, IMG_DIM)).astype(np.float32)
    ids = _teach(store, "acme", ex_img, ["a", "a", "b", "c"], cap)
    q = rng.standard_normal((5, IMG_DIM)).astype(np.float32)

    def check(taught: dict[str, np.ndarray], scope_img: np.ndarray, scope_txt: np.ndarray, tenant: str) -> None:
        want = _expected(scope_img, scope_txt, prompts, q, taught)
        for i, pred in enumerate(store.classify(vectors=q, labels="L", top=3, tenant=tenant)):
            got = {s.label: s.score for s in pred.top}
            for j, c in enumerate(CLASSES):
                assert got.get(c, 0.0) == pytest.approx(want[i, j], abs=2e-5)

    # the tenant's own anchors are all taught pairs: they enter through the prototypes, the ASIF part is the
    # shared model's
    check({"a": ex_img[:2], "b": ex_img[2:3], "c": ex_img[3:]}, img, txt, "acme")
    check({}, img, txt, "_shared")  # the shared model and other tenants see no prototype
    assert store.prototypes.similarities("other", CLASSES, q) is None
    store.delete([ids[1], ids[3]], tenant="acme")  # one 'a' example and the only 'c' one go
    check({"a": ex_img[:1], "b": ex_img[2:3]}, img, txt, "acme")
    assert store.prototypes.record("acme")["classes"] == {"a": 1, "b": 1}  # type: ignore[index]
    # an own pair that is not a taught example: the ASIF part is the tenant's whole model (taught pairs included)
    own_img, own_txt = random_pairs(rng, 1)
    own = store.add_vectors(own_img, own_txt, captions=["mine"], tenant="acme").ids
    check({"a": ex_img[:1], "b": ex_img[2:3]}, np.vstack([img, ex_img[[0, 2]], own_img]),
          np.vstack([txt, cap[[0, 1]], own_txt]), "acme")
    store.delete(own, tenant="acme")
    # explain: anchor contributions + rest + the prototype line add up to classify's score
    ex = store.explain(vector=q[0], labels="L", label="a", tenant="acme", top=3)
    main = ex.main
    assert main is not None and main.prototype > 0 and main.prototype_similarity is not None
    total = sum(c.contribution for c in main.contributions) + main.rest + main.prototype
    score_a = {s.label: s.score for s in store.classify(vectors=q[:1], labels="L", top=3, tenant="acme")[0].top}["a"]
    assert total == pytest.approx(main.score, abs=1e-9) and main.score == pytest.approx(score_a, abs=2e-5)
    assert "prototype of the taught examples of 'a'" in ex.text()
    store.delete_tenant("acme")
    assert store.prototypes.record("acme") is None
    assert store.engine.count(store.prototypes.collection) == 0


def test_a_nil_support_class_abstains_under_a_correction(store: Asif) -> None:
    # captions about a and b, and none within the coverage floor of c's prompt: c has support 0 (nil)
    for seed in range(100):
        rng = np.random.default_rng(seed)
        img, txt = random_pairs(rng, 30)
        prompts = rng.standard_normal((3, TXT_DIM)).astype(np.float32)
        txt[:12] = prompts[0] + 0.3 * rng.standard_normal((12, TXT_DIM))
        txt[12:20] = prompts[1] + 0.3 * rng.standard_normal((8, TXT_DIM))
        if _reference_support(prompts, txt)[2] == 0:
            break
    store.add_vectors(img, txt, captions=[f"c{i}" for i in range(30)])
    store.define_labels("L", CLASSES, templates=["{}"], prompt_vectors=prompts, k=10, p=4, correction="mean")
    store.define_labels("L0", CLASSES, templates=["{}"], prompt_vectors=prompts, k=10, p=4)
    assert [c.support for c in store.coverage("L").classes][2] == 0
    q = rng.standard_normal((300, IMG_DIM)).astype(np.float32)
    preds = store.classify(vectors=q, labels="L", top=3)
    c_first = [i for i, p in enumerate(preds) if p.top and p.top[0].label == "c"]
    assert c_first, "no image ranks c first: the test needs one"
    for i, p in enumerate(preds):
        assert p.label == (None if i in c_first else p.top[0].label if p.top else None)
    # the ranking and score stay (the answer only abstains); explain says why; no correction, no abstention
    assert all(preds[i].score == preds[i].top[0].score for i in c_first)
    ex = store.explain(vector=q[c_first[0]], labels="L")
    assert ex.predicted is None and ex.abstained and "has no support in the anchors" in ex.text()
    plain = store.classify(vectors=q, labels="L0", top=3)
    assert any(p.label == "c" for p in plain)
