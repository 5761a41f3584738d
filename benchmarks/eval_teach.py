"""Teaching by example on CIFAR-10: zero-shot vs 1/5/10 examples per class added to a tenant as anchor pairs
(image + "a photo of a {class}."), against nearest-neighbour baselines on the same image embeddings, and the
combination the product uses (ASIF score + the taught classes' prototype term, prototypes.py).

    cp -r /work/cache/flickr-store /tmp/teach-store      # only one process may open an Edge store
    .venv/bin/python benchmarks/eval_teach.py --store /tmp/teach-store

Nothing is re-encoded: the CIFAR-10 test images come as precomputed lite0 vectors (--vectors, an .npz with
vectors, labels, paths); only the 10 captions are encoded. Fixed split: each class's images are permuted once
(seed 1234) and cut in halves, ``dev`` (where the prototype mix was chosen) and ``test`` (reported; --part).
Per seed, the examples are drawn from each class of that half and the held-out set (--heldout per class, from the
same half) never contains a taught image. Methods per shot count: "ASIF, taught" (the pairs added without the
``taught_class`` payload, so no prototype), "ASIF + prototypes" (the same pairs as ``asif teach`` stores them:
classify adds the prototype term), nearest class mean and 1-NN on the image embeddings. Writes
results/eval_teach.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import CACHE, DATA, table, write_results

from asif_qdrant import Asif
from asif_qdrant.evaluation.demo import CIFAR10
from asif_qdrant.evaluation.evaluate import cached_image_vectors, read_folder_per_class
from asif_qdrant.teaching import TEACH_TEMPLATE, teach_caption


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def top1(preds: list, truth: np.ndarray) -> float:
    return float(np.mean([p.label == t for p, t in zip(preds, truth, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", type=Path, default=CACHE / "flickr-store", help="the Flickr8k anchors store")
    ap.add_argument("--prefix", default="asif_")
    ap.add_argument("--vectors", type=Path, default=None,
                    help="CIFAR-10 vectors (.npz: vectors, labels); default: the cifar10-test folder, encoded once")
    ap.add_argument("--shots", default="1,5,10")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--heldout", type=int, default=200, help="held-out images per class")
    ap.add_argument("--part", choices=("dev", "test"), default="test", help="which half of the fixed split")
    args = ap.parse_args()
    shots = [int(s) for s in args.shots.split(",")]
    a = Asif.open(args.store, prefix=args.prefix)
    if args.vectors is not None:
        d = np.load(args.vectors)
        vecs, labels = d["vectors"].astype(np.float32), np.asarray(d["labels"]).astype(str)
    else:
        data = read_folder_per_class(DATA / "cifar10-test")
        vecs, labels = cached_image_vectors(a, data.paths), np.asarray(data.labels).astype(str)
    print(f"store {a.engine.description}: {a.count()} shared anchors; {len(vecs)} CIFAR-10 vectors")
    if "cifar10" not in {i.name for i in a.list_indexes(kind="labels")}:
        a.define_labels("cifar10", CIFAR10, "photo")
    caption = {c: teach_caption(TEACH_TEMPLATE, c) for c in CIFAR10}
    cap_vecs = dict(zip(CIFAR10, a.encode_texts([caption[c] for c in CIFAR10]), strict=True))
    rows: list[dict] = []
    one_class: list[dict] = []
    split = np.random.default_rng(1234)
    half = {}
    for c in CIFAR10:
        idx = split.permutation(np.flatnonzero(labels == c))
        half[c] = idx[: len(idx) // 2] if args.part == "dev" else idx[len(idx) // 2 :]
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        pool, held = {}, []
        for c in CIFAR10:
            idx = rng.permutation(half[c])
            pool[c] = idx[: max(shots)]
            held.extend(idx[max(shots) : max(shots) + args.heldout].tolist())
        held_idx = np.array(sorted(held))
        hv, ht = vecs[held_idx], labels[held_idx]
        t = time.perf_counter()
        zs = top1(a.classify(vectors=hv, labels="cifar10", top=1), ht)
        rows.append({"seed": seed, "shots": 0, "method": "zero-shot (Flickr8k anchors)", "top1": zs,
                     "classify_s": time.perf_counter() - t})
        for n in shots:
            taught = np.concatenate([pool[c][:n] for c in CIFAR10])
            tl = labels[taught]
            for method, field in (("ASIF, taught", "example_class"), ("ASIF + prototypes", "taught_class")):
                tenant = f"teach{n}-s{seed}-{field}"
                t = time.perf_counter()
                a.add_vectors(vecs[taught], np.stack([cap_vecs[c] for c in tl]), captions=[caption[c] for c in tl],
                              tenant=tenant, payloads=[{field: c} for c in tl])
                add_s = time.perf_counter() - t
                t = time.perf_counter()
                acc = top1(a.classify(vectors=hv, labels="cifar10", top=1, tenant=tenant), ht)
                rows.append({"seed": seed, "shots": n, "method": method, "top1": acc, "teach_s": add_s,
                             "classify_s": time.perf_counter() - t})
                a.delete_tenant(tenant)
            sims = unit(hv) @ unit(vecs[taught]).T  # cosine 1-NN
            rows.append({"seed": seed, "shots": n, "method": "1-NN on image embeddings",
                         "top1": float(np.mean(tl[sims.argmax(1)] == ht))})
            protos = unit(np.stack([unit(vecs[pool[c][:n]]).mean(0) for c in CIFAR10]))  # cosine NCM
            rows.append({"seed": seed, "shots": n, "method": "nearest class mean",
                         "top1": float(np.mean(np.array(CIFAR10)[(hv @ protos.T).argmax(1)] == ht))})
        # one class taught: one close pair dominates every prompt
        tenant = f"teachcat-s{seed}"
        cat = pool["cat"][:1]
        a.add_vectors(vecs[cat], cap_vecs["cat"][None], captions=[caption["cat"]], tenant=tenant)
        preds = a.classify(vectors=hv, labels="cifar10", top=10, tenant=tenant)
        sample = rng.choice(len(hv), 30, replace=False)
        dom = [a.explain(vector=hv[i], labels="cifar10", tenant=tenant).dominant for i in sample]
        one_class.append({
            "seed": seed, "predicted_cat": float(np.mean([p.label == "cat" for p in preds])),
            "top1": top1(preds, ht),
            "median_top_score": float(np.median([p.top[0].score for p in preds])),
            "median_10th_score": float(np.median([p.top[-1].score for p in preds])),
            "explain_warns": float(np.mean([x is not None for x in dom])),
            "median_share_of_the_pair": float(np.median([x.min_share for x in dom if x is not None] or [0.0])),
        })
        a.delete_tenant(tenant)
    summary = []
    for n in [0, *shots]:
        for m in dict.fromkeys(r["method"] for r in rows if r["shots"] == n):
            accs = [r["top1"] for r in rows if r["shots"] == n and r["method"] == m]
            summary.append({"examples_per_class": n, "method": m, "top1_mean": float(np.mean(accs)),
                            "top1_min": float(np.min(accs)), "top1_max": float(np.max(accs)), "seeds": len(accs)})
    print(table(summary, ["examples_per_class", "method", "top1_mean", "top1_min", "top1_max", "seeds"]))
    target = []
    for n in shots:
        mean = {r["method"]: r["top1_mean"] for r in summary if r["examples_per_class"] == n}
        best = max(mean["ASIF, taught"], mean["nearest class mean"])
        wins = [sum(r["top1"] >= max(o["top1"] for o in rows if o["seed"] == r["seed"] and o["shots"] == n
                                     and o["method"] in ("ASIF, taught", "nearest class mean"))
                    for r in rows if r["shots"] == n and r["method"] == "ASIF + prototypes")]
        target.append({"examples_per_class": n, "combination": mean["ASIF + prototypes"], "max(ASIF, NCM)": best,
                       "margin": mean["ASIF + prototypes"] - best, "seeds_won": f"{wins[0]}/{args.seeds}"})
    print("\ntarget: combination >= max(ASIF taught, NCM)")
    print(table(target, list(target[0])))
    print("\none class taught (1 cat example):")
    print(table(one_class, list(one_class[0])))
    print("wrote", write_results("eval_teach", summary, runs=rows, one_class=one_class, target=target, part=args.part,
                                 heldout_per_class=args.heldout, template=TEACH_TEMPLATE,
                                 shared_anchors=a.count(), fingerprint=a.fingerprint.as_dict()))
    a.close()


if __name__ == "__main__":
    main()
