"""Explanations and abstention.

- explain: the anchors behind a label score, checked against a dense numpy computation of the same terms;
- calibrate: tau chosen on labelled vectors reaches its target, is stored with the label set, and changes classify.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, random_pairs
from PIL import Image

from asif_qdrant import Asif, ConfigError, InvalidInputError
from asif_qdrant.evaluation.calibrate import calibrate, calibrate_vectors, risk_coverage, split_halves
from asif_qdrant.explain import explain
from asif_qdrant.relrep import relative_rep, top_k


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def dense_terms(q: np.ndarray, anchors: np.ndarray, item: np.ndarray, item_anchors: np.ndarray,
                ids: list[int], k: int, p: float) -> dict[int, float]:
    """anchor id -> q_rep[a] * item_rep[a], from scratch in float64."""
    out = []
    for vec, anc in ((q, anchors), (item, item_anchors)):
        sims = _unit(anc) @ _unit(vec)
        tid, tsim = top_k(sims, k, ids=np.asarray(ids))
        rep = relative_rep(tid, tsim, p)
        out.append(dict(zip(rep.indices.tolist(), rep.values.tolist(), strict=True)))
    a, b = out
    return {i: a[i] * b[i] for i in a.keys() & b.keys()}


def small_store() -> Asif:
    """Uncorrected label sets: these tests check the paper's scores (the corrected ones: test_freshness.py)."""
    return Asif.open(url=":memory:", image_encoder=f"precomputed:img:{IMG_DIM}",
                     text_encoder=f"precomputed:txt:{TXT_DIM}", correction="none")


def test_contributions_sum_to_score_and_match_dense(store: Asif, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 40)
    caps = [f"caption {i}" for i in range(40)]
    ids = store.add_vectors(img, txt, captions=caps, payloads=[{"src": i} for i in range(40)],
                            image_refs=[f"img/{i}.jpg" for i in range(40)]).ids
    prompts = rng.standard_normal((4 * 2, TXT_DIM))
    store.define_labels("L", ["a", "b", "c", "d"], templates=["x {}", "y {}"], prompt_vectors=prompts, k=12, p=4)
    for q in rng.standard_normal((3, IMG_DIM)):
        pred = store.classify(vectors=q[None], labels="L", top=4)[0]
        ex = explain(store, vector=q, labels="L", top=100)
        assert ex.label == pred.label and ex.predicted == pred.label and ex.label is not None
        assert ex.prompt == pred.prompt
        assert abs(ex.score - pred.score) < 1e-5
        total = sum(c.contribution for c in ex.contributions)
        assert abs(total - ex.score) < 1e-6 and ex.main is not None and ex.main.rest == 0.0
        assert len(ex.contributions) == ex.main.shared_anchors > 0
        # the same terms, computed densely from the raw vectors
        pi = ["x {}", "y {}"].index(pred.prompt.replace(pred.label, "{}")) + 2 * "abcd".index(pred.label)
        want = dense_terms(q, img, prompts[pi], txt, ids, 12, 4)
        got = {c.id: c.contribution for c in ex.contributions}
        assert got.keys() == want.keys()
        for a, v in want.items():
            assert got[a] == pytest.approx(v, abs=1e-6)
        contribs = [c.contribution for c in ex.contributions]
        assert contribs == sorted(contribs, reverse=True)
        for c in ex.contributions:
            j = ids.index(c.id)
            assert c.caption == caps[j] and c.image_ref == f"img/{j}.jpg" and c.payload == {"src": j}
            assert c.tenant == "_shared"
            assert c.image_similarity == pytest.approx(float(_unit(img[j]) @ _unit(q)), abs=1e-5)
            assert c.prompt_similarity == pytest.approx(float(_unit(txt[j]) @ _unit(prompts[pi])), abs=1e-5)
            assert c.image_weight * c.prompt_weight == pytest.approx(c.contribution, abs=1e-12)


