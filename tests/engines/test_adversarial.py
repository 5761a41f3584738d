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
                 lambda: a.add_vectors(img, txt, payloads=[{}, {}, bad], ids=[0, 1, 2])):
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
