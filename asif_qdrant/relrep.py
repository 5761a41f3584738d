"""The ASIF math, in pure numpy: relative representations, sparse dots, incremental top-k.

An input's *relative representation* (Norelli et al., NeurIPS 2023) is built from its cosine
similarities to the N anchors of its modality:

1. keep only the top-k similarities (see the tie rule below);
2. clamp negative similarities to 0;
3. raise to the power p;
4. L2-normalise.

The result is a sparse vector whose indices are anchor ids (unsigned integers below 2**32,
because Qdrant uses them as sparse-vector indices). Comparing two inputs of different
modalities is the dot product of their relative representations.

Tie rule (one rule everywhere: this module, the anchor queries, the incremental updates):
candidates are ordered by **higher similarity first; similarities within ``TIE_TOL`` (1e-6) of
each other are ties, ordered by smaller anchor id first**. Engines score the same pair with a
different summation order depending on the query's shape (two anchors with identical vectors come
back ~4e-10 apart), which must not decide which of two equal anchors is kept; rounding to a fixed
number of decimals does not do that (two values 4e-10 apart straddle a rounding boundary about
once in three), a tolerance does. A tolerance is not transitive, so ties are grouped top-down
(:func:`tie_order`): the highest remaining similarity leads a group holding every candidate within
``TIE_TOL`` below it; groups come in leader order, a group's members in id order. Two consequences
that make the rule safe to apply to partial lists: a group never spans more than ``TIE_TOL``, and
the order of a prefix of an ordered list is the prefix (cutting a list to k keeps its order). The
top-k is the first k candidates in that order, so it is unique even when similarities tie at the
k-th place. 1e-6 is far below what any encoder means (cosines of float32 vectors are good to
~1e-7) and far above the engines' noise.

Numerical stability: powering is done in float64 *after dividing by the largest kept
similarity*, using ``x**p / m**p == (x/m)**p``. The largest entry therefore becomes exactly 1 and
the L2 norm lies in ``[1, sqrt(k)]``, so normalisation never divides by an underflowed zero,
even when every ``x**p`` would underflow (e.g. ``x ~ 1e-6`` and ``p = 8`` in float32). Entries
whose ratio ``(x/m)**p`` underflows to 0 in float64 (below ~1e-308 relative to the largest) are
dropped: they could not be stored as a non-zero float32 sparse value anyway (p is bounded by
``validate.MAX_P`` = 64, see there, so that this stays the exception). A representation
with no positive similarity is *empty*, never NaN.

Similarities at or below ``SIM_EPS`` (1e-6) count as zero: engines compute cosine in float32, so
orthogonal vectors come back as +-1e-7 noise, which must not make an input "share" an anchor.

Nothing here imports qdrant or torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from asif_qdrant.errors import InvalidInputError
from asif_qdrant.validate import MAX_ANCHOR_ID, check_k, check_p

__all__ = [
    "MAX_ANCHOR_ID",
    "SparseRep",
    "contributions",
    "cut_to_k",
    "dense_reference_scores",
    "exact_prefix",
    "merge_new_anchors",
    "relative_rep",
    "relative_reps_batch",
    "remove_anchors",
    "sort_by_tie_rule",
    "rank_with_ties",
    "CooIndex",
    "coo_index",
    "coo_scores",
    "coo_scores_indexed",
    "rep_rows",
    "score_matrix",
    "tie_order",
    "sparse_dot",
    "top_k",
]

TIE_TOL: float = 1e-6
"""Similarities within this of each other (top-down groups, see :func:`tie_order`) are ties, broken by the smaller
anchor id. Similarities are cosines in [-1, 1], so the tolerance is absolute (relative to 1)."""

SIM_EPS: float = 1e-6
"""Similarities at or below this are treated as zero (float32 rounding noise of an exact zero)."""

# MAX_ANCHOR_ID (2**32 - 1, the largest valid anchor id: anchor ids double as Qdrant sparse-vector indices, which
# are u32) and the rules for k and p (p <= validate.MAX_P) live in validate.py.

_PAD_KEY = np.int64(2**32)  # sorts after every valid anchor id

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating[Any]]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _as_int_array(x: npt.ArrayLike, name: str) -> IntArray:
    """Convert to int64 without checking the range (callers check the entries they use)."""
    a = np.asarray(x)
    if a.size == 0:
        return a.astype(np.int64)
    if a.dtype.kind == "u":
        if a.max() > MAX_ANCHOR_ID:
            raise InvalidInputError(
                f"{name} contains {int(a.max())}, above {MAX_ANCHOR_ID}; anchor ids must be unsigned "
                "integers below 2**32."
            )
        return a.astype(np.int64)
    if a.dtype.kind != "i":
        raise InvalidInputError(
            f"{name} has dtype {a.dtype}; pass anchor ids as an integer array (e.g. np.int64 or np.uint32)."
        )
    return a.astype(np.int64, copy=False)


def _check_id_range(ids: IntArray, name: str, mask: npt.NDArray[np.bool_] | None = None) -> None:
    used = ids if mask is None else ids[mask]
    bad = (used < 0) | (used > MAX_ANCHOR_ID)
    if bad.any():
        raise InvalidInputError(
            f"{name} contains {int(used[bad][0])}; anchor ids must be unsigned integers in "
            f"[0, {MAX_ANCHOR_ID}] (they are Qdrant sparse-vector indices)."
        )


def _as_float_array(x: npt.ArrayLike, name: str) -> FloatArray:
    a = np.asarray(x)
    if a.dtype in (np.float32, np.float64):
        return a
    if a.size == 0 or a.dtype.kind in "iuf":
        return a.astype(np.float64)
    raise InvalidInputError(f"{name} has dtype {a.dtype}; pass similarities as a float array.")


def _check_finite(a: FloatArray, name: str, mask: npt.NDArray[np.bool_] | None = None) -> None:
    used = a if mask is None else a[mask]
    bad = ~np.isfinite(used)
    if bad.any():
        raise InvalidInputError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf); pass finite cosine "
            "similarities (check the encoder output for NaN)."
        )


def _check_ndim(a: np.ndarray, ndims: tuple[int, ...], name: str) -> None:
    if a.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise InvalidInputError(f"{name} has shape {a.shape}; pass a {want} array.")


def _check_same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise InvalidInputError(
            f"{na} has shape {a.shape} but {nb} has shape {b.shape}; pass one similarity per anchor id."
        )


def _group_starts(desc: npt.NDArray[np.float64], tol: float = TIE_TOL) -> npt.NDArray[np.bool_]:
    """``(B, n)`` similarities sorted descending per row -> where each tie group starts (top-down: the highest
    remaining value leads, every value within ``tol`` below it joins). A gap wider than ``tol`` always starts a
    group; only runs of close values longer than ``tol`` in all (rare) are walked one by one."""
    b, n = desc.shape
    starts = np.ones((b, n), bool)
    if n <= 1:
        return starts
    with np.errstate(invalid="ignore"):
        starts[:, 1:] = (desc[:, :-1] - desc[:, 1:]) > tol
        run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0), axis=1)
        lead = np.take_along_axis(desc, run_start, axis=1)
        long_rows = np.flatnonzero(((lead - desc) > tol).any(axis=1))
    for r in long_rows.tolist():
        row, st = desc[r], starts[r]
        lead_v = row[0]
        for j in range(1, n):
            if st[j] or row[j] < lead_v - tol:
                st[j], lead_v = True, row[j]
    return starts


def tie_order(ids: npt.ArrayLike, sims: npt.ArrayLike, tol: float = TIE_TOL) -> npt.NDArray[np.intp]:
    """Positions along the last axis of ``(n,)`` or ``(B, n)`` ids/sims in tie-rule order: higher similarity
    first; similarities within ``tol`` of their group's leader (the highest of the group) are ties, in smaller-id
    order. Equal inputs give equal orders whatever the engine's noise below ``tol``."""
    i = np.asarray(ids, np.int64)
    s = np.asarray(sims, np.float64)
    one_d = s.ndim == 1
    i2, s2 = (i[None, :], s[None, :]) if one_d else (i, s)
    if s2.shape[-1] == 0:
        out = np.zeros(s2.shape, np.intp)
        return out[0] if one_d else out
    by_score = np.lexsort((i2, -s2), axis=-1)
    desc = np.take_along_axis(s2, by_score, axis=1)
    ids_desc = np.take_along_axis(i2, by_score, axis=1)
    group = np.cumsum(_group_starts(desc, tol), axis=1)
    out = np.take_along_axis(by_score, np.lexsort((ids_desc, group), axis=-1), axis=1)
    return out[0] if one_d else out