def test_top_cut_keeps_the_rest(rng: np.random.Generator) -> None:
    with small_store() as s:
        img, txt = random_pairs(rng, 30)
        s.add_vectors(img, txt)
        s.define_labels("L", ["a", "b"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)), k=10,
                        p=2)
        q = rng.standard_normal(IMG_DIM)
        full = explain(s, vector=q, labels="L", top=100)
        cut = explain(s, vector=q, labels="L", top=2)
        assert full.main is not None and cut.main is not None and full.main.shared_anchors > 2
        assert [c.id for c in cut.contributions] == [c.id for c in full.contributions[:2]]
        assert cut.main.rest == pytest.approx(sum(c.contribution for c in full.contributions[2:]), abs=1e-9)
        assert sum(c.contribution for c in cut.contributions) + cut.main.rest == pytest.approx(cut.score, abs=1e-9)
        d = json.loads(json.dumps(cut.as_dict()))
        assert d["label"] == cut.label and len(d["contributions"]) == 2 and d["score"] == cut.score


def test_asked_label_and_other_labels(rng: np.random.Generator) -> None:
    with small_store() as s:
        img, txt = random_pairs(rng, 40)
        ids = s.add_vectors(img, txt).ids
        prompts = rng.standard_normal((3, TXT_DIM))
        s.define_labels("L", ["a", "b", "c"], templates="plain", prompt_vectors=prompts, k=40, p=1)
        q = rng.standard_normal(IMG_DIM)
        pred = s.classify(vectors=q, labels="L", top=3)[0]
        scores = {ls.label: ls.score for ls in pred.top}
        other = pred.top[-1].label
        ex = explain(s, vector=q, labels="L", label=other, top=100)
        assert ex.label == other and ex.predicted == pred.label
        assert ex.score == pytest.approx(scores[other], abs=1e-5)
        assert sum(c.contribution for c in ex.contributions) == pytest.approx(ex.score, abs=1e-6)
        want = dense_terms(q, img, prompts["abc".index(other)], txt, ids, 40, 1)
        assert {c.id for c in ex.contributions} == set(want)
        many = explain(s, vector=q, labels="L", top=3, n_labels=3)
        assert [e.label for e in many.explained] == [ls.label for ls in pred.top]
        for e in many.explained:
            assert e.score == pytest.approx(scores[e.label], abs=1e-5)
        with pytest.raises(ConfigError, match="'zebra' is not a class"):
            explain(s, vector=q, labels="L", label="zebra")
        with pytest.raises(InvalidInputError, match="one image vector; got 2"):
            explain(s, vector=rng.standard_normal((2, IMG_DIM)), labels="L")
        with pytest.raises(ConfigError, match="top=0"):
            explain(s, vector=q, labels="L", top=0)


def test_mean_aggregation_contributions_sum_to_mean_score(rng: np.random.Generator) -> None:
    with small_store() as s:
        img, txt = random_pairs(rng, 30)
        s.add_vectors(img, txt)
        s.define_labels("M", ["a", "b"], templates=["x {}", "y {}", "z {}"],
                        prompt_vectors=rng.standard_normal((6, TXT_DIM)), k=8, p=3, aggregation="mean")
        q = rng.standard_normal(IMG_DIM)
        pred = s.classify(vectors=q, labels="M")[0]
        ex = explain(s, vector=q, labels="M", top=100)
        assert ex.label == pred.label and ex.score == pytest.approx(pred.score, abs=1e-5)
        assert sum(c.contribution for c in ex.contributions) == pytest.approx(ex.score, abs=1e-6)


def test_unknown_when_no_shared_anchor() -> None:
    with small_store() as s:
        img = np.zeros((3, IMG_DIM)); img[:, 0] = 1; img[:, 1] = [0.1, 0.2, 0.3]  # noqa: E702
        txt = np.zeros((3, TXT_DIM)); txt[:, 0] = 1; txt[:, 1] = [0.3, 0.2, 0.1]  # noqa: E702
        s.add_vectors(img, txt)
        s.define_labels("L", ["a"], templates="plain", prompt_vectors=np.eye(TXT_DIM)[:1], k=2)
        q = np.zeros(IMG_DIM); q[0] = -1  # noqa: E702
        ex = explain(s, vector=q, labels="L")
        assert ex.label is None and ex.score == 0.0 and ex.contributions == [] and ex.unknown
        assert ex.predicted is None and ex.ranking == [] and ex.explained == []
        assert ex.as_dict()["contributions"] == [] and "unknown" in ex.text()
        asked = explain(s, vector=q, labels="L", label="a")
        assert asked.label == "a" and asked.score == 0.0 and asked.contributions == []


