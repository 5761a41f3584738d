"""`asif gallery`: galleries, images stored as a relative index for text-to-image search."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click

from .context import AsifGroup, open_store, remote_client, tenant_option
from .images import image_files, no_progress_option, on_error_option, progress_wanted, report_skipped
from .output import check_out, emit, json_option, write_gallery_rows


@click.group(cls=AsifGroup)
def gallery() -> None:
    """Galleries: images stored as a relative index, for text-to-image search."""


@gallery.command("add")
@click.argument("name")
@click.argument("sources", nargs=-1, required=True)
@on_error_option
@no_progress_option
@click.option("--replace", is_flag=True, help="Rebuild the gallery if the name exists (else refused).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write one row per image (path, item, status added/skipped, error) to this .csv or .jsonl file.")
@tenant_option
@json_option
@click.pass_context
def gallery_add(ctx: click.Context, name: str, sources: tuple[str, ...], on_error: str, no_progress: bool,
                replace: bool, out: Path | None, tenant: str | None, as_json: bool) -> None:
    """Build a gallery from images: files, folders (searched recursively), globs, or a .txt file listing paths.
    An existing name is refused without --replace.

    \b
    Example:
      asif gallery add holiday ~/Pictures/holiday
      asif gallery add holiday 'trip/*.jpg' --on-error skip --out holiday.csv
    """
    if ctx.find_root().obj.get("server"):
        from .remote import no_http_equivalent

        raise no_http_equivalent("gallery add", " for image files (the API builds a gallery from vectors: "
                                 "PUT /v1/galleries/NAME, AsifClient.define_gallery)")
    from ..ingest import encode_image_files

    check_out(out)

    specs: list[str] = []
    for src in sources:
        p = Path(src)
        if p.is_file() and p.suffix.lower() == ".txt":
            specs += [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        else:
            specs.append(src)
    paths = image_files(tuple(specs), on_error)
    asif = open_store(ctx, create=True)
    if not replace:
        asif.check_name_free(name, tenant, "gallery")  # refuse before encoding anything
    enc = encode_image_files(asif, paths, on_error=cast(Any, on_error),
                             progress=progress_wanted(no_progress, as_json), desc="gallery")
    report_skipped(enc.skipped)
    if not enc.paths:
        raise click.ClickException("none of the images could be read: see the warnings above")
    info = asif.add_gallery(name, vectors=enc.vectors, payloads=[{"image_ref": str(p)} for p in enc.paths],
                            tenant=tenant, replace=replace)
    if out is not None:
        item = {str(p): i for i, p in enumerate(enc.paths)}
        why = dict(enc.skipped)
        write_gallery_rows(out, [{"path": str(p), "item": item.get(str(p)),
                                  "status": "added" if str(p) in item else "skipped", "error": why.get(str(p))}
                                 for p in paths])
    emit(as_json, {**info.as_dict(), "skipped": [s for s, _ in enc.skipped], "out": str(out) if out else None},
         lambda: f"gallery {info.name!r}: {info.n_items} images (k={info.k}, p={info.p:g})"
         + (f"; {len(enc.skipped)} skipped" if enc.skipped else "") + (f"; wrote {out}" if out else ""))


@gallery.command("list")
@tenant_option
@json_option
@click.pass_context
def gallery_list(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """List galleries.

    \b
    Example:
      asif gallery list
    """
    client = remote_client(ctx)
    infos = client.list_galleries(tenant) if client else open_store(ctx).list_galleries(tenant)
    emit(as_json, [i.as_dict() for i in infos], lambda: "\n".join(
        f"{i.name:<20} tenant={i.tenant:<10} images={i.n_items:<6} k={i.k} p={i.p:g}" for i in infos)
        or "no galleries")


@gallery.command("delete")
@click.argument("name")
@tenant_option
@json_option
@click.pass_context
def gallery_delete(ctx: click.Context, name: str, tenant: str | None, as_json: bool) -> None:
    """Delete a gallery (anchors are not touched).

    \b
    Example:
      asif gallery delete holiday
    """
    client = remote_client(ctx)
    info = client.delete_gallery(name, tenant) if client else open_store(ctx).delete_gallery(name, tenant)
    emit(as_json, {"deleted": info.name, "tenant": info.tenant, "kind": info.kind},
         lambda: f"deleted gallery {info.name!r} (tenant {info.tenant})")


COMMANDS = [gallery]
