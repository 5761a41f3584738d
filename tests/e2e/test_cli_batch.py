"""Folders in, files out: classify and gallery add take files, folders and globs, skip or stop at a corrupt
image, and classify writes one row per image to CSV or JSON lines."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA

from asif_qdrant import Asif
from asif_qdrant.cli import main
from asif_qdrant.ingest import add_pairs

CIFAR = SHARED_DATA / "cifar10-test"
pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not CIFAR.is_dir():
        pytest.skip(f"CIFAR-10 images not found at {CIFAR}")
    tmp = tmp_path_factory.mktemp("batch")
    store = tmp / "s"
    with Asif.open(store) as a:
        add_pairs(a, [CIFAR / c / f"{i:04d}.jpg" for c in ("cat", "ship") for i in (10, 11)],
                    ["a cat on a sofa", "a kitten", "a ship at sea", "a boat in a harbour"])
        a.define_labels("two", ["cat", "ship"])
    photos = tmp / "photos"
    for c in ("cat", "ship"):
        (photos / c).mkdir(parents=True)
        for i in range(2):
            shutil.copy(CIFAR / c / f"{i:04d}.jpg", photos / c / f"{i}.jpg")
    (photos / "broken.jpg").write_bytes(b"this is not a jpeg")
    return store, photos


def run(store: Path, *args: str):
    return CliRunner().invoke(main, ["--path", str(store), *args], catch_exceptions=False)


def test_classify_folder_stops_at_a_corrupt_image_by_default(world: tuple[Path, Path]) -> None:
    store, photos = world
    r = CliRunner().invoke(main, ["--path", str(store), "classify", str(photos), "--labels", "two"])
    assert r.exit_code == 1 and "broken.jpg" in r.output and "--on-error skip" in r.output
    assert "Traceback" not in r.output


def test_classify_folder_to_csv_matches_the_api(world: tuple[Path, Path], tmp_path: Path) -> None:
    store, photos = world
    out = tmp_path / "preds.csv"
    r = run(store, "classify", str(photos), "--labels", "two", "--top", "2", "--on-error", "skip", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "skipped" in r.stderr and "broken.jpg" in r.stderr
    assert "classified 4 image(s) (1 skipped)" in r.stdout
    rows = list(csv.DictReader(out.open()))
    files = sorted(p for p in photos.rglob("*.jpg") if p.name != "broken.jpg")
    assert [r["path"] for r in rows] == [str(p) for p in files]
    with Asif.open(store) as a:
        ref = a.classify(images=files, labels="two", top=2)
    assert [r["label"] for r in rows] == [p.label for p in ref]
    for row, p in zip(rows, ref, strict=True):
        assert float(row["score"]) == pytest.approx(p.top[0].score, abs=1e-5)
        assert row["top"] == ";".join(f"{t.label}:{t.score:.6f}" for t in p.top)


def test_classify_glob_to_jsonl_and_bad_out(world: tuple[Path, Path], tmp_path: Path) -> None:
    store, photos = world
    out = tmp_path / "preds.jsonl"
    r = run(store, "classify", str(photos / "cat" / "*.jpg"), "--labels", "two", "--out", str(out))
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["path"] for x in lines] == [str(photos / "cat" / "0.jpg"), str(photos / "cat" / "1.jpg")]
    assert all(set(x) == {"path", "label", "score", "top"} and x["score"] == x["top"][0]["score"] for x in lines)
    r = CliRunner().invoke(main, ["--path", str(store), "classify", str(photos / "cat"), "--labels", "two",
                                  "--out", str(tmp_path / "p.txt")])
    assert r.exit_code == 2 and ".csv or .jsonl" in r.output
    r = CliRunner().invoke(main, ["--path", str(store), "classify", str(photos / "nope*.png"), "--labels", "two"])
    assert r.exit_code == 1 and "matches no file" in r.output


def test_gallery_add_folder_skips_the_corrupt_image(world: tuple[Path, Path]) -> None:
    store, photos = world
    r = run(store, "gallery", "add", "trip", str(photos), "--on-error", "skip", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["n_items"] == 4 and data["skipped"] == [str(photos / "broken.jpg")]
    r = run(store, "search", "a ship at sea", "--gallery", "trip", "--top", "2", "--json")
    hits = json.loads(r.stdout)[0]["hits"]
    assert all("/ship/" in h["payload"]["image_ref"] for h in hits)


def test_model_loading_is_quiet_unless_verbose(world: tuple[Path, Path]) -> None:
    store, _ = world
    r = run(store, "labels", "add", "quiet", "--classes", "cat,ship")
    # only asif's own coverage warnings (4 anchors support neither class), nothing of the model libraries
    others = [ln for ln in r.stderr.splitlines() if not ln.startswith("warning: class ")]
    assert r.exit_code == 0 and "Loading weights" not in r.stderr and others == [], r.stderr
    assert r.stdout.startswith("label set 'quiet': 2 classes x 8 templates")


def test_add_search_and_ingest_are_quiet_and_json_stays_json(world: tuple[Path, Path], tmp_path: Path) -> None:
    store, photos = world
    cat = photos / "cat" / "0.jpg"
    for args in (["add", str(cat), "a quiet cat", "--tenant", "quiet", "--json"],
                 ["gallery", "add", "quiet", str(photos / "ship"), "--no-progress", "--json"],
                 ["search", "a", "ship", "--gallery", "quiet", "--json"],
                 ["classify", str(cat), "--labels", "two", "--json"]):
        r = run(store, *args)
        # only asif's own warning (k above the 4 anchors of this store), nothing of the model libraries
        others = [ln for ln in r.stderr.splitlines() if not ln.startswith("warning: k=800 ")]
        assert r.exit_code == 0 and others == [], (args, r.stderr)
        json.loads(r.stdout)  # nothing but the JSON on stdout
    data = tmp_path / "pairs"
    (data / "images").mkdir(parents=True)
    shutil.copy(cat, data / "images" / "c.jpg")
    (data / "captions.tsv").write_text("image\tcaption\nc.jpg\ta cat, ingested quietly\n")
    for extra in (["--no-progress"], ["--json"]):
        r = run(store, "ingest", str(data), "--tenant", "quiet", *extra)
        assert r.exit_code == 0 and r.stderr == "", (extra, r.stderr)
    assert json.loads(r.stdout)["duplicates"] == 1


def test_verbose_shows_the_libraries_output() -> None:
    """-v keeps the model libraries' own output (in a fresh process: quieting them is process-wide)."""
    import subprocess
    import sys

    asif = str(Path(sys.executable).parent / "asif")
    # the quiet runs of this session set these in os.environ (as the CLI does in its own process): not inherited
    quieted = ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS")
    env = {k: v for k, v in os.environ.items() if k not in quieted} | {"HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([asif, "--path", tmp + "/s", "-v", "labels", "add", "v", "--classes", "cat,ship"],
                              capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Loading weights" in proc.stderr and proc.stdout.startswith("label set 'v': 2 classes")


def test_gallery_add_out_lists_every_image_with_its_item(world: tuple[Path, Path], tmp_path: Path) -> None:
    store, photos = world
    out = tmp_path / "gallery.csv"
    r = run(store, "gallery", "add", "trip2", str(photos), "--on-error", "skip", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith(f"; 1 skipped; wrote {out}")
    rows = list(csv.DictReader(out.open()))
    given = sorted(p for p in photos.rglob("*.jpg"))  # the folder's images, in the order they were read
    assert [row["path"] for row in rows] == [str(p) for p in given]
    assert [(row["status"], row["error"] == "") for row in rows if row["path"].endswith("broken.jpg")] == [
        ("skipped", False)]
    added = [row for row in rows if row["status"] == "added"]
    assert [int(row["item"]) for row in added] == list(range(4)) and all(row["error"] == "" for row in added)
    # the item column is the one a search hit carries with the same image
    hits = json.loads(run(store, "search", "a ship at sea", "--gallery", "trip2", "--top", "4", "--json").stdout)
    by_path = {row["path"]: int(row["item"]) for row in added}
    assert len(hits[0]["hits"]) == 4
    assert all(by_path[h["payload"]["image_ref"]] == h["payload"]["item"] for h in hits[0]["hits"])

    out2 = tmp_path / "gallery.jsonl"
    r = run(store, "gallery", "add", "trip3", str(photos / "ship"), "--out", str(out2), "--json")
    assert json.loads(r.stdout)["out"] == str(out2)
    lines = [json.loads(x) for x in out2.read_text().splitlines()]
    assert lines == [{"path": str(photos / "ship" / f"{i}.jpg"), "item": i, "status": "added", "error": None}
                     for i in range(2)]
    r = CliRunner().invoke(main, ["--path", str(store), "gallery", "add", "trip4", str(photos / "ship"),
                                  "--out", str(tmp_path / "g.txt")])
    assert r.exit_code == 2 and ".csv or .jsonl" in r.output
    assert "trip4" not in run(store, "gallery", "list").stdout  # refused before anything was built
