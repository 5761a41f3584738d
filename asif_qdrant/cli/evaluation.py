"""The evaluation tools: eval (and sweeps), the anchor curve, tune, retrieval recall, calibrate, and the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .context import open_store, tenant_option
from .output import emit, json_option

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


classes_map_option = click.option(
    "--classes-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="JSON object or two-column CSV/TSV: folder name (or label value) -> class name.")


out_option = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                          help="Also write the results as JSON to this file.")


def _write_out(out: Path | None, data: Any) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, default=str))


@click.command("eval")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--limit", type=int, default=None, help="Evaluate a class-balanced sample of N images.")
@click.option("--sweep", "sweep_specs", multiple=True, metavar="KEY=V1,V2,...",
              help="Sweep k, p, templates or aggregation (repeatable); keys not swept keep the label set's values.")
@click.option("--templates", default=None, help="Template sets to sweep, e.g. photo,plain (= --sweep templates=...).")
@click.option("--aggregation", default=None, help="Aggregations to sweep: max,mean (= --sweep aggregation=...).")
@classes_map_option
@out_option
@tenant_option
@json_option
@click.pass_context
def eval_cmd(ctx: click.Context, source: Path, labels_name: str, limit: int | None, sweep_specs: tuple[str, ...],
             templates: str | None, aggregation: str | None, classes_map: Path | None, out: Path | None,
             tenant: str | None, as_json: bool) -> None:
    """Evaluate a label set on labelled images (a folder per class, or a CSV/TSV/JSONL with columns image and
    label): top-1/top-5, per-class accuracy, confusions. With --sweep, --templates or --aggregation: top-1 of every
    combination, each image encoded once and the anchors queried once at the largest k.

    \b
    Example:
      asif eval ../shared/data/cifar10-test --labels cifar10 --limit 1000
      asif eval ../shared/data/cifar10-test --labels cifar10 --sweep k=200,800,3000 --sweep p=1,4,8 \\
          --templates photo,plain --aggregation max,mean --out sweep.json
    """
    from ..evaluation.evaluate import evaluate
    from ..evaluation.sweeps import parse_sweep, run_sweep

    specs = list(sweep_specs)
    specs += [f"templates={templates}"] if templates else []
    specs += [f"aggregation={aggregation}"] if aggregation else []
    axes = parse_sweep(specs) if specs else None
    asif = open_store(ctx)
    if axes is not None:
        rep: Any = run_sweep(asif, source, labels_name, axes, tenant=tenant, limit=limit, mapping=classes_map,
                             progress=not as_json)
    else:
        rep = evaluate(asif, source, labels_name, tenant=tenant, limit=limit, progress=not as_json,
                       mapping=classes_map)
    _write_out(out, rep.as_dict())
    emit(as_json, rep.as_dict(), rep.table)


@click.command("curve")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--anchors", "sizes", default="500,1000,2000,5000,10000,all", show_default=True,
              help="Anchor counts: nested random subsets of the anchors; 'all' = every anchor.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Random subsets per count (seeds 0..N-1).")
@click.option("--limit", type=int, default=None, help="Use a class-balanced sample of N images.")
@click.option("--k", type=int, default=None, help="k (default: the label set's).")
@click.option("--p", type=float, default=None, help="p (default: the label set's).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the curve (mean, min-max band, random guess) to this PNG.")
@classes_map_option
@out_option
@tenant_option
@json_option
@click.pass_context
def curve_cmd(ctx: click.Context, source: Path, labels_name: str, sizes: str, seeds: int, limit: int | None,
              k: int | None, p: float | None, plot: Path | None, classes_map: Path | None, out: Path | None,
              tenant: str | None, as_json: bool) -> None:
    """Accuracy against the number of anchor pairs: nested random subsets (one permutation per seed), restricted
    with a filter on the anchor queries (the store is not copied); mean and spread over seeds, and random guess.

    \b
    Example:
      asif curve ../shared/data/cifar10-test --labels cifar10 --anchors 500,1000,2000,5000,10000,all \\
          --seeds 3 --limit 2000 --plot curve.png
    """
    from ..evaluation.sweeps import anchor_curve, parse_sizes

    parsed = parse_sizes(sizes)
    asif = open_store(ctx)
    rep = anchor_curve(asif, source, labels_name, parsed, seeds, limit=limit, mapping=classes_map, tenant=tenant,
                       k=k, p=p, plot=plot, progress=not as_json)
    _write_out(out, rep.as_dict())
    emit(as_json, rep.as_dict(), rep.table)


@click.command("tune")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--val-fraction", type=float, default=0.5, show_default=True,
              help="Fraction of each class used to choose the settings; the rest only measures them.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the per-class split.")
@click.option("--sweep", "sweep_specs", multiple=True, metavar="KEY=V1,V2,...",
              help="Replace one axis of the grid (default k=200,400,800,1600,3000 p=1,2,4,8,16 "
                   "templates=photo,plain aggregation=max,mean).")
@click.option("--limit", type=int, default=None, help="Use a class-balanced sample of N images.")
@click.option("--dry-run", is_flag=True, help="Report, but do not store the choice.")
@classes_map_option
@out_option
@tenant_option
@json_option
@click.pass_context
def tune_cmd(ctx: click.Context, source: Path, labels_name: str, val_fraction: float, seed: int,
             sweep_specs: tuple[str, ...], limit: int | None, dry_run: bool, classes_map: Path | None,
             out: Path | None, tenant: str | None, as_json: bool) -> None:
    """Choose k, p, templates and aggregation of a label set on a validation split only, store the choice with the
    label set, and report default vs tuned accuracy on the test split (never seen while tuning).

    \b
    Example:
      asif tune ../shared/data/cifar10-test --labels cifar10 --val-fraction 0.5 --seed 0
      asif tune ../shared/data/cifar10-test --labels cifar10 --sweep k=400,800 --dry-run
    """
    from ..evaluation.sweeps import parse_sweep
    from ..evaluation.tune import tune

    axes = parse_sweep(sweep_specs)
    asif = open_store(ctx)
    rep = tune(asif, source, labels_name, val_fraction=val_fraction, seed=seed, sweeps=axes, mapping=classes_map,
               limit=limit, tenant=tenant, save=not dry_run, progress=not as_json)
    _write_out(out, rep.as_dict())
    emit(as_json, rep.as_dict(), lambda: rep.table() + ("\ndry run: the choice was not stored" if dry_run else ""))


@click.command("eval-retrieval")
@click.argument("captions_file", type=click.Path(path_type=Path))
@click.option("--holdout", type=int, required=True,
              help="Images held out: their pairs are excluded from the anchors and they (and their captions) are "
                   "the retrieval set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the held-out choice.")
@click.option("--k", type=int, default=None, help="Anchors kept per representation (default ASIF_K=800).")
@click.option("--p", type=float, default=None, help="Exponent (default ASIF_P=3).")
@out_option
@tenant_option
@json_option
@click.pass_context
def eval_retrieval_cmd(ctx: click.Context, captions_file: Path, holdout: int, seed: int, k: int | None,
                       p: float | None, out: Path | None, tenant: str | None, as_json: bool) -> None:
    """Image->caption and caption->image recall@1/5/10 on held-out images of a captions file, against the other
    anchors (the held-out images' anchor pairs, matched on image_ref, are excluded by a filter).

    \b
    Example:
      asif eval-retrieval ../shared/data/flickr8k/captions.tsv --holdout 1000 --seed 0
    """
    from ..evaluation.retrieval import recall_table, retrieval_recall

    asif = open_store(ctx)
    res = retrieval_recall(asif, captions_file, holdout, seed, k, p, tenant=tenant)
    _write_out(out, res)
    emit(as_json, res, lambda: recall_table(res))


@click.command("calibrate")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--target-precision", type=float, default=None,
              help="Choose the smallest tau whose answers reach this precision (0-1).")
@click.option("--target-coverage", type=float, default=None,
              help="Choose the largest tau that still answers this fraction of the images (0-1).")
@click.option("--tau", type=float, default=None, help="Evaluate this tau instead of choosing one (not stored).")
@click.option("--split", type=click.Choice(["heldout", "calibration", "all"]), default="heldout", show_default=True,
              help="Choose tau on a seeded 50/50 per-class calibration half and report on the held-out half (or on "
                   "the calibration half); 'all': choose and report on every image (optimistic).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the 50/50 split.")
@click.option("--limit", type=int, default=None, help="Use a class-balanced sample of N images.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the risk-coverage curve to this PNG.")
@click.option("--dry-run", is_flag=True, help="Choose and report tau, but do not store it.")
@tenant_option
@json_option
@click.pass_context
def calibrate_cmd(ctx: click.Context, folder: Path, labels_name: str, target_precision: float | None,
                  target_coverage: float | None, tau: float | None, split: str, seed: int,
                  limit: int | None, plot: Path | None, dry_run: bool, tenant: str | None, as_json: bool) -> None:
    """Choose the abstention threshold tau of a label set on a folder per class, and store it.

    Below tau, classify answers "unknown". Reports accuracy / unknown / wrong (fractions of all images).

    \b
    Example:
      asif calibrate ../shared/data/cifar10-test --labels cifar10 --target-precision 0.9 --plot risk.png
      asif calibrate ../shared/data/cifar10-test --labels cifar10 --target-coverage 0.7 --split heldout
    """
    from ..evaluation.calibrate import calibrate

    if target_precision is None and target_coverage is None and tau is None:
        raise click.UsageError("give --target-precision P or --target-coverage C (or --tau T to evaluate a tau)")
    asif = open_store(ctx)
    rep = calibrate(asif, folder, labels_name, target_precision=target_precision, target_coverage=target_coverage,
                    tau=tau, tenant=tenant, limit=limit, split=None if split == "all" else split,  # type: ignore[arg-type]
                    seed=seed, plot=plot, save=not dry_run, progress=not as_json)
    note = {"heldout": "tau chosen on a seeded 50/50 calibration half; the figures are on the held-out half "
                       "(--split all to use every image)",
            "calibration": "tau chosen and reported on the calibration half (optimistic; --split heldout is honest)",
            "all": "tau chosen and reported on the same images (optimistic; --split heldout is honest)"}[split]
    emit(as_json, rep.as_dict(), lambda: rep.table() + f"\n{note}" + (
        "\ndry run: tau not stored" if dry_run and tau is None else ""))


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="Folder with flickr8k/ (anchors) and cifar10-test/ (labelled images).")
@click.option("--eval-limit", type=int, default=1000, show_default=True, help="Images in the evaluation slice.")
@click.option("--seed", type=int, default=None, help="Seed of step 3's random sample (default: a new one each run).")
@click.pass_context
def demo(ctx: click.Context, data: Path, eval_limit: int, seed: int | None) -> None:
    """The main job: Flickr8k anchors -> CIFAR-10 zero-shot, on the embedded store.

    \b
    Example:
      asif demo --data ../shared/data --eval-limit 500
    """
    from ..evaluation.demo import run_demo

    run_demo(open_store(ctx, create=True), data, eval_limit, sample_seed=seed)


COMMANDS = [eval_cmd, curve_cmd, tune_cmd, eval_retrieval_cmd, calibrate_cmd, demo]
