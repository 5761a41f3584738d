"""Benchmark: ingest Flickr8k (8,091 images, 40,455 captions) with lite0 + MiniLM, then run it again.

    .venv/bin/python benchmarks/ingest_flickr.py                 # full run into benchmarks/cache/flickr-store
    .venv/bin/python benchmarks/ingest_flickr.py --limit 500 --store /tmp/flickr-500 --fresh

The store is created with the default settings (prefix ``asif_``, encoders timm:tf_efficientnet_lite0 and
st:all-MiniLM-L6-v2), so other benchmarks can reuse it. The second run must add nothing and encode nothing.
Prints a table and writes benchmarks/results/ingest_flickr.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("ASIF_SHARED_DATA", HERE.parents[1] / "shared" / "data")) / "flickr8k"
DEFAULT_STORE = HERE / "cache" / "flickr-store"
DEFAULT_OUT = HERE / "results" / "ingest_flickr.json"
COLUMNS = [
    ("run", "run", 6), ("rows", "rows", 7), ("added", "added", 7), ("duplicates", "dup", 7),
    ("skipped", "bad", 5), ("images_encoded", "img enc", 8), ("captions_encoded", "cap enc", 8),
    ("cache_hits", "cache", 7), ("seconds", "sec", 8), ("images_per_s", "img/s", 7),
    ("captions_per_s", "cap/s", 8), ("anchors_per_s", "anch/s", 8),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Flickr8k folder (captions.tsv + images/)")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, help="store folder (default: %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="ingest only the first N caption rows")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="delete the store folder first (a cold first run)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def prepare_store(store: Path, fresh: bool) -> bool:
    """Delete the store when asked (only a folder that looks like a store); return whether it starts empty."""
    if fresh and store.exists():
        if not (store / "collections").is_dir() and any(store.iterdir()):
            sys.exit(f"--fresh refuses to delete {store}: it does not look like an asif store (no collections/)")
        shutil.rmtree(store)
    return not store.exists()


def run_once(store: Path, args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Open the store with default settings, load the encoders (timed apart), ingest, close."""
    from asif_qdrant import Asif
    from asif_qdrant.ingest import ingest

    with Asif.open(store) as asif:
        t0 = time.perf_counter()
        asif.encoder("image"), asif.encoder("text")
        load_s = time.perf_counter() - t0
        rep = ingest(asif, args.data, batch_size=args.batch_size, progress=not args.no_progress, limit=args.limit)
        out = {"run": name, **rep.as_dict(), "encoder_load_s": round(load_s, 2), "count_after": asif.count()}
        out["settings"] = {
            "prefix": asif.settings.prefix,
            "image_encoder": asif.fingerprint.image_encoder,
            "text_encoder": asif.fingerprint.text_encoder,
        }
    return out


def table(runs: list[dict[str, Any]]) -> str:
    head = " ".join(f"{label:>{w}}" for _, label, w in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in runs:
        lines.append(" ".join(f"{r[key]!s:>{w}}" for key, _, w in COLUMNS))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data / "captions.tsv").is_file():
        sys.exit(f"no Flickr8k captions at {args.data / 'captions.tsv'}: pass --data FOLDER")
    started_empty = prepare_store(args.store, args.fresh)
    first = run_once(args.store, args, "first")
    second = run_once(args.store, args, "second")
    print(table([first, second]))
    result = {
        "benchmark": "ingest_flickr",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(args.data),
        "store": str(args.store),
        "limit": args.limit,
        "batch_size": args.batch_size,
        "store_started_empty": started_empty,
        "machine": machine(),
        "first_run": first,
        "second_run": second,
        "second_run_adds_and_encodes_nothing": second["added"] == 0
        and second["images_encoded"] == 0
        and second["captions_encoded"] == 0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
