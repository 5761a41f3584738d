"""Taggings: a user's collection labelled in its payloads, equal to classify (and explain) after every edit."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, edit_anchors, open_store, small_settings, unit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asif_qdrant import AlreadyExistsError, Asif, ConfigError, InvalidInputError, NotFoundError
from asif_qdrant.engines.base import CollectionSpec, PointBatch
from asif_qdrant.relindex import RelIndexes, decode_topk
from asif_qdrant.scoring import LabelModel
from asif_qdrant.tagging import Taggings

ENGINES = ["edge", "local"]


def make_photos(a: Asif, rng: np.random.Generator, n: int = 12, ids: list[Any] | None = None,
                name: str = "photos") -> tuple[list[Any], np.ndarray]:
    """A user's own collection: an image vector ``img``, a text vector ``txt`` of another size, a sparse one,
    and payload fields of their own."""
    a.engine.create_collection(name, CollectionSpec(dense={"img": IMG_DIM, "other": IMG_DIM + 1}, sparse=("sp",)))
    vecs = rng.standard_normal((n, IMG_DIM)).astype(np.float32)
    ids = ids if ids is not None else list(range(1000, 1000 + n))
    a.engine.upsert(name, PointBatch(ids, {"img": vecs, "other": rng.standard_normal((n, IMG_DIM + 1))},
                                     payloads=[{"owner": "acme" if i % 2 else "beta", "n": i} for i in range(n)]))
    return ids, vecs


def assert_tags_match_classify(a: Asif, field: str, tenant: str | None = None, coll: str = "photos",
                               only: set[Any] | None = None, tol: float = 1e-6) -> dict[Any, dict[str, Any]]:
    """Every tagged point's tag is what classify says for its vector (label, score, top), and its anchors are the
    first pairs of explain; its rev is at most the tagging's."""
    recs = [r for r in a.engine.scroll(coll, with_vectors=("img",)) if only is None or r.id in only]
    info = next(t for t in a.list_tags(tenant) if t.field == field)
    vecs = np.stack([np.asarray(r.vectors["img"]) for r in recs])
    preds = a.classify(vectors=vecs, labels=info.labels, top=info.top, tenant=tenant)
    out = {}
    for r, p in zip(recs, preds, strict=True):
        tag = r.payload[field]
        assert tag["label"] == p.label, (r.id, tag, p)
        assert abs(tag["score"] - p.score) < tol
        assert [t[0] for t in tag["top"]] == [s.label for s in p.top]
        np.testing.assert_allclose([t[1] for t in tag["top"]], [s.score for s in p.top], atol=tol)
        assert 1 <= tag["rev"] <= info.rev
        out[r.id] = tag
    assert not info.pending
    return out


def assert_anchors_match_explain(a: Asif, field: str, tenant: str | None = None, coll: str = "photos") -> None:
    for r in a.engine.scroll(coll, with_vectors=("img",)):
        ex = a.explain(vector=np.asarray(r.vectors["img"])[None], labels="L", top=3, tenant=tenant)
        assert r.payload[field]["anchors"] == [c.id for c in ex.contributions], r.id
        # the same pairs and contributions (local mode's float32 dot can differ in the last bit between two calls
        # with the same bytes: numpy takes another summation path for another memory alignment)
        got = a.explain_tag(field, r.id, tenant=tenant, top=3).contributions
        assert [c.id for c in got] == [c.id for c in ex.contributions]
        np.testing.assert_allclose([c.contribution for c in got], [c.contribution for c in ex.contributions],
                                   rtol=1e-6)


@pytest.fixture(params=ENGINES)
def tstore(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    a = open_store(request.param, tmp_path, request, k=4, p=3.0)
    yield a
    a.close()


def _setup(a: Asif, seed: int = 0) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    a.add_vectors(rng.standard_normal((30, IMG_DIM)), rng.standard_normal((30, TXT_DIM)))
    a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=rng.standard_normal((5, TXT_DIM)))
    return rng


