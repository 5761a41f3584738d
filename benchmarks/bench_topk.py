"""Exact top-k on Qdrant Edge against numpy brute force (X @ q, argpartition, sort), per query.

    .venv/bin/python benchmarks/bench_topk.py               # N = 100k random 1280-d anchors, k = 800
    .venv/bin/python benchmarks/bench_topk.py --big         # also N = 1M (5 GB of float32 in numpy + 5 GB in Edge)

The Edge shard is built in batches once and kept in benchmarks/cache/ (the numpy matrix is regenerated from the
same seeds, chunk by chunk). Edge runs the query as the plugin does (one anchor query with the tenant filter,
k + 8 neighbours, through EdgeEngine) and also without the filter. numpy gets the same machine: its BLAS threads
are left as they are (OPENBLAS_CORETYPE and the thread pools are recorded in the JSON, not changed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE, IMG_DIM, table, timed, write_results

from asif_qdrant.engines.base import CollectionSpec, DenseQuery, Filter, MatchAny, PointBatch, SearchOptions
from asif_qdrant.engines.edge import EdgeEngine
from asif_qdrant.search_options import SearchConfig

CHUNK = 20_000
SCOPE = Filter(must=(MatchAny("tenant", ("_shared",)),))  # what every anchor query of the shared model carries


def chunks(n: int, dim: int, seed: int, kind: str = "noise") -> Iterator[tuple[int, np.ndarray]]:
    """Unit vectors in chunks (start, array), the same for the same (n, dim, seed, kind). ``clustered``: 200 topic
    centres plus noise (neighbourhoods, as real embeddings have); ``noise``: isotropic Gaussian."""
    centres = None
    if kind == "clustered":
        centres = np.random.default_rng([seed, 10**9]).standard_normal((200, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    for start in range(0, n, CHUNK):
        rng = np.random.default_rng([seed, start])
        m = min(CHUNK, n - start)
        x = rng.standard_normal((m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        if centres is not None:
            x = centres[rng.integers(0, len(centres), m)] + 0.9 * x
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield start, x.astype(np.float32)


def matrix(n: int, dim: int, seed: int, kind: str = "noise") -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for start, x in chunks(n, dim, seed, kind):
        out[start : start + len(x)] = x
    return out


def queries(nq: int, dim: int, kind: str = "noise") -> np.ndarray:
    """Query vectors from the anchors' distribution (another seed)."""
    return matrix(nq, dim, 7, kind)[:nq]


def plugin_payload(i: int) -> dict[str, Any]:
    """A payload like the ones the plugin writes for an ingested pair."""
    return {"tenant": "_shared", "caption": f"a dog runs across the grass in a park number {i:07d}",
            "image_ref": f"flickr8k/Images/{i:010d}_a1b2c3d4e5.jpg", "content_hash": f"{i:032x}"}


def store_path(n: int, dim: int, cfg: SearchConfig, kind: str = "noise", text_dim: int | None = None,
               root: Path = CACHE) -> Path:
    tag = "exact" if cfg.exact else f"{cfg.quantization}-" + (
        f"hnsw{cfg.hnsw_m}-{cfg.hnsw_ef_construct}" if cfg.hnsw else "flat")
    return root / f"random-{kind}-{n}-{dim}{f'+{text_dim}' if text_dim else ''}-{tag}"


def random_collection(
    n: int, dim: int = IMG_DIM, *, cfg: SearchConfig | None = None, kind: str = "noise", seed: int = 0,
    root: Path = CACHE, rebuild: bool = False, text_dim: int | None = None, batch: int = CHUNK,
) -> tuple[EdgeEngine, str, dict[str, float]]:
    """An Edge store holding one collection 'anchors' of n random unit vectors ('image'; with ``text_dim`` also
    'text' and plugin-like payloads, else the tenant payload only), built once under ``root`` (reused while
    complete) and optimized when ``cfg`` asks for an index. ``batch``: points per upsert (the plugin writes 256;
    the write-ahead log that a reopen replays holds the last few upserts). Returns (engine, collection, timings)."""
    cfg = cfg or SearchConfig()
    path = store_path(n, dim, cfg, kind, text_dim, root)
    if batch != CHUNK:
        path = path.with_name(f"{path.name}-b{batch}")
    if rebuild and path.exists():
        shutil.rmtree(path)
    done = path / "complete"
    timings: dict[str, float] = {}
    if path.exists() and not done.exists():
        shutil.rmtree(path)
    engine = EdgeEngine(path)
    if not done.exists():
        quant, hnsw = cfg.collection_options()
        dense = {"image": dim, **({"text": text_dim} if text_dim else {})}
        engine.create_collection("anchors", CollectionSpec(dense=dense, keyword_indexes={"tenant": True},
                                                          quantization=quant, hnsw=hnsw))
        t = time.perf_counter()
        text = chunks(n, text_dim, seed + 1, kind) if text_dim else None
        for start, x in chunks(n, dim, seed, kind):
            vecs = {"image": x}
            if text is not None:
                vecs["text"] = next(text)[1]
            pls = [plugin_payload(i) for i in range(start, start + len(x))] if text_dim else [
                {"tenant": "_shared"}] * len(x)
            for s in range(0, len(x), batch):
                sl = slice(s, s + batch)
                engine.upsert("anchors", PointBatch(list(range(start + s, start + min(s + batch, len(x)))),
                                                    {v: a[sl] for v, a in vecs.items()}, payloads=pls[sl]))
        engine.flush()
        timings["upsert_s"] = time.perf_counter() - t
        if not cfg.exact:
            t = time.perf_counter()
            engine.optimize("anchors")
            timings["optimize_s"] = time.perf_counter() - t
        done.write_text(json.dumps(timings))
    else:
        timings = json.loads(done.read_text())
    return engine, "anchors", timings


