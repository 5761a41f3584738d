"""Accuracy of the old and new defaults and of each score correction, on the data the project ships (issue 24).

    .venv/bin/python benchmarks/eval_accuracy.py            # tables; results/eval_accuracy.json
    .venv/bin/python benchmarks/eval_accuracy.py --quick    # a smaller grid (CI-sized)

Protocol (docs/results.md): every setting (k, p, aggregation, correction) is scored on CIFAR-10's 10,000 test images
split in two fixed halves (even / odd position of an image within its class, in file order); the new default is
the best top-1 on the *choice* half (ties: the smaller k, then p), and is reported on the other (*report*) half and on
all 10,000. The direction is then checked, without choosing anything, on Flickr8k: held-out retrieval (1,000 images
and their 5,000 captions excluded from the anchors) and label sets made of caption words (held-out images whose
captions name exactly one class word; top-1 and class-balanced top-1).

Scores come from the plugin's own path (evaluation.sweeps.GridScorer: the anchors' top-k queried from Qdrant, relative
reps and corrections from relrep / zeroshot), which the tests check against define_labels + classify.
The last table is the cost of an anchor edit at 40k anchors (add one anchor, then classify; delete it, then classify)
with correction 'none' and with the new default correction, on a copy of the store.

Hook for other columns (few-shot, coverage): add a function ``rows = f(asif, data)`` to EXTRA_SECTIONS; its rows are
printed and stored under its name in the JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE, DATA, RESULTS, table, timed, write_results

from asif_qdrant import Asif
from asif_qdrant.evaluation.demo import CIFAR10
from asif_qdrant.evaluation.retrieval import held_out_pairs, retrieval_recall_vectors
from asif_qdrant.evaluation.sweeps import GridScorer, Setting, anchor_ids, prompt_sets, truth_indices

OLD = Setting(800, 8.0, "photo", "max", "none")
WORD_SETS = {
    "animals_vehicles": ["dog", "cat", "horse", "bird", "cow", "sheep", "car", "bicycle", "boat", "motorcycle", "bus",
                         "train"],
    "scenes": ["beach", "snow", "water", "grass", "street", "mountain", "field", "pool", "forest", "desert", "stage",
               "playground"],
    "activities": ["swimming", "running", "climbing", "skiing", "surfing", "biking", "jumping", "dancing",
                   "skateboarding", "fishing"],
}
SYNONYMS = {"bicycle": ["bicycle", "bike"], "motorcycle": ["motorcycle", "motorbike"],
            "biking": ["biking", "bicycling"], "skateboarding": ["skateboarding", "skateboarder", "skateboard"],
            "surfing": ["surfing", "surfer"], "skiing": ["skiing", "skier"]}
EXTRA_SECTIONS: dict[str, Callable[[Asif, dict[str, Any]], list[dict[str, Any]]]] = {}


def find_cached(name: str) -> Path | None:
    for root in (CACHE, *(d / "cache" for d in Path(__file__).resolve().parents)):
        if (root / name).exists():
            return root / name
    return None


def halves(truth: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The fixed split: even / odd position of each image within its class (file order)."""
    t = np.asarray(truth, dtype=object)
    pos = np.zeros(t.size, np.int64)
    for c in sorted(set(truth)):
        idx = np.flatnonzero(t == c)
        pos[idx] = np.arange(idx.size)
    return np.flatnonzero(pos % 2 == 0), np.flatnonzero(pos % 2 == 1)


def score_rows(scorer: GridScorer, settings: list[Setting], truth: list[str], parts: dict[str, np.ndarray],
               classes: list[str]) -> list[dict[str, Any]]:
    """top-1 / top-5 of each setting on each part, and the per-class spread of top-1 (min, std) on each part."""
    tidx = truth_indices(truth, classes)
    rows = []
    for s in settings:
        ranked = scorer.ranked(s)
        row: dict[str, Any] = s.as_dict()
        for name, idx in parts.items():
            top = ranked.top[idx]
            t = tidx[idx]
            row[f"{name}_top1"] = float((top[:, 0] == t).mean())
            row[f"{name}_top5"] = float((top == t[:, None]).any(axis=1).mean())
            per = [float((top[t == c, 0] == c).mean()) for c in range(len(classes)) if (t == c).any()]
            row[f"{name}_balanced"] = float(np.mean(per))
            row[f"{name}_class_min"] = float(min(per))
            row[f"{name}_class_std"] = float(np.std(per))
        rows.append(row)
    return rows


