"""`asif serve`: the HTTP JSON API, started on a store and encoders opened here first."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the HTTP JSON API (docs at /docs): one process owns the store and the warm encoders.

    \b
    API keys map to tenants: ASIF_API_KEYS="k-acme-123456=acme,k-admin-123456=@admin" (or ASIF_API_KEYS_FILE).
    Example:
      ASIF_API_KEYS=... asif serve --host 0.0.0.0 --port 8000
    """
    if ctx.find_root().get_parameter_source("server") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("asif serve starts a server: leave out --server")
    import socket

    from ..asif import Asif, make_settings
    from ..extras import missing_extra

    try:
        from ..serve import serve as run
    except ImportError as e:
        raise missing_extra(e, "serve", "asif serve") from e

    try:
        socket.getaddrinfo(host, port)
    except (OSError, UnicodeError) as e:
        raise click.BadParameter(f"{host!r} is not an address of this machine ({e}): use 127.0.0.1 or 0.0.0.0",
                                 param_hint="--host") from None
    settings = make_settings(None, **ctx.find_root().obj["opts"])
    # the store and the encoders open here, before the server starts: a locked store or a missing model is one
    # error line, not a traceback from the server's start-up
    asif = Asif.open(settings=settings)
    try:
        asif.encoder("image")
        asif.encoder("text")
        run(host, port, settings, asif=asif)
    finally:
        asif.close()


COMMANDS = [serve]
