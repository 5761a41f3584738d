"""`asif serve` treated as hostile ground: files confined to the allowed folders, decoding bounded before any pixel
is decoded, every count bounded by one rule, rate limits, a client that disconnects, and clients that fit (the
OpenAPI security scheme and error schema, offline docs, health, metrics, request ids, CORS, HTTP-speaking errors).

Most tests use FastAPI's TestClient (no network); the disconnect test runs uvicorn on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, TXT_DIM, small_settings
from fake_encoders import CharEncoder, PixelEncoder
from fastapi.testclient import TestClient
from live_server import Server, png
from PIL import Image

import asif_qdrant.encoders as encoders_pkg
from asif_qdrant import Asif
from asif_qdrant.errors import ImageTooLargeError
from asif_qdrant.serve import create_app

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

ADMIN, KEY_A, KEY_B = "admin-key-0001", "tenant-a-key-0001", "tenant-b-key-0001"
KEYS = f"{ADMIN}=@admin,{KEY_A}=acme,{KEY_B}=globex"
rng = np.random.default_rng(11)
BASE_IMG, BASE_TXT = rng.standard_normal((30, IMG_DIM)), rng.standard_normal((30, TXT_DIM))
PROMPTS = rng.standard_normal((3, TXT_DIM))
QUERY = rng.standard_normal((2, IMG_DIM))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (a 13000 x 13000 bomb is 37 KB; its header is what counts)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bomb(side: int) -> bytes:
    """A real, decodable bomb: a side x side black PNG, a few KB on disk."""
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def err(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"]
    return str(body["error"])


def open_store(tmp: Path, **kw: Any) -> Asif:
    a = Asif.open(tmp / "store", **small_settings(api_keys=KEYS, **kw))
    a.set_encoder("image", PixelEncoder())  # type: ignore[arg-type]
    a.set_encoder("text", CharEncoder())  # type: ignore[arg-type]
    a.add_vectors(BASE_IMG, BASE_TXT, captions=[f"shared {i}" for i in range(30)])
    a.define_labels("colours", ["red", "green", "blue"], templates="plain", prompt_vectors=PROMPTS, k=8)
    return a


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("security")
    root = tmp / "images"
    root.mkdir()
    (root / "red.png").write_bytes(png((250, 10, 10)))
    (tmp / "secret.png").write_bytes(png((10, 250, 10)))
    (root / "escape.png").symlink_to(tmp / "secret.png")
    (root / "loop").symlink_to(root / "loop")
    (root / "bomb.png").write_bytes(bomb(1500))
    a = open_store(tmp, serve_root=root, max_image_pixels=1_000_000, max_request_pixels=2_000_000, max_classes=20,
                   max_ids=10, max_batch=50, max_top=100)
    # anchors whose pictures a report may or may not show: one inside the serve root, one anywhere on the server
    a.add_vectors(QUERY[:1] * 3, PROMPTS[:1], captions=["inside"], image_refs=["red.png"], tenant="acme")
    a.add_vectors(QUERY[:1] * 2 + 0.01, PROMPTS[:1] + 0.01, captions=["outside"],
                  image_refs=[str(tmp / "secret.png")], tenant="acme")
    with TestClient(create_app(a)) as tc:
        yield {"a": a, "tc": tc, "root": root, "tmp": tmp}
    a.close()


def as_key(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


# -- 1. files -------------------------------------------------------------------------------------------------
def test_request_paths_stay_inside_the_serve_root(world: dict[str, Any]) -> None:
    tc = world["tc"]
    h = as_key(KEY_A)

    def classify(path: str) -> httpx.Response:
        return tc.post("/v1/classify", json={"labels": "colours", "paths": [path]}, headers=h)

    assert classify("red.png").status_code == 200
    for outside in ("../secret.png", str(world["tmp"] / "secret.png"), "escape.png"):  # escape.png: a link out
        msg = err(classify(outside), 403)
        assert "outside the serve root" in msg and "secret" not in msg.replace(outside, "")  # no resolved target
    assert "NUL byte" in err(classify("red\x00.png"), 400)
    assert "too long" in err(classify("a" * 10_000), 400)
    loop = classify("loop")
    assert loop.status_code in (400, 404) and str(world["root"]) not in loop.text
    assert str(world["root"]) not in err(classify("nope.png"), 404)
    ex = tc.post("/v1/explain", json={"labels": "colours", "path": "red\x00.png"}, headers=h)
    assert "NUL byte" in err(ex, 400)


def test_image_refs_that_leave_the_root_are_403_and_reports_show_only_confined_pictures(world: dict[str, Any]) -> None:
    tc, tmp = world["tc"], world["tmp"]
    body = {"image_vectors": rng.standard_normal((1, IMG_DIM)).tolist(),
            "text_vectors": rng.standard_normal((1, TXT_DIM)).tolist()}
    for ref in (str(tmp / "secret.png"), "../secret.png", "a/../../secret.png", "~/x.png"):
        msg = err(tc.post("/v1/anchors", json={**body, "image_refs": [ref]}, headers=as_key(KEY_B)), 403)
        assert "leaves the serve root" in msg
    assert world["a"].count("globex") == 0
    # the report of acme's query shows the picture under the root and never the one outside (stored behind the
    # server's back), whose bytes the tenant would otherwise receive as a thumbnail
    html = tc.post("/v1/explain?format=html", json={"labels": "colours", "vector": QUERY[0].tolist(), "top": 40,
                                                     "label": "red"},
                   headers=as_key(KEY_A)).text
    inside = Image.open(world["root"] / "red.png").getpixel((0, 0))
    assert "inside" in html and "outside" in html
    thumbs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(thumbs) == 1  # red.png only
    import base64

    pic = Image.open(io.BytesIO(base64.b64decode(thumbs[0]))).convert("RGB").getpixel((4, 4))
    assert abs(pic[0] - inside[0]) < 20 and pic[1] < 60  # the red one, not the green secret
    assert str(tmp) not in html
    js = tc.post("/v1/explain", json={"labels": "colours", "vector": QUERY[0].tolist()}, headers=as_key(KEY_A))
    assert js.json()["image_roots"] == [] and str(tmp) not in js.text


# -- 2. decoding ------------------------------------------------------------------------------------------------
def test_bombs_are_413_before_decoding(world: dict[str, Any]) -> None:
    tc = world["tc"]
    h = as_key(KEY_A)
    t = time.perf_counter()
    r = tc.post("/v1/classify/image", files=[("images", ("b.png", png_header_only(13000, 13000), "image/png"))],
                data={"labels": "colours"}, headers=h)
    assert "13000x13000 = 169.0 MP" in err(r, 413) and "ASIF_MAX_IMAGE_PIXELS" in r.text
    assert time.perf_counter() - t < 2  # refused from the header: nothing decoded
    r = tc.post("/v1/classify/image", files=[("images", ("b.png", bomb(1500), "image/png"))],
                data={"labels": "colours"}, headers=h)
    assert "1500x1500" in err(r, 413)
    assert "1500x1500" in err(tc.post("/v1/classify", json={"labels": "colours", "paths": ["bomb.png"]},
                                      headers=h), 413)
    three = [("images", (f"{i}.png", bomb(900), "image/png")) for i in range(3)]  # 0.81 MP each, 2.43 MP in all
    assert "ASIF_MAX_REQUEST_PIXELS" in err(tc.post("/v1/classify/image", files=three, data={"labels": "colours"},
                                                    headers=h), 413)
    ok = tc.post("/v1/classify/image", files=three[:2], data={"labels": "colours"}, headers=h)
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2


def test_the_library_and_the_cli_refuse_bombs_in_one_line(world: dict[str, Any], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    a = world["a"]
    with pytest.raises(ImageTooLargeError, match="1500x1500 = 2.2 MP, more than the 1 MP"):
        a.classify(images=[world["root"] / "bomb.png"], labels="colours")
    big = tmp_path / "big.png"
    big.write_bytes(bomb(7000))  # 49 MP: over the default 40 MP
    with Asif.open(tmp_path / "store", **small_settings()) as b:
        b.add_vectors(BASE_IMG, BASE_TXT)
        b.define_labels("colours", ["red", "green", "blue"], templates="plain", prompt_vectors=PROMPTS, k=8)
    monkeypatch.setattr(encoders_pkg, "create_encoder",
                        lambda name, **_: PixelEncoder() if name.startswith("precomputed:img") else CharEncoder())
    from asif_qdrant.cli import main

    r = CliRunner().invoke(main, ["--path", str(tmp_path / "store"), "classify", str(big), "--labels", "colours"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    lines = [x for x in r.output.splitlines() if x.startswith("Error")]
    assert len(lines) == 1 and "7000x7000 = 49.0 MP" in lines[0] and "ASIF_MAX_IMAGE_PIXELS" in lines[0]


def test_decoding_shrinks_large_images_one_at_a_time() -> None:
    from asif_qdrant.embedding import SHRINK_SIDE, ImageLimits, decode_bytes

    buf = io.BytesIO()
    Image.new("RGB", (3000, 2000), (1, 2, 3)).save(buf, "JPEG")
    im = decode_bytes(buf.getvalue(), "x.jpg", ImageLimits())
    assert max(im.size) == SHRINK_SIDE and im.size[0] / im.size[1] == pytest.approx(1.5, abs=0.01)
    small = decode_bytes(png((1, 2, 3), 40), "s.png", ImageLimits())
    assert small.size == (40, 40)  # small images are left as they are


# -- 3. rate limit and disconnects --------------------------------------------------------------------------------
def test_rate_limit_per_key_and_for_wrong_keys(tmp_path: Path) -> None:
    a = open_store(tmp_path, rate_limit="3/min")
    try:
        with TestClient(create_app(a)) as tc:
            body = {"labels": "colours", "vectors": QUERY.tolist()}
            assert [tc.post("/v1/classify", json=body, headers=as_key(KEY_A)).status_code
                    for _ in range(4)] == [200, 200, 200, 429]
            r = tc.post("/v1/classify", json=body, headers=as_key(KEY_A))
            assert "ASIF_RATE_LIMIT" in err(r, 429) and int(r.headers["retry-after"]) >= 1
            assert tc.post("/v1/classify", json=body, headers=as_key(KEY_B)).status_code == 200  # its own bucket
            wrong = [tc.post("/v1/classify", json=body, headers=as_key(f"guess-{i:08d}")).status_code
                     for i in range(5)]
            assert wrong == [401, 401, 401, 429, 429]  # guessing keys is limited by address
            assert tc.get("/healthz").status_code == 200  # health is never limited
    finally:
        a.close()


class _SlowText(CharEncoder):
    """A text encoder that takes 0.2 s per call and counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def encode(self, items: Any, batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        time.sleep(0.2)
        return super().encode(items, batch_size)


def test_a_client_that_disconnects_stops_the_work_at_the_next_batch(tmp_path: Path) -> None:
    a = open_store(tmp_path, max_classes=100_000)
    slow = _SlowText()
    a.set_encoder("text", slow)  # type: ignore[arg-type]
    srv = Server(a)
    port = srv.port
    try:
        classes = [f"class{i}" for i in range(256 * 20)]  # 20 batches of 256 prompts: 4 s of encoding
        with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.5) as c:
            c.put(f"http://127.0.0.1:{port}/v1/labels/huge", json={"classes": classes, "templates": "plain"},
                  headers=as_key(ADMIN))
        time.sleep(1.5)
        stopped_at = slow.calls
        time.sleep(1.0)
        assert slow.calls == stopped_at and stopped_at < 8  # stopped within a batch of the disconnect
        assert "huge" not in {i.name for i in a.list_labels()}
    finally:
        srv.stop()
        a.close()


