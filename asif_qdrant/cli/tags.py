"""`asif tag` and `asif tags`: label-set tags in a payload field of the user's own collections, kept exact."""

from __future__ import annotations

from typing import Any

import click

from .context import AsifGroup, open_store, remote_client, tenant_option
from .output import emit, json_option


def point_id(raw: str) -> int | str:
    """A point id from the command line: an unsigned integer, or a UUID string."""
    return int(raw) if raw.isdigit() else raw


def _tag_text(t: Any) -> str:
    state = "  INTERRUPTED: run `asif tag ... --sync` to finish it" if t.pending else ""
    return (f"{t.collection}:{t.field}  labels {t.labels!r}  tenant {t.tenant}  {t.points} points  rev {t.rev}"
            f"{state}")


@click.command("tag")
@click.argument("collection")
@click.option("--field", required=True, help="The payload field that holds the tags (one top-level field).")
@click.option("--vector", default=None, help="The collection's dense image vector to tag by (named vector).")
@click.option("--labels", "labels_name", default=None, help="The label set.")
@click.option("--filter", "filter_json", default=None,
              help='A Qdrant filter selecting the points, as JSON: \'{"must": [{"key": "owner", "match": {"value": '
                   '"acme"}}]}\'.')
@click.option("--top", type=int, default=3, show_default=True, help="Labels kept in each tag's 'top'.")
@click.option("--replace", is_flag=True, help="Overwrite the field where it holds other data (else refused).")
@click.option("--sync", is_flag=True, help="Pick up points added or deleted since (and finish an interrupted run).")
@click.option("--ids", default=None, help="With --sync: re-tag these points (ids, comma-separated): vectors "
              "overwritten in place cannot be detected.")
@tenant_option
@json_option
@click.pass_context
def tag_cmd(ctx: click.Context, collection: str, field: str, vector: str | None, labels_name: str | None,
            filter_json: str | None, top: int, replace: bool, sync: bool, ids: str | None, tenant: str | None,
            as_json: bool) -> None:
    """Tag every point of COLLECTION with a label set, in one payload field, kept exact after every edit.

    \b
    Example:
      asif tag photos --vector image --labels cifar10 --field category
      asif tag photos --field category --sync
    """
    asif = remote_client(ctx) or open_store(ctx)  # the client takes the facade's arguments
    if sync:
        res = asif.sync_tags(field, tenant, collection=collection,
                             ids=[point_id(i) for i in ids.split(",")] if ids else None)
        emit(as_json, res, lambda: f"synced {collection}:{field}: {res['added']} added, {res['deleted']} deleted, "
             f"{res['rewritten']} tags rewritten, {res['points']} points")
        return
    if vector is None or labels_name is None:
        raise click.UsageError("tag needs --vector and --labels (or --sync for an existing tagging)")
    info = asif.tag(collection, vector=vector, labels=labels_name, field=field, tenant=tenant, filter=filter_json,
                    top=top, replace=replace)
    emit(as_json, info.as_dict(), lambda: "tagged " + _tag_text(info))


@click.group(cls=AsifGroup)
def tags() -> None:
    """The taggings of the user's collections (asif tag COLLECTION ... creates one)."""


@tags.command("list")
@tenant_option
@json_option
@click.pass_context
def tags_list(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """The tenant's taggings.

    \b
    Example:
      asif tags list --tenant acme
    """
    infos = (remote_client(ctx) or open_store(ctx)).list_tags(tenant)
    emit(as_json, [i.as_dict() for i in infos],
         lambda: "\n".join(_tag_text(i) for i in infos) or "no tagging (asif tag COLLECTION ... creates one)")


@tags.command("delete")
@click.argument("field")
@click.option("--collection", default=None, help="The collection (when the field is tagged in several).")
@tenant_option
@json_option
@click.pass_context
def tags_delete(ctx: click.Context, field: str, collection: str | None, tenant: str | None, as_json: bool) -> None:
    """Remove a tagging: FIELD leaves every point it tagged (the points' other data stays).

    \b
    Example:
      asif tags delete category --collection photos
    """
    info = (remote_client(ctx) or open_store(ctx)).delete_tags(field, tenant, collection=collection)
    emit(as_json, info.as_dict(), lambda: f"deleted the tags {info.collection}:{info.field} ({info.points} points)")


COMMANDS = [tag_cmd, tags]
