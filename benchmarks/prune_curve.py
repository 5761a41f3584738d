"""Fine pruning on the real setup: CIFAR-10 top-1 against the number of Flickr8k anchors kept, label_weight vs random.

    .venv/bin/python benchmarks/prune_curve.py              # keeps all (40,445), 10000, 2000, 500; --limit 2000

The store (benchmarks/cache/flickr-store, label set ``cifar10``) is copied to --scratch under its lock, as in
bench_quantization.py. The curve copies nothing: each point restricts the anchor queries of the images and of the
prompts to the kept ids (HasId filter). ``--verify`` also prunes the smallest size for real (a new store under a
prefix of the copy) and checks that classify there gives the curve's accuracy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from bench_quantization import copy_store
from common import CACHE, DATA, write_results

from asif_qdrant import Asif
from asif_qdrant.evaluation.evaluate import labelled_vectors, read_folder_per_class
from asif_qdrant.evaluation.prune import open_prefix, prune, prune_curve_vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", type=Path, default=CACHE / "flickr-store")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/asif-bench"))
    ap.add_argument("--data", type=Path, default=DATA / "cifar10-test")
    ap.add_argument("--labels", default="cifar10")
    ap.add_argument("--limit", type=int, default=2000, help="class-balanced sample of the test images")
    ap.add_argument("--keeps", default="all,10000,2000,500", help="anchor counts; 'all' = every anchor")
    ap.add_argument("--criterion", default="label_weight", choices=["label_weight", "image_contribution"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true", help="prune the smallest size for real and compare")
    args = ap.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    copy = args.scratch / "flickr-store"
    copy_store(args.store, copy)
    asif = Asif.open(copy)
    try:
        sample = read_folder_per_class(args.data, args.limit)
        vecs = labelled_vectors(asif, sample, progress=False)
        keeps = [asif.count() if x == "all" else int(x) for x in args.keeps.split(",")]
        extra = {}
        if args.criterion == "image_contribution":  # unlabelled sample: other test images than the evaluated ones
            other = read_folder_per_class(args.data, 1000, seed=args.seed + 1)
            extra["sample_vectors"] = labelled_vectors(asif, other, progress=False)
        t = time.perf_counter()
        curve = prune_curve_vectors(asif, args.labels, vecs, sample.labels, keeps, True, args.seed,
                                    criterion=args.criterion, progress=True, **extra)
        secs = time.perf_counter() - t
        print(curve.table())
        print(f"({secs:.0f} s for {len(curve.rows)} points; no anchor was copied)")
        result = curve.as_dict()
        if args.verify:
            n = min(keeps)
            prefix = f"pruned{n}_"
            rep = prune(asif, args.labels, n, into_prefix=prefix, criterion=args.criterion,
                        sample_vectors=extra.get("sample_vectors"))
            print(rep.summary())
            pruned = open_prefix(asif, prefix)
            preds = pruned.classify(vectors=vecs, labels=args.labels)
            acc = float(np.mean([p.label == t for p, t in zip(preds, sample.labels, strict=True)]))
            row = next(r for r in curve.rows if r.keep == n and r.selection == args.criterion)
            print(f"verify: classify on the pruned copy ({rep.kept} anchors): top-1 {acc:.4f}; curve: {row.top1:.4f}")
            result["verify"] = {"keep": n, "copy_top1": acc, "curve_top1": row.top1, "prune_seconds": rep.seconds}
            for info in pruned.list_indexes():
                pruned.relindexes.delete(info)
            for c in [c for c in pruned.engine.list_collections() if c.startswith(prefix)]:
                pruned.engine.delete_collection(c)
        print("wrote", write_results(f"prune_curve_{args.criterion}", [r.__dict__ for r in curve.rows],
                                     **{k: v for k, v in result.items() if k != "rows"}, seconds=secs,
                                     images=len(vecs)))
    finally:
        asif.close()


if __name__ == "__main__":
    main()
