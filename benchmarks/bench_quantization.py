"""The accuracy cost of the opt-in scale options: exact / int8+rescore / binary+rescore / HNSW (ef = k .. 2k).

    .venv/bin/python benchmarks/bench_quantization.py                 # 100k random anchors + Flickr/CIFAR-10
    .venv/bin/python benchmarks/bench_quantization.py --big          # also 1M random anchors (int8, ~12 GB disk)

1. Random anchors (1280-d, 100k; "clustered" = 200 topics + noise, "noise" = isotropic): latency of one anchor
   query (k = 800, tenant filter, as the plugin sends it) and top-k overlap with the exact top-k.
2. The real setup: the Flickr8k anchors of benchmarks/cache/flickr-store and the label set ``cifar10`` on a
   class-balanced sample of CIFAR-10 test images (--limit 1000; embeddings cached by the lead's evaluation). The
   store is copied to --scratch (Edge is one process at a time; the copy is taken under the store's lock), and
   each option gets its own copy of the anchors collection (same ids and payloads), built and optimized. Both the
   images' and the prompts' top-k are queried with the option, as a store created with it would do, and top-1
   agreement with the exact model is reported (target: <= 1 point of disagreement).
"""

from __future__ import annotations

import argparse
import fcntl
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_topk import SCOPE, blas_info, queries, random_collection
from common import CACHE, DATA, IMG_DIM, table, write_results

from asif_qdrant.engines.base import CollectionSpec, DenseQuery, Engine, SearchOptions
from asif_qdrant.search_options import SearchConfig
from asif_qdrant.topk import EXACT, dense_topk, topk_overlap


@dataclass(frozen=True)
class Option:
    """One row: the collection it needs (``build``) and how a query runs on it (``query``)."""

    name: str
    build: SearchConfig
    query: SearchConfig


def options(k: int) -> list[Option]:
    q8, b1 = SearchConfig(quantization="int8"), SearchConfig(quantization="binary")
    h = SearchConfig(hnsw=True)
    h8 = SearchConfig(quantization="int8", hnsw=True)
    return [
        Option("exact", SearchConfig(), SearchConfig()),
        Option("int8+rescore x2", q8, q8),
        Option("int8+rescore x4", q8, SearchConfig(quantization="int8", oversampling=4.0)),
        Option("binary+rescore x2", b1, b1),
        Option("binary+rescore x8", b1, SearchConfig(quantization="binary", oversampling=8.0)),
        Option(f"hnsw ef={k + 8}", h, SearchConfig(hnsw=True, hnsw_ef=k)),
        Option(f"hnsw ef={2 * k}", h, h),
        Option(f"int8+hnsw ef={2 * k}", h8, h8),
        Option(f"int8+hnsw ef={4 * k}", h8, SearchConfig(quantization="int8", hnsw=True, hnsw_ef=4 * k)),
        Option(f"int8+hnsw ef={8 * k}", h8, SearchConfig(quantization="int8", hnsw=True, hnsw_ef=8 * k)),
    ]


def query_ms(engine: Engine, coll: str, q: np.ndarray, opts: SearchOptions, k: int, reps: int = 3) -> float:
    """Median over ``reps`` passes of the mean time of one anchor query (one query per call, as classify of one
    image sends it)."""
    runs = []
    for _ in range(reps):
        t = time.perf_counter()
        for v in q:
            engine.query_batch(coll, [DenseQuery("image", v, k + 8, SCOPE, options=opts)])
        runs.append((time.perf_counter() - t) * 1000 / len(q))
    return float(np.median(runs))


def random_part(n: int, k: int, nq: int, kinds: list[str], only: set[str] | None) -> list[dict[str, Any]]:
    rows = []
    for kind in kinds:
        q = queries(nq, IMG_DIM, kind)
        exact_engine, coll, _ = random_collection(n, kind=kind)
        ref = dense_topk(exact_engine, coll, q, "image", SCOPE, k)
        exact_engine.close()
        for opt in options(k):
            if only and opt.name.split()[0] not in only:
                continue
            engine, coll, build = random_collection(n, cfg=opt.build, kind=kind)
            o = opt.query.query_options(k)
            ms = query_ms(engine, coll, q, o, k)
            got = dense_topk(engine, coll, q, "image", SCOPE, k, o)
            engine.close()
            rows.append({"data": kind, "anchors": n, "option": opt.name, "ms_per_query": ms,
                         "topk_overlap": topk_overlap(ref, got), "build_s": sum(build.values())})
            print(table(rows[-1:], list(rows[-1])), flush=True)
    return rows