def test_tag_writes_classify_answers_and_keeps_user_data(tstore: Asif) -> None:
    a = tstore
    rng = _setup(a)
    ids, vecs = make_photos(a, rng)
    info = a.tag("photos", vector="img", labels="L", field="category")
    assert (info.points, info.rev, info.pending, info.top) == (12, 1, False, 3)
    tags = assert_tags_match_classify(a, "category")
    assert set(tags) == set(ids) and all(t["rev"] == 1 for t in tags.values())
    assert_anchors_match_explain(a, "category")
    for r in a.engine.scroll("photos", with_vectors=("img",)):  # the user's data is untouched
        i = ids.index(r.id)
        assert {k: v for k, v in r.payload.items() if k != "category"} == {"owner": "acme" if i % 2 else "beta",
                                                                          "n": i}
        np.testing.assert_allclose(r.vectors["img"], unit(vecs[i]), atol=1e-6)
    assert [t.field for t in a.list_tags()] == ["category"]
    assert a.list_indexes() == a.list_labels()  # a tagging is no label set or gallery
    # a search of the user's own on the tag: a Qdrant filter on category.label
    from asif_qdrant.engines.base import Match

    some = tags[ids[0]]["label"]
    hits = {r.id for r in a.engine.scroll("photos", filter=_f(Match("category.label", some)))}
    assert hits == {i for i, t in tags.items() if t["label"] == some}


def _f(*conds: Any) -> Any:
    from asif_qdrant.engines.base import Filter

    return Filter(must=tuple(conds))


def test_edits_rewrite_only_changed_tags(tstore: Asif) -> None:
    a = tstore
    rng = _setup(a, 1)
    make_photos(a, rng, n=20)
    a.tag("photos", vector="img", labels="L", field="category")
    before = assert_tags_match_classify(a, "category")
    # an anchor close to one point enters that point's top-k (and maybe a prompt's)
    target = next(r for r in a.engine.scroll("photos", with_vectors=("img",)))
    res = a.add_vectors(np.asarray(target.vectors["img"])[None], rng.standard_normal((1, TXT_DIM)))
    after = assert_tags_match_classify(a, "category")
    changed = {i for i in after if after[i] != before[i]}
    assert target.id in changed
    rev = a.list_tags()[0].rev
    assert rev == 2 and all(after[i]["rev"] == (2 if i in changed else 1) for i in after)
    for i in set(after) - changed:  # unchanged points keep their tag, rev included
        assert after[i] == before[i]
    a.delete(res.ids)
    assert_tags_match_classify(a, "category")
    a.define_labels("L", list("abcdef"), templates="plain", prompt_vectors=rng.standard_normal((6, TXT_DIM)),
                    replace=True)
    tags = assert_tags_match_classify(a, "category")
    assert any(t["label"] == "f" or any(x[0] == "f" for x in t["top"]) for t in tags.values())
    assert_anchors_match_explain(a, "category")
    a.define_labels("L", list("xyz"), templates="plain", prompt_vectors=rng.standard_normal((3, TXT_DIM)),
                    replace=True, k=6, p=2.0)  # another k and p: the items are rebuilt
    assert_tags_match_classify(a, "category")
    a.delete_labels("L")  # the label set is gone: so are its tags
    assert a.list_tags() == []
    assert all("category" not in r.payload for r in a.engine.scroll("photos"))


