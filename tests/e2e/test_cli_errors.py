"""Every CLI command, driven with the mistakes users make (no store, a bad path, bad numbers, an unknown label
set or gallery, an unreadable or empty file, a bad tenant name): a non-zero exit, one ``Error: ...`` line, never a
traceback. Usage errors (exit 2) come with click's usage lines above the one error line; progress bars or a warning
may come before it too.

No model: the store's fingerprint is precomputed:img:8 / precomputed:txt:6 and ``create_encoder`` returns
deterministic pixel / character encoders under those names, so commands get as far as reading their inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, TXT_DIM, small_settings
from PIL import Image

import asif_qdrant.encoders as encoders_pkg
from asif_qdrant import Asif
from asif_qdrant.cli import main
from asif_qdrant.encoders import load_image


class _Pixels:
    """Reads images as the real encoders do (encoders.load_image), so unreadable files fail as they would."""

    name, dim, modality = f"precomputed:img:{IMG_DIM}", IMG_DIM, "image"

    def encode(self, items: Any, batch_size: int = 64) -> np.ndarray:
        out = []
        for im in items:
            a = np.asarray(load_image(im).convert("RGB").resize((4, 4)), np.float32).reshape(-1, 3).mean(axis=0) / 255.0
            v = np.concatenate([a, a ** 2, [1.0, 0.5]])
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, np.float32)


class _Chars:
    name, dim, modality = f"precomputed:txt:{TXT_DIM}", TXT_DIM, "text"

    def encode(self, items: Any, batch_size: int = 64) -> np.ndarray:
        v = np.array([[t.count(c) for c in "redgbl"] for t in items], np.float32) + 0.1
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli_errors")
    rng = np.random.default_rng(0)
    store = tmp / "store"
    with Asif.open(store, **small_settings()) as a:
        a.add_vectors(rng.standard_normal((12, IMG_DIM)), rng.standard_normal((12, TXT_DIM)),
                      captions=[f"c{i}" for i in range(12)], ids=list(range(12)))
        a.define_labels("L", ["red", "green"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)),
                        k=8)
        a.add_gallery("G", vectors=rng.standard_normal((3, IMG_DIM)),
                      payloads=[{"image_ref": f"g{i}"} for i in range(3)], k=8)
    good = tmp / "good.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(good)
    cls_dir = tmp / "classes" / "red"
    cls_dir.mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(cls_dir / "a.png")
    (tmp / "garbage.jpg").write_bytes(b"this is not an image")
    (tmp / "empty").mkdir()
    (tmp / "empty.tsv").write_text("")
    (tmp / "header_only.tsv").write_text("image\tcaption\n")
    Image.new("RGB", (8, 8), (10, 200, 10)).save(tmp / "green.png")
    (tmp / "caps.tsv").write_text("image\tcaption\ngood.png\ta red square\ngreen.png\ta green one\n")
    (tmp / "one.tsv").write_text("image\tcaption\ngood.png\ta red square\n")
    (tmp / "binary.tsv").write_bytes(bytes(range(256)) * 8)
    (tmp / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp / "afile").write_text("a file, not a folder")
    return {"tmp": tmp, "store": store, "good": good, "classes": tmp / "classes"}


def _cases(w: dict[str, Path]) -> list[tuple[str, list[str]]]:
    t, s, good, classes = w["tmp"], str(w["store"]), str(w["good"]), str(w["classes"])
    missing = str(t / "no-such-store")
    on = ["--path", s]
    return [
        # no store where one is needed
        *[(f"missing store: {c[0]}", ["--path", missing, *c]) for c in (
            ["stats"], ["migrate", "--list"], ["doctor"], ["tenants", "list"], ["tenants", "stats"],
            ["labels", "list"], ["gallery", "list"], ["refresh"], ["optimize"], ["delete", "1"],
            ["classify", good, "--labels", "L"], ["search", "red", "--gallery", "G"],
            ["explain", good, "--labels", "L"], ["eval", classes, "--labels", "L"],
            ["labels", "delete", "L"], ["gallery", "delete", "G"], ["tenants", "delete", "acme", "--yes"],
            ["prune", "--labels", "L", "--keep", "3", "--into", "p"],
            ["calibrate", classes, "--labels", "L", "--target-precision", "0.9"],
            ["tune", classes, "--labels", "L"], ["curve", classes, "--labels", "L"],
        )],
        # a path that cannot be a store
        ("store path is a file", ["--path", str(t / "afile"), "stats"]),
        ("store path is a file (writing)", ["--path", str(t / "afile"), "add", good, "a red square"]),
        ("store path under a file", ["--path", str(t / "afile" / "x"), "labels", "add", "X", "--classes", "a,b"]),
        # bad numbers
        ("labels add --k 0", [*on, "labels", "add", "X", "--classes", "a,b", "--k", "0"]),
        ("labels add --k -5", [*on, "labels", "add", "X", "--classes", "a,b", "--k", "-5"]),
        ("labels add --k huge", [*on, "labels", "add", "X", "--classes", "a,b", "--k", "200000000"]),
        ("labels add --k word", [*on, "labels", "add", "X", "--classes", "a,b", "--k", "many"]),
        ("labels add --p 0", [*on, "labels", "add", "X", "--classes", "a,b", "--p", "0"]),
        ("labels add --p nan", [*on, "labels", "add", "X", "--classes", "a,b", "--p", "nan"]),
        ("labels add --p inf", [*on, "labels", "add", "X", "--classes", "a,b", "--p", "inf"]),
        ("classify --top 0", [*on, "classify", good, "--labels", "L", "--top", "0"]),
        ("classify --top -1", [*on, "classify", good, "--labels", "L", "--top", "-1"]),
        ("classify --top huge", [*on, "classify", good, "--labels", "L", "--top", "1000000000"]),
        ("search --top 0", [*on, "search", "red", "--gallery", "G", "--top", "0"]),
        ("search --top huge", [*on, "search", "red", "--gallery", "G", "--top", "1000000000"]),
        ("explain --top 0", [*on, "explain", good, "--labels", "L", "--top", "0"]),
        ("explain --n-labels -1", [*on, "explain", good, "--labels", "L", "--n-labels", "-1"]),
        ("delete -1", [*on, "delete", "--", "-1"]),
        ("delete 2**40", [*on, "delete", str(2**40)]),
        ("delete word", [*on, "delete", "one"]),
        ("ingest --batch-size 0", [*on, "ingest", str(t / "caps.tsv"), "--batch-size", "0"]),
        ("ingest --limit -1", [*on, "ingest", str(t / "caps.tsv"), "--limit", "-1"]),
        ("eval --limit 0", [*on, "eval", classes, "--labels", "L", "--limit", "0"]),
        ("curve --anchors word", [*on, "curve", classes, "--labels", "L", "--anchors", "ten"]),
        ("curve --anchors 0", [*on, "curve", classes, "--labels", "L", "--anchors", "0"]),
        ("tune --val-fraction 2", [*on, "tune", classes, "--labels", "L", "--val-fraction", "2"]),
        ("calibrate --target-precision 5", [*on, "calibrate", classes, "--labels", "L", "--target-precision", "5"]),
        ("eval-retrieval --holdout -1", [*on, "eval-retrieval", str(t / "caps.tsv"), "--holdout", "-1"]),
        ("prune --keep 0", [*on, "prune", "--labels", "L", "--keep", "0", "--into", "p"]),
        # unknown label set / gallery
        ("classify unknown labels", [*on, "classify", good, "--labels", "nope"]),
        ("search unknown gallery", [*on, "search", "red", "--gallery", "nope"]),
        ("explain unknown labels", [*on, "explain", good, "--labels", "nope"]),
        ("eval unknown labels", [*on, "eval", classes, "--labels", "nope"]),
        ("curve unknown labels", [*on, "curve", classes, "--labels", "nope"]),
        ("tune unknown labels", [*on, "tune", classes, "--labels", "nope"]),
        ("calibrate unknown labels", [*on, "calibrate", classes, "--labels", "nope", "--target-precision", "0.9"]),
        ("prune unknown labels", [*on, "prune", "--labels", "nope", "--keep", "3", "--into", "p"]),
        ("refresh unknown labels", [*on, "refresh", "--labels", "nope"]),
        ("labels delete unknown", [*on, "labels", "delete", "nope"]),
        ("gallery delete unknown", [*on, "gallery", "delete", "nope"]),
        ("labels add existing", [*on, "labels", "add", "L", "--classes", "a,b", "--templates", "plain"]),
        ("explain unknown label", [*on, "explain", good, "--labels", "L", "--label", "purple"]),
        # unreadable files
        ("classify garbage image", [*on, "classify", str(t / "garbage.jpg"), "--labels", "L"]),
        ("classify missing image", [*on, "classify", str(t / "nope.jpg"), "--labels", "L"]),
        ("explain garbage image", [*on, "explain", str(t / "garbage.jpg"), "--labels", "L"]),
        ("gallery add garbage image", [*on, "gallery", "add", "G2", str(t / "garbage.jpg")]),
        ("gallery add missing image", [*on, "gallery", "add", "G2", str(t / "nope.jpg")]),
        ("ingest missing source", [*on, "ingest", str(t / "nope")]),
        ("ingest truncated npz", [*on, "ingest", str(t / "bad.npz")]),
        ("ingest binary captions", [*on, "ingest", str(t / "binary.tsv"), "--on-error", "fail"]),
        ("add missing image", [*on, "add", str(t / "nope.jpg"), "a caption"]),
        ("add garbage image", [*on, "add", str(t / "garbage.jpg"), "a caption"]),
        ("add without caption", [*on, "add", good]),
        ("teach missing folder", [*on, "teach", str(t / "nope"), "--tenant", "acme"]),
        ("eval missing folder", [*on, "eval", str(t / "nope"), "--labels", "L"]),
        ("eval-retrieval missing file", [*on, "eval-retrieval", str(t / "nope.tsv"), "--holdout", "2"]),
        ("labels add missing templates file", [*on, "labels", "add", "X", "--classes", "a,b", "--templates",
                                               str(t / "nope.txt")]),
        ("labels add bad template", [*on, "labels", "add", "X", "--classes", "a,b", "--templates", "a {} {0}"]),
        # bad tenant names
        *[(f"bad tenant: {c[0]}", [*on, *c, "--tenant", "bad name!"]) for c in (
            ["labels", "list"], ["gallery", "list"], ["refresh"], ["delete", "1"],
            ["classify", good, "--labels", "L"], ["search", "red", "--gallery", "G"],
            ["labels", "add", "X", "--classes", "a,b"], ["add", good, "a red square"],
            ["explain", good, "--labels", "L"], ["ingest", str(t / "caps.tsv")],
        )],
        ("bad tenant: teach", [*on, "teach", classes, "--tenant", "x\ny"]),
        ("bad tenant: tenants delete", [*on, "tenants", "delete", "../etc", "--yes"]),
        ("bad tenant: prune --into", [*on, "prune", "--labels", "L", "--keep", "3", "--into", "bad name!"]),
        # empty input
        ("ingest empty file", [*on, "ingest", str(t / "empty.tsv")]),
        ("ingest header only", [*on, "ingest", str(t / "header_only.tsv")]),
        ("ingest empty folder", [*on, "ingest", str(t / "empty")]),
        ("labels add no classes", [*on, "labels", "add", "X", "--classes", ""]),
        ("labels add only commas", [*on, "labels", "add", "X", "--classes", ",,"]),
        ("labels add empty name", [*on, "labels", "add", "", "--classes", "a,b"]),
        ("search empty text", [*on, "search", "", "--gallery", "G"]),
        ("classify empty folder", [*on, "classify", str(t / "empty"), "--labels", "L"]),
        ("gallery add empty folder", [*on, "gallery", "add", "G2", str(t / "empty")]),
        ("eval empty folder", [*on, "eval", str(t / "empty"), "--labels", "L"]),
        ("teach empty folder", [*on, "teach", str(t / "empty"), "--tenant", "acme"]),
        ("calibrate empty folder", [*on, "calibrate", str(t / "empty"), "--labels", "L", "--target-precision", "0.9"]),
        ("eval-retrieval empty file", [*on, "eval-retrieval", str(t / "empty.tsv"), "--holdout", "2"]),
        ("eval-retrieval one image", [*on, "eval-retrieval", str(t / "one.tsv"), "--holdout", "1"]),
        ("add nothing", [*on, "add"]),
        # serve: refused before the server starts
        ("serve --port 99999", [*on, "serve", "--port", "99999"]),
        ("serve --port -1", [*on, "serve", "--port", "-1"]),
        ("serve unknown host", [*on, "serve", "--host", "no-such-host.invalid", "--port", "8799"]),
        ("serve bad store path", ["--path", str(t / "afile"), "serve", "--port", "8799"]),
        ("classify nothing", [*on, "classify", "--labels", "L"]),
    ]


_IDS = [c[0] for c in _cases({k: Path("/x") for k in ("tmp", "store", "good", "classes")})]


def test_serving_a_store_open_elsewhere_is_one_error_line(world: dict[str, Path]) -> None:
    """The store is held by this process: serve refuses it before starting the server (no start-up traceback)."""
    with Asif.open(world["store"]):
        r = CliRunner().invoke(main, ["--path", str(world["store"]), "serve", "--port", "8799"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "already open" in lines[0], r.output


@pytest.mark.parametrize("case", range(len(_IDS)), ids=_IDS)
def test_a_user_mistake_is_one_error_line(case: int, world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoders_pkg, "create_encoder",
                        lambda name, **_: _Pixels() if name.startswith("precomputed:img") else _Chars())
    name, args = _cases(world)[case]
    r = CliRunner().invoke(main, args)
    out = r.output
    assert r.exit_code != 0, (name, r.exit_code, out)
    assert r.exception is None or isinstance(r.exception, SystemExit), (name, repr(r.exception))
    assert "Traceback" not in out, (name, out)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    # one error line, the last thing printed (progress bars or a warning may come before it)
    assert len(errors) == 1 and lines[-1] == errors[0], (name, out)
