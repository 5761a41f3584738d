"""Zero-shot CIFAR-10 accuracy against the number of Flickr8k anchor pairs (nested random subsets, 3 seeds).

    .venv/bin/python benchmarks/eval_curve.py      # table; results/anchor_curve.json and results/anchor_curve.png

Each subset is a prefix of one seeded permutation of the anchor ids; the images' and the prompts' top-k are taken
within the subset by a HasId filter on the dense queries (the store is not copied). Uses the label set
``cifar10`` (defined with the default k=800, p=8, photo templates, max when missing) and, by default, a
class-balanced sample of 2,000 CIFAR-10 test images (embeddings sliced from the cached full test set).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import CACHE, DATA, RESULTS, table, write_results

from asif_qdrant import Asif
from asif_qdrant.evaluation.demo import CIFAR10
from asif_qdrant.evaluation.sweeps import anchor_curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=CACHE / "flickr-store")
    ap.add_argument("--prefix", default="asif_")
    ap.add_argument("--data", type=Path, default=DATA / "cifar10-test")
    ap.add_argument("--labels", default="cifar10")
    ap.add_argument("--anchors", default="500,1000,2000,5000,10000,all")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=2000, help="class-balanced CIFAR images (0 = all 10,000)")
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--p", type=float, default=8.0)
    ap.add_argument("--name", default="anchor_curve")
    args = ap.parse_args()
    a = Asif.open(args.store, prefix=args.prefix)
    print(f"store {a.engine.description}: {a.count()} anchors; encoders {a.fingerprint}")
    if args.labels not in {i.name for i in a.list_indexes(kind="labels")}:
        a.define_labels(args.labels, CIFAR10, "photo")
    rep = anchor_curve(a, args.data, args.labels, args.anchors, args.seeds, limit=args.limit or None, k=args.k,
                       p=args.p, plot=RESULTS / f"{args.name}.png")
    print(rep.table())
    rows = rep.summary()
    print(table(rows, ["anchors", "seeds", "top1_mean", "top1_std", "top1_min", "top1_max", "top5_mean"]))
    extra = {k: v for k, v in rep.as_dict().items() if k != "summary"}
    print("wrote", write_results(args.name, rows, **extra, fingerprint=a.fingerprint.as_dict()))
    a.close()


if __name__ == "__main__":
    main()
