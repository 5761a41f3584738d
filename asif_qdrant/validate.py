"""One rule for each argument: k, p, top, names, tenant names, anchor ids, batch sizes and per-request counts.

The facade, relrep, explain, the tools, the CLI and the server all call these, so a mistake is refused the same
way wherever it is made. Each rule raises its own error class (errors.py), a subclass of the error that the same
mistake raised before, with a message that names the bad value and the fix. A leaf module: it imports only
``errors`` (relrep, the lowest layer, uses it too).

The bound on p: relrep raises the kept similarities, divided by the largest one, to the power p. An entry whose
ratio r to the largest is below 1 weighs r**p. Qdrant stores sparse values as float32, whose smallest positive
value is 1.4e-45: at p = 64 an anchor half as similar as the best one weighs 5e-20 and one a fifth as similar
1.8e-45, the edge of float32; at p ~ 149 every r <= 0.5 vanishes in the store, and in float64 (5e-324) at p ~ 1075.
Past that every representation is one-hot on its best anchor and nearly every score is 0 (p = 1e308 made every
prediction null). MAX_P = 64 (also the bound of ASIF_P) refuses those exponents with a message instead.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

from .errors import (
    InvalidBatchSizeError,
    InvalidCountError,
    InvalidIdError,
    InvalidKError,
    InvalidNameError,
    InvalidPError,
    InvalidTenantError,
    InvalidTopError,
    LimitError,
    RequestTooLargeError,
    TooManyItemsError,
)

MAX_ANCHOR_ID = 2**32 - 1  # anchor ids double as sparse-vector indices, which are uint32
MAX_P = 64.0  # see the module docstring
DEFAULT_K = 800
DEFAULT_P = 8.0
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"


def is_int(v: Any) -> bool:
    """True for Python and numpy integers; bool is refused (True is not a count)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    """True for Python and numpy ints and floats; bool is refused."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_k(k: Any, max_k: int | None = None) -> int:
    """``k`` as an int in [1, max_k] (no upper bound when ``max_k`` is None)."""
    if not is_int(k):
        raise InvalidKError(
            f"k={k!r} is not an integer: k is the number of anchors kept, an integer >= 1 (default {DEFAULT_K})")
    if int(k) < 1:
        raise InvalidKError(
            f"k={int(k)} is invalid: k is the number of anchors kept, an integer >= 1 (default {DEFAULT_K})")
    if max_k is not None and int(k) > max_k:
        raise InvalidKError(
            f"k={int(k)} is larger than max_k={max_k}: k is the number of anchors kept per item (default "
            f"{DEFAULT_K}); pick a smaller k, or raise ASIF_MAX_K if you really have that many anchors"
        )
    return int(k)


def check_p(p: Any) -> float:
    """``p`` as a float in (0, MAX_P]; NaN, inf, strings and bools are refused."""
    if not is_real(p):
        raise InvalidPError(
            f"p={p!r} is not a number: p is the exponent on similarities, a number in (0, {MAX_P:g}] (default 8)")
    pf = float(p)
    if not math.isfinite(pf) or pf <= 0:
        raise InvalidPError(
            f"p={p!r} is invalid: p is the exponent on similarities, a number in (0, {MAX_P:g}] (default 8)")
    if pf > MAX_P:
        raise InvalidPError(
            f"p={p!r} is invalid: p above {MAX_P:g} makes every representation one-hot on its best anchor (the "
            f"other weights underflow), so nearly every score is 0; use p in (0, {MAX_P:g}], typically 1-16"
        )
    return pf


def check_k_p(
    k: Any, p: Any, default_k: int, default_p: float, max_k: int | None = None
) -> tuple[int, float]:
    """``k`` and ``p`` of a label set, gallery or query; None means the default."""
    return check_k(default_k if k is None else k, max_k), check_p(default_p if p is None else p)


def check_top(top: Any, max_top: int | None = None, what: str = "result") -> int:
    """``top`` as an int in [1, max_top]; a string, float or bool is refused with the fix."""
    if not is_int(top):
        raise InvalidTopError(f"top={top!r} is invalid: pass an integer number of {what}s (for example top=5)")
    if int(top) < 1 or (max_top is not None and int(top) > max_top):
        hi = f"1 to {max_top}" if max_top is not None else "at least 1"
        more = " (raise ASIF_MAX_TOP for more)" if max_top is not None else ""
        raise InvalidTopError(f"top={int(top)} is invalid: ask for {hi} {what}s{more}")
    return int(top)


def check_count(value: Any, name: str, what: str, maximum: int | None = None) -> int:
    """A positive integer argument such as n_labels, limit, keep or seeds: ``name=value``, counting ``what``."""
    if not is_int(value) or int(value) < 1:
        raise InvalidCountError(f"{name}={value!r} is invalid: pass a positive integer number of {what}")
    if maximum is not None and int(value) > maximum:
        raise InvalidCountError(f"{name}={int(value)} is invalid: pass at most {maximum} {what}")
    return int(value)


def check_batch_size(batch_size: Any, what: str = "items", maximum: int | None = None) -> int:
    """``batch_size`` as a positive int (at most ``maximum``)."""
    if not is_int(batch_size) or int(batch_size) < 1:
        raise InvalidBatchSizeError(
            f"batch_size={batch_size!r} is invalid: pass a positive number of {what} per batch, such as 64")
    if maximum is not None and int(batch_size) > maximum:
        raise InvalidBatchSizeError(f"batch_size={int(batch_size)} is invalid: pass at most {maximum} {what}")
    return int(batch_size)


def check_items(n: int, limit: int, what: str, setting: str = "max_items", env: str = "ASIF_MAX_ITEMS") -> None:
    """Refuse ``n`` items (classes x templates, prompts, gallery images, vectors of one request) above ``limit``."""
    if n > limit:
        raise TooManyItemsError(
            f"{what} would have {n} items, more than {setting}={limit}: split it, or raise {env}")


def check_request_count(n: int, limit: int, what: str) -> None:
    """Refuse ``n`` vectors, images or anchors in one server request above ``limit`` (ASIF_MAX_BATCH)."""
    if n > limit:
        raise RequestTooLargeError(f"{n} {what} in one request exceed max_batch={limit}: split the request "
                                "(ASIF_MAX_BATCH)")


def check_limit(n: int, limit: int, what: str, setting: str) -> None:
    """Refuse a call that names more than ``limit`` things (classes, templates, ids): LimitError (HTTP 413)."""
    if n > limit:
        raise LimitError(f"{n} {what} are more than the {limit} allowed in one call: split it, or raise {setting}")


def check_name(name: Any) -> str:
    """A label set or gallery name: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidNameError(f"name {name!r} is not valid: use {NAME_RULE}")
    return name


