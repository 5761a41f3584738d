"""Tests of asif_qdrant.relrep: hand-computed examples, edge cases and property tests."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from asif_qdrant.errors import InvalidInputError
from asif_qdrant.relrep import (
    MAX_ANCHOR_ID,
    SIM_EPS,
    TIE_TOL,
    SparseRep,
    contributions,
    cut_to_k,
    dense_reference_scores,
    merge_new_anchors,
    relative_rep,
    relative_reps_batch,
    remove_anchors,
    sort_by_tie_rule,
    sparse_dot,
    top_k,
)

PROPS = settings(max_examples=60, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)


# ------------------------------------------------------------------------------------------
# naive references (plain Python loops)
# ------------------------------------------------------------------------------------------


def naive_top_k(ids: list[int], sims: list[float], k: int) -> list[tuple[int, float]]:
    """Tie rule: higher similarity first, equal similarities by smaller id."""
    return sorted(zip(ids, sims, strict=True), key=lambda t: (-t[1], t[0]))[:k]


def naive_rel(pairs: list[tuple[int, float]], p: float) -> dict[int, float]:
    raw = {i: (s if s > SIM_EPS else 0.0) ** p for i, s in pairs}  # at or below SIM_EPS is a zero (module docs)
    norm = math.sqrt(sum(v * v for v in raw.values()))
    return {i: v / norm for i, v in raw.items() if v > 0}


def naive_scores(q, qa, it, ia, k, p, anchor_ids) -> np.ndarray:  # type: ignore[no-untyped-def]
    def cos(x: np.ndarray, y: np.ndarray) -> float:
        dot = sum(float(a) * float(b) for a, b in zip(x, y, strict=True))
        nx = math.sqrt(sum(float(a) ** 2 for a in x))
        ny = math.sqrt(sum(float(b) ** 2 for b in y))
        return dot / (nx * ny)

    def rep(x: np.ndarray, anchors: np.ndarray) -> dict[int, float]:
        sims = [cos(x, a) for a in anchors]
        return naive_rel(naive_top_k(list(anchor_ids), sims, k), p)

    rq = [rep(x, qa) for x in q]
    ri = [rep(y, ia) for y in it]
    return np.array([[sum(v * b.get(i, 0.0) for i, v in a.items()) for b in ri] for a in rq])


def grid_sims(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """Similarities on a coarse grid in [-1, 1], so that ties are frequent."""
    return (rng.integers(-4, 5, size=shape) / 4).astype(dtype)


def spread_sims(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """Similarities uniform in [-1, 1] (ties rare: merges mostly take the plain-insertion path)."""
    return rng.uniform(-1, 1, size=shape).astype(dtype)


def near_sims(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """Similarities in clusters a few TIE_TOLs wide: some pairs are ties, some just clear of them."""
    centres = rng.integers(-3, 4, size=shape) / 4
    return (centres + rng.integers(-3, 4, size=shape) * 1.5 * TIE_TOL).astype(dtype)


SIM_KINDS = {"grid": grid_sims, "spread": spread_sims, "near": near_sims}


def unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct anchor ids, some of them near the top of the u32 range."""
    small = rng.choice(4 * n + 4, size=n, replace=False)
    big = MAX_ANCHOR_ID - small
    return np.where(rng.random(n) < 0.2, big, small).astype(np.int64)


# ------------------------------------------------------------------------------------------
# relative_rep: hand-computed values
# ------------------------------------------------------------------------------------------


def test_relative_rep_hand_example() -> None:
    # ids [7, 3, 1], sims [0.5, -0.2, 0.25], p=2
    # clamp -> [0.5, 0, 0.25]; ^2 -> [0.25, 0, 0.0625]; zero (id 3) dropped
    # norm = sqrt(0.0625 + 0.00390625) = sqrt(0.06640625) = 0.2576941...
    # -> id 7: 0.25/0.2576941 = 0.9701425, id 1: 0.0625/0.2576941 = 0.2425356; sorted by id
    r = relative_rep([7, 3, 1], [0.5, -0.2, 0.25], 2)
    assert r.indices.tolist() == [1, 7]
    np.testing.assert_allclose(r.values, [0.2425356, 0.9701425], atol=1e-7)
    assert len(r) == 2 and not r.is_empty
    assert r.norm() == pytest.approx(1.0, abs=1e-12)
    assert r.indices.dtype == np.int64 and r.values.dtype == np.float64


