"""Scale options (opt-in): int8 / binary quantization with rescoring and HNSW with ef >= k, on both engines.
Exact search stays the default; collection specs carry the options; the server engine passes gRPC and cluster
settings through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, open_store

from asif_qdrant import AsifSettings, ConfigError
from asif_qdrant.engines import create_engine
from asif_qdrant.engines.base import (
    CollectionSpec,
    DenseQuery,
    Engine,
    HnswSpec,
    PointBatch,
    QuantizationSpec,
    SearchOptions,
)
from asif_qdrant.engines.client import SPEC_METADATA_KEY, ClientEngine
from asif_qdrant.search_options import SearchConfig
from asif_qdrant.topk import dense_topk, topk_overlap

LOCAL_ENGINES = ["edge", "local"]
N, DIM, K = 3000, 32, 50
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")  # no server at 127.0.0.1:1


def _engine(kind: str, tmp_path: Path) -> Engine:
    if kind == "edge":
        from asif_qdrant.engines.edge import EdgeEngine

        return EdgeEngine(tmp_path / "store")
    return ClientEngine(location=":memory:")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _load(engine: Engine, cfg: SearchConfig, rng: np.random.Generator, name: str = "a") -> np.ndarray:
    quant, hnsw = cfg.collection_options()
    engine.create_collection(
        name, CollectionSpec(dense={"image": DIM}, keyword_indexes={"tenant": True}, quantization=quant, hnsw=hnsw)
    )
    x = _unit(rng.standard_normal((N, DIM)))
    for s in range(0, N, 1000):
        engine.upsert(name, PointBatch(list(range(s, s + 1000)), {"image": x[s : s + 1000]},
                                       payloads=[{"tenant": "_shared"}] * 1000))
    return x


# -- the configuration ------------------------------------------------------------------------------
def test_exact_is_the_default() -> None:
    cfg = SearchConfig.from_settings(AsifSettings())
    assert cfg.exact and cfg.describe() == "exact"
    assert cfg.collection_options() == (None, None)
    assert cfg.query_options(800) == SearchOptions() and SearchOptions().exact
    assert DenseQuery("image", np.zeros(2), 5).options.exact


def test_query_and_collection_options() -> None:
    q8 = SearchConfig(quantization="int8")
    quant, hnsw = q8.collection_options()
    assert quant == QuantizationSpec("int8") and quant.originals_on_disk and quant.always_ram
    assert hnsw is not None and hnsw.m == 0  # no graph: a full scan of the quantized vectors
    assert q8.query_options(800) == SearchOptions(
        exact=False, hnsw_ef=None, quantization_rescore=True, quantization_oversampling=2.0
    )
    h = SearchConfig(hnsw=True, hnsw_m=24, hnsw_ef_construct=200, index_threshold_kb=64)
    assert h.collection_options() == (None, HnswSpec(m=24, ef_construct=200, indexing_threshold_kb=64))
    assert h.query_options(800) == SearchOptions(exact=False, hnsw_ef=1600)  # max(k + 8, 2k)
    assert h.query_options(3).hnsw_ef == 11  # never below the limit k + 8
    assert SearchConfig(hnsw=True, hnsw_ef=100).query_options(800).hnsw_ef == 808  # ef >= k, always
    assert SearchConfig(hnsw=True, hnsw_ef=5000).query_options(800).hnsw_ef == 5000
    b = SearchConfig(quantization="binary", hnsw=True, oversampling=4.0, rescore=False)
    assert b.query_options(10) == SearchOptions(
        exact=False, hnsw_ef=20, quantization_rescore=False, quantization_oversampling=4.0
    )
    assert b.describe().startswith("binary hnsw")


@pytest.mark.parametrize(
    "kw,match",
    [({"quantization": "fp16"}, "quantization='fp16'"), ({"oversampling": 0.5}, "oversampling=0.5"),
     ({"hnsw_m": 2}, "hnsw_m=2"), ({"hnsw_ef": 0}, "hnsw_ef=0"), ({"index_threshold_kb": 0}, "index_threshold_kb=0")],
)
def test_bad_options_name_the_value(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SearchConfig(**kw)


# -- both engines: specs carry the options, and the approximate top-k is close to the exact one --------------
@pytest.mark.parametrize("kind", LOCAL_ENGINES)
@pytest.mark.parametrize("quant", ["int8", "binary"])
def test_spec_round_trip(kind: str, quant: str, tmp_path: Path) -> None:
    e = _engine(kind, tmp_path)
    try:
        q, h = SearchConfig(quantization=quant, hnsw=True, index_threshold_kb=1).collection_options()
        spec = CollectionSpec(dense={"image": 4}, keyword_indexes={"tenant": True}, integer_indexes=("n",),
                              quantization=q, hnsw=h)
        e.create_collection("c", spec)
        assert e.collection_spec("c") == spec
        e.create_collection("plain", CollectionSpec(dense={"image": 4}))
        assert e.collection_spec("plain").quantization is None and e.collection_spec("plain").hnsw is None
    finally:
        e.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", LOCAL_ENGINES)
@pytest.mark.parametrize(
    "cfg",
    [
        SearchConfig(quantization="int8", index_threshold_kb=1),
        SearchConfig(hnsw=True, index_threshold_kb=1, full_scan_threshold_kb=1),
        SearchConfig(quantization="int8", hnsw=True, index_threshold_kb=1, full_scan_threshold_kb=1),
        SearchConfig(quantization="turbo2", index_threshold_kb=1),
        SearchConfig(quantization="turbo4", oversampling=4.0, index_threshold_kb=1),
    ],
    ids=["int8+rescore", "hnsw", "int8+hnsw", "turbo2+rescore", "turbo4+rescore"],
)
def test_approximate_topk_overlaps_exact(kind: str, cfg: SearchConfig, tmp_path: Path,
                                         rng: np.random.Generator) -> None:
    e = _engine(kind, tmp_path)
    try:
        _load(e, cfg, rng)
        if kind == "edge" and cfg.hnsw:
            assert e.indexed_vectors("a") == 0  # type: ignore[attr-defined]  # Edge: no graph until optimize
            assert e.optimize("a") is True
            assert e.indexed_vectors("a") == N  # type: ignore[attr-defined]
        elif kind == "edge":
            # no graph: segments are sealed (and quantized) while writing, past the indexing threshold
            assert 0 < e.indexed_vectors("a") <= N  # type: ignore[attr-defined]
            e.optimize("a")
        if kind == "edge":
            assert e.indexed_vectors("a") == N  # type: ignore[attr-defined]
            files = {p.name for p in (tmp_path / "store" / "collections" / "a" / "shard").rglob("*")}
            assert ("quantized.data" in files) == (cfg.quantization != "none")
        else:
            assert e.optimize("a") is False  # local mode: no optimizer, no index (always exact)
        q = _unit(rng.standard_normal((40, DIM)))
        exact = dense_topk(e, "a", q, "image", None, K)
        approx = dense_topk(e, "a", q, "image", None, K, cfg.query_options(K))
        assert approx.ids.shape == (40, K) and (approx.ids >= 0).all()
        assert topk_overlap(exact, approx) >= 0.95
        if kind == "edge" and cfg.quantization != "none":
            no_rescore = SearchOptions(exact=False, hnsw_ef=cfg.query_options(K).hnsw_ef, quantization_rescore=False)
            raw = dense_topk(e, "a", q, "image", None, K, no_rescore)
            # without rescoring the scores are the quantized ones: the rescored ones equal the exact cosines
            assert not np.allclose(raw.sims[raw.ids >= 0], exact.sims[raw.ids >= 0], atol=1e-6)
            same = approx.ids == exact.ids
            np.testing.assert_allclose(approx.sims[same], exact.sims[same], atol=1e-6)
    finally:
        e.close()


@pytest.mark.slow
def test_exact_collection_is_sealed_into_segments_searched_exactly(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edge searches segments in parallel, so an exact collection is sealed into segments while it is written;
    the answer stays the exact top-k (same ids and cosines as numpy, ties by smaller id)."""
    from asif_qdrant.engines import edge

    monkeypatch.setattr(edge, "SEAL_KB", 40)  # 40 KB = 320 points of 32-d float32
    monkeypatch.setattr(edge, "SEGMENTS", 4)
    e = edge.EdgeEngine(tmp_path / "store")
    try:
        x = _load(e, SearchConfig(), rng)  # 3 upserts of 1,000 points: each seals
        assert json.loads((tmp_path / "store" / "collections" / "a" / "layout.json").read_text()) == {
            "seal_kb": 40, "segments": 4}
        info = e._shard("a").info()
        assert info.points_count == N and 2 <= info.segments_count <= 4 + 1  # merged down to SEGMENTS (+ appendable)
        assert e.indexed_vectors("a") == N  # every write so far sits in a sealed segment
        files = {p.name for p in (tmp_path / "store" / "collections" / "a" / "shard").rglob("*")}
        assert "quantized.data" not in files  # sealed segments are plain: nothing approximate is built
        q = _unit(rng.standard_normal((10, DIM)))
        got = dense_topk(e, "a", q, "image", None, K)
        s = q.astype(np.float64) @ x.T.astype(np.float64)
        for i in range(len(q)):
            ref = np.lexsort((np.arange(N), -np.round(s[i], 6)))[:K]
            assert np.intersect1d(got.ids[i], ref).size >= K - 1  # float32 vs float64 at the k-th boundary
            np.testing.assert_allclose(got.sims[i], s[i][got.ids[i]], atol=1e-5)
            np.testing.assert_array_equal(got.ids[i][:10], ref[:10])
        e.delete("a", ids=list(range(0, N, 2)))
        assert e.count("a") == N // 2
        again = dense_topk(e, "a", q[:1], "image", None, K)
        assert (again.ids[0] % 2 == 1).all()
    finally:
        e.close()
    e = edge.EdgeEngine(tmp_path / "store")  # reopened: the layout and the segments persist
    try:
        assert e.count("a") == N // 2 and e._layout("a") == {"seal_kb": 40, "segments": 4}
    finally:
        e.close()