def test_an_edit_beyond_the_prompts_first_k_scores_only_the_items_it_rewrote(
    tstore: Asif, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt keeps k + a buffer of neighbours; its rep (and every score) is made of the first k. Deleting an
    anchor that only some prompts' buffers hold rewrites those prompts' lists, and yet no item's score moves but
    the items whose own list held it: only those are scored again, and every tag still equals classify's."""
    a = tstore
    rng = _setup(a, 2)
    make_photos(a, rng, n=20)
    a.tag("photos", vector="img", labels="L", field="category")
    linfo = a.relindexes.require("L", "_shared", "labels")
    lists = [decode_topk(r.payload)[0] for r in a.relindexes.items(linfo, with_payload=["topk"])]
    head = set().union(*(set(ids[: linfo.k].tolist()) for ids in lists))
    buffer_only = sorted(set().union(*(set(ids[linfo.k :].tolist()) for ids in lists)) - head)
    assert buffer_only, "seed 2 gives no anchor held only in a prompt's buffer"
    scored: list[int] = []
    real = LabelModel.answer
    monkeypatch.setattr(LabelModel, "answer", lambda self, ri, reps, *args: scored.append(len(reps))
                        or real(self, ri, reps, *args))
    res = a.delete([buffer_only[0]])
    touched = res.items_touched
    assert touched["_shared/L"] > 0  # the prompts' lists were rewritten
    tagging_key = next(k for k in touched if k != "_shared/L")
    assert sum(scored) == touched[tagging_key] < 20
    assert_tags_match_classify(a, "category")


@pytest.mark.parametrize("kind", ENGINES)
def test_a_taggings_buffer_is_filled_when_deletes_use_it_up(kind: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    """A tagging's items are built with k + TAGGING_BUFFER neighbours (the label set's prompts with depth_of(k)).
    Deleting, one by one, the anchors nearest to a point uses up its buffer. The item is then queried again to
    depth_of(k). Its first k neighbours stay the exact top-k of the anchors left, and every tag equals classify's."""
    from asif_qdrant.relindex.records import TAGGING_BUFFER, depth_of

    a = open_store(kind, tmp_path, request, k=80, p=3.0)
    try:
        rng = np.random.default_rng(5)
        a.add_vectors(rng.standard_normal((160, IMG_DIM)), rng.standard_normal((160, TXT_DIM)))
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=rng.standard_normal((5, TXT_DIM)))
        ids, vecs = make_photos(a, rng, n=6)
        a.tag("photos", vector="img", labels="L", field="category")
        info = next(i for i in a.relindexes.infos() if i.kind == "tagging")
        linfo = a.relindexes.require("L", "_shared", "labels")
        assert depth_of(80) == 90 > 80 + TAGGING_BUFFER
        assert {len(decode_topk(r.payload)[0]) for r in a.relindexes.items(info)} == {80 + TAGGING_BUFFER}
        assert {len(decode_topk(r.payload)[0]) for r in a.relindexes.items(linfo)} == {90}

        def item_of_point(pid: Any) -> Any:
            return next(r for r in a.relindexes.items(info) if r.payload["point"] == pid)

        lengths = []
        for _ in range(TAGGING_BUFFER + 1):  # the point's nearest anchor goes, each time
            a.delete([int(decode_topk(item_of_point(ids[0]).payload)[0][0])])
            lengths.append(len(decode_topk(item_of_point(ids[0]).payload)[0]))
            assert_tags_match_classify(a, "category")
        # the buffer serves 7 deletes (the list's last similarity is its threshold); the 8th queries again
        assert lengths == [87, 86, 85, 84, 83, 82, 81, 90, 89]
        exact = a.relindexes.anchor_topk(unit(vecs[0])[None], "image", "_shared", 80)
        assert decode_topk(item_of_point(ids[0]).payload)[0][:80].tolist() == exact.ids[0].tolist()
    finally:
        a.close()


@pytest.mark.parametrize("kind", ENGINES)
def test_a_moved_prompt_scores_only_the_items_whose_tag_it_can_change(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the paper's scores (max over a class's templates), an anchor that enters one prompt's first k moves
    that prompt's scores only. An item is scored again only when the moved prompt can be its class's best and the
    class is in (or reaches) the item's top. That is fewer items than share an anchor with the prompt's top-k
    before or after the edit (the rule for other scores), and every tag still equals classify's."""
    from asif_qdrant.engines.base import SparseQuery, SparseVec, query_batch_arrays
    from asif_qdrant.relindex import index_filter

    a = open_store(kind, tmp_path, request, k=6, p=3.0)
    try:
        rng = np.random.default_rng(11)
        a.add_vectors(rng.standard_normal((60, IMG_DIM)), rng.standard_normal((60, TXT_DIM)))
        prompts = rng.standard_normal((5 * 4, TXT_DIM))
        a.define_labels("L", list("abcde"), templates=["{}", "a {}", "the {}", "one {}"], prompt_vectors=prompts)
        make_photos(a, rng, n=60)
        a.tag("photos", vector="img", labels="L", field="category", top=2)
        linfo = a.relindexes.require("L", "_shared", "labels")
        info = next(i for i in a.relindexes.infos() if i.kind == "tagging")
        first_k = {int(r.id): decode_topk(r.payload)[0][: linfo.k] for r in a.relindexes.items(linfo)}
        scored: list[int] = []
        real = LabelModel.answer
        monkeypatch.setattr(LabelModel, "answer", lambda self, ri, reps, *args: scored.append(len(reps))
                            or real(self, ri, reps, *args))
        # the caption of prompt 5 ("a b"), with an image that enters few items' top-k
        a.add_vectors(-np.ones((1, IMG_DIM)) * 50, prompts[5:6] + 1e-3)
        after = {int(r.id): decode_topk(r.payload)[0][: linfo.k] for r in a.relindexes.items(linfo)}
        moved = [j for j in first_k if not np.array_equal(first_k[j], after[j])]
        assert 5 in moved
        support = np.unique(np.concatenate([np.concatenate([first_k[j], after[j]]) for j in moved])).astype(np.uint32)
        q = SparseQuery("rel", SparseVec(support, np.ones(support.size, np.float32)), info.n_items,
                        index_filter(info))
        _, scores = query_batch_arrays(a.engine, a.relindexes.collection(info), [q])[0]
        sharing = int((scores > 0).sum())
        assert sum(scored) < sharing, (scored, sharing)
        assert_tags_match_classify(a, "category")
    finally:
        a.close()


def test_tenancy_and_filter(tstore: Asif) -> None:
    a = tstore
    rng = _setup(a, 2)
    ids, _ = make_photos(a, rng, n=10)
    a.add_vectors(rng.standard_normal((5, IMG_DIM)), rng.standard_normal((5, TXT_DIM)), tenant="acme")
    own = {int(i) for i in a.engine.scroll(a.anchors.collection, filter=_f(), with_payload=True)
           if i.payload.get("tenant") in ("acme", "_shared")} if False else None
    flt = {"must": [{"key": "owner", "match": {"value": "acme"}}]}
    info = a.tag("photos", vector="img", labels="L", field="cat", tenant="acme", filter=flt)
    assert info.points == 5 and info.filter == {**flt, "must_not": []}
    tags = assert_tags_match_classify(a, "cat", tenant="acme", only={i for j, i in enumerate(ids) if j % 2})
    assert all("cat" not in r.payload for r in a.engine.scroll("photos") if r.payload["owner"] == "beta")
    # another tenant sees none of it, cannot sync or delete it, and its anchors stay out of acme's tags
    a.add_vectors(rng.standard_normal((5, IMG_DIM)), rng.standard_normal((5, TXT_DIM)), tenant="other")
    assert a.list_tags("other") == [] and a.list_tags() == []
    with pytest.raises(NotFoundError, match="no tagging of field 'cat'"):
        a.delete_tags("cat", tenant="other")
    with pytest.raises(AlreadyExistsError, match="another tenant"):
        a.tag("photos", vector="img", labels="L", field="cat", tenant="other", filter=flt)
    scope = {r.id for r in a.engine.scroll(a.anchors.collection) if r.payload.get("tenant") in ("acme", "_shared")}
    tags = assert_tags_match_classify(a, "cat", tenant="acme", only=set(tags))
    assert all(set(t["anchors"]) <= scope for t in tags.values())
    # a tenant edit reaches the tenant's tags; deleting the tenant removes them
    a.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM)), tenant="acme")
    assert_tags_match_classify(a, "cat", tenant="acme", only=set(tags))
    a.delete_tenant("acme")
    assert all("cat" not in r.payload for r in a.engine.scroll("photos"))
    assert own is None


