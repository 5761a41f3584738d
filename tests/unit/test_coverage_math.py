"""Label coverage and class prototypes: the pure numpy parts, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from asif_qdrant.coverage import (
    ClassCoverage,
    Coverage,
    class_support,
    coverage_from_lists,
    fix_for,
    verdict_of,
)
from asif_qdrant.engines.base import Hit
from asif_qdrant.prototypes import PrototypeMix, class_means, mix_of, prototype_terms
from asif_qdrant.zeroshot import aggregate


def test_class_support_counts_distinct_anchors_at_or_above_the_floor() -> None:
    # class 0: two prompts; anchors >= 0.5: {1, 2} from the first, {2, 5} from the second -> {1, 2, 5}
    # class 1: its only anchor is below the floor; class 2: no item at all
    support = class_support(
        [0, 0, 1],
        [np.array([1, 2, 3]), np.array([2, 5, 9]), np.array([7])],
        [np.array([0.9, 0.6, 0.4]), np.array([0.55, 0.5, 0.49]), np.array([0.49])],
        3,
    )
    assert support.tolist() == [3, 0, 0]
    assert class_support([0], [np.array([4, 8])], [np.array([0.3, 0.2])], 1, floor=0.25).tolist() == [1]


@pytest.mark.parametrize(("support", "verdict"), [(0, "unsupported"), (9, "unsupported"), (10, "weak"),
                                                  (29, "weak"), (30, "supported"), (5000, "supported")])
def test_verdict_cuts(support: int, verdict: str) -> None:
    assert verdict_of(support) == verdict
    assert (fix_for("bonsai", verdict) is None) == (verdict == "supported")


def test_coverage_json_shape_table_and_fix() -> None:
    ids = [np.arange(40), np.arange(40, 52), np.array([90])]
    sims = [np.full(40, 0.8), np.full(12, 0.7), np.array([0.2])]
    cov = coverage_from_lists("L", "_shared", ["dog", "cat", "bonsai"], [0, 1, 2], ids, sims)
    assert cov.as_dict() == {"classes": [{"class": "dog", "support": 40, "verdict": "supported"},
                                         {"class": "cat", "support": 12, "verdict": "weak"},
                                         {"class": "bonsai", "support": 0, "verdict": "unsupported"}]}
    assert cov.counts() == {"supported": 1, "weak": 1, "unsupported": 1}
    bad = cov.of("bonsai")
    assert bad is not None and bad.fix is not None and "asif teach" in bad.fix and "mention" in bad.fix
    assert len(cov.warnings()) == 2 and "bonsai" in cov.warnings()[1]
    assert "bonsai" in cov.table().splitlines()[3] and "1 supported, 1 weak, 1 unsupported" in cov.table()
    assert Coverage("L", "t", 0.5, [ClassCoverage("a", 3, "unsupported")]).of("b") is None


def test_class_means_normalise_rows_then_the_mean() -> None:
    names, means, counts = class_means(np.array([[3.0, 0.0], [0.0, 2.0], [0.0, 5.0], [1.0, 1.0]]),
                                       ["b", "a", "b", "c"])
    assert names == ["a", "b", "c"] and counts.tolist() == [1, 2, 1]
    # b: mean of [1, 0] and [0, 1] = [0.5, 0.5] -> unit [0.7071, 0.7071]
    np.testing.assert_allclose(means, [[0.0, 1.0], [2**-0.5, 2**-0.5], [2**-0.5, 2**-0.5]], atol=1e-12)


def test_prototype_terms_and_mix() -> None:
    terms = prototype_terms(np.array([[0.5, -0.2, np.nan, 1.0]]), PrototypeMix(weight=2.0, power=2.0))
    np.testing.assert_allclose(terms, [[0.5, 0.0, 0.0, 2.0]])
    assert mix_of({"prototype_mix": {"weight": 3, "power": 1}}) == PrototypeMix(3.0, 1.0)
    assert mix_of({}) == mix_of(None) == mix_of({"prototype_mix": "x"})


def test_aggregate_adds_the_prototype_term_and_ranks_with_it() -> None:
    hits = [Hit(0, 0.30, {"label": "cat", "prompt": "a cat"}), Hit(1, 0.25, {"label": "dog", "prompt": "a dog"}),
            Hit(2, 0.10, {"label": "dog", "prompt": "the dog"})]
    plain = aggregate(hits, 2, "max", 3)
    assert [(s.label, s.score) for s in plain.top] == [("cat", 0.30), ("dog", 0.25)]
    mixed = aggregate(hits, 2, "max", 3, extra={"cat": 0.0, "dog": 0.1, "fox": 0.05})
    assert [(s.label, round(s.score, 12)) for s in mixed.top] == [("dog", 0.35), ("cat", 0.30), ("fox", 0.05)]
    assert mixed.label == "dog" and mixed.prompt == "a dog" and mixed.top[2].prompt is None
    mean = aggregate(hits, 2, "mean", 1, extra={"cat": 0.1})
    # mean over 2 templates: cat 0.30 / 2 + 0.1 = 0.25, dog (0.25 + 0.10) / 2 = 0.175
    assert mean.top[0].label == "cat" and abs(mean.top[0].score - 0.25) < 1e-12
