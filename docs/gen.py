"""Generate the tables of the docs pages from their sources, so that no number is typed twice.

Run `make docs` (or `python docs/gen.py`) after a benchmark writes new JSON or a setting changes; `--check` only
reports the regions that differ (tests/unit/test_docs.py runs the same check). A generated region of a page is

    <!-- generated: NAME -->
    ... (whatever GENERATORS[NAME]() returns)
    <!-- end generated -->

with hand-written text around it. Sources: `AsifSettings`' field descriptions (asif_qdrant/settings.py) and
`benchmarks/results/*.json`.
"""

from __future__ import annotations

import ast
import json
import re
import statistics
import sys
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REGION_RE = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end generated -->)", re.S)


@cache
def result(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}"


def ms(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def bold_if(text: str, cond: bool) -> str:
    return f"**{text}**" if cond else text


# --- settings -------------------------------------------------------------------------------------------------


def settings_table() -> str:
    if str(ROOT) not in sys.path:  # `python docs/gen.py` from a clone: the package next to this folder
        sys.path.insert(0, str(ROOT))
    from asif_qdrant.settings import AsifSettings

    rows = []
    for name, field in AsifSettings.model_fields.items():
        if not field.description:
            raise SystemExit(f"AsifSettings.{name} has no description: add Field(..., description=...) in settings.py")
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        if isinstance(default, Path) and not default.is_absolute():
            default = f"./{default}"
        shown = "unset" if default is None else f"`{default}`" if not isinstance(default, dict) else "`{}`"
        rows.append((f"`ASIF_{name.upper()}`", shown, field.description.replace("|", "\\|")))
    return table(["variable", "default", "what it sets"], rows)


# --- results ----------------------------------------------------------------------------------------------------


def _sweep(rows: list[dict[str, Any]]) -> str:
    rows = [r for r in rows if r["templates"] == "photo" and r["aggregation"] == "max"]
    ks, ps = sorted({r["k"] for r in rows}), sorted({r["p"] for r in rows})
    best = max(r["top1"] for r in rows)
    cell = {(r["k"], r["p"]): r for r in rows}
    body = [
        [f"k = {k}"] + [bold_if(pct(cell[k, p]["top1"]), cell[k, p]["top1"] == best) + f" ({pct(cell[k, p]['top5'])})"
                        for p in ps]
        for k in ks
    ]
    return table(["top-1 (top-5)"] + [f"p = {p:g}" for p in ps], body)


def cifar_sweep() -> str:
    return _sweep(result("eval_cifar")["sweep"])


def cifar_sweep_notes() -> str:
    rows = result("eval_cifar")["sweep"]
    plain = max((r for r in rows if r["templates"] == "plain"), key=lambda r: r["top1"])
    mean = {r["p"]: r for r in rows if r["templates"] == "photo" and r["aggregation"] == "mean" and r["k"] == 800}
    return (f"Photo templates, max aggregation. With the plain `\"{{}}\"` template the best is {pct(plain['top1'])} % "
            f"(k = {plain['k']}, p = {plain['p']:g}); mean aggregation over the photo templates gives "
            f"{pct(mean[8.0]['top1'])} % at k = 800, p = 8 and {pct(mean[4.0]['top1'])} % at k = 800, p = 4.")


def cifar_sweep_mpnet() -> str:
    return _sweep(result("eval_cifar_mpnet_sweep")["rows"])


def cifar_headline() -> str:
    d = result("eval_accuracy")
    rows = {r["setting"]: r for r in d["rows"]}
    new, old = rows["new default"], rows["old default"]
    return (f"the defaults (k = {new['k']}, p = {new['p']:g}, {new['aggregation']} over templates, chosen on one half "
            f"of CIFAR-10 and reported on the other), all 10,000 images, "
            f"{d['edits'][0]['anchors']:,} anchors: **top-1 {pct(new['all_top1'])} %, top-5 {pct(new['all_top5'])} "
            f"%** (the old default, k = {old['k']}, p = {old['p']:g}: {pct(old['all_top1'])} %).")


def correction_edit() -> str:
    """The edit-cost rows of ``eval_accuracy.py --edits-only`` (the correction's incremental update)."""
    d = result("eval_accuracy_edits")
    rows = [[r["correction"], r["anchors"], f"{r['k']} / {r['p']:g}", f"{ms(r['add_to_visible_ms'])} ms",
             f"{ms(r['delete_to_visible_ms'])} ms", f"{ms(r['classify_ms'])} ms", f"{r['add_ratio']:.2f}x",
             f"{r['delete_ratio']:.2f}x"] for r in d["rows"]]
    return table(["correction", "anchors", "k / p", "add + classify", "delete + classify", "classify",
                  "add vs none", "delete vs none"], rows) + f"\n\n(median of {d['repeat']} edits each, {d['when']})"


def _tag_rows(d: dict[str, Any]) -> list[list[str]]:
    rows = {r["what"]: r for r in d["rows"]}
    cls, tag, dense = rows["Asif.classify (bulk)"], rows["Asif.tag (all points)"], rows["dense numpy (reference)"]

    def eq(r: dict[str, Any]) -> str:
        return f"{r['equal_%']:.0f} %" if "equal_%" in r else "not checked in this run"

    out = [["tag all points", f"{tag['ms_per_point']:.2f} per point ({tag['ratio']:.2f}x bulk classify's "
            f"{cls['ms_per_point']:.2f}; dense numpy {dense['ms_per_point']:.2f})", f"{d['points']:,}", "", eq(tag)]]
    for r in d["rows"][3:]:
        if "retag_ratio" not in r:  # the floor under an edit: one exact scan, no tag written
            out.append([r["what"], f"{r['ms']:,.0f}", "", "", ""])
            continue
        out.append([r["what"], f"{r['ms']:,.0f}", f"{r['points_rewritten']:,}", f"{r['retag_ratio']:.1f}x", eq(r)])
    return out


def tag_cost() -> str:
    """bench_tag.py at 100,000 points (tag.json), at 5,000 points with the equality checks (tag_5000.json), and on
    the 100,000-point store: the first edit of a new process and a sample of random one-anchor edits."""
    parts = []
    for name in ("tag", "tag_5000"):
        d = result(name)
        parts.append(f"{d['points']:,} points ({d['source']}), {d['anchors']:,} anchors, {d['prompts']} prompts, "
                     f"k = {d['k']}, p = {d['p']:g}, exact search ({d['when']}):\n\n"
                     + table(["", "ms", "points rewritten", "re-tag / edit", "tags equal to classify"], _tag_rows(d)))
    first = result("tag_first_edit_100000")  # bench_tag.py --first-edit, on the store the 100,000-point run left
    rows = [[r["what"], f"{r['ms']:,.0f}", f"{r['items_touched']:,}"] for r in first["rows"]]
    parts.append(f"The first edit of a new process on that 100,000-point store ({first['when']}):\n\n"
                 + table(["", "ms", "items touched"], rows))
    sample = result("tag_edit_sample_100000")  # bench_tag.py --edit-sample 10, on the same store
    rows = []
    for edit in ("added", "deleted"):
        for touched in (False, True):
            rs = [r for r in sample["rows"] if r["edit"] == edit and (r["prompt_reps"] > 0) == touched]
            if not rs:
                continue
            ms = [r["ms"] for r in rs]
            rows.append([f"one anchor {edit}, " + ("in a prompt's top-k" if touched else "in no prompt's top-k"),
                         len(rs), sum(r["prompt_lists"] > 0 for r in rs), f"{statistics.median(ms):,.0f}",
                         f"{max(ms):,.0f}",
                         f"{statistics.median(r['items_touched'] for r in rs):,.0f}",
                         f"{statistics.median(r['points_rewritten'] for r in rs):,.0f}",
                         f"{statistics.median(r['retag_ratio'] for r in rs):,.1f}x"])
    parts.append(f"{len(sample['rows']) // 2} anchors drawn at random on that store, each deleted and added back "
                 f"({sample['prompts']} prompts; {sample['when']}):\n\n"
                 + table(["", "draws", "rewrote a prompt's list", "median ms", "max ms", "items touched",
                          "points rewritten", "re-tag / edit"], rows))
    return "\n\n".join(parts)


def teach() -> str:
    rows = result("eval_teach")["rows"]
    methods = ["ASIF + prototypes", "ASIF, taught", "nearest class mean", "1-NN on image embeddings"]
    by = {(r["examples_per_class"], r["method"]): r for r in rows}

    def cell(r: dict[str, Any] | None) -> str:
        return "–" if r is None else f"{pct(r['top1_mean'])} ({pct(r['top1_min'])}–{pct(r['top1_max'])})"

    body = []
    for n in sorted({r["examples_per_class"] for r in rows}):
        if n == 0:
            zs = next(r for r in rows if r["examples_per_class"] == 0)
            body.append(["0 (zero-shot)", cell(zs), cell(zs), "–", "–"])
        else:
            body.append([str(n)] + [cell(by.get((n, m))) for m in methods])
    names = {"ASIF + prototypes": "ASIF + prototypes (the product, `asif teach`)",
             "ASIF, taught": "ASIF, taught pairs as plain anchors"}
    return table(["examples per class", *(names.get(m, m) for m in methods)], body)


def teach_one_class() -> str:
    runs = result("eval_teach")["one_class"]

    def span(key: str) -> str:
        vals = [r[key] for r in runs]
        return f"{pct(min(vals), 0)}–{pct(max(vals), 0)} %"

    return (
        f"**Teach every class.** With a single cat example and no other class taught, {span('predicted_cat')} of the "
        f"held-out images (all classes) are answered \"cat\" and top-1 is {span('top1')} ({len(runs)} seeds), "
        "because only \"cat\" gets a prototype term. (`explain` also warns when one anchor carries at least half of "
        f"the score of every label; with taught pairs counted through their prototypes it fired on "
        f"{span('explain_warns')} of a 30-image sample per seed.)"
    )


def anchor_curve() -> str:
    rows = result("anchor_curve")["rows"]
    return table(
        ["anchors", *(f"{r['anchors']:,}" for r in rows)],
        [["top-1 (mean)", *(pct(r["top1_mean"]) for r in rows)],
         ["min–max", *(f"{pct(r['top1_min'])}–{pct(r['top1_max'])}" if r["top1_min"] != r["top1_max"] else "–"
                       for r in rows)]],
    )


def tune() -> str:
    body = []
    for r in result("eval_tune")["rows"]:
        setting = f"{r['which']}: k={r['k']}, p={r['p']:g}, {r['templates']}, {r['aggregation']}"
        body.append([setting, pct(r["val_top1"]), bold_if(pct(r["test_top1"]), r["which"] == "tuned"),
                     pct(r["test_top5"])])
    return table(["setting", "validation top-1", "test top-1", "test top-5"], body)


def retrieval() -> str:
    d = result("eval_retrieval")
    body = [[r["direction"].replace("_to_", " → "), pct(r["R@1"]), pct(r["R@5"]), pct(r["R@10"]),
             f"{r['median_rank']:g}"] for r in d["rows"]]
    return table(["direction", "R@1", "R@5", "R@10", "median rank"], body)


def calibrate() -> str:
    body = []
    for name in ("calibrate_c0.7", "calibrate_p0.7", "calibrate_p0.9"):
        d = result(name)
        body.append([f"{d['target']} {d['target_value']:g}", f"{d['tau']:.4f}", f"{d['accuracy']:.3f}",
                     f"{d['unknown']:.3f}", f"{d['wrong']:.3f}", f"{d['precision']:.3f}"])
    return table(["target (chosen on the calibration half)", "τ", "accuracy", "unknown", "wrong", "precision"], body)


def prune() -> str:
    lw, ic = result("prune_curve_label_weight")["rows"], result("prune_curve_image_contribution")["rows"]
    top = {(r["selection"], r["keep"]): r["top1"] for r in lw + ic}
    keeps = sorted({r["keep"] for r in lw}, reverse=True)
    total = result("prune_curve_label_weight")["total_anchors"]
    best_small = max(top["label_weight", keeps[-1]], top["image_contribution", keeps[-1]])
    body = [[f"{k:,}" + (" (all)" if k == total else "")]
            + [bold_if(pct(top[s, k]), k == keeps[-1] and top[s, k] == best_small and s != "random")
               for s in ("label_weight", "image_contribution", "random")] for k in keeps]
    return table(["anchors kept", "label_weight", "image_contribution", "random"], body)


# --- performance ------------------------------------------------------------------------------------------------


def _perf_rows() -> list[list[str]]:
    cl = {(r["anchors"], r["prompts"]): r for r in result("classify_latency")["rows"]}
    cl1m = {r["prompts"]: r for r in result("classify_latency_1m")["rows"]}
    ev = {(r["anchors"], r["prompts"]): r for r in result("edit_to_visible")["rows"]}
    ev1m = {r["prompts"]: r for r in result("edit_to_visible_1m")["rows"]}
    tk = {r["anchors"]: r for r in result("topk_edge_vs_numpy_big")["rows"]}
    sc, st = result("scale_1m")["rows"], result("scale_1m_turbo")["rows"]
    sco, sto = {r["option"]: r for r in sc}, {r["option"]: r for r in st}
    real = {r["option"]: r for r in result("quantization")["real"]}
    mem1m = {r["mode"]: r for r in result("memory_per_anchor_1000k")["rows"]}
    mem = {r["mode"]: r for r in result("memory_per_anchor")["rows"]}
    add, ing = result("add_vectors")["rows"][0], result("ingest_flickr")
    a, b = cl[100000, 1000], cl[100000, 80]
    c, m1, m80 = cl[40000, 1000], cl1m[1000], cl1m[80]
    e, e40, e1m = ev[100000, 1000], ev[40000, 1000], ev1m[1000]
    ex, tb, i8, ni = sco["exact"], sto["turbo2+rescore x2"], sco["int8+rescore x2"], sco["int8 no rescore"]
    hn = [sco[f"int8+hnsw ef={ef}"] for ef in (1600, 3200, 6400)]
    first, second = ing["first_run"], ing["second_run"]
    return [
        ["classify, per image, encoding excluded, 100k anchors, 1,000 prompts", f"{ms(a['classify_ms'])} ms",
         f"the one raw top-800 query it needs: {ms(a['raw_topk_ms'])} ms", f"**{a['ratio']:.2f}×** (target ≤ 1.3×)",
         "`bench_classify.py`"],
        ["same, 100k anchors, 80 prompts", f"{ms(b['classify_ms'])} ms", f"{ms(b['raw_topk_ms'])} ms",
         f"{b['ratio']:.2f}×", ""],
        ["same, 40k anchors, 1,000 prompts: one image / batch of 20",
         f"{ms(c['classify_ms'])} / {ms(c['classify_batch_ms'])} ms per image",
         f"{ms(c['raw_topk_ms'])} / {ms(c['raw_batch_ms'])} ms", f"{c['ratio']:.2f}× / {c['ratio_batch']:.2f}×", ""],
        ["same, 1M anchors, 1,000 prompts: one image / batch of 5",
         f"{ms(m1['classify_ms'])} / {ms(m1['classify_batch_ms'])} ms per image",
         f"{ms(m1['raw_topk_ms'])} / {ms(m1['raw_batch_ms'])} ms", f"{m1['ratio']:.2f}× / {m1['ratio_batch']:.2f}×",
         "`bench_classify.py --sizes 1000000 --prompts 80,1000 --queries 5 --suffix _1m`"],
        ["same, 1M anchors, 80 prompts", f"{ms(m80['classify_ms'])} / {ms(m80['classify_batch_ms'])} ms",
         f"{ms(m80['raw_topk_ms'])} / {ms(m80['raw_batch_ms'])} ms",
         f"{m80['ratio']:.2f}× / {m80['ratio_batch']:.2f}×", ""],
        ["edit → visible: add 1 anchor + next classify, 100k, 1,000 prompts", f"{ms(e['add_to_visible_ms'])} ms",
         f"full rebuild of the label set: {ms(e['rebuild_ms'])} ms", f"**{e['speedup_add']:.0f}× faster**",
         "`bench_classify.py`"],
        ["edit → visible: delete 1 anchor + next classify, 100k, 1,000 prompts",
         f"{ms(e['delete_to_visible_ms'])} ms", f"rebuild {ms(e['rebuild_ms'])} ms",
         f"{e['speedup_delete']:.0f}× faster", ""],
        ["edit → visible, 40k, 1,000 prompts (add / delete)",
         f"{ms(e40['add_to_visible_ms'])} / {ms(e40['delete_to_visible_ms'])} ms",
         f"rebuild {ms(e40['rebuild_ms'])} ms", f"{e40['speedup_add']:.0f}× / {e40['speedup_delete']:.0f}×", ""],
        ["edit → visible, 1M, 1,000 prompts (add / delete)",
         f"{ms(e1m['add_to_visible_ms'])} / {ms(e1m['delete_to_visible_ms'])} ms",
         f"rebuild {ms(e1m['rebuild_ms'])} ms", f"{e1m['speedup_add']:.0f}× / {e1m['speedup_delete']:.0f}×",
         "`bench_classify.py --sizes 1000000 ...`"],
        *[[(f"Edge exact top-800, {n // 1000}k × 1280-d" if n < 10**6 else "Edge exact top-800, 1M × 1280-d")
           + ": one query / batch of 16",
           f"{ms(t['edge_ms'])} / {ms(t['edge_batch16_ms'])} ms",
           f"numpy `X @ q` + argpartition: {ms(t['numpy_ms'])} / {ms(t['numpy_batch16_ms'])} ms",
           f"{t['ratio']:.2f}× / {t['ratio_batch']:.2f}× (target ≤ 1.2×)", "`bench_topk.py --big`"]
          for n, t in sorted(tk.items())],
        ["1M anchors with Flickr8k structure, CIFAR-10, exact (per image: one / batches of 64)",
         f"{ms(sto['exact']['anchor_query_ms'])} / {ms(sto['exact']['batched_ms_per_image'])} ms", "",
         f"top-1 {pct(sto['exact']['top1'])} %", "`bench_scale_1m.py`"],
        ["same, TurboQuant 2-bit + rescore ×2 (`ASIF_QUANTIZATION=turbo2`)",
         f"{ms(tb['anchor_query_ms'])} / **{ms(tb['batched_ms_per_image'])} ms**",
         f"exact (same run): {ms(sto['exact']['anchor_query_ms'])} / {ms(sto['exact']['batched_ms_per_image'])} ms",
         f"{tb['anchor_query_ms'] / sto['exact']['anchor_query_ms']:.2f}× / "
         f"{tb['batched_ms_per_image'] / sto['exact']['batched_ms_per_image']:.2f}×; top-1 disagreement "
         f"**{tb['top1_disagree_pts']:.1f} points**, top-k overlap {tb['topk_overlap']:.3f}",
         "`bench_scale_1m.py --skip-int8 --skip-hnsw --turbo turbo2 --name scale_1m_turbo`"],
        ["same, int8 + rescore ×2", f"{ms(i8['anchor_query_ms'])} / {ms(i8['batched_ms_per_image'])} ms",
         f"exact (its own run): {ms(ex['anchor_query_ms'])} / {ms(ex['batched_ms_per_image'])} ms",
         f"{i8['anchor_query_ms'] / ex['anchor_query_ms']:.2f}×; {i8['top1_disagree_pts']:.1f} points",
         "`bench_scale_1m.py`"],
        ["same, int8 without rescoring", f"{ms(ni['anchor_query_ms'])} / {ms(ni['batched_ms_per_image'])} ms", "",
         f"{ni['top1_disagree_pts']:.1f} points", ""],
        ["same, int8 + HNSW (m 16), ef = 1,600 / 3,200 / 6,400",
         " / ".join(ms(h["anchor_query_ms"]) for h in hn) + " ms", "",
         " / ".join(f"{h['top1_disagree_pts']:.1f}" for h in hn) + " points", ""],
        ["top-800 at 40k real anchors, int8 + rescore ×2", f"{ms(real['int8+rescore x2']['anchor_query_ms'])} ms",
         f"exact: {ms(real['exact']['anchor_query_ms'])} ms",
         f"{real['int8+rescore x2']['anchor_query_ms'] / real['exact']['anchor_query_ms']:.2f}×; top-1 disagreement "
         f"{real['int8+rescore x2']['top1_disagree_pts']:.1f} points", "`bench_quantization.py`"],
        ["memory per anchor, 1M, int8 without rescoring (PSS after 200 queries)",
         f"{mem1m['int8-norescore']['pss_after_200q_B']:,.0f} B", "(1280 + 768) dims = 2,048 B",
         f"**{mem1m['int8-norescore']['ratio_200q']:.2f}×** (target ≤ 1.2× + payload)",
         "`bench_memory.py --n 1000000 --modes int8-norescore,int8`"],
        ["same, int8 with rescoring", f"{mem1m['int8']['pss_after_200q_B']:,.0f} B", "",
         f"{mem1m['int8']['ratio_200q']:.1f}×: the float32 originals read to rescore stay in the page cache", ""],
        ["memory per anchor, 100k, exact / int8 without rescoring",
         f"{mem['exact']['pss_after_200q_B']:,.0f} / {mem['int8-norescore']['pss_after_200q_B']:,.0f} B",
         "float32 8,192 B / int8 2,048 B",
         f"{mem['exact']['pss_after_200q_B'] / 8192:.2f}× / {mem['int8-norescore']['pss_after_200q_B'] / 2048:.2f}×",
         "`bench_memory.py`"],
        [f"add {add['pairs']:,} random pairs (1280-d + 768-d) through `add_vectors`",
         f"{add['seconds']:.1f} s ({add['pairs_per_s']:,.0f} pairs/s)", "", "", f"`bench_add.py --n {add['pairs']}`"],
        ["ingest Flickr8k from images (lite0 + MiniLM)",
         f"{first['seconds']:.0f} s: {first['images_per_s']:.1f} images/s, {first['captions_per_s']:.1f} captions/s",
         f"second run: {second['seconds']:.1f} s, adds {second['added']} and encodes {second['images_encoded']}", "",
         "`ingest_flickr.py`"],
    ]


def targets() -> str:
    a = {(r["anchors"], r["prompts"]): r for r in result("classify_latency")["rows"]}[100000, 1000]
    tb = {r["option"]: r for r in result("scale_1m_turbo")["rows"]}["turbo2+rescore x2"]
    sc = result("scale_1m")["rows"]
    i8 = {r["mode"]: r for r in result("memory_per_anchor_1000k")["rows"]}["int8-norescore"]
    tk = {r["anchors"]: r for r in result("topk_edge_vs_numpy_big")["rows"]}
    b1m = {r["path"]: r for r in result("bulk_1m")["rows"]}["Asif.classify, turbo2+rescore x2"]
    b40 = min((r for r in result("bulk")["rows"] if r["path"].startswith("Asif")), key=lambda r: r["x_reference"])
    hnsw = [r["top1_disagree_pts"] for r in sc if "hnsw" in r["option"] and r["option"] != "int8+hnsw ef=808"]
    binary = [r["top1_disagree_pts"] for r in result("quantization")["real"] if r["option"].startswith("binary")]
    return (
        f"Met: classify at {a['ratio']:.2f}× its raw top-k query (100k, 1,000 prompts); 1M anchors at "
        f"{tb['batched_ms_per_image']:.0f} ms per image with {tb['top1_disagree_pts']:.1f} points of top-1 "
        "disagreement (TurboQuant 2-bit + rescoring, images in batches; one image at a time takes "
        f"{tb['anchor_query_ms']:.0f} ms); "
        f"bulk classify at 1M with turbo2 at {b1m['x_reference']:.3g}× the dense reference; int8 at "
        f"{i8['ratio_200q']:.2f}× one byte per dimension at 1M. Missed: Edge exact top-k is "
        f"{tk[1000000]['ratio']:.2f}× numpy at 1M ({tk[1000000]['ratio_batch']:.2f}× batched) and "
        f"{tk[100000]['ratio']:.1f}× at 100k; bulk classify at 40k is {b40['x_reference']:.1f}× the dense reference at "
        f"best ({b40['path'].split(', ', 1)[1]}). HNSW is fast but at k = 800 its top-k misses too many of the "
        f"strongest anchors ({min(hnsw):g}–{max(hnsw):g} points of top-1 disagreement at 1M), and binary quantization "
        f"changes {min(binary):g}–{max(binary):g} points at 40k on these non-negative image features: neither is on "
        "by default."
    )


def performance() -> str:
    return table(["measured", "result", "reference in the same run", "ratio", "command"], _perf_rows())


def _bulk(name: str) -> str:
    d = result(name)
    body = [[r["path"], f"{r['ms_per_image']:.2f}", f"{r['x_reference']:.2f}×", f"{pct(r['top1'])} %",
             f"{pct(r['agree_exact'])} %",
             "" if "rows_exact_topk" not in r else
             f"{pct(r['rows_exact_topk'], 0)} % (overlap {r['topk_overlap']:.3f})"] for r in d["rows"]]
    singles = d["single"]
    body.append(["one image per call: " + " / ".join(s["path"].split(", ", 1)[1] for s in singles),
                 " / ".join(f"{s['ms_per_image']:.1f}" for s in singles), "", "", "", ""])
    return table([f"path ({d['anchors']:,} anchors, {d['images']:,} images)", "ms per image", "× dense reference",
                  "top-1", "agreement with exact", "top-800 = exact's"], body)


def bulk() -> str:
    return _bulk("bulk")


def bulk_1m() -> str:
    return _bulk("bulk_1m")


def bulk_floor() -> str:
    body = []
    for name in ("bulk", "bulk_1m"):
        d = result(name)
        for f in d["floor"]:
            body.append([f"{d['anchors']:,}, {f['path']}", f"{f['scan_limit10_ms']:.2f}", f"{f['results_ms']:.2f}",
                         f"{f['query_as_sent_ms']:.2f}", f"{f['sparse_stage_ms']:.2f}",
                         f"{f['floor_ms']:.2f} = {f['floor_x_reference']:.1f}×", f"{f['classify_ms']:.2f}"])
    return table(["store", "scan alone (limit 10)", "returning the 808 neighbours", "query as sent",
                  "sparse stage (80 prompts)", "floor = scan + neighbours + sparse (× reference)", "classify"], body)


def edit_100k() -> str:
    r = result("edit_to_visible_100k")["rows"][0]
    return table(
        ["100k anchors, 1,000 prompts", "add + next classify", "delete + next classify", "next classify alone",
         "rebuild of the label set"],
        [["ms", ms(r["add_to_visible_ms"]), ms(r["delete_to_visible_ms"]), ms(r["classify_ms"]), ms(r["rebuild_ms"])],
         ["× faster than a rebuild", f"**{r['speedup_add']:.0f}×**", f"**{r['speedup_delete']:.0f}×**", "", ""]],
    )


# --- tenancy and serving ----------------------------------------------------------------------------------------


def tenants() -> str:
    r = result("bench_tenants_10000")["rows"][0]
    body = [
        ["collections", f"{r['collections']} (single-tenant store: {r['collections_single']}; after deleting "
         f"tenants: {r['collections_after_deletes']})", "constant"],
        ["disk allocated / apparent", f"{r['disk_allocated_mb']:,.0f} MB / {r['disk_apparent_mb']:,.0f} MB "
         f"(apparent/allocated {r['apparent_over_allocated']:.2f})", "within 2x"],
        ["store open", f"{r['open_s']:.2f} s", "<= 1 s"],
        ["first classify of a new tenant (makes its copy)",
         f"p50 {r['first_classify_new_tenant_ms_p50']:.0f} ms, max {r['first_classify_new_tenant_ms_max']:.0f} ms "
         f"(p99 {r['first_classify_ms_p99_during_load']:.0f} ms while copies are being made)", "<= 100 ms"],
        [f"warm classify, one tenant among {r['tenants']:,}",
         f"p50 {r['warm_classify_ms_p50']:.1f} ms, p99 {r['warm_classify_ms_p99']:.1f} ms", ""],
        ["same classify, single-tenant store",
         f"p50 {r['single_classify_ms_p50']:.1f} ms, p99 {r['single_classify_ms_p99']:.1f} ms "
         f"(ratio {r['warm_ratio_p50']:.2f} p50, {r['warm_ratio_p99']:.2f} p99)", "<= 1.2x"],
        ["delete_tenant", f"p50 {r['delete_tenant_ms_p50']:.0f} ms", ""],
    ]
    return table([f"{r['tenants']:,} tenants, {r['shared_anchors'] // 1000}k shared anchors", "value", "target"], body)


def cli_startup() -> str:
    d = result("bench_cli")
    rows = {r["mode"]: r for r in d["rows"]}
    what = [
        ("embedded", "embedded: `asif --path STORE classify IMG --labels cifar10` (opens the store, loads both "
                     "encoders)"),
        ("server", "`asif --server URL classify IMG --labels cifar10` against a warm `asif serve`"),
        ("import --server", 'for comparison: `python -c "import asif_qdrant.cli, asif_qdrant.cli.remote"`'),
        ("request", "for comparison: the request alone (`AsifClient.classify`: upload, decoding and encoding on the "
                    "server)"),
    ]

    def s(v: float) -> str:
        return f"{v:.2f} s" if v < 10 else f"{v:.1f} s"

    body = [[label, f"**{s(rows[m]['median_s'])}**" if m == "server" else s(rows[m]["median_s"]),
             s(rows[m]["min_s"]), s(rows[m]["max_s"])] for m, label in what if m in rows]
    text = table(["run (whole `asif` processes)", "median", "min", "max"], body)
    return (f"{text}\n\nEmbedded / server: **{d['ratio_embedded_over_server']:.1f}x**, the same label "
            f"(`{d['label']}`) in both modes: {d['same_label']}; load average {d['load_average']:.1f} on 2 cores.")


def serve() -> str:
    d = result("bench_serve")
    mx, tp, up = d["mixed"], d["throughput"], d["upload"]
    cl = next(r for r in d["rows"] if r["endpoint"] == "classify")
    held_ok = d["anchors_held"] == d["anchors_stored"]
    body = [
        [f"mixed phase: {tp['clients']} clients over {len(d['rebuild_equal'])} tenant keys classify, search, explain, "
         f"add and delete ({mx['requests']} requests, {mx['seconds']:.0f} s)",
         f"{mx['errors']} errors, {mx['leaks']} cross-tenant leaks; each tenant's answers equal a rebuild: "
         f"{all(d['rebuild_equal'].values())}; anchors held == stored: {held_ok}", "0 / 0"],
        ["classify p50 / p95 during the mixed phase (edits included)",
         f"{cl['p50_ms']:,.0f} / {cl['p95_ms']:,.0f} ms", ""],
        [f"read-only classify throughput, {tp['clients']} clients vs 1 client",
         f"{tp['concurrent_rps']:.1f} vs {tp['single_client_rps']:.1f} req/s = {tp['speedup']:.2f}x",
         ">= 1.5x" + (" (missed)" if tp["speedup"] < 1.5 else "")],
        ["classify one uploaded image (encoding included), HTTP vs in-process",
         f"{up['http_upload_ms']:.1f} vs {up['in_process_ms']:.1f} ms = {up['ratio']:.2f}x", "<= 1.3x"],
    ]
    iso, dec = d.get("isolation"), d.get("decoding")
    if iso:
        ro, mi = iso["read_only"], iso["mixed"]
        body.append([
            "one tenant's classify p95 alone vs while another tenant edits without pause",
            f"{ro['p95_ms']:.1f} vs {mi['p95_ms']:.1f} ms = {iso['p95_ratio']:.2f}x; 503s {ro['read_503']} / "
            f"{mi['read_503']}, errors {ro['read_errors'] + mi['read_errors']}, {mi['edit_requests']} edits",
            "<= 1.5x, 0 errors" + (" (p95 missed)" if iso["p95_ratio"] > 1.5 else "")])
    if dec:
        body.append([
            f"server RSS: {len(dec['bomb_statuses'])} requests of 3 decompression bombs ({dec['bomb_kb']:.0f} KB "
            f"PNG, 13000x13000); then one request of {dec['photos']} 4000x3000 JPEGs",
            f"bombs: {sorted(set(dec['bomb_statuses']))}, +{dec['rss_after_bombs_mb'] - dec['rss_before_mb']:.0f} MB; "
            f"photos: {dec['batch_status']} in {dec['batch_seconds']:.1f} s, "
            f"+{dec['rss_after_batch_mb'] - dec['rss_after_bombs_mb']:.0f} MB", "bounded"])
    return table(["figure", "measured", "target"], body)


# --- layout -----------------------------------------------------------------------------------------------------


def _summary(path: Path) -> str:
    """The first sentence of a module's docstring (every module has one: the layout page is made of them)."""
    doc = ast.get_docstring(ast.parse(path.read_text()))
    if not doc:
        raise SystemExit(f"{path.relative_to(ROOT)} has no module docstring: the layout page is made of them, add one")
    para = " ".join(doc.split("\n\n", 1)[0].split()).replace("``", "`")
    summary = ""
    for sentence in re.findall(r".+?[.!?](?=\s|$)|.+$", para):  # whole sentences, until the line says enough
        summary = f"{summary} {sentence.strip()}".strip()
        if len(summary) >= 40:
            break
    return summary


def layout() -> str:
    """One line per module of the package and per migration step, from the tree as it is."""
    lines = []
    for folder in ("asif_qdrant", "migrations"):
        files = sorted((ROOT / folder).rglob("*.py"), key=lambda f: (f.parent.relative_to(ROOT).parts, f.name))
        for f in files:
            if "__pycache__" in f.parts:
                continue
            rel = f.relative_to(ROOT)
            name = f"{rel.parent}/" if f.name == "__init__.py" else str(rel)
            lines.append(f"- `{name}`: {_summary(f)}")
    return "\n".join(lines)


GENERATORS: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "cifar-headline": cifar_headline,
    "cli-startup": cli_startup,
    "cifar-sweep": cifar_sweep,
    "cifar-sweep-notes": cifar_sweep_notes,
    "cifar-sweep-mpnet": cifar_sweep_mpnet,
    "teach": teach,
    "teach-one-class": teach_one_class,
    "anchor-curve": anchor_curve,
    "correction-edit": correction_edit,
    "tag-cost": tag_cost,
    "tune": tune,
    "retrieval": retrieval,
    "calibrate": calibrate,
    "prune": prune,
    "performance": performance,
    "bulk": bulk,
    "bulk-1m": bulk_1m,
    "bulk-floor": bulk_floor,
    "edit-100k": edit_100k,
    "targets": targets,
    "tenants": tenants,
    "serve": serve,
    "layout": layout,
}


def render(text: str, where: str = "text") -> str:
    """``text`` with every generated region's body replaced by what its generator produces now."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in GENERATORS:
            raise SystemExit(f"{where}: unknown generated region {name!r}; known: {', '.join(GENERATORS)}")
        return f"{m.group(1)}{GENERATORS[name]().rstrip()}\n{m.group(4)}"

    return REGION_RE.sub(repl, text)


def regions(text: str) -> list[str]:
    return [m.group(2) for m in REGION_RE.finditer(text)]


def stale(pages: Iterable[Path] = PAGES) -> list[str]:
    """The pages whose generated regions differ from what the generators produce now."""
    return [str(p.relative_to(ROOT)) for p in pages if render(p.read_text(), str(p)) != p.read_text()]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for name in bad:
            print(f"{name}: generated tables are stale; run `make docs`", file=sys.stderr)
        return 1 if bad else 0
    for page in PAGES:
        text = page.read_text()
        new = render(text, str(page))
        if new != text:
            page.write_text(new)
            print(f"updated {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
