"""Time to add N random anchor pairs (1280-d image, 768-d text) through Asif.add_vectors, per engine.

    .venv/bin/python benchmarks/bench_add.py --n 40000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from common import IMG_DIM, TXT_DIM, table, write_results

from asif_qdrant import Asif


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=1000, help="pairs per add_vectors call")
    ap.add_argument("--local", action="store_true", help="also time qdrant-client local mode (slow)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    img = rng.standard_normal((args.n, IMG_DIM)).astype(np.float32)
    txt = rng.standard_normal((args.n, TXT_DIM)).astype(np.float32)
    caps = [f"caption {i}" for i in range(args.n)]
    enc = {"image_encoder": f"precomputed:img:{IMG_DIM}", "text_encoder": f"precomputed:txt:{TXT_DIM}"}
    rows = []
    kinds = ["edge"] + (["local"] if args.local else [])
    for kind in kinds:
        tmp = Path(tempfile.mkdtemp())
        a = Asif.open(tmp / "s", **enc) if kind == "edge" else Asif.open(url=":memory:", **enc)
        t = time.perf_counter()
        for s in range(0, args.n, args.batch):
            a.add_vectors(img[s : s + args.batch], txt[s : s + args.batch], captions=caps[s : s + args.batch])
        secs = time.perf_counter() - t
        assert a.count() == args.n
        a.close()
        shutil.rmtree(tmp, ignore_errors=True)
        rows.append({"engine": kind, "pairs": args.n, "seconds": secs, "pairs_per_s": args.n / secs})
    print(table(rows, ["engine", "pairs", "seconds", "pairs_per_s"]))
    print("wrote", write_results("add_vectors", rows, batch=args.batch))


if __name__ == "__main__":
    main()
