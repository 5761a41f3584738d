"""Adversarial tests (issue 14): a failed edit changes nothing, requests are bounded, ties are exact,
full / read-only / damaged disks give clear errors, user mistakes never surface as raw exceptions,
and the wheel ships what a store needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asif_qdrant import Asif
from asif_qdrant.errors import AsifError, InvalidInputError
from tests.conftest import IMG_DIM, TXT_DIM, open_store, random_pairs

KINDS = ["edge", "local"]
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())


def _answers(a: Asif, queries: np.ndarray) -> list[list[tuple[str, float]]]:
    return [[(s.label, round(s.score, 6)) for s in p.top] for p in a.classify(vectors=queries, labels="L", top=5)]


def _store_with_labels(kind: str, tmp_path: Path, request: pytest.FixtureRequest, n: int = 20, **kw: Any) -> Asif:
    rng = np.random.default_rng(7)
    a = open_store(kind, tmp_path, request, k=8, **kw)
    img, txt = random_pairs(rng, n)
    a.add_vectors(img, txt, captions=[f"c{i}" for i in range(n)], ids=list(range(n)))
    a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=rng.standard_normal((5, TXT_DIM)))
    return a


# -- 1. data loss -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": {"y": [1, float("inf")]}}, {3: "a"}, {"x": object()}])
def test_failing_replace_changes_nothing(kind: str, bad: dict[Any, Any], tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    a = _store_with_labels(kind, tmp_path, request)
    q = np.random.default_rng(1).standard_normal((4, IMG_DIM))
    before = _answers(a, q)
    img, txt = random_pairs(np.random.default_rng(2), 3)
    for call in (lambda: a.replace([0, 1, 2], img, txt, payloads=[{}, {}, bad]),
                 lambda: a.add_vectors(img, txt, payloads=[{}, {}, bad], ids=[0, 1, 2]).ids):
        with pytest.raises(InvalidInputError, match="payload 2"):
            call()
        assert a.count() == 20
        assert _answers(a, q) == before
    a.close()


@pytest.mark.parametrize("kind", KINDS)
def test_replace_whose_write_fails_restores_the_old_pairs(kind: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    a = _store_with_labels(kind, tmp_path, request)
    q = np.random.default_rng(1).standard_normal((4, IMG_DIM))
    before = _answers(a, q)
    old = {r.id: r.payload["caption"] for r in a.engine.retrieve(a.anchors.collection, [0, 1, 2, 3])}
    real = type(a.engine).upsert
    calls = {"n": 0}

    def failing(self: Any, name: str, batch: Any) -> None:
        if name == a.anchors.collection and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("disk went away")
        real(self, name, batch)

    monkeypatch.setattr(type(a.engine), "upsert", failing)
    img, txt = random_pairs(np.random.default_rng(2), 4)
    with pytest.raises(RuntimeError, match="disk went away"):
        a.add_vectors(img, txt, captions=["n0", "n1", "n2", "n99"], ids=[0, 1, 2, 99])
    monkeypatch.undo()
    assert a.count() == 20
    assert {r.id: r.payload["caption"] for r in a.engine.retrieve(a.anchors.collection, [0, 1, 2, 3, 99])} == old
    assert _answers(a, q) == before
    a.refresh("L")
    assert _answers(a, q) == before
    a.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [1e308, 0.0])
def test_overflowing_or_zero_vector_is_refused(kind: str, value: float, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    a = open_store(kind, tmp_path, request)
    img = np.full((2, IMG_DIM), 1.0)
    img[1] = value
    with pytest.raises(InvalidInputError, match="row 1"):
        a.add_vectors(img, np.ones((2, TXT_DIM)))
    assert a.count() == 0
    a.close()


def test_asif_error_is_the_base() -> None:
    assert issubclass(InvalidInputError, AsifError)


# -- 2. bounded requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_huge_k_is_refused_at_once_and_large_k_costs_only_the_anchors(kind: str, tmp_path: Path,
                                                                       request: pytest.FixtureRequest) -> None:
    import time
    import tracemalloc

    from asif_qdrant.errors import ConfigError

    a = _store_with_labels(kind, tmp_path, request)
    prompts = np.random.default_rng(3).standard_normal((5, TXT_DIM))
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="max_k"):
        a.define_labels("H", list("abcde"), templates="plain", prompt_vectors=prompts, k=10**9)
    assert time.monotonic() - t0 < 2
    assert "H" not in [i.name for i in a.list_indexes()]
    q = np.random.default_rng(1).standard_normal((4, IMG_DIM))
    a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts, k=20, replace=True)
    every = _answers(a, q)
    tracemalloc.start()
    a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=prompts, k=90_000, replace=True)
    got = _answers(a, q)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got == every  # k beyond the 20 anchors keeps every anchor, like k=20
    assert peak < 20 * 2**20, f"k=90000 over 20 anchors allocated {peak / 2**20:.0f} MiB"
    a.close()


@pytest.mark.parametrize("top", ["3", 2.0, True, 0, 10**9])
def test_top_must_be_a_bounded_integer(top: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant.errors import ConfigError

    a = _store_with_labels("local", tmp_path, request)
    q = np.random.default_rng(1).standard_normal((1, IMG_DIM))
    with pytest.raises(ConfigError, match="top="):
        a.classify(vectors=q, labels="L", top=top)
    a.close()


def test_too_many_prompts_are_refused(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant.errors import ConfigError

    a = _store_with_labels("local", tmp_path, request, max_items=100)
    with pytest.raises(ConfigError, match="max_items"):
        a.define_labels("B", [f"c{i}" for i in range(30)], templates=["a {}", "b {}", "c {}", "d {}"])
    a.close()


# -- 6. packaging and the attached tenant index -----------------------------------------------------------------


def test_attaching_an_edge_collection_creates_the_tenant_index(tmp_path: Path) -> None:
    import qdrant_edge as qe

    from asif_qdrant.engines import edge
    from asif_qdrant.engines.base import CollectionSpec, PointBatch
    from tests.conftest import small_settings

    rng = np.random.default_rng(1)
    e = edge.EdgeEngine(tmp_path / "store")
    e.create_collection("products", CollectionSpec(dense={"img": IMG_DIM, "txt": TXT_DIM}))
    e.upsert("products", PointBatch([10, 11], {"img": rng.standard_normal((2, IMG_DIM)).astype(np.float32),
                                               "txt": rng.standard_normal((2, TXT_DIM)).astype(np.float32)},
                                    payloads=[{"title": "a"}, {"title": "b"}]))
    e.close()
    opts = small_settings(anchors_collection="products", vector_names={"image": "img", "text": "txt"},
                          payload_names={"caption": "title"})
    a = Asif.open(tmp_path / "store", **opts)
    assert a.engine.collection_spec(a.anchors.collection).keyword_indexes.get("tenant") is True
    assert a.count() == 2
    a.close()
    shard = qe.EdgeShard.load(str(tmp_path / "store" / "collections" / "products" / "shard"))
    schema = shard.info().payload_schema
    shard.close()
    assert "tenant" in schema and schema["tenant"].params.is_tenant is True


def test_attaching_a_client_collection_creates_the_tenant_index(monkeypatch: pytest.MonkeyPatch) -> None:
    from qdrant_client import QdrantClient
    from qdrant_client import models as m

    from tests.conftest import small_settings

    client = QdrantClient(":memory:")
    client.create_collection("products", vectors_config={
        "img": m.VectorParams(size=IMG_DIM, distance=m.Distance.COSINE),
        "txt": m.VectorParams(size=TXT_DIM, distance=m.Distance.COSINE)})
    made: list[tuple[str, str, Any]] = []
    real = client.create_payload_index

    def spy(collection_name: str, field_name: str, field_schema: Any = None, **kw: Any) -> Any:
        made.append((collection_name, field_name, field_schema))
        return real(collection_name, field_name, field_schema, **kw)

    monkeypatch.setattr(client, "create_payload_index", spy)
    a = Asif.open(client=client, **small_settings(anchors_collection="products",
                                                 vector_names={"image": "img", "text": "txt"}))
    tenant = [s for c, f, s in made if c == "products" and f == "tenant"]
    # local mode keeps no payload schema, so it cannot tell the index exists: asked for (again) is what it can show
    assert tenant and all(s.is_tenant is True and s.type == m.KeywordIndexType.KEYWORD for s in tenant)
    a.close()


_OUTSIDE = """
import sys, numpy as np, asif_qdrant
from asif_qdrant import Asif
assert asif_qdrant.__file__.startswith(sys.argv[1]), asif_qdrant.__file__
a = Asif.open(sys.argv[2], image_encoder="precomputed:img:8", text_encoder="precomputed:txt:6")
rng = np.random.default_rng(0)
a.add_vectors(rng.standard_normal((12, 8)), rng.standard_normal((12, 6)))
a.define_labels("L", ["a", "b"], templates="plain", prompt_vectors=rng.standard_normal((2, 6)), k=4)
print(a.classify(vectors=rng.standard_normal((1, 8)), labels="L", top=1)[0].label,
      [s.name for s in a.migration_status() if s.applied_at is not None])
