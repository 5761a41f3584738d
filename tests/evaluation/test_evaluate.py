"""Evaluation sources, sweeps, the anchor curve, validated tuning and retrieval recall (small precomputed vectors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, open_store, random_pairs

from asif_qdrant import Asif, ConfigError, InvalidInputError, NotFoundError
from asif_qdrant.evaluation import evaluate as ev
from asif_qdrant.evaluation import sweeps, tune
from asif_qdrant.evaluation.retrieval import recall_table, retrieval_recall, retrieval_recall_vectors
from asif_qdrant.evaluation.sweeps import (
    GridScorer,
    Setting,
    anchor_ids,
    curve_vectors,
    nested_subsets,
    parse_sizes,
    parse_sweep,
    plot_curve,
    prompt_sets,
    run_sweep,
    sparse_scores,
    sweep_settings,
)
from asif_qdrant.evaluation.tune import LabelledVectors, split_per_class, tune_split
from asif_qdrant.relrep import dense_reference_scores, relative_rep, sparse_dot

CLASSES = ["cat", "dog", "sea lion"]
N_PHOTO = 8


@pytest.fixture
def local(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    a = open_store("local", tmp_path, request)
    yield a
    a.close()


def _data(rng: np.random.Generator, n_anchors: int = 60, n_images: int = 30) -> dict[str, Any]:
    img, txt = random_pairs(rng, n_anchors)
    return {
        "img": img, "txt": txt,
        "photo": rng.standard_normal((len(CLASSES) * N_PHOTO, TXT_DIM)),
        "plain": rng.standard_normal((len(CLASSES), TXT_DIM)),
        "q": rng.standard_normal((n_images, IMG_DIM)),
        "truth": [CLASSES[i % len(CLASSES)] for i in range(n_images)],
    }


def _classify_ranked(a: Asif, q: np.ndarray, s: Setting, pv: dict[str, np.ndarray]) -> list[Any]:
    a.define_labels("L", CLASSES, templates=s.templates, prompt_vectors=pv[s.templates], k=s.k, p=s.p,
                    aggregation=s.aggregation, replace=True)
    return a.classify(vectors=q, labels="L", top=5)


# -- sweeps -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine_kind", ["edge", "local"])
def test_sweep_cut_from_largest_k_equals_separate_runs(
    engine_kind: str, tmp_path: Path, request: pytest.FixtureRequest, rng: np.random.Generator
) -> None:
    a = open_store(engine_kind, tmp_path, request)
    d = _data(rng)
    a.add_vectors(d["img"], d["txt"])
    pv = {"photo": d["photo"], "plain": d["plain"]}
    axes = {"k": [3, 10, 70], "p": [1, 8], "templates": ["photo", "plain"], "aggregation": ["max", "mean"]}
    settings = sweeps.grid(axes)
    assert len(settings) == 24
    prompts = prompt_sets(a, CLASSES, ["photo", "plain"], pv)
    scorer = GridScorer(a, d["q"], CLASSES, prompts, 70)
    rows = sweep_settings(a, d["q"], d["truth"], CLASSES, settings, prompt_vectors=pv)
    for s, row in zip(settings, rows, strict=True):
        preds = _classify_ranked(a, d["q"], s, pv)
        got = scorer.ranked(s)
        for i, pred in enumerate(preds):
            assert got.labels(CLASSES)[i] == ([t.label for t in pred.top] or [None])
            np.testing.assert_allclose(got.scores[i][: len(pred.top)], [t.score for t in pred.top], atol=1e-6)
        assert row.top1 == pytest.approx(np.mean([p.label == t for p, t in zip(preds, d["truth"], strict=True)]))
        assert row.top5 == pytest.approx(np.mean([t in [x.label for x in p.top]
                                                  for p, t in zip(preds, d["truth"], strict=True)]))
    a.close()


def test_sparse_scores_equal_sparse_dot(rng: np.random.Generator) -> None:
    def rep(n: int) -> Any:
        ids = rng.choice(200, size=n, replace=False)
        return relative_rep(ids, rng.random(n), 2.0)

    qs = [rep(int(n)) for n in rng.integers(0, 30, 17)]
    its = [rep(int(n)) for n in rng.integers(0, 40, 9)]
    want = np.array([[sparse_dot(q, it) for it in its] for q in qs])
    np.testing.assert_allclose(sparse_scores(qs, its), want, atol=1e-12)
    assert sparse_scores([], its).shape == (0, 9)


def test_sweep_vectors_keeps_its_signature(local: Asif, rng: np.random.Generator) -> None:
    d = _data(rng)
    local.add_vectors(d["img"], d["txt"])
    cache = {"plain": d["plain"]}
    rows = sweeps.sweep_vectors(local, d["q"], d["truth"], CLASSES, [5, 20], [1, 4], template_sets=("plain",),
                            aggregations=("max", "mean"), prompt_cache=cache)
    assert [(r.k, r.p, r.aggregation) for r in rows] == [(k, p, g) for k in (5, 20) for p in (1.0, 4.0)
                                                         for g in ("max", "mean")]
    assert all(0 <= r.top1 <= r.top5 <= 1 and r.n == 30 for r in rows)


def _image_folder(root: Path, truth: list[str]) -> dict[str, int]:
    """One empty .png per image under root/<class with _>/NNN.png; returns file name -> vector row."""
    where = {}
    for i, t in enumerate(truth):
        folder = root / t.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.png").write_bytes(b"")
        where[f"{i:03d}.png"] = i
    return where


def _fake_vectors(monkeypatch: pytest.MonkeyPatch, q: np.ndarray, calls: list[int] | None = None) -> None:
    def fake(asif: Asif, data: ev.LabelledImages, progress: bool = True) -> np.ndarray:
        if calls is not None:
            calls.append(len(data))
        return q[[int(p.stem) for p in data.paths]]

    for mod in ("asif_qdrant.evaluation.sweeps", "asif_qdrant.evaluation.tune"):
        monkeypatch.setattr(f"{mod}.labelled_vectors", fake)


def test_run_sweep_on_a_folder(local: Asif, rng: np.random.Generator, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    d = _data(rng)
    local.add_vectors(d["img"], d["txt"])
    local.define_labels("L", CLASSES, templates="plain", prompt_vectors=d["plain"], k=10, p=4)
    _image_folder(tmp_path / "imgs", d["truth"])
    calls: list[int] = []
    _fake_vectors(monkeypatch, d["q"], calls)
    rep = run_sweep(local, tmp_path / "imgs", "L", parse_sweep(["k=5,20", "p=1,8"]))
    assert calls == [30]  # encoded once for the whole sweep
    assert [(r.k, r.p, r.templates, r.aggregation) for r in rep.rows] == [
        (k, p, "plain", "max") for k in (5, 20) for p in (1.0, 8.0)]
    # the label set's own (stored) prompt vectors are used: no text encoder is needed; same as classify
    local.define_labels("L2", CLASSES, templates="plain", prompt_vectors=d["plain"], k=20, p=8)
    order = np.argsort([f"{t}/{i:03d}" for i, t in enumerate(d["truth"])], kind="stable")
    preds = local.classify(vectors=d["q"][order], labels="L2")
    want = np.mean([p.label == d["truth"][i] for p, i in zip(preds, order, strict=True)])
    assert rep.rows[-1].top1 == pytest.approx(want)
    assert "<- best" in rep.table() and json.loads(rep.to_json())["best"]["top1"] == rep.best.top1


@pytest.mark.parametrize("spec,msg", [
    (["x=1,2"], "sweep key 'x' is unknown"),
    (["k=0"], "k='0' is invalid"),
    (["k=2.5"], "k='2.5' is invalid"),
    (["p=-1"], "p='-1' is invalid"),
    (["aggregation=median"], "aggregation 'median' is invalid"),
    (["templates=nope"], "templates 'nope' is not a built-in set"),
    (["k"], "malformed"),
    (["k=1", "k=2"], "given twice"),
])
def test_bad_sweeps_are_clear_errors(spec: list[str], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        parse_sweep(spec)


# -- evaluation sources -----------------------------------------------------------------------------------
def _write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def test_read_labelled_csv_jsonl_and_mapping(tmp_path: Path) -> None:
    _write_images(tmp_path / "images", ["a.jpg", "b.jpg", "c.jpg"])
    (tmp_path / "set.csv").write_text("image,label\na.jpg,sea_lion\nimages/b.jpg,dog\nc.jpg,sea_lion\n")
    data = ev.read_labelled(tmp_path / "set.csv")
    assert [p.name for p in data.paths] == ["a.jpg", "b.jpg", "c.jpg"]
    assert data.labels == ["sea lion", "dog", "sea lion"] and data.classes == ["dog", "sea lion"]
    rows = [{"image": str(tmp_path / "images" / "a.jpg"), "class": "cat_x"}, {"image": "b.jpg", "class": "dog"}]
    (tmp_path / "set.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "map.json").write_text(json.dumps({"cat_x": "cat"}))
    data = ev.read_labelled(tmp_path / "set.jsonl", mapping=tmp_path / "map.json")
    assert data.labels == ["cat", "dog"]
    (tmp_path / "map.tsv").write_text("folder\tclass\ncat x\tkitty\n")  # header skipped; cleaned key accepted
    assert ev.read_labelled(tmp_path / "set.jsonl", mapping=tmp_path / "map.tsv").labels == ["kitty", "dog"]


def test_read_labelled_folder_mapping_and_sample(tmp_path: Path) -> None:
    for c, n in (("sea_lion", 6), ("dog", 4)):
        _write_images(tmp_path / c, [f"{i}.png" for i in range(n)])
    (tmp_path / "map.csv").write_text("dog,puppy\n")
    data = ev.read_labelled(tmp_path, mapping=tmp_path / "map.csv")
    assert data.classes == ["puppy", "sea lion"] and data.labels.count("sea lion") == 6
    s1 = ev.read_labelled(tmp_path, limit=4, seed=3)
    s2 = ev.read_folder_per_class(tmp_path, limit=4, seed=3)
    assert s1.paths == s2.paths and s1.labels.count("dog") == 2 and s1.labels.count("sea lion") == 2
    assert s1.universe is not None and [s1.universe[i] for i in s1.positions or []] == s1.paths


def test_read_labelled_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no class sub-folders"):
        ev.read_labelled(tmp_path / "empty")
    (tmp_path / "empty" / "cat").mkdir()
    with pytest.raises(InvalidInputError, match="has no images"):
        ev.read_labelled(tmp_path / "empty")
    with pytest.raises(NotFoundError, match="does not exist"):
        ev.read_labelled(tmp_path / "missing")
    _write_images(tmp_path / "f" / "cat", ["1.png"])
    (tmp_path / "map.json").write_text(json.dumps({"zebra": "horse"}))
    with pytest.raises(InvalidInputError, match="class map names 'zebra'.*cat"):
        ev.read_labelled(tmp_path / "f", mapping=tmp_path / "map.json")
    (tmp_path / "bad.csv").write_text("img,lab\nx.png,cat\n")
    with pytest.raises(InvalidInputError, match="needs an image column"):
        ev.read_labelled(tmp_path / "bad.csv")
    (tmp_path / "gone.csv").write_text("image,label\nnope.png,cat\n")
    with pytest.raises(InvalidInputError, match="line 2: image 'nope.png' does not exist"):
        ev.read_labelled(tmp_path / "gone.csv")
    (tmp_path / "map3.csv").write_text("a,b,c\n")
    with pytest.raises(InvalidInputError, match="has 3 fields"):
        ev.read_class_map(tmp_path / "map3.csv")


# -- anchor curve ----------------------------------------------------------------------------------------
def test_nested_subsets_are_prefixes() -> None:
    ids = np.array([9, 3, 7, 1, 5, 11, 2, 8])
    subs = nested_subsets(ids, [2, 4, 8], seed=1)
    assert [s.size for s in subs] == [2, 4, 8]
    assert set(subs[0]) <= set(subs[1]) <= set(subs[2]) == set(ids.tolist())
    assert all((np.diff(s) > 0).all() for s in subs)
    assert [s.tolist() for s in nested_subsets(ids, [2, 4, 8], seed=1)] == [s.tolist() for s in subs]


@pytest.mark.parametrize("correction", ["none", "mean"])
def test_subset_model_equals_a_store_with_only_that_subset(
    local: Asif, rng: np.random.Generator, tmp_path: Path, request: pytest.FixtureRequest, correction: str
) -> None:
    d = _data(rng, n_anchors=50)
    ids = np.array(local.add_vectors(d["img"], d["txt"]).ids)
    assert anchor_ids(local).tolist() == sorted(ids.tolist())
    sub = nested_subsets(anchor_ids(local), [20], seed=4)[0]
    pos = np.searchsorted(ids, sub) if (np.diff(ids) > 0).all() else np.array([ids.tolist().index(i) for i in sub])
    setting = Setting(6, 4.0, "plain", "max", correction)
    prompts = prompt_sets(local, CLASSES, ["plain"], {"plain": d["plain"]})
    scorer = GridScorer(local, d["q"], CLASSES, prompts, setting.k, restrict=sub)
    got = scorer.ranked(setting)
    ref = dense_reference_scores(d["q"], d["img"][pos], d["plain"], d["txt"][pos], setting.k, setting.p,
                                 anchor_ids=sub)
    np.testing.assert_allclose(scorer.scores("plain", 6, 4.0), ref, atol=1e-6)
    small = Asif.open(url=":memory:", image_encoder=f"precomputed:img:{IMG_DIM}",
                      text_encoder=f"precomputed:txt:{TXT_DIM}")
    small.add_vectors(d["img"][pos], d["txt"][pos], ids=sub.tolist())
    small.define_labels("L", CLASSES, templates="plain", prompt_vectors=d["plain"], k=6, p=4.0, correction=correction)
    preds = small.classify(vectors=d["q"], labels="L")
    assert got.labels(CLASSES) == [[t.label for t in p.top] or [None] for p in preds]
    rep = curve_vectors(local, d["q"], d["truth"], CLASSES, [20, "all"], [4], setting=setting,
                        prompt_vectors={"plain": d["plain"]})
    assert rep.points[0].top1 == pytest.approx(np.mean([p.label == t for p, t in zip(preds, d["truth"], strict=True)]))
    small.close()


def test_curve_report_and_plot(local: Asif, rng: np.random.Generator, tmp_path: Path) -> None:
    d = _data(rng, n_anchors=40)
    local.add_vectors(d["img"], d["txt"])
    setting = Setting(8, 8.0, "photo", "max")
    rep = curve_vectors(local, d["q"], d["truth"], CLASSES, "10,20,all", 2, setting=setting,
                        prompt_vectors={"photo": d["photo"]}, labels="L")
    assert sorted((p.anchors, p.seed) for p in rep.points) == [(n, s) for n in (10, 20, 40) for s in (0, 1)]
    full = [p.top1 for p in rep.points if p.anchors == 40]
    assert full[0] == full[1]  # 'all' is the same set for every seed
    summ = rep.summary()
    assert [r["anchors"] for r in summ] == [10, 20, 40] and all(r["top1_min"] <= r["top1_mean"] <= r["top1_max"]
                                                                for r in summ)
    assert rep.chance == pytest.approx(1 / 3) and "random guess: 0.3333" in rep.table()
    out = plot_curve(rep, tmp_path / "curve.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="more than the 40 anchors"):
        curve_vectors(local, d["q"], d["truth"], CLASSES, [100], 1, setting=setting,
                      prompt_vectors={"photo": d["photo"]})
    with pytest.raises(ConfigError, match="anchor count 'x' is invalid"):
        parse_sizes("10,x")


# -- validated tuning -------------------------------------------------------------------------------------
def test_split_per_class() -> None:
    truth = ["a"] * 10 + ["b"] * 5 + ["c"]
    v, t = split_per_class(truth, 0.3, seed=2)
    assert set(v.tolist()).isdisjoint(t.tolist()) and sorted(v.tolist() + t.tolist()) == list(range(16))
    assert [truth[i] for i in v].count("a") == 3 and [truth[i] for i in v].count("b") == 2
    assert split_per_class(truth, 0.3, seed=2)[0].tolist() == v.tolist()
    with pytest.raises(ConfigError, match="val_fraction=1.5 is invalid"):
        split_per_class(truth, 1.5)


class _GuardedSplit(LabelledVectors):
    """A test split that fails the test if it is read while the tuner runs."""

    def __init__(self, base: LabelledVectors, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_state", state)

    def __getattribute__(self, name: str) -> Any:
        if name in ("vectors", "truth", "take", "__len__"):
            st = object.__getattribute__(self, "_state")
            assert not st["tuning"], f"the test split's {name} was read during tuning"
            st["reads"] += 1
            return getattr(object.__getattribute__(self, "_base"), name)
        return object.__getattribute__(self, name)

    def __len__(self) -> int:
        return len(self.truth)


def test_tuning_never_reads_the_test_split(local: Asif, rng: np.random.Generator,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    d = _data(rng, n_images=40)
    local.add_vectors(d["img"], d["txt"])
    allv = LabelledVectors(d["q"], d["truth"])
    vi, ti = split_per_class(d["truth"], 0.5, seed=0)
    val, test = allv.take(vi), allv.take(ti)
    pv = {"photo": d["photo"], "plain": d["plain"]}
    settings = sweeps.grid({"k": [4, 30], "p": [1, 8], "templates": ["photo", "plain"], "aggregation": ["max", "mean"]})
    default = Setting(30, 8.0, "photo", "max")
    state = {"tuning": False, "reads": 0}
    real = tune.tune_vectors

    def watched(*args: Any, **kw: Any) -> Any:
        state["tuning"] = True
        try:
            return real(*args, **kw)
        finally:
            state["tuning"] = False

    monkeypatch.setattr(tune, "tune_vectors", watched)
    choice, test_rows = tune_split(local, val, _GuardedSplit(test, state), CLASSES, settings, default=default,
                                   prompt_vectors=pv)
    assert state["reads"] > 0  # read after the choice was fixed
    # poisoned test labels (all wrong) and random test vectors change nothing in the choice
    poisoned = LabelledVectors(rng.standard_normal(test.vectors.shape), ["nope"] * len(test))
    choice2, rows2 = tune_split(local, val, poisoned, CLASSES, settings, default=default, prompt_vectors=pv)
    assert choice2.best == choice.best and [r.as_dict() for r in choice2.rows] == [r.as_dict() for r in choice.rows]
    assert all(r.top1 == 0 for r in rows2)
    best = choice.rows[0]
    assert best.top1 == max(r.top1 for r in choice.rows)
    direct = sweep_settings(local, test.vectors, test.truth, CLASSES, [default, choice.best], prompt_vectors=pv)
    assert [r.as_dict() for r in direct] == [r.as_dict() for r in test_rows]


def test_tune_stores_the_choice(local: Asif, rng: np.random.Generator, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    d = _data(rng, n_images=36)
    local.add_vectors(d["img"], d["txt"])
    local.define_labels("L", CLASSES, templates="photo", prompt_vectors=d["photo"], k=800, p=8)
    _image_folder(tmp_path / "imgs", d["truth"])
    _fake_vectors(monkeypatch, d["q"])
    rep = tune.tune(local, tmp_path / "imgs", "L", val_fraction=0.5, seed=1,
                    sweeps={"k": [3, 12, 800], "p": [1, 8], "templates": ["photo"]})
    info = local.relindexes.require("L", "_shared", "labels")
    assert (info.k, info.p, info.aggregation) == (rep.tuned.k, rep.tuned.p, rep.tuned.aggregation)
    assert info.classes == CLASSES and info.extra["tuned"]["setting"] == rep.tuned.as_dict()
    assert rep.n_val + rep.n_test == 36 and rep.default == Setting(800, 3.0, "photo", "max", "none")
    assert rep.val_tuned.top1 >= rep.val_default.top1 and "gain on the test split" in rep.table()
    preds = local.classify(vectors=d["q"], labels="L")  # the stored label set answers with the tuned settings
    assert len(preds) == 36
    with pytest.raises(ConfigError, match="sweep key 'q' is unknown"):
        tune.tune(local, tmp_path / "imgs", "L", sweeps={"q": [1]})


# -- retrieval ---------------------------------------------------------------------------------------------
def _unit(dim: int, *pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(dim)
    for i, x in pairs:
        v[i] = x
    return v


def _retrieval_case() -> dict[str, Any]:
    # anchors j = 0..5: image e_j <-> text e_j. Held-out images A = e0, B = e1, C = e2.
    # captions: a1 = e0, a2 = 0.6 e0 + 0.8 e1 (closer to B), b1 = e1, c1 = e3 (matches no held-out image)
    return {
        "anchors_img": np.eye(IMG_DIM)[:6], "anchors_txt": np.eye(TXT_DIM)[:6],
        "images": np.stack([_unit(IMG_DIM, (0, 1)), _unit(IMG_DIM, (1, 1)), _unit(IMG_DIM, (2, 1))]),
        "captions": np.stack([_unit(TXT_DIM, (0, 1)), _unit(TXT_DIM, (0, 0.6), (1, 0.8)), _unit(TXT_DIM, (1, 1)),
                              _unit(TXT_DIM, (3, 1))]),
        "owner": [0, 0, 1, 2],
    }


def test_retrieval_recall_hand_checked(local: Asif) -> None:
    c = _retrieval_case()
    local.add_vectors(c["anchors_img"], c["anchors_txt"], ids=list(range(6)))
    r = retrieval_recall_vectors(local, c["images"], c["captions"], c["owner"], k=2, p=1)
    # caption -> image: a1 -> A first; a2 ranks B (0.8) before A (0.6); b1 -> B first; c1 shares nothing with C
    assert r["caption_to_image"]["R@1"] == pytest.approx(2 / 4)
    assert r["caption_to_image"]["R@5"] == pytest.approx(3 / 4) == r["caption_to_image"]["R@10"]
    assert r["caption_to_image"]["not_found"] == pytest.approx(1 / 4)
    # image -> caption: A's a1 first, B's b1 first (b1 = 1 > a2 = 0.8), C's c1 scores 0: not found
    assert r["image_to_caption"]["R@1"] == pytest.approx(2 / 3) == r["image_to_caption"]["R@10"]
    # an anchor pair made of C's own image and caption leaks the answer unless it is excluded
    local.add_vectors(c["images"][2:3], c["captions"][3:4], ids=[100])
    leak = retrieval_recall_vectors(local, c["images"], c["captions"], c["owner"], k=2, p=1)
    assert leak["image_to_caption"]["R@1"] == pytest.approx(1.0)
    clean = retrieval_recall_vectors(local, c["images"], c["captions"], c["owner"], k=2, p=1, exclude_ids=[100])
    assert clean["image_to_caption"] == r["image_to_caption"] and clean["anchors_used"] == 6
    assert "image -> caption" in recall_table(clean)


def test_retrieval_recall_from_a_captions_file(local: Asif, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _retrieval_case()
    _write_images(tmp_path, ["A.jpg", "B.jpg", "C.jpg", "D.jpg"])
    caps = ["a one", "a two", "b one", "c one", "d one"]
    refs = ["A.jpg", "A.jpg", "B.jpg", "C.jpg", "D.jpg"]
    (tmp_path / "captions.tsv").write_text("image\tcaption\n" + "".join(f"{r}\t{t}\n" for r, t in zip(refs, caps,
                                                                                                      strict=True)))
    img_of = {"A": c["images"][0], "B": c["images"][1], "C": c["images"][2], "D": _unit(IMG_DIM, (5, 1))}
    txt_of = dict(zip(caps, [*c["captions"], _unit(TXT_DIM, (5, 1))], strict=True))

    def fake(asif: Asif, modality: str, items: list[Any], keys: list[bytes]) -> np.ndarray:
        return np.stack([img_of[Path(i).stem] if modality == "image" else txt_of[i] for i in items])

    monkeypatch.setattr("asif_qdrant.evaluation.retrieval._cached_encode", fake)
    local.add_vectors(c["anchors_img"], c["anchors_txt"], ids=list(range(6)))
    local.add_vectors(c["images"][2:3], c["captions"][3:4], ids=[100], image_refs=["C.jpg"])  # C's own pair
    r = retrieval_recall(local, tmp_path / "captions.tsv", holdout=3, seed=0, k=2, p=1)
    # seed 0 holds out B, C and D (one caption each); C's own pair (anchor 100, image_ref C.jpg) is excluded, so
    # "c one" (e3) shares no anchor with C (e2): 2 of 3 found each way, at rank 1
    assert (r["n_images"], r["n_captions"], r["anchors_excluded"], r["anchors_used"]) == (3, 3, 1, 6)
    assert r["image_to_caption"]["R@1"] == pytest.approx(2 / 3) == r["caption_to_image"]["R@1"]
    assert r["caption_to_image"]["not_found"] == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="holdout=4 is invalid"):
        retrieval_recall(local, tmp_path / "captions.tsv", holdout=4)


def test_a_nil_first_class_abstains_in_the_sweeps_as_in_classify() -> None:
    # two images, classes a b c, one template each; c is nil. Corrected scores (raw - shift): image 0 ranks c first
    # (abstains: ranking kept, answer unknown, not counted right), image 1 ranks a first (answers a)
    raw = np.array([[0.2, 0.1, 0.9], [0.8, 0.1, 0.3]])
    shift, scale = np.array([0.1, 0.1, 0.1]), np.ones(3)
    nil = np.array([False, False, True])
    r = sweeps.rank_labels(raw, ["a", "b", "c"], 1, "max", shift, scale, nil)
    assert r.labels(["a", "b", "c"]) == [["c", "a", "b"], ["a", "c", "b"]]
    assert r.abstain is not None and r.abstain.tolist() == [True, False]
    top1, top5, unknown = sweeps.accuracy(r, np.array([2, 0]))
    assert (top1, top5, unknown) == (0.5, 0.5, 0.5)
    plain = sweeps.rank_labels(raw, ["a", "b", "c"], 1, "max", nil=nil)  # no correction: no abstention
    assert plain.abstain is None and sweeps.accuracy(plain, np.array([2, 0]))[0] == 1.0