def exact_prefix(sims: npt.ArrayLike, k: int, tol: float = TIE_TOL) -> bool:
    """True when the first ``k`` of a list ordered by :func:`tie_order` are the first ``k`` of any larger set
    that adds only candidates at or below ``min(sims)``: at least ``k`` of them lie more than ``tol`` above it
    (so no tie group that reaches the first ``k`` can take in an unseen candidate)."""
    s = np.asarray(sims, np.float64)
    if s.size == 0:
        return k <= 0
    return int((s > float(s.min()) + tol).sum()) >= k


RESULT_TIE_TOL: float = 1e-6
"""Result scores (label set / gallery items) within this of each other, relative to the best score, are ties."""


def rank_with_ties(ids: npt.ArrayLike, scores: npt.ArrayLike, tol: float = RESULT_TIE_TOL) -> npt.NDArray[np.intp]:
    """Positions of results in the one documented order: higher score first; scores that chain within ``tol``
    (relative to the largest magnitude) of each other are ties, ordered by smaller id first.

    Engines compute the same dot product with a different summation order depending on the batch (a last-bit
    difference), so neither the engine's order of equal scores nor its noise may decide a ranking."""
    i = np.asarray(ids, np.int64)
    s = np.asarray(scores, np.float64)
    if s.size == 0:
        return np.zeros(0, np.intp)
    order = np.lexsort((i, -s))
    gaps = -np.diff(s[order])
    group = np.concatenate([[0], np.cumsum(gaps > tol * max(1.0, float(np.abs(s).max())))])
    return order[np.lexsort((i[order], group))]