def test_one_tenants_edit_does_not_block_other_tenants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While acme's edit holds acme's lock, globex reads and edits at once; acme's own reads wait (503 past the
    timeout), and so does a shared edit (the store-wide lock); afterwards every answer equals the library's."""
    a = open_store(tmp_path, lock_timeout_s=0.5)
    a.define_labels("mine", ["red", "green", "blue"], templates="plain", prompt_vectors=PROMPTS, k=8,
                    tenant="acme")
    holding, release = threading.Event(), threading.Event()
    real = a.relindexes.apply_added

    def slow_apply(tenant: str, *args: Any) -> Any:
        if tenant == "acme":
            holding.set()
            release.wait(30)
        return real(tenant, *args)

    monkeypatch.setattr(a.relindexes, "apply_added", slow_apply)
    editor = threading.Thread(target=a.add_vectors, args=(rng.standard_normal((3, IMG_DIM)),
                                                          rng.standard_normal((3, TXT_DIM))),
                              kwargs={"tenant": "acme"}, daemon=True)
    body = {"labels": "colours", "vectors": QUERY.tolist()}
    try:
        with TestClient(create_app(a)) as tc:
            editor.start()
            assert holding.wait(10)
            t = time.perf_counter()
            r = tc.post("/v1/classify", json=body, headers=as_key(KEY_B))
            assert r.status_code == 200 and time.perf_counter() - t < 0.4, r.text
            add = {"image_vectors": rng.standard_normal((2, IMG_DIM)).tolist(),
                   "text_vectors": rng.standard_normal((2, TXT_DIM)).tolist()}
            assert tc.post("/v1/anchors", json=add, headers=as_key(KEY_B)).json()["added"] == 2
            assert "waited more than 0.5 s" in err(tc.post("/v1/classify", json=body, headers=as_key(KEY_A)), 503)
            assert "an edit waited" in err(tc.post("/v1/anchors", json=add, headers=as_key(ADMIN)), 503)
            release.set()
            editor.join(10)
            for key, tenant in ((KEY_A, "acme"), (KEY_B, "globex")):
                got = tc.post("/v1/classify", json=body, headers=as_key(key)).json()["predictions"]
                assert got == json.loads(json.dumps([p.as_dict() for p in a.classify(
                    vectors=QUERY, labels="colours", tenant=tenant)]))
            assert a.count("acme") == 3 and a.count("globex") == 2
    finally:
        release.set()
        a.close()