a.close()
"""


@pytest.mark.slow
def test_the_wheel_ships_the_migrations_and_opens_a_store_outside_the_tree(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys
    import zipfile

    root = ROOT
    src = tmp_path / "src"
    src.mkdir()
    for name in ("asif_qdrant", "migrations"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(root / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=240)
    wheel = next((tmp_path / "dist").glob("asif_qdrant-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    steps = sorted(p.name for p in (root / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert steps and all(f"asif_qdrant/migrations/{s}" in names for s in steps)
    packages = sorted(str(p.parent.relative_to(root)) for p in (root / "asif_qdrant").rglob("__init__.py"))
    assert all(f"{p}/__init__.py" in names for p in packages), "a package of the source tree is not in the wheel"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=240)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", _OUTSIDE, str(site), str(work / "store")], cwd=work, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    label, applied = out.stdout.split(" ", 1)
    assert label in ("a", "b") and "anchor_collection" in applied and "attached_anchors" in applied


# -- 5. raw exceptions -> AsifError, one CLI line ---------------------------------------------------------------


def _cli(path: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from asif_qdrant.cli import main

    return CliRunner().invoke(main, ["--path", str(path), *args])


def _one_line_error(r: Any, *needles: str) -> None:
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in r.output, r.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_truncated_npz_is_one_line(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant.ingest import ingest_vectors

    a = open_store("edge", tmp_path, request)
    f = tmp_path / "v.npz"
    np.savez(f, image_vectors=np.ones((50, IMG_DIM)), text_vectors=np.ones((50, TXT_DIM)))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(InvalidInputError, match="not a valid .npz"):
        ingest_vectors(a, f)
    assert a.count() == 0
    a.close()
    _one_line_error(_cli(tmp_path / "store", "ingest", str(f)), "v.npz")


@pytest.mark.parametrize("template", ["a {} {0}", "{x}", "a {} and {x}", "a {:>9}", "a {!r}", "a { }", "a {} }"])
def test_templates_with_other_fields_are_refused(template: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant.errors import ConfigError

    a = _store_with_labels("local", tmp_path, request)
    with pytest.raises(ConfigError, match="template"):
        a.define_labels("T", ["cat"], templates=[template], prompt_vectors=np.ones((1, TXT_DIM)))
    a.define_labels("T", ["cat"], templates=["a {{literal}} {}"], prompt_vectors=np.ones((1, TXT_DIM)))
    assert a.relindexes.require("T", "_shared").prompt_of(0)["prompt"] == "a {literal} cat"
    a.close()


@pytest.mark.parametrize("kind", KINDS)
def test_meta_records_with_unknown_or_missing_fields(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant.errors import SchemaError
    from asif_qdrant.meta import index_key

    a = _store_with_labels(kind, tmp_path, request)
    key = index_key("_shared", "labels", "L")
    v = dict(a.meta.get(key))
    a.meta.put(key, {**v, "colour": "red"})
    q = np.ones((1, IMG_DIM))
    with pytest.raises(SchemaError, match=r'index:\["_shared","labels","L"\].*colour'):
        a.classify(vectors=q, labels="L")
    del v["k"]
    a.meta.put(key, v)
    with pytest.raises(SchemaError, match=r'index:\["_shared","labels","L"\].*missing'):
        a.list_indexes()
    fp = dict(a.meta.get("fingerprint"))
    a.meta.put("fingerprint", {**fp, "extra": 1})
    with pytest.raises(SchemaError, match="fingerprint"):
        a.meta.fingerprint()
    a.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ids", [[1.7], ["1"], [True], 1, "1", [2**40]])
def test_float_or_odd_ids_are_refused_never_truncated(kind: str, ids: Any, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    a = _store_with_labels(kind, tmp_path, request)
    with pytest.raises(InvalidInputError, match="id"):
        a.delete(ids)
    assert a.count() == 20
    a.close()


@pytest.mark.parametrize("name", ["cats\n", "acme\n", "x\ny"])
def test_names_with_a_trailing_newline_are_refused(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant import AsifSettings
    from asif_qdrant.errors import ConfigError
    from asif_qdrant.meta import validate_tenant

    a = _store_with_labels("local", tmp_path, request)
    with pytest.raises(ConfigError, match="not valid"):
        a.define_labels(name, ["c"], templates="plain", prompt_vectors=np.ones((1, TXT_DIM)))
    with pytest.raises(ConfigError, match="not valid"):
        validate_tenant(name)
    with pytest.raises(ValueError, match="prefix"):
        AsifSettings(prefix="asif\n")
    a.close()


def test_one_huge_caption_is_one_bad_row(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from asif_qdrant.ingest import ingest

    a = open_store("edge", tmp_path, request)
    f = tmp_path / "captions.tsv"
    f.write_text("image\tcaption\n" + "a.jpg\t" + "x" * 2**20 + "\nb.jpg\tshort\n", encoding="utf-8")
    rep = ingest(a, f, on_error="skip", progress=False, cache=False)
    reasons = dict(rep.bad_rows)
    assert set(reasons) == {2, 3}, rep.bad_rows
    assert "characters" in reasons[2] and "does not exist" in reasons[3]
    a.close()


def test_a_local_qdrant_folder_held_by_another_client(tmp_path: Path) -> None:
    from asif_qdrant.errors import StoreLockedError

    a = Asif.open(url=f"file:{tmp_path / 'qdrant-local'}", image_encoder=f"precomputed:img:{IMG_DIM}",
                  text_encoder=f"precomputed:txt:{TXT_DIM}")
    try:
        with pytest.raises(StoreLockedError, match="qdrant-local"):
            Asif.open(url=f"file:{tmp_path / 'qdrant-local'}", image_encoder=f"precomputed:img:{IMG_DIM}",
                      text_encoder=f"precomputed:txt:{TXT_DIM}")
    finally:
        a.close()


# -- 4. full, read-only and damaged disks -----------------------------------------------------------------------

_FILL = """
import sys, numpy as np
from asif_qdrant import Asif, DiskFullError
acked = 0
try:
    a = Asif.open(sys.argv[1], image_encoder="precomputed:img:1024", text_encoder="precomputed:txt:1024")
    rng = np.random.default_rng(0)
    for b in range(200):
        img, txt = rng.standard_normal((500, 1024)), rng.standard_normal((500, 1024))
        a.add_vectors(img, txt, ids=list(range(b * 500, b * 500 + 500)))
        acked += 500
    print("NOFULL", acked)