def test_below_tau_is_explained_but_abstained(rng: np.random.Generator) -> None:
    with small_store() as s:
        img, txt = random_pairs(rng, 20)
        s.add_vectors(img, txt)
        s.define_labels("L", ["a", "b"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)), k=20)
        q = rng.standard_normal(IMG_DIM)
        best = s.classify(vectors=q, labels="L")[0]
        info = s.relindexes.require("L", "_shared", "labels")
        info.tau = best.score + 0.01
        from dataclasses import asdict

        s.meta.put(info.key, asdict(info))
        ex = explain(s, vector=q, labels="L", top=50)
        assert ex.predicted is None and ex.abstained and ex.label == best.label
        assert ex.score == pytest.approx(best.score, abs=1e-5) and ex.tau == pytest.approx(best.score + 0.01)
        assert "below tau" in ex.text()


def test_tenant_explanations_never_name_other_tenants_anchors(rng: np.random.Generator) -> None:
    with small_store() as s:
        img, txt = random_pairs(rng, 30)
        s.add_vectors(img[:10], txt[:10])
        q = rng.standard_normal(IMG_DIM)
        # each tenant owns near-copies of the query: they would dominate any explanation that saw them
        # (with captions close to the prompts, so that they share anchors with them too)
        prompts = rng.standard_normal((2, TXT_DIM))
        near_i = q[None] + 0.01 * rng.standard_normal((5, IMG_DIM))
        acme = s.add_vectors(near_i, prompts[0] + 0.05 * rng.standard_normal((5, TXT_DIM)),
                             captions=[f"acme {i}" for i in range(5)], tenant="acme").ids
        globex = s.add_vectors(near_i + 0.001, prompts[1] + 0.05 * rng.standard_normal((5, TXT_DIM)),
                               captions=[f"globex {i}" for i in range(5)], tenant="globex").ids
        s.define_labels("L", ["a", "b"], templates="plain", prompt_vectors=prompts, k=30, p=1)
        for tenant, own, other in (("acme", acme, globex), ("globex", globex, acme), (None, [], acme + globex)):
            ex = explain(s, vector=q, labels="L", tenant=tenant, top=100, n_labels=2)
            seen = {c.id for e in ex.explained for c in e.contributions}
            assert seen and not seen & set(other)
            assert all(c.tenant in ("_shared", tenant) for e in ex.explained for c in e.contributions)
            if own:
                assert set(own) <= seen  # k=30 covers every anchor in the tenant's scope
            pred = s.classify(vectors=q, labels="L", tenant=tenant, top=2)[0]
            assert ex.score == pytest.approx(pred.score, abs=1e-5)
            assert sum(c.contribution for c in ex.contributions) == pytest.approx(ex.score, abs=1e-6)


# -- abstention: calibrate tau ------------------------------------------------------------------
CLASSES = ["a", "b", "c"]


@pytest.fixture
def cal_setup() -> Iterator[tuple[Asif, np.ndarray, list[str], np.ndarray, list[str | None]]]:
    """A store, 90 query vectors, their true classes, and classify's best scores and labels (no tau).

    Truth is built so that precision grows with the score: the best-scored half is right, the rest mostly
    wrong, as with a real model whose confident answers are better."""
    rng = np.random.default_rng(3)
    s = Asif.open(url=":memory:", image_encoder=f"precomputed:img:{IMG_DIM}", text_encoder=f"precomputed:txt:{TXT_DIM}")
    img, txt = random_pairs(rng, 40)
    s.add_vectors(img, txt)
    s.define_labels("L", CLASSES, templates="plain", prompt_vectors=rng.standard_normal((3, TXT_DIM)), k=10, p=2)
    q = rng.standard_normal((90, IMG_DIM))
    preds = s.classify(vectors=q, labels="L", top=1, tau=float("-inf"))
    scores = np.array([p.score if p.label else 0.0 for p in preds])
    labels = [p.label for p in preds]
    order = np.argsort(-scores)
    truth = ["a"] * len(q)
    for rank, i in enumerate(order):
        pred = labels[i]
        if pred is None:
            truth[i] = CLASSES[rank % 3]
        elif rank < len(q) // 2 or rank % 3 == 0:
            truth[i] = pred
        else:
            truth[i] = CLASSES[(CLASSES.index(pred) + 1) % 3]
    yield s, q, truth, scores, labels
    s.close()


