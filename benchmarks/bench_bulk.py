"""Bulk classify through Qdrant next to the official-ASIF-equivalent dense computation, in one run.

    .venv/bin/python benchmarks/bench_bulk.py                      # 40k Flickr8k anchors, 2,000 CIFAR-10 images
    .venv/bin/python benchmarks/bench_bulk.py --options exact,int8 --images 512 --repeat 1   # a quick look

Setup (the issue's): the 40,445 Flickr8k anchors of the prebuilt store (tf_efficientnet_lite0 + all-MiniLM-L6-v2),
2,000 CIFAR-10 test images (200 per class, vectors from cifar10_lite0.npz: encoding excluded), the label set
``cifar10`` (10 classes x 8 'photo' templates = 80 prompts), k = 800, p = 8, median of --repeat passes.

Rows:
- ``dense numpy (reference)``: what the official ASIF code computes, written here: per batch X @ A.T (float32
  BLAS), top-k by argpartition, clamp >= 0, ^p, L2-normalise, dense dot with the prompts' relative reps
  (computed once, as a label set is), max over templates. ``dense torch`` is the same with torch.topk, 2 threads.
- ``Asif.classify(vectors=..., batches of 256)`` on the embedded store, per search option: ``exact`` (the
  default) and the quantized options with rescoring (a store per option under --scratch, same anchors and prompt
  vectors, built once and reused).

Columns: ms per image (median of the passes, and the best pass), ratio to the reference (same run; passes
interleaved so that load from other processes hits every row alike), top-1 accuracy, top-1 agreement with exact,
the anchor top-k's overlap with exact's and the share of images whose top-k is exactly exact's (first batch),
and the process's RSS / PSS after the row's first pass (cumulative: one process holds every store it opened).
Results: benchmarks/results/bulk.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE, DATA, cached, find_cached, table, write_results

from asif_qdrant import Asif
from asif_qdrant.evaluation.demo import CIFAR10

ANCHORS_NPZ = CACHE / "flickr_anchors.npz"
OPTIONS = ("exact", "int8", "turbo4", "turbo2")


def memory_mb() -> dict[str, float]:
    """RSS and PSS of this process in MB (Linux /proc; empty elsewhere)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                out[f"{key.lower()}_mb"] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return out


# -- data ----------------------------------------------------------------------------------------------
def flickr_copy(scratch: Path, store: Path) -> Path:
    """A private copy of the prebuilt store (Edge is one process at a time), with the label set ``cifar10``."""
    from bench_quantization import copy_store

    copy = scratch / "flickr-store"
    copy_store(store, copy)
    return copy


def anchors_and_prompts(copy: Path) -> dict[str, np.ndarray]:
    """Anchor ids/vectors and the label set's prompt vectors, read from the store once and cached as an npz."""
    if ANCHORS_NPZ.exists():
        z = np.load(ANCHORS_NPZ)
        if "prompts" in z:
            return {k: z[k] for k in z.files}
    from asif_qdrant.evaluation.sweeps import label_set_prompt_vectors

    with Asif.open(copy) as a:
        if "cifar10" not in {i.name for i in a.list_indexes(kind="labels")}:
            a.define_labels("cifar10", CIFAR10, "photo")  # encodes the 80 prompts once
        info = a.relindexes.require("cifar10", "_shared", "labels")
        ids, img, txt = [], [], []
        for r in a.engine.scroll(a.anchors.collection, with_payload=False, with_vectors=("image", "text")):
            ids.append(r.id)
            img.append(np.asarray(r.vectors["image"], np.float32))
            txt.append(np.asarray(r.vectors["text"], np.float32))
        order = np.argsort(ids)
        data = {"ids": np.asarray(ids, np.int64)[order], "image": np.stack(img)[order], "text": np.stack(txt)[order],
                "prompts": label_set_prompt_vectors(a, info), "classes": np.asarray(info.classes),
                "n_templates": np.asarray(len(info.templates))}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(ANCHORS_NPZ, **data)
    return data


