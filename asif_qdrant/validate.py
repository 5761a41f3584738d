"""One rule for each argument that a caller (library, CLI or HTTP request) may set: ``top``, ``k``, ``p``, the
counts of classes, templates, prompts, ids and items. The facade applies them; the CLI and the server reach them
through the facade, so the three agree. Messages name the value, the bound and the setting that raises it."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ConfigError, LimitError

# p is an exponent on similarities in [0, 1]: past 64, s**p underflows float32 for every s below ~0.25 and most
# anchors drop out; at 1e308 every similarity becomes 0 and every prediction null. The settings cap ASIF_P alike.
P_MAX = 64.0
DEFAULT_K_HINT = 800


def _is_int(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, np.integer))


def check_top(top: Any, max_top: int, what: str) -> int:
    """``top`` as an int in [1, max_top]; a string, float or bool is refused with the fix."""
    if not _is_int(top):
        raise ConfigError(f"top={top!r} is invalid: pass an integer number of {what}s (for example top=5)")
    if not 1 <= int(top) <= max_top:
        raise ConfigError(f"top={int(top)} is invalid: ask for 1 to {max_top} {what}s (raise ASIF_MAX_TOP for more)")
    return int(top)


def check_k(k: Any, max_k: int | None = None) -> int:
    if not _is_int(k) or k < 1:
        raise ConfigError(f"k={k!r} is invalid: k is the number of anchors kept, an integer >= 1 (default 800)")
    if max_k is not None and k > max_k:
        raise ConfigError(
            f"k={k} is larger than max_k={max_k}: k is the number of anchors kept per item (default 800); "
            "pick a smaller k, or raise ASIF_MAX_K if you really have that many anchors"
        )
    return int(k)


def check_p(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise ConfigError(f"p={p!r} is invalid: p is the exponent on similarities, a number > 0 (default 8)")
    if not np.isfinite(p) or p <= 0 or p > P_MAX:
        raise ConfigError(
            f"p={p!r} is invalid: p is the exponent on similarities, a number in (0, {P_MAX:g}] (default 8); a larger "
            "p rounds every similarity to zero and every prediction to none"
        )
    return float(p)


def check_k_p(
    k: int | None, p: float | None, default_k: int, default_p: float, max_k: int | None = None
) -> tuple[int, float]:
    """k and p (None: the defaults), each checked by its rule."""
    return check_k(default_k if k is None else k, max_k), check_p(default_p if p is None else p)


def check_count(n: int, limit: int, what: str, setting: str) -> None:
    """LimitError (HTTP 413) when a call names more than ``limit`` things."""
    if n > limit:
        raise LimitError(f"{n} {what} are more than the {limit} allowed in one call: split it, or raise {setting}")


__all__ = ["P_MAX", "check_count", "check_k", "check_k_p", "check_p", "check_top"]