def test_refusals_write_nothing(tstore: Asif) -> None:
    a = tstore
    rng = _setup(a, 3)
    make_photos(a, rng)
    cases = [
        (dict(collection="nope", vector="img"), NotFoundError, "collection 'nope' does not exist"),
        (dict(collection="photos", vector="x"), NotFoundError, "no vector named 'x'.*img"),
        (dict(collection="photos", vector="sp"), InvalidInputError, "sparse vector"),
        (dict(collection="photos", vector="other"), InvalidInputError, f"{IMG_DIM + 1} dimensions.*has {IMG_DIM}"),
        (dict(collection="photos", vector="img", field="owner"), AlreadyExistsError, "already holds data.*replace"),
        (dict(collection="photos", vector="img", filter={"must": [{"key": "owner", "match": {"value": "zz"}}]}),
         InvalidInputError, "selects no point"),
        (dict(collection="photos", vector="img", filter={"should": []}), ConfigError, "not supported"),
        (dict(collection=a.anchors.collection, vector="image"), ConfigError, "plugin's own"),
        (dict(collection="photos", vector="img", field="a.b"), ConfigError, "field 'a.b' is invalid"),
        (dict(collection="photos", vector="img", labels="nope"), NotFoundError, "label set 'nope'"),
    ]
    for kw, err, msg in cases:
        args = {"labels": "L", "field": "cat", **kw}
        with pytest.raises(err, match=msg):
            a.tag(args.pop("collection"), **args)
    assert a.list_tags() == []
    assert all(set(r.payload) == {"owner", "n"} for r in a.engine.scroll("photos"))
    info = a.tag("photos", vector="img", labels="L", field="owner", replace=True)  # replace: overwritten
    assert info.points == 12
    assert_tags_match_classify(a, "owner")