def structured(data: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """n anchors that keep the Flickr8k pair structure (bench_scale_1m.py's set: the real pairs first, then pairs
    interpolated between two real ones on both sides), with the same label set's prompt vectors."""
    from bench_scale_1m import synthetic_chunks

    img = np.empty((n, data["image"].shape[1]), np.float32)
    txt = np.empty((n, data["text"].shape[1]), np.float32)
    for start, i, t in synthetic_chunks(data["image"], data["text"], n):
        img[start : start + len(i)], txt[start : start + len(t)] = i, t
    return {**data, "ids": np.arange(n, dtype=np.int64), "image": img, "text": txt}


def cifar_sample(store: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced sample of n CIFAR-10 test images (vectors, class indices): the precomputed
    cifar10_lite0.npz where a cache/ folder holds one (the first n / 10 images of each class), else n images of
    ../shared/data/cifar10-test encoded once with the store's image encoder (cached under benchmarks/cache/)."""
    npz = find_cached("cifar10_lite0.npz")
    if npz is None:
        from asif_qdrant.evaluation.evaluate import cached_image_vectors, read_folder_per_class

        data = read_folder_per_class(DATA / "cifar10-test", limit=n)
        with Asif.open(store, cache_dir=CACHE / "embeddings") as a:  # kept when the scratch copy is not
            vecs = cached_image_vectors(a, data.paths)
        return vecs.astype(np.float32), np.array([CIFAR10.index(s) for s in data.labels])
    z = np.load(npz, allow_pickle=True)
    vecs, labels = z["vectors"].astype(np.float32), np.asarray(z["labels"])
    names = [str(x) for x in labels] if labels.dtype.kind in "US" else [CIFAR10[int(x)] for x in labels]
    y = np.array([CIFAR10.index(s) for s in names])
    per = n // len(CIFAR10)
    pick = np.concatenate([np.flatnonzero(y == c)[:per] for c in range(len(CIFAR10))])
    return vecs[pick], y[pick]


def option_store(scratch: Path, option: str, data: dict[str, np.ndarray], k: int, p: float,
                 relayout: bool = True, tag: str = "") -> Path:
    """A store of the same anchors created with quantization ``option`` (optimized, with the label set), in
    ``scratch/bulk-{option}{tag}``; reused."""
    n = len(data["ids"])
    path = scratch / f"bulk-{option}{tag}"
    quantization = None if option == "exact" else option
    enc = {"image_encoder": f"precomputed:img:{data['image'].shape[1]}",
           "text_encoder": f"precomputed:txt:{data['text'].shape[1]}"}
    if path.exists():
        with Asif.open(path, quantization=quantization, **enc) as a:
            if a.count() == n and a.list_indexes(kind="labels"):
                if relayout:
                    a.optimize()  # one segment per core, as `asif optimize` leaves a store (nothing when done)
                return path
        shutil.rmtree(path)
    t = time.perf_counter()
    with Asif.open(path, quantization=quantization, **enc) as a:
        for s in range(0, n, 5000):
            sl = slice(s, s + 5000)
            a.add_vectors(data["image"][sl], data["text"][sl], ids=[int(i) for i in data["ids"][sl]])
        a.optimize(relayout=relayout)
        a.define_labels("cifar10", list(data["classes"]), "photo", prompt_vectors=data["prompts"], k=k, p=p)
    print(f"built {path} in {time.perf_counter() - t:.0f} s", flush=True)
    return path


# -- the dense reference ----------------------------------------------------------------------------------
def relative_dense(sims: np.ndarray, k: int, p: float) -> np.ndarray:
    """Official-ASIF relative reps, dense: keep each row's top-k similarities, clamp >= 0, ^p, L2-normalise."""
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    vals = np.maximum(np.take_along_axis(sims, idx, axis=1), 0.0) ** p
    vals /= np.maximum(np.linalg.norm(vals, axis=1, keepdims=True), 1e-30)
    out = np.zeros_like(sims)
    np.put_along_axis(out, idx, vals, axis=1)
    return out


def dense_numpy(x: np.ndarray, anchors: np.ndarray, prompt_reps: np.ndarray, k: int, p: float, n_t: int,
                batch: int) -> np.ndarray:
    """Top-1 class of each row, computed densely (numpy / BLAS)."""
    top = []
    for s in range(0, len(x), batch):
        r = relative_dense(x[s : s + batch] @ anchors.T, k, p)
        scores = r @ prompt_reps.T
        top.append(scores.reshape(len(r), -1, n_t).max(axis=2).argmax(axis=1))
    return np.concatenate(top)


def dense_torch(x: np.ndarray, anchors: np.ndarray, prompt_reps: np.ndarray, k: int, p: float, n_t: int,
                batch: int) -> np.ndarray:
    """The same as the official code does it: torch matmul, torch.topk, 2 threads."""
    import torch

    torch.set_num_threads(2)
    a = torch.from_numpy(anchors)
    pr = torch.from_numpy(prompt_reps.astype(np.float32))
    top = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            sims = torch.from_numpy(x[s : s + batch]) @ a.T
            v, i = torch.topk(sims, k, dim=1)
            v = v.clamp(min=0) ** p
            v = v / v.norm(dim=1, keepdim=True).clamp(min=1e-30)
            r = torch.zeros_like(sims).scatter_(1, i, v)
            scores = r @ pr.T
            top.append(scores.reshape(len(r), -1, n_t).amax(dim=2).argmax(dim=1).numpy())
    return np.concatenate(top)


def best_ms(fn: Callable[[], Any], n: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs of fn, in ms per image (n images)."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000 / n)
    return min(out)


def floor_parts(a: Asif, x: np.ndarray, k: int, p: float) -> dict[str, float]:
    """Where one image's time goes inside Edge's batch query (ms per image, best of 3, queries of 64 as the bulk
    path sends them): the scan alone (limit 10), the scan plus returning k + 8 neighbours (without rescoring, for a
    quantized store), the query as classify sends it, and the sparse stage (80 prompts). The first two plus the
    sparse stage are the least this engine can spend per image on this path, whatever the plugin does around it."""
    from dataclasses import replace

    from asif_qdrant.engines.base import DenseQuery, query_batch_arrays
    from asif_qdrant.relindex import tenant_scope
    from asif_qdrant.topk import QUERY_CHUNK, TIE_MARGIN

    e, coll, scope = a.engine, a.anchors.collection, tenant_scope("_shared")
    as_sent = a.search_config.query_options(k, k + TIE_MARGIN)
    plain = as_sent if as_sent.exact else replace(as_sent, quantization_rescore=False)

    def raw(limit: int, opts: Any) -> None:
        for s in range(0, len(x), QUERY_CHUNK):
            query_batch_arrays(e, coll, [DenseQuery("image", v, limit, scope, options=opts)
                                         for v in x[s : s + QUERY_CHUNK]])

    raw(k + TIE_MARGIN, as_sent)  # warm
    info = a.relindexes.require("cifar10", "_shared", "labels")
    reps = a.relindexes.reps(x, "image", "_shared", k, p)
    parts = {"scan_limit10_ms": best_ms(lambda: raw(10, plain), len(x)),
             "scan_and_results_ms": best_ms(lambda: raw(k + TIE_MARGIN, plain), len(x)),
             "query_as_sent_ms": best_ms(lambda: raw(k + TIE_MARGIN, as_sent), len(x)),
             "sparse_stage_ms": best_ms(lambda: a.relindexes.query(info, reps, info.n_items, with_payload=False),
                                        len(x)),
             "classify_ms": best_ms(lambda: a.classify(vectors=x, labels="cifar10", top=1), len(x))}
    parts["results_ms"] = parts["scan_and_results_ms"] - parts["scan_limit10_ms"]
    parts["floor_ms"] = parts["scan_and_results_ms"] + parts["sparse_stage_ms"]
    return parts


def parse_option(opt: str) -> tuple[str, float | None]:
    """'exact', 'int8', or 'int8:1.5' (quantization with rescoring of 1.5 x the limit)."""
    name, _, ov = opt.partition(":")
    return name, float(ov) if ov else None


def classify_top1(a: Asif, x: np.ndarray, classes: list[str], batch: int) -> np.ndarray:
    out = []
    for s in range(0, len(x), batch):
        for pr in a.classify(vectors=x[s : s + batch], labels="cifar10", top=1):
            out.append(classes.index(pr.label) if pr.label is not None else -1)
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=None, help="the Flickr8k store (default: cache/flickr-store)")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/asif-bulk"))
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--anchors", type=int, default=None,
                    help="the structured set of bench_scale_1m.py with this many anchors (e.g. 1000000; a store per "
                         "option is built once under --scratch) instead of the real Flickr8k anchors")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--options", default=",".join(OPTIONS),
                    help="search options: exact,int8,turbo4,turbo2,binary; NAME:X rescores X times the limit")
    ap.add_argument("--no-relayout", action="store_true",
                    help="keep the stores' segments as a bulk load leaves them (one per 64 MB) instead of one per core")
    ap.add_argument("--floor", action="store_true",
                    help="also split each option's batch time into scan, results and sparse stage (floor table)")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch row")
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--p", type=float, default=8.0)
    ap.add_argument("--single", type=int, default=32, help="images classified one at a time (single-image row)")
    ap.add_argument("--name", default="bulk", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()
    k, p = args.k, args.p
    args.scratch.mkdir(parents=True, exist_ok=True)
    copy = flickr_copy(args.scratch, args.store or cached("flickr-store"))
    if not args.no_relayout:
        with Asif.open(copy) as a:  # the ingested store, as `asif optimize` leaves it: one segment per core
            a.optimize()
    data = anchors_and_prompts(copy)
    big = args.anchors is not None
    if big:
        data = structured(data, args.anchors)
    classes = [str(c) for c in data["classes"]]
    n_t = int(data["n_templates"])
    x, y = cifar_sample(copy, args.images)
    anchors_img, anchors_txt = data["image"], data["text"]
    prompt_reps = relative_dense(data["prompts"] @ anchors_txt.T, k, p)  # the label set, built once
    print(f"{len(anchors_img)} anchors, {len(x)} CIFAR-10 images, {len(data['prompts'])} prompts, k={k} p={p:g}, "
          f"batches of {args.batch}, {os.cpu_count()} CPUs", flush=True)

    runners: dict[str, Callable[[], np.ndarray]] = {
        "dense numpy (reference)": lambda: dense_numpy(x, anchors_img, prompt_reps, k, p, n_t, args.batch)}
    if not args.no_torch and importlib.util.find_spec("torch") is not None:
        runners["dense torch (official code's ops, 2 threads)"] = lambda: dense_torch(
            x, anchors_img, prompt_reps, k, p, n_t, args.batch)
    stores: dict[str, Asif] = {}
    mem: dict[str, dict[str, float]] = {}
    options = args.options.split(",")
    # each store built (or checked) before any is held open
    built = {q: option_store(args.scratch, q, data, k, p, relayout=not args.no_relayout,
                             tag=f"-{args.anchors}" if big else "")
             for q in dict.fromkeys(parse_option(o)[0] for o in options) if q != "exact" or big}
    for opt in options:
        quant, oversampling = parse_option(opt)
        over = {} if oversampling is None else {"oversampling": oversampling}
        if quant == "exact" and not big:
            stores[opt] = Asif.open(copy)
        else:
            path = built[quant]
            if oversampling is not None:  # a store is open in one facade at a time: a copy per oversampling
                variant = path.with_name(f"{path.name}-x{oversampling:g}")
                if not (variant / "collections").exists():
                    shutil.rmtree(variant, ignore_errors=True)
                    shutil.copytree(path, variant)
                path = variant
            stores[opt] = Asif.open(path,
                                    quantization=None if quant == "exact" else quant,
                                    image_encoder=f"precomputed:img:{anchors_img.shape[1]}",
                                    text_encoder=f"precomputed:txt:{anchors_txt.shape[1]}", **over)
        label = f"Asif.classify, {stores[opt].search_config.describe()}"
        runners[label] = lambda a=stores[opt]: classify_top1(a, x, classes, args.batch)
    try:
        times: dict[str, list[float]] = {name: [] for name in runners}
        preds: dict[str, np.ndarray] = {}
        for a in stores.values():  # warm-up on one batch (page cache, shard loads)
            a.classify(vectors=x[: args.batch], labels="cifar10", top=1)
        for _ in range(args.repeat):  # interleaved: every row sees the same load from other processes
            for name, fn in runners.items():
                t = time.perf_counter()
                preds[name] = fn()
                times[name].append((time.perf_counter() - t) * 1000 / len(x))
                mem.setdefault(name, memory_mb())
        ref_name = next(iter(runners))
        ref_ms = float(np.median(times[ref_name]))
        exact_name = next((n for n in runners if n.endswith("exact")), ref_name)
        rows: list[dict[str, Any]] = []
        for name in runners:
            ms = float(np.median(times[name]))
            best = min(times[name])
            rows.append({"path": name, "ms_per_image": ms, "x_reference": ms / ref_ms, "best_ms": best,
                         "x_reference_best": best / min(times[ref_name]),
                         "top1": float((preds[name] == y).mean()),
                         "agree_exact": float((preds[name] == preds[exact_name]).mean()),
                         "runs_ms": [round(t, 3) for t in times[name]], **mem.get(name, {})})
        # the anchor top-k of each option against exact's (256 images): how often it is the exact top-k
        from asif_qdrant.relindex import tenant_scope
        from asif_qdrant.topk import dense_topk, topk_overlap

        sample = x[: args.batch]
        topks = {opt: dense_topk(a.engine, a.anchors.collection, sample, "image", tenant_scope("_shared"), k,
                                 a.search_config.query_options(k)) for opt, a in stores.items()}
        base = topks.get("exact")
        for row, opt in zip(rows[len(rows) - len(stores):], stores, strict=True):
            if base is not None:
                row["topk_overlap"] = topk_overlap(base, topks[opt])
                row["rows_exact_topk"] = float((topks[opt].ids == base.ids).all(axis=1).mean())
        single = []
        for a in stores.values():  # single-image classify: one call per image
            a.classify(vectors=x[:1], labels="cifar10")
            t = time.perf_counter()
            for v in x[: args.single]:
                a.classify(vectors=v[None, :], labels="cifar10", top=1)
            single.append({"path": f"Asif.classify one image, {a.search_config.describe()}",
                           "ms_per_image": (time.perf_counter() - t) * 1000 / args.single})
        floor = []
        if args.floor:
            for a in stores.values():
                parts = floor_parts(a, x[: args.batch], k, p)
                floor.append({"path": a.search_config.describe(), **parts,
                              "floor_x_reference": parts["floor_ms"] / ref_ms})
    finally:
        for a in stores.values():
            a.close()
    cols = ["path", "ms_per_image", "x_reference", "best_ms", "x_reference_best", "top1", "agree_exact",
            "topk_overlap", "rows_exact_topk", "rss_mb", "pss_mb"]
    print(table(rows, cols))
    print(table(single, ["path", "ms_per_image"]))
    if floor:
        print(table(floor, ["path", "scan_limit10_ms", "results_ms", "query_as_sent_ms", "sparse_stage_ms",
                            "floor_ms", "floor_x_reference", "classify_ms"]))
    print("wrote", write_results(args.name, rows, single=single, floor=floor, anchors=len(anchors_img), images=len(x),
                                 prompts=len(data["prompts"]), k=k, p=p, batch=args.batch, repeat=args.repeat,
                                 cpus=os.cpu_count(), loadavg=os.getloadavg()))


if __name__ == "__main__":
    main()
