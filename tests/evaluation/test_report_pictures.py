"""The report shows the anchor pictures of an ingested folder, wherever it is run from: ingest records the image
root of each source in the meta collection, and the report resolves ``image_ref``s through it. Captions of one
anchor image share one card; a one-line legend says what the numbers are; missing pictures are named with the fix.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_report_browser import chromium as chromium_fixture  # noqa: F401 (the `chromium` fixture)
from test_report_browser import parse, run_chromium

from asif_qdrant import Asif
from asif_qdrant.cli import main
from asif_qdrant.evaluation.report import missing_pictures, render_html

FLICKR = Path(__file__).resolve().parents[3] / "shared" / "data" / "flickr8k"
CIFAR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-test"
N_IMAGES, CAPS = 6, 3

pytestmark = pytest.mark.data


@pytest.fixture
def ingested(tmp_path: Path) -> tuple[Path, Path]:
    """A store with 6 Flickr photos x 3 captions ingested from data/ (images under data/images/)."""
    if not (FLICKR / "captions.tsv").is_file() or not CIFAR.is_dir():
        pytest.skip(f"shared data not found at {FLICKR.parent}")
    rows: dict[str, list[str]] = {}
    with open(FLICKR / "captions.tsv", newline="") as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            if rec["image"] not in rows and len(rows) == N_IMAGES:
                break
            caps = rows.setdefault(rec["image"], [])
            if len(caps) < CAPS:
                caps.append(rec["caption"].strip())
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    with open(data / "captions.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["image", "caption"])
        for name, caps in rows.items():
            shutil.copy(FLICKR / "images" / name, data / "images" / name)
            w.writerows([name, c] for c in caps)
    store = tmp_path / "store"
    r = CliRunner().invoke(main, ["--path", str(store), "ingest", str(data), "--no-progress", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0 and '"added": 18' in r.output, r.output
    r = CliRunner().invoke(main, ["--path", str(store), "labels", "add", "c", "--classes", "dog,child,cat"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return store, data


def test_ingest_records_the_image_root_and_the_report_uses_it(ingested: tuple[Path, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store, data = ingested
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # image_refs are bare file names: only the recorded root finds them
    with Asif.open(store) as a:
        assert a.image_roots() == [(data / "images").absolute()]
        ex = a.explain(image=CIFAR / "dog" / "0000.jpg", labels="c", top=18, n_labels=3)
    assert ex.image_roots == [str((data / "images").absolute())]
    assert missing_pictures(ex) == []
    page = render_html(ex, CIFAR / "dog" / "0000.jpg")
    dom = parse(page)
    assert "placeholder" not in dom.classes and "missing-pictures" not in dom.ids
    assert "contributions add up to its score" in page and "legend" in dom.ids
    # 3 captions per photo: one card per photo, one pair per caption
    for block in ex.explained:
        assert len({c.image_ref for c in block.contributions}) <= N_IMAGES
    n_pairs = sum(len(e.contributions) for e in ex.explained)
    n_cards = sum(len({c.image_ref for c in e.contributions}) for e in ex.explained)
    assert dom.classes["anchor-pair"] == n_pairs and dom.classes["anchor-card"] == n_cards < n_pairs
    assert page.count('class="thumb" src="data:image/jpeg;base64,') == n_cards
    assert dom.classes.get("together", 0) >= 1


def test_cli_warns_with_the_fix_when_pictures_are_missing(ingested: tuple[Path, Path], tmp_path: Path) -> None:
    store, data = ingested
    moved = tmp_path / "moved"
    shutil.move(str(data / "images"), moved)  # the recorded root no longer holds the pictures
    out = tmp_path / "r.html"
    args = ["--path", str(store), "explain", str(CIFAR / "dog" / "0000.jpg"), "--labels", "c", "--html", str(out)]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "anchor pictures were not found" in r.stderr and "--image-root FOLDER" in r.stderr
    assert "missing-pictures" in parse(out.read_text()).ids
    r = CliRunner().invoke(main, [*args, "--image-root", str(moved)], catch_exceptions=False)
    assert r.exit_code == 0 and "not found" not in r.stderr
    dom = parse(out.read_text())
    assert "missing-pictures" not in dom.ids and "placeholder" not in dom.classes


@pytest.mark.browser
def test_report_with_pictures_in_chromium(request: pytest.FixtureRequest, ingested: tuple[Path, Path],
                                          tmp_path: Path) -> None:
    chromium = request.getfixturevalue("chromium_fixture")
    store, _ = ingested
    out = tmp_path / "report.html"
    r = CliRunner().invoke(main, ["--path", str(store), "explain", str(CIFAR / "dog" / "0000.jpg"), "--labels", "c",
                                  "--top", "9", "--html", str(out)], catch_exceptions=False)
    assert r.exit_code == 0 and not r.stderr, r.output
    png = tmp_path / "shot.png"
    shot = run_chromium(chromium, out, tmp_path, f"--screenshot={png}", "--window-size=1200,1400")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    arr = np.asarray(Image.open(png).convert("RGB"), np.float64)
    # photos are colourful: many pixels far from grey, unlike the grey "no image" boxes
    sat = arr.max(axis=2) - arr.min(axis=2)
    assert (sat[450:] > 60).sum() > 20000, "no anchor photo was painted"
    if os.environ.get("ASIF_KEEP_SCREENSHOT"):
        shutil.copy(png, os.environ["ASIF_KEEP_SCREENSHOT"])