def figures(scores: np.ndarray, labels: list[str | None], truth: list[str], tau: float | None) -> dict[str, float]:
    ans = np.array([lb is not None and (tau is None or sc >= tau) for sc, lb in zip(scores, labels, strict=True)])
    ok = ans & np.array([lb == t for lb, t in zip(labels, truth, strict=True)])
    n = len(truth)
    return {"accuracy": ok.sum() / n, "unknown": 1 - ans.sum() / n, "wrong": (ans.sum() - ok.sum()) / n,
            "coverage": ans.sum() / n, "precision": ok.sum() / ans.sum() if ans.sum() else 0.0}


@pytest.mark.slow
def test_target_precision_is_reached_stored_and_used(cal_setup, tmp_path: Path) -> None:
    s, q, truth, scores, labels = cal_setup
    plot = tmp_path / "risk.png"
    rep = calibrate_vectors(s, q, truth, "L", target_precision=0.9, plot=plot)
    assert rep.tau is not None and rep.stored and rep.stored_in == "_shared/L"
    f = figures(scores, labels, truth, rep.tau)
    assert f["precision"] >= 0.9 and rep.precision == pytest.approx(f["precision"])
    for key in ("accuracy", "unknown", "wrong", "coverage"):
        assert getattr(rep, key) == pytest.approx(f[key])
    assert rep.accuracy + rep.unknown + rep.wrong == pytest.approx(1.0)
    assert 0 < rep.coverage < 1 and rep.unknown > 0  # the data forces a real trade-off
    # the smallest such tau: every lower threshold misses the target
    lower = sorted({sc for sc, lb in zip(scores, labels, strict=True) if lb is not None and sc < rep.tau})
    assert lower and all(figures(scores, labels, truth, t)["precision"] < 0.9 for t in lower)
    # stored with the label set, and classify now abstains exactly below it
    assert s.relindexes.require("L", "_shared", "labels").tau == rep.tau
    preds = s.classify(vectors=q, labels="L", top=1)
    for p, sc, lb in zip(preds, scores, labels, strict=True):
        assert p.label == (lb if lb is not None and sc >= rep.tau else None)
    assert sum(p.label is None for p in preds) == round(rep.unknown * len(q))
    # the risk-coverage PNG
    im = np.asarray(Image.open(plot).convert("L"), np.float64)
    assert rep.plot == str(plot) and im.shape == (450, 600) and im.std() > 5


def test_target_coverage(cal_setup) -> None:
    s, q, truth, scores, labels = cal_setup
    rep = calibrate_vectors(s, q, truth, "L", target_coverage=0.5)
    f = figures(scores, labels, truth, rep.tau)
    assert f["coverage"] >= 0.5 and rep.coverage == pytest.approx(f["coverage"])
    higher = sorted({sc for sc, lb in zip(scores, labels, strict=True) if lb is not None and sc > rep.tau})
    assert higher and figures(scores, labels, truth, higher[0])["coverage"] < 0.5
    assert rep.accuracy + rep.unknown + rep.wrong == pytest.approx(1.0)
    # a given tau is only evaluated, never stored
    ev = calibrate_vectors(s, q, truth, "L", tau=0.0)
    assert ev.target == "tau" and not ev.stored
    assert ev.unknown == pytest.approx(figures(scores, labels, truth, 0.0)["unknown"])
    assert s.relindexes.require("L", "_shared", "labels").tau == rep.tau


def test_heldout_split(cal_setup) -> None:
    s, q, truth, scores, labels = cal_setup
    cal, held = split_halves(truth, seed=0)
    assert set(cal.tolist()).isdisjoint(held.tolist()) and len(cal) + len(held) == len(truth)
    for c in CLASSES:
        n_c = truth.count(c)
        assert sum(truth[i] == c for i in cal) == (n_c + 1) // 2
    assert np.array_equal(split_halves(truth, seed=0)[0], cal)  # deterministic
    rep = calibrate_vectors(s, q, truth, "L", target_precision=0.85, split="heldout")
    assert rep.n == len(held) and rep.n_calibration == len(cal)
    sub = lambda idx: (scores[idx], [labels[i] for i in idx], [truth[i] for i in idx])  # noqa: E731
    fc = figures(*sub(cal), rep.tau)
    assert fc["precision"] >= 0.85 and rep.calibration is not None
    assert rep.calibration.precision == pytest.approx(fc["precision"])
    fh = figures(*sub(held), rep.tau)
    for key in ("accuracy", "unknown", "wrong", "coverage", "precision"):
        assert getattr(rep, key) == pytest.approx(fh[key])
    assert rep.accuracy + rep.unknown + rep.wrong == pytest.approx(1.0)
    same = calibrate_vectors(s, q, truth, "L", target_precision=0.85, split="calibration", save=False)
    assert same.tau == rep.tau and same.n == len(cal) and same.precision == pytest.approx(fc["precision"])


