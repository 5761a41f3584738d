"""`asif labels add` warns about classes the anchors do not support, `asif labels check` shows the coverage table
(and the exact JSON), and the HTTP API returns it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, small_settings
from fake_encoders import CharEncoder, install_fakes

from asif_qdrant import Asif
from asif_qdrant.cli import main

pytestmark = pytest.mark.timeout(120)


def _store(tmp_path: Path) -> Path:
    """40 anchors whose captions talk about red (char-count text encoder), none about 'gggg'."""
    path = tmp_path / "s"
    rng = np.random.default_rng(5)
    caps = [f"red red {'e' * (i % 3)}" for i in range(40)]
    with Asif.open(path, **small_settings()) as a:
        a.add_vectors(rng.standard_normal((40, IMG_DIM)), CharEncoder().encode(caps), captions=caps)
    return path


def test_labels_add_warns_and_check_prints_the_table_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fakes(monkeypatch)
    path = _store(tmp_path)
    run = CliRunner()
    r = run.invoke(main, ["--path", str(path), "labels", "add", "L", "--classes", "red,gggg", "--templates", "plain"])
    assert r.exit_code == 0, r.output
    assert "label set 'L'" in r.stdout and "warning" not in r.stdout
    assert r.stderr.count("warning:") == 1
    assert "class 'gggg' is unsupported by the anchors (support 0)" in r.stderr and "asif teach" in r.stderr
    r = run.invoke(main, ["--path", str(path), "labels", "check", "L", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"classes": [{"class": "red", "support": 40, "verdict": "supported"},
                                                {"class": "gggg", "support": 0, "verdict": "unsupported"}]}
    r = run.invoke(main, ["--path", str(path), "labels", "check", "L"])
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["class", "support", "verdict"]
    assert lines[1].split() == ["red", "40", "supported"] and lines[2].split() == ["gggg", "0", "unsupported"]
    assert "1 supported, 0 weak, 1 unsupported" in r.stdout and "fix: gggg: teach" in r.stdout
    r = run.invoke(main, ["--path", str(path), "labels", "check", "nope"])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_http_define_and_coverage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from asif_qdrant.serve import create_app

    install_fakes(monkeypatch)
    with Asif.open(_store(tmp_path), **small_settings()) as a, TestClient(create_app(asif=a)) as c:
        r = c.put("/v1/labels/L", json={"classes": ["red", "gggg"], "templates": "plain"})
        assert r.status_code == 200, r.text
        want = [{"class": "red", "support": 40, "verdict": "supported"},
                {"class": "gggg", "support": 0, "verdict": "unsupported"}]
        assert r.json()["coverage"] == want
        assert c.get("/v1/labels/L/coverage").json() == {"classes": want}
        # the typed client (asif --server labels check) gets the same, fixes filled in
        import httpx

        from asif_qdrant.client import AsifClient

        def relay(req: httpx.Request) -> httpx.Response:
            got = c.request(req.method, req.url.raw_path.decode(), content=req.content, headers=dict(req.headers))
            return httpx.Response(got.status_code, headers=got.headers, content=got.content)

        with AsifClient("http://x", transport=httpx.MockTransport(relay)) as client:
            cov = client.coverage("L")
            assert cov.as_dict() == {"classes": want}
            assert cov.of("gggg").fix is not None and cov.of("red").fix is None  # type: ignore[union-attr]
