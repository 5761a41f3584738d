"""The anchor pairs: ingest, add, delete, teach by example, and prune into a smaller anchor set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click

from .context import open_store, remote_client, tenant_option
from .output import emit, json_option


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--captions", "captions_file", type=click.Path(path_type=Path), default=None,
              help="Captions file (TSV/CSV/JSONL) when SOURCE is a folder with several.")
@tenant_option
@click.option("--image-encoder", default=None, help="Image encoder (must match the store's).")
@click.option("--text-encoder", default=None, help="Text encoder (must match the store's).")
@click.option("--on-error", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
              help="What to do with bad rows (missing/corrupt images, empty captions).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Images per batch.")
@click.option("--limit", type=int, default=None, help="Ingest only the first N caption rows.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--no-cache", is_flag=True, help="Do not use the embedding cache.")
@json_option
@click.pass_context
def ingest(ctx: click.Context, source: Path, captions_file: Path | None, tenant: str | None,
           image_encoder: str | None, text_encoder: str | None, on_error: str, batch_size: int,
           limit: int | None, no_progress: bool, no_cache: bool, as_json: bool) -> None:
    """Add image-caption anchor pairs: a folder of images with a captions file (TSV/CSV/JSONL with columns
    image, caption and optional tenant and payload columns), a captions file whose image column holds paths,
    or your own vectors (.npz with image_vectors, text_vectors, captions).

    Idempotent: running it again adds nothing; an interrupted run resumes.

    \b
    Example:
      asif ingest ../shared/data/flickr8k --tenant acme
      asif ingest pairs.npz
    """
    from .. import ingest as _ingest

    obj = ctx.find_root().obj
    if image_encoder or text_encoder:
        obj["opts"].update({"image_encoder": image_encoder, "text_encoder": text_encoder})
    asif = open_store(ctx, create=True)
    if source.suffix.lower() in (".npz", ".parquet"):
        report = _ingest.ingest_vectors(asif, source, tenant=tenant)
    else:
        report = _ingest.ingest(asif, source, tenant=tenant, on_error=cast(Any, on_error), batch_size=batch_size,
                                limit=limit,
                                progress=not (as_json or no_progress), captions_file=captions_file,
                                cache=not no_cache)
    emit(as_json, report.as_dict(), report.summary)


@click.command()
@click.argument("pairs", nargs=-1, required=True)
@tenant_option
@json_option
@click.pass_context
def add(ctx: click.Context, pairs: tuple[str, ...], tenant: str | None, as_json: bool) -> None:
    """Add anchor pairs given as IMAGE CAPTION [IMAGE CAPTION ...]; the model changes at once.

    \b
    Example:
      asif add cat1.jpg "a cat sleeping on a sofa" cat2.jpg "a kitten" --tenant acme
    """
    if len(pairs) % 2:
        raise click.UsageError("give pairs: IMAGE CAPTION [IMAGE CAPTION ...] (an odd number of arguments was given)")
    client = remote_client(ctx)
    if client is not None:  # the server encodes the uploaded images and the captions
        res = client.add_images([Path(p) for p in pairs[0::2]], list(pairs[1::2]), tenant=tenant)
    else:
        from ..ingest import add_pairs

        res = add_pairs(open_store(ctx, create=True), list(pairs[0::2]), list(pairs[1::2]), tenant=tenant)
    emit(as_json, {"ids": res.ids, "added": res.added, "duplicates": res.duplicates,
                   "items_touched": res.items_touched},
         lambda: f"added {res.added} anchor(s) ({res.duplicates} already stored): ids {res.ids}; "
         + _touched(res.items_touched))


@click.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@tenant_option
@json_option
@click.pass_context
def delete(ctx: click.Context, ids: tuple[int, ...], tenant: str | None, as_json: bool) -> None:
    """Delete anchors by id (only the tenant's own).

    \b
    Example:
      asif delete 123456 987654 --tenant acme
    """
    client = remote_client(ctx)
    res = (client.delete_anchors(list(ids), tenant=tenant) if client
           else open_store(ctx).delete(list(ids), tenant=tenant))
    missing = [i for i in dict.fromkeys(ids) if i not in set(res.deleted)]
    who = f"tenant {tenant!r}" if tenant else "the shared anchors"
    emit(as_json, {"deleted": res.deleted, "not_found": missing, "items_touched": res.items_touched},
         lambda: f"deleted {len(res.deleted)} anchor(s); " + _touched(res.items_touched)
         + (f"\nnot found among {who}: {', '.join(map(str, missing))} (see the ids in `asif explain` or --json "
            "output)" if missing else ""))


def _touched(touched: dict[str, int]) -> str:
    if not touched:
        return "no label set or gallery to update"
    return "relative-index items updated: " + ", ".join(f"{k} {v}" for k, v in touched.items())


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--tenant", required=True, help="The tenant that learns the examples (its own anchor pairs).")
@click.option("--template", default="a photo of a {}.", show_default=True,
              help="The caption of each example; {} is the class (its folder name).")
@click.option("--per-class", type=click.IntRange(min=1), default=None, help="Teach only the first N images per class.")
@json_option
@click.pass_context
def teach(ctx: click.Context, folder: Path, tenant: str, template: str, per_class: int | None, as_json: bool) -> None:
    """Teach by example: each image of FOLDER/<class>/ becomes an anchor pair of the tenant, paired with the
    template filled with its class. The model changes at once, without training; a few examples per class
    lift zero-shot accuracy a lot (see the README). Teach every class of the label set.

    \b
    Example:
      asif teach examples/ --tenant acme
      asif teach examples/ --tenant acme --template "a photo of a {}, a type of pet." --per-class 5
    """
    asif = open_store(ctx, create=True)
    rep = asif.teach(folder, tenant=tenant, template=template, per_class=per_class)
    emit(as_json, rep.as_dict(), rep.summary)


@click.command()
@click.option("--labels", "labels_name", required=True, help="The label set to specialise the anchors for.")
@click.option("--keep", type=click.IntRange(min=1), required=True, help="How many anchors to keep.")
@click.option("--into", "into_tenant", default=None, help="Copy the kept anchors into this new tenant.")
@click.option("--into-prefix", default=None, help="Copy them into a new store under this collection prefix.")
@click.option("--criterion", type=click.Choice(["label_weight", "image_contribution"]), default="label_weight",
              show_default=True, help="How anchors are ranked (image_contribution needs --sample).")
@click.option("--sample", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder of unlabelled images (for --criterion image_contribution).")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Images sampled from --sample.")
@tenant_option
@json_option
@click.pass_context
def prune(ctx: click.Context, labels_name: str, keep: int, into_tenant: str | None, into_prefix: str | None,
          criterion: str, sample: Path | None, limit: int, tenant: str | None, as_json: bool) -> None:
    """Keep the anchors that matter most for a label set, as a new anchor set (the original is not touched).

    \b
    Example:
      asif prune --labels cifar10 --keep 2000 --into-prefix cifar_
      asif --prefix cifar_ classify photo.jpg --labels cifar10
    """
    from ..evaluation.prune import prune as prune_anchors
    from ..evaluation.prune import sample_image_vectors

    if (into_tenant is None) == (into_prefix is None):
        raise click.UsageError("give exactly one of --into TENANT and --into-prefix PREFIX")
    if criterion == "image_contribution" and sample is None:
        raise click.UsageError("--criterion image_contribution needs --sample DIR (a folder of images)")
    asif = open_store(ctx)
    vecs = sample_image_vectors(asif, sample, limit) if sample is not None else None
    rep = prune_anchors(asif, labels_name, keep, into_tenant=into_tenant, into_prefix=into_prefix,
                        criterion=criterion, sample_vectors=vecs, tenant=tenant)
    data = {k: v for k, v in rep.as_dict().items() if k not in ("ids", "target_ids", "scores")}
    emit(as_json, {**data, "ids": rep.target_ids}, rep.summary)


COMMANDS = [ingest, add, delete, teach, prune]