def test_risk_coverage_curve_points() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.5, 0.0])
    correct = np.array([True, True, False, False, False])
    answerable = np.array([True, True, True, True, False])
    curve = risk_coverage(scores, correct, answerable)
    assert [(c.tau, c.coverage, round(c.risk, 6)) for c in curve] == [
        (0.9, 0.2, 0.0), (0.8, 0.6, round(1 / 3, 6)), (0.5, 0.8, 0.5)
    ]


def test_tenant_calibration_stays_with_the_tenant(cal_setup) -> None:
    s, q, truth, scores, labels = cal_setup
    rep = calibrate_vectors(s, q, truth, "L", target_precision=0.9, tenant="acme")
    assert rep.stored_in == "acme/L" and s.relindexes.require("L", "_shared", "labels").tau is None
    assert s.relindexes.require("L", "acme", "labels").tau == rep.tau
    shared = s.classify(vectors=q, labels="L")
    acme = s.classify(vectors=q, labels="L", tenant="acme")
    assert sum(p.label is None for p in shared) == sum(lb is None for lb in labels)
    assert sum(p.label is None for p in acme) == round(rep.unknown * len(q)) > sum(lb is None for lb in labels)


def test_bad_targets(cal_setup) -> None:
    s, q, truth, scores, labels = cal_setup
    with pytest.raises(ConfigError, match="target precision 1 is not reachable"):
        calibrate_vectors(s, q, ["c" if t == "a" else "a" for t in truth], "L", target_precision=1.0)
    with pytest.raises(ConfigError, match="target_precision and target_coverage"):
        calibrate_vectors(s, q, truth, "L", target_precision=0.9, target_coverage=0.5)
    with pytest.raises(ConfigError, match="target_coverage=1.5"):
        calibrate_vectors(s, q, truth, "L", target_coverage=1.5)
    with pytest.raises(ConfigError, match="split='test'"):
        calibrate_vectors(s, q, truth, "L", target_coverage=0.5, split="test")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"\['zebra'\] are not in label set"):
        calibrate_vectors(s, q[:2], ["a", "zebra"], "L", target_coverage=0.5)
    with pytest.raises(InvalidInputError, match="for 3 true labels"):
        calibrate_vectors(s, q[:2], ["a", "b", "c"], "L", target_coverage=0.5)
    assert s.relindexes.require("L", "_shared", "labels").tau is None  # nothing stored by a failed call


def test_folder_wrapper(cal_setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s, q, truth, scores, labels = cal_setup
    root = tmp_path / "data"
    order = []
    for c in CLASSES:
        (root / c).mkdir(parents=True)
    for i, t in enumerate(truth):  # files sort by name within a class folder: keep each vector with its image
        Image.new("RGB", (4, 4), (i, 0, 0)).save(root / t / f"{i:03d}.png")
    for c in CLASSES:
        order.extend(i for i, t in enumerate(truth) if t == c)
    seen: list[list[Path]] = []

    def fake_vectors(asif: Asif, paths: list[Path], progress: bool = True) -> np.ndarray:
        seen.append(list(paths))
        return q[[int(p.stem) for p in paths]]

    monkeypatch.setattr("asif_qdrant.evaluation.calibrate.cached_image_vectors", fake_vectors)
    rep = calibrate(s, root, "L", target_precision=0.9, progress=False)
    direct = calibrate_vectors(s, q[order], [truth[i] for i in order], "L", target_precision=0.9, save=False)
    assert len(seen[0]) == len(truth) and rep.tau == direct.tau and rep.accuracy == pytest.approx(direct.accuracy)
    with pytest.raises(InvalidInputError, match="not in label set"):
        (root / "zebra").mkdir()
        Image.new("RGB", (4, 4)).save(root / "zebra" / "z.png")
        calibrate(s, root, "L", target_precision=0.9, progress=False)
    assert len(seen) == 1  # the class check comes before any encoding
