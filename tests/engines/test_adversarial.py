"""Adversarial tests (issue 14): a failed edit changes nothing, requests are bounded, ties are exact,
full / read-only / damaged disks give clear errors, user mistakes never surface as raw exceptions,
and the wheel ships what a store needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asif_qdrant import Asif
from asif_qdrant.errors import AsifError, InvalidInputError
from tests.conftest import IMG_DIM, TXT_DIM, open_store, random_pairs

KINDS = ["edge", "local"]


def _answers(a: Asif, queries: np.ndarray) -> list[list[tuple[str, float]]]:
    return [[(s.label, round(s.score, 6)) for s in p.top] for p in a.classify(vectors=queries, labels="L", top=5)]


def _store_with_labels(kind: str, tmp_path: Path, request: pytest.FixtureRequest, n: int = 20, **kw: Any) -> Asif:
    rng = np.random.default_rng(7)
    a = open_store(kind, tmp_path, request, k=8, **kw)
    img, txt = random_pairs(rng, n)
    a.add_vectors(img, txt, captions=[f"c{i}" for i in range(n)], ids=list(range(n)))
    a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=rng.standard_normal((5, TXT_DIM)))
    return a


# -- 1. data loss -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": {"y": [1, float("inf")]}}, {3: "a"}, {"x": object()}])
def test_failing_replace_changes_nothing(kind: str, bad: dict[Any, Any], tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    a = _store_with_labels(kind, tmp_path, request)
    q = np.random.default_rng(1).standard_normal((4, IMG_DIM))
    before = _answers(a, q)
    img, txt = random_pairs(np.random.default_rng(2), 3)
    for call in (lambda: a.replace([0, 1, 2], img, txt, payloads=[{}, {}, bad]),
                 lambda: a.add_vectors(img, txt, payloads=[{}, {}, bad], ids=[0, 1, 2])):
        with pytest.raises(InvalidInputError, match="payload 2"):
            call()
        assert a.count() == 20
        assert _answers(a, q) == before
    a.close()


@pytest.mark.parametrize("kind", KINDS)
def test_replace_whose_write_fails_restores_the_old_pairs(kind: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    a = _store_with_labels(kind, tmp_path, request)
    q = np.random.default_rng(1).standard_normal((4, IMG_DIM))
    before = _answers(a, q)
    old = {r.id: r.payload["caption"] for r in a.engine.retrieve(a.anchors.collection, [0, 1, 2, 3])}
    real = type(a.engine).upsert
    calls = {"n": 0}

    def failing(self: Any, name: str, batch: Any) -> None:
        if name == a.anchors.collection and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("disk went away")
        real(self, name, batch)

    monkeypatch.setattr(type(a.engine), "upsert", failing)
    img, txt = random_pairs(np.random.default_rng(2), 4)
    with pytest.raises(RuntimeError, match="disk went away"):
        a.add_vectors(img, txt, captions=["n0", "n1", "n2", "n99"], ids=[0, 1, 2, 99])
    monkeypatch.undo()
    assert a.count() == 20
    assert {r.id: r.payload["caption"] for r in a.engine.retrieve(a.anchors.collection, [0, 1, 2, 3, 99])} == old
    assert _answers(a, q) == before
    a.refresh("L")
    assert _answers(a, q) == before
    a.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [1e308, 0.0])
def test_overflowing_or_zero_vector_is_refused(kind: str, value: float, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    a = open_store(kind, tmp_path, request)
    img = np.full((2, IMG_DIM), 1.0)
    img[1] = value
    with pytest.raises(InvalidInputError, match="row 1"):
        a.add_vectors(img, np.ones((2, TXT_DIM)))
    assert a.count() == 0
    a.close()


def test_asif_error_is_the_base() -> None:
    assert issubclass(InvalidInputError, AsifError)


# -- 2. bounded requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_huge_k_is_refused_at_once_and_large_k_costs_only_the_anchors(kind: str, tmp_path: Path,
                                                                       request: pytest.FixtureRequest) -> None:
    import time
    import tracemalloc

    from asif_qdrant.errors import ConfigError

    a = _store_with_labels(kind, tmp_path, request)
    prompts = np.random.default_rng(3).standard_normal((5, TXT_DIM))
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="max_k"):
        a.define_labels("H", list("abcde"), templates="plain", prompt_vectors=prompts, k=10**9)
    assert time.monotonic() - t0 < 2
    assert "H" not in [i.name for i in a.list_indexes()]
    q = np.random.default_rng(1).standard_normal((4, IMG_DIM))
    a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts, k=20, replace=True)
    every = _answers(a, q)
    tracemalloc.start()
    a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts, k=90_000, replace=True)
    got = _answers(a, q)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got == every  # k beyond the 20 anchors keeps every anchor, like k=20
    assert peak < 20 * 2**20, f"k=90000 over 20 anchors allocated {peak / 2**20:.0f} MiB"
    a.close()


@pytest.mark.parametrize("top", ["3", 2.0, True, 0, 10**9])
def test_top_must_be_a_bounded_integer(top: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant.errors import ConfigError

    a = _store_with_labels("local", tmp_path, request)
    q = np.random.default_rng(1).standard_normal((1, IMG_DIM))
    with pytest.raises(ConfigError, match="top="):
        a.classify(vectors=q, labels="L", top=top)
    a.close()


def test_too_many_prompts_are_refused(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant.errors import ConfigError

    a = _store_with_labels("local", tmp_path, request, max_items=100)
    with pytest.raises(ConfigError, match="max_items"):
        a.define_labels("B", [f"c{i}" for i in range(30)], templates=["a {}", "b {}", "c {}", "d {}"])
    a.close()