except DiskFullError as e:
    print("FULL", acked, str(e).replace(chr(10), " "))
"""


def _root_or_skip() -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("mounting a small or read-only filesystem needs root")


@pytest.fixture
def small_fs(tmp_path: Path) -> Any:
    import subprocess

    _root_or_skip()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_loses_nothing_acknowledged(small_fs: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store = small_fs / "store"
    out = subprocess.run([sys.executable, "-c", _FILL, str(store)], capture_output=True, text=True, env=env,
                         timeout=280)
    assert out.returncode == 0, (out.returncode, out.stderr[-1500:])  # SIGBUS would be -7
    word, acked, *msg = out.stdout.split(" ", 2)
    assert word == "FULL", out.stdout
    assert str(small_fs) in msg[0] and "MiB needed" in msg[0]
    subprocess.run(["mount", "-o", "remount,size=600m", str(small_fs)], check=True)
    with Asif.open(store) as a:
        assert a.count() == int(acked) > 0


def test_a_read_only_store_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess

    from asif_qdrant import DiskFullError

    _root_or_skip()
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(mnt)], check=True)
    try:
        with Asif.open(mnt / "store", image_encoder=f"precomputed:img:{IMG_DIM}",
                       text_encoder=f"precomputed:txt:{TXT_DIM}") as a:
            a.add_vectors(np.ones((2, IMG_DIM)), np.ones((2, TXT_DIM)) + np.eye(2, TXT_DIM))
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(DiskFullError, match="read-only"):
            Asif.open(mnt / "store")
        _one_line_error(_cli(mnt / "store", "stats"), "read-only", str(mnt))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


class _CharEncoder:
    """A deterministic text encoder under the store's precomputed name (letter counts): prompts can be re-encoded."""

    name, dim, modality = f"precomputed:txt:{TXT_DIM}", TXT_DIM, "text"

    def encode(self, items: Any, batch_size: int = 64) -> np.ndarray:
        v = np.array([[t.count(c) for c in "acdgot"] for t in items], np.float32) + 0.1
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _ranked(a: Asif, q: np.ndarray, labels: str, tenant: str | None = None) -> list[list[tuple[str, float]]]:
    return [[(s.label, round(s.score, 6)) for s in p.top] for p in a.classify(vectors=q, labels=labels, top=3,
                                                                            tenant=tenant)]