def test_relative_rep_p1_already_unit() -> None:
    # sims [0.6, 0.8], p=1: already unit norm -> unchanged
    r = relative_rep([2, 5], [0.6, 0.8], 1)
    np.testing.assert_allclose(r.values, [0.6, 0.8], atol=1e-15)


def test_relative_rep_fractional_p() -> None:
    # sims [0.25, 1.0], p=0.5 -> [0.5, 1.0]; norm sqrt(1.25) -> [0.4472136, 0.8944272]
    r = relative_rep([0, 1], [0.25, 1.0], 0.5)
    np.testing.assert_allclose(r.values, [0.4472136, 0.8944272], atol=1e-7)


def test_relative_rep_all_negative_is_empty() -> None:
    r = relative_rep([1, 2, 3], [-0.5, -0.1, 0.0], 8)
    assert r.is_empty and len(r) == 0 and r.norm() == 0.0
    assert not np.isnan(r.values).any()
    assert sparse_dot(r, relative_rep([1], [1.0], 1)) == 0.0
    assert relative_rep([], [], 3).is_empty


def test_relative_rep_underflow_float32() -> None:
    # sims ~2e-6 (just above SIM_EPS) with p=8: x**p ~ 1e-46 underflows float32 (and would give 0/0).
    # Rescaled by the max: (1, 0.75**8 = 0.1001129) -> normalised 0.9950261, 0.0996153
    sims = np.array([2e-6, 1.5e-6], np.float32)
    assert (sims**8 == 0).all()  # the naive computation really underflows
    r = relative_rep(np.array([4, 9], np.uint32), sims, 8)
    assert np.isfinite(r.values).all()
    assert r.norm() == pytest.approx(1.0, abs=1e-12)
    ratio = float(sims[1]) / float(sims[0])
    expected = np.array([1.0, ratio**8]) / math.sqrt(1.0 + ratio**16)
    np.testing.assert_allclose(r.values, expected, rtol=1e-12)
    np.testing.assert_allclose(r.values, [0.9950261, 0.0996153], atol=1e-6)


def test_relative_rep_underflow_float64() -> None:
    # similarities at or below SIM_EPS (1e-6) are float32 noise of a zero: no shared anchor
    assert relative_rep([1, 2], [1e-200, 1e-201], 8).is_empty
    assert relative_rep([1, 2], [1e-6, 9e-7], 8).is_empty
    # a ratio that underflows in float64 is dropped: (1e-50)**8 = 1e-400 -> 0
    r2 = relative_rep([1, 2], [1.0, 1e-50], 8)
    assert r2.indices.tolist() == [1] and r2.values.tolist() == [1.0]


def test_relative_rep_order_independent() -> None:
    a = relative_rep([7, 3, 1], [0.5, -0.2, 0.25], 3)
    b = relative_rep([1, 7, 3], [0.25, 0.5, -0.2], 3)
    assert a == b


