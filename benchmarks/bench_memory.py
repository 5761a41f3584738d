"""Memory per anchor on Qdrant Edge: process PSS and bytes on disk, exact float32 vs int8-quantized anchors.

    .venv/bin/python benchmarks/bench_memory.py             # N = 100k pairs, 1280-d image + 768-d text
    .venv/bin/python benchmarks/bench_memory.py --n 1000000 --modes int8-norescore,int8    # 1M (~11 GB of disk)

PSS, not RSS: Edge memory-maps its storage, and PSS (from /proc/self/smaps_rollup) counts a mapped file page only
once it is resident and touched by this process (shared pages divided among the processes mapping them). Each
store is built in a child process of its own (the heap a build leaves would hide the cost of opening) and
measured in a fresh one: PSS after the imports, after opening the store, and after 1 / 50 / 200
anchor queries (k = 800, tenant filter; int8 queries rescore 2 x 808 candidates with the original vectors, which
are read from disk). Stores are written 256 points per upsert, as the plugin does. The int8 store keeps its
quantized vectors in RAM and the float32 originals on disk (QuantizationSpec.originals_on_disk), as
SearchConfig(quantization="int8") creates it. The reference is (image dim + text dim) bytes per anchor: one byte
per dimension.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import IMG_DIM, TXT_DIM, table, write_results

K = 800
BATCH = 256  # points per upsert, as the plugin writes them (the write-ahead log replayed on open holds the last few)
MODES = {"exact": {}, "int8": {"quantization": "int8"}, "int8-norescore": {"quantization": "int8"}}


def smaps() -> dict[str, int]:
    """Pss, Pss_Anon, Pss_File and Rss of this process, in bytes."""
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].rstrip(":") in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
            out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def smaps_by_kind() -> dict[str, int]:
    """PSS in bytes per kind of mapping of this process: the store's files by role, anonymous memory, the rest."""
    import re

    out: dict[str, int] = {}
    kind = "other"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split()
            name = parts[5] if len(parts) > 5 else ""
            if not name or name.startswith("[heap]") or name.startswith("[anon"):
                kind = "anon"
            elif "/shard/" not in name:
                kind = "libraries"
            elif "/wal/" in name:
                kind = "wal"
            elif name.rsplit("/", 1)[-1].startswith("quantized"):
                kind = "quantized"
            elif "vector_storage" in name:
                kind = "vectors"
            elif "payload" in name:
                kind = "payload"
            else:
                kind = "index_and_ids"
        elif line.startswith("Pss:"):
            out[kind] = out.get(kind, 0) + int(line.split()[1]) * 1024
    return out


def disk_bytes(path: Path) -> dict[str, int]:
    """Apparent size and allocated blocks of every file under ``path``; the vector files by kind."""
    size = blocks = quant = vec = 0
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            size += st.st_size
            blocks += st.st_blocks * 512
            if p.name.startswith("quantized"):
                quant += st.st_size
            elif "vector_storage" in str(p.parent):
                vec += st.st_size
    return {"apparent": size, "allocated": blocks, "quantized_files": quant, "vector_files": vec}


