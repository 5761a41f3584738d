"""The `asif` command: a thin layer over the library, one module per command group. User mistakes become one-line
errors.

The groups: ``anchors`` (ingest, add, delete, teach, prune), ``labels``, ``galleries``, ``query`` (classify,
search, explain), ``tags`` (tag, tags), ``evaluation`` (eval, curve, tune, eval-retrieval, calibrate, demo),
``admin`` (migrate, doctor, refresh, optimize, stats, encoders, tenants) and ``serve``. Shared by them: ``context``
(the embedded store or the server's client), ``output`` (text or --json, the --out tables), ``images`` (the image
arguments). ``remote`` is the ``--server`` half, imported only when a server is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import __version__
from . import admin, anchors, evaluation, galleries, labels, query, serve, tags
from .context import AsifGroup
from .output import check_out, write_gallery_rows, write_rows

__all__ = ["check_out", "main", "quiet_libraries", "write_gallery_rows", "write_rows"]


def quiet_libraries() -> None:
    """Silence the model libraries' own output (transformers' "Loading weights" bar, hub progress bars, their
    warnings): asif prints its own progress. ``asif -v`` keeps them."""
    import logging
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", module=r"(transformers|timm|torch|sentence_transformers|huggingface_hub)")
    for name in ("transformers", "sentence_transformers", "timm", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()


@click.group(cls=AsifGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--path", type=click.Path(path_type=Path), default=None, help="Embedded store folder (ASIF_PATH).")
@click.option("--url", default=None, help="Qdrant server URL (ASIF_URL); overrides --path.")
@click.option("--api-key", default=None, help="Qdrant API key (ASIF_API_KEY).")
@click.option("--prefix", default=None, help="Collection name prefix (ASIF_PREFIX).")
@click.option("--server", envvar="ASIF_SERVER", default=None, metavar="URL",
              help="Use a running `asif serve` at URL (ASIF_SERVER) instead of opening the store: no model loads "
                   "here. Commands without an HTTP equivalent refuse it.")
@click.option("--server-key", envvar="ASIF_SERVER_KEY", default=None, metavar="KEY",
              help="API key for --server (ASIF_SERVER_KEY; prefer the variable: a command line is visible to others).")
@click.option("-v", "--verbose", is_flag=True, help="Show the libraries' progress bars and warnings (model loading).")
@click.version_option(version=__version__, prog_name="asif")
@click.pass_context
def main(ctx: click.Context, path: Path | None, url: str | None, api_key: str | None, prefix: str | None,
         server: str | None, server_key: str | None, verbose: bool) -> None:
    """asif: zero-shot image classification and retrieval from two frozen encoders and image-caption pairs.

    \b
    Example:
      asif ingest ../shared/data/flickr8k
      asif labels add cifar10 --classes airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck
      asif classify photo.jpg --labels cifar10
    """
    if not verbose:
        quiet_libraries()
    ctx.ensure_object(dict)
    ctx.obj["opts"] = {"path": path, "url": url, "api_key": api_key, "prefix": prefix}
    ctx.obj["asif"] = None
    ctx.obj["server"], ctx.obj["server_key"], ctx.obj["client"] = server, server_key, None


for _group in (admin, anchors, labels, galleries, query, tags, evaluation, serve):
    for _command in _group.COMMANDS:
        main.add_command(_command)
del _group, _command