@pytest.mark.parametrize("lost", ["relindex_text", "anchors"])
def test_doctor_reports_and_repairs_a_deleted_collection_folder(lost: str, tmp_path: Path,
                                                                request: pytest.FixtureRequest) -> None:
    """The tenancy layout: every tenant's label-set items share {prefix}relindex_text, so losing that folder loses
    the items of every label set (shared ones, tenant copies, tenant-own ones); galleries (relindex_image) stay."""
    import shutil

    from asif_qdrant.errors import NotFoundError
    from asif_qdrant.names import anchors_collection, relindex_collection

    a = _store_with_labels("edge", tmp_path, request)
    a.set_encoder("text", _CharEncoder())  # type: ignore[arg-type]
    a.define_labels("P", ["cat", "dog", "goat"], templates="plain")  # re-encodable
    rng = np.random.default_rng(3)
    img, txt = random_pairs(rng, 6)
    a.add_vectors(img, txt, tenant="acme", ids=list(range(100, 106)))
    a.define_labels("O", ["cat", "dog"], templates=["a {}", "the {}"], tenant="acme")  # acme's own
    a.add_gallery("G", vectors=rng.standard_normal((5, IMG_DIM)), payloads=[{"image_ref": f"g{i}"} for i in range(5)])
    q = rng.standard_normal((4, IMG_DIM))
    p_before, pa_before, o_before = _ranked(a, q, "P"), _ranked(a, q, "P", "acme"), _ranked(a, q, "O", "acme")
    gq = rng.standard_normal((2, TXT_DIM))
    g_before = [[(h.id, round(h.score, 6)) for h in r] for r in a.search(vector=gq, gallery="G", top=3)]
    assert a.relindexes.info("P", "acme", "labels").copied_from is not None  # acme's copy was made by its query
    assert a.doctor().findings == []
    victim = (anchors_collection(a.settings.prefix) if lost == "anchors"
              else relindex_collection(a.settings.prefix, "text"))
    a.close()
    shutil.rmtree(tmp_path / "store" / "collections" / victim)
    r = _cli(tmp_path / "store", "doctor")
    assert r.exit_code == 1 and victim in r.output and "missing" in r.output and "Traceback" not in r.output, r.output
    with Asif.open(tmp_path / "store") as a:
        a.set_encoder("text", _CharEncoder())  # type: ignore[arg-type]
        rep = a.doctor(repair=True)
        if lost == "anchors":
            assert a.count() == 0 and a.count(tenant="acme") == 0  # lost anchors are reported, never invented
            assert any(f.repaired and "anchor pairs it held are lost" in f.detail for f in rep.findings)
            assert all(p.label is None for p in a.classify(vectors=q, labels="P"))
        else:
            assert a.count() == 20 and a.count(tenant="acme") == 6
            found = {f.what.split(":")[0]: f for f in rep.findings}
            assert set(found) == {f"the relative-index collection {victim!r} is missing",
                                  "labels 'L' of tenant '_shared'", "labels 'P' of tenant '_shared'",
                                  "labels 'P' of tenant 'acme'", "labels 'O' of tenant 'acme'"}, list(found)
            # precomputed prompt vectors cannot be re-encoded: L is reported lost and its record removed
            lost_l = found["labels 'L' of tenant '_shared'"]
            assert not lost_l.repaired and "prompt vectors" in lost_l.detail and "define it again" in lost_l.detail
            assert all(f.repaired for k, f in found.items() if "'L'" not in k)
            with pytest.raises(NotFoundError, match="'L' does not exist"):
                a.classify(vectors=q, labels="L")
            # re-encoded from classes and templates, the copy made again from the shared definition
            assert _ranked(a, q, "P") == p_before
            assert _ranked(a, q, "P", "acme") == pa_before
            assert _ranked(a, q, "O", "acme") == o_before
        g_after = [[(h.id, round(h.score, 6)) for h in r] for r in a.search(vector=gq, gallery="G", top=3)]
        assert g_after == (g_before if lost != "anchors" else [[], []])
        assert a.doctor().findings == []
    r = _cli(tmp_path / "store", "doctor")
    assert r.exit_code == 0 and "healthy" in r.output, r.output


