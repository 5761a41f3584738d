"""What a command works on: the embedded store, or the client of a running server (``--server``); and library
errors as one-line CLI errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import click

from ..errors import AsifError

if TYPE_CHECKING:  # the facade and the client are imported by the commands that use them: a fast start-up
    from ..asif import Asif
    from ..client import AsifClient


class AsifGroup(click.Group):
    """Turns library errors into clean one-line CLI errors (exit code 1, no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AsifError as e:
            raise click.ClickException(str(e)) from None


# commands that only read: on a collection attached with ASIF_ANCHORS_COLLECTION they apply no migration (they
# never write into the user's collection or create collections); `asif migrate` is the step that changes it
READ_ONLY = frozenset({"stats", "classify", "search", "explain", "eval", "curve", "labels list", "gallery list",
                       "tenants list", "tenants stats"})


def open_store(ctx: click.Context, migrate: bool = True, create: bool = False) -> Asif:
    """The store of the command line. Only commands that write (ingest, add, teach, labels add, ...) pass
    ``create=True``: the others refuse an embedded store path that does not exist. With --server, a command that
    gets here has no HTTP equivalent: refused, before anything is read or loaded."""
    obj = ctx.find_root().obj
    if obj.get("server"):
        from .remote import no_http_equivalent

        raise no_http_equivalent(ctx.command_path.split(" ", 1)[-1])
    if obj.get("asif") is None:
        from ..asif import Asif, make_settings

        command = " ".join(ctx.command_path.split()[1:])
        if migrate and command in READ_ONLY and make_settings(**obj["opts"]).anchors_collection is not None:
            migrate = False
        asif = Asif.open(migrate=migrate, create=create, **obj["opts"])
        obj["asif"] = asif
        ctx.find_root().call_on_close(asif.close)
    return obj["asif"]


def remote_client(ctx: click.Context) -> AsifClient | None:
    """The client of the running server given by --server (ASIF_SERVER), or None for the embedded store."""
    obj = ctx.find_root().obj
    if not obj.get("server"):
        return None
    if obj.get("client") is None:
        from .remote import connect

        obj["client"] = connect(obj["server"], obj.get("server_key"))
        ctx.find_root().call_on_close(obj["client"].close)
    return cast("AsifClient", obj["client"])


tenant_option = click.option("--tenant", default=None, help="Tenant (default: the shared anchors).")