MIN_GAIN = 0.01  # a correction must beat the best uncorrected setting by this much on the choice half


def choose(rows: list[dict[str, Any]]) -> Setting:
    """The best top-1 on the choice half (ties: smaller k, then p); a setting with a correction only when it beats the
    best uncorrected one by MIN_GAIN (about 1.4 standard errors of a difference on 5,000 images: not noise)."""
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (-r["choice_top1"], r["k"], r["p"], r["aggregation"], r["correction"])

    best = min(rows, key=key)
    plain = min((r for r in rows if r["correction"] == "none"), key=key)
    if best["correction"] != "none" and best["choice_top1"] - plain["choice_top1"] < MIN_GAIN:
        best = plain
    return Setting(best["k"], best["p"], "photo", best["aggregation"], best["correction"])


def cifar(a: Asif, args: argparse.Namespace) -> dict[str, Any]:
    z = np.load(args.cifar_npz, allow_pickle=True)
    vecs, truth = np.asarray(z["vectors"], np.float32), [str(x) for x in z["labels"]]
    choice_half, report_half = halves(truth)
    ks, ps = ([400, 800], [2.0, 4.0, 8.0]) if args.quick else ([200, 400, 800, 1600], [1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
    grid = [Setting(k, p, "photo", g, c) for k in ks for p in ps for g in ("max", "mean")
            for c in ("none", "mean", "zscore")]
    t = time.perf_counter()
    prompts = prompt_sets(a, CIFAR10, ["photo"])
    scorer = GridScorer(a, vecs, CIFAR10, prompts, max(ks), None)
    rows = score_rows(scorer, list(dict.fromkeys([OLD, *grid])), truth,
                      {"choice": choice_half, "report": report_half, "all": np.arange(len(truth))}, CIFAR10)
    new = choose(rows)
    return {"rows": rows, "new": new.as_dict(), "old": OLD.as_dict(), "seconds": time.perf_counter() - t,
            "n": len(truth), "prompts": prompts}


def mentions(text: str, word: str) -> bool:
    return any(re.search(r"\b" + re.escape(f) + r"(s|es)?\b", text) for f in SYNONYMS.get(word, [word]))


def flickr(a: Asif, args: argparse.Namespace, settings: dict[str, Setting]) -> dict[str, Any]:
    h = held_out_pairs(a, args.captions, args.holdout, args.seed)
    text_of = ["" for _ in h.refs]
    for cap, o in zip(h.captions, h.owner, strict=True):
        text_of[o] += " " + cap.lower()
    retrieval, words = [], []
    done: dict[Setting, dict[str, Any]] = {}
    for name, s in settings.items():
        if s not in done:
            done[s] = retrieval_recall_vectors(a, h.image_vectors, h.caption_vectors, h.owner, k=s.k, p=s.p,
                                               exclude_ids=h.exclude, correction=s.correction)
        r = done[s]
        retrieval.append({"setting": name, **s.as_dict(), **{f"i2c_{m}": v for m, v in r["image_to_caption"].items()},
                          **{f"c2i_{m}": v for m, v in r["caption_to_image"].items()}})
    kmax = max(s.k for s in settings.values())
    for set_name, classes in WORD_SETS.items():
        truth = []
        for text in text_of:
            present = [c for c in classes if mentions(text, c)]
            truth.append(present[0] if len(present) == 1 else "")
        keep = np.flatnonzero(np.asarray(truth) != "")
        scorer = GridScorer(a, h.image_vectors[keep], classes, prompt_sets(a, classes, ["photo"]), kmax, None,
                            exclude=h.exclude)
        part = {"all": np.arange(keep.size)}
        for name, s in settings.items():
            row = score_rows(scorer, [s], [truth[i] for i in keep], part, classes)[0]
            words.append({"labels": set_name, "setting": name, "n": int(keep.size), **row})
    return {"retrieval": retrieval, "words": words, "holdout": args.holdout, "anchors_excluded": len(h.exclude)}


def edit_cost(store: Path, new: Setting, repeat: int) -> list[dict[str, Any]]:
    """add one anchor + classify, delete it + classify, at the store's anchor count, with the new k and p: a label
    set without correction against one with a correction (its reference sample kept exact; mean and zscore cost the
    same)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(store, Path(tmp) / "s", ignore=shutil.ignore_patterns(".lock", "cache"))
        with Asif.open(Path(tmp) / "s") as a:
            rng = np.random.default_rng(5)
            fp = a.fingerprint
            q = rng.standard_normal((1, fp.image_dim)).astype(np.float32)
            prompts = rng.standard_normal((80, fp.text_dim)).astype(np.float32)
            n = a.count()
            for corr in ("none", "zscore"):
                a.define_labels(f"edit-{corr}", [f"c{i}" for i in range(10)], "photo", prompt_vectors=prompts,
                                k=new.k, p=new.p, correction=corr)
                img, txt = rng.standard_normal((1, fp.image_dim)), rng.standard_normal((1, fp.text_dim))
                new_id = int(anchor_ids(a).max()) + 1

                def add() -> None:
                    a.add_vectors(img, txt, ids=[new_id])
                    a.classify(vectors=q, labels=f"edit-{corr}")  # noqa: B023

                def delete() -> None:
                    a.delete([new_id])
                    a.classify(vectors=q, labels=f"edit-{corr}")  # noqa: B023

                add_t, del_t = [], []
                for _ in range(repeat):
                    add_t.append(timed(add, 1, 0)["median_ms"])
                    del_t.append(timed(delete, 1, 0)["median_ms"])
                cls = timed(lambda: a.classify(vectors=q, labels=f"edit-{corr}"), 5)["median_ms"]  # noqa: B023
                rows.append({"anchors": n, "prompts": 80, "k": new.k, "p": new.p, "correction": corr,
                             "add_to_visible_ms": float(np.median(add_t)),
                             "delete_to_visible_ms": float(np.median(del_t)), "classify_ms": cls})
                a.delete_labels(f"edit-{corr}")
    base = rows[0]
    for r in rows:
        r["add_ratio"] = r["add_to_visible_ms"] / base["add_to_visible_ms"]
        r["delete_ratio"] = r["delete_to_visible_ms"] / base["delete_to_visible_ms"]
    return rows


DOCS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
BEGIN, END = "<!-- eval_accuracy: begin (generated by benchmarks/eval_accuracy.py) -->", "<!-- eval_accuracy: end -->"


def markdown(summary: list[dict[str, Any]], c: dict[str, Any], f: dict[str, Any], edits: list[dict[str, Any]],
             gain: float) -> str:
    """The generated part of docs/results.md: the tables of this run."""
    def md(rows: list[dict[str, Any]], cols: list[str]) -> str:
        def fmt(v: Any) -> str:
            if isinstance(v, float):
                return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
            return str(v)

        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(fmt(r.get(col, "")) for col in cols) + " |" for r in rows]
        return "\n".join(out)

    new = c["new"]
    parts = [
        BEGIN,
        f"New default: k={new['k']}, p={new['p']:g}, aggregation={new['aggregation']}, correction={new['correction']} "
        f"(chosen among {len(c['rows'])} settings on the even half of CIFAR-10): **{gain:+.4f} top-1** over the old "
        "default (k=800, p=8, max, none) on the odd half.",
        "",
        f"CIFAR-10, {c['n']} test images (choice = even half, report = odd half, all = both):",
        "",
        md(summary, ["setting", "k", "p", "aggregation", "correction", "choice_top1", "report_top1", "report_top5",
                     "all_top1", "all_top5", "all_class_min", "all_class_std"]),
        "",
        f"Flickr8k held-out retrieval ({f['holdout']} images and their captions; their {f['anchors_excluded']} pairs "
        "excluded from the anchors), recall@1/@5 both ways:",
        "",
        md(f["retrieval"], ["setting", "k", "p", "correction", "i2c_R@1", "i2c_R@5", "c2i_R@1", "c2i_R@5"]),
        "",
        "Flickr8k caption-word label sets (held-out images whose captions name exactly one class word): top-1, "
        "class-balanced top-1 and the worst class:",
        "",
        md(f["words"], ["labels", "setting", "n", "all_top1", "all_balanced", "all_class_min"]),
        "",
        "Cost of an anchor edit (one anchor added, then one classify; deleted, then one classify), 80 prompts:",
        "",
        md(edits, ["anchors", "k", "p", "correction", "add_to_visible_ms", "delete_to_visible_ms", "classify_ms",
                   "add_ratio", "delete_ratio"]),
        END,
    ]
    return "\n".join(parts)


def write_docs(block: str) -> None:
    """Replace the generated block of docs/results.md (append it when the page has none)."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=find_cached("flickr-store") or CACHE / "flickr-store")
    ap.add_argument("--cifar-npz", type=Path, default=find_cached("cifar10_lite0.npz"))
    ap.add_argument("--captions", type=Path, default=DATA / "flickr8k" / "captions.tsv")
    ap.add_argument("--holdout", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a smaller grid")
    ap.add_argument("--repeat", type=int, default=5, help="edits timed per correction")
    ap.add_argument("--name", default="eval_accuracy")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the generated block of docs/results.md")
    ap.add_argument("--edits-only", action="store_true", help="only time the edits (with the new defaults of the last "
                    "full run's JSON); writes results/eval_accuracy_edits.json, shown by docs/results.md")
    args = ap.parse_args()
    if args.edits_only:
        last = json.loads((RESULTS / f"{args.name}.json").read_text())
        edits = edit_cost(args.store, Setting(**last["new"]), args.repeat)
        print(table(edits, ["anchors", "k", "p", "correction", "add_to_visible_ms", "delete_to_visible_ms",
                            "classify_ms", "add_ratio", "delete_ratio"]))
        print("wrote", write_results(f"{args.name}_edits", edits, repeat=args.repeat))
        return
    if args.cifar_npz is None:
        raise SystemExit("cifar10_lite0.npz not found in benchmarks/cache or a cache/ folder above the checkout")
    with tempfile.TemporaryDirectory() as tmp:  # Edge stores open in one process at a time: read a copy
        shutil.copytree(args.store, Path(tmp) / "s", ignore=shutil.ignore_patterns(".lock"))
        with Asif.open(Path(tmp) / "s", correction="none") as a:
            print(f"store {a.engine.description}: {a.count()} anchors; encoders {a.fingerprint}")
            c = cifar(a, args)
            new, old = Setting(**c["new"]), OLD
            cols = ["k", "p", "aggregation", "correction", "choice_top1", "report_top1", "report_top5", "all_top1",
                    "all_top5", "all_class_min", "all_class_std"]
            named = {"old default": old, "new default": new,
                     **{f"new k/p, correction {x}": Setting(new.k, new.p, "photo", new.aggregation, x)
                        for x in ("none", "mean", "zscore")}}
            key = {Setting(r["k"], r["p"], "photo", r["aggregation"], r["correction"]): r for r in c["rows"]}
            summary = [{"setting": n, **key[s]} for n, s in named.items() if s in key]
            print(f"\nCIFAR-10 ({c['n']} images; chosen on the even half, reported on the odd half; "
                  f"{len(c['rows'])} settings, {c['seconds']:.0f} s)")
            print(table(summary, ["setting", *cols]))
            gain = key[new]["report_top1"] - key[old]["report_top1"]
            print(f"new default {new.as_dict()}: {gain:+.4f} top-1 on the report half over the old default")
            f = flickr(a, args, named)
            print(f"\nFlickr8k held-out retrieval ({args.holdout} images, their pairs excluded from the anchors)")
            print(table(f["retrieval"], ["setting", "k", "p", "correction", "i2c_R@1", "i2c_R@5", "c2i_R@1",
                                         "c2i_R@5"]))
            print("\nFlickr8k caption-word label sets (held-out images naming exactly one class word)")
            print(table(f["words"], ["labels", "setting", "n", "all_top1", "all_balanced", "all_class_min"]))
            extra = {name: fn(a, {"cifar": c, "flickr": f}) for name, fn in EXTRA_SECTIONS.items()}
            for name, rows in extra.items():
                print(f"\n{name}")
                print(table(rows, list(rows[0])) if rows else "(no rows)")
    edits = edit_cost(args.store, new, args.repeat)
    print("\nedit -> visible at the store's anchor count (one anchor; 80 prompts)")
    print(table(edits, ["anchors", "k", "p", "correction", "add_to_visible_ms", "delete_to_visible_ms", "classify_ms",
                        "add_ratio", "delete_ratio"]))
    if not args.no_docs:
        write_docs(markdown(summary, c, f, edits, gain))
        print("updated", DOCS)
    print("wrote", write_results(args.name, summary, cifar_rows=c["rows"], new=c["new"], old=c["old"],
                                 report_gain_top1=gain, flickr=f, edits=edits, extra=extra,
                                 protocol="choose on CIFAR-10 even half (per class), report on the odd half"))


if __name__ == "__main__":
    main()
