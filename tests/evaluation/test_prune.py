"""Fine pruning: rankings by criterion, copies into a tenant or a prefix, and the no-copy accuracy curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, open_store

from asif_qdrant import Asif, ConfigError, InvalidInputError
from asif_qdrant.engines import Filter, HasId
from asif_qdrant.evaluation.prune import (
    ORIGIN_FIELD,
    copy_points,
    label_weights,
    open_prefix,
    prune,
    prune_curve_vectors,
    random_subset,
    rank_anchors,
    restricted_ranking,
)
from asif_qdrant.evaluation.sweeps import truth_indices
from asif_qdrant.relrep import dense_reference_scores, relative_reps_batch, top_k

CLASSES = ["ant", "bee", "cat", "dog"]
TEMPLATES = ["a {}", "the {}"]
K, P = 6, 4.0


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _setup(a: Asif, rng: np.random.Generator, n: int = 48, tenant: str | None = None):
    img = _unit(rng.standard_normal((n, IMG_DIM)))
    txt = _unit(rng.standard_normal((n, TXT_DIM)))
    ids = a.add_vectors(img, txt, captions=[f"cap {i}" for i in range(n)], payloads=[{"n": i} for i in range(n)],
                        tenant=tenant).ids
    prompts = _unit(rng.standard_normal((len(CLASSES) * len(TEMPLATES), TXT_DIM)))
    a.define_labels("L", CLASSES, TEMPLATES, prompt_vectors=prompts, tenant=tenant, k=K, p=P)
    return np.asarray(ids, np.int64), img, txt, prompts


def _reference(img, txt, ids, keep_ids, queries, prompts):
    """Label scores (max over templates) of a store holding only ``keep_ids``, densely in float64."""
    sel = np.isin(ids, keep_ids)
    s = dense_reference_scores(queries, img[sel], prompts, txt[sel], K, P, anchor_ids=ids[sel])
    return s.reshape(len(queries), len(CLASSES), len(TEMPLATES)).max(axis=2)


def _check_predictions(preds, ref: np.ndarray) -> None:
    for b, pred in enumerate(preds):
        want = [CLASSES[c] for c in np.lexsort((np.arange(len(CLASSES)), -ref[b])) if ref[b, c] > 0]
        assert [s.label for s in pred.top] == want[: len(pred.top)]
        np.testing.assert_allclose([s.score for s in pred.top], np.sort(ref[b][ref[b] > 0])[::-1][: len(pred.top)],
                                   atol=1e-5)


def test_label_weight_is_the_sum_of_prompt_rep_values(store: Asif, rng: np.random.Generator) -> None:
    ids, img, txt, prompts = _setup(store, rng)
    sims = prompts.astype(np.float64) @ txt.astype(np.float64).T
    tk_ids, tk_sims = top_k(sims, K, ids=ids)
    reps = relative_reps_batch(tk_ids, tk_sims, P)
    want: dict[int, float] = {}
    for r in reps:
        for i, v in zip(r.indices.tolist(), r.values.tolist(), strict=True):
            want[i] = want.get(i, 0.0) + v
    info = store.relindexes.require("L", "_shared")
    got = label_weights(store, info)
    assert set(got) == set(want)
    np.testing.assert_allclose([got[i] for i in sorted(want)], [want[i] for i in sorted(want)], atol=1e-6)
    ranked, scores = rank_anchors(store, "L")
    assert sorted(ranked.tolist()) == sorted(ids.tolist())  # every anchor is ranked
    exp = sorted(ids.tolist(), key=lambda i: (-round(want.get(i, 0.0), 6), i))
    assert ranked.tolist() == exp
    zero = scores == 0
    assert zero.any() and (np.diff(ranked[zero]) > 0).all()  # zero weights: smaller id first
    assert (np.diff(scores) <= 1e-12).all()


def test_image_contribution_ranking(store: Asif, rng: np.random.Generator) -> None:
    ids, img, txt, prompts = _setup(store, rng)
    sample = _unit(rng.standard_normal((9, IMG_DIM)))
    with pytest.raises(ConfigError, match="sample"):
        rank_anchors(store, "L", "image_contribution")
    with pytest.raises(ConfigError, match="criterion 'nope'"):
        rank_anchors(store, "L", "nope")
    ranked, scores = rank_anchors(store, "L", "image_contribution", sample_vectors=sample)
    # reference: per image, the best prompt (max aggregation), then image value x prompt value per shared anchor
    qs, ps = sample.astype(np.float64) @ img.astype(np.float64).T, prompts.astype(np.float64) @ txt.astype(np.float64).T
    qr = relative_reps_batch(*top_k(qs, K, ids=ids), P)
    pr = relative_reps_batch(*top_k(ps, K, ids=ids), P)
    qd = np.stack([r.to_dense(ids) for r in qr])  # columns: the anchors, in ``ids`` order
    pd = np.stack([r.to_dense(ids) for r in pr])
    sc = qd @ pd.T
    want = np.zeros(ids.size)
    for b in range(len(sample)):
        if sc[b].max() <= 0:
            continue
        lab = sc[b].reshape(len(CLASSES), len(TEMPLATES)).max(axis=1)
        c = int(np.lexsort((np.arange(len(CLASSES)), -lab))[0])
        j = c * len(TEMPLATES) + int(np.argmax(sc[b, c * len(TEMPLATES) : (c + 1) * len(TEMPLATES)]))
        want += qd[b] * pd[j]
    col = {int(i): c for c, i in enumerate(ids.tolist())}
    np.testing.assert_allclose(scores, want[[col[int(i)] for i in ranked]], atol=1e-6)
    assert scores[0] == pytest.approx(want.max(), abs=1e-6) and scores[0] > 0
    assert scores.sum() == pytest.approx(want.sum(), abs=1e-5)


def test_prune_into_prefix_equals_restricted_queries(store: Asif, rng: np.random.Generator) -> None:
    ids, img, txt, prompts = _setup(store, rng)
    q0 = _unit(rng.standard_normal((3, IMG_DIM)))
    before = [p.as_dict() for p in store.classify(vectors=q0, labels="L")]
    rep = prune(store, "L", 20, into_prefix="pr_")
    assert rep.kept == 20 and rep.source_anchors == 48 and rep.target_ids == rep.ids
    assert "copied to prefix 'pr_'" in rep.summary()
    # the original is untouched
    assert store.count() == 48 and store.relindexes.require("L", "_shared").extra["anchors"] == 48
    pruned = open_prefix(store, "pr_")
    assert pruned.count() == 20 and pruned.fingerprint == store.fingerprint
    kept = np.array(sorted(rep.ids))
    src = {r.id: r for r in store.engine.retrieve(store.anchors.collection, kept.tolist(), with_vectors=("image",))}
    dst = {r.id: r for r in pruned.engine.retrieve(pruned.anchors.collection, kept.tolist(), with_vectors=("image",))}
    assert set(dst) == set(kept.tolist())
    for i in kept.tolist():
        assert dst[i].payload == src[i].payload
        np.testing.assert_array_equal(dst[i].vectors["image"], src[i].vectors["image"])
    info = pruned.relindexes.require("L", "_shared")
    assert (info.k, info.p, info.classes, info.templates, info.extra["anchors"]) == (K, P, CLASSES, TEMPLATES, 20)
    q = _unit(rng.standard_normal((12, IMG_DIM)))
    got = pruned.classify(vectors=q, labels="L", top=4)
    _check_predictions(got, _reference(img, txt, ids, kept, q, prompts))
    # the no-copy path (HasId restriction) ranks the same labels with the same scores
    ranked = restricted_ranking(store, store.relindexes.require("L", "_shared"), q, kept, "_shared")
    for b, pred in enumerate(got):
        assert [CLASSES[c] for c in ranked.top[b] if c >= 0][: len(pred.top)] == [s.label for s in pred.top]
        np.testing.assert_allclose(ranked.scores[b][: len(pred.top)], [s.score for s in pred.top], atol=1e-5)
    # the original still answers as before
    after = [p.as_dict() for p in store.classify(vectors=q0, labels="L")]
    assert [[t["label"] for t in p["top"]] for p in after] == [[t["label"] for t in p["top"]] for p in before]
    np.testing.assert_allclose([p["score"] for p in after], [p["score"] for p in before], atol=1e-6)
    with pytest.raises(ConfigError, match="already holds 20 anchors"):
        prune(store, "L", 10, into_prefix="pr_")


def test_prune_curve_matches_copies(store: Asif, rng: np.random.Generator) -> None:
    ids, img, txt, prompts = _setup(store, rng)
    q = _unit(rng.standard_normal((30, IMG_DIM)))
    full = store.classify(vectors=q, labels="L")
    truth = [p.label or CLASSES[0] for p in full]  # the full model's answers: 100 % at "all"
    truth[:6] = [CLASSES[(CLASSES.index(t) + 1) % 4] for t in truth[:6]]  # and some wrong ones
    curve = prune_curve_vectors(store, "L", q, truth, keeps=[100, 24, 8], seed=3)
    assert [(r.keep, r.kept, r.selection) for r in curve.rows] == [
        (100, 48, "label_weight"), (100, 48, "random"), (24, 24, "label_weight"), (24, 24, "random"),
        (8, 8, "label_weight"), (8, 8, "random"),
    ]
    assert curve.rows[0].top1 == pytest.approx(24 / 30) and curve.rows[1].top1 == curve.rows[0].top1
    assert "label_weight" in curve.table()
    # each pruned point equals the accuracy of a real copy holding only those anchors
    ranked, _ = rank_anchors(store, "L")
    for i, (keep, subset) in enumerate([(24, np.sort(ranked[:24])), (8, random_subset(ranked, 8, 3))]):
        prefix = f"c{i}_"
        target = open_prefix(store, prefix)
        copy_points(store.engine, store.anchors.collection, target.anchors.collection,
                    filter=Filter(must=(HasId(tuple(subset.tolist())),)))
        target.meta.bump_revision("_shared")
        target.define_labels("L", CLASSES, TEMPLATES, prompt_vectors=prompts, k=K, p=P)
        preds = target.classify(vectors=q, labels="L")
        acc = float(np.mean([p.label == t for p, t in zip(preds, truth, strict=True)]))
        row = [r for r in curve.rows if r.keep == keep][0 if i == 0 else 1]
        assert row.top1 == pytest.approx(acc)
    tidx = truth_indices(truth, CLASSES)
    assert (tidx >= 0).all()


def test_prune_into_tenant(engine_kind: str, tmp_path: Path, request: pytest.FixtureRequest,
                           rng: np.random.Generator) -> None:
    a = open_store(engine_kind, tmp_path, request)
    try:
        ids, img, txt, prompts = _setup(a, rng, tenant="acme")
        rep = prune(a, "L", 15, into_tenant="acme-small", tenant="acme")
        assert rep.kept == 15 and a.count("acme-small") == 15 and a.count("acme") == 48
        recs = list(a.engine.scroll(a.anchors.collection, with_payload=True))
        small = [r for r in recs if r.payload["tenant"] == "acme-small"]
        assert sorted(r.payload[ORIGIN_FIELD] for r in small) == sorted(rep.ids)
        by_origin = {r.payload[ORIGIN_FIELD]: r for r in small}
        src = {r.id: r for r in recs if r.payload["tenant"] == "acme"}
        for i in rep.ids:
            assert by_origin[i].payload["caption"] == src[i].payload["caption"]
            assert by_origin[i].payload["n"] == src[i].payload["n"]
        assert sorted(rep.target_ids) == sorted(r.id for r in small)
        q = _unit(rng.standard_normal((10, IMG_DIM)))
        got = a.classify(vectors=q, labels="L", tenant="acme-small", top=4)
        _check_predictions(got, _reference(img, txt, ids, np.array(rep.ids), q, prompts))
        with pytest.raises(ConfigError, match="already has 15 anchors"):
            prune(a, "L", 5, into_tenant="acme-small", tenant="acme")
        a.add_vectors(_unit(rng.standard_normal((1, IMG_DIM))), _unit(rng.standard_normal((1, TXT_DIM))))
        with pytest.raises(ConfigError, match="1 shared anchors plus its own"):
            prune(a, "L", 5, into_tenant="other", tenant="acme")
    finally:
        a.close()


def test_prune_errors(store: Asif, rng: np.random.Generator) -> None:
    _setup(store, rng, n=12)
    with pytest.raises(ConfigError, match="exactly one target"):
        prune(store, "L", 5)
    with pytest.raises(ConfigError, match="exactly one target"):
        prune(store, "L", 5, into_tenant="x", into_prefix="y_")
    with pytest.raises(ConfigError, match="keep=0"):
        prune(store, "L", 0, into_prefix="y_")
    with pytest.raises(ConfigError, match="this store's own"):
        prune(store, "L", 5, into_prefix=store.settings.prefix)
    with pytest.raises(ConfigError, match="keeps="):
        prune_curve_vectors(store, "L", np.ones((1, IMG_DIM)), ["ant"], keeps=[0])
    with pytest.raises(InvalidInputError, match="got 2 labels for 1"):
        prune_curve_vectors(store, "L", np.ones((1, IMG_DIM)), ["ant", "bee"], keeps=[5])
    rep = prune(store, "L", 100, into_prefix="all_")  # more than there are: keeps every anchor
    assert rep.kept == 12 and rep.keep == 100


def test_cli_prune(tmp_path: Path, rng: np.random.Generator) -> None:
    import json

    from click.testing import CliRunner
    from conftest import small_settings

    from asif_qdrant.cli import main

    path = tmp_path / "s"
    with Asif.open(path, **small_settings()) as a:
        _setup(a, rng, n=30)
    r = CliRunner().invoke(main, ["--path", str(path), "prune", "--labels", "L", "--keep", "12", "--into-prefix",
                                  "small_", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["kept"], out["source_anchors"], out["into_prefix"], len(out["ids"])) == (12, 30, "small_", 12)
    r = CliRunner().invoke(main, ["--path", str(path), "--prefix", "small_", "stats", "--json"])
    assert r.exit_code == 0 and '"anchors": 12' in r.output
    r = CliRunner().invoke(main, ["--path", str(path), "prune", "--labels", "L", "--keep", "5"])
    assert r.exit_code == 2 and "exactly one of --into TENANT and --into-prefix PREFIX" in r.output
    r = CliRunner().invoke(main, ["--path", str(path), "prune", "--labels", "L", "--keep", "5", "--into-prefix",
                                  "small_"])
    assert r.exit_code == 1 and "already holds 12 anchors" in r.output
    r = CliRunner().invoke(main, ["--path", str(path), "optimize"])
    assert r.exit_code == 0 and "search: exact; nothing to build" in r.output