def numpy_topk(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: scores = X @ q, argpartition for the k best, then sort those k."""
    s = x @ q
    part = np.argpartition(-s, k)[:k]
    order = part[np.argsort(-s[part], kind="stable")]
    return order, s[order]


def numpy_topk_batch(x: np.ndarray, qs: np.ndarray, k: int) -> np.ndarray:
    s = qs @ x.T  # (B, N): one GEMM for the batch
    part = np.argpartition(-s, k, axis=1)[:, :k]
    vals = np.take_along_axis(s, part, axis=1)
    return np.take_along_axis(part, np.argsort(-vals, axis=1), axis=1)


def blas_info() -> dict[str, Any]:
    from threadpoolctl import threadpool_info

    return {"threadpools": threadpool_info(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "cpu_count": os.cpu_count()}


def numpy_side(n: int, q: np.ndarray, k: int, batch: int, reps: int) -> tuple[float, float, float, np.ndarray]:
    """(ms per query one by one, ms per query in batches, seconds to generate X, top-k ids of q[0])."""
    t = time.perf_counter()
    x = matrix(n, IMG_DIM, 0)
    gen_s = time.perf_counter() - t
    nq = len(q)
    one = timed(lambda: [numpy_topk(x, v, k) for v in q], reps)["median_ms"] / nq
    bat = timed(lambda: [numpy_topk_batch(x, q[s : s + batch], k) for s in range(0, nq, batch)], reps)["median_ms"]
    return one, bat / nq, gen_s, numpy_topk(x, q[0], k)[0]


def bench(n: int, k: int, nq: int, batch: int, rebuild: bool) -> dict[str, Any]:
    engine, coll, build = random_collection(n, rebuild=rebuild)
    q = queries(nq, IMG_DIM)
    lim = k + 8
    exact = SearchOptions()

    def edge_one(flt: Filter | None) -> None:
        for v in q:
            engine.query_batch(coll, [DenseQuery("image", v, lim, flt, options=exact)])

    def edge_batch() -> None:
        for s in range(0, nq, batch):
            engine.query_batch(coll, [DenseQuery("image", v, lim, SCOPE, options=exact) for v in q[s : s + batch]])

    reps = 3 if n <= 200_000 else 1
    e_scope = timed(lambda: edge_one(SCOPE), reps)["median_ms"] / nq
    e_plain = timed(lambda: edge_one(None), reps)["median_ms"] / nq
    e_batch = timed(edge_batch, reps)["median_ms"] / nq
    got = engine.query_batch(coll, [DenseQuery("image", q[0], k, SCOPE)])[0]
    engine.close()
    gc.collect()
    n_one, n_batch, gen_s, ids = numpy_side(n, q, k, batch, reps)
    agree = len({h.id for h in got} & set(ids.tolist())) / k
    return {
        "anchors": n, "k": k, "queries": nq,
        "edge_ms": e_scope, "edge_nofilter_ms": e_plain, "numpy_ms": n_one, "ratio": e_scope / n_one,
        f"edge_batch{batch}_ms": e_batch, f"numpy_batch{batch}_ms": n_batch, "ratio_batch": e_batch / n_batch,
        "same_topk": agree, "edge_build_s": build.get("upsert_s", float("nan")), "numpy_gen_s": gen_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--big", action="store_true", help="also N = 1,000,000 (needs ~12 GB of RAM, ~6 GB of disk)")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([1_000_000] if args.big else [])
    rows = []
    for n in sizes:
        nq = args.queries if n <= 200_000 else min(args.queries, 10)
        rows.append(bench(n, args.k, nq, args.batch, args.rebuild))
        print(table(rows[-1:], list(rows[-1])), flush=True)
    print("\nEdge exact top-k vs numpy brute force (ms per query; ratio = Edge / numpy, target <= 1.2):")
    print(table(rows, ["anchors", "edge_ms", "edge_nofilter_ms", "numpy_ms", "ratio",
                       f"edge_batch{args.batch}_ms", f"numpy_batch{args.batch}_ms", "ratio_batch", "same_topk"]))
    name = "topk_edge_vs_numpy" + ("_big" if args.big else "")
    print("wrote", write_results(name, rows, blas=blas_info(), dim=IMG_DIM))


if __name__ == "__main__":
    main()
