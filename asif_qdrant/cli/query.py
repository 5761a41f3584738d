"""The questions asked of a model: classify images with a label set, search a gallery with text, explain a
decision."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from .context import open_store, remote_client, tenant_option
from .images import image_files, no_progress_option, on_error_option, progress_wanted, report_skipped
from .output import check_out, emit, json_option, write_rows
from .tags import point_id

if TYPE_CHECKING:
    from ..asif import Asif
    from ..relindex import Kind


def _check_scope(asif: Asif, index: str, tenant: str | None, kind: Kind = "labels") -> None:
    """Refuse a label set or gallery that does not exist (a misspelt name: before any model loads) or a model
    with no anchor in the tenant's scope; warn when the index's k exceeds the anchors in it."""
    from ..meta import validate_tenant

    asif.index_info(index, validate_tenant(tenant), kind)
    scope = asif.count() + (asif.count(tenant) if tenant not in (None, "_shared") else 0)
    who = f"tenant {tenant!r}" if tenant else "the shared anchors"
    if scope == 0:
        raise click.ClickException(f"the store has no anchor pairs for {who}: every answer would be 'unknown'. "
                                   "Add pairs first (asif ingest FOLDER, asif add, asif teach)")
    info = next((i for i in asif.list_indexes(tenant) if i.name == index), None)
    if info is not None and info.k > scope:
        click.echo(f"warning: k={info.k} of {info.kind} {index!r} exceeds the {scope} anchor pair(s) in scope of "
                   f"{who}: every pair is used (add pairs, or redefine it with a smaller --k)", err=True)


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--top", type=int, default=5, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write one row per image (path, label, score, top-k) to this .csv or .jsonl file.")
@on_error_option
@no_progress_option
@tenant_option
@json_option
@click.pass_context
def classify(ctx: click.Context, images: tuple[str, ...], labels_name: str, top: int, out: Path | None,
             on_error: str, no_progress: bool, tenant: str | None, as_json: bool) -> None:
    """Zero-shot classify images with a label set. IMAGES: files, folders (searched recursively) and globs.

    \b
    Example:
      asif classify cat.jpg dog.jpg --labels cifar10 --top 3
      asif classify photos/ 'more/*.jpg' --labels cifar10 --on-error skip --out predictions.csv
    """
    check_out(out)
    client = remote_client(ctx)
    if client is not None:  # uploads: the server decodes and encodes with its warm encoder
        from .remote import classify_files

        kept, preds, skipped = classify_files(client, image_files(images, on_error), labels_name, top, tenant,
                                              on_error)
    else:
        from ..ingest import encode_image_files

        asif = open_store(ctx)
        _check_scope(asif, labels_name, tenant)
        enc = encode_image_files(asif, image_files(images, on_error), on_error=cast(Any, on_error),
                                 progress=progress_wanted(no_progress, as_json), desc="classify")
        kept, skipped = enc.paths, enc.skipped
        preds = asif.classify(vectors=enc.vectors, labels=labels_name, top=top, tenant=tenant) if kept else []
    report_skipped(skipped)
    data = [{"image": str(i), **p.as_dict()} for i, p in zip(kept, preds, strict=True)]
    if out is not None:
        write_rows(out, [{"path": d["image"], "label": d["label"], "score": d["top"][0]["score"] if d["top"] else None,
                          "top": [{"label": t["label"], "score": t["score"]} for t in d["top"]]} for d in data])

    def text() -> str:
        lines = []
        for d in data:
            tops = ", ".join(f"{t['label']} {t['score']:.4f}" for t in d["top"]) or "no shared anchor"
            lines.append(f"{d['image']}: {d['label'] or 'unknown'}   [{tops}]")
        if out is not None:
            lines.append(f"wrote {len(data)} row(s) to {out}")
        return "\n".join(lines)

    if out is not None and not as_json:
        click.echo(f"classified {len(data)} image(s) ({len(skipped)} skipped); wrote {out}")
    else:
        emit(as_json, data, text)


@click.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--gallery", "gallery_name", required=True, help="Gallery name.")
@click.option("--top", type=int, default=10, show_default=True)
@tenant_option
@json_option
@click.pass_context
def search(ctx: click.Context, text: tuple[str, ...], gallery_name: str, top: int, tenant: str | None,
           as_json: bool) -> None:
    """Search a gallery with text: the words are one query (quotes optional).

    \b
    Example:
      asif search a dog on a beach --gallery holiday --top 5
    """
    query = " ".join(text).strip()
    if not query:
        raise click.UsageError("the query is empty: give some words, e.g. asif search a dog on a beach --gallery G")
    client = remote_client(ctx)
    if client is not None:
        res = client.search(gallery_name, texts=[query], top=top, tenant=tenant)
    else:
        asif = open_store(ctx)
        _check_scope(asif, gallery_name, tenant, "gallery")
        res = asif.search(text=[query], gallery=gallery_name, top=top, tenant=tenant)
    data = [{"query": query, "hits": [h.as_dict() for h in hits]} for hits in res]
    emit(as_json, data, lambda: "\n".join(
        f"{query!r}:\n" + ("\n".join(f"  {h.score:.4f}  {h.payload.get('image_ref', h.id)}" for h in hits)
                           or "  no result shares an anchor with the query")
        for hits in res))


@click.command("explain")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--labels", "labels_name", default=None, help="Label set name.")
@click.option("--tag", "tag_field", default=None, help="Explain the stored tag of --point in this field instead.")
@click.option("--point", default=None, help="With --tag: the tagged point's id.")
@click.option("--collection", default=None, help="With --tag: the collection (when the field is tagged in several).")
@click.option("--label", default=None, help="Explain this label instead of the predicted one.")
@click.option("--top", type=int, default=10, show_default=True, help="Anchor pairs shown per label.")
@click.option("--n-labels", type=int, default=None,
              help="How many labels of the ranking to explain (default: 1; 3 with --html).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML report (thumbnails embedded) to this file.")
@click.option("--image-root", "image_roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder that relative anchor image paths are relative to (repeatable), e.g. the ingested one.")
@tenant_option
@json_option
@click.pass_context
def explain_cmd(ctx: click.Context, image: Path | None, labels_name: str | None, tag_field: str | None,
                point: str | None, collection: str | None, label: str | None, top: int,
                n_labels: int | None, html_path: Path | None, image_roots: tuple[Path, ...], tenant: str | None,
                as_json: bool) -> None:
    """Explain a classification: the score, the best prompt and the anchor pairs that contribute most.

    \b
    Example:
      asif explain dog.jpg --labels cifar10 --top 5
      asif explain dog.jpg --labels cifar10 --label cat --html report.html --image-root ../shared/data/flickr8k/images

    The report finds anchor pictures through the folders that `asif ingest` recorded, and --image-root.
    """
    if tag_field is not None:
        if point is None:
            raise click.UsageError("--tag needs --point ID (the tagged point)")
        store: Any = remote_client(ctx) or open_store(ctx)  # the client takes the facade's arguments
        ex = store.explain_tag(tag_field, point_id(point), tenant, collection=collection, top=top)
        emit(as_json, ex.as_dict(), ex.text)
        return
    if image is None or labels_name is None:
        raise click.UsageError("explain needs IMAGE and --labels (or --tag FIELD --point ID)")
    n = n_labels if n_labels is not None else (3 if html_path else 1)
    client = remote_client(ctx)
    if client is not None:  # the image is uploaded; the server renders the report with the pictures it holds
        args: dict[str, Any] = {"image": (str(image), image.read_bytes()), "label": label, "top": top,
                                "n_labels": n, "tenant": tenant}
        ex = client.explain(labels_name, **args)
        ex.image = str(image)
        if html_path is not None:
            html_path.write_text(client.explain_html(labels_name, **args), encoding="utf-8")
            if image_roots:
                click.echo("warning: --image-root is ignored with --server: the server finds anchor pictures "
                           "under its own roots", err=True)
    else:
        from ..evaluation.report import missing_pictures_message, write_report

        asif = open_store(ctx)
        ex = asif.explain(image=str(image), labels=labels_name, label=label, top=top, tenant=tenant, n_labels=n)
        if html_path is not None:
            write_report(ex, html_path, str(image), image_roots=image_roots)
            warn = missing_pictures_message(ex, image_roots)
            if warn:
                click.echo(f"warning: {warn}", err=True)
    data = {**ex.as_dict(), "html": str(html_path) if html_path else None}
    emit(as_json, data, lambda: ex.text() + (f"\nreport: {html_path}" if html_path else ""))


COMMANDS = [classify, search, explain_cmd]