@pytest.mark.slow
def test_hnsw_and_sparse_collections_get_no_segment_layout(tmp_path: Path, rng: np.random.Generator) -> None:
    from asif_qdrant.engines import edge

    e = edge.EdgeEngine(tmp_path / "store")
    try:
        _load(e, SearchConfig(hnsw=True), rng, name="graph")
        e.create_collection("sparse", CollectionSpec(sparse=("rel",)))
        assert e._layout("graph") is None and e._layout("sparse") is None
        assert e.indexed_vectors("graph") == 0  # a graph is built only by optimize
    finally:
        e.close()


@pytest.mark.slow
def test_binary_rescore_runs_and_ranks_by_exact_scores(tmp_path: Path, rng: np.random.Generator) -> None:
    e = _engine("edge", tmp_path)
    try:
        cfg = SearchConfig(quantization="binary", oversampling=4.0, index_threshold_kb=1)
        _load(e, cfg, rng)
        e.optimize("a")  # type: ignore[attr-defined]
        q = _unit(rng.standard_normal((20, DIM)))
        exact = dense_topk(e, "a", q, "image", None, K)
        approx = dense_topk(e, "a", q, "image", None, K, cfg.query_options(K))
        assert (approx.ids >= 0).all() and topk_overlap(exact, approx) > 0.3  # 1 bit per dim on 32-d noise
        assert (np.diff(approx.sims, axis=1) <= 1e-9).all()  # rescored: sorted by true cosine
    finally:
        e.close()


