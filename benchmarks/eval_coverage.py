"""Does label coverage predict accuracy? Spearman rank correlation between each class's support (asif labels check)
and its top-1 accuracy, on CIFAR-10 and on label sets built from Flickr8k caption words.

    cp -r benchmarks/cache/flickr-store /tmp/cov-store     # only one process may open an Edge store
    .venv/bin/python benchmarks/eval_coverage.py --store /tmp/cov-store --vectors CIFAR.npz --pairs PAIRS.npz

CIFAR-10: the label set ``cifar10`` (8 photo templates) on the store's anchors; accuracy per class on the images of
--vectors (an .npz with vectors, labels), or on the cifar10-test folder encoded through the evaluation cache.

Flickr8k (--pairs: an .npz of the anchor pairs with ids, image, text, captions and optionally refs, the image file
of each pair): 100 object names that captions mention (OBJECTS). Per seed, half of them are *removed*: every pair
whose caption mentions one of them (the word or its plural) leaves the anchors, so those classes stand for what no
caption talks about. 30 % of the images that mention exactly one of the 100 names are held out with all their pairs
and are the test images (labelled by the name). A scratch store gets the remaining pairs, the label set of the 100
names, and answers classify for the held-out images. Reported: Spearman over the classes with at least 5 test images
(all, and among the kept ones only), mean accuracy per verdict. Writes results/eval_coverage.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from common import CACHE, DATA, table, write_results

from asif_qdrant import Asif
from asif_qdrant.coverage import VERDICTS
from asif_qdrant.evaluation.demo import CIFAR10

OBJECTS = """
ball snow beach bike hat building wall mountain ocean rock hill toy road sand sidewalk bicycle lake pool
tree helmet skateboard fence stick baby car river ramp bench boat table sign house motorcycle frisbee
swing playground flowers pond surfboard bird chair window fountain bag horse leash bridge stairs bed
train guitar puppy truck canoe couch sled kayak tent flag bus book umbrella microphone statue bottle
cigarette beer waterfall bucket bull painting cow sheep kite bowl computer phone sunglasses backpack
basket balloon bubbles hose sprinkler ladder wheelchair stroller scooter skis snowboard net goal hoop
racket bat cat duck fish airplane mirror
""".split()  # 100 object names that Flickr8k captions mention


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        m = x == v
        ranks[m] = ranks[m].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def per_class_accuracy(a: Asif, labels: str, vecs: np.ndarray, truth: np.ndarray, classes: list[str],
                       tenant: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    preds = [p.label for p in a.classify(vectors=vecs, labels=labels, top=1, tenant=tenant)]
    pred = np.array([str(p) for p in preds])
    acc = np.array([np.mean(pred[truth == c] == c) if (truth == c).any() else np.nan for c in classes])
    return acc, np.array([(truth == c).sum() for c in classes])


def verdict_rows(source: str, cov: list, acc: np.ndarray, ok: np.ndarray) -> list[dict]:
    out = []
    for v in VERDICTS:
        m = ok & np.array([c.verdict == v for c in cov])
        out.append({"set": source, "verdict": v, "classes": int(m.sum()),
                    "mean_top1": float(np.nanmean(acc[m])) if m.any() else float("nan")})
    return out


def cifar(a: Asif, vectors: Path | None) -> tuple[dict, list[dict]]:
    if "cifar10" not in {i.name for i in a.list_indexes(kind="labels")}:
        a.define_labels("cifar10", CIFAR10, "photo")
    if vectors is not None:
        d = np.load(vectors)
        vecs, truth = d["vectors"].astype(np.float32), np.asarray(d["labels"]).astype(str)
    else:
        from asif_qdrant.evaluation.evaluate import cached_image_vectors, read_folder_per_class

        data = read_folder_per_class(DATA / "cifar10-test")
        vecs, truth = cached_image_vectors(a, data.paths), np.asarray(data.labels).astype(str)
    cov = a.coverage("cifar10").classes
    acc, n = per_class_accuracy(a, "cifar10", vecs, truth, CIFAR10)
    support = np.array([c.support for c in cov], float)
    row = {"set": "CIFAR-10", "seed": "-", "classes": len(CIFAR10), "images": int(n.sum()),
           "spearman_all": spearman(support, acc), "spearman_kept": float("nan"), "top1": float(np.mean(
               [acc[i] for i in range(len(CIFAR10))]))}
    per_class = [{"class": c.label, "support": c.support, "verdict": c.verdict, "top1": float(x)}
                 for c, x in zip(cov, acc, strict=True)]
    return row, [*per_class, *verdict_rows("CIFAR-10", cov, acc, np.ones(len(cov), bool))]


def _mentions(words: set[str], c: str) -> bool:
    return c in words or c + "s" in words or c + "es" in words


def flickr_seed(pairs: dict, seed: int, scratch: Path, fp: dict) -> tuple[dict, list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    words, img_of = pairs["words"], pairs["img_of"]
    n_img = int(img_of.max()) + 1
    img_words: list[set[str]] = [set() for _ in range(n_img)]
    for i, w in enumerate(words):
        img_words[img_of[i]] |= w
    removed = set(rng.choice(OBJECTS, len(OBJECTS) // 2, replace=False).tolist())
    single = [g for g in range(n_img) if sum(_mentions(img_words[g], c) for c in OBJECTS) == 1]
    held = np.zeros(n_img, bool)
    held[rng.choice(single, int(0.3 * len(single)), replace=False)] = True
    drop = np.array([any(_mentions(w, c) for c in removed) for w in words])
    keep = ~held[img_of] & ~drop
    first: dict[int, int] = {}
    for i in range(len(img_of)):
        first.setdefault(int(img_of[i]), i)
    ev = np.array([first[g] for g in np.flatnonzero(held)])
    truth = np.array([next(c for c in OBJECTS if _mentions(img_words[g], c)) for g in np.flatnonzero(held)])
    path = scratch / f"flickr-cov-{seed}"
    shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    with Asif.open(path, image_encoder=fp["image_encoder"], text_encoder=fp["text_encoder"]) as a:
        kept = np.flatnonzero(keep)
        for s in range(0, len(kept), 5000):
            rows = kept[s : s + 5000]
            a.add_vectors(pairs["image"][rows], pairs["text"][rows], captions=[pairs["captions"][i] for i in rows],
                          ids=[int(pairs["ids"][i]) for i in rows])
        a.define_labels("objects", OBJECTS, "photo")
        cov = a.coverage("objects").classes
        acc, n = per_class_accuracy(a, "objects", pairs["image"][ev], truth, OBJECTS)
    shutil.rmtree(path, ignore_errors=True)
    rem = np.array([c in removed for c in OBJECTS])
    ok = ~np.isnan(acc) & (n >= 5)
    support = np.array([c.support for c in cov], float)
    row = {"set": "Flickr8k objects", "seed": seed, "classes": int(ok.sum()), "images": int(n[ok].sum()),
           "anchors": int(keep.sum()), "spearman_all": spearman(support[ok], acc[ok]),
           "spearman_kept": spearman(support[ok & ~rem], acc[ok & ~rem]), "top1": float(np.nanmean(acc[ok])),
           "removed_unsupported": float(np.mean([c.verdict == "unsupported" for c, r in zip(cov, rem, strict=True)
                                                 if r])),
           "kept_supported": float(np.mean([c.verdict == "supported" for c, r in zip(cov, rem, strict=True)
                                            if not r])),
           "seconds": time.perf_counter() - t}
    per_class = [{"seed": seed, "class": c.label, "removed": bool(r), "support": c.support, "verdict": c.verdict,
                  "top1": float(x), "test_images": int(m)} for c, r, x, m in zip(cov, rem, acc, n, strict=True)]
    return row, per_class, verdict_rows(f"Flickr8k seed {seed}", cov, acc, ok)


def load_pairs(path: Path) -> dict:
    d = np.load(path)
    caps = [str(c) for c in d["captions"]]
    if "refs" in d.files:
        _, img_of = np.unique(d["refs"], return_inverse=True)
    else:  # the pairs of one image share its vector exactly
        _, img_of = np.unique(d["image"], axis=0, return_inverse=True)
    return {"ids": d["ids"], "image": d["image"].astype(np.float32), "text": d["text"].astype(np.float32),
            "captions": caps, "img_of": np.asarray(img_of).ravel(),
            "words": [set(re.findall(r"[a-z]+", c.lower())) for c in caps]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", type=Path, default=CACHE / "flickr-store", help="the Flickr8k anchors store")
    ap.add_argument("--prefix", default="asif_")
    ap.add_argument("--vectors", type=Path, default=None, help="CIFAR-10 image vectors (.npz: vectors, labels)")
    ap.add_argument("--pairs", type=Path, default=None, help="the anchor pairs (.npz); default: read the store")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--no-cifar", action="store_true", help="only the Flickr8k label sets")
    args = ap.parse_args()
    with Asif.open(args.store, prefix=args.prefix) as a:
        fp = a.fingerprint.as_dict()
        row, cifar_rows = ({}, []) if args.no_cifar else cifar(a, args.vectors)
        if args.pairs is None:
            args.pairs = args.scratch / "eval_coverage_pairs.npz"
            recs = sorted(a.engine.scroll(a.anchors.collection, with_payload=True, with_vectors=("image", "text")),
                          key=lambda r: r.id)
            np.savez(args.pairs, ids=np.array([r.id for r in recs]), captions=[r.payload.get("caption") or ""
                                                                               for r in recs],
                     refs=[r.payload.get("image_ref") or "" for r in recs],
                     image=np.stack([r.vectors["image"] for r in recs]),
                     text=np.stack([r.vectors["text"] for r in recs]))
    pairs = load_pairs(args.pairs)
    rows, per_class, verdicts = [row] if row else [], [], [r for r in cifar_rows if "verdict" in r and "set" in r]
    for seed in range(args.seeds):
        r, pc, vr = flickr_seed(pairs, seed, args.scratch, fp)
        print(table([r], list(r)), flush=True)
        rows.append(r)
        per_class += pc
        verdicts += vr
    fl = [r for r in rows if r["set"] != "CIFAR-10"]
    rows.append({"set": "Flickr8k objects", "seed": "mean", "classes": float(np.mean([r["classes"] for r in fl])),
                 "spearman_all": float(np.mean([r["spearman_all"] for r in fl])),
                 "spearman_kept": float(np.mean([r["spearman_kept"] for r in fl])),
                 "top1": float(np.mean([r["top1"] for r in fl])),
                 "removed_unsupported": float(np.mean([r["removed_unsupported"] for r in fl])),
                 "kept_supported": float(np.mean([r["kept_supported"] for r in fl]))})
    print("\nSpearman(support, per-class top-1):")
    print(table(rows, ["set", "seed", "classes", "spearman_all", "spearman_kept", "top1", "removed_unsupported",
                       "kept_supported"]))
    print("\nCIFAR-10 per class:")
    cifar_pc = [r for r in cifar_rows if "class" in r]
    print(table(cifar_pc, ["class", "support", "verdict", "top1"]))
    print("\nmean top-1 per verdict:")
    print(table(verdicts, ["set", "verdict", "classes", "mean_top1"]))
    print("wrote", write_results("eval_coverage", rows, cifar_per_class=cifar_pc, flickr_per_class=per_class,
                                 per_verdict=verdicts, objects=OBJECTS, fingerprint=fp))


if __name__ == "__main__":
    main()
