"""The main job: ingest Flickr8k anchors, define CIFAR-10 labels, classify a few images, evaluate a slice."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import NotFoundError

if TYPE_CHECKING:
    from ..asif import Asif

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def run_demo(asif: Asif, data: Path, eval_limit: int = 1000) -> None:
    from ..ingest import ingest
    from .evaluate import evaluate, read_folder_per_class

    flickr, cifar = data / "flickr8k", data / "cifar10-test"
    if not flickr.is_dir() or not cifar.is_dir():
        raise NotFoundError(
            f"demo data not found under {data} (need flickr8k/ with captions.tsv and images/, and cifar10-test/"
            "<class>/*.jpg): pass --data DIR, or ingest your own pairs with `asif ingest SOURCE` and evaluate "
            "with `asif labels add` + `asif eval DIR`"
        )
    t0 = time.time()
    click.echo(f"store: {asif.engine.description}")
    click.echo(f"1/4 ingest anchors from {flickr} (idempotent: a second run adds nothing)")
    report = ingest(asif, flickr, progress=True)
    click.echo("    " + report.summary().replace("\n", "\n    "))
    click.echo(f"    anchors in the store: {asif.count()}")
    click.echo("2/4 define the CIFAR-10 label set (10 classes x 8 photo templates)")
    existing = {i.name for i in asif.list_indexes(kind="labels")}
    if "cifar10" not in existing:
        asif.define_labels("cifar10", CIFAR10, "photo")
    info = asif.index_info("cifar10", "_shared", "labels")
    click.echo(f"    {info.n_items} prompts, k={info.k}, p={info.p:g}")
    click.echo("3/4 classify a handful of CIFAR-10 test images")
    sample = read_folder_per_class(cifar, limit=10, seed=7)
    preds = asif.classify(images=[str(p) for p in sample.paths], labels="cifar10", top=3)
    for path, truth, pred in zip(sample.paths, sample.labels, preds, strict=True):
        mark = "ok " if pred.label == truth else "   "
        tops = ", ".join(f"{s.label} {s.score:.3f}" for s in pred.top)
        click.echo(f"    {mark}{path.parent.name}/{path.name}: {pred.label or 'unknown'}  [{tops}]")
    click.echo(f"4/4 evaluate on a class-balanced slice of {eval_limit} CIFAR-10 test images")
    rep = evaluate(asif, cifar, "cifar10", limit=eval_limit)
    click.echo("    " + rep.table().replace("\n", "\n    "))
    click.echo(f"done in {time.time() - t0:.1f} s")