# -- the real setup --------------------------------------------------------------------------------------
def copy_store(src: Path, dst: Path, wait_s: float = 1800) -> None:
    """Copy an Edge store folder while holding its lock (waiting while another process has it open)."""
    if (dst / "collections").exists():
        return
    deadline = time.monotonic() + wait_s
    with open(src / ".lock", "a+") as lock:
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{src} stayed locked by another process for {wait_s:.0f} s") from None
                print(f"{src} is open in another process; waiting ...", flush=True)
                time.sleep(30)
        try:
            tmp = dst.with_name(dst.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".lock"))
            tmp.rename(dst)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def option_collection(asif: Any, cfg: SearchConfig) -> tuple[str, dict[str, float]]:
    """A copy of the anchors collection built with ``cfg`` (same ids and payloads), optimized; reused if present."""
    from asif_qdrant.evaluation.prune import copy_points

    if cfg.exact:
        return asif.anchors.collection, {}
    tag = f"{cfg.quantization}{'_hnsw' if cfg.hnsw else ''}"
    coll = f"opt_{tag}_anchors"
    src = asif.anchors.collection
    e = asif.engine
    timings: dict[str, float] = {}
    if e.collection_exists(coll) and e.count(coll) == e.count(src) and e.indexed_vectors(coll) > 0:
        return coll, timings
    if e.collection_exists(coll):
        e.delete_collection(coll)
    quant, hnsw = cfg.collection_options()
    spec = e.collection_spec(src)
    e.create_collection(coll, CollectionSpec(dense=dict(spec.dense), keyword_indexes={"tenant": True},
                                             quantization=quant, hnsw=hnsw))
    t = time.perf_counter()
    copy_points(e, src, coll)
    timings["copy_s"] = time.perf_counter() - t
    t = time.perf_counter()
    e.optimize(coll)
    timings["optimize_s"] = time.perf_counter() - t
    return coll, timings


def real_part(store: Path, scratch: Path, data: Path, limit: int, only: set[str] | None) -> list[dict[str, Any]]:
    from asif_qdrant import Asif
    from asif_qdrant.evaluation.evaluate import labelled_vectors, read_folder_per_class
    from asif_qdrant.evaluation.sweeps import check_image_vectors, label_set_prompt_vectors, rank_labels, sparse_scores
    from asif_qdrant.relindex import tenant_scope

    copy = scratch / "flickr-store"
    copy_store(store, copy)
    asif = Asif.open(copy)
    rows = []
    try:
        info = asif.relindexes.require("cifar10", "_shared", "labels")
        sample = read_folder_per_class(data, limit)
        vecs = check_image_vectors(asif, labelled_vectors(asif, sample, progress=False))
        pvecs = label_set_prompt_vectors(asif, info)
        truth = np.array([info.classes.index(t) for t in sample.labels])
        n_t = len(info.templates)
        scope = tenant_scope("_shared")
        k = info.k
        print(f"real setup: {asif.count()} anchors, {len(vecs)} CIFAR-10 images, k={k} p={info.p:g}", flush=True)
        exact_top1: np.ndarray | None = None
        exact_img = None
        for opt in options(k):
            if only and opt.name.split()[0] not in only:
                continue
            coll, build = option_collection(asif, opt.build)
            o = opt.query.query_options(k) if not opt.query.exact else EXACT
            t = time.perf_counter()
            img = dense_topk(asif.engine, coll, vecs, "image", scope, k, o)
            batch_ms = (time.perf_counter() - t) * 1000 / len(vecs)
            prm = dense_topk(asif.engine, coll, pvecs, "text", scope, k, o)
            ranked = rank_labels(sparse_scores(img.reps(info.p), prm.reps(info.p)), info.classes, n_t,
                                 info.aggregation)
            top1 = ranked.top[:, 0]
            if exact_top1 is None:
                exact_top1, exact_img = top1, img
                check = asif.classify(vectors=vecs[:50], labels="cifar10")  # the no-copy path equals classify
                assert [p.label for p in check] == [info.classes[c] if c >= 0 else None for c in top1[:50]]
            single_ms = query_ms(asif.engine, coll, vecs[:40], o, k)
            rows.append({
                "option": opt.name, "anchors": asif.count(), "images": len(vecs),
                "top1": float((top1 == truth).mean()),
                "top1_disagree_pts": 100 * float((top1 != exact_top1).mean()),
                "topk_overlap": topk_overlap(exact_img, img), "anchor_query_ms": single_ms,
                "batched_ms_per_image": batch_ms, "build_s": sum(build.values()),
            })
            print(table(rows[-1:], list(rows[-1])), flush=True)
    finally:
        asif.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--kinds", default="clustered,noise")
    ap.add_argument("--only", default=None, help="option families, e.g. exact,int8+rescore,binary+rescore,hnsw,"
                    "int8+hnsw")
    ap.add_argument("--store", type=Path, default=CACHE / "flickr-store")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/asif-bench"))
    ap.add_argument("--data", type=Path, default=DATA / "cifar10-test")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--skip-random", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--big", action="store_true", help="also 1M random anchors: exact, int8+rescore, int8+hnsw")
    ap.add_argument("--name", default=None, help="results file name (default quantization[_big])")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    result: dict[str, Any] = {"blas": blas_info(), "k": args.k}
    rows: list[dict[str, Any]] = []
    if not args.skip_random:
        rows = random_part(args.n, args.k, args.queries, args.kinds.split(","), only)
        result["random"] = rows
    if args.big:
        big = random_part(1_000_000, args.k, 10, ["clustered"], only or {"exact", "int8+rescore", "int8+hnsw"})
        result["big"] = big
        rows = rows + big
    if rows:
        print("\nrandom anchors: one anchor query (ms) and top-k overlap with exact:")
        print(table(rows, list(rows[0])))
    if not args.skip_real:
        args.scratch.mkdir(parents=True, exist_ok=True)
        real = real_part(args.store, args.scratch, args.data, args.limit, only)
        result["real"] = real
        print("\nFlickr8k anchors, CIFAR-10: top-1 and disagreement with exact (points; target <= 1):")
        print(table(real, list(real[0])))
    name = args.name or ("quantization" + ("_big" if args.big else ""))
    print("wrote", write_results(name, rows, **result))


if __name__ == "__main__":
    main()
