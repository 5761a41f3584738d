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
    return {"image_encoder": f"precomputed:img:{IMG_DIM}", "text_encoder": f"precomputed:txt:{TXT_DIM}", **kw}


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