def _tie_rule_ok(ids: IntArray, sims: FloatArray) -> npt.NDArray[np.bool_]:
    """For consecutive pairs along the last axis: may entry j come before entry j+1 under the tie rule? (strictly
    higher, or within TIE_TOL above, below or equal and a smaller id: a tie group spans at most TIE_TOL)."""
    s = np.asarray(sims, np.float64)
    s0, s1 = s[..., :-1], s[..., 1:]
    i0, i1 = ids[..., :-1], ids[..., 1:]
    return (s0 > s1) | ((s1 - s0 <= TIE_TOL) & (i0 < i1))


def _check_sorted_1d(ids: IntArray, sims: FloatArray, name: str) -> None:
    ok = _tie_rule_ok(ids, sims)
    if not ok.all():
        j = int(np.flatnonzero(~ok)[0])
        raise InvalidInputError(
            f"{name} is not in tie-rule order at positions {j},{j + 1} (ids {int(ids[j])},{int(ids[j + 1])}, "
            f"sims {float(sims[j])!r},{float(sims[j + 1])!r}); it must be sorted by similarity descending, "
            "ties by smaller id, without duplicate ids: sort it with sort_by_tie_rule first."
        )


def _item_list(ids: npt.ArrayLike, sims: npt.ArrayLike, name: str) -> tuple[IntArray, FloatArray]:
    """Validate an item's stored top-k list (1-D, in tie-rule order)."""
    i = _as_int_array(ids, f"{name} ids")
    s = _as_float_array(sims, f"{name} sims")
    _check_ndim(i, (1,), f"{name} ids")
    _check_ndim(s, (1,), f"{name} sims")
    _check_same_shape(i, s, f"{name} ids", f"{name} sims")
    _check_id_range(i, f"{name} ids")
    _check_finite(s, f"{name} sims")
    _check_sorted_1d(i, s, name)
    return i, s


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# SparseRep
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class SparseRep:
    """A sparse relative representation: ``indices`` (anchor ids, int64, strictly ascending, each
    in ``[0, 2**32)``) and ``values`` (float64, finite, strictly positive). Arrays are read-only.

    Build one with :func:`relative_rep`; the constructor validates and copies its inputs.
    """

    indices: IntArray
    values: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        idx = _as_int_array(self.indices, "SparseRep.indices")
        val = _as_float_array(self.values, "SparseRep.values").astype(np.float64)
        _check_ndim(idx, (1,), "SparseRep.indices")
        _check_ndim(val, (1,), "SparseRep.values")
        _check_same_shape(idx, val, "SparseRep.indices", "SparseRep.values")
        _check_id_range(idx, "SparseRep.indices")
        if idx.size > 1 and not (np.diff(idx) > 0).all():
            raise InvalidInputError(
                "SparseRep.indices must be strictly ascending (sorted, no duplicates); sort them together "
                "with their values, or build the rep with relative_rep."
            )
        if not (np.isfinite(val).all() and (val > 0).all()):
            raise InvalidInputError(
                "SparseRep.values must be finite and strictly positive (zeros are dropped); build the rep "
                "with relative_rep."
            )
        object.__setattr__(self, "indices", _readonly(np.array(idx, dtype=np.int64)))
        object.__setattr__(self, "values", _readonly(np.array(val, dtype=np.float64)))

    @classmethod
    def _trusted(cls, indices: IntArray, values: npt.NDArray[np.float64]) -> SparseRep:
        """Skip validation: for arrays already known to satisfy the invariants."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "indices", _readonly(indices))
        object.__setattr__(obj, "values", _readonly(values))
        return obj

    @classmethod
    def empty(cls) -> SparseRep:
        """The empty representation (an input with no positive similarity to its top-k anchors)."""
        return cls._trusted(np.zeros(0, np.int64), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def is_empty(self) -> bool:
        """True when no anchor has a positive weight; every dot product with it is 0."""
        return self.indices.size == 0

    def norm(self) -> float:
        """L2 norm of the values (1 for a non-empty :func:`relative_rep`, 0 for an empty one)."""
        return float(np.sqrt(np.dot(self.values, self.values)))

    def as_lists(self) -> tuple[list[int], list[float]]:
        """``(indices, values)`` as Python lists, ready for a Qdrant ``SparseVector``."""
        return self.indices.tolist(), self.values.tolist()

    def to_dense(self, columns: int | Mapping[int, int] | npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Dense float64 vector.

        ``columns`` is either an int n (column = anchor id, all ids must be < n), a mapping
        anchor id -> column (length = len(mapping)), or an array of anchor ids, one per column.
        """
        if isinstance(columns, numbers.Integral) and not isinstance(columns, bool):
            n = int(columns)
            if self.indices.size and int(self.indices[-1]) >= n:
                raise InvalidInputError(
                    f"to_dense({n}) cannot hold anchor id {int(self.indices[-1])}; pass n > the largest id, "
                    "or the array of anchor ids that label the columns."
                )
            out = np.zeros(n, np.float64)
            out[self.indices] = self.values
            return out
        if isinstance(columns, Mapping):
            out = np.zeros(len(columns), np.float64)
            try:
                cols = np.array([columns[int(i)] for i in self.indices.tolist()], dtype=np.int64)
            except KeyError as e:
                raise InvalidInputError(
                    f"to_dense: anchor id {e.args[0]} is missing from the column mapping; include every "
                    "anchor id of the rep."
                ) from None
            out[cols] = self.values
            return out
        ids = _as_int_array(columns, "to_dense columns")
        _check_ndim(ids, (1,), "to_dense columns")
        out = np.zeros(ids.size, np.float64)
        if self.indices.size == 0:
            return out
        sorter = np.argsort(ids, kind="stable")
        pos = np.minimum(np.searchsorted(ids, self.indices, sorter=sorter), ids.size - 1)
        cols = sorter[pos] if ids.size else np.zeros(self.indices.size, np.intp)
        found = ids[cols] == self.indices if ids.size else np.zeros(self.indices.size, bool)
        if not found.all():
            raise InvalidInputError(
                f"to_dense: anchor id {int(self.indices[~found][0])} is missing from the column ids; include "
                "every anchor id of the rep."
            )
        out[cols] = self.values
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseRep):
            return NotImplemented
        return bool(np.array_equal(self.indices, other.indices) and np.array_equal(self.values, other.values))

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------
# relative representations
# --------------------------------------------------------------------------------------------


