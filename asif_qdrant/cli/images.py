"""The image arguments of ``classify`` and ``gallery add``: files, folders and globs, ``--on-error``, the progress
bar, and the warnings for the images skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import click

on_error_option = click.option("--on-error", type=click.Choice(["skip", "fail"]), default="fail", show_default=True,
                               help="What to do with a missing or corrupt image: skip it (with a warning) or stop.")
no_progress_option = click.option("--no-progress", is_flag=True,
                                  help="No progress bar (it is off anyway when stderr is not a terminal).")


def progress_wanted(no_progress: bool, as_json: bool) -> bool:
    """A progress bar only on a terminal, and neither with --no-progress nor with --json."""
    return not (no_progress or as_json) and sys.stderr.isatty()


def image_files(specs: tuple[str, ...], on_error: str) -> list[Path]:
    """The image files named by files, folders and globs; a spec that names none is an error (--on-error fail) or
    a warning (skip)."""
    from ..readers import expand_images

    paths, bad = expand_images(specs)
    for spec, why in bad:
        if on_error == "fail":
            raise click.ClickException(f"{spec!r}: {why}; give image files, folders or globs such as 'photos/*.jpg'"
                                       " (or --on-error skip)")
        click.echo(f"warning: skipped {spec!r}: {why}", err=True)
    if not paths:
        raise click.ClickException("no images to read: give image files, folders or globs such as 'photos/*.jpg'")
    return paths


def report_skipped(skipped: list[tuple[str, str]]) -> None:
    """One warning line (stderr) per image skipped, the first ten of them."""
    for _, why in skipped[:10]:
        click.echo(f"warning: skipped {why}", err=True)
    if len(skipped) > 10:
        click.echo(f"warning: ... and {len(skipped) - 10} more unreadable image(s)", err=True)
