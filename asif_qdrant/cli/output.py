"""How a command prints its results (text, or JSON with ``--json``) and writes the ``--out`` tables of
``classify`` and ``gallery add``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def emit(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    """Print ``data`` as JSON with --json, else the text that ``text`` makes (made only when printed)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text())


def check_out(out: Path | None) -> None:
    """Refuse an --out file name that is neither .csv nor .jsonl, or whose folder does not exist (before any
    image is read)."""
    if out is None:
        return
    if out.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise click.UsageError(f"--out {str(out)!r}: use a .csv or .jsonl file name")
    if not out.parent.exists():
        raise click.UsageError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")


def _write_table(out: Path, header: list[str], rows: list[dict[str, Any]],
                 csv_row: Callable[[dict[str, Any]], list[str]]) -> None:
    """``rows`` to ``out``: CSV with ``header`` (each row through ``csv_row``), or one JSON object per line."""
    import csv

    check_out(out)
    with open(out, "w", newline="", encoding="utf-8") as f:
        if out.suffix.lower() == ".csv":
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(csv_row(r) for r in rows)
        else:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    """One row per image to ``out``: CSV (path, label, score, top as label:score;...) or JSON lines, by suffix."""

    def csv_row(r: dict[str, Any]) -> list[str]:
        score = "" if r["score"] is None else f"{r['score']:.6f}"
        return [r["path"], r["label"] or "", score, ";".join(f"{t['label']}:{t['score']:.6f}" for t in r["top"])]

    _write_table(out, ["path", "label", "score", "top"], rows, csv_row)


def write_gallery_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    """One row per image given to ``gallery add``: path, item (the gallery item, as in a search hit's payload),
    status (added or skipped) and error (why it was skipped); CSV or JSON lines, by suffix."""
    _write_table(out, ["path", "item", "status", "error"], rows,
                 lambda r: [r["path"], "" if r["item"] is None else str(r["item"]), r["status"], r["error"] or ""])
