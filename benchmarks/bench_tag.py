"""Tag a stored collection, then keep its tags fresh after edits (issue 23), in one run.

    .venv/bin/python benchmarks/bench_tag.py                    # 100,000 points, 40k Flickr8k anchors, 80 prompts
    .venv/bin/python benchmarks/bench_tag.py --points 10000     # a quicker look

Setup: the 40,445 Flickr8k anchor pairs (tf_efficientnet_lite0 + all-MiniLM-L6-v2 vectors, from flickr_pairs.npz in a
cache/ folder, else read from a copy of the prebuilt store), the label set ``cifar10`` (10 classes x 8 'photo'
templates = 80 prompts), k = 800, p = 8, exact search, on the embedded store. The user's collection ``photos``
(in the same store) holds --points image vectors: the 10,000 CIFAR-10 test images' real vectors (cifar10_lite0.npz)
and structured synthetic ones (each between two real ones, a in [0.5, 1], plus a little noise, normalised: the
structure of bench_scale_1m.py's set, on the image side).

Rows:
- ``dense numpy (reference)``, ``Asif.classify (bulk)``, ``Asif.tag (all points)``: ms per point, each over every
  point, in one run; ``ratio`` is to the plugin's bulk classify.
- ``floor: one exact scan of the points``: one dense query of an anchor's vector against every point (limit: all,
  score_threshold: the items' lowest threshold), the scan every anchor edit makes over the tagging's items to find
  the ones the anchor enters or leaves.
- one anchor added, one deleted, 5 examples taught (5 CIFAR images of 5 classes, each with "a photo of a
  {class}."'s text vector, one edit), the label set redefined (4 of its 8 templates): the time of the edit call
  (tags are fresh when it returns), the points whose tag was rewritten, the ratio of re-tagging everything to it,
  and the share of points whose tag equals classify's answer for its vector after the edit (the from-scratch
  answer; must be 100 %).
Results: benchmarks/results/tag.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_bulk import dense_numpy, find_cached, relative_dense
from common import RESULTS, table, write_results

from asif_qdrant import Asif
from asif_qdrant.engines.base import CollectionSpec, DenseQuery, PointBatch, SearchOptions, query_batch_arrays
from asif_qdrant.evaluation.demo import CIFAR10
from asif_qdrant.relindex import SCORE_SLACK, decode_topk, touched_key
from asif_qdrant.zeroshot import resolve_templates

TEMPLATES = resolve_templates("photo")


def load_anchors(scratch: Path, synthetic: int = 0) -> dict[str, np.ndarray]:
    if synthetic:  # clustered random pairs (common.py): a look at the costs without the Flickr8k caches
        from common import clustered_pairs

        img, txt = clustered_pairs(np.random.default_rng(0), synthetic)
        return {"ids": np.arange(synthetic, dtype=np.int64), "image": img, "text": txt}
    npz = find_cached("flickr_pairs.npz")
    if npz is not None:
        z = np.load(npz, allow_pickle=True)
        return {"ids": z["ids"].astype(np.int64), "image": z["image"].astype(np.float32),
                "text": z["text"].astype(np.float32)}
    from bench_bulk import anchors_and_prompts, cached, flickr_copy

    data = anchors_and_prompts(flickr_copy(scratch, cached("flickr-store")))
    return {k: data[k] for k in ("ids", "image", "text")}


def prompt_vectors(templates: list[str], dim: int) -> np.ndarray:
    if dim != 384:  # synthetic anchors: random prompts of their text dimension
        return np.random.default_rng(2).standard_normal((len(CIFAR10) * len(templates), dim)).astype(np.float32)
    from asif_qdrant.encoders import create_encoder

    enc = create_encoder("st:all-MiniLM-L6-v2")
    return np.asarray(enc.encode([t.format(c) for c in CIFAR10 for t in templates]), np.float32)


def points(n: int, anchors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, str]:
    """n image vectors (real CIFAR-10 first, then structured synthetic ones), their classes (-1: synthetic)."""
    npz = find_cached("cifar10_lite0.npz")
    if npz is not None:
        z = np.load(npz, allow_pickle=True)
        real = z["vectors"].astype(np.float32)
        labels = [str(x) for x in z["labels"]]
        y = np.array([CIFAR10.index(s) if s in CIFAR10 else -1 for s in labels])
        source = "cifar10_lite0.npz + structured synthetic"
    else:  # no CIFAR vectors cached: anchors' images stand in for the real ones
        real, y = anchors["image"][:10_000], np.full(10_000, -1)
        source = "anchor images + structured synthetic (no cifar10_lite0.npz found)"
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    out = np.empty((n, real.shape[1]), np.float32)
    m = min(n, len(real))
    out[:m] = real[:m]
    rng = np.random.default_rng(0)
    for s in range(m, n, 10_000):
        c = min(10_000, n - s)
        u, v = rng.integers(0, len(real), c), rng.integers(0, len(real), c)
        a = rng.uniform(0.5, 1.0, c).astype(np.float32)[:, None]
        x = a * real[u] + (1 - a) * real[v]
        x += rng.standard_normal(x.shape).astype(np.float32) * (0.02 / np.sqrt(x.shape[1]))
        out[s : s + c] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out, np.concatenate([y[:m], np.full(n - m, -1)]), source


def open_store(path: Path, anchors: dict[str, np.ndarray], prompts: np.ndarray, k: int, p: float) -> Asif:
    enc = {"image_encoder": f"precomputed:img:{anchors['image'].shape[1]}",
           "text_encoder": f"precomputed:txt:{anchors['text'].shape[1]}"}
    n = len(anchors["ids"])
    if path.exists():
        a = Asif.open(path, **enc)
        if a.count() == n and a.list_labels():
            return a
        a.close()
        shutil.rmtree(path)
    a = Asif.open(path, **enc)
    for s in range(0, n, 5000):
        a.add_vectors(anchors["image"][s : s + 5000], anchors["text"][s : s + 5000],
                      ids=[int(i) for i in anchors["ids"][s : s + 5000]])
    a.optimize()
    a.define_labels("cifar10", CIFAR10, TEMPLATES, prompt_vectors=prompts, k=k, p=p)
    return a


def load_photos(a: Asif, x: np.ndarray) -> None:
    if a.engine.collection_exists("photos"):
        a.engine.delete_collection("photos")
    a.engine.create_collection("photos", CollectionSpec(dense={"img": x.shape[1]}))
    for s in range(0, len(x), 1000):
        a.engine.upsert("photos", PointBatch(list(range(s, s + len(x[s : s + 1000]))), {"img": x[s : s + 1000]},
                                             payloads=[{"n": i} for i in range(s, s + len(x[s : s + 1000]))]))


def classify_all(a: Asif, x: np.ndarray, top: int, batch: int) -> list[Any]:
    out: list[Any] = []
    for s in range(0, len(x), batch):
        out += a.classify(vectors=x[s : s + batch], labels="cifar10", top=top)
    return out


def tags_now(a: Asif) -> dict[int, dict[str, Any]]:
    return {int(r.id): r.payload.get("category") for r in a.engine.scroll("photos")}


def equal_share(a: Asif, x: np.ndarray, tags: dict[int, dict[str, Any]], top: int, batch: int) -> float:
    """Share of points whose tag is classify's answer for its vector (label, ranked labels, scores within 1e-6)."""
    preds = classify_all(a, x, top, batch)
    same = 0
    for i, pred in enumerate(preds):
        t = tags.get(i) or {}
        same += int(t.get("label") == pred.label and [s[0] for s in t.get("top", [])] == [s.label for s in pred.top]
                    and np.allclose([s[1] for s in t.get("top", [])], [s.score for s in pred.top], atol=1e-6))
    return same / len(preds)


