"""validate.py: one rule per argument, one error class per mistake, the same refusal wherever the mistake is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asif_qdrant import relrep, validate
from asif_qdrant.errors import (
    ConfigError,
    InvalidBatchSizeError,
    InvalidCountError,
    InvalidIdError,
    InvalidInputError,
    InvalidKError,
    InvalidNameError,
    InvalidPError,
    InvalidTenantError,
    InvalidTopError,
    RequestTooLargeError,
    TooManyItemsError,
)
from asif_qdrant.meta import validate_tenant
from tests.conftest import IMG_DIM, TXT_DIM, open_store, unit


@pytest.mark.parametrize("k, want", [(1, 1), (800, 800), (np.int64(7), 7), (np.uint32(3), 3)])
def test_k_accepts_integers(k: Any, want: int) -> None:
    got = validate.check_k(k, max_k=800)
    assert got == want and type(got) is int


@pytest.mark.parametrize("k, match", [
    (0, "k=0 is invalid"), (-3, "k=-3 is invalid"), (True, "k=True is not an integer"),
    (2.0, "k=2.0 is not an integer"), ("8", "k='8' is not an integer"), (801, "k=801 is larger than max_k=800"),
])
def test_k_refuses_with_the_value_and_the_fix(k: Any, match: str) -> None:
    with pytest.raises(InvalidKError, match=match):
        validate.check_k(k, max_k=800)


@pytest.mark.parametrize("p, want", [(8, 8.0), (0.5, 0.5), (np.float32(2.5), 2.5), (np.int64(4), 4.0), (64, 64.0)])
def test_p_accepts_numbers_up_to_max_p(p: Any, want: float) -> None:
    got = validate.check_p(p)
    assert got == want and type(got) is float


@pytest.mark.parametrize("p, match", [
    (0, "p=0 is invalid"), (-1.0, "p=-1.0 is invalid"), (float("nan"), "p=nan is invalid"),
    (float("inf"), "p=inf is invalid"), (True, "p=True is not a number"), ("8", "p='8' is not a number"),
    (64.5, "p=64.5 is invalid: p above 64"), (1e308, "p=1e\\+308 is invalid: p above 64"),
])
def test_p_refuses_with_the_value_and_the_fix(p: Any, match: str) -> None:
    with pytest.raises(InvalidPError, match=match):
        validate.check_p(p)


def test_k_and_p_errors_are_both_config_and_input_errors() -> None:
    """The drift is gone: the facade's check_k_p and relrep refuse k=0 / p=0 with the same class, which both
    the facade's callers (ConfigError) and relrep's (InvalidInputError) catch."""
    for cls in (InvalidKError, InvalidPError):
        assert issubclass(cls, ConfigError) and issubclass(cls, InvalidInputError)
    with pytest.raises(InvalidKError, match="k=0"):
        validate.check_k_p(0, None, 800, 8.0)
    with pytest.raises(InvalidKError, match="k=0"):
        relrep.top_k(np.array([[0.5, 0.2]]), 0)
    with pytest.raises(InvalidPError, match="p=0"):
        validate.check_k_p(None, 0, 800, 8.0)
    with pytest.raises(InvalidPError, match="p=0"):
        relrep.relative_rep([1, 2], [0.5, 0.1], 0)
    assert validate.check_k_p(None, None, 800, 8.0) == (800, 8.0)
    assert validate.check_k_p(5, 2, 800, 8.0, max_k=10) == (5, 2.0)


def test_max_p_is_where_float32_keeps_the_neighbours_that_matter() -> None:
    """The reason for MAX_P = 64: Qdrant stores sparse values as float32. At p = 64 an anchor half as similar as the
    best weighs 2**-64 (kept); past p ~ 149 it underflows to 0 in float32, and at p = 1e308 even the runner-up at
    0.9999 of the best is 0 in float64: a one-hot representation, so items share almost no anchor with the query."""
    ratios = np.array([1.0, 0.5, 0.2, 0.9999])
    at_max = (ratios ** validate.MAX_P).astype(np.float32)
    assert at_max[1] == np.float32(2.0**-64) and at_max[2] > 0 and at_max[3] > 0.99
    assert (ratios[1] ** 150.0).astype(np.float32) == 0  # 0.5**150 = 7e-46 < float32's smallest 1.4e-45
    with np.errstate(under="ignore"):
        assert (ratios ** 1e308).tolist() == [1.0, 0.0, 0.0, 0.0]
    rep = relrep.relative_rep([1, 2, 3], [0.6, 0.3, 0.12], validate.MAX_P)  # ratios 1, 0.5, 0.2
    assert rep.indices.tolist() == [1, 2, 3]
    assert rep.values[1] == pytest.approx(2.0**-64, rel=1e-12)
    with pytest.raises(InvalidPError, match="p=100"):
        relrep.relative_rep([1, 2, 3], [0.6, 0.3, 0.12], 100)


@pytest.mark.parametrize("top, want", [(1, 1), (np.int64(5), 5), (100, 100)])
def test_top_accepts_numpy_integers(top: Any, want: int) -> None:
    assert validate.check_top(top, 100) == want


@pytest.mark.parametrize("top, match", [
    (0, "top=0 is invalid: ask for 1 to 100 labels"), (101, "top=101 is invalid: ask for 1 to 100 labels \\(raise "
                                                             "ASIF_MAX_TOP"),
    (2.5, "top=2.5 is invalid: pass an integer number of labels"), (False, "top=False"), ("3", "top='3'"),
])
def test_top_refuses(top: Any, match: str) -> None:
    with pytest.raises(InvalidTopError, match=match):
        validate.check_top(top, 100, "label")


def test_counts_batch_sizes_and_items() -> None:
    assert validate.check_count(np.int32(3), "n_labels", "labels") == 3
    with pytest.raises(InvalidCountError, match="n_labels=0 is invalid: pass a positive integer number of labels"):
        validate.check_count(0, "n_labels", "labels")
    with pytest.raises(InvalidCountError, match="n_labels=51 is invalid: pass at most 50 labels"):
        validate.check_count(51, "n_labels", "labels", maximum=50)
    assert validate.check_batch_size(64) == 64
    with pytest.raises(InvalidBatchSizeError, match="batch_size=0 is invalid"):
        validate.check_batch_size(0, "images")
    with pytest.raises(InvalidBatchSizeError, match="batch_size=1.5"):
        validate.check_batch_size(1.5)
    validate.check_items(100, 100, "label set 'x'")
    with pytest.raises(TooManyItemsError, match="label set 'x' would have 101 items, more than max_items=100"):
        validate.check_items(101, 100, "label set 'x'")
    validate.check_request_count(50, 50, "vectors")
    with pytest.raises(RequestTooLargeError, match="51 vectors in one request exceed max_batch=50"):
        validate.check_request_count(51, 50, "vectors")
    assert issubclass(InvalidBatchSizeError, ConfigError) and issubclass(RequestTooLargeError, ConfigError)


@pytest.mark.parametrize("name", ["a", "cifar10", "A.b-c_d", "x" * 64, "9lives"])
def test_names_that_pass(name: str) -> None:
    assert validate.check_name(name) == name
    assert validate_tenant(name) == name


@pytest.mark.parametrize("name", ["", "-a", "_a", "a b", "x" * 65, "a/b", "é", 3, None])
def test_names_that_fail(name: Any) -> None:
    with pytest.raises(InvalidNameError, match=f"name {name!r} is not valid: use 1-64 letters"):
        validate.check_name(name)
    if name is not None:  # None is the shared tenant
        with pytest.raises(InvalidTenantError, match=f"tenant name {name!r} is not valid.*'_shared'"):
            validate_tenant(name)
    assert validate_tenant(None) == validate_tenant("_shared") == "_shared"


def test_ids() -> None:
    assert validate.check_ids([0, np.uint32(7), 2**32 - 1]) == [0, 7, 2**32 - 1]
    with pytest.raises(InvalidIdError, match=r"id 4294967296 \(row 1\) is outside \[0, 2\*\*32\)"):
        validate.check_ids([1, 2**32])
    with pytest.raises(InvalidIdError, match=r"id -1 \(row 0\)"):
        validate.check_ids([-1])
    with pytest.raises(InvalidIdError, match=r"id 1.7 \(row 0\) is not an integer"):
        validate.check_ids([1.7])
    with pytest.raises(InvalidIdError, match=r"id True"):
        validate.check_ids([True])
    assert issubclass(InvalidIdError, InvalidInputError) and not issubclass(InvalidIdError, ConfigError)


def test_the_facade_and_explain_use_the_rules(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Through the facade: p above 64 is refused before anything is built, p = 64 works and scores exactly what
    relrep computes, and explain takes a numpy top but refuses one above max_top (it had no bound before)."""
    r = np.random.default_rng(7)
    img, txt = unit(r.standard_normal((6, IMG_DIM))), unit(r.standard_normal((6, TXT_DIM)))
    prompts = unit(txt[:2] + 0.2 * r.standard_normal((2, TXT_DIM)))  # 'a' near caption 0, 'b' near caption 1
    q = unit(img[:1] + 0.2 * r.standard_normal((1, IMG_DIM)))  # near image 0: label 'a'
    a = open_store("edge", tmp_path, request, max_top=50, max_items=4)
    try:
        ids = a.add_vectors(img, txt).ids
        with pytest.raises(InvalidPError, match="p=1e\\+308 is invalid"):
            a.define_labels("L", ["a", "b"], templates="plain", prompt_vectors=prompts, k=6, p=1e308)
        with pytest.raises(InvalidNameError, match="name 'bad name'"):
            a.define_labels("bad name", ["a", "b"], templates="plain", prompt_vectors=prompts)
        with pytest.raises(TooManyItemsError, match="gallery 'G' would have 5 items, more than max_items=4"):
            a.add_gallery("G", vectors=img[:5])
        assert a.list_indexes() == []
        a.define_labels("L", ["a", "b"], templates="plain", prompt_vectors=prompts, k=6, p=64)
        pred = a.classify(vectors=q, labels="L", top=np.int64(2))[0]
        id_arr = np.asarray(ids, np.int64)
        q_rep = relrep.relative_rep(id_arr, (img @ q[0]).astype(np.float64), 64)
        want = {c: relrep.sparse_dot(q_rep, relrep.relative_rep(id_arr, (txt @ prompts[i]).astype(np.float64), 64))
                for i, c in enumerate("ab")}
        assert want["a"] > 0.5 > want["b"] and pred.label == "a"
        assert {s.label: s.score for s in pred.top} == pytest.approx(want, rel=1e-4, abs=1e-6)
        ex = a.explain(vector=q[0], labels="L", top=np.int64(3))
        assert len(ex.explained[0].contributions) <= 3
        with pytest.raises(InvalidTopError, match="top=51 is invalid: ask for 1 to 50 anchors"):
            a.explain(vector=q[0], labels="L", top=51)
        with pytest.raises(InvalidTopError, match="top=51 is invalid: ask for 1 to 50 labels"):
            a.classify(vectors=q, labels="L", top=51)
    finally:
        a.close()