def _rel_values(sims: npt.NDArray[np.float64], keep: npt.NDArray[np.bool_], p: float) -> npt.NDArray[np.float64]:
    """Row-wise clamp >= 0, ^p and L2-normalise of the kept entries (others -> 0), in float64.

    Each row is divided by its largest kept positive similarity m before powering
    ((x/m)**p == x**p / m**p), so the largest entry is exactly 1 and the norm is in [1, sqrt(k)].
    Rows without a positive kept entry come back all zero.
    """
    x = np.where(keep & (sims > SIM_EPS), sims, 0.0)
    m = x.max(axis=1, initial=0.0)
    pos = m > 0
    safe_m = np.where(pos, m, 1.0)
    with np.errstate(under="ignore"):
        y = (x / safe_m[:, None]) ** p
        norm = np.sqrt((y * y).sum(axis=1))
        return y / np.where(pos, norm, 1.0)[:, None]


def _reps_from_rows(
    ids: IntArray, sims: npt.NDArray[np.float64], keep: npt.NDArray[np.bool_], p: float
) -> list[SparseRep]:
    """ids, sims, keep: (B, k), already validated in the kept slots."""
    b = ids.shape[0]
    if ids.shape[1] == 0:
        return [SparseRep.empty() for _ in range(b)]
    key = np.where(keep, ids, _PAD_KEY)
    order = np.argsort(key, axis=1, kind="stable")
    skey = np.take_along_axis(key, order, axis=1)
    dup = (skey[:, 1:] == skey[:, :-1]) & (skey[:, 1:] != _PAD_KEY)
    if dup.any():
        row = int(np.flatnonzero(dup.any(axis=1))[0])
        col = int(np.flatnonzero(dup[row])[0])
        raise InvalidInputError(
            f"anchor id {int(skey[row, col])} appears twice in the top-k of row {row}; each anchor may "
            "appear once per item (deduplicate the ids)."
        )
    vals = np.take_along_axis(_rel_values(sims, keep, p), order, axis=1)
    nz = vals > 0
    counts = nz.sum(axis=1)
    flat_ids = skey[nz]
    flat_vals = vals[nz]
    splits = np.cumsum(counts)[:-1]
    return [
        SparseRep._trusted(i, v) for i, v in zip(np.split(flat_ids, splits), np.split(flat_vals, splits), strict=True)
    ]


def relative_rep(ids: npt.ArrayLike, sims: npt.ArrayLike, p: float) -> SparseRep:
    """One item's relative representation from its top-k anchor ids and cosine similarities.

    The caller has already cut to the top-k (any order). Negative similarities are clamped to
    0, the rest raised to ``p`` (stably, see the module docstring) and L2-normalised; zeros are
    dropped and indices sorted ascending. No positive similarity gives an empty rep.

    Raises InvalidInputError when lengths differ, a similarity is not finite, an id is outside
    ``[0, 2**32)`` or repeated, or ``p`` is not a finite number > 0.
    """
    pf = check_p(p)
    i = _as_int_array(ids, "ids")
    s = _as_float_array(sims, "sims")
    _check_ndim(i, (1,), "ids")
    _check_ndim(s, (1,), "sims")
    _check_same_shape(i, s, "ids", "sims")
    _check_id_range(i, "ids")
    _check_finite(s, "sims")
    return _reps_from_rows(i[None, :], s.astype(np.float64)[None, :], np.ones((1, i.size), bool), pf)[0]


def relative_reps_batch(
    ids: npt.ArrayLike,
    sims: npt.ArrayLike,
    p: float,
    valid: npt.ArrayLike | None = None,
) -> list[SparseRep]:
    """Row-wise :func:`relative_rep` for ``(B, k)`` arrays of ids and similarities.

    Padding: a slot is ignored when ``valid`` (a ``(B, k)`` bool mask) is False there, or when
    its id is -1. Ignored slots may hold any similarity, NaN included. Other negative ids, ids
    >= 2**32, repeated ids in a row, or non-finite similarities in used slots raise
    InvalidInputError.
    """
    pf = check_p(p)
    i = _as_int_array(ids, "ids")
    s = _as_float_array(sims, "sims")
    _check_ndim(i, (2,), "ids")
    _check_ndim(s, (2,), "sims")
    _check_same_shape(i, s, "ids", "sims")
    if valid is None:
        keep = np.ones(i.shape, bool)
    else:
        keep = np.asarray(valid)
        if keep.dtype != np.bool_:
            raise InvalidInputError(f"valid has dtype {keep.dtype}; pass a boolean (B, k) mask.")
        _check_same_shape(i, keep, "ids", "valid")
    keep = keep & (i != -1)
    _check_id_range(i, "ids", keep)
    _check_finite(s, "sims", keep)
    with np.errstate(invalid="ignore"):
        s64 = np.where(keep, s, 0.0).astype(np.float64)
    return _reps_from_rows(i, s64, keep, pf)