@pytest.mark.parametrize(
    ("ids", "sims", "p", "match"),
    [
        ([1, 2], [0.5], 2, "shape"),
        ([1, 2], [0.5, float("nan")], 2, "non-finite"),
        ([1, 2], [0.5, float("inf")], 2, "non-finite"),
        ([1, 2], [0.5, 0.1], 0, "p=0"),
        ([1, 2], [0.5, 0.1], -1.0, "p=-1"),
        ([1, 2], [0.5, 0.1], float("nan"), "p=nan"),
        ([1, 2], [0.5, 0.1], True, "not a number"),
        ([1, 2], [0.5, 0.1], "2", "not a number"),
        ([1, -1], [0.5, 0.1], 2, "unsigned"),
        ([1, 2**32], [0.5, 0.1], 2, "unsigned"),
        ([1, 1], [0.5, 0.1], 2, "twice"),
        ([1.0, 2.0], [0.5, 0.1], 2, "integer"),
        ([[1, 2]], [[0.5, 0.1]], 2, "1-D"),
    ],
)
def test_relative_rep_validation(ids: list, sims: list, p: float, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        relative_rep(ids, sims, p)


def test_relative_rep_uint_ids_above_range() -> None:
    with pytest.raises(InvalidInputError, match="below 2\\*\\*32"):
        relative_rep(np.array([2**32], np.uint64), [0.5], 2)
    r = relative_rep(np.array([MAX_ANCHOR_ID], np.uint32), [0.5], 2)
    assert r.indices.tolist() == [MAX_ANCHOR_ID]


# ------------------------------------------------------------------------------------------
# SparseRep
# ------------------------------------------------------------------------------------------


def test_sparse_rep_invariants() -> None:
    r = SparseRep(np.array([1, 5], np.uint32), np.array([0.6, 0.8], np.float32))
    assert r.indices.dtype == np.int64 and r.values.dtype == np.float64
    with pytest.raises(ValueError):
        r.values[0] = 1.0  # read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.indices = np.array([0])  # type: ignore[misc]
    with pytest.raises(InvalidInputError, match="ascending"):
        SparseRep(np.array([5, 1]), np.array([0.6, 0.8]))
    with pytest.raises(InvalidInputError, match="ascending"):
        SparseRep(np.array([1, 1]), np.array([0.6, 0.8]))
    with pytest.raises(InvalidInputError, match="positive"):
        SparseRep(np.array([1, 2]), np.array([0.0, 0.8]))
    with pytest.raises(InvalidInputError, match="shape"):
        SparseRep(np.array([1, 2]), np.array([0.8]))
    assert SparseRep.empty().is_empty
    assert r.as_lists() == ([1, 5], pytest.approx([0.6, 0.8]))


def test_sparse_rep_to_dense() -> None:
    r = SparseRep(np.array([1, 5]), np.array([0.6, 0.8]))
    np.testing.assert_allclose(r.to_dense(6), [0, 0.6, 0, 0, 0, 0.8])
    np.testing.assert_allclose(r.to_dense([5, 9, 1]), [0.8, 0, 0.6])
    np.testing.assert_allclose(r.to_dense({1: 1, 5: 0}), [0.8, 0.6])
    np.testing.assert_allclose(SparseRep.empty().to_dense([3, 4]), [0, 0])
    with pytest.raises(InvalidInputError, match="missing"):
        r.to_dense([1, 2])
    with pytest.raises(InvalidInputError, match="missing"):
        r.to_dense({1: 0})
    with pytest.raises(InvalidInputError, match="cannot hold"):
        r.to_dense(5)


# ------------------------------------------------------------------------------------------
# relative_reps_batch
# ------------------------------------------------------------------------------------------


def test_relative_reps_batch_padding_hand() -> None:
    # row 0: ids [7, 3, 1] sims [0.5, -0.2, 0.25], p=2 -> hand example above
    # row 1: id 4 sim 0.3 plus a -1 pad (its NaN sim is ignored) -> {4: 1.0}
    # row 2: only negatives -> empty; row 3: all padding by mask -> empty
    ids = np.array([[7, 3, 1], [4, -1, -1], [2, 8, -1], [5, 6, 7]])
    sims = np.array([[0.5, -0.2, 0.25], [0.3, np.nan, 0.0], [-0.1, -0.3, 0.0], [0.9, 0.8, np.inf]])
    valid = np.array([[True] * 3, [True] * 3, [True] * 3, [False] * 3])
    r = relative_reps_batch(ids, sims, 2, valid=valid)
    assert len(r) == 4
    assert r[0].indices.tolist() == [1, 7]
    np.testing.assert_allclose(r[0].values, [0.2425356, 0.9701425], atol=1e-7)
    assert r[1].indices.tolist() == [4] and r[1].values.tolist() == [1.0]
    assert r[2].is_empty and r[3].is_empty


def test_relative_reps_batch_validation() -> None:
    with pytest.raises(InvalidInputError, match="non-finite"):
        relative_reps_batch([[1, 2]], [[0.5, np.nan]], 2)
    with pytest.raises(InvalidInputError, match="unsigned"):
        relative_reps_batch([[1, -2]], [[0.5, 0.1]], 2)
    with pytest.raises(InvalidInputError, match="twice"):
        relative_reps_batch([[1, 2], [3, 3]], [[0.5, 0.1], [0.2, 0.1]], 2)
    with pytest.raises(InvalidInputError, match="boolean"):
        relative_reps_batch([[1, 2]], [[0.5, 0.1]], 2, valid=[[1, 0]])
    with pytest.raises(InvalidInputError, match="2-D"):
        relative_reps_batch([1, 2], [0.5, 0.1], 2)
    assert relative_reps_batch(np.zeros((3, 0), int), np.zeros((3, 0)), 2) == [SparseRep.empty()] * 3


@PROPS
@given(SEEDS, st.integers(1, 6), st.integers(0, 7), st.sampled_from([0.5, 1.0, 2.0, 3.0, 8.0]), st.booleans())
def test_batch_equals_per_row(seed: int, b: int, k: int, p: float, f32: bool) -> None:
    rng = np.random.default_rng(seed)
    ids = np.stack([unique_ids(rng, k) for _ in range(b)]) if k else np.zeros((b, 0), np.int64)
    sims = grid_sims(rng, (b, k), np.float32 if f32 else np.float64) + rng.normal(0, 1e-3, (b, k))
    valid = rng.random((b, k)) < 0.8
    pad = rng.random((b, k)) < 0.1
    ids_padded = np.where(pad, -1, ids)
    sims_dirty = np.where(valid & ~pad, sims, np.nan)
    reps = relative_reps_batch(ids_padded, sims_dirty, p, valid=valid)
    for row in range(b):
        m = valid[row] & ~pad[row]
        one = relative_rep(ids[row][m], sims[row][m], p)
        assert np.array_equal(reps[row].indices, one.indices)
        np.testing.assert_allclose(reps[row].values, one.values, rtol=1e-12, atol=0)
        expect = naive_rel(list(zip(ids[row][m].tolist(), sims[row][m].tolist(), strict=True)), p)
        assert sorted(expect) == one.indices.tolist()
        np.testing.assert_allclose(one.values, [expect[i] for i in sorted(expect)], rtol=1e-9)


# ------------------------------------------------------------------------------------------
# top_k, sort_by_tie_rule, cut_to_k
# ------------------------------------------------------------------------------------------


def test_top_k_ties_hand() -> None:
    # sims [0.5, 0.9, 0.5, 0.9, 0.1] with ids [10, 4, 2, 7, 1], k=3:
    # 0.9 held by ids 4 and 7 -> 4, 7; then 0.5 held by 10 and 2 -> 2 (smaller id) wins
    ids, sims = top_k([0.5, 0.9, 0.5, 0.9, 0.1], 3, ids=[10, 4, 2, 7, 1])
    assert ids.tolist() == [4, 7, 2]
    assert sims.tolist() == [0.9, 0.9, 0.5]
    # default ids are column positions
    ids, _ = top_k([0.5, 0.9, 0.5, 0.9, 0.1], 3)
    assert ids.tolist() == [1, 3, 0]


def test_top_k_k_larger_than_n_and_2d() -> None:
    ids, sims = top_k(np.array([[0.1, 0.3], [0.3, 0.3]], np.float32), 5, ids=[8, 2])
    assert ids.tolist() == [[2, 8], [2, 8]]
    assert sims.dtype == np.float32 and sims.shape == (2, 2)
    ids, _ = top_k(np.array([[0.1, 0.3], [0.3, 0.3]]), 1, ids=[[8, 2], [1, 9]])
    assert ids.tolist() == [[2], [1]]


def test_top_k_validation() -> None:
    with pytest.raises(InvalidInputError, match="k=0"):
        top_k([0.1], 0)
    with pytest.raises(InvalidInputError, match="integer"):
        top_k([0.1], 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="repeated"):
        top_k([0.1, 0.2], 1, ids=[3, 3])
    with pytest.raises(InvalidInputError, match="non-finite"):
        top_k([0.1, np.nan], 1)
    with pytest.raises(InvalidInputError, match="shape"):
        top_k([0.1, 0.2], 1, ids=[3])


@PROPS
@given(SEEDS, st.integers(1, 5), st.integers(0, 30), st.integers(1, 35), st.booleans())
def test_top_k_matches_naive(seed: int, b: int, n: int, k: int, f32: bool) -> None:
    rng = np.random.default_rng(seed)
    sims = grid_sims(rng, (b, n), np.float32 if f32 else np.float64)
    ids = unique_ids(rng, n)
    got_ids, got_sims = top_k(sims, k, ids=ids)
    assert got_sims.dtype == sims.dtype
    for row in range(b):
        exp = naive_top_k(ids.tolist(), sims[row].tolist(), k)
        assert got_ids[row].tolist() == [i for i, _ in exp]
        assert got_sims[row].tolist() == [s for _, s in exp]
        one_ids, _ = top_k(sims[row], k, ids=ids)
        assert one_ids.tolist() == got_ids[row].tolist()
    # sweep: cutting a larger top-K gives the top-k
    big_k = max(k, n) + 1
    all_ids, all_sims = top_k(sims, big_k, ids=ids)
    cut_ids, cut_sims = cut_to_k(all_ids, all_sims, k)
    assert np.array_equal(cut_ids, got_ids) and np.array_equal(cut_sims, got_sims)
    # sort_by_tie_rule of a shuffled answer restores the order
    perm = rng.permutation(n)
    s_ids, s_sims = sort_by_tie_rule(all_ids[:, perm] if n else all_ids, all_sims[:, perm] if n else all_sims)
    assert np.array_equal(s_ids, all_ids)


def test_cut_to_k_hand() -> None:
    ids, sims = cut_to_k([4, 7, 2, 9], [0.9, 0.9, 0.5, 0.1], 2)
    assert ids.tolist() == [4, 7] and sims.tolist() == [0.9, 0.9]
    ids, _ = cut_to_k([4, 7], [0.9, 0.9], 10)  # fewer than k anchors: whole list
    assert ids.tolist() == [4, 7]
    ids, sims = cut_to_k([[4, 7, -1], [1, -1, -1]], [[0.9, 0.8, np.nan], [0.3, np.nan, np.nan]], 2)
    assert ids.tolist() == [[4, 7], [1, -1]]
    with pytest.raises(InvalidInputError, match="sort_by_tie_rule"):
        cut_to_k([7, 4], [0.9, 0.9], 1)  # tie in the wrong order
    with pytest.raises(InvalidInputError, match="sort_by_tie_rule"):
        cut_to_k([4, 7], [0.5, 0.9], 1)
    with pytest.raises(InvalidInputError, match="sort_by_tie_rule"):
        cut_to_k([[4, -1, 7]], [[0.9, 0.0, 0.1]], 1)


# ------------------------------------------------------------------------------------------
# sparse_dot and contributions
# ------------------------------------------------------------------------------------------


def test_sparse_dot_and_contributions_hand() -> None:
    a = SparseRep(np.array([1, 2]), np.array([0.6, 0.8]))
    b = SparseRep(np.array([1, 2]), np.array([0.8, 0.6]))
    # 0.6*0.8 + 0.8*0.6 = 0.96; equal contributions 0.48 ordered by smaller id
    assert sparse_dot(a, b) == pytest.approx(0.96, abs=1e-15)
    ids, c = contributions(a, b)
    assert ids.tolist() == [1, 2]
    np.testing.assert_allclose(c, [0.48, 0.48], atol=1e-15)
    # a = {1: .6, 2: .8}, d = {2: .6, 3: .8}: only anchor 2 shared -> 0.8*0.6 = 0.48
    d = SparseRep(np.array([2, 3]), np.array([0.6, 0.8]))
    assert sparse_dot(a, d) == pytest.approx(0.48, abs=1e-15)
    ids, c = contributions(a, d)
    assert ids.tolist() == [2] and c.tolist() == pytest.approx([0.48])
    # e = {1: 0.1, 2: 0.9}: contributions 0.06 (id 1), 0.72 (id 2) -> largest first
    e = SparseRep(np.array([1, 2]), np.array([0.1, 0.9]))
    ids, c = contributions(a, e)
    assert ids.tolist() == [2, 1]
    assert sparse_dot(a, SparseRep.empty()) == 0.0
    assert contributions(a, SparseRep.empty())[0].size == 0


@PROPS
@given(SEEDS, st.integers(0, 12), st.integers(0, 12), st.sampled_from([1.0, 2.0, 8.0]))
def test_sparse_dot_equals_dense(seed: int, na: int, nb: int, p: float) -> None:
    rng = np.random.default_rng(seed)
    pool = unique_ids(rng, 16)
    a = relative_rep(rng.choice(pool, na, replace=False), rng.uniform(-0.5, 1, na), p)
    b = relative_rep(rng.choice(pool, nb, replace=False), rng.uniform(-0.5, 1, nb), p)
    dense = float(np.dot(a.to_dense(pool), b.to_dense(pool)))
    assert sparse_dot(a, b) == pytest.approx(dense, abs=1e-12)
    ids, c = contributions(a, b)
    assert abs(float(c.sum()) - sparse_dot(a, b)) <= 1e-9
    assert (np.diff(c) <= 0).all()
    assert set(ids.tolist()) == set(a.indices.tolist()) & set(b.indices.tolist())


# ------------------------------------------------------------------------------------------
# dense_reference_scores
# ------------------------------------------------------------------------------------------


def test_dense_reference_hand() -> None:
    # image anchors a0=[1,0], a1=[0,1], a2=[1,1]/sqrt2; text anchors b0=[1,0], b1=[0,1], b2=[-1,1]/sqrt2
    # query q=[1,0]: sims [1, 0, 0.7071]; k=2 -> {0: 1, 2: 0.7071}; p=1, norm sqrt(1.5)
    #   -> {0: 0.8164966, 2: 0.5773503 (= 1/sqrt3)}
    # item t1=[0,1]: sims [0, 1, 0.7071] -> {1: 0.8164966, 2: 1/sqrt3}; score = (1/sqrt3)^2 = 1/3
    # item t2=[1,0]: sims [1, 0, -0.7071] -> top-2 ids 0, 1 -> clamp -> {0: 1}; score = 0.8164966
    qa = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ia = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])
    s = dense_reference_scores([[1.0, 0.0]], qa, [[0.0, 1.0], [2.0, 0.0]], ia, k=2, p=1)
    np.testing.assert_allclose(s, [[1 / 3, math.sqrt(2 / 3)]], atol=1e-12)
    # k=1: q -> {0: 1}; t1 -> {1: 1}; t2 -> {0: 1}
    s = dense_reference_scores([[1.0, 0.0]], qa, [[0.0, 1.0], [2.0, 0.0]], ia, k=1, p=1)
    np.testing.assert_allclose(s, [[0.0, 1.0]], atol=1e-12)