# -- 4. bounds ----------------------------------------------------------------------------------------------------
def test_every_count_and_number_has_one_bound(world: dict[str, Any]) -> None:
    tc, a = world["tc"], world["a"]
    h = as_key(ADMIN)
    base = {"templates": "plain", "prompt_vectors": PROMPTS[:2].tolist()}
    for p in (1e308, 65, 0, -1):
        msg = err(tc.put("/v1/labels/px", json={**base, "classes": ["a", "b"], "p": p}, headers=h), 400)
        assert f"p={p!r}" in msg and "(0, 64]" in msg
    assert tc.put("/v1/labels/px", json={**base, "classes": ["a", "b"], "p": 64}, headers=h).status_code == 200
    assert "top=1000000000" in err(tc.post("/v1/explain", json={"labels": "colours", "vector": QUERY[0].tolist(),
                                                                 "top": 10**9}, headers=h), 400)
    msg = err(tc.put("/v1/labels/many", json={"classes": [f"c{i}" for i in range(21)], "templates": "plain"},
                     headers=h), 413)
    assert "21 classes" in msg and "ASIF_MAX_CLASSES" in msg
    msg = err(tc.put("/v1/labels/tpl", json={"classes": ["a"], "templates": [f"{{}} {i}" for i in range(101)]},
                     headers=h), 413)
    assert "ASIF_MAX_TEMPLATES" in msg
    assert "ASIF_MAX_IDS" in err(tc.post("/v1/anchors/delete", json={"ids": list(range(11))}, headers=h), 413)
    from asif_qdrant.errors import ConfigError, LimitError

    with pytest.raises(LimitError, match="ASIF_MAX_IDS"):
        a.delete(list(range(11)))
    with pytest.raises(ConfigError, match=r"p=1e\+308 is invalid"):
        a.define_labels("px2", ["a", "b"], templates="plain", prompt_vectors=PROMPTS[:2], p=1e308)


