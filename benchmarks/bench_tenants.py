"""Tenancy at scale on the embedded store: many tenants, each with a few own anchors on top of shared ones, and one
shared label set that every tenant gets its own copy of. Against a single-tenant store of the same model size.

    .venv/bin/python benchmarks/bench_tenants.py --tenants 10000 --shared 40000

Reported: collections, bytes on disk (allocated, ``du``; apparent, ``du --apparent-size``), store open time,
first classify of a new tenant (it makes the tenant's copy of the label set), warm classify p50/p99 of one tenant
among all against the single-tenant store, and delete_tenant. Random clustered vectors (benchmarks/common.py).
Every tenant's own anchors are added through the plugin (one add per tenant) and every tenant's copy of the label
set is made through the plugin, by its first classify (``--materialise`` limits that to a sample).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from common import IMG_DIM, TXT_DIM, clustered_pairs, random_unit, table, write_results

from asif_qdrant import Asif

ENC = {"image_encoder": f"precomputed:img:{IMG_DIM}", "text_encoder": f"precomputed:txt:{TXT_DIM}"}


def du(path: Path, apparent: bool) -> int:
    args = ["du", "-s", "--block-size=1"] + (["--apparent-size"] if apparent else []) + [str(path)]
    return int(subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()[0])


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def warm_classify(a: Asif, tenant: str | None, q: np.ndarray, n: int) -> list[float]:
    a.classify(vectors=q[:1], labels="L", tenant=tenant)
    out = []
    for i in range(n):
        t = time.perf_counter()
        a.classify(vectors=q[i % len(q)][None], labels="L", tenant=tenant)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tenants", type=int, default=10_000)
    ap.add_argument("--shared", type=int, default=40_000)
    ap.add_argument("--own", type=int, default=3, help="own anchors per tenant")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--materialise", type=int, default=0, help="tenants whose copy is made (0: every tenant)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dir", default="/tmp/asif-bench-tenants")
    args = ap.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(3)
    topics = (random_unit(rng, 200, IMG_DIM), random_unit(rng, 200, TXT_DIM))
    q = clustered_pairs(rng, 50, topics=topics)[0]
    prompts = clustered_pairs(np.random.default_rng(7), args.classes, topics=topics)[1]

    # the single-tenant store: the shared anchors and the label set; the multi-tenant store starts as its copy
    t0 = time.perf_counter()
    single = Asif.open(root / "single", **ENC)
    for c in range(0, args.shared, 5000):
        img, txt = clustered_pairs(rng, min(5000, args.shared - c), topics=topics)
        single.add_vectors(img, txt, ids=list(range(c, c + len(img))))
    single.define_labels("L", [f"class{i}" for i in range(args.classes)], "plain", prompt_vectors=prompts)
    single.close()
    build_shared_s = time.perf_counter() - t0
    shutil.copytree(root / "single", root / "multi")

    a = Asif.open(root / "multi", **ENC)
    tenants = [f"tenant-{i:05d}" for i in range(args.tenants)]
    own_img, own_txt = clustered_pairs(rng, args.tenants * args.own, topics=topics)
    t0 = time.perf_counter()
    for i, t in enumerate(tenants):
        sl = slice(i * args.own, (i + 1) * args.own)
        a.add_vectors(own_img[sl], own_txt[sl], tenant=t, ids=list(range(args.shared + sl.start,
                                                                         args.shared + sl.stop)))
    add_s = time.perf_counter() - t0
    n_mat = args.tenants if args.materialise <= 0 else min(args.materialise, args.tenants)
    first_ms = []
    t0 = time.perf_counter()
    for t in tenants[:n_mat]:  # a tenant's first classify makes its copy of the shared label set
        s = time.perf_counter()
        a.classify(vectors=q[:1], labels="L", tenant=t)
        first_ms.append((time.perf_counter() - s) * 1000)
    materialise_s = time.perf_counter() - t0
    collections = len(a.engine.list_collections())
    copies = sum(1 for i in a.relindexes.infos() if i.name == "L") - 1
    a.close()
    alloc, apparent = du(root / "multi", False), du(root / "multi", True)
    s_alloc, s_apparent = du(root / "single", False), du(root / "single", True)

    t0 = time.perf_counter()
    a = Asif.open(root / "multi", **ENC)
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = Asif.open(root / "single", **ENC)
    single_open_s = time.perf_counter() - t0
    # warm classify: one tenant among all (its copy made) against the single-tenant store, interleaved in rounds
    pick = tenants[n_mat // 2]
    multi_ms: list[float] = []
    single_ms: list[float] = []
    for _ in range(4):
        multi_ms += warm_classify(a, pick, q, args.queries // 4)
        single_ms += warm_classify(single, None, q, args.queries // 4)
    # a new tenant: its own anchors, then its first classify (the copy of the label set is made here)
    new_first = []
    for j in range(10):
        t = f"new-{j}"
        img, txt = clustered_pairs(rng, args.own, topics=topics)
        a.add_vectors(img, txt, tenant=t)
        s = time.perf_counter()
        a.classify(vectors=q[:1], labels="L", tenant=t)
        new_first.append((time.perf_counter() - s) * 1000)
    delete_ms = []
    for t in tenants[:10]:
        s = time.perf_counter()
        a.delete_tenant(t)
        delete_ms.append((time.perf_counter() - s) * 1000)
    collections_after = len(a.engine.list_collections())
    a.close()
    single.close()

    row = {
        "tenants": args.tenants, "shared_anchors": args.shared, "own_per_tenant": args.own,
        "prompts": args.classes, "copies_made": copies, "collections": collections,
        "collections_single": 4, "disk_allocated_mb": alloc / 2**20, "disk_apparent_mb": apparent / 2**20,
        "apparent_over_allocated": apparent / alloc, "single_allocated_mb": s_alloc / 2**20,
        "single_apparent_mb": s_apparent / 2**20, "open_s": open_s, "single_open_s": single_open_s,
        "first_classify_new_tenant_ms_p50": pct(new_first, 50), "first_classify_new_tenant_ms_max": max(new_first),
        "first_classify_ms_p50_during_load": pct(first_ms, 50), "first_classify_ms_p99_during_load": pct(first_ms, 99),
        "warm_classify_ms_p50": pct(multi_ms, 50), "warm_classify_ms_p99": pct(multi_ms, 99),
        "single_classify_ms_p50": pct(single_ms, 50), "single_classify_ms_p99": pct(single_ms, 99),
        "warm_ratio_p50": pct(multi_ms, 50) / pct(single_ms, 50),
        "warm_ratio_p99": pct(multi_ms, 99) / pct(single_ms, 99),
        "delete_tenant_ms_p50": pct(delete_ms, 50), "delete_tenant_ms_max": max(delete_ms),
        "collections_after_deletes": collections_after, "build_shared_s": build_shared_s,
        "add_own_anchors_s": add_s, "materialise_all_s": materialise_s,
    }
    cols = ["tenants", "copies_made", "collections", "disk_allocated_mb", "disk_apparent_mb", "open_s",
            "first_classify_new_tenant_ms_p50", "warm_classify_ms_p50", "warm_classify_ms_p99",
            "single_classify_ms_p50", "single_classify_ms_p99", "warm_ratio_p50", "delete_tenant_ms_p50"]
    print(table([row], cols))
    for k, v in row.items():
        print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
    print("results:", write_results(f"bench_tenants_{args.tenants}", [row], args=vars(args)))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
