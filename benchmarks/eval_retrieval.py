"""Text<->image retrieval on Flickr8k: recall@1/5/10 for 1,000 held-out images and their 5 captions each, against
the other images' pairs as anchors (the held-out pairs are excluded from the anchor queries by a filter).

    .venv/bin/python benchmarks/eval_retrieval.py  # table; results/eval_retrieval.json

Embeddings of the held-out images and captions come from the store's embedding cache (filled by ingest_flickr.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import CACHE, DATA, table, write_results

from asif_qdrant import Asif
from asif_qdrant.evaluation.retrieval import recall_table, retrieval_recall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=CACHE / "flickr-store")
    ap.add_argument("--prefix", default="asif_")
    ap.add_argument("--captions", type=Path, default=DATA / "flickr8k" / "captions.tsv")
    ap.add_argument("--holdout", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=None, help="default ASIF_K (800)")
    ap.add_argument("--p", type=float, default=None, help="default ASIF_P (3)")
    ap.add_argument("--name", default="eval_retrieval")
    args = ap.parse_args()
    a = Asif.open(args.store, prefix=args.prefix)
    print(f"store {a.engine.description}: {a.count()} anchors; encoders {a.fingerprint}")
    res = retrieval_recall(a, args.captions, args.holdout, args.seed, args.k, args.p)
    print(recall_table(res))
    rows = [{"direction": d, **res[d]} for d in ("image_to_caption", "caption_to_image")]
    print(table(rows, ["direction", "R@1", "R@5", "R@10", "median_rank", "not_found"]))
    print(f"{res['seconds']:.0f} s")
    print("wrote", write_results(args.name, rows, **res, fingerprint=a.fingerprint.as_dict()))
    a.close()


if __name__ == "__main__":
    main()