# -- 5. clients that fit ------------------------------------------------------------------------------------------
def test_openapi_has_the_bearer_scheme_the_error_schema_and_every_status(world: dict[str, Any]) -> None:
    doc = world["tc"].get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= next(iter(
        s for s in schemes.values() if s.get("scheme") == "bearer")).items()
    assert any(s.get("type") == "apiKey" and s.get("name") == "X-API-Key" for s in schemes.values())
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    op = doc["paths"]["/v1/classify"]["post"]
    assert op["security"]
    for code in ("401", "403", "404", "409", "413", "422", "429", "503"):
        ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorBody"), code
    assert {"get", "head"} <= set(doc["paths"]["/healthz"])


def test_docs_work_offline(world: dict[str, Any]) -> None:
    tc = world["tc"]
    for page in ("/docs", "/redoc"):
        html = tc.get(page).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"https?://[^\s\"'<>)]+", html)
        assert urls and all(not u.startswith(("http:", "https:", "//")) for u in urls), urls
        for u in re.findall(r"""(?:src|href)=["']([^"']+)["']""", html):
            r = tc.get(u)
            assert r.status_code == 200 and len(r.content) > 1000, u
    assert "persistAuthorization" in tc.get("/docs").text


def test_health_readiness_metrics_request_ids_and_access_log(world: dict[str, Any],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    tc = world["tc"]
    assert tc.head("/healthz").status_code == 200 and tc.head("/healthz").content == b""
    assert tc.get("/readyz").json() == {"status": "ok"} and tc.head("/readyz").status_code == 200
    with caplog.at_level(logging.INFO, logger="asif.access"):
        r = tc.post("/v1/classify", json={"labels": "colours", "vectors": QUERY.tolist()},
                    headers={**as_key(KEY_A), "X-Request-ID": "req-123"})
        assert r.headers["x-request-id"] == "req-123"
        gen = tc.get("/healthz").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", gen)
        assert re.fullmatch(r"[0-9a-f]{32}", tc.get("/healthz", headers={"X-Request-ID": "bad id\n"}).headers[
            "x-request-id"])
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "asif.access"]
    mine = next(x for x in lines if x["request_id"] == "req-123")
    assert mine["status"] == 200 and mine["tenant"] == "acme" and mine["route"] == "/v1/classify"
    assert not any(k in rec.getMessage() for rec in caplog.records for k in (KEY_A, ADMIN, KEY_B))
    assert "reading the metrics needs an admin key" in err(tc.get("/metrics", headers=as_key(KEY_A)), 403)
    m = tc.get("/metrics", headers=as_key(ADMIN))
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert re.search(r'asif_http_requests_total\{method="POST",route="/v1/classify",status="200"\} [1-9]', text)
    assert 'asif_tenant_requests_total{tenant="acme"}' in text
    assert "asif_http_request_duration_seconds_bucket" in text and 'asif_http_errors_total{status="403"}' in text


