"""Zero-shot CIFAR-10 on Flickr8k anchors: full evaluation, and a sweep over k, p and templates.

    .venv/bin/python benchmarks/ingest_flickr.py            # builds benchmarks/cache/flickr-store once
    .venv/bin/python benchmarks/eval_cifar.py --sweep        # prints tables, writes results/eval_cifar.json

Image embeddings of the test images are cached (first run encodes 10,000 images, ~10 min on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import CACHE, DATA, table, write_results

from asif_qdrant import Asif
from asif_qdrant.evaluation.demo import CIFAR10
from asif_qdrant.evaluation.evaluate import cached_image_vectors, evaluate, read_folder_per_class
from asif_qdrant.evaluation.sweeps import sweep_vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", type=Path, default=CACHE / "flickr-store")
    ap.add_argument("--prefix", default="asif_")
    ap.add_argument("--data", type=Path, default=DATA / "cifar10-test")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--sweep", action="store_true", help="also sweep k in {200,800,3000}, p in {1,4,8}")
    ap.add_argument("--name", default="eval_cifar")
    ap.add_argument("--text-encoder", default=None, help="for a new store, e.g. st:all-mpnet-base-v2")
    ap.add_argument("--cache-dir", type=Path, default=None, help="share image embeddings with another store")
    ap.add_argument("--ingest", type=Path, default=None, help="ingest this Flickr folder first (idempotent)")
    args = ap.parse_args()
    a = Asif.open(args.store, prefix=args.prefix, text_encoder=args.text_encoder, cache_dir=args.cache_dir)
    if args.ingest is not None:
        from asif_qdrant.ingest import ingest

        print(ingest(a, args.ingest, progress=False).summary())
    print(f"store {a.engine.description}: {a.count()} anchors; encoders {a.fingerprint}")
    if "cifar10" not in {i.name for i in a.list_indexes(kind="labels")}:
        a.define_labels("cifar10", CIFAR10, "photo")
    data = read_folder_per_class(args.data, args.limit)
    t = time.time()
    vecs = cached_image_vectors(a, data.paths)
    print(f"image embeddings: {len(data)} in {time.time() - t:.1f} s (cached after the first run)")
    t = time.time()
    rep = evaluate(a, args.data, "cifar10", limit=args.limit, progress=False)
    secs = time.time() - t
    print(rep.table())
    print(f"classified {rep.n} images in {secs:.1f} s ({1000 * secs / rep.n:.1f} ms/image, encoding excluded)")
    result = {"default": rep.as_dict(), "classify_seconds": secs}
    if args.sweep:
        t = time.time()
        rows = sweep_vectors(a, vecs, data.labels, CIFAR10, [200, 800, 3000], [1, 4, 8],
                             template_sets=("photo", "plain"), aggregations=("max", "mean"))
        print(f"\nsweep ({time.time() - t:.0f} s; top-k queried once at k=3000 and cut):")
        print(table([r.as_dict() for r in rows], ["k", "p", "templates", "aggregation", "top1", "top5"]))
        result["sweep"] = [r.as_dict() for r in rows]
    print("wrote", write_results(args.name, [result["default"]], **{k: v for k, v in result.items() if k != "default"},
                                 anchors=a.count(), fingerprint=a.fingerprint.as_dict()))
    a.close()


if __name__ == "__main__":
    main()