def test_dense_reference_validation() -> None:
    a = np.eye(3)
    with pytest.raises(InvalidInputError, match="all zeros"):
        dense_reference_scores([[0.0, 0.0, 0.0]], a, a, a, 2, 1)
    with pytest.raises(InvalidInputError, match="dim"):
        dense_reference_scores([[1.0, 0.0]], a, a, a, 2, 1)
    with pytest.raises(InvalidInputError, match="anchors"):
        dense_reference_scores(a, a, a, a[:2], 2, 1)


def _unit_grid_vectors(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Vectors with exactly 4 entries of +-0.5: unit norm exactly, cosines exact multiples of 1/4."""
    out = np.zeros((n, d))
    for r in range(n):
        out[r, rng.choice(d, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return out


@PROPS
@given(SEEDS, st.integers(1, 4), st.integers(1, 4), st.integers(1, 12), st.integers(1, 14), st.booleans())
def test_dense_reference_matches_naive_with_ties(seed: int, b: int, m: int, n: int, k: int, ids_: bool) -> None:
    rng = np.random.default_rng(seed)
    q, qa = _unit_grid_vectors(rng, b, 6), _unit_grid_vectors(rng, n, 6)
    it, ia = _unit_grid_vectors(rng, m, 5), _unit_grid_vectors(rng, n, 5)
    anchor_ids = unique_ids(rng, n) if ids_ else np.arange(n)
    p = float(rng.choice([1.0, 2.0, 8.0]))
    got = dense_reference_scores(q, qa, it, ia, k, p, anchor_ids=anchor_ids if ids_ else None)
    np.testing.assert_allclose(got, naive_scores(q, qa, it, ia, k, p, anchor_ids), atol=1e-12)


@PROPS
@given(SEEDS, st.integers(1, 4), st.integers(1, 4), st.integers(1, 12), st.integers(1, 14))
def test_dense_reference_matches_naive_gaussian(seed: int, b: int, m: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    q, qa = rng.normal(size=(b, 7)) * 3, rng.normal(size=(n, 7))
    it, ia = rng.normal(size=(m, 4)), rng.normal(size=(n, 4)) * 0.1
    for x, a in ((q, qa), (it, ia)):  # skip near-ties at the k-th place (rounding could flip them)
        s = np.sort((x / np.linalg.norm(x, axis=1, keepdims=True)) @ (a / np.linalg.norm(a, axis=1)[:, None]).T)
        if k < n:
            assume(np.abs(s[:, n - k] - s[:, n - k - 1]).min() > 1e-9)
    got = dense_reference_scores(q, qa, it, ia, k, 3.0)
    np.testing.assert_allclose(got, naive_scores(q, qa, it, ia, k, 3.0, list(range(n))), atol=1e-9)


# ------------------------------------------------------------------------------------------
# incremental top-k
# ------------------------------------------------------------------------------------------


def test_merge_and_remove_hand() -> None:
    ids, sims = [5, 2, 9], [0.9, 0.5, 0.3]  # threshold 0.3, held by id 9
    # id 1 ties the threshold with a smaller id than 9 -> enters, 9 leaves
    out = merge_new_anchors(ids, sims, [1], [0.3], 3)
    assert out[0].tolist() == [5, 2, 1] and out[1].tolist() == [0.9, 0.5, 0.3] and out[2] is True
    # id 11 ties with a larger id -> does not enter
    out = merge_new_anchors(ids, sims, [11], [0.3], 3)
    assert out[0].tolist() == [5, 2, 9] and out[2] is False
    # id 4 at 0.6 goes second
    out = merge_new_anchors(ids, sims, [4], [0.6], 3)
    assert out[0].tolist() == [5, 4, 2] and out[1].tolist() == [0.9, 0.6, 0.5]
    # not full (k=5, only 3 anchors existed): a negative anchor still enters
    out = merge_new_anchors(ids, sims, [4], [-0.6], 5)
    assert out[0].tolist() == [5, 2, 9, 4] and out[2] is True
    # removal leaves holes for the caller to re-query
    r_ids, r_sims, n = remove_anchors(ids, sims, [2, 99])
    assert r_ids.tolist() == [5, 9] and r_sims.tolist() == [0.9, 0.3] and n == 1


def test_merge_validation() -> None:
    with pytest.raises(InvalidInputError, match="already in"):
        merge_new_anchors([5, 2], [0.9, 0.5], [2], [0.7], 2)
    with pytest.raises(InvalidInputError, match="repeated"):
        merge_new_anchors([5, 2], [0.9, 0.5], [3, 3], [0.7, 0.1], 2)
    with pytest.raises(InvalidInputError, match="k=1"):
        merge_new_anchors([5, 2], [0.9, 0.5], [3], [0.7], 1)
    with pytest.raises(InvalidInputError, match="sort_by_tie_rule"):
        merge_new_anchors([2, 5], [0.5, 0.9], [3], [0.7], 2)
    with pytest.raises(InvalidInputError, match="sort_by_tie_rule"):
        remove_anchors([9, 2], [0.5, 0.5], [3])


@PROPS
@given(SEEDS, st.integers(0, 20), st.integers(0, 8), st.integers(1, 10), st.booleans(),
       st.sampled_from(sorted(SIM_KINDS)))
def test_merge_equals_recompute(seed: int, n_old: int, n_new: int, k: int, f32: bool, kind: str) -> None:
    """Both of merge's paths (the tie-rule sort when a new similarity is near a stored one, the plain insertion
    when every one is clear of ties) equal a recompute of the union."""
    rng = np.random.default_rng(seed)
    ids = unique_ids(rng, n_old + n_new)
    sims = SIM_KINDS[kind](rng, (n_old + n_new,), np.float32 if f32 else np.float64)
    item_ids, item_sims = top_k(sims[:n_old], k, ids=ids[:n_old]) if n_old else (ids[:0], sims[:0])
    perm = rng.permutation(n_new)
    got_ids, got_sims, changed = merge_new_anchors(item_ids, item_sims, ids[n_old:][perm], sims[n_old:][perm], k)
    if n_old + n_new:
        exp_ids, exp_sims = top_k(sims, k, ids=ids)
    else:
        exp_ids, exp_sims = ids[:0], sims[:0]
    assert got_ids.tolist() == exp_ids.tolist() and got_sims.tolist() == exp_sims.tolist()
    assert changed == bool(set(got_ids.tolist()) & set(ids[n_old:].tolist()))


@PROPS
@given(SEEDS, st.integers(1, 20), st.integers(1, 10), st.floats(0, 1))
def test_remove_then_fill_equals_recompute(seed: int, n: int, k: int, frac: float) -> None:
    rng = np.random.default_rng(seed)
    ids = unique_ids(rng, n)
    sims = grid_sims(rng, (n,))
    item_ids, item_sims = top_k(sims, k, ids=ids)
    gone = rng.random(n) < frac
    left_ids, left_sims, n_removed = remove_anchors(item_ids, item_sims, ids[gone])
    assert n_removed == len(set(item_ids.tolist()) & set(ids[gone].tolist()))
    keep = ~gone
    exp_ids, exp_sims = top_k(sims[keep], k, ids=ids[keep]) if keep.any() else (ids[:0], sims[:0])
    # the caller re-queries the remaining anchors; the n_removed best not already present fill the holes
    cand_ids, cand_sims = top_k(sims[keep], k, ids=ids[keep]) if keep.any() else (ids[:0], sims[:0])
    new = ~np.isin(cand_ids, left_ids)
    got_ids, got_sims, _ = merge_new_anchors(
        left_ids, left_sims, cand_ids[new][:n_removed], cand_sims[new][:n_removed], k
    )
    assert got_ids.tolist() == exp_ids.tolist() and got_sims.tolist() == exp_sims.tolist()


# -- ties within a tolerance (engine noise must not decide) -----------------------------------------------------


def test_noise_across_a_rounding_boundary_is_a_tie() -> None:
    """Anchors 3 and 7 have identical vectors; the engine scored them 1e-10 apart, on either side of a 9-decimal
    rounding boundary (0.7000000004 -> 0.7, 0.7000000005 -> 0.700000001). They tie: the smaller id, 3, comes first,
    in a top-k, a sort, and a merge of 3 into a list that holds 7."""
    from asif_qdrant.relrep import TIE_TOL, tie_order

    ids, sims = [7, 3, 5], [0.7000000005, 0.7000000004, 0.2]
    assert top_k(sims, 1, ids=ids)[0].tolist() == [3]
    assert sort_by_tie_rule(ids, sims)[0].tolist() == [3, 7, 5]
    assert tie_order(ids, sims).tolist() == [1, 0, 2]
    # a list built by one query (7 first: 3 was not there yet), then 3 added, scored by another query
    got_ids, got_sims, changed = merge_new_anchors([7], [0.7000000005], [3], [0.7000000004], 1)
    assert (got_ids.tolist(), got_sims.tolist(), changed) == ([3], [0.7000000004], True)
    # the other way round: 7 arrives second, scored a little higher, and stays out
    got_ids, _, changed = merge_new_anchors([3], [0.7000000004], [7], [0.7000000005], 1)
    assert (got_ids.tolist(), changed) == ([3], False)
    # a stored list in tie order whose later entry is a hair higher is valid (a cut keeps it), a real misorder not
    assert cut_to_k([3, 7], [0.7000000004, 0.7000000005], 1)[0].tolist() == [3]
    with pytest.raises(InvalidInputError, match="sort_by_tie_rule"):
        cut_to_k([3, 7], [0.7, 0.7 + 10 * TIE_TOL], 1)
    # beyond the tolerance the similarity decides, whatever the ids
    assert top_k([0.7 + 2 * TIE_TOL, 0.7], 1, ids=[9, 1])[0].tolist() == [9]


def test_tie_groups_are_led_top_down() -> None:
    """A tolerance is not transitive: 0.5, 0.5-0.9e-6 and 0.5-1.8e-6 chain, but the first and the last are 1.8e-6
    apart. Groups form top-down: 0.5 leads {0.5, 0.5-0.9e-6}; 0.5-1.8e-6 leads its own. A group spans at most
    TIE_TOL, and a prefix of an ordered list keeps its order."""
    from asif_qdrant.relrep import tie_order

    ids = np.array([5, 9, 1])
    sims = np.array([0.5, 0.5 - 0.9e-6, 0.5 - 1.8e-6])
    assert ids[tie_order(ids, sims)].tolist() == [5, 9, 1]
    ids2 = np.array([9, 5, 1])  # the leader has the larger id: the group is in id order
    assert ids2[tie_order(ids2, sims)].tolist() == [5, 9, 1]
    for cut in (1, 2, 3):
        o = tie_order(ids2, sims)[:cut]
        assert tie_order(ids2[o], sims[o]).tolist() == list(range(cut))
    # a run of 40 near-equal values at the k-th place (more than the preselection's margin): the smallest ids win
    rng = np.random.default_rng(0)
    n = 200
    s = rng.uniform(-1, 0.4, n)
    s[rng.choice(n, 40, replace=False)] = 0.6 - rng.uniform(0, 0.5e-6, 40)
    col = rng.permutation(n)
    got_ids, _ = top_k(s, 5, ids=col)
    assert got_ids.tolist() == sorted(col[s > 0.5].tolist())[:5]