def test_cors_is_off_by_default_and_configurable(world: dict[str, Any], tmp_path: Path) -> None:
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in world["tc"].options("/v1/classify", headers=pre).headers
    a = open_store(tmp_path, cors_origins="https://app.example")
    try:
        with TestClient(create_app(a)) as tc:
            r = tc.options("/v1/classify", headers={**pre, "Access-Control-Request-Headers": "authorization"})
            assert r.headers["access-control-allow-origin"] == "https://app.example"
            other = tc.options("/v1/classify", headers={**pre, "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        a.close()


def test_errors_speak_http_not_the_cli(world: dict[str, Any]) -> None:
    tc = world["tc"]
    msg = err(tc.post("/v1/classify", json={"labels": "nope", "vectors": QUERY.tolist()}, headers=as_key(ADMIN)),
              404)
    assert "PUT /v1/labels/nope" in msg and "asif " not in msg
    body = {"classes": ["a", "b"], "templates": "plain", "prompt_vectors": PROMPTS[:2].tolist()}
    assert tc.put("/v1/labels/twice", json=body, headers=as_key(ADMIN)).status_code == 200
    msg = err(tc.put("/v1/labels/twice", json=body, headers=as_key(ADMIN)), 409)
    assert '"replace": true' in msg and "--replace" not in msg and "DELETE /v1/labels/twice" in msg
    msg = err(tc.delete("/v1/tenants/nobody", headers=as_key(ADMIN)), 404)
    assert "GET /v1/tenants" in msg and "asif tenants" not in msg
    msg = err(tc.delete("/v1/labels/nothing", headers=as_key(ADMIN)), 404)
    assert "list_indexes" not in msg


def test_no_server_setting_leaks_into_the_environment() -> None:
    assert "ASIF_RATE_LIMIT" not in os.environ


# -- 7. no cross-tenant oracle from anchor ids ---------------------------------------------------------------------
def test_a_tenant_cannot_probe_another_tenants_pairs_by_id(tmp_path: Path) -> None:
    """Content-derived ids are keyed with the store's secret: acme can neither compute the id that globex's pair
    got nor tell a pair that globex holds from one nobody holds."""
    from asif_qdrant.anchors import content_hash, vector_key
    from asif_qdrant.relrep import l2_normalize

    a = open_store(tmp_path)
    try:
        with TestClient(create_app(a)) as tc:
            held, unheld = rng.standard_normal((2, IMG_DIM)), rng.standard_normal((2, TXT_DIM))
            r = tc.post("/v1/anchors", json={"image_vectors": [held[0].tolist()], "text_vectors": [unheld[0].tolist()],
                                             "captions": ["globex's pair"]}, headers=as_key(KEY_B))
            gid = r.json()["ids"][0]
            answers = []
            for i in (0, 1):  # the pair globex holds, and one nobody holds
                img, txt = l2_normalize(held[i:i + 1]), l2_normalize(unheld[i:i + 1])
                guess = int(content_hash("globex", vector_key(img[0], txt[0], "globex's pair"))[:8], 16)
                assert guess != gid
                r = tc.post("/v1/anchors", json={"image_vectors": [held[i].tolist()],
                                                 "text_vectors": [unheld[i].tolist()], "ids": [guess],
                                                 "captions": ["globex's pair"]}, headers=as_key(KEY_A))
                answers.append((r.status_code, r.json()["added"]))
            assert answers == [(200, 1), (200, 1)]
            assert a.count("globex") == 1 and a.count("acme") == 2
    finally:
        a.close()


def test_pairs_stored_at_unkeyed_ids_keep_their_ids_and_stay_duplicates(tmp_path: Path) -> None:
    from asif_qdrant.anchors import content_hash, vector_key
    from asif_qdrant.engines.base import PointBatch
    from asif_qdrant.relrep import l2_normalize

    a = open_store(tmp_path)
    try:
        img, txt = l2_normalize(rng.standard_normal((1, IMG_DIM))), l2_normalize(rng.standard_normal((1, TXT_DIM)))
        h = content_hash("acme", vector_key(img[0], txt[0], "old"))
        old_id = int(h[:8], 16)  # where an earlier version put it
        a.engine.upsert(a.anchors.collection, PointBatch([old_id], {"image": img, "text": txt}, payloads=[
            {"tenant": "acme", "caption": "old", "image_ref": None, "content_hash": h}]))
        res = a.add_vectors(img, txt, captions=["old"], tenant="acme")
        assert (res.ids, res.added, res.duplicates) == ([old_id], 0, 1)
        new = a.add_vectors(img * 0.5 + 0.1, txt, captions=["new"], tenant="acme")
        assert new.added == 1 and new.ids[0] != int(content_hash("acme", vector_key(
            l2_normalize(img * 0.5 + 0.1)[0], txt[0], "new"))[:8], 16)
    finally:
        a.close()


# -- 6. attached collections ---------------------------------------------------------------------------------------
def test_read_only_commands_never_write_into_an_attached_collection(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from qdrant_client import QdrantClient
    from qdrant_client import models as m

    from asif_qdrant.cli import main

    folder = tmp_path / "qdrant"
    client = QdrantClient(path=str(folder))
    client.create_collection("products", vectors_config={
        "img": m.VectorParams(size=IMG_DIM, distance=m.Distance.COSINE),
        "txt": m.VectorParams(size=TXT_DIM, distance=m.Distance.COSINE)})
    client.upsert("products", [m.PointStruct(id=i, vector={"img": rng.standard_normal(IMG_DIM).tolist(),
                                                           "txt": rng.standard_normal(TXT_DIM).tolist()},
                                             payload={"title": f"t{i}"}) for i in range(30)])
    client.close()
    for k, v in {"ASIF_ANCHORS_COLLECTION": "products", "ASIF_VECTOR_NAMES": '{"image": "img", "text": "txt"}',
                 "ASIF_PAYLOAD_NAMES": '{"caption": "title"}', **{f"ASIF_{k.upper()}": v for k, v in
                                                                  small_settings().items()}}.items():
        monkeypatch.setenv(k, v)

    def state() -> tuple[list[str], int]:
        c = QdrantClient(path=str(folder))
        try:
            names = sorted(x.name for x in c.get_collections().collections)
            tagged = sum(1 for p in c.scroll("products", limit=100, with_payload=True)[0] if "tenant" in p.payload)
            return names, tagged
        finally:
            c.close()

    cli = ["--url", f"file:{folder}"]
    r = CliRunner().invoke(main, [*cli, "stats", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tenants"]["_shared"]["anchors"] == 30  # counted, though none has a tenant yet
    assert state() == (["products"], 0)  # nothing written, no collection created
    r = CliRunner().invoke(main, [*cli, "migrate", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "set tenant='_shared' on 30 of the 30 points of 'products'" in r.stdout and "asif_anchors" not in r.stdout
    assert state() == (["products"], 0)
    r = CliRunner().invoke(main, [*cli, "migrate"])
    assert r.exit_code == 0, r.output
    names, tagged = state()
    assert "products" in names and tagged == 30
