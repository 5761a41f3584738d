"""The figures the CLI reports: ingest rates exclude model loading, calibrate chooses on a held-out split by
default and says so, and dry runs (calibrate, tune) say so and leave the store as it was.

No model: the store's fingerprint is precomputed:img:8 / precomputed:txt:6, and ``create_encoder`` is replaced by
a factory of deterministic pixel / character encoders under those names (the facade loads encoders through it, so
the CLI, which opens its own store, uses them too). A fake clock makes every duration exact.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, TXT_DIM, small_settings
from fake_encoders import CAPTION_S, CLASSES, COLOURS, IMAGE_S, LOAD_S, Clock, install_fakes, shade

from asif_qdrant import Asif
from asif_qdrant.cli import main
from asif_qdrant.evaluation.calibrate import calibrate


def run(store: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--path", str(store), *args], catch_exceptions=False)


# ---------------------------------------------------------------- ingest rates


def test_ingest_rates_exclude_model_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    loaded = install_fakes(monkeypatch, clock)
    monkeypatch.setattr(time, "perf_counter", clock)
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i, c in enumerate(["red", "green", "blue", "red"]):
        shade(COLOURS[c], rng, 30).save(data / f"{i}.png")
        rows += [[f"{i}.png", f"a {c} square, no. {i}"], [f"{i}.png", f"something {c} ({i})"]]
    with open(data / "captions.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["image", "caption"])
        w.writerows(rows)
    store = tmp_path / "s"
    Asif.open(store, **small_settings()).close()  # the store's encoders: the precomputed names

    r = run(store, "ingest", str(data), "--no-cache", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert sorted(loaded) == [f"precomputed:img:{IMG_DIM}", f"precomputed:txt:{TXT_DIM}"]
    assert (rep["images_encoded"], rep["captions_encoded"], rep["added"]) == (4, 8, 8)
    work = 4 * IMAGE_S + 8 * CAPTION_S  # 6 s of encoding; loading the two models took 200 s more
    assert rep["model_load_seconds"] == pytest.approx(2 * LOAD_S)
    assert rep["seconds"] == pytest.approx(work)
    assert rep["images_per_s"] == round(4 / work, 2) == 0.67
    assert rep["captions_per_s"] == rep["anchors_per_s"] == rep["rows_per_s"] == round(8 / work, 2)

    (data / "4.png").write_bytes((data / "0.png").read_bytes())  # text output of a second run: loads again
    with open(data / "captions.tsv", "a", newline="") as f:
        csv.writer(f, delimiter="\t").writerow(["4.png", "one more red"])
    loaded.clear()
    r = run(store, "ingest", str(data), "--no-cache", "--no-progress")
    assert r.exit_code == 0, r.output
    assert len(loaded) == 2
    # 9 rows, 1 added; images 0-3 are stored already (not even decoded), image 4 encoded, one caption encoded
    assert "1 added, 8 already stored" in r.stdout
    assert f"{IMAGE_S + CAPTION_S:.1f} s, {round(1 / (IMAGE_S + CAPTION_S), 2)} anchors/s" in r.stdout
    assert f"(plus {2 * LOAD_S:.1f} s loading models)" in r.stdout


# ---------------------------------------------------------------- calibrate and tune


@pytest.fixture
def colour_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """A store whose anchors are coloured squares and their captions, a label set 'colours', and a folder per
    class of 8 noisy squares each (some of them hard)."""
    install_fakes(monkeypatch)
    rng = np.random.default_rng(7)
    store = tmp_path / "s"
    with Asif.open(store, **small_settings()) as a:
        imgs, caps = [], []
        for c in CLASSES:
            for _ in range(8):
                imgs.append(shade(COLOURS[c], rng, 25))
                caps.append(f"a {c} thing")
        a.add_vectors(a.encode_images(imgs), a.encode_texts(caps), captions=caps)
        a.define_labels("colours", CLASSES, templates="plain", k=12, p=2)
    folder = tmp_path / "labelled"
    for c in CLASSES:
        (folder / c).mkdir(parents=True)
        for i in range(8):
            shade(COLOURS[c], rng, 90).save(folder / c / f"{i}.png")
    yield store, folder


def _label_set(store: Path) -> dict[str, Any]:
    with Asif.open(store) as a:
        info = vars(a.index_info("colours", "_shared", "labels")).copy()
    info.pop("created_at")
    return info


def test_calibrate_defaults_to_a_held_out_split_and_says_so(colour_store: tuple[Path, Path]) -> None:
    store, folder = colour_store
    with Asif.open(store) as a:
        held = calibrate(a, folder, "colours", target_coverage=0.6, split="heldout", save=False, progress=False)
        every = calibrate(a, folder, "colours", target_coverage=0.6, split=None, save=False, progress=False)
    assert (held.n, held.n_calibration, every.n) == (12, 12, 24)

    r = run(store, "calibrate", str(folder), "--labels", "colours", "--target-coverage", "0.6", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["split"] == "heldout" and (rep["n"], rep["n_calibration"]) == (12, 12)
    for key in ("tau", "accuracy", "unknown", "wrong", "coverage", "precision"):
        assert rep[key] == pytest.approx(getattr(held, key)), key
    assert rep["stored"] is True and _label_set(store)["tau"] == pytest.approx(held.tau)

    r = run(store, "calibrate", str(folder), "--labels", "colours", "--target-coverage", "0.6")
    assert r.exit_code == 0, r.output
    assert "images on the heldout half: 12" in r.stdout
    assert "tau chosen on a seeded 50/50 calibration half; the figures are on the held-out half" in r.stdout
    r = run(store, "calibrate", str(folder), "--labels", "colours", "--target-coverage", "0.6", "--split", "all",
            "--json")
    rep = json.loads(r.stdout)
    assert rep["split"] is None and rep["n"] == 24 and rep["accuracy"] == pytest.approx(every.accuracy)


def test_calibrate_dry_run_stores_nothing_and_says_so(colour_store: tuple[Path, Path]) -> None:
    store, folder = colour_store
    before = _label_set(store)
    assert before["tau"] is None
    r = run(store, "calibrate", str(folder), "--labels", "colours", "--target-precision", "0.9", "--dry-run")
    assert r.exit_code == 0, r.output
    assert r.stdout.rstrip().endswith("dry run: tau not stored") and "stored tau with" not in r.stdout
    r = run(store, "calibrate", str(folder), "--labels", "colours", "--target-precision", "0.9", "--dry-run",
            "--json")
    rep = json.loads(r.stdout)
    assert rep["stored"] is False and rep["stored_in"] is None and rep["tau"] is not None
    assert _label_set(store) == before  # tau, k, p, definition: all as they were
    r = run(store, "calibrate", str(folder), "--labels", "colours", "--target-precision", "0.9")
    assert "dry run" not in r.stdout and "stored tau with _shared/colours" in r.stdout
    assert _label_set(store)["tau"] == pytest.approx(rep["tau"])  # the same choice, now stored


def test_tune_dry_run_stores_nothing_and_says_so(colour_store: tuple[Path, Path]) -> None:
    store, folder = colour_store
    before = _label_set(store)
    args = ["tune", str(folder), "--labels", "colours", "--sweep", "k=4,12", "--sweep", "p=1,8",
            "--sweep", "templates=plain", "--sweep", "aggregation=max"]
    r = run(store, *args, "--dry-run")
    assert r.exit_code == 0, r.output
    assert "not stored (dry run)" in r.stdout and "dry run: the choice was not stored" in r.stdout
    assert "stored with" not in r.stdout
    assert _label_set(store) == before
    r = run(store, *args, "--json")
    rep = json.loads(r.stdout)
    assert rep["stored"] is True
    after = _label_set(store)
    assert (after["k"], after["p"]) == (rep["tuned"]["k"], rep["tuned"]["p"])
    assert after["definition"] == before["definition"] + 1


def test_the_progress_bar_counts_images_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """classify and gallery add show a bar on stderr (when it is a terminal): images done of the total, also past
    a skipped one."""
    from asif_qdrant.ingest import encode_image_files

    install_fakes(monkeypatch)
    rng = np.random.default_rng(4)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        shade(COLOURS["red"], rng, 10).save(paths[-1])
    (tmp_path / "2.png").write_bytes(b"broken")
    with Asif.open(tmp_path / "s", **small_settings()) as a:
        capsys.readouterr()
        enc = encode_image_files(a, paths, on_error="skip", batch_size=2, progress=True, desc="classify")
        out = capsys.readouterr()
        assert [p.name for p in enc.paths] == ["0.png", "1.png", "3.png", "4.png"] and len(enc.skipped) == 1
        assert out.out == "" and "classify: 100%" in out.err and "5/5" in out.err
        encode_image_files(a, paths[:2], progress=False)
        assert capsys.readouterr().err == ""
