"""`asif serve` against a real uvicorn server on 127.0.0.1: every endpoint, every error status, tenant keys.

Tiny encoders: the store's fingerprint is precomputed:img:8 / precomputed:txt:6; for the upload endpoints the
test gives it deterministic pixel / character encoders under those names (Asif.set_encoder).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, small_settings
from live_server import Server, colour_store, png

from asif_qdrant import Asif
from asif_qdrant.serve import parse_keys

pytestmark = pytest.mark.server

ADMIN, KEY_A, KEY_B = "admin-key-0001", "tenant-a-key-0001", "tenant-b-key-0001"
CLASSES = ["red", "green", "blue"]


rng = np.random.default_rng(5)
BASE_IMG, BASE_TXT = rng.standard_normal((30, IMG_DIM)), rng.standard_normal((30, TXT_DIM))
A_IMG, A_TXT = rng.standard_normal((6, IMG_DIM)), rng.standard_normal((6, TXT_DIM))
B_IMG, B_TXT = rng.standard_normal((6, IMG_DIM)), rng.standard_normal((6, TXT_DIM))
PROMPTS = rng.standard_normal((3, TXT_DIM))
GALLERY = rng.standard_normal((5, IMG_DIM))
QUERY = rng.standard_normal((2, IMG_DIM))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Asif, Path]]:
    tmp = tmp_path_factory.mktemp("serve")
    root = tmp / "images"
    root.mkdir()
    (root / "red.png").write_bytes(png((250, 10, 10)))
    (tmp / "secret.png").write_bytes(png((10, 250, 10)))
    keys = f"{ADMIN}=@admin,{KEY_A}=acme,{KEY_B}=globex"
    a = colour_store(tmp / "store", (BASE_IMG, BASE_TXT), PROMPTS, GALLERY, api_keys=keys, serve_root=root,
                     max_batch=50, max_request_bytes=200_000, max_top=100)
    srv = Server(a)
    yield srv, a, root
    srv.stop()
    a.close()


def client(srv: Server, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=srv.url, headers=headers, timeout=30)


def err(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"]
    return str(body["error"])


def test_health_docs_and_openapi(served: Any) -> None:
    srv, _, _ = served
    with client(srv, None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        doc = c.get("/openapi.json").json()
        for path in ["/v1/classify", "/v1/classify/image", "/v1/search", "/v1/explain", "/v1/explain/image",
                     "/v1/anchors", "/v1/anchors/image", "/v1/anchors/delete", "/v1/labels/{name}",
                     "/v1/galleries/{name}", "/v1/tenants", "/v1/tenants/stats", "/v1/tenants/{tenant}"]:
            assert path in doc["paths"], path
        assert "swagger" in c.get("/docs").text.lower()


def test_keys_401_and_parse() -> None:
    assert parse_keys("abcdefgh1=acme, k-admin-12=@admin # c", "x") == {"abcdefgh1": "acme", "k-admin-12": "@admin"}
    from asif_qdrant.errors import ConfigError

    with pytest.raises(ConfigError, match="entry 1 is not KEY=TENANT"):
        parse_keys("justakey", "ASIF_API_KEYS")


def test_no_key_or_bad_key_is_401(served: Any) -> None:
    srv, _, _ = served
    body = {"labels": "colours", "vectors": QUERY.tolist()}
    with client(srv, None) as c:
        assert "missing API key" in err(c.post("/v1/classify", json=body), 401)
    with client(srv, "wrong-key-000000") as c:
        assert err(c.post("/v1/classify", json=body), 401) == "invalid API key"


def test_classify_search_explain_equal_the_library(served: Any) -> None:
    srv, a, _ = served
    with client(srv, ADMIN) as c:
        r = c.post("/v1/classify", json={"labels": "colours", "vectors": QUERY.tolist(), "top": 3})
        assert r.status_code == 200
        want = [p.as_dict() for p in a.classify(vectors=QUERY, labels="colours", top=3)]
        assert r.json()["predictions"] == json.loads(json.dumps(want))
        r = c.post("/v1/search", json={"gallery": "pics", "vectors": rng.standard_normal((1, TXT_DIM)).tolist()})
        assert r.status_code == 200 and len(r.json()["results"][0]) >= 1
        assert r.json()["results"][0][0]["payload"]["image_ref"].startswith("g")
        r = c.post("/v1/search", json={"gallery": "pics", "texts": ["red red"], "top": 2})
        hits = a.search(text="red red", gallery="pics", top=2)[0]
        assert [h["id"] for h in r.json()["results"][0]] == [h.id for h in hits]
        r = c.post("/v1/explain", json={"labels": "colours", "vector": QUERY[0].tolist(), "top": 4})
        ex = a.explain(vector=QUERY[0], labels="colours", top=4)
        got = r.json()["explained"][0]
        assert got["label"] == ex.label
        assert [c_["id"] for c_ in got["contributions"]] == [x.id for x in ex.contributions]
        assert abs(got["score"] - ex.score) < 1e-9
        html = c.post("/v1/explain?format=html", json={"labels": "colours", "vector": QUERY[0].tolist()})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "<!DOCTYPE html>" in html.text and "colours" in html.text


def test_uploads_and_server_paths(served: Any) -> None:
    srv, a, root = served
    with client(srv, ADMIN) as c:
        up = c.post("/v1/classify/image", files=[("images", ("r.png", png((250, 10, 10)), "image/png"))],
                    data={"labels": "colours", "top": "2"})
        assert up.status_code == 200, up.text
        by_path = c.post("/v1/classify", json={"labels": "colours", "paths": ["red.png"], "top": 2})
        assert by_path.json() == up.json()  # the same pixels, by upload or by path under the root
        lib = a.classify(images=[root / "red.png"], labels="colours", top=2)
        assert up.json()["predictions"][0]["label"] == lib[0].label
        assert "outside the serve root" in err(c.post("/v1/classify", json={"labels": "colours",
                                                                              "paths": ["../secret.png"]}), 403)
        assert "does not exist" in err(c.post("/v1/classify", json={"labels": "colours", "paths": ["no.png"]}), 404)
        bad = c.post("/v1/classify/image", files=[("images", ("x.png", b"not an image", "image/png"))],
                     data={"labels": "colours"})
        assert "not an image" in err(bad, 422)
        ex = c.post("/v1/explain/image", files={"image": ("r.png", png((250, 10, 10)), "image/png")},
                    data={"labels": "colours"})
        assert ex.status_code == 200 and ex.json()["labels"] == "colours"
        exh = c.post("/v1/explain/image?format=html", files={"image": ("r.png", png((250, 10, 10)), "image/png")},
                     data={"labels": "colours"})
        assert exh.headers["content-type"].startswith("text/html")
        ep = c.post("/v1/explain", json={"labels": "colours", "path": "red.png"})
        assert ep.json()["explained"][0]["score"] == pytest.approx(ex.json()["explained"][0]["score"])


def test_errors_have_codes_and_one_line_messages(served: Any) -> None:
    srv, _, _ = served
    with client(srv, ADMIN) as c:
        assert "label set 'nope' does not exist" in err(c.post("/v1/classify", json={"labels": "nope",
                                                                                     "vectors": QUERY.tolist()}), 404)
        assert "vectors" in err(c.post("/v1/classify", json={"labels": "colours",
                                                              "vectors": [[1.0, 2.0]]}), 422)
        assert "top=500" in err(c.post("/v1/classify", json={"labels": "colours", "vectors": QUERY.tolist(),
                                                               "top": 500}), 400)
        assert "either vectors or paths" in err(c.post("/v1/classify", json={"labels": "colours"}), 400)
        assert "labels" in err(c.post("/v1/classify", json={"vectors": QUERY.tolist()}), 422)
        assert "max_batch=50" in err(c.post("/v1/classify", json={"labels": "colours",
                                                                   "vectors": [[0.1] * IMG_DIM] * 51}), 413)
        big = c.post("/v1/anchors", content=b"x" * 250_000, headers={"content-type": "application/json"})
        assert "exceeds 200000 bytes" in err(big, 413)
        assert "delete needs ids" in err(c.post("/v1/anchors/delete", json={}), 400)
        assert err(c.get("/v1/nowhere"), 404) == "Not Found"
        assert "does not exist" in err(c.delete("/v1/tenants/nobody"), 404)
        assert "replace only existing" in err(c.put("/v1/anchors", json={
            "ids": [123456], "image_vectors": [[0.1] * IMG_DIM], "text_vectors": [[0.1] * TXT_DIM]}), 422)
        assert "name" in err(c.put("/v1/labels/bad name!", json={"classes": ["a"], "templates": "plain",
                                                                   "prompt_vectors": [[0.1] * TXT_DIM]}), 400)


def test_status_codes_of_library_errors() -> None:
    from asif_qdrant.errors import EngineError, SchemaError, StoreLockedError
    from asif_qdrant.serve import status_of

    assert [status_of(e("x")) for e in (SchemaError, StoreLockedError, EngineError)] == [409, 503, 503]


def test_tenant_keys_isolate_models(served: Any) -> None:
    srv, a, _ = served
    ca, cb, cadm = client(srv, KEY_A), client(srv, KEY_B), client(srv, ADMIN)
    try:
        ra = ca.post("/v1/anchors", json={"image_vectors": A_IMG.tolist(), "text_vectors": A_TXT.tolist(),
                                          "captions": [f"acme secret {i}" for i in range(6)],
                                          "image_refs": [f"acme/{i}.jpg" for i in range(6)]})
        assert ra.status_code == 200 and ra.json()["added"] == 6
        a_ids = set(ra.json()["ids"])
        rb = cb.post("/v1/anchors", json={"image_vectors": B_IMG.tolist(), "text_vectors": B_TXT.tolist(),
                                          "captions": [f"globex secret {i}" for i in range(6)],
                                          "image_refs": [f"globex/{i}.jpg" for i in range(6)]})
        b_ids = set(rb.json()["ids"])
        assert a.count("acme") == 6 and a.count("globex") == 6 and a.count(None) == 30
        # naming another tenant: 403 whether it exists or not, with the same message
        m1 = err(ca.post("/v1/classify", json={"labels": "colours", "vectors": QUERY.tolist(), "tenant": "globex"}),
                 403)
        m2 = err(ca.post("/v1/classify", json={"labels": "colours", "vectors": QUERY.tolist(), "tenant": "nobody"}),
                 403)
        assert m1 == m2
        assert err(ca.delete("/v1/tenants/globex"), 403) == "deleting a tenant needs an admin key"
        assert ca.get("/v1/tenants").json() == ["acme"]
        assert set(ca.get("/v1/tenants/stats").json()) == {"acme", "_shared"}
        assert set(cadm.get("/v1/tenants").json()) >= {"acme", "globex"}
        # A's answers are A's model: equal to the library's for tenant acme, and never name B's anchors
        for _ in range(2):
            ex = ca.post("/v1/explain", json={"labels": "colours", "vector": B_IMG[0].tolist(), "top": 50,
                                              "n_labels": 3})
            text = ex.text
            assert "globex" not in text
            for e in ex.json()["explained"]:
                assert not {c_["id"] for c_ in e["contributions"]} & b_ids
            want = a.explain(vector=B_IMG[0], labels="colours", top=50, tenant="acme", n_labels=3)
            assert [c_["id"] for c_ in ex.json()["explained"][0]["contributions"]] == \
                [x.id for x in want.contributions]
        got = ca.post("/v1/classify", json={"labels": "colours", "vectors": QUERY.tolist()}).json()
        assert got["predictions"] == json.loads(json.dumps(
            [p.as_dict() for p in a.classify(vectors=QUERY, labels="colours", tenant="acme")]))
        assert "globex" not in ca.post("/v1/search", json={"gallery": "pics", "texts": ["blue"]}).text
        # A cannot delete or replace B's anchors: its scope has no such ids
        d = ca.post("/v1/anchors/delete", json={"ids": sorted(b_ids)})
        assert d.status_code == 200 and d.json()["deleted"] == []
        assert a.count("globex") == 6
        assert "does not exist for tenant 'acme'" in err(ca.put("/v1/anchors", json={
            "ids": [min(b_ids)], "image_vectors": [A_IMG[0].tolist()], "text_vectors": [A_TXT[0].tolist()]}), 422)
        # a tenant label set: visible to its tenant only
        r = ca.put("/v1/labels/mine", json={"classes": ["x", "y"], "templates": "plain",
                                             "prompt_vectors": PROMPTS[:2].tolist(), "k": 8})
        assert r.status_code == 200 and r.json()["tenant"] == "acme"
        assert "mine" in {i["name"] for i in ca.get("/v1/labels").json()}
        assert "mine" not in {i["name"] for i in cb.get("/v1/labels").json()}
        assert "does not exist" in err(cb.post("/v1/classify", json={"labels": "mine", "vectors": QUERY.tolist()}),
                                       404)
        assert "acme" not in cb.get("/v1/labels").text
        # a corrected label set over HTTP: stored with its correction, answers as the embedded facade does
        r = ca.put("/v1/labels/mine", json={"classes": ["x", "y"], "templates": "plain", "replace": True,
                                             "prompt_vectors": PROMPTS[:2].tolist(), "k": 8, "correction": "zscore"})
        assert r.status_code == 200 and r.json()["correction"] == "zscore"
        got = ca.post("/v1/classify", json={"labels": "mine", "vectors": QUERY.tolist()}).json()
        assert got["predictions"] == json.loads(json.dumps(
            [p.as_dict() for p in a.classify(vectors=QUERY, labels="mine", tenant="acme")]))
        assert ca.put("/v1/labels/mine", json={"classes": ["x"], "templates": "plain", "replace": True,
                                               "correction": "bad"}).status_code == 422
        assert ca.delete("/v1/labels/mine").status_code == 200
        assert "does not exist" in err(ca.delete("/v1/labels/mine"), 404)
        # a tenant key cannot touch the shared label set (its delete looks in its own tenant only)
        assert "does not exist" in err(ca.delete("/v1/labels/colours"), 404)
        assert a_ids and not a_ids & b_ids
    finally:
        for c in (ca, cb, cadm):
            c.close()


def test_anchor_and_index_lifecycle(served: Any) -> None:
    srv, a, _ = served
    with client(srv, ADMIN) as c:
        r = c.post("/v1/anchors/image", files=[("images", ("g.png", png((10, 240, 10)), "image/png")),
                                                ("images", ("b.png", png((10, 10, 240)), "image/png"))],
                   data={"captions": ["a green square", "a blue square"], "tenant": "pixels"})
        assert r.status_code == 200, r.text
        ids = r.json()["ids"]
        assert a.count("pixels") == 2
        again = c.post("/v1/anchors/image", files=[("images", ("g.png", png((10, 240, 10)), "image/png"))],
                       data={"captions": ["a green square"], "tenant": "pixels"})
        assert again.json()["duplicates"] == 1 and again.json()["ids"] == ids[:1]
        rep = c.put("/v1/anchors", json={"ids": ids[:1], "image_vectors": [[0.3] * IMG_DIM],
                                         "text_vectors": [[0.2] * TXT_DIM], "captions": ["replaced"],
                                         "tenant": "pixels"})
        assert rep.status_code == 200 and rep.json()["ids"] == ids[:1]
        rec = a.engine.retrieve(a.anchors.collection, ids[:1], with_payload=True)[0]
        assert rec.payload["caption"] == "replaced"
        g = c.put("/v1/galleries/tmp", json={"vectors": GALLERY[:3].tolist(), "k": 8, "tenant": "pixels"})
        assert g.status_code == 200 and g.json()["n_items"] == 3
        assert "tmp" in {i["name"] for i in c.get("/v1/galleries", params={"tenant": "pixels"}).json()}
        assert c.delete("/v1/galleries/tmp", params={"tenant": "pixels"}).status_code == 200
        assert "tmp" not in {i["name"] for i in c.get("/v1/galleries", params={"tenant": "pixels"}).json()}
        lab = c.put("/v1/labels/tmp", json={"classes": ["p", "q"], "templates": "plain",
                                            "prompt_vectors": PROMPTS[:2].tolist(), "k": 8})
        assert lab.status_code == 200 and lab.json()["tenant"] == "_shared"
        # the shared label set answers for the tenant (it gets a tenant copy), and deleting it removes both
        assert c.post("/v1/classify", json={"labels": "tmp", "vectors": QUERY.tolist(),
                                            "tenant": "pixels"}).status_code == 200
        assert c.delete("/v1/labels/tmp").status_code == 200
        assert "does not exist" in err(c.post("/v1/classify", json={"labels": "tmp", "vectors": QUERY.tolist(),
                                                                     "tenant": "pixels"}), 404)
        d = c.post("/v1/anchors/delete", json={"ids": ids[1:], "tenant": "pixels"})
        assert d.json()["deleted"] == ids[1:]
        res = c.delete("/v1/tenants/pixels")
        assert res.status_code == 200 and res.json()["anchors"] == 1
        assert "pixels" not in c.get("/v1/tenants").json()


def test_defining_an_existing_name_is_409_unless_replace(served: Any) -> None:
    srv, a, _ = served
    body = {"classes": ["p", "q"], "templates": "plain", "prompt_vectors": PROMPTS[:2].tolist(), "k": 8}
    with client(srv, ADMIN) as c:
        assert c.put("/v1/labels/dup", json=body).status_code == 200
        bigger = {**body, "classes": ["p", "q", "r"], "prompt_vectors": PROMPTS.tolist()}
        msg = err(c.put("/v1/labels/dup", json=bigger), 409)
        assert msg.startswith("label set 'dup' already exists for tenant '_shared' (2 items)") and "replace" in msg
        assert [i["classes"] for i in c.get("/v1/labels").json() if i["name"] == "dup"] == [["p", "q"]]  # as it was
        r = c.put("/v1/labels/dup", json={**bigger, "replace": True})
        assert r.status_code == 200 and r.json()["classes"] == ["p", "q", "r"] and r.json()["n_items"] == 3
        got = c.post("/v1/classify", json={"labels": "dup", "vectors": QUERY.tolist(), "top": 3}).json()
        assert got["predictions"] == json.loads(json.dumps([p.as_dict() for p in a.classify(
            vectors=QUERY, labels="dup", top=3)]))
        assert {t["label"] for t in got["predictions"][0]["top"]} == {"p", "q", "r"}

        g = {"vectors": GALLERY[:2].tolist(), "k": 8, "tenant": "globex"}
        assert c.put("/v1/galleries/dupg", json=g).status_code == 200
        msg = err(c.put("/v1/galleries/dupg", json={**g, "vectors": GALLERY.tolist()}), 409)
        assert msg.startswith("gallery 'dupg' already exists for tenant 'globex' (2 items)")
        listed = {i["name"]: i["n_items"] for i in c.get("/v1/galleries", params={"tenant": "globex"}).json()}
        assert listed["dupg"] == 2
        r = c.put("/v1/galleries/dupg", json={**g, "vectors": GALLERY.tolist(), "replace": True})
        assert r.status_code == 200 and r.json()["n_items"] == 5

        # a tenant's copy of a shared label set is not its own definition: the tenant may define its own
        assert c.post("/v1/classify", json={"labels": "dup", "vectors": QUERY.tolist(),
                                            "tenant": "globex"}).status_code == 200
        own = c.put("/v1/labels/dup", json={**body, "tenant": "globex"})
        assert own.status_code == 200 and own.json()["tenant"] == "globex" and own.json()["classes"] == ["p", "q"]
        assert "already exists for tenant 'globex'" in err(c.put("/v1/labels/dup", json={**body,
                                                                                          "tenant": "globex"}), 409)
        for path, params in (("/v1/labels/dup", {"tenant": "globex"}), ("/v1/labels/dup", {}),
                             ("/v1/galleries/dupg", {"tenant": "globex"})):
            assert c.delete(path, params=params).status_code == 200


def test_a_request_behind_a_long_edit_gets_503_then_succeeds(tmp_path: Path) -> None:
    """ASIF_LOCK_TIMEOUT_S: a read or an edit that waits longer for the store's lock gets 503 with Retry-After,
    and nothing of the refused edit is stored; once the long edit ends, the same requests succeed."""
    a = Asif.open(tmp_path / "store", **small_settings(api_keys=f"{ADMIN}=@admin", lock_timeout_s=0.3))
    a.add_vectors(BASE_IMG, BASE_TXT, captions=[f"shared {i}" for i in range(30)])
    a.define_labels("colours", CLASSES, templates="plain", prompt_vectors=PROMPTS, k=8)
    srv = Server(a)
    holding, release = threading.Event(), threading.Event()

    def long_edit() -> None:  # an edit that holds the exclusive lock until told to stop
        holding.set()
        release.wait(30)

    editor = threading.Thread(target=a.exclusive, args=(long_edit,), daemon=True)
    try:
        with client(srv, ADMIN) as c:
            editor.start()
            assert holding.wait(10)
            r = c.post("/v1/classify", json={"labels": "colours", "vectors": QUERY.tolist()})
            msg = err(r, 503)
            assert msg.startswith("the store is busy: a read waited more than 0.3 s") and "retry" in msg
            assert r.headers["retry-after"] == "1"
            add = {"image_vectors": A_IMG.tolist(), "text_vectors": A_TXT.tolist(), "tenant": "acme"}
            assert "an edit waited more than 0.3 s" in err(c.post("/v1/anchors", json=add), 503)
            assert c.get("/healthz").status_code == 200  # alive: only the store is busy
            release.set()
            editor.join(10)
            got = c.post("/v1/classify", json={"labels": "colours", "vectors": QUERY.tolist()})
            assert got.status_code == 200
            assert got.json()["predictions"] == json.loads(json.dumps(
                [p.as_dict() for p in a.classify(vectors=QUERY, labels="colours")]))
            assert a.count("acme") == 0  # the refused edit stored nothing
            r = c.post("/v1/anchors", json=add)
            assert r.status_code == 200 and r.json()["added"] == 6 and a.count("acme") == 6
    finally:
        release.set()
        srv.stop()
        a.close()


def _close(x: Any, y: Any) -> bool:
    """Equal labels / ids and scores within float32 rounding (nested lists of (name, score) pairs)."""
    if isinstance(x, tuple):
        return x[0] == y[0] and abs(float(x[1]) - float(y[1])) <= 1e-5
    return isinstance(y, list) and len(x) == len(y) and all(_close(u, v) for u, v in zip(x, y, strict=True))


def test_concurrent_http_reads_and_edits_see_only_whole_states(tmp_path: Path) -> None:
    """One server, 3 clients reading (classify, search, explain) with tenant A's key while a 4th adds, replaces
    and deletes A's anchors: every request succeeds and every answer is that of a state before or after an edit."""
    a = Asif.open(tmp_path / "store", **small_settings(api_keys=f"{ADMIN}=@admin,{KEY_A}=acme"))
    a.add_vectors(BASE_IMG, BASE_TXT, captions=[f"shared {i}" for i in range(30)])
    a.add_vectors(np.ones((1, IMG_DIM)), np.ones((1, TXT_DIM)), captions=["own"], tenant="acme")
    a.define_labels("colours", CLASSES, templates="plain", prompt_vectors=PROMPTS, k=8)
    a.add_gallery("pics", vectors=GALLERY, k=8)
    ids = list(range(70_000, 70_006))
    second = (rng.standard_normal((6, IMG_DIM)), rng.standard_normal((6, TXT_DIM)))
    edits = [("POST", "/v1/anchors", {"ids": ids, "image_vectors": A_IMG.tolist(), "text_vectors": A_TXT.tolist()}),
             ("PUT", "/v1/anchors", {"ids": ids, "image_vectors": second[0].tolist(),
                                     "text_vectors": second[1].tolist()}),
             ("POST", "/v1/anchors/delete", {"ids": ids})]
    reads = {
        "classify": ("/v1/classify", {"labels": "colours", "vectors": QUERY.tolist(), "top": 3},
                     lambda j: [[(t["label"], t["score"]) for t in p["top"]] for p in j["predictions"]]),
        "search": ("/v1/search", {"gallery": "pics", "vectors": rng.standard_normal((2, TXT_DIM)).tolist(), "top": 3},
                   lambda j: [[(h["id"], h["score"]) for h in hs] for hs in j["results"]]),
        "explain": ("/v1/explain", {"labels": "colours", "vector": QUERY[0].tolist(), "top": 5},
                    lambda j: [(c["id"], c["contribution"]) for c in j["explained"][0]["contributions"]]),
    }
    srv = Server(a)
    try:
        with client(srv, KEY_A) as c:
            def answers() -> dict[str, Any]:
                out = {}
                for what, (path, body, pick) in reads.items():
                    r = c.post(path, json=body)
                    assert r.status_code == 200, r.text
                    out[what] = pick(r.json())
                return out

            states = [answers()]
            for method, path, body in edits:  # the states, one request at a time
                assert c.request(method, path, json=body).status_code == 200
                states.append(answers())
        assert not _close(states[0]["classify"], states[1]["classify"])  # the edits change the answers
        assert not _close(states[1]["explain"], states[2]["explain"])
        assert all(_close(states[0][w], states[3][w]) for w in reads)

        failures: list[str] = []
        mismatches: list[tuple[str, Any]] = []
        counts = dict.fromkeys(reads, 0)
        stop = threading.Event()

        def reader(what: str) -> None:
            path, body, pick = reads[what]
            with client(srv, KEY_A) as c:
                while not stop.is_set():
                    r = c.post(path, json=body)
                    if r.status_code != 200:
                        failures.append(f"{what}: {r.status_code} {r.text}")
                        return
                    got = pick(r.json())
                    counts[what] += 1
                    if not any(_close(got, s[what]) for s in states):
                        mismatches.append((what, got))

        def writer() -> None:
            try:
                with client(srv, KEY_A) as c:
                    for _ in range(5):
                        for method, path, body in edits:
                            r = c.request(method, path, json=body)
                            if r.status_code != 200:
                                failures.append(f"{method} {path}: {r.status_code} {r.text}")
                                return
                            time.sleep(0.01)
            finally:
                stop.set()

        threads = [threading.Thread(target=reader, args=(w,)) for w in reads] + [threading.Thread(target=writer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not any(t.is_alive() for t in threads)
        assert failures == [] and mismatches == []
        assert min(counts.values()) >= 3, counts
        with client(srv, KEY_A) as c:
            final = {w: pick(c.post(path, json=body).json()) for w, (path, body, pick) in reads.items()}
        assert all(_close(final[w], states[0][w]) for w in reads)  # whole cycles: back to the first state
        assert a.count("acme") == 1
    finally:
        srv.stop()
        a.close()