# --------------------------------------------------------------------------------------------
# top-k with the tie rule
# --------------------------------------------------------------------------------------------


def _column_ids(ids: npt.ArrayLike | None, shape: tuple[int, int]) -> IntArray:
    b, n = shape
    if ids is None:
        return np.broadcast_to(np.arange(n, dtype=np.int64), shape)
    col = _as_int_array(ids, "ids")
    if col.shape not in ((n,), shape):
        raise InvalidInputError(
            f"ids has shape {col.shape}; pass one anchor id per column of sims ({n},) or one per entry {shape}."
        )
    _check_id_range(col, "ids")
    srt = np.sort(col, axis=-1)
    if (srt[..., 1:] == srt[..., :-1]).any():
        raise InvalidInputError("ids contains a repeated anchor id; anchor ids must be unique.")
    return np.broadcast_to(col, shape)


def _top_k_positions(s: FloatArray, col_ids: IntArray, k: int) -> npt.NDArray[np.intp]:
    """(B, min(k, n)) column positions of each row's top-k in tie-rule order."""
    s = np.asarray(s, np.float64)
    b, n = s.shape
    kk = min(k, n)
    if kk == 0:
        return np.zeros((b, 0), np.intp)
    m = min(n, kk + 16)
    if m < n:
        # O(n) preselection of the m highest; rows where a tie group reaching the first k could take in an
        # unselected entry (within TIE_TOL of the selection's lowest) are ordered whole
        part = np.argpartition(-s, m - 1, axis=1)[:, :m]
        sel = np.take_along_axis(s, part, axis=1)
        ok = (sel > sel.min(axis=1, keepdims=True) + TIE_TOL).sum(axis=1) >= kk
    else:
        part = np.broadcast_to(np.arange(n), (b, n)).copy()
        ok = np.ones(b, bool)
    out = np.zeros((b, kk), np.intp)
    if ok.any():
        rows = np.flatnonzero(ok)
        p = part[rows]
        order = tie_order(np.take_along_axis(col_ids[rows], p, axis=1), np.take_along_axis(s[rows], p, axis=1))
        out[rows] = np.take_along_axis(p, order, axis=1)[:, :kk]
    if not ok.all():
        rows = np.flatnonzero(~ok)
        out[rows] = tie_order(col_ids[rows], s[rows])[:, :kk]
    return out


def top_k(sims: npt.ArrayLike, k: int, ids: npt.ArrayLike | None = None) -> tuple[IntArray, FloatArray]:
    """Exact top-k of a row ``(n,)`` or of each row of a matrix ``(B, n)`` of similarities.

    Tie rule: **higher similarity first; equal similarities ordered by smaller anchor id**
    (the order assumed for Qdrant). ``ids`` labels the columns with anchor ids, ``(n,)`` or
    ``(B, n)``, unique per row (default ``0..n-1``). When ``k > n`` all n are returned.

    Returns ``(top_ids, top_sims)``, int64 ids and the similarities in their input dtype, shaped
    ``(min(k, n),)`` or ``(B, min(k, n))``, each row in tie-rule order.
    """
    kk = check_k(k)
    s = _as_float_array(sims, "sims")
    _check_ndim(s, (1, 2), "sims")
    one_d = s.ndim == 1
    s2 = s[None, :] if one_d else s
    _check_finite(s2, "sims")
    col_ids = _column_ids(ids, s2.shape)
    pos = _top_k_positions(s2, col_ids, kk)
    out_ids = np.take_along_axis(col_ids, pos, axis=1).astype(np.int64)
    out_sims = np.take_along_axis(s2, pos, axis=1)
    if one_d:
        return out_ids[0], out_sims[0]
    return out_ids, out_sims