def dying(a: Asif, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """The store's writes of tags (batches of 5) die after ``after`` batches, like a process killed (kill -9)."""
    real, calls = a.engine.set_payloads, {"n": 0}

    def set_payloads(*args: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt("killed")
        real(*args, **kw)

    monkeypatch.setattr("asif_qdrant.tagging.WRITE_BATCH", 5)
    monkeypatch.setattr(a.engine, "set_payloads", set_payloads)


def test_interrupted_tagging_is_finished_by_a_rerun(tstore: Asif, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tstore
    rng = _setup(a, 4)
    make_photos(a, rng, n=30)
    a.tag("photos", vector="img", labels="L", field="cat")
    dying(a, monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):  # a re-score of every point (a new label set), killed midway
        a.define_labels("L", list("abcdef"), templates="plain", prompt_vectors=rng.standard_normal((6, TXT_DIM)),
                        replace=True)
    monkeypatch.undo()
    [info] = a.list_tags()
    assert info.pending
    revs = [r.payload["cat"]["rev"] for r in a.engine.scroll("photos")]
    assert set(revs) <= {1, 2} and 2 in revs  # some points written, some not: pending says so
    a.tag("photos", vector="img", labels="L", field="cat")  # a re-run finishes it
    [info] = a.list_tags()
    tags = assert_tags_match_classify(a, "cat")
    assert all(t["rev"] == info.rev for t in tags.values())


def test_interrupted_first_tagging_then_edit_finishes_it(tstore: Asif, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tstore
    rng = _setup(a, 5)
    make_photos(a, rng, n=30)
    monkeypatch.setattr("asif_qdrant.relindex.build.BUILD_CHUNK", 8)
    dying(a, monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        a.tag("photos", vector="img", labels="L", field="cat")
    monkeypatch.undo()
    assert [t.pending for t in a.list_tags()] == [True]
    assert 0 < sum("cat" in r.payload for r in a.engine.scroll("photos")) < 30
    a.add_vectors(rng.standard_normal((2, IMG_DIM)), rng.standard_normal((2, TXT_DIM)))  # the next edit finishes it
    tags = assert_tags_match_classify(a, "cat")
    assert len(tags) == 30 and {t["rev"] for t in tags.values()} == {a.list_tags()[0].rev}


def test_sync_picks_up_added_deleted_and_overwritten_points(tstore: Asif, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tstore
    rng = _setup(a, 6)
    ids, _ = make_photos(a, rng, n=10)
    a.tag("photos", vector="img", labels="L", field="cat",
          filter={"must_not": [{"key": "owner", "match": {"value": "gone"}}]})
    assert a.sync_tags("cat") == {"added": 0, "deleted": 0, "rewritten": 0, "points": 10}
    new = rng.standard_normal((3, IMG_DIM)).astype(np.float32)
    a.engine.upsert("photos", PointBatch([5000, 5001, 5002], {"img": new, "other": np.zeros((3, IMG_DIM + 1))},
                                         payloads=[{"owner": "acme"}] * 3))
    a.engine.delete("photos", ids=ids[:2])
    a.engine.set_payloads("photos", [ids[3]], [{"owner": "gone"}])  # leaves the selection, keeps its point
    monkeypatch.setattr(Taggings, "rerun", lambda self, *a, **k: pytest.fail("a sync ran the tagging again"))
    res = a.sync_tags("cat")
    assert (res["added"], res["deleted"], res["rewritten"], res["points"]) == (3, 3, 3, 10)
    assert "cat" not in next(iter(a.engine.retrieve("photos", [ids[3]]))).payload  # its tag left with it
    assert a.list_tags()[0].points == 10
    a.engine.set_payloads("photos", [ids[3]], [{"owner": "acme"}])
    res = a.sync_tags("cat")
    assert (res["added"], res["deleted"], res["points"]) == (1, 0, 11)
    tags = assert_tags_match_classify(a, "cat")
    assert set(tags) == set(ids[2:]) | {5000, 5001, 5002}
    assert a.list_tags()[0].points == 11
    # a vector overwritten in place is not seen; sync_tags(ids=...) re-tags it
    a.engine.upsert("photos", PointBatch([ids[5]], {"img": rng.standard_normal((1, IMG_DIM)),
                                                    "other": np.zeros((1, IMG_DIM + 1))}, payloads=[{"owner": "x"}]))
    a.sync_tags("cat", ids=[ids[5]])
    assert_tags_match_classify(a, "cat")
    # after the moves, the items still hold exactly their points, and an anchor edit keeps them all exact
    a.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM)))
    tags = assert_tags_match_classify(a, "cat")
    items = a.relindexes.items(a.taggings.find("cat", "_shared"))
    assert len(tags) == 11 and [r.id for r in items] == list(range(11))
    assert sorted(str(r.payload["point"]) for r in items) == sorted(map(str, tags))
    a.delete_tags("cat")
    assert a.list_tags() == [] and all("cat" not in r.payload for r in a.engine.scroll("photos"))


def test_uuid_point_ids_on_the_client_engine(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    a = Asif.open(url=":memory:", **small_settings(k=4, p=3.0))
    try:
        _setup(a, 8)
        ids = [str(uuid.UUID(int=int(x))) for x in rng.integers(1, 2**62, 6)]
        make_photos(a, rng, n=6, ids=ids)
        a.tag("photos", vector="img", labels="L", field="cat")
        tags = assert_tags_match_classify(a, "cat")
        assert set(tags) == set(ids)
        a.add_vectors(rng.standard_normal((4, IMG_DIM)), rng.standard_normal((4, TXT_DIM)))
        assert_tags_match_classify(a, "cat")
        assert a.explain_tag("cat", ids[0]).label == tags[ids[0]]["top"][0][0]
    finally:
        a.close()


TENANTS = ["_shared", "t1", "t2"]
K, P = 4, 3.0
ops = st.lists(
    st.tuples(st.sampled_from(["add", "add", "delete", "replace", "relabel", "points"]), st.sampled_from(TENANTS),
              st.integers(1, 4), st.integers(0, 2**31)),
    min_size=3, max_size=10,
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ENGINES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
def test_random_edits_keep_every_tagging_equal_to_classify(
    kind: str, steps: list, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model-based freshness test, for taggings: after every random edit (anchors of any tenant, a redefined
    label set), every tenant's tags equal classify's answers (which test_freshness checks against the dense
    reference), and no tagging was rerun from scratch (the incremental path alone keeps them exact)."""
    monkeypatch.setattr(RelIndexes, "rebuild", lambda self, info: pytest.fail("an index fell behind"))
    monkeypatch.setattr(Taggings, "rerun", lambda self, *a, **k: pytest.fail("a tagging fell behind"))
    rng = np.random.default_rng(7)
    if kind == "edge":
        a = Asif.open(tmp_path_factory.mktemp("s") / "store", **small_settings(k=K, p=P))
    else:
        a = Asif.open(url=":memory:", **small_settings(k=K, p=P))
    anchors: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}
    try:
        img, txt = rng.standard_normal((6, IMG_DIM)), rng.standard_normal((6, TXT_DIM))
        for i, pid in enumerate(a.add_vectors(img, txt).ids):
            anchors[pid] = ("_shared", unit(img[i]), unit(txt[i]))
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=rng.standard_normal((5, TXT_DIM)))
        make_photos(a, rng, n=8)
        for t in TENANTS:
            a.tag("photos", vector="img", labels="L", field=f"tag_{t}", tenant=None if t == "_shared" else t)
        for step, (op, tenant, n, seed) in enumerate(steps):
            r = np.random.default_rng([seed, step])
            if op == "relabel":
                a.define_labels("L", list("abcde")[: 2 + n % 4], templates="plain", replace=True,
                                prompt_vectors=r.standard_normal((2 + n % 4, TXT_DIM)))
            elif op == "points":  # the user's collection moves: n points in, one out, then every tagging syncs
                have = sorted(int(x.id) for x in a.engine.scroll("photos", with_payload=False))
                a.engine.upsert("photos", PointBatch(
                    list(range(10_000 + 10 * step, 10_000 + 10 * step + n)),
                    {"img": r.standard_normal((n, IMG_DIM)), "other": np.zeros((n, IMG_DIM + 1))}))
                a.engine.delete("photos", ids=[have[int(r.integers(0, len(have)))]])
                for t in TENANTS:
                    a.sync_tags(f"tag_{t}", tenant=None if t == "_shared" else t)
            else:
                edit_anchors(a, anchors, op, tenant, n, r)
            points = {x.id for x in a.engine.scroll("photos", with_payload=False)}
            for t in TENANTS:
                tags = assert_tags_match_classify(a, f"tag_{t}", tenant=None if t == "_shared" else t)
                assert set(tags) == points
    finally:
        a.close()


def test_tau_reaches_the_tags_and_doctor_retags_lost_items(tstore: Asif) -> None:
    from asif_qdrant.relindex import index_filter

    a = tstore
    rng = _setup(a, 9)
    make_photos(a, rng)
    a.tag("photos", vector="img", labels="L", field="cat")
    a.annotate_index("L", extra={}, tau=10.0)  # above every score: every tag becomes "unknown"
    tags = assert_tags_match_classify(a, "cat")
    assert all(t["label"] is None for t in tags.values()) and any(t["top"] for t in tags.values())
    a.annotate_index("L", extra={}, tau=0.0)
    assert any(t["label"] is not None for t in assert_tags_match_classify(a, "cat").values())
    info = a.taggings.find("cat", "_shared")
    a.engine.delete(a.relindexes.collection(info), filter=index_filter(info))  # the items are lost
    report = a.doctor(repair=True)
    found = [f for f in report.findings if "tagging" in f.what]
    assert found and all(f.repaired for f in found)
    assert a.list_tags()[0].points == 12
    assert_tags_match_classify(a, "cat")


@pytest.mark.parametrize("own_pairs", [0, 3])
def test_tags_of_a_taught_tenant_carry_the_prototypes(tstore: Asif, own_pairs: int) -> None:
    # own_pairs=0: the tenant's own anchors are all taught examples, so classify's ASIF part is the shared model's
    # (another anchor scope than the tagging's items): the tags must still be classify's answers, prototypes included
    from asif_qdrant.prototypes import TAUGHT_FIELD

    a = tstore
    rng = _setup(a, 5)
    ids, vecs = make_photos(a, rng)
    if own_pairs:
        a.add_vectors(rng.standard_normal((own_pairs, IMG_DIM)), rng.standard_normal((own_pairs, TXT_DIM)),
                      tenant="t1")
    a.tag("photos", vector="img", labels="L", field="cat", tenant="t1")
    before = assert_tags_match_classify(a, "cat", "t1")
    taught = a.add_vectors(vecs[:2] + 0.05, rng.standard_normal((2, TXT_DIM)), tenant="t1",
                           payloads=[{TAUGHT_FIELD: "c"}, {TAUGHT_FIELD: "e"}]).ids
    after = assert_tags_match_classify(a, "cat", "t1")
    assert after != before  # the prototypes of c and e moved the points next to the examples
    assert {after[ids[0]]["label"], after[ids[1]]["label"]} <= {"c", "e"}
    assert_anchors_match_explain(a, "cat", "t1")
    a.delete(taught[:1], tenant="t1")  # one example less: the prototype of c is gone
    assert_tags_match_classify(a, "cat", "t1")
    a.add_vectors(rng.standard_normal((2, IMG_DIM)), rng.standard_normal((2, TXT_DIM)))  # shared anchors move
    assert_tags_match_classify(a, "cat", "t1")


@pytest.mark.parametrize("correction", ["mean", "zscore"])
def test_tags_of_a_corrected_label_set(tstore: Asif, correction: str) -> None:
    a = tstore
    rng = _setup(a, 6)
    a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=rng.standard_normal((5, TXT_DIM)),
                    correction=correction, replace=True)
    ids, _ = make_photos(a, rng)
    a.tag("photos", vector="img", labels="L", field="cat")
    assert_tags_match_classify(a, "cat", tol=1e-5)
    assert_anchors_match_explain(a, "cat")
    new = a.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM))).ids
    assert_tags_match_classify(a, "cat", tol=1e-5)
    a.delete(new[:2])
    assert_tags_match_classify(a, "cat", tol=1e-5)
    assert_anchors_match_explain(a, "cat")


def test_thresholds_saved_at_close_serve_the_next_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large index's thresholds are kept in the store at close: the next process's first edit reads no item's
    payload, and its answers stay exact. Items written after that drop the saved copy first, so that a process that
    dies before storing the record cannot leave thresholds that look valid."""
    from asif_qdrant.relindex import records

    monkeypatch.setattr(records, "SAVED_MIN_ITEMS", 6)
    opts = small_settings(k=4, p=3.0)
    a = Asif.open(tmp_path / "store", **opts)
    rng = _setup(a, 9)
    make_photos(a, rng, n=20)
    a.tag("photos", vector="img", labels="L", field="cat")
    a.add_vectors(rng.standard_normal((2, IMG_DIM)), rng.standard_normal((2, TXT_DIM)))  # caches made by an edit
    a.close()

    b = Asif.open(tmp_path / "store", **opts)
    info = b.taggings.find("cat", "_shared")
    saved = b.relindexes.saved_thresholds(info)
    assert saved is not None
    stored = {r.id: r.payload for r in b.relindexes.items(info, with_payload=["thr", "complete"])}
    np.testing.assert_allclose(saved[0], [stored[i]["thr"] if stored[i]["thr"] is not None else -np.inf
                                          for i in range(20)], rtol=1e-12)  # the payload's JSON float: last bit
    np.testing.assert_array_equal(saved[1], [stored[i]["complete"] for i in range(20)])
    label_info = b.relindexes.info("L", "_shared", "labels")
    assert label_info is not None and b.relindexes.saved_thresholds(label_info) is None  # 5 prompts: below the floor
    # the items generation is bookkeeping: a user never sees it (two copies of a store answer the same)
    assert records.ITEMS_GEN in label_info.extra and records.ITEMS_GEN not in label_info.as_dict()["extra"]
    real_scroll = b.engine.scroll

    def no_threshold_scroll(name: str, **kw: Any) -> Any:
        if "thr" in (kw.get("with_payload") or ()) and kw.get("filter") is not None and "cat" in repr(kw["filter"]):
            pytest.fail("the first edit read the tagging's thresholds from the items")
        return real_scroll(name, **kw)

    monkeypatch.setattr(b.engine, "scroll", no_threshold_scroll)
    near = next(r for r in b.engine.scroll("photos", with_vectors=("img",)))
    b.add_vectors(np.asarray(near.vectors["img"])[None], rng.standard_normal((1, TXT_DIM)))
    assert_tags_match_classify(b, "cat")
    monkeypatch.undo()
    # items written (a sync of an overwritten point), then the process dies before close: no saved copy survives
    b.engine.upsert("photos", PointBatch([near.id], {"img": rng.standard_normal((1, IMG_DIM)),
                                                    "other": np.zeros((1, IMG_DIM + 1))}, payloads=[{"owner": "x"}]))
    b.sync_tags("cat", ids=[near.id])
    assert b.meta.get(records.saved_key(info.key)) is None
    b.engine.close()  # no save: what a kill -9 leaves

    c = Asif.open(tmp_path / "store", **opts)
    info = c.taggings.find("cat", "_shared")
    assert c.relindexes.saved_thresholds(info) is None
    c.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM)))
    assert_tags_match_classify(c, "cat")
    c.close()