# -- 3. ties --------------------------------------------------------------------------------------------------


def _top1(a: Asif, q_img: np.ndarray, q_txt: np.ndarray) -> tuple[list[Any], list[Any]]:
    c = [(p.label, round(p.score, 5)) for p in a.classify(vectors=q_img, labels="D", top=3)]
    s = [[(h.id, round(h.score, 5)) for h in hs] for hs in a.search(vector=q_txt, gallery="G", top=1)]
    return c, s


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_exactly_tied_results_follow_one_rule_incrementally_and_after_a_rebuild(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Duplicate prompts and duplicate gallery images tie exactly: the label set's ranking (ties by label name)
    and the gallery's top-1 (ties by smaller item id) are the same after random edits and after a rebuild."""
    for trial in range(6):
        rng = np.random.default_rng(100 + trial)
        a = open_store(kind, tmp_path / f"t{trial}", request, k=6, p=4.0)
        img, txt = random_pairs(rng, 24)
        a.add_vectors(img, txt, ids=list(range(24)))
        prompts = rng.standard_normal((4, TXT_DIM))
        prompts[3] = prompts[1]  # labels 'b' and 'd' tie exactly
        a.define_labels("D", list("abcd"), templates="plain", prompt_vectors=prompts)
        gal = rng.standard_normal((6, IMG_DIM))
        gal[4], gal[5] = gal[2], gal[0]  # items 4 and 5 tie with items 2 and 0
        a.add_gallery("G", vectors=gal)
        q_img = np.vstack([img[:3], rng.standard_normal((3, IMG_DIM))])
        q_txt = np.vstack([txt[:4], rng.standard_normal((2, TXT_DIM))])
        for step in range(6):
            if step % 2 == 0:
                new_img, new_txt = random_pairs(rng, 3)
                a.add_vectors(new_img, new_txt, ids=[1000 + 10 * step + j for j in range(3)])
            else:
                a.delete([int(rng.integers(0, 24))])
            got = _top1(a, q_img, q_txt)
            a.refresh()
            assert _top1(a, q_img, q_txt) == got, (trial, step)
        labels = [p.top for p in a.classify(vectors=q_img, labels="D", top=4)]
        for ls in labels:
            names = [s.label for s in ls]
            if "b" in names and "d" in names:
                sb = next(s.score for s in ls if s.label == "b")
                sd = next(s.score for s in ls if s.label == "d")
                assert abs(sb - sd) < 1e-6 and names.index("b") < names.index("d")
        for hs in a.search(vector=q_txt, gallery="G", top=6):
            ids = [h.id for h in hs]
            for lo, hi in ((2, 4), (0, 5)):
                if lo in ids and hi in ids:
                    assert ids.index(lo) < ids.index(hi)
        a.close()


def _stored_topk(a: Asif, name: str) -> list[list[int]]:
    from asif_qdrant.relindex import decode_topk

    info = a.relindexes.require(name, "_shared")
    return [decode_topk(r.payload)[0][: info.k].tolist() for r in a.relindexes.items(info)]


@pytest.mark.slow  # 30 seeds of edits and rebuilds
@pytest.mark.parametrize("k", [1, 3])
def test_duplicate_anchors_keep_incremental_equal_to_a_rebuild(k: int, tmp_path: Path,
                                                               request: pytest.FixtureRequest) -> None:
    """Anchors with identical vectors get similarities that differ by engine noise (~4e-10 on qdrant-client local
    mode, depending on how they were queried: the incremental merge asks about the new ids only, a rebuild about
    all). They are ties, broken by the smaller id, so each item's top-k after edits is what a rebuild keeps."""
    mismatches = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        a = open_store("local", tmp_path, request, k=k, p=4.0)
        img, txt = random_pairs(rng, 12)
        a.add_vectors(img, txt, ids=list(range(50, 62)))
        a.define_labels("L", list("abcde"), templates="plain", prompt_vectors=rng.standard_normal((5, TXT_DIM)))
        free = [i for i in range(200) if not 50 <= i < 62]
        rng.shuffle(free)
        for step in range(4):
            if step % 2 == 0:  # duplicates of random anchors, some with smaller ids than the original, some larger
                src = rng.choice(12, size=4, replace=False)
                new_ids = [free.pop() for _ in src]
                a.add_vectors(img[src] * rng.uniform(0.5, 2.0), txt[src] * rng.uniform(0.5, 2.0), ids=new_ids)
            else:
                live = [r.id for r in a.engine.scroll(a.anchors.collection, with_payload=False)]
                a.delete([int(rng.choice(live))])
            got = _stored_topk(a, "L")
            a.refresh("L")
            if _stored_topk(a, "L") != got:
                mismatches.append((seed, step))
        a.close()
    assert mismatches == []