def scan_floor(a: Asif, vector: np.ndarray, n: int) -> dict[str, Any]:
    """The floor under an anchor edit's time: finding the items a new anchor may enter takes one exact scan of every
    item's vector (one dense query, limit n, returning only the items at or above the lowest threshold, as the edit
    does), as long as the same scan of the user's own collection (median of 5)."""
    info = next(i for i in a.relindexes.infos() if i.kind == "tagging")
    thr = [r.payload["thr"] for r in a.relindexes.items(info, with_payload=["thr"]) if r.payload.get("thr") is not None]
    floor = min(thr) - 2 * SCORE_SLACK if thr else None  # the edit's own rule (Freshness._candidates)
    q = [DenseQuery("img", np.asarray(vector, np.float32), n, options=SearchOptions(exact=True),
                    score_threshold=floor)]
    times = []
    for _ in range(5):
        t = time.perf_counter()
        query_batch_arrays(a.engine, "photos", q)
        times.append(time.perf_counter() - t)
    return {"what": "floor: one exact scan of the points", "ms": 1000 * float(np.median(times)),
            "points_rewritten": 0}


def edit_rows(a: Asif, x: np.ndarray, y: np.ndarray, anchors: dict[str, np.ndarray], prompts: np.ndarray,
              tag_s: float, args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    j = int(rng.integers(0, len(anchors["ids"])))
    noise = rng.standard_normal((2, anchors["image"].shape[1])).astype(np.float32) * 0.01
    new_img = anchors["image"][j : j + 1] + noise[:1]
    new_txt = anchors["text"][j : j + 1] + rng.standard_normal((1, anchors["text"].shape[1])).astype(np.float32) * 0.01
    gone = int(anchors["ids"][int(rng.integers(0, len(anchors["ids"])))])
    # one real image of each of 5 classes (a few examples of one class captioned with its prompt would make it
    # every point's answer: the 1-NN effect of docs/coverage-and-teaching.md)
    firsts = [np.flatnonzero(y == c)[:1] for c in range(5)]
    known = np.concatenate(firsts) if all(f.size for f in firsts) else np.arange(5)
    cls = [int(y[i]) if y[i] >= 0 else i % 10 for i in known]
    teach_txt = prompts[[c * len(TEMPLATES) for c in cls]]  # "a photo of a {class}." (template 0)
    edits = [
        ("one anchor added", lambda: a.add_vectors(new_img, new_txt)),
        ("one anchor deleted", lambda: a.delete([gone])),
        ("5 examples taught", lambda: a.add_vectors(x[known], teach_txt)),
        ("label set redefined", lambda: a.define_labels(
            "cifar10", CIFAR10, TEMPLATES[:4], replace=True, k=args.k, p=args.p,
            prompt_vectors=prompts.reshape(10, len(TEMPLATES), -1)[:, :4].reshape(40, -1))),
    ]
    rows = [scan_floor(a, new_img[0], len(x))]
    print(table(rows, list(rows[0])), flush=True)
    for name, fn in edits:
        rev0 = a.list_tags()[0].rev
        t = time.perf_counter()
        fn()
        s = time.perf_counter() - t
        info = a.list_tags()[0]
        tags = tags_now(a)
        rewritten = sum(1 for v in tags.values() if v and v["rev"] == info.rev) if info.rev != rev0 else 0
        row = {"what": name, "ms": 1000 * s, "points_rewritten": rewritten, "retag_ratio": tag_s / s}
        if args.check:
            row["equal_%"] = 100 * equal_share(a, x, tags, args.top, args.batch)
        rows.append(row)
        print(table([row], list(row)), flush=True)
    return rows


def first_edit(path: Path, anchors: dict[str, np.ndarray], args: argparse.Namespace) -> None:
    """The first edit of a new process on the store a full run left (its tagging of --points points): the edit
    sample's typical anchor (--edit-sample, run first) deleted just after opening, with the thresholds the last
    process saved at close, then (after it is added back, in a new process) deleted again with that saved copy
    removed (what every new process paid before: each item's payload read to learn its threshold)."""
    from asif_qdrant.relindex.records import saved_key

    enc = {"image_encoder": f"precomputed:img:{anchors['image'].shape[1]}",
           "text_encoder": f"precomputed:txt:{anchors['text'].shape[1]}"}
    pos = {int(i): n for n, i in enumerate(anchors["ids"])}
    sample = RESULTS / f"tag_edit_sample_{args.points}.json"
    if not sample.exists():
        raise SystemExit(f"{sample} not found: run --edit-sample first")
    # the anchor of the edit sample whose deletion touched the median number of items among those in no prompt's
    # top-k (a typical one-anchor edit)
    typical = sorted((r["items_touched"], r["anchor"]) for r in json.loads(sample.read_text())["rows"]
                     if r["edit"] == "deleted" and r["prompt_reps"] == 0)
    g_sample = int(typical[len(typical) // 2][1])
    rows = []
    for saved in (True, False):
        a = Asif.open(path, **enc)
        try:
            info = a.taggings.find("category", "_shared")
            if info.n_items != args.points:
                raise SystemExit(f"the store at {path} holds a tagging of {info.n_items} points, not {args.points}: "
                                 "run the full benchmark first")
            if not saved:
                a.meta.delete(saved_key(info.key))
            g = g_sample  # the same anchor both times
            t = time.perf_counter()
            res = a.delete([g])
            rows.append({"what": "first edit of a new process (one anchor deleted), "
                         + ("thresholds saved at close" if saved else "no saved thresholds (as before)"),
                         "ms": 1000 * (time.perf_counter() - t),
                         "items_touched": res.items_touched.get(touched_key(info), 0)})
            print(table(rows[-1:], list(rows[-1])), flush=True)
            j = pos[g]
            a.add_vectors(anchors["image"][j : j + 1], anchors["text"][j : j + 1], ids=[g])
        finally:
            a.close()
    out = write_results(f"tag_first_edit_{args.points}", rows, points=args.points, anchors=len(anchors["ids"]))
    print(f"wrote {out}")


def prompt_heads(a: Asif, k: int) -> dict[int, bytes]:
    """Per prompt of the label set: the first k of its list (ids and similarities), what its rep is made of."""
    info = a.relindexes.require("cifar10", "_shared", "labels")
    out = {}
    for r in a.relindexes.items(info, with_payload=["topk"]):
        ids, sims = decode_topk(r.payload)
        out[int(r.id)] = ids[:k].tobytes() + sims[:k].tobytes()
    return out


def edit_sample(path: Path, anchors: dict[str, np.ndarray], prompts: np.ndarray, args: argparse.Namespace) -> None:
    """One-anchor edits drawn at random, on the store a full run left (its tagging of --points points, the label set
    defined again with all 8 templates first): each of --edit-sample anchors is deleted, then added back with the
    same id and vectors, both timed, so the store ends as it began. An edit whose anchor is in (or enters) the first
    k of a prompt's list changes that prompt's rep (``prompt_reps``) and the scores of nearly every point (every item
    is scored again); any other (``prompt_lists``: prompts whose list, buffer included, it rewrote) touches only the
    items whose top-k it changes. The single "one anchor added/deleted" rows of the full run are one draw each."""
    enc = {"image_encoder": f"precomputed:img:{anchors['image'].shape[1]}",
           "text_encoder": f"precomputed:txt:{anchors['text'].shape[1]}"}
    full = json.loads((RESULTS / "tag.json").read_text()) if (RESULTS / "tag.json").exists() else None
    rng = np.random.default_rng(4)
    rows: list[dict[str, Any]] = []
    with Asif.open(path, **enc) as a:
        info = a.taggings.find("category", "_shared")
        if info.n_items != args.points or full is None or full["points"] != args.points:
            raise SystemExit(f"the store at {path} (a tagging of {info.n_items} points) and results/tag.json must "
                             f"come from a full run at --points {args.points}: run it first")
        tag_ms = next(r["ms_per_point"] for r in full["rows"] if r["what"] == "Asif.tag (all points)") * args.points
        a.define_labels("cifar10", CIFAR10, TEMPLATES, prompt_vectors=prompts, k=args.k, p=args.p, replace=True)
        label_key = touched_key(a.relindexes.require("cifar10", "_shared", "labels"))
        stored = set(int(r.id) for r in a.engine.scroll(a.anchors.collection, with_payload=False))
        pos = {int(i): n for n, i in enumerate(anchors["ids"])}
        pool = [i for i in anchors["ids"].tolist() if int(i) in stored]
        for g in rng.choice(pool, size=args.edit_sample, replace=False).tolist():
            j = pos[int(g)]
            for what, fn in (("deleted", lambda: a.delete([g])),
                             ("added", lambda: a.add_vectors(anchors["image"][j : j + 1], anchors["text"][j : j + 1],
                                                             ids=[g]))):
                rev0, heads0 = a.list_tags()[0].rev, prompt_heads(a, args.k)
                t = time.perf_counter()
                res = fn()
                ms = 1000 * (time.perf_counter() - t)
                rev, heads = a.list_tags()[0].rev, prompt_heads(a, args.k)
                rewritten = (sum(1 for v in tags_now(a).values() if v and v["rev"] == rev) if rev != rev0 else 0)
                rows.append({"anchor": int(g), "edit": what, "ms": ms, "points_rewritten": rewritten,
                             "items_touched": res.items_touched.get(touched_key(info), 0),
                             "prompt_lists": res.items_touched.get(label_key, 0),
                             "prompt_reps": sum(heads[i] != heads0.get(i) for i in heads),
                             "retag_ratio": tag_ms / ms})
                print(table(rows[-1:], list(rows[-1])), flush=True)
    out = write_results(f"tag_edit_sample_{args.points}", rows, points=args.points, anchors=len(anchors["ids"]),
                        prompts=prompts.shape[0], tag_all_ms=tag_ms)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--p", type=float, default=8.0)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/asif-bench-tag"))
    ap.add_argument("--synthetic-anchors", type=int, default=0, help="N clustered random anchor pairs instead of "
                    "Flickr8k's (a look at the costs without the caches)")
    ap.add_argument("--no-check", dest="check", action="store_false", help="skip the equality checks (one bulk "
                    "classify of every point after each edit)")
    ap.add_argument("--first-edit", action="store_true", help="only time the first edit of a new process on the "
                    "store a full run left (thresholds saved at close, then without them)")
    ap.add_argument("--edit-sample", type=int, default=0, metavar="N", help="only time N random anchors deleted and "
                    "added back, on the store a full run left (results/tag_edit_sample_POINTS.json)")
    args = ap.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    anchors = load_anchors(args.scratch, args.synthetic_anchors)
    prompts = prompt_vectors(TEMPLATES, anchors["text"].shape[1])
    if args.first_edit:
        first_edit(args.scratch / f"tag-store-{len(anchors['ids'])}", anchors, args)
        return
    if args.edit_sample:
        edit_sample(args.scratch / f"tag-store-{len(anchors['ids'])}", anchors, prompts, args)
        return
    x, y, source = points(args.points, anchors)
    a = open_store(args.scratch / f"tag-store-{len(anchors['ids'])}", anchors, prompts, args.k, args.p)
    try:
        for t in a.list_tags():
            a.delete_tags(t.field, collection=t.collection)
        a.define_labels("cifar10", CIFAR10, TEMPLATES, prompt_vectors=prompts, k=args.k, p=args.p, replace=True)
        load_photos(a, x)
        print(f"{len(anchors['ids'])} anchors, {args.points} points ({source}), {prompts.shape[0]} prompts", flush=True)
        t = time.perf_counter()
        prompt_reps = relative_dense(prompts @ anchors["text"].T, args.k, args.p)
        dense_numpy(x, anchors["image"], prompt_reps, args.k, args.p, len(TEMPLATES), args.batch)
        dense_s = time.perf_counter() - t
        t = time.perf_counter()
        classify_all(a, x, args.top, args.batch)
        classify_s = time.perf_counter() - t
        t = time.perf_counter()
        a.tag("photos", vector="img", labels="cifar10", field="category", top=args.top)
        tag_s = time.perf_counter() - t
        n = args.points
        rows: list[dict[str, Any]] = [
            {"what": "dense numpy (reference)", "ms_per_point": 1000 * dense_s / n, "ratio": dense_s / classify_s},
            {"what": "Asif.classify (bulk)", "ms_per_point": 1000 * classify_s / n, "ratio": 1.0},
            {"what": "Asif.tag (all points)", "ms_per_point": 1000 * tag_s / n, "ratio": tag_s / classify_s},
        ]
        if args.check:
            rows[-1]["equal_%"] = 100 * equal_share(a, x, tags_now(a), args.top, args.batch)
        print(table(rows, ["what", "ms_per_point", "ratio", "equal_%"]), flush=True)
        edits = edit_rows(a, x, y, anchors, prompts, tag_s, args)
        print(table(edits, ["what", "ms", "points_rewritten", "retag_ratio", "equal_%"]))
        out = write_results("tag" if n == 100_000 else f"tag_{n}", rows + edits, points=n,
                            anchors=len(anchors["ids"]), prompts=int(prompts.shape[0]), k=args.k, p=args.p,
                            source=source)
        print(f"wrote {out}")
    finally:
        a.close()


if __name__ == "__main__":
    main()
