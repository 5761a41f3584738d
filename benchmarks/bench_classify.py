"""Classify latency per image (encoding excluded) next to the single raw top-k anchor query it needs,
on the same engine, and the time from an anchor edit to the next classify that reflects it.

    .venv/bin/python benchmarks/bench_classify.py --sizes 40000,100000 --prompts 80,1000

Stores of random "clustered" anchors (1280-d image, 768-d text) are built once and kept in
benchmarks/cache/ (pass --rebuild to start again).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import CACHE, IMG_DIM, TXT_DIM, clustered_pairs, random_unit, table, timed, write_results

from asif_qdrant import Asif
from asif_qdrant.engines import DenseQuery
from asif_qdrant.relindex import tenant_scope

ENC = {"image_encoder": f"precomputed:img:{IMG_DIM}", "text_encoder": f"precomputed:txt:{TXT_DIM}"}


def store(n: int, rebuild: bool) -> Asif:
    path = CACHE / f"random-{n}"
    if rebuild and path.exists():
        import shutil

        shutil.rmtree(path)
    a = Asif.open(path, **ENC)
    have = a.count()
    if have < n:
        # generated in chunks of 50k (one shared set of topics) so that 1M anchors fit in memory
        rng = np.random.default_rng(n)
        topics = (random_unit(rng, 200, IMG_DIM), random_unit(rng, 200, TXT_DIM))
        for c in range(0, n, 50_000):
            m = min(50_000, n - c)
            if c + m <= have:
                continue
            img, txt = clustered_pairs(rng, m, topics=topics)
            for s in range(0, m, 5000):
                a.add_vectors(img[s : s + 5000], txt[s : s + 5000], ids=list(range(c + s, c + min(m, s + 5000))))
    a.optimize()  # as `asif optimize` leaves a bulk load: one segment per core (nothing to do the next time)
    return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="40000,100000")
    ap.add_argument("--prompts", default="80,1000")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--suffix", default="", help="results file suffix, e.g. _1m")
    args = ap.parse_args()
    rows, edit_rows = [], []
    rng = np.random.default_rng(1)
    for n in [int(x) for x in args.sizes.split(",")]:
        a = store(n, args.rebuild)
        q = random_unit(rng, args.queries, IMG_DIM) + clustered_pairs(rng, args.queries)[0]
        for n_prompts in [int(x) for x in args.prompts.split(",")]:
            n_classes = n_prompts // 8
            name = f"bench{n_prompts}"
            prompts = clustered_pairs(np.random.default_rng(7), n_prompts)[1]
            t = time.perf_counter()
            a.define_labels(name, [f"class{i}" for i in range(n_classes)], "photo", prompt_vectors=prompts, k=args.k,
                            replace=True)
            build_s = time.perf_counter() - t
            coll, scope = a.anchors.collection, tenant_scope("_shared")

            def raw_one() -> None:
                for v in q:
                    a.engine.query_batch(coll, [DenseQuery("image", v, args.k, scope)])

            def classify_one() -> None:
                for v in q:
                    a.classify(vectors=v[None], labels=name, top=5)

            def raw_batch() -> None:
                a.engine.query_batch(coll, [DenseQuery("image", v, args.k, scope) for v in q])

            def classify_batch() -> None:
                a.classify(vectors=q, labels=name, top=5)

            r1, c1 = timed(raw_one, 3), timed(classify_one, 3)
            rb, cb = timed(raw_batch, 3), timed(classify_batch, 3)
            nq = len(q)
            rows.append({
                "anchors": n, "prompts": n_prompts,
                "raw_topk_ms": r1["median_ms"] / nq, "classify_ms": c1["median_ms"] / nq,
                "ratio": c1["median_ms"] / r1["median_ms"],
                "raw_batch_ms": rb["median_ms"] / nq, "classify_batch_ms": cb["median_ms"] / nq,
                "ratio_batch": cb["median_ms"] / rb["median_ms"], "label_set_build_s": build_s,
            })
            print(table(rows[-1:], list(rows[-1])))
            # edit -> visible: add one anchor, classify; delete it, classify; against a full rebuild
            e_img, e_txt = clustered_pairs(np.random.default_rng(99), 1)

            def add_then_classify() -> None:
                a.add_vectors(e_img, e_txt, ids=[n + 1])
                a.classify(vectors=q[:1], labels=name)

            def delete_then_classify() -> None:
                a.delete([n + 1])
                a.classify(vectors=q[:1], labels=name)

            add_t, del_t = [], []
            for _ in range(3):
                add_t.append(timed(add_then_classify, 1, 0)["median_ms"])
                del_t.append(timed(delete_then_classify, 1, 0)["median_ms"])
            info = a.relindexes.require(name, "_shared")
            reb = timed(lambda info=info: a.relindexes.rebuild(info), 1, 0)["median_ms"]
            cls = timed(lambda: a.classify(vectors=q[:1], labels=name), 3)["median_ms"]
            edit_rows.append({
                "anchors": n, "prompts": n_prompts, "add_to_visible_ms": float(np.median(add_t)),
                "delete_to_visible_ms": float(np.median(del_t)), "classify_ms": cls, "rebuild_ms": reb,
                "speedup_add": reb / float(np.median(add_t)), "speedup_delete": reb / float(np.median(del_t)),
            })
            print(table(edit_rows[-1:], list(edit_rows[-1])))
        a.close()
    print("\nclassify vs raw top-k (per image):")
    print(table(rows, list(rows[0])))
    print("\nedit -> visible (one anchor, next classify) vs full rebuild of the label set:")
    print(table(edit_rows, list(edit_rows[0])))
    print("wrote", write_results("classify_latency" + args.suffix, rows, k=args.k, queries=args.queries))
    print("wrote", write_results("edit_to_visible" + args.suffix, edit_rows, k=args.k))


if __name__ == "__main__":
    main()
