"""Shared helpers for the benchmark scripts: timing, tables, JSON results, random anchor stores."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(__file__).resolve().parent / "cache"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data: read, never copied
IMG_DIM, TXT_DIM = 1280, 768


def find_cached(name: str) -> Path | None:
    """``name`` in benchmarks/cache/, else in the first ``cache/`` folder above the checkout that holds it."""
    for root in (CACHE, *(d / "cache" for d in Path(__file__).resolve().parents)):
        if (root / name).exists():
            return root / name
    return None


def cached(name: str) -> Path:
    found = find_cached(name)
    if found is None:
        raise SystemExit(f"{name} not found in {CACHE} or a cache/ folder above it: build it first (ingest_flickr.py)")
    return found


def timed(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median and min wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    widths = [max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(fmt(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)))
    return "\n".join(lines)


def write_results(name: str, rows: list[dict[str, Any]], **extra: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": platform.machine(), "python": platform.python_version(),
               "when": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows, **extra}
    out.write_text(json.dumps(payload, indent=2, default=float))
    return out


def random_unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered_pairs(
    rng: np.random.Generator, n: int, n_topics: int = 200, topics: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Random anchor pairs with shared structure: image and caption of a pair come from the same topic,
    so that relative representations overlap as they do on real data (pure noise would share nothing)."""
    if topics is None:
        topics = (random_unit(rng, n_topics, IMG_DIM), random_unit(rng, n_topics, TXT_DIM))
    ti, tt = topics
    n_topics = ti.shape[0]
    topic = rng.integers(0, n_topics, n)
    img = ti[topic] + 0.9 * random_unit(rng, n, IMG_DIM)
    txt = tt[topic] + 0.9 * random_unit(rng, n, TXT_DIM)
    return img.astype(np.float32), txt.astype(np.float32)