def check_tenant_name(tenant: Any, shared: str) -> str:
    """A tenant's own name (the same rule as names); ``shared`` is named in the fix."""
    if not isinstance(tenant, str) or not NAME_RE.fullmatch(tenant):
        raise InvalidTenantError(
            f"tenant name {tenant!r} is not valid: use {NAME_RULE} (for example 'acme-eu'), or {shared!r} for the "
            "shared anchors"
        )
    return tenant


def check_ids(ids: Sequence[Any]) -> list[int]:
    """Anchor ids as ints: integers in [0, 2**32) (1.7, "3" or True are refused, never truncated)."""
    out = []
    for i, v in enumerate(ids):
        if not is_int(v):
            raise InvalidIdError(f"id {v!r} (row {i}) is not an integer: ids are integers in [0, 2**32)")
        if not 0 <= int(v) <= MAX_ANCHOR_ID:
            raise InvalidIdError(
                f"id {int(v)} (row {i}) is outside [0, 2**32): anchor ids double as sparse-vector indices, "
                "which are 32-bit; pick smaller ids or let the store assign them (ids=None)"
            )
        out.append(int(v))
    return out


__all__ = [
    "MAX_ANCHOR_ID", "MAX_P", "NAME_RE", "check_batch_size", "check_count", "check_ids", "check_items", "check_k",
    "check_k_p", "check_limit", "check_name", "check_p", "check_request_count", "check_tenant_name", "check_top",
    "is_int",
    "is_real",
]
