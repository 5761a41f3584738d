"""No silent overwrites, no silent store creation, a quiet conventional CLI: label sets and galleries refuse an
existing name without --replace and can be deleted; read-only commands refuse a store that does not exist; a
misspelt label set suggests the close one; --version; error lines start with the message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, TXT_DIM, small_settings

import asif_qdrant
from asif_qdrant import Asif, ConfigError, NotFoundError
from asif_qdrant.cli import main


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "s"
    with Asif.open(path, **small_settings()) as a:
        a.add_vectors(rng.standard_normal((6, IMG_DIM)), rng.standard_normal((6, TXT_DIM)), captions=list("abcdef"))
        a.define_labels("cifar10", ["x", "y"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)))
        a.add_gallery("trip", vectors=rng.standard_normal((3, IMG_DIM)))
    return path


def run(path: Path, *args: str):
    return CliRunner().invoke(main, ["--path", str(path), *args])


def test_define_labels_and_galleries_refuse_an_existing_name(store_path: Path) -> None:
    rng = np.random.default_rng(1)
    with Asif.open(store_path) as a:
        pv = rng.standard_normal((3, TXT_DIM))
        with pytest.raises(ConfigError, match=r"label set 'cifar10' already exists .*replace=True \(--replace\)"):
            a.define_labels("cifar10", ["x", "y", "z"], templates="plain", prompt_vectors=pv)
        assert a.list_labels()[0].classes == ["x", "y"]  # untouched
        info = a.define_labels("cifar10", ["x", "y", "z"], templates="plain", prompt_vectors=pv, replace=True)
        assert info.classes == ["x", "y", "z"] and a.list_labels()[0].n_items == 3
        with pytest.raises(ConfigError, match="gallery 'trip' already exists"):
            a.add_gallery("trip", vectors=rng.standard_normal((2, IMG_DIM)))
        # a label set and a gallery are told apart by kind, so they may share a name
        assert a.define_labels("trip", ["x"], templates="plain", prompt_vectors=pv[:1]).kind == "labels"
        assert a.add_gallery("trip", vectors=rng.standard_normal((2, IMG_DIM)), replace=True).n_items == 2
        assert [i.name for i in a.list_galleries()] == ["trip"]
        assert sorted(i.name for i in a.list_labels()) == ["cifar10", "trip"]
        a.delete_gallery("trip")
        assert a.list_galleries() == [] and sorted(i.name for i in a.list_labels()) == ["cifar10", "trip"]
        a.delete_labels("trip")
        with pytest.raises(NotFoundError, match="gallery 'trip' does not exist"):
            a.delete_gallery("trip")
        with pytest.raises(NotFoundError, match="label set 'cifar10' does not exist"):
            a.delete_labels("cifar10", tenant="acme")  # only the tenant's own
        a.delete_labels("cifar10")
        assert a.list_indexes() == []
        assert a.count() == 6  # anchors are never touched


def test_cli_labels_and_gallery_commands(store_path: Path) -> None:
    r = run(store_path, "labels", "list")
    assert r.exit_code == 0 and r.stdout.split()[0] == "cifar10" and "trip" not in r.stdout
    r = run(store_path, "gallery", "list", "--json")
    assert [g["name"] for g in json.loads(r.stdout)] == ["trip"]
    r = run(store_path, "labels", "add", "cifar10", "--classes", "a,b", "--templates", "plain")
    assert r.exit_code == 1 and r.output.startswith("Error: label set 'cifar10' already exists")
    assert "--replace" in r.output
    r = run(store_path, "gallery", "delete", "trip")
    assert r.exit_code == 0 and "deleted gallery 'trip'" in r.stdout
    assert run(store_path, "gallery", "list").stdout.strip() == "no galleries"
    r = run(store_path, "labels", "delete", "cifar10")
    assert r.exit_code == 0 and "deleted label set 'cifar10'" in r.stdout
    assert run(store_path, "labels", "list").stdout.strip() == "no label sets"


def test_misspelt_label_set_suggests_the_close_one(store_path: Path) -> None:
    with Asif.open(store_path) as a:
        with pytest.raises(NotFoundError, match=r"did you mean 'cifar10'\?"):
            a.classify(vectors=np.ones((1, IMG_DIM)), labels="cifar01")
        with pytest.raises(NotFoundError) as e:
            a.classify(vectors=np.ones((1, IMG_DIM)), labels="zebra")
        assert "did you mean" not in str(e.value)


def test_read_only_commands_refuse_a_missing_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for args in (["stats"], ["labels", "list"], ["classify", str(tmp_path), "--labels", "x"],
                 ["search", "a", "boat", "--gallery", "g"], ["tenants", "list"], ["migrate", "--list"]):
        r = run(missing, *args)
        assert r.exit_code == 1, (args, r.output)
        assert r.output.startswith(f"Error: store '{missing}' does not exist"), r.output
    assert not missing.exists()
    with pytest.raises(NotFoundError, match="does not exist"):
        Asif.open(missing, create=False)


def test_empty_store_and_k_above_the_anchors(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "s"
    with Asif.open(path, **small_settings()) as a:
        a.define_labels("L", ["x", "y"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)))
    img = tmp_path / "q.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    r = run(path, "classify", str(img), "--labels", "L")
    assert r.exit_code == 1 and "has no anchor pairs for the shared anchors" in r.output
    with Asif.open(path) as a:
        a.add_vectors(rng.standard_normal((5, IMG_DIM)), rng.standard_normal((5, TXT_DIM)))
    r = run(path, "stats")
    assert r.exit_code == 0 and "anchors: 5 pair(s)" in r.stdout
    r = run(path, "stats", "--json")
    assert json.loads(r.stdout)["anchors"] == 5
    r = run(path, "classify", str(img), "--labels", "L")  # precomputed encoder: the image cannot be encoded,
    assert "k=800 of labels 'L' exceeds the 5 anchor pair(s)" in r.stderr  # but the scope warning comes first


def test_version() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"asif, version {asif_qdrant.__version__}"
    assert asif_qdrant.__version__[0].isdigit()


def test_delete_of_a_missing_id_says_so(store_path: Path) -> None:
    r = run(store_path, "delete", "12345")
    assert r.exit_code == 0 and "deleted 0 anchor(s)" in r.stdout
    assert "not found among the shared anchors: 12345" in r.stdout
    r = run(store_path, "delete", "12345", "--json")
    assert json.loads(r.stdout)["not_found"] == [12345]


def test_search_words_are_one_query_and_empty_is_refused(store_path: Path) -> None:
    r = run(store_path, "search", "", "--gallery", "trip")
    assert r.exit_code == 2 and "the query is empty" in r.output
    r = run(store_path, "search", "  ", "--gallery", "trip")
    assert r.exit_code == 2
