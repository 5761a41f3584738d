"""Shared fixtures: the same behavioural tests run on every engine.

- ``edge``: Qdrant Edge (embedded) in a temporary folder;
- ``local``: qdrant-client local mode (``:memory:``), which has the server's API;
- ``server``: a real Qdrant server from testcontainers, skipped with the reason when no Docker engine answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from asif_qdrant import Asif, AsifSettings  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMG_DIM, TXT_DIM = 8, 6
ENGINES = ["edge", "local", "server"]


def _docker_reason() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return None
    except Exception as e:  # any failure means: no engine to run a container
        return f"no Docker engine answers ({type(e).__name__}: {str(e)[:120]}); the server variant needs one"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The server variant of an engine-parametrised test (or one that asks for the server) is marked ``server``."""
    for item in items:
        params = getattr(item, "callspec", None)
        if "qdrant_server_url" in getattr(item, "fixturenames", ()) or (
            params is not None and "server" in params.params.values()
        ):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    reason = _docker_reason()
    if reason:
        pytest.skip(reason)
    from testcontainers.qdrant import QdrantContainer

    with QdrantContainer("qdrant/qdrant:v1.20.0") as q:
        yield f"http://{q.get_container_host_ip()}:{q.exposed_rest_port}"


def small_settings(**kw: Any) -> dict[str, Any]:
    """Tiny precomputed encoders. Label sets score as the paper does (correction 'none') unless a test asks for the
    hub correction (correction=...): the tests of the ASIF math compare against the uncorrected dense reference."""
    return {"image_encoder": f"precomputed:img:{IMG_DIM}", "text_encoder": f"precomputed:txt:{TXT_DIM}",
            "correction": "none", **kw}


def open_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest, **kw: Any) -> Asif:
    """An Asif store on the given engine, with small precomputed encoders unless overridden."""
    opts = small_settings(**kw)
    if kind == "edge":
        return Asif.open(tmp_path / "store", **opts)
    if kind == "local":
        return Asif.open(url=":memory:", **opts)
    url = request.getfixturevalue("qdrant_server_url")
    prefix = f"t{abs(hash(request.node.nodeid)) % 10**8}_"
    return Asif.open(url=url, prefix=prefix, **opts)


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(engine_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Asif]:
    a = open_store(engine_kind, tmp_path, request)
    yield a
    a.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, IMG_DIM)).astype(np.float32), rng.standard_normal((n, TXT_DIM)).astype(np.float32)


__all__ = ["AsifSettings", "IMG_DIM", "TXT_DIM", "SHARED_DATA", "random_pairs", "open_store", "small_settings"]


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit L2 norm along its last axis."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def edit_anchors(
    a: Asif, anchors: dict[int, tuple[str, np.ndarray, np.ndarray]], op: str, tenant: str, n: int,
    r: np.random.Generator,
) -> None:
    """One random anchor edit of ``tenant`` ("add", "delete" or "replace" ``n`` pairs) through the plugin, mirrored in
    ``anchors`` (id -> (tenant, unit image vector, unit text vector)), the model that property tests check against.
    A delete or replace of a tenant that owns no anchor does nothing."""
    t_arg = None if tenant == "_shared" else tenant
    own = [i for i, (t, _, _) in anchors.items() if t == tenant]
    if op == "add":
        img, txt = r.standard_normal((n, IMG_DIM)), r.standard_normal((n, TXT_DIM))
        for i, pid in enumerate(a.add_vectors(img, txt, tenant=t_arg).ids):
            anchors[pid] = (tenant, unit(img[i]), unit(txt[i]))
    elif op == "delete" and own:
        gone = [own[j] for j in r.choice(len(own), size=min(n, len(own)), replace=False)]
        assert a.delete(gone, tenant=t_arg).count == len(gone)
        for g in gone:
            del anchors[g]
    elif op == "replace" and own:
        ids = own[:n]
        img, txt = r.standard_normal((len(ids), IMG_DIM)), r.standard_normal((len(ids), TXT_DIM))
        a.replace(ids, img, txt, tenant=t_arg)
        for i, pid in enumerate(ids):
            anchors[pid] = (tenant, unit(img[i]), unit(txt[i]))
