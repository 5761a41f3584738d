"""CLI commands not covered by the README walk-through, and the one-line error contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, TXT_DIM, small_settings

from asif_qdrant import Asif
from asif_qdrant.cli import main


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "s"
    with Asif.open(path, **small_settings()) as a:
        a.add_vectors(rng.standard_normal((6, IMG_DIM)), rng.standard_normal((6, TXT_DIM)), captions=list("abcdef"))
        a.add_vectors(rng.standard_normal((3, IMG_DIM)), rng.standard_normal((3, TXT_DIM)), tenant="acme")
        a.define_labels("L", ["x", "y"], templates="plain", prompt_vectors=rng.standard_normal((2, TXT_DIM)),
                        tenant="acme")
    return path


def run(path: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(main, ["--path", str(path), *args], input=input, catch_exceptions=False)


def test_migrate_list_and_stats(store_path: Path) -> None:
    r = run(store_path, "migrate", "--list")
    assert r.exit_code == 0 and "0001_anchor_collection" in r.output and "applied" in r.output
    r = run(store_path, "stats", "--json")
    assert r.exit_code == 0 and '"anchors": 6' in r.output and '"image_dim": 8' in r.output


def test_tenants_and_delete(store_path: Path) -> None:
    r = run(store_path, "tenants", "list")
    assert r.output.split() == ["_shared", "acme"]
    with Asif.open(store_path) as a:
        ids = [rec.id for rec in a.engine.scroll(a.anchors.collection) if rec.payload["tenant"] == "acme"]
    r = run(store_path, "delete", str(ids[0]), "--tenant", "acme")
    assert r.exit_code == 0 and "deleted 1 anchor(s)" in r.output and "acme/L" in r.output
    r = run(store_path, "tenants", "delete", "acme", "--yes", "--json")
    assert r.exit_code == 0 and '"anchors": 2' in r.output and '"indexes": 1' in r.output
    assert run(store_path, "tenants", "list").output.split() == ["_shared"]


def test_user_errors_are_one_line(store_path: Path) -> None:
    r = CliRunner().invoke(main, ["--path", str(store_path), "classify", str(store_path), "--labels", "nope"])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(main, ["--path", str(store_path), "tenants", "delete", "bad name!", "--yes"])
    assert r.exit_code == 1 and "tenant name 'bad name!' is not valid" in r.output
    r = CliRunner().invoke(main, ["--path", str(store_path), "delete", "1", "--tenant", "nobody"])
    assert r.exit_code == 0 and "deleted 0 anchor(s)" in r.output


def test_ingest_vectors_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    f = tmp_path / "pairs.npz"
    np.savez(f, image_vectors=rng.standard_normal((4, IMG_DIM)), text_vectors=rng.standard_normal((4, TXT_DIM)),
             captions=np.array(["a", "b", "c", "d"]))
    Asif.open(tmp_path / "s", **small_settings()).close()
    r = run(tmp_path / "s", "ingest", str(f), "--json")
    assert r.exit_code == 0 and '"added": 4' in r.output
    r = run(tmp_path / "s", "ingest", str(f), "--json")
    assert '"added": 0' in r.output


def test_every_command_has_an_example() -> None:
    import click

    def walk(cmd: click.Command, name: str):
        if isinstance(cmd, click.Group):
            for sub_name, sub in cmd.commands.items():
                yield from walk(sub, f"{name} {sub_name}")
        else:
            yield name, cmd

    for name, cmd in walk(main, "asif"):
        assert "Example:" in (cmd.help or ""), f"{name} has no example in its help"


def test_encoders_command() -> None:
    r = CliRunner().invoke(main, ["encoders"])
    assert r.exit_code == 0 and "timm:tf_efficientnet_lite0" in r.output and "1280" in r.output