def sort_by_tie_rule(ids: npt.ArrayLike, sims: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    """Reorder ``(n,)`` or ``(B, n)`` ids/sims into tie-rule order (e.g. a Qdrant answer)."""
    i = _as_int_array(ids, "ids")
    s = _as_float_array(sims, "sims")
    _check_same_shape(i, s, "ids", "sims")
    if s.shape[-1] == 0:
        return i, s
    return top_k(s, s.shape[-1], ids=i)


def cut_to_k(ids: npt.ArrayLike, sims: npt.ArrayLike, k: int) -> tuple[IntArray, FloatArray]:
    """Top-k of an item's top-K list (k <= K), for sweeps that query once with the largest k.

    ``ids``/``sims`` are ``(K,)`` or ``(B, K)`` in tie-rule order (checked; padding id -1 allowed
    at the end of a row). The first k entries are returned. When the list holds fewer than k
    entries (fewer than k anchors exist) it is returned whole.
    """
    kk = check_k(k)
    i = _as_int_array(ids, "ids")
    s = _as_float_array(sims, "sims")
    _check_ndim(i, (1, 2), "ids")
    _check_same_shape(i, s, "ids", "sims")
    real = i != -1
    _check_id_range(i, "ids", real)
    _check_finite(s, "sims", real)
    if i.shape[-1] > 1:
        both = real[..., :-1] & real[..., 1:]
        pad_then_real = ~real[..., :-1] & real[..., 1:]
        with np.errstate(invalid="ignore"):
            bad = (both & ~_tie_rule_ok(i, s)) | pad_then_real
        if bad.any():
            raise InvalidInputError(
                "cut_to_k: the top-K list is not in tie-rule order (similarity descending, ties by smaller "
                "id, padding -1 only at the end); sort it with sort_by_tie_rule first."
            )
    return i[..., :kk], s[..., :kk]


# --------------------------------------------------------------------------------------------
# sparse dot and explanations
# --------------------------------------------------------------------------------------------


def sparse_dot(a: SparseRep, b: SparseRep) -> float:
    """Dot product of two sparse reps (the ASIF score); 0.0 when they share no anchor."""
    _, ia, ib = np.intersect1d(a.indices, b.indices, assume_unique=True, return_indices=True)
    return float(np.dot(a.values[ia], b.values[ib]))


def contributions(a: SparseRep, b: SparseRep) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """Per-anchor terms of :func:`sparse_dot`: ``(shared_ids, a_i * b_i)``, largest contribution
    first (equal contributions by smaller id). ``contribs.sum()`` equals ``sparse_dot(a, b)``."""
    shared, ia, ib = np.intersect1d(a.indices, b.indices, assume_unique=True, return_indices=True)
    c = a.values[ia] * b.values[ib]
    order = np.lexsort((shared, -c))
    return shared[order].astype(np.int64), c[order]


def score_matrix(queries: list[SparseRep], items: list[SparseRep]) -> npt.NDArray[np.float64]:
    """``(len(queries), len(items))`` sparse dot products in float64: ``out[i, j] == sparse_dot(queries[i],
    items[j])`` (up to the order of the float64 sum)."""
    def coo(reps: list[SparseRep]) -> tuple[IntArray, IntArray, npt.NDArray[np.float64]]:
        lens = [len(r) for r in reps]
        rows = np.repeat(np.arange(len(reps)), lens).astype(np.int64)
        if not sum(lens):
            return rows, np.zeros(0, np.int64), np.zeros(0, np.float64)
        return rows, np.concatenate([r.indices for r in reps]), np.concatenate([r.values for r in reps])

    return coo_scores(*coo(queries), len(queries), *coo(items), len(items))


def rep_rows(ids: npt.ArrayLike, sims: npt.ArrayLike, p: float) -> npt.NDArray[np.float64]:
    """The values of :func:`relative_rep` for rows of top-k lists at once: ``ids``/``sims`` ``(B, k)``, padded with
    id -1 (ignored); returns ``(B, k)`` values aligned with ``ids`` (0 where padded or dropped). Trusted input: stored
    lists, already in tie-rule order without duplicates."""
    i = np.asarray(ids, np.int64)
    s = np.asarray(sims, np.float64)
    return _rel_values(np.where(i >= 0, s, 0.0), i >= 0, check_p(p))


@dataclass(frozen=True)
class CooIndex:
    """Sparse rows (row, anchor id, value) sorted by anchor id, with each distinct id's first position and count:
    the side of :func:`coo_scores` that is looked up (build it once with :func:`coo_index`, reuse it)."""

    cols: IntArray  # distinct anchor ids, ascending
    first: IntArray
    counts: IntArray
    rows: IntArray  # entries sorted by anchor id
    vals: npt.NDArray[np.float64]
    n: int  # number of rows


def coo_index(rows: IntArray, cols: IntArray, vals: npt.NDArray[np.float64], n: int) -> CooIndex:
    order = np.argsort(cols, kind="stable")
    sc = cols[order]
    uniq, first, counts = np.unique(sc, return_index=True, return_counts=True)
    return CooIndex(uniq, first, counts, rows[order], vals[order], n)


def coo_scores(
    q_rows: IntArray, q_cols: IntArray, q_vals: npt.NDArray[np.float64], n_q: int,
    i_rows: IntArray, i_cols: IntArray, i_vals: npt.NDArray[np.float64], n_i: int,
) -> npt.NDArray[np.float64]:
    """``(n_q, n_i)`` dot products of sparse rows given as coordinates (row, anchor id, value): every query entry is
    joined with the item entries of the same anchor id (sorts, no per-row loop), and the products are summed per
    (query, item). Cost ~ the number of joined pairs."""
    return coo_scores_indexed(q_rows, q_cols, q_vals, n_q, coo_index(i_rows, i_cols, i_vals, n_i))


def coo_scores_indexed(
    q_rows: IntArray, q_cols: IntArray, q_vals: npt.NDArray[np.float64], n_q: int, index: CooIndex
) -> npt.NDArray[np.float64]:
    """:func:`coo_scores` against items already indexed by :func:`coo_index`."""
    n_i = index.n
    if not q_cols.size or not index.cols.size:
        return np.zeros((n_q, n_i), np.float64)
    q_order = np.argsort(q_cols)  # sorted needles: searchsorted walks the sorted ids once
    qc = q_cols[q_order]
    at = np.minimum(np.searchsorted(index.cols, qc), index.cols.size - 1)
    hit = index.cols[at] == qc
    sel = q_order[hit]
    at = at[hit]
    qr, qv, lo, cnt = q_rows[sel], q_vals[sel], index.first[at], index.counts[at]
    which = np.repeat(np.arange(cnt.size), cnt)
    j = lo[which] + (np.arange(which.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    flat = np.bincount(qr[which] * n_i + index.rows[j], weights=qv[which] * index.vals[j], minlength=n_q * n_i)
    return np.asarray(flat, np.float64).reshape(n_q, n_i)


# --------------------------------------------------------------------------------------------
# dense reference
# --------------------------------------------------------------------------------------------


def l2_normalize(
    x: npt.ArrayLike, what: str = "vectors", *, zero_rows: str = "refuse", dtype: npt.DTypeLike = np.float32
) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norm, as ``dtype``; the one normaliser of the package.

    Norms are computed in float64. A row holding NaN or inf, or whose norm overflows (values near 1e308), raises
    InvalidInputError naming the row. An all-zero row has no direction: ``zero_rows="refuse"`` (user input) raises,
    ``"keep"`` (an encoder's output) leaves it zero.
    """
    a = np.asarray(x, dtype=np.float64)
    _check_ndim(a, (2,), what)
    bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
    if bad.size:
        raise InvalidInputError(f"{what} row {int(bad[0])} contains NaN or inf: pass finite values")
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(a, axis=1, keepdims=True)
    huge = np.flatnonzero(~np.isfinite(norms[:, 0]))
    if huge.size:
        raise InvalidInputError(
            f"{what} row {int(huge[0])} has an L2 norm that overflows (values up to "
            f"{float(np.abs(a[int(huge[0])]).max()):g}): rescale the embedding (for example divide it by its "
            "largest value) before adding it"
        )
    zero = norms[:, 0] == 0
    if zero.any():
        if zero_rows != "keep":
            raise InvalidInputError(
                f"{what} row {int(np.flatnonzero(zero)[0])} is all zeros and cannot be L2-normalised (cosine "
                "similarity is undefined for a zero vector): remove it or fix its embedding"
            )
        norms[zero] = 1.0
    return (a / norms).astype(dtype, copy=False)


def _dense_relrep(sims: npt.NDArray[np.float64], col_ids: IntArray, k: int, p: float) -> npt.NDArray[np.float64]:
    """Dense (rows, N) relative reps: top-k mask (tie rule), clamp, ^p, L2-normalise."""
    mask = np.zeros(sims.shape, bool)
    np.put_along_axis(mask, _top_k_positions(sims, col_ids, k), True, axis=1)
    return _rel_values(sims, mask, p)


def dense_reference_scores(
    query_vecs: npt.ArrayLike,
    query_anchor_vecs: npt.ArrayLike,
    item_vecs: npt.ArrayLike,
    item_anchor_vecs: npt.ArrayLike,
    k: int,
    p: float,
    anchor_ids: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """The ASIF score matrix ``(B, M)`` computed densely in float64 — the reference for tests.

    Rows are L2-normalised; ``Sq = Q @ QA.T`` and ``Si = I @ IA.T`` are the cosine similarities to
    the N anchors (anchor j has id ``anchor_ids[j]``, default j). Each row keeps its top-k (tie
    rule), clamps negatives to 0, raises to p and L2-normalises; scores are ``Rq @ Ri.T``.
    Note: Qdrant computes similarities in float32, so near-ties at the k-th place may resolve
    differently there; compare on data without near-ties, or with a tolerance.
    """
    kk = check_k(k)
    pf = check_p(p)
    q = l2_normalize(_as_float_array(query_vecs, "query_vecs"), "query_vecs", dtype=np.float64)
    qa = l2_normalize(_as_float_array(query_anchor_vecs, "query_anchor_vecs"), "query_anchor_vecs", dtype=np.float64)
    it = l2_normalize(_as_float_array(item_vecs, "item_vecs"), "item_vecs", dtype=np.float64)
    ia = l2_normalize(_as_float_array(item_anchor_vecs, "item_anchor_vecs"), "item_anchor_vecs", dtype=np.float64)
    if q.shape[1] != qa.shape[1]:
        raise InvalidInputError(
            f"query_vecs have dim {q.shape[1]} but query_anchor_vecs have dim {qa.shape[1]}; use the same encoder."
        )
    if it.shape[1] != ia.shape[1]:
        raise InvalidInputError(
            f"item_vecs have dim {it.shape[1]} but item_anchor_vecs have dim {ia.shape[1]}; use the same encoder."
        )
    if qa.shape[0] != ia.shape[0]:
        raise InvalidInputError(
            f"{qa.shape[0]} query anchors but {ia.shape[0]} item anchors; pass both modalities of the same N pairs."
        )
    n = qa.shape[0]
    sq, si = q @ qa.T, it @ ia.T
    rq = _dense_relrep(sq, _column_ids(anchor_ids, sq.shape), kk, pf)
    ri = _dense_relrep(si, _column_ids(anchor_ids, si.shape), kk, pf)
    if n == 0:
        return np.zeros((q.shape[0], it.shape[0]), np.float64)
    return rq @ ri.T


# --------------------------------------------------------------------------------------------
# incremental top-k (freshness contract)
# --------------------------------------------------------------------------------------------


def merge_new_anchors(
    item_ids: npt.ArrayLike,
    item_sims: npt.ArrayLike,
    new_ids: npt.ArrayLike,
    new_sims: npt.ArrayLike,
    k: int,
) -> tuple[IntArray, FloatArray, bool]:
    """Insert new anchors into one item's stored top-k, keeping exactly ``min(k, total)``.

    ``item_ids``/``item_sims`` are the stored top-k in tie-rule order (at most k; fewer means
    fewer than k anchors existed, so every new anchor enters). ``new_ids``/``new_sims`` are the
    new anchors' similarities to the item, any order; they must not already be in the list
    (to change an existing anchor, :func:`remove_anchors` it first and re-query the hole).
    Also fills holes after a removal: merge the re-queried candidates not already present.

    Returns ``(ids, sims, changed)``; ``changed`` is True when any new anchor entered. The
    similarities come back in ``result_type(item_sims, new_sims)``; pass both in the same
    precision so that ties are decided as Qdrant decides them.
    """
    kk = check_k(k)
    i, s = _item_list(item_ids, item_sims, "item")
    if i.size > kk:
        raise InvalidInputError(
            f"the item's stored list has {i.size} entries but k={kk}; pass the stored top-k "
            "with the k it was built with."
        )
    ni = _as_int_array(new_ids, "new_ids")
    ns = _as_float_array(new_sims, "new_sims")
    _check_ndim(ni, (1,), "new_ids")
    _check_same_shape(ni, ns, "new_ids", "new_sims")
    _check_id_range(ni, "new_ids")
    _check_finite(ns, "new_sims")
    if ni.size > 1 and np.unique(ni).size != ni.size:
        raise InvalidInputError("new_ids contains a repeated anchor id; pass each new anchor once.")
    clash = (i[:, None] == ni[None, :]).any(axis=0) if ni.size <= 64 else np.isin(ni, i)
    if clash.any():
        raise InvalidInputError(
            f"new anchor id {int(ni[clash][0])} is already in the item's top-k; remove_anchors it first, "
            "then merge its new similarity."
        )
    dtype = np.result_type(s.dtype, ns.dtype)
    s, ns = s.astype(dtype, copy=False), ns.astype(dtype, copy=False)
    if ni.size <= 64 and _clear_of_ties(s, ns):
        return _insert_sorted(i, s, ni, ns, kk)
    all_ids = np.concatenate([i, ni])
    all_sims = np.concatenate([s, ns])
    order = tie_order(all_ids, all_sims)[:kk]
    changed = bool((order >= i.size).any())
    return all_ids[order], all_sims[order], changed


def _clear_of_ties(sims: FloatArray, new_sims: FloatArray, tol: float = TIE_TOL) -> bool:
    """Whether every new similarity is more than ``2 * tol`` from every stored one and from the other new ones.
    Then no tie group takes in a new anchor or changes around it: each new anchor is a group of its own, the
    stored list keeps its order, and tie_order of the union is a plain insertion (:func:`_insert_sorted`)."""
    gap = np.abs(new_sims[:, None] - sims[None, :]).min(initial=np.inf)
    if new_sims.size > 1:
        d = np.abs(new_sims[:, None] - new_sims[None, :])
        gap = min(gap, float(d[~np.eye(new_sims.size, dtype=bool)].min()))
    return bool(gap > 2 * tol)


def _insert_sorted(
    ids: IntArray, sims: FloatArray, new_ids: IntArray, new_sims: FloatArray, k: int
) -> tuple[IntArray, FloatArray, bool]:
    """merge_new_anchors when the new anchors are clear of ties: each goes after the stored entries above it.
    (A tie group never straddles a new similarity, so the entries above it are a prefix of the stored list.)"""
    by = np.argsort(-new_sims, kind="stable")
    ni, ns = new_ids[by], new_sims[by]
    at = (sims[None, :] > ns[:, None]).sum(axis=1)  # stored entries above each new one
    out_ids, out_sims = np.insert(ids, at, ni), np.insert(sims, at, ns)
    changed = bool(((at + np.arange(ni.size)) < k).any())  # a new anchor's place in the merged list is within k
    return out_ids[:k], out_sims[:k], changed


def remove_anchors(
    item_ids: npt.ArrayLike, item_sims: npt.ArrayLike, removed_ids: npt.ArrayLike
) -> tuple[IntArray, FloatArray, int]:
    """Drop deleted anchors from one item's stored top-k (tie-rule order kept).

    Returns ``(ids, sims, n_removed)``. The caller re-queries the ``n_removed`` holes (the next
    best remaining anchors) and merges them with :func:`merge_new_anchors`.
    """
    i, s = _item_list(item_ids, item_sims, "item")
    r = _as_int_array(removed_ids, "removed_ids").ravel()
    gone = np.isin(i, r)
    return i[~gone], s[~gone], int(gone.sum())
