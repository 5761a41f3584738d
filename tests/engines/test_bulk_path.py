"""The bulk path of the dense anchor top-k (issue 16): results as arrays instead of one Hit per neighbour.

``query_batch_arrays`` must answer exactly what ``query_batch`` answers (same ids, same scores, same order) on
every engine, through the name mapping of an attached collection, and ``dense_topk`` on it must equal a numpy
brute force with the tie rule (higher similarity, then smaller id)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asif_qdrant.engines.base import (
    ArrayQueries,
    CollectionSpec,
    DenseQuery,
    Engine,
    Filter,
    MatchAny,
    PointBatch,
    query_batch_arrays,
)
from asif_qdrant.engines.client import ClientEngine
from asif_qdrant.engines.edge import EdgeEngine
from asif_qdrant.engines.mapped import MappedEngine
from asif_qdrant.relrep import tie_order
from asif_qdrant.topk import dense_topk

N, DIM = 400, 16
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")


def _engine(kind: str, tmp_path: Path) -> Engine:
    return EdgeEngine(tmp_path / "store") if kind == "edge" else ClientEngine(location=":memory:")


def _load(e: Engine, name: str, vec: str, rng: np.random.Generator) -> np.ndarray:
    e.create_collection(name, CollectionSpec(dense={vec: DIM}, keyword_indexes={"tenant": True}))
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    x[7] = x[3]  # an exact tie: the tie rule must put id 3 first
    tenants = ["_shared" if i % 3 else "acme" for i in range(N)]
    e.upsert(name, PointBatch(list(range(N)), {vec: x}, payloads=[{"tenant": t} for t in tenants]))
    return x


def test_the_bulk_path_is_a_declared_capability(tmp_path: Path) -> None:
    edge, local = EdgeEngine(tmp_path / "store"), ClientEngine(location=":memory:")
    assert isinstance(edge, ArrayQueries) and not isinstance(local, ArrayQueries)
    # a mapped engine forwards the bulk path explicitly, whatever its inner engine offers
    assert isinstance(MappedEngine(local, "asif_anchors", "products"), ArrayQueries)
    edge.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_arrays_equal_query_batch(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    e = _engine(kind, tmp_path)
    _load(e, "a", "image", rng)
    scope = Filter(must=(MatchAny("tenant", ("_shared",)),))
    qs = [DenseQuery("image", v, 25, scope, with_payload=True) for v in rng.standard_normal((5, DIM))]
    qs.append(DenseQuery("image", rng.standard_normal(DIM), N + 10))  # more than there are: every point
    hits = e.query_batch("a", qs)
    arrays = query_batch_arrays(e, "a", qs)
    assert len(arrays) == len(qs)
    for hs, (ids, scores) in zip(hits, arrays, strict=True):
        assert ids.dtype == np.int64 and scores.dtype == np.float64
        assert ids.tolist() == [h.id for h in hs]
        np.testing.assert_allclose(scores, [h.score for h in hs], rtol=0, atol=1e-6)  # local mode: last bits vary
    assert all(i % 3 for i in arrays[0][0])  # the tenant filter held
    # two filters in one batch: each query keeps its own (the engine translates a shared filter once)
    acme = Filter(must=(MatchAny("tenant", ("acme",)),))
    mixed = [DenseQuery("image", v, 30, f) for v, f in zip(rng.standard_normal((4, DIM)), [scope, acme] * 2,
                                                              strict=True)]
    got = query_batch_arrays(e, "a", mixed)
    assert [bool(all(i % 3 for i in ids)) for ids, _ in got] == [True, False, True, False]
    assert all(i % 3 == 0 for ids, _ in got[1::2] for i in ids)
    assert arrays[-1][0].size == N
    assert query_batch_arrays(e, "a", []) == []
    e.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_dense_topk_on_arrays_equals_brute_force_with_tie_rule(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    e = _engine(kind, tmp_path)
    x = _load(e, "a", "image", rng)
    q = rng.standard_normal((130, DIM)).astype(np.float32)  # more than one query chunk
    q[0] = x[3]
    k = 40
    got = dense_topk(e, "a", q, "image", None, k)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qn @ xn.T
    for i in range(len(q)):
        want = tie_order(np.arange(N), sims[i])[:k]
        assert got.ids[i].tolist() == want.tolist()
        np.testing.assert_allclose(got.sims[i], sims[i][want], atol=1e-5)
    assert got.ids[0][:2].tolist() == [3, 7]  # the tie: smaller id first
    e.close()


def test_mapped_engine_translates_the_bulk_path(tmp_path: Path) -> None:
    """An attached collection with other names (collection 'products', vector 'img'): the arrays path maps the
    logical names like query_batch does, instead of forwarding them to the inner engine unchanged."""
    rng = np.random.default_rng(5)
    inner = EdgeEngine(tmp_path / "store")
    _load(inner, "products", "img", rng)
    e = MappedEngine(inner, "asif_anchors", "products", vectors={"image": "img"})
    qs = [DenseQuery("image", v, 10, Filter(must=(MatchAny("tenant", ("acme",)),)))
          for v in rng.standard_normal((3, DIM))]
    want = [[h.id for h in hs] for hs in e.query_batch("asif_anchors", qs)]
    got = query_batch_arrays(e, "asif_anchors", qs)
    assert [ids.tolist() for ids, _ in got] == want
    assert all(i % 3 == 0 for ids, _ in got for i in ids)  # the tenant filter reached the physical collection
    inner.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_score_threshold_keeps_exactly_the_hits_at_or_above_it(kind: str, tmp_path: Path) -> None:
    """The edit scan over a relative index's items asks only for the items at or above their lowest threshold:
    both engines must return exactly the unthresholded hits that score at least that much, in the same order."""
    rng = np.random.default_rng(4)
    e = _engine(kind, tmp_path)
    x = _load(e, "a", "image", rng)
    q = rng.standard_normal(DIM).astype(np.float32)
    full_ids, full_scores = query_batch_arrays(e, "a", [DenseQuery("image", q, N)])[0]
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    np.testing.assert_allclose(full_scores, cos[full_ids], atol=1e-5)
    # cuts between two hits (local mode's float32 dot may move a score by its last bit from one call to the next)
    mids = [float(full_scores[i] + full_scores[i + 1]) / 2 for i in (N // 10, N // 2)]
    for cut, n in [(mids[0], N // 10 + 1), (mids[1], N // 2 + 1), (-2.0, N), (2.0, 0)]:
        ids, scores = query_batch_arrays(e, "a", [DenseQuery("image", q, N, score_threshold=cut)])[0]
        assert ids.tolist() == full_ids[:n].tolist()
        np.testing.assert_allclose(scores, full_scores[:n], rtol=1e-6, atol=1e-7)
    e.close()
