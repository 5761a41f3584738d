"""Validated autotuning on CIFAR-10: choose k, p, templates and aggregation on half of the test images (per-class
split, seed 0), report default vs tuned top-1 on the other half (never seen while tuning).

    .venv/bin/python benchmarks/eval_tune.py       # table; results/eval_tune.json

Tunes its own label set ``cifar10_tuned`` (redefined here with the defaults first), so the store's ``cifar10``
label set keeps its settings. Grid: k in {200,400,800,1600,3000}, p in {1,2,4,8,16}, templates {photo, plain},
aggregation {max, mean} (100 settings).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import CACHE, DATA, table, write_results

from asif_qdrant import Asif
from asif_qdrant.evaluation.demo import CIFAR10
from asif_qdrant.evaluation.tune import tune


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=CACHE / "flickr-store")
    ap.add_argument("--prefix", default="asif_")
    ap.add_argument("--data", type=Path, default=DATA / "cifar10-test")
    ap.add_argument("--labels", default="cifar10_tuned")
    ap.add_argument("--val-fraction", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--name", default="eval_tune")
    args = ap.parse_args()
    a = Asif.open(args.store, prefix=args.prefix)
    print(f"store {a.engine.description}: {a.count()} anchors; encoders {a.fingerprint}")
    a.define_labels(args.labels, CIFAR10, "photo", replace=True)  # start from the defaults every run
    rep = tune(a, args.data, args.labels, val_fraction=args.val_fraction, seed=args.seed, limit=args.limit)
    print(rep.table())
    print("\nvalidation top-1 of every setting (best first, first 20):")
    print(table([r.as_dict() for r in rep.val_rows[:20]], ["k", "p", "templates", "aggregation", "top1", "top5"]))
    d = rep.as_dict()
    rows = [{"which": "default", **d["default"], "val_top1": d["val_default"]["top1"],
             "test_top1": d["test_default"]["top1"], "test_top5": d["test_default"]["top5"]},
            {"which": "tuned", **d["tuned"], "val_top1": d["val_tuned"]["top1"],
             "test_top1": d["test_tuned"]["top1"], "test_top5": d["test_tuned"]["top5"]}]
    print("wrote", write_results(args.name, rows, **d, fingerprint=a.fingerprint.as_dict()))
    a.close()


if __name__ == "__main__":
    main()
