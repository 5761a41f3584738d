"""The tagging's CLI (`asif tag`, `asif tags`, `asif explain --tag`) and HTTP (`/v1/tags`) surfaces."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, TXT_DIM, small_settings

from asif_qdrant import Asif
from asif_qdrant.cli import main
from asif_qdrant.engines.base import CollectionSpec, PointBatch


def _store(a: Asif, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a.add_vectors(rng.standard_normal((20, IMG_DIM)), rng.standard_normal((20, TXT_DIM)))
    a.add_vectors(rng.standard_normal((4, IMG_DIM)), rng.standard_normal((4, TXT_DIM)), tenant="acme")
    a.define_labels("L", list("abc"), templates="plain", prompt_vectors=rng.standard_normal((3, TXT_DIM)))
    a.engine.create_collection("photos", CollectionSpec(dense={"img": IMG_DIM}))
    vecs = rng.standard_normal((6, IMG_DIM)).astype(np.float32)
    a.engine.upsert("photos", PointBatch(list(range(6)), {"img": vecs}, payloads=[{"owner": "acme"}] * 6))
    return vecs


def test_cli_tag_list_sync_explain_delete(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Asif.open(path, **small_settings()) as a:
        _store(a)
    env = {"ASIF_IMAGE_ENCODER": f"precomputed:img:{IMG_DIM}", "ASIF_TEXT_ENCODER": f"precomputed:txt:{TXT_DIM}"}

    def run(*args: str) -> dict | list:
        r = CliRunner().invoke(main, ["--path", str(path), *args, "--json"], env=env, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    info = run("tag", "photos", "--vector", "img", "--labels", "L", "--field", "cat", "--tenant", "acme",
               "--filter", '{"must": [{"key": "owner", "match": {"value": "acme"}}]}')
    assert (info["points"], info["tenant"], info["pending"]) == (6, "acme", False)
    assert [t["field"] for t in run("tags", "list", "--tenant", "acme")] == ["cat"]
    assert run("tags", "list") == []
    assert run("tag", "photos", "--field", "cat", "--sync", "--tenant", "acme")["points"] == 6
    ex = run("explain", "--tag", "cat", "--point", "3", "--tenant", "acme", "--top", "3")
    with Asif.open(path, **small_settings()) as a:
        tag = a.engine.retrieve("photos", [3])[0].payload["cat"]
        assert [c["id"] for c in ex["contributions"]] == tag["anchors"] and ex["predicted"] == tag["label"]
    r = CliRunner().invoke(main, ["--path", str(path), "tag", "photos", "--field", "x"], env=env)
    assert r.exit_code != 0 and "--vector and --labels" in r.output
    assert run("tags", "delete", "cat", "--tenant", "acme")["field"] == "cat"
    with Asif.open(path, **small_settings()) as a:
        assert all("cat" not in r.payload for r in a.engine.scroll("photos"))


def test_http_tags_with_tenant_keys(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from asif_qdrant.serve import create_app

    a = Asif.open(tmp_path / "s", **small_settings(api_keys="key-admin-0001=@admin,key-acme-0001=acme,"
                                                   "key-beta-0001=beta", tag_collections="photos"))
    try:
        _store(a, 1)
        acme, beta = {"Authorization": "Bearer key-acme-0001"}, {"Authorization": "Bearer key-beta-0001"}
        with TestClient(create_app(a)) as c:
            body = {"collection": "photos", "vector": "img", "labels": "L",
                    "filter": {"must": [{"key": "owner", "match": {"value": "acme"}}]}}
            r = c.put("/v1/tags/cat", json=body, headers=acme)
            assert r.status_code == 200, r.text
            assert r.json()["tenant"] == "acme" and r.json()["points"] == 6
            assert [t["field"] for t in c.get("/v1/tags", headers=acme).json()] == ["cat"]
            assert c.get("/v1/tags", headers=beta).json() == []  # another tenant sees nothing
            assert c.get("/v1/tags?tenant=acme", headers=beta).status_code == 403
            assert c.delete("/v1/tags/cat", headers=beta).status_code == 404
            r = c.put("/v1/tags/cat", json=body, headers=beta)  # nor can it take the field over
            assert r.status_code == 409, r.text
            assert c.post("/v1/tags/cat/sync", json={}, headers=acme).json()["points"] == 6
            ex = c.get("/v1/tags/cat/explain?point=2&top=3", headers=acme).json()
            tag = a.engine.retrieve("photos", [2])[0].payload["cat"]
            assert [x["id"] for x in ex["contributions"]] == tag["anchors"]
            r = c.put("/v1/tags/cat2", json={**body, "vector": "nope"}, headers=acme)
            assert r.status_code == 404 and "no vector named 'nope'" in r.json()["error"]
            # a tenant key tags only the collections an admin listed in ASIF_TAG_COLLECTIONS; an admin key any
            r = c.put("/v1/tags/cat3", json={**body, "collection": "other"}, headers=acme)
            assert r.status_code == 403 and "ASIF_TAG_COLLECTIONS" in r.json()["error"]
            r = c.put("/v1/tags/cat3", json={**body, "collection": "other"},
                      headers={"Authorization": "Bearer key-admin-0001"})
            assert r.status_code == 404 and "other" in r.json()["error"]  # past the key check: no such collection
            assert c.delete("/v1/tags/cat", headers=acme).status_code == 200
            assert all("cat" not in p.payload for p in a.engine.scroll("photos"))
    finally:
        a.close()


@pytest.mark.timeout(60)
def test_serve_syncs_tags_every_few_seconds(tmp_path: Path) -> None:
    from asif_qdrant.serve.routers.tags import sync_tags_every

    with Asif.open(tmp_path / "s", **small_settings()) as a:
        _store(a, 2)
        a.tag("photos", vector="img", labels="L", field="cat")
        a.engine.upsert("photos", PointBatch([99], {"img": np.ones((1, IMG_DIM), np.float32)}))
        stop = threading.Event()
        th = threading.Thread(target=sync_tags_every, args=(a, 0.05, stop), daemon=True)
        th.start()
        for _ in range(400):
            if "cat" in a.engine.retrieve("photos", [99])[0].payload:
                break
            threading.Event().wait(0.05)
        stop.set()
        th.join(5)
        assert a.engine.retrieve("photos", [99])[0].payload["cat"]["label"] is not None
        assert a.list_tags()[0].points == 7


def test_client_and_cli_with_server_tag_list_sync_explain_delete(tmp_path: Path) -> None:
    """AsifClient's tag methods take the facade's arguments and give its result types; `asif tag/tags/explain --tag`
    run through --server; a tenant key works on its own taggings only."""
    from live_server import Server

    from asif_qdrant import NotFoundError
    from asif_qdrant.client import AsifClient

    a = Asif.open(tmp_path / "s", **small_settings(api_keys="key-admin-0001=@admin,key-acme-0001=acme,"
                                                   "key-beta-0001=beta", tag_collections="photos"))
    srv = Server(a)
    try:
        _store(a, 2)
        with AsifClient(srv.url, "key-acme-0001") as acme, AsifClient(srv.url, "key-beta-0001") as beta:
            info = acme.tag("photos", vector="img", labels="L", field="cat",
                            filter='{"must": [{"key": "owner", "match": {"value": "acme"}}]}')
            assert info == a.list_tags("acme")[0] and (info.points, info.tenant) == (6, "acme")
            assert acme.list_tags() == a.list_tags("acme") and beta.list_tags() == []
            assert acme.sync_tags("cat") == {"added": 0, "deleted": 0, "rewritten": 0, "points": 6}
            ex = acme.explain_tag("cat", 4, top=3)
            assert ex.contributions == a.explain_tag("cat", 4, tenant="acme", top=3).contributions
            with pytest.raises(NotFoundError, match="no tagging of field 'cat'"):
                beta.delete_tags("cat")
        env = {"ASIF_SERVER": srv.url, "ASIF_SERVER_KEY": "key-acme-0001"}

        def run(*args: str) -> dict | list:
            r = CliRunner().invoke(main, [*args, "--json"], env=env, catch_exceptions=False)
            assert r.exit_code == 0, r.output
            return json.loads(r.stdout)

        assert [t["field"] for t in run("tags", "list")] == ["cat"]
        assert run("tag", "photos", "--field", "cat", "--sync")["points"] == 6
        ex2 = run("explain", "--tag", "cat", "--point", "4", "--top", "3")
        assert [c["id"] for c in ex2["contributions"]] == a.engine.retrieve("photos", [4])[0].payload["cat"]["anchors"]
        assert run("tags", "delete", "cat")["field"] == "cat"
        assert a.list_tags("acme") == [] and all("cat" not in p.payload for p in a.engine.scroll("photos"))
    finally:
        srv.stop()
        a.close()
