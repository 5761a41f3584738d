"""The hub-correction math (zeroshot.reference_shift_scale / aggregate_corrected, relrep.score_matrix), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from asif_qdrant import ConfigError
from asif_qdrant.correction import id_hash, reference_ids
from asif_qdrant.relrep import relative_rep, score_matrix, sparse_dot
from asif_qdrant.zeroshot import aggregate_corrected, corrected_label_scores, reference_shift_scale


def test_shift_scale_by_hand() -> None:
    ref = [[1.0, 2.0, 5.0], [3.0, 6.0, 5.0]]  # two reference images, three prompts
    shift, scale = reference_shift_scale(ref, "mean")
    assert shift.tolist() == [2.0, 4.0, 5.0] and scale.tolist() == [1.0, 1.0, 1.0]
    shift, scale = reference_shift_scale(ref, "zscore")
    assert shift.tolist() == [2.0, 4.0, 5.0] and scale.tolist() == [1.0, 2.0, 1.0]  # constant column: scale 1
    shift, scale = reference_shift_scale(ref, "none")
    assert shift.tolist() == [0.0, 0.0, 0.0] and scale.tolist() == [1.0, 1.0, 1.0]
    shift, scale = reference_shift_scale(np.zeros((0, 3)), "mean")  # no reference image: no correction
    assert shift.tolist() == [0.0, 0.0, 0.0] and scale.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="correction 'median' is invalid"):
        reference_shift_scale(ref, "median")


def test_corrected_label_scores_by_hand() -> None:
    # 2 classes x 2 templates, class-major: (a,t0) (a,t1) (b,t0) (b,t1)
    raw, shift = [0.75, 0.5, 0.5, 0.0], [0.5, 0.25, 0.0, 0.25]  # corrected: a 0.25 0.25, b 0.5 -0.25
    agg, best = corrected_label_scores(raw, 2, "max", shift, np.ones(4))
    assert agg.tolist() == [0.25, 0.5] and best.tolist() == [0, 0]  # a: a tie, the first template
    agg, _ = corrected_label_scores(raw, 2, "mean", shift, np.ones(4))
    assert agg.tolist() == [0.25, 0.125]
    agg, _ = corrected_label_scores([1.0, 2.0], 1, "max", [0.0, 1.0], [2.0, 4.0])
    assert np.allclose(agg, [0.5, 0.25])


def test_aggregate_corrected_ranks_every_class_and_abstains() -> None:
    raw, shift, scale = [0.75, 0.5, 0.5, 0.0], [0.5, 0.25, 0.0, 0.25], np.ones(4)
    pred = aggregate_corrected(raw, ["a", "b"], ["{}", "x {}"], "max", shift, scale, top=5)
    assert pred.label == "b" and pred.score == 0.5 and pred.prompt == "b"
    assert [(s.label, s.score, s.prompt) for s in pred.top] == [("b", 0.5, "b"), ("a", 0.25, "a")]
    pred = aggregate_corrected(raw, ["a", "b"], ["{}", "x {}"], "mean", shift, scale, top=1)
    assert pred.label == "a" and pred.score == 0.25 and len(pred.top) == 1
    # a negative corrected best score is still an answer; below tau it is "unknown" with the score kept
    pred = aggregate_corrected([0.25, 0.0], ["a", "b"], ["{}"], "max", [1.0, 0.5], np.ones(2), top=2)
    assert pred.label == "b" and pred.score == -0.5 and [s.label for s in pred.top] == ["b", "a"]
    pred = aggregate_corrected(raw, ["a", "b"], ["{}", "x {}"], "max", shift, scale, top=2, tau=0.75)
    assert pred.label is None and pred.score == 0.5
    # nothing shared with any prompt: unknown, no label scored, whatever the correction
    pred = aggregate_corrected([0.0] * 4, ["a", "b"], ["{}", "x {}"], "max", shift, scale, top=2)
    assert pred.label is None and pred.score == 0.0 and pred.top == []


def test_score_matrix_equals_sparse_dots() -> None:
    rng = np.random.default_rng(0)
    reps = [relative_rep(rng.choice(300, 20, replace=False), rng.random(20), 2.0) for _ in range(70)]
    got = score_matrix(reps[:9], reps)
    want = np.array([[sparse_dot(a, b) for b in reps] for a in reps[:9]])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    assert score_matrix([], reps).shape == (0, 70)


def test_reference_ids_are_the_smallest_hashes() -> None:
    ids = list(range(1000, 1100))
    got = reference_ids(ids, 7)
    assert got == sorted(sorted(ids, key=id_hash)[:7]) and len(set(got)) == 7
    assert reference_ids(list(reversed(ids)), 7) == got  # the order of the anchors does not matter
    assert reference_ids(ids[:5], 7) == ids[:5]
    assert set(reference_ids(ids + [5000], 7)) <= set(got) | {5000}  # a new anchor can only take a place
