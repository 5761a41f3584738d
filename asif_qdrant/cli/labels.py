"""`asif labels`: label sets (prompts, class x template, stored as a relative index) and their coverage."""

from __future__ import annotations

from typing import Any, cast

import click

from ..zeroshot import CORRECTIONS
from .context import AsifGroup, open_store, remote_client, tenant_option
from .output import emit, json_option


@click.group(cls=AsifGroup)
def labels() -> None:
    """Label sets: prompts (class x template) stored as a relative index."""


@labels.command("add")
@click.argument("name")
@click.option("--classes", required=True, help="A file with one class per line, or a,b,c.")
@click.option("--templates", default="photo", show_default=True, help="photo | plain | FILE (one per line).")
@click.option("--k", type=int, default=None, help="Anchors kept per representation (default ASIF_K=800).")
@click.option("--p", type=float, default=None, help="Exponent (default ASIF_P=3).")
@click.option("--aggregation", type=click.Choice(["max", "mean"]), default="max", show_default=True)
@click.option("--correction", type=click.Choice(list(CORRECTIONS)), default=None,
              help="Score correction by a reference sample of the anchor images (default ASIF_CORRECTION=none: "
                   "the paper's scores; docs/results.md).")
@click.option("--replace", is_flag=True, help="Redefine the label set if the name exists (else refused).")
@tenant_option
@json_option
@click.pass_context
def labels_add(ctx: click.Context, name: str, classes: str, templates: str, k: int | None, p: float | None,
               aggregation: str, correction: str | None, replace: bool, tenant: str | None, as_json: bool) -> None:
    """Define a label set (an existing name is refused without --replace).

    \b
    Example:
      asif labels add cifar10 --classes airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck
      asif labels add pets --classes pets.txt --templates plain --replace
    """
    client = remote_client(ctx)
    if client is not None:  # class and template files are read here; the server encodes the prompts
        from ..zeroshot import resolve_classes, resolve_templates

        info = client.define_labels(name, resolve_classes(classes), resolve_templates(templates), tenant=tenant,
                                    k=k, p=p, aggregation=cast(Any, aggregation), replace=replace,
                                    correction=cast(Any, correction))
    else:
        info = open_store(ctx, create=True).define_labels(name, classes, templates, tenant=tenant, k=k, p=p,
                                                          aggregation=aggregation, replace=replace,
                                                          correction=correction)
    emit(as_json, info.as_dict(), lambda: f"label set {info.name!r}: {len(info.classes)} classes x "
         f"{len(info.templates)} templates = {info.n_items} prompts (k={info.k}, p={info.p:g}, "
         f"correction={info.correction})")
    _coverage_warnings(info.coverage or [], name)


def _coverage_warnings(classes: list[dict[str, Any]], name: str) -> None:
    """One warning line (stderr) per class of a new label set that the anchors do not support."""
    from ..coverage import fix_for

    bad = [c for c in classes if c["verdict"] != "supported"]
    for c in bad[:10]:
        click.echo(f"warning: class {c['class']!r} is {c['verdict']} by the anchors (support {c['support']}): "
                   f"{fix_for(c['class'], c['verdict'])}", err=True)
    if len(bad) > 10:
        click.echo(f"warning: {len(bad) - 10} more classes are weak or unsupported: asif labels check {name}", err=True)


@labels.command("check")
@click.argument("name")
@tenant_option
@json_option
@click.pass_context
def labels_check(ctx: click.Context, name: str, tenant: str | None, as_json: bool) -> None:
    """How well the anchors support each class of a label set: support and verdict per class.

    \b
    Support: anchor pairs whose caption is close to the class's prompts (higher = better supported);
    verdict: supported / weak / unsupported, with the fix for the others.
    Example:
      asif labels check cifar10
      asif labels check pets --tenant acme --json
    """
    client = remote_client(ctx)
    cov = client.coverage(name, tenant) if client is not None else open_store(ctx).coverage(name, tenant)
    emit(as_json, cov.as_dict(), cov.table)


@labels.command("list")
@tenant_option
@json_option
@click.pass_context
def labels_list(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """List label sets (galleries: asif gallery list).

    \b
    Example:
      asif labels list --json
    """
    client = remote_client(ctx)
    infos = client.list_labels(tenant) if client else open_store(ctx).list_labels(tenant)
    emit(as_json, [i.as_dict() for i in infos], lambda: "\n".join(
        f"{i.name:<20} tenant={i.tenant:<10} classes={len(i.classes):<4} prompts={i.n_items:<6} k={i.k} p={i.p:g}"
        + (f" tau={i.tau:g}" if i.tau is not None else "") for i in infos) or "no label sets")


@labels.command("delete")
@click.argument("name")
@tenant_option
@json_option
@click.pass_context
def labels_delete(ctx: click.Context, name: str, tenant: str | None, as_json: bool) -> None:
    """Delete a label set (anchors are not touched).

    \b
    Example:
      asif labels delete pets
    """
    client = remote_client(ctx)
    info = client.delete_labels(name, tenant) if client else open_store(ctx).delete_labels(name, tenant)
    emit(as_json, {"deleted": info.name, "tenant": info.tenant, "kind": info.kind},
         lambda: f"deleted label set {info.name!r} (tenant {info.tenant})")


COMMANDS = [labels]
