"""Teaching by example: a folder per class becomes a tenant's anchor pairs (image + templated caption), the model
changes at once, and explain warns when one taught pair carries most of every label's score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, SHARED_DATA, TXT_DIM, small_settings
from fake_encoders import COLOURS, install_fakes, shade

from asif_qdrant import Asif
from asif_qdrant.cli import main
from asif_qdrant.errors import AsifError, ConfigError, InvalidInputError
from asif_qdrant.ingest import add_pairs
from asif_qdrant.teaching import teach_caption, teach_examples

CIFAR = SHARED_DATA / "cifar10-test"


def _examples(tmp_path: Path, per_class: int = 2, classes: tuple[str, ...] = ("cat", "ship")) -> Path:
    root = tmp_path / "examples"
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            shutil.copy(CIFAR / c / f"{i:04d}.jpg", root / c / f"{i}.jpg")
    (root / "notes.txt").write_text("not a class")
    return root


def test_teach_caption_and_folder_errors(tmp_path: Path) -> None:
    assert teach_caption("a photo of a {}.", "pickup_truck") == "a photo of a pickup truck."
    with pytest.raises(AsifError, match="exactly one"):
        teach_caption("a photo", "cat")
    with pytest.raises(AsifError, match="does not exist"):
        teach_examples(tmp_path / "nope")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(AsifError, match="no class sub-folders with images"):
        teach_examples(tmp_path / "empty")


@pytest.mark.data
def test_teach_cli_adds_tenant_pairs_and_changes_the_model(tmp_path: Path) -> None:
    if not CIFAR.is_dir():
        pytest.skip(f"CIFAR-10 images not found at {CIFAR}")
    ex = _examples(tmp_path)
    store = tmp_path / "s"
    with Asif.open(store) as a:  # shared anchors that know nothing about cats or ships
        a.add_vectors(np.eye(1280, dtype=np.float32)[:3], np.eye(384, dtype=np.float32)[:3], captions=list("xyz"))
        a.define_labels("two", ["cat", "ship"])
    r = CliRunner().invoke(main, ["--path", str(store), "teach", str(ex), "--tenant", "acme", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["classes"] == {"cat": 2, "ship": 2} and rep["added"] == 4 and rep["tenant"] == "acme"
    assert rep["captions"] == {"cat": "a photo of a cat.", "ship": "a photo of a ship."}
    with Asif.open(store) as a:
        recs = [x.payload for x in a.engine.scroll(a.anchors.collection) if x.payload["tenant"] == "acme"]
        assert sorted(p["caption"] for p in recs) == ["a photo of a cat."] * 2 + ["a photo of a ship."] * 2
        taught = [ex / "cat" / "0.jpg", ex / "ship" / "0.jpg", ex / "cat" / "1.jpg", ex / "ship" / "1.jpg"]
        assert [p.label for p in a.classify(images=taught, labels="two", tenant="acme")] == ["cat", "ship"] * 2
        assert a.count("acme") == 4 and a.count() == 3  # the shared anchors are untouched
    r = CliRunner().invoke(main, ["--path", str(store), "teach", str(ex), "--tenant", "acme"], catch_exceptions=False)
    assert r.exit_code == 0 and "0 new pair(s) (4 already stored)" in r.output
    r = CliRunner().invoke(main, ["--path", str(store), "teach", str(ex)])
    assert r.exit_code == 2 and "--tenant" in r.output


def test_explain_warns_when_one_pair_dominates_every_label(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with Asif.open(tmp_path / "s", **small_settings()) as a:
        a.add_vectors(rng.standard_normal((30, IMG_DIM)), rng.standard_normal((30, TXT_DIM)))
        prompts = rng.standard_normal((3, TXT_DIM))
        a.define_labels("L", ["a", "b", "c"], templates="plain", prompt_vectors=prompts, p=8)
        q = rng.standard_normal(IMG_DIM)
        before = a.explain(vector=q, labels="L", tenant="acme")
        assert before.dominant is None
        # one taught pair: the very image, captioned close to every prompt
        [aid] = a.add_vectors(q[None], prompts.mean(0)[None], captions=["a photo of a a."], tenant="acme").ids
        ex = a.explain(vector=q, labels="L", tenant="acme")
        assert ex.dominant is not None and ex.dominant.id == aid and ex.dominant.labels == 3
        assert ex.dominant.min_share >= 0.5
        for block in [a.explain(vector=q, labels="L", tenant="acme", label=lb) for lb in "abc"]:
            assert block.contributions[0].id == aid
            assert block.contributions[0].contribution / block.score >= ex.dominant.min_share - 1e-9
        assert "warning: anchor #" in ex.text() and "of the score of every one of the 3 labels" in ex.text()
        assert ex.as_dict()["dominant"]["id"] == aid
        from asif_qdrant.evaluation.report import render_html

        page = render_html(ex, None)  # the HTML report says it too, above the labels
        assert page.count('id="dominant"') == 1 and "of the score of every one of the 3 labels" in page
        assert 'id="dominant"' not in render_html(before, None)
        assert a.explain(vector=q, labels="L").dominant is None  # the shared model is not affected


def test_asif_teach_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The facade's teach: the tenant's own pairs, per class, with content ids (those of `asif add` for the same
    image and caption), idempotent, through the embedding cache, and all or nothing."""
    loaded = install_fakes(monkeypatch)
    rng = np.random.default_rng(2)
    ex = tmp_path / "examples"
    for c in ("red", "blue"):
        (ex / c).mkdir(parents=True)
        for i in range(3):
            shade(COLOURS[c], rng, 20).save(ex / c / f"{i}.png")
    (ex / "red" / "notes.txt").write_text("not an image")
    with Asif.open(tmp_path / "s", **small_settings()) as a:
        a.add_vectors(rng.standard_normal((20, IMG_DIM)), rng.standard_normal((20, TXT_DIM)))
        a.define_labels("rb", ["red", "blue"], templates="plain", k=8)
        before = a.classify(images=[ex / "red" / "0.png", ex / "blue" / "0.png"], labels="rb", tenant="acme")
        rep = a.teach(ex, tenant="acme", template="a {} square.", per_class=2)
        assert rep.classes == {"blue": 2, "red": 2} and rep.added == 4 and rep.duplicates == 0
        assert rep.captions == {"blue": "a blue square.", "red": "a red square."}
        recs = {r.id: r.payload for r in a.engine.retrieve(a.anchors.collection, rep.ids, with_payload=True)}
        assert sorted((p["caption"], p["taught_class"], Path(p["image_ref"]).name, p["tenant"])
                      for p in recs.values()) == [
            ("a blue square.", "blue", "0.png", "acme"), ("a blue square.", "blue", "1.png", "acme"),
            ("a red square.", "red", "0.png", "acme"), ("a red square.", "red", "1.png", "acme")]
        assert a.count("acme") == 4 and a.count() == 20  # the shared anchors are untouched
        # the same ids as adding the pair by hand: teaching is adding pairs, nothing else
        same = add_pairs(a, [ex / "red" / "0.png"], ["a red square."], "acme")
        assert same.duplicates == 1 and same.ids[0] in rep.ids
        # the taught tenant's model changed, the shared model did not
        after = a.classify(images=[ex / "red" / "0.png", ex / "blue" / "0.png"], labels="rb", tenant="acme")
        assert [p.label for p in after] == ["red", "blue"]
        assert [p.as_dict() for p in after] != [p.as_dict() for p in before]
        shared = a.classify(images=[ex / "red" / "0.png", ex / "blue" / "0.png"], labels="rb")
        assert [p.as_dict() for p in shared] == [p.as_dict() for p in before]  # acme had no pairs before
    loaded.clear()
    with Asif.open(tmp_path / "s") as a:  # a fresh store object: no encoder loaded yet
        rep2 = a.teach(ex, tenant="acme", template="a {} square.", per_class=2)
        assert (rep2.added, rep2.duplicates, sorted(rep2.ids)) == (0, 4, sorted(rep.ids))
        assert loaded == []  # every image and caption came from the embedding cache: no model was loaded
        rep3 = a.teach(ex, tenant="acme", template="a {} square.")  # the third image of each class
        assert (rep3.added, rep3.duplicates) == (2, 4) and a.count("acme") == 6

        with pytest.raises(ConfigError, match="teach needs a tenant"):
            a.teach(ex, tenant=None)
        (ex / "blue" / "9.png").write_bytes(b"not a png")
        with pytest.raises(InvalidInputError, match="9.png"):
            a.teach(ex, tenant="globex")
        assert a.count("globex") == 0  # nothing stored