def child(mode: str, n: int) -> dict[str, Any]:
    """Runs in a fresh process: build the store if needed (then reopen it), open it, query, and read PSS."""
    import gc

    import numpy as np
    from bench_topk import SCOPE, queries, random_collection, store_path

    from asif_qdrant.engines.base import DenseQuery, SearchOptions
    from asif_qdrant.engines.edge import EdgeEngine
    from asif_qdrant.search_options import SearchConfig

    cfg = SearchConfig(**MODES[mode])  # type: ignore[arg-type]
    root = store_path(n, IMG_DIM, cfg, text_dim=TXT_DIM)
    root = root.with_name(f"{root.name}-b{BATCH}")  # random_collection's folder for this batch size
    built_here = not (root / "complete").exists()
    engine, coll, build = random_collection(n, cfg=cfg, text_dim=TXT_DIM, batch=BATCH)
    engine.close()
    if built_here:
        # measure in a fresh process: the heap a build leaves behind would hide what opening the store costs
        return {"built": True}
    del engine
    gc.collect()
    q = queries(200, IMG_DIM)
    base = smaps()
    kinds_base = smaps_by_kind()
    store = EdgeEngine(root)
    store.count(coll)  # loads the shard
    opened = smaps()
    kinds_open = smaps_by_kind()
    opts = cfg.query_options(K) if mode != "int8-norescore" else SearchOptions(exact=False, quantization_rescore=False)
    after: dict[int, dict[str, int]] = {}
    t = time.perf_counter()
    done = 0
    for target in (1, 50, 200):
        for v in q[done:target]:
            store.query_batch(coll, [DenseQuery("image", np.asarray(v), K + 8, SCOPE, options=opts)])
        done = target
        after[target] = smaps()
    ms = (time.perf_counter() - t) * 1000 / done
    kinds_after = smaps_by_kind()
    store.close()
    return {"mode": mode, "base": base, "opened": opened, "after": after, "ms_per_query": ms,
            "disk": disk_bytes(root), "build": build,
            "pss_by_kind_open": {k: v - kinds_base.get(k, 0) for k, v in kinds_open.items()},
            "pss_by_kind_200q": {k: v - kinds_base.get(k, 0) for k, v in kinds_after.items()}}


def run_child(mode: str, n: int) -> dict[str, Any]:
    res = subprocess.run([sys.executable, __file__, "--child", mode, "--n", str(n)], capture_output=True, text=True,
                         cwd=Path(__file__).parent, env={**os.environ})
    if res.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{res.stderr[-3000:]}")
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--modes", default="exact,int8,int8-norescore")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return
    ref = IMG_DIM + TXT_DIM
    rows, raw, kinds = [], [], []
    for mode in args.modes.split(","):
        r = run_child(mode, args.n)
        if r.get("built"):  # the store was built in that child: measure in a fresh one
            r = run_child(mode, args.n)
        raw.append(r)
        n = args.n
        per = {f"pss_after_{m}q": (r["after"][str(m)]["Pss"] - r["base"]["Pss"]) / n for m in (1, 50, 200)}
        rows.append({
            "mode": mode, "anchors": n,
            "pss_open_B": (r["opened"]["Pss"] - r["base"]["Pss"]) / n,
            **{k + "_B": v for k, v in per.items()},
            "anon_200q_B": (r["after"]["200"]["Pss_Anon"] - r["base"]["Pss_Anon"]) / n,
            "file_200q_B": (r["after"]["200"]["Pss_File"] - r["base"]["Pss_File"]) / n,
            "disk_B": r["disk"]["allocated"] / n,
            "ratio_200q": per["pss_after_200q"] / ref,
            "ms_per_query": r["ms_per_query"],
        })
        print(table(rows[-1:], list(rows[-1])), flush=True)
        kinds.append({"mode": mode, **{f"{k}_open_B": v / n for k, v in sorted(r["pss_by_kind_open"].items())
                                       if k != "libraries"},
                      **{f"{k}_200q_B": v / n for k, v in sorted(r["pss_by_kind_200q"].items())
                         if k in ("vectors", "quantized", "anon")}})
    print("\nwhere it goes (PSS bytes per anchor by kind of mapping, over the process before opening the store):")
    print(table(kinds, sorted({c for r in kinds for c in r}, key=lambda c: (c != "mode", c))))
    print(f"\nbytes per anchor (reference: image + text dims = {ref} B; float32 = {4 * ref} B; "
          f"target for int8: <= 1.2 x {ref} = {1.2 * ref:.0f} B plus payload):")
    print(table(rows, list(rows[0])))
    name = "memory_per_anchor" + ("" if args.n == 100_000 else f"_{args.n // 1000}k")
    print("wrote", write_results(name, rows, raw=raw, by_kind=kinds, reference_bytes=ref, k=K))


if __name__ == "__main__":
    main()