# -- the server engine passes gRPC and cluster settings --------------------------------------------------
class _FakeClient:
    """Records what ClientEngine asks of a server client."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}
        self._client = object()  # not QdrantLocal: behaves as a server

    def collection_exists(self, name: str) -> bool:
        return name in self.created

    def create_collection(self, name: str, **kw: Any) -> bool:
        self.created[name] = kw
        return True

    def create_payload_index(self, *a: Any, **kw: Any) -> None:
        return None


def test_client_engine_passes_cluster_settings_and_options() -> None:
    fake = _FakeClient()
    e = ClientEngine(client=fake, shard_number=3, replication_factor=2, write_consistency_factor=2)  # type: ignore[arg-type]
    q, h = SearchConfig(quantization="int8", hnsw=True, index_threshold_kb=500).collection_options()
    spec = CollectionSpec(dense={"image": 4, "text": 3}, quantization=q, hnsw=h)
    e.create_collection("c", spec)
    kw = fake.created["c"]
    assert (kw["shard_number"], kw["replication_factor"], kw["write_consistency_factor"]) == (3, 2, 2)
    assert kw["optimizers_config"].indexing_threshold == 500
    assert kw["metadata"][SPEC_METADATA_KEY]["quantization"]["kind"] == "int8"
    vp = kw["vectors_config"]["image"]
    assert vp.on_disk is True and vp.quantization_config.scalar.always_ram is True and vp.hnsw_config.m == 16


def test_create_engine_prefers_grpc_when_asked() -> None:
    e = create_engine(AsifSettings(url="http://127.0.0.1:1", prefer_grpc=True, shard_number=2))
    try:
        assert isinstance(e, ClientEngine) and e.prefer_grpc and "(gRPC)" in e.description
        assert e.client._client._prefer_grpc is True  # type: ignore[attr-defined]
        assert e.shard_number == 2
    finally:
        e.close()
    rest = create_engine(AsifSettings(url="http://127.0.0.1:1"))
    assert isinstance(rest, ClientEngine) and not rest.prefer_grpc
    rest.close()


def test_query_batch_is_one_call(tmp_path: Path, rng: np.random.Generator) -> None:
    e = ClientEngine(location=":memory:")
    _load(e, SearchConfig(), rng)
    calls: list[int] = []
    orig = e.client.query_batch_points

    def spy(name: str, requests: list[Any]) -> Any:
        calls.append(len(requests))
        return orig(name, requests=requests)

    e.client.query_batch_points = spy  # type: ignore[method-assign]
    dense_topk(e, "a", _unit(rng.standard_normal((10, DIM))), "image", None, 5)
    assert calls == [10]


# -- through the facade (needs the settings patch) ------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", LOCAL_ENGINES)
def test_store_applies_settings(kind: str, tmp_path: Path, request: pytest.FixtureRequest,
                                rng: np.random.Generator) -> None:
    exact = open_store(kind, tmp_path / "exact", request)
    q8 = open_store(kind, tmp_path / "q8", request, quantization="int8", index_threshold_kb=1)
    try:
        assert exact.engine.collection_spec(exact.anchors.collection).quantization is None
        spec = q8.engine.collection_spec(q8.anchors.collection)
        assert spec.quantization == QuantizationSpec("int8") and spec.hnsw is not None and spec.hnsw.m == 0
        img, txt = rng.standard_normal((400, IMG_DIM)), rng.standard_normal((400, TXT_DIM))
        prompts = rng.standard_normal((3, TXT_DIM))
        for a in (exact, q8):
            a.add_vectors(img, txt, ids=list(range(400)))
            built = a.optimize()
            if a is exact:
                assert built is False  # exact: nothing to build
            elif kind == "edge":  # the quantized vectors exist: sealed while writing (or built by optimize)
                assert a.engine.indexed_vectors(a.anchors.collection) == 2 * 400  # type: ignore[attr-defined]  # image + text
            a.define_labels("L", ["a", "b", "c"], "plain", prompt_vectors=prompts, k=20)
        seen: list[SearchOptions] = []
        for a in (exact, q8):
            for method in ("query_batch", "query_batch_arrays"):  # the dense top-k takes the arrays path if any
                orig = getattr(a.engine, method, None)
                if orig is None:
                    continue

                def spy(name: str, queries: Any, orig: Any = orig) -> Any:
                    seen.extend(q.options for q in queries if isinstance(q, DenseQuery))
                    return orig(name, queries)

                setattr(a.engine, method, spy)
        v = rng.standard_normal((30, IMG_DIM))
        pe = exact.classify(vectors=v, labels="L")
        n_exact = len(seen)
        pq = q8.classify(vectors=v, labels="L")
        assert all(o.exact for o in seen[:n_exact])
        assert seen[n_exact:] and all(not o.exact and o.quantization_rescore for o in seen[n_exact:])
        agree = np.mean([x.label == y.label for x, y in zip(pe, pq, strict=True)])
        assert agree >= 0.95
        assert q8.search_config.query_options(20).quantization_rescore is True
    finally:
        exact.close()
        q8.close()


# -- stores from before the segment layout: relayout ------------------------------------------------------
def _old_style(e: Any, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> np.ndarray:
    """Collection 'a' as an earlier version created it: no layout file, one appendable segment."""
    from asif_qdrant.engines import edge

    with monkeypatch.context() as m:
        m.setattr(edge, "_segment_layout", lambda spec: None)
        x = _load(e, SearchConfig(), rng)
    assert e._layout("a") is None and e._shard("a").info().segments_count <= 2
    return x


def _records(e: Any) -> list[tuple[int, dict[str, Any], np.ndarray]]:
    return sorted((r.id, r.payload, r.vectors["image"]) for r in e.scroll("a", with_vectors=("image",)))


def _assert_same(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want) == N
    assert [(i, p) for i, p, _ in got] == [(i, p) for i, p, _ in want]
    np.testing.assert_array_equal(np.stack([v for *_, v in got]), np.stack([v for *_, v in want]))


@pytest.mark.slow
def test_relayout_rewrites_an_old_collection_into_segments(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asif_qdrant.engines import edge

    e = edge.EdgeEngine(tmp_path / "store")
    try:
        _old_style(e, monkeypatch, rng)
        monkeypatch.setattr(edge, "SEAL_KB", 40)
        monkeypatch.setattr(edge, "SEGMENTS", 4)
        monkeypatch.setattr(edge, "search_threads", lambda: 2)  # as on this project's 2-core machines
        before = _records(e)
        q = _unit(rng.standard_normal((5, DIM)))
        top_before = dense_topk(e, "a", q, "image", None, K)
        assert e.relayout("a") is True
        assert e.relayout("a") is False  # done once
        # one sealed segment per search thread: N / threads points of DIM float32 each (at least SEAL_KB)
        per = -(-N // edge.search_threads())
        assert e._layout("a") == {"seal_kb": max(40, per * DIM * 4 // 1024), "segments": 4}
        # one sealed segment per search thread, and Edge's empty appendable one
        assert e._shard("a").info().segments_count == edge.search_threads() + 1
        assert e.indexed_vectors("a") == N  # every segment sealed, the last one too
        _assert_same(_records(e), before)
        top_after = dense_topk(e, "a", q, "image", None, K)
        np.testing.assert_array_equal(top_after.ids, top_before.ids)
        assert e.list_collections() == ["a"]
        assert sorted(p.name for p in (tmp_path / "store" / "collections").iterdir()) == ["a"]
    finally:
        e.close()
    e = edge.EdgeEngine(tmp_path / "store")
    try:
        assert e.count("a") == N and e._layout("a")["seal_kb"] == max(40, per * DIM * 4 // 1024)  # type: ignore[index]
    finally:
        e.close()


@pytest.mark.slow
def test_relayout_merges_a_bulk_load_into_one_segment_per_search_thread(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load seals every SEAL_KB: more segments than search threads, each returning its own top k. relayout
    rewrites them into one segment per thread; ids, vectors, payloads and the exact top-k stay the same; then it
    has nothing left to do, until the collection has grown again into more segments."""
    from asif_qdrant.engines import edge

    monkeypatch.setattr(edge, "SEAL_KB", 16)  # 128 points of 32-d float32: a segment per write of 250 below
    monkeypatch.setattr(edge, "SEGMENTS", 32)
    monkeypatch.setattr(edge, "search_threads", lambda: 2)
    e = edge.EdgeEngine(tmp_path / "store")
    try:
        e.create_collection("a", CollectionSpec(dense={"image": DIM}, keyword_indexes={"tenant": True}))
        x = _unit(rng.standard_normal((N, DIM)))
        for s in range(0, N, 250):
            e.upsert("a", PointBatch(list(range(s, s + 250)), {"image": x[s : s + 250]},
                                     payloads=[{"tenant": "_shared"}] * 250))
        assert e._shard("a").info().segments_count >= N // 250  # (and an empty appendable one)
        before = _records(e)
        q = _unit(rng.standard_normal((5, DIM)))
        top_before = dense_topk(e, "a", q, "image", None, K)
        assert e.relayout("a") is True
        assert e._shard("a").info().segments_count == 2 + 1 and e.indexed_vectors("a") == N  # + the appendable one
        assert e._layout("a") == {"seal_kb": N // 2 * DIM * 4 // 1024, "segments": 32}
        assert e.relayout("a") is False
        _assert_same(_records(e), before)
        np.testing.assert_array_equal(dense_topk(e, "a", q, "image", None, K).ids, top_before.ids)
        e.upsert("a", PointBatch([N + 1], {"image": x[:1]}, payloads=[{"tenant": "_shared"}]))
        assert e.relayout("a") is False  # one point more: still two segments (and a tail)
    finally:
        e.close()


@pytest.mark.slow
@pytest.mark.parametrize("crash", ["during-copy", "between-swaps"])
def test_relayout_interrupted_leaves_the_collection_whole(
    crash: str, tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from asif_qdrant.engines import edge

    root = tmp_path / "store" / "collections"
    e = edge.EdgeEngine(tmp_path / "store")
    _old_style(e, monkeypatch, rng)
    before = _records(e)
    e.close()
    if crash == "during-copy":  # a partial copy beside the intact original
        shutil.copytree(root / "a", root / ".relayout-a")
        shutil.rmtree(root / ".relayout-a" / "shard" / "segments")
    else:  # the complete copy written, the original moved aside, the copy not yet moved in
        shutil.copytree(root / "a", root / ".relayout-a")
        (root / "a").rename(root / ".old-a")
    e = edge.EdgeEngine(tmp_path / "store")
    try:
        assert sorted(p.name for p in root.iterdir()) == ["a"]
        assert e.list_collections() == ["a"]
        _assert_same(_records(e), before)
    finally:
        e.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_optimize_relayouts_an_old_store_and_keeps_its_answers(
    tmp_path: Path, request: pytest.FixtureRequest, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asif_qdrant.engines import edge

    with monkeypatch.context() as m:
        m.setattr(edge, "_segment_layout", lambda spec: None)
        a = open_store("edge", tmp_path, request)
    try:
        img, txt = rng.standard_normal((300, IMG_DIM)), rng.standard_normal((300, TXT_DIM))
        a.add_vectors(img, txt, ids=list(range(300)))
        a.define_labels("L", ["a", "b", "c"], "plain", prompt_vectors=rng.standard_normal((3, TXT_DIM)), k=20)
        v = rng.standard_normal((20, IMG_DIM))
        before = [(p.label, p.score) for p in a.classify(vectors=v, labels="L")]
        assert a.engine._layout(a.anchors.collection) is None  # type: ignore[attr-defined]
        assert a.optimize(relayout=False) is False
        assert a.optimize() is True
        assert a.engine._layout(a.anchors.collection) is not None  # type: ignore[attr-defined]
        assert a.optimize() is False
        assert [(p.label, p.score) for p in a.classify(vectors=v, labels="L")] == before
    finally:
        a.close()


@pytest.mark.parametrize(("kind", "bits"), [("turbo4", "bits4"), ("turbo2", "bits2")])
def test_client_engine_creates_turboquant(kind: str, bits: str) -> None:
    fake = _FakeClient()
    e = ClientEngine(client=fake)  # type: ignore[arg-type]
    q, h = SearchConfig(quantization=kind).collection_options()  # type: ignore[arg-type]
    e.create_collection("c", CollectionSpec(dense={"image": 4}, quantization=q, hnsw=h))
    tq = fake.created["c"]["vectors_config"]["image"].quantization_config.turbo
    assert tq.bits.value == bits and tq.always_ram is True
    assert fake.created["c"]["metadata"][SPEC_METADATA_KEY]["quantization"]["kind"] == kind


@pytest.mark.slow
def test_relayout_that_fails_while_copying_removes_its_copy_and_keeps_the_original(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asif_qdrant.engines import edge
    from asif_qdrant.errors import EngineError

    e = edge.EdgeEngine(tmp_path / "store")
    try:
        _old_style(e, monkeypatch, rng)
        before = _records(e)
        real_upsert, calls = e.upsert, []

        def failing(name: str, batch: PointBatch) -> None:
            calls.append(name)
            if len(calls) == 2:  # the second batch of the copy: as if the disk were full
                raise EngineError("Qdrant Edge failed to upsert: No space left on device")
            real_upsert(name, batch)

        monkeypatch.setattr(e, "upsert", failing)
        with pytest.raises(EngineError, match="No space left"):
            e.relayout("a", batch=1000)
        assert calls == [".relayout-a", ".relayout-a"]
        assert sorted(p.name for p in (tmp_path / "store" / "collections").iterdir()) == ["a"]
        assert e._layout("a") is None
        _assert_same(_records(e), before)
    finally:
        e.close()
