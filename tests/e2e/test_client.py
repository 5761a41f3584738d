"""AsifClient and the CLI's --server mode against a real uvicorn server on 127.0.0.1: every endpoint answers what the
in-process Asif answers (exact values), refusals come back as the library's errors, the CLI prints the same JSON
through the server as on the embedded store, and the CLI starts without the model libraries.

Tiny encoders: the store's fingerprint is precomputed:img:8 / precomputed:txt:6; the server's facade gets the
deterministic pixel / character encoders of fake_encoders (Asif.set_encoder), the embedded CLI the same ones through
install_fakes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import IMG_DIM, TXT_DIM, small_settings
from fake_encoders import COLOURS, CharEncoder, PixelEncoder, install_fakes, shade
from live_server import Server, colour_store, png
from PIL import Image

from asif_qdrant import (
    AlreadyExistsError,
    Asif,
    AuthError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    ServerError,
    StoreBusyError,
)
from asif_qdrant.cli import main
from asif_qdrant.client import AsifClient, error_for, retry_after

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

ADMIN, KEY_A = "admin-key-0001", "tenant-a-key-0001"
CLASSES = ["red", "green", "blue"]
HEAVY = ("torch", "timm", "sentence_transformers", "transformers", "fastapi", "uvicorn")

rng = np.random.default_rng(11)
BASE_IMG, BASE_TXT = rng.standard_normal((30, IMG_DIM)), rng.standard_normal((30, TXT_DIM))
A_IMG, A_TXT = rng.standard_normal((4, IMG_DIM)), rng.standard_normal((4, TXT_DIM))
PROMPTS = rng.standard_normal((3, TXT_DIM))
GALLERY = rng.standard_normal((5, IMG_DIM))
QUERY = rng.standard_normal((2, IMG_DIM))
TEXT_Q = rng.standard_normal((2, TXT_DIM))


# IndexInfo fields that differ on purpose: each path defines its index at its own time, and only the answer of a
# definition carries the coverage of its classes
SERVER_OMITS = ("created_at", "coverage")


def answered(info: Any) -> dict[str, Any]:
    """An IndexInfo's as_dict() without SERVER_OMITS (the server sends every field of as_dict())."""
    d = info if isinstance(info, dict) else info.as_dict()
    return {k: v for k, v in d.items() if k not in SERVER_OMITS}


def jsonable(x: Any) -> Any:
    """What a value looks like after a trip through JSON (tuples become lists; floats stay exact)."""
    return json.loads(json.dumps(x))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Asif, Path]]:
    tmp = tmp_path_factory.mktemp("client")
    root = tmp / "images"
    root.mkdir()
    (root / "red.png").write_bytes(png((250, 10, 10)))
    a = colour_store(tmp / "store", (BASE_IMG, BASE_TXT), PROMPTS, GALLERY, api_keys=f"{ADMIN}=@admin,{KEY_A}=acme",
                     serve_root=root, max_batch=20, max_top=100)
    srv = Server(a)
    yield srv, a, root
    srv.stop()
    a.close()


@pytest.fixture
def admin(served: Any) -> Iterator[AsifClient]:
    with AsifClient(served[0].url, ADMIN, timeout=30) as c:
        yield c


def test_health_and_the_key_is_never_shown(served: Any, admin: AsifClient) -> None:
    assert admin.healthz() == {"status": "ok"}
    admin.wait_ready(timeout=5)
    assert ADMIN not in repr(admin) and repr(admin) == f"AsifClient({served[0].url!r})"


def test_classify_by_vectors_paths_and_uploads_equals_the_library(served: Any, admin: AsifClient) -> None:
    _, a, root = served
    got = admin.classify("colours", vectors=QUERY, top=3)
    assert [p.as_dict() for p in got] == jsonable([p.as_dict() for p in a.classify(vectors=QUERY, labels="colours",
                                                                                     top=3)])
    want = jsonable([p.as_dict() for p in a.classify(images=[root / "red.png"], labels="colours", top=2)])
    assert [p.as_dict() for p in admin.classify("colours", paths=["red.png"], top=2)] == want
    for image in (root / "red.png", str(root / "red.png"), png((250, 10, 10)), ("r.png", png((250, 10, 10))),
                  Image.new("RGB", (16, 16), (250, 10, 10))):
        assert [p.as_dict() for p in admin.classify("colours", images=[image], top=2)] == want
    one = admin.classify("colours", vectors=QUERY[0], top=1)  # one vector is one row
    assert len(one) == 1 and one[0].as_dict() == jsonable(a.classify(vectors=QUERY[:1], labels="colours",
                                                                     top=1)[0].as_dict())
    with pytest.raises(ConfigError, match="exactly one of vectors, paths and images"):
        admin.classify("colours", vectors=QUERY, paths=["red.png"])


def test_search_by_texts_and_vectors_equals_the_library(admin: AsifClient, served: Any) -> None:
    a = served[1]
    for kw, lib in (({"texts": "red red"}, {"text": "red red"}),
                    ({"texts": ["red", "blue"]}, {"text": ["red", "blue"]}),
                    ({"vectors": TEXT_Q}, {"vector": TEXT_Q})):
        got = admin.search("pics", top=3, **kw)
        want = a.search(gallery="pics", top=3, **lib)
        assert [[vars(h) for h in hs] for hs in got] == jsonable([[vars(h) for h in hs] for hs in want])
        assert got and all(len(hs) >= 1 for hs in got)


def test_explain_json_and_html_equals_the_library(admin: AsifClient, served: Any) -> None:
    _, a, root = served
    ex = admin.explain("colours", vector=QUERY[0], top=4, n_labels=2)
    assert ex.as_dict() == jsonable(a.explain(vector=QUERY[0], labels="colours", top=4, n_labels=2).as_dict())
    assert len(ex.explained) == 2 and ex.label == ex.explained[0].label and 1 <= len(ex.contributions) <= 4
    by_label = admin.explain("colours", vector=QUERY[0], label="blue")
    assert by_label.label == "blue"
    lib = {**a.explain(image=Image.open(root / "red.png"), labels="colours", top=3).as_dict(), "image": "red.png"}
    assert admin.explain("colours", image=root / "red.png", top=3).as_dict() == jsonable(lib)  # named as sent
    assert admin.explain("colours", path="red.png", top=3).as_dict() == jsonable(lib)
    for html in (admin.explain_html("colours", vector=QUERY[0]), admin.explain_html("colours", image=root / "red.png")):
        assert html.startswith("<!DOCTYPE html>") and "colours" in html


def test_anchor_edits_equal_the_library(served: Any, admin: AsifClient) -> None:
    _, a, _ = served
    ids = [80_000 + i for i in range(4)]
    res = admin.add_anchors(A_IMG, A_TXT, [f"own {i}" for i in range(4)], ids=ids, tenant="edits",
                            payloads=[{"n": i} for i in range(4)], image_refs=[f"e/{i}.jpg" for i in range(4)])
    assert (res.ids, res.added, res.duplicates, res.tenant) == (ids, 4, 0, "edits")
    assert a.count("edits") == 4
    assert [p.as_dict() for p in admin.classify("colours", vectors=QUERY, tenant="edits")] == jsonable(
        [p.as_dict() for p in a.classify(vectors=QUERY, labels="colours", tenant="edits")])
    rep = admin.replace_anchors(ids[:2], A_IMG[2:], A_TXT[2:], ["new 0", "new 1"], tenant="edits")
    assert rep.ids == ids[:2] and a.count("edits") == 4
    got = a.explain(vector=A_IMG[2], labels="colours", top=30, tenant="edits")
    assert {c.caption for c in got.contributions} >= {"new 0"}
    pics = [shade(COLOURS[c], rng, 5) for c in ("red", "green")]
    up = admin.add_images(pics, ["a red thing", "a green thing"], tenant="edits")
    assert (up.added, up.duplicates, a.count("edits")) == (2, 0, 6)
    again = admin.add_images(pics, ["a red thing", "a green thing"], tenant="edits")
    assert (again.ids, again.added, again.duplicates) == (up.ids, 0, 2)
    gone = admin.delete_anchors(ids + [123], tenant="edits")
    assert sorted(gone.deleted) == ids and gone.count == 4 and a.count("edits") == 2
    assert admin.delete_anchors(all=True, tenant="edits").count == 2 and a.count("edits") == 0


def test_label_sets_and_galleries_equal_the_library(served: Any, admin: AsifClient) -> None:
    _, a, _ = served
    info = admin.define_labels("two", ["p", "q"], "plain", PROMPTS[:2], k=6, tenant="lab")
    assert answered(info) == answered(a.index_info("two", "lab", "labels"))
    with pytest.raises(AlreadyExistsError, match="label set 'two' already exists for tenant 'lab'") as e:
        admin.define_labels("two", ["p", "q", "r"], "plain", PROMPTS, tenant="lab")
    assert e.value.status == 409  # type: ignore[attr-defined]
    redone = admin.define_labels("two", ["p", "q", "r"], ["a {}", "{}"], tenant="lab", replace=True, p=2.0)
    assert (redone.classes, redone.templates, redone.n_items, redone.p) == (["p", "q", "r"], ["a {}", "{}"], 6, 2.0)
    assert [answered(i) for i in admin.list_labels("lab")] == [answered(i) for i in a.list_labels("lab")]
    assert {i.name for i in admin.list_labels("lab")} == {"two", "colours"}
    assert answered(admin.delete_labels("two", "lab")) == answered(redone)
    assert [i.name for i in admin.list_labels("lab")] == ["colours"]

    g = admin.define_gallery("few", GALLERY[:3], [{"i": i} for i in range(3)], k=6, tenant="lab")
    assert answered(g) == answered(a.index_info("few", "lab", "gallery")) and g.n_items == 3
    assert [answered(i) for i in admin.list_galleries("lab")] == [answered(i) for i in a.list_galleries("lab")]
    hits = admin.search("few", vectors=TEXT_Q[:1], tenant="lab")[0]
    assert [vars(h) for h in hits] == jsonable([vars(h) for h in a.search(vector=TEXT_Q[:1], gallery="few",
                                                                          tenant="lab")[0]])
    assert admin.delete_gallery("few", "lab").name == "few"
    with pytest.raises(NotFoundError, match="gallery 'few' does not exist"):
        admin.delete_gallery("few", "lab")


def test_tenants_list_stats_delete(served: Any, admin: AsifClient) -> None:
    srv, a, _ = served
    admin.add_anchors(A_IMG[:1], A_TXT[:1], ["t"], tenant="doomed")
    assert admin.tenants() == a.tenants() and "doomed" in admin.tenants()
    assert admin.stats() == a.stats()
    with AsifClient(srv.url, KEY_A) as acme:
        acme.add_anchors(A_IMG[:1], A_TXT[:1], ["mine"])
        assert acme.tenants() == ["acme"]
        assert acme.stats() == {t: v for t, v in a.stats().items() if t in ("acme", "_shared")}
        with pytest.raises(AuthError, match="deleting a tenant needs an admin key") as e:
            acme.delete_tenant("doomed")
        assert e.value.status == 403  # type: ignore[attr-defined]
    assert admin.delete_tenant("doomed")["anchors"] == 1
    assert "doomed" not in a.tenants()


def test_refusals_are_the_library_errors_with_the_server_message(served: Any, admin: AsifClient) -> None:
    srv = served[0]
    cases: list[tuple[Any, type[Exception], int, str]] = [
        (lambda: admin.classify("nope", vectors=QUERY), NotFoundError, 404, "label set 'nope' does not exist"),
        (lambda: admin.classify("colours", vectors=[[1.0, 2.0]]), InvalidInputError, 422, "vectors"),
        (lambda: admin.classify("colours", vectors=QUERY, top=500), ConfigError, 400, "top=500"),
        (lambda: admin.classify("colours", vectors=np.ones((21, IMG_DIM))), ConfigError, 413, "max_batch=20"),
        (lambda: admin.classify("colours", paths=["../x.png"]), AuthError, 403, "outside the serve root"),
        (lambda: admin.delete_anchors(), ConfigError, 400, "delete needs ids"),
        (lambda: admin.define_labels("bad name!", ["a"], "plain", PROMPTS[:1]), ConfigError, 400, "name"),
        (lambda: admin.classify("colours", images=[b"not an image"]), InvalidInputError, 422, "not an image"),
    ]
    for call, cls, status, text in cases:
        with pytest.raises(cls) as e:
            call()
        assert e.value.status == status and text in str(e.value), (status, str(e.value))  # type: ignore[attr-defined]
    for key, msg in ((None, "missing API key"), ("wrong-key-000000", "invalid API key")):
        with AsifClient(srv.url, key) as c, pytest.raises(AuthError, match=msg) as e:
            c.tenants()
        assert e.value.status == 401  # type: ignore[attr-defined]
    with AsifClient(srv.url, KEY_A) as c, pytest.raises(AuthError, match="only use its own tenant"):
        c.classify("colours", vectors=QUERY, tenant="globex")
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with AsifClient(f"http://127.0.0.1:{port}") as c, pytest.raises(ServerError, match="cannot reach"):
        c.healthz()
    with pytest.raises(ConfigError, match="not an http"):
        AsifClient("127.0.0.1:8000")


def test_error_mapping_and_retry_after() -> None:
    names = {s: type(error_for(s, "m")).__name__ for s in (400, 401, 403, 404, 409, 413, 422, 429, 500, 503, 418)}
    assert names == {400: "ConfigError", 401: "AuthError", 403: "AuthError", 404: "NotFoundError",
                     409: "AlreadyExistsError", 413: "RequestTooLargeError", 422: "InvalidInputError",
                     429: "RateLimitedError", 500: "ServerError", 503: "StoreBusyError", 418: "ServerError"}
    assert str(error_for(404, "label set 'x' does not exist")) == "label set 'x' does not exist"
    assert str(error_for(500, "boom")) == "HTTP 500: boom"
    assert retry_after("3", 0.5) == 3.0 and retry_after(None, 0.5) == 0.5 and retry_after("soon", 0.7) == 0.7
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0.5) == 0.0  # a date in the past: no wait


def test_503_is_retried_as_retry_after_says(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("asif_qdrant.client.time.sleep", waits.append)
    calls: list[httpx.Request] = []

    def busy_then_ok(n_busy: int, header: dict[str, str]) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            if len(calls) <= n_busy:
                return httpx.Response(503, json={"error": "the store is busy: retry"}, headers=header)
            return httpx.Response(200, json={"status": "ok"})
        return httpx.MockTransport(handler)

    with AsifClient("http://x", "secret-key-1", transport=busy_then_ok(2, {"Retry-After": "3"})) as c:
        assert c.healthz() == {"status": "ok"}
    assert len(calls) == 3 and waits == [3.0, 3.0]
    assert calls[0].headers["authorization"] == "Bearer secret-key-1"
    calls.clear()
    waits.clear()
    with AsifClient("http://x", transport=busy_then_ok(9, {}), retries=2, backoff=0.25) as c:
        with pytest.raises(StoreBusyError, match="the store is busy") as e:
            c.healthz()
    assert e.value.status == 503 and len(calls) == 3 and waits == [0.25, 0.5]  # type: ignore[attr-defined]


# -- the CLI ----------------------------------------------------------------------------------------
def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def cli_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, list[str]]:
    """A store with colour anchors and a label set (prompts encoded by the fakes), and a folder of pictures."""
    loaded = install_fakes(monkeypatch)
    store = tmp_path / "store"
    with Asif.open(store, **small_settings()) as a:
        pics, caps = [], []
        for c in CLASSES:
            for _ in range(6):
                pics.append(shade(COLOURS[c], rng, 20))
                caps.append(f"a {c} thing")
        a.add_vectors(a.encode_images(pics), a.encode_texts(caps), captions=caps)
        a.define_labels("colours", CLASSES, templates="plain", k=10, p=2)
        a.add_gallery("pics", vectors=a.encode_images(pics[::4]), payloads=[{"image_ref": f"p{i}"} for i in range(5)],
                      k=10)
    photos = tmp_path / "photos"
    photos.mkdir()
    for c in CLASSES:
        shade(COLOURS[c], rng, 40).save(photos / f"{c}.png")
    loaded.clear()
    return store, photos, loaded


def _commands(photos: Path) -> list[list[str]]:
    img = str(photos / "red.png")
    return [
        ["classify", str(photos), "--labels", "colours", "--top", "3", "--json"],
        ["search", "a", "red", "thing", "--gallery", "pics", "--top", "3", "--json"],
        ["explain", img, "--labels", "colours", "--top", "4", "--n-labels", "2", "--json"],
        ["labels", "add", "extra", "--classes", "red,blue", "--templates", "plain", "--k", "8", "--json"],
        ["labels", "list", "--json"],
        ["gallery", "list", "--json"],
        ["add", img, "a red photo", str(photos / "blue.png"), "a blue photo", "--tenant", "acme", "--json"],
        ["tenants", "list", "--json"],
        ["tenants", "stats", "--json"],
        ["classify", img, "--labels", "colours", "--tenant", "acme", "--json"],
        ["labels", "delete", "extra", "--json"],
        ["gallery", "delete", "pics", "--json"],
        ["stats", "--json"],
    ]


def test_cli_with_server_prints_what_the_embedded_cli_prints(cli_world: Any, tmp_path: Path) -> None:
    store, photos, loaded = cli_world
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(store, copy)
    embedded = []
    for cmd in _commands(photos):
        r = _cli("--path", str(copy), *cmd)
        assert r.exit_code == 0, (cmd, r.output)
        embedded.append(json.loads(r.stdout))
    added = embedded[6]["ids"]

    def delete(ids: list[int]) -> list[str]:  # two stored ids, one unknown
        return ["delete", *map(str, ids), "404", "--tenant", "acme", "--json"]

    embedded.append(json.loads(_cli("--path", str(copy), *delete(added)).stdout))
    assert sorted(embedded[-1]["deleted"]) == sorted(added) and embedded[-1]["not_found"] == [404]
    assert loaded  # the embedded CLI loaded the (fake) models

    a = Asif.open(store, **small_settings(api_keys=f"{ADMIN}=@admin"))
    a.set_encoder("image", PixelEncoder())  # type: ignore[arg-type]
    a.set_encoder("text", CharEncoder())  # type: ignore[arg-type]
    srv = Server(a)
    loaded.clear()
    remote_ids: list[int] = []
    try:
        for cmd, want in zip([*_commands(photos), ["delete"]], embedded, strict=True):
            if cmd == ["delete"]:
                cmd = delete(remote_ids)
                want = {**want, "deleted": sorted(remote_ids)}
            r = _cli("--server", srv.url, "--server-key", ADMIN, *cmd)
            assert r.exit_code == 0, (cmd, r.output)
            got = json.loads(r.stdout)
            if cmd[0] == "add":
                # an upload is keyed on the file's bytes, as a local add: the same ids (the copy shares the id key)
                remote_ids = got["ids"]
                assert remote_ids == added and len(set(remote_ids)) == 2
            if cmd[0] == "delete":
                got = {**got, "deleted": sorted(got["deleted"])}
            if cmd[0] == "stats":  # the server's stats name the server and have no fingerprint endpoint
                assert got["store"] == f"asif serve at {srv.url}" and got["fingerprint"] is None
                got = {**got, "store": want["store"], "fingerprint": want["fingerprint"]}
            if cmd[:2] in (["labels", "add"], ["labels", "list"], ["gallery", "list"]):
                want = answered(want) if isinstance(want, dict) else [answered(w) for w in want]
                got = answered(got) if isinstance(got, dict) else [answered(x) for x in got]
            assert got == want, cmd
        assert loaded == []  # nothing loaded a model in the CLI process: the server encoded
        r = _cli("--server", srv.url, "--server-key", ADMIN, "classify", str(photos / "red.png"), "--labels",
                 "colours")
        assert r.exit_code == 0 and r.stdout.startswith(f"{photos / 'red.png'}: red")
    finally:
        srv.stop()
        a.close()


def test_cli_with_server_errors_and_commands_without_http(cli_world: Any) -> None:
    store, photos, loaded = cli_world
    a = Asif.open(store, **small_settings(api_keys=f"{ADMIN}=@admin"))
    a.set_encoder("image", PixelEncoder())  # type: ignore[arg-type]
    a.set_encoder("text", CharEncoder())  # type: ignore[arg-type]
    srv = Server(a)
    try:
        img = str(photos / "red.png")
        r = _cli("--server", srv.url, "--server-key", ADMIN, "classify", img, "--labels", "colurs")
        assert r.exit_code == 1 and r.output.startswith("Error: label set 'colurs' does not exist")
        assert "did you mean 'colours'" in r.output
        r = _cli("--server", srv.url, "classify", img, "--labels", "colours")
        assert r.exit_code == 1 and "missing API key" in r.output
        r = _cli("--server", srv.url, "--server-key", "a-wrong-key-123", "tenants", "list")
        assert r.exit_code == 1 and r.output.strip() == "Error: invalid API key" and "a-wrong-key" not in r.output
        for cmd in (["ingest", str(photos)], ["doctor"], ["teach", str(photos), "--tenant", "x"],
                    ["gallery", "add", "g", str(photos)], ["refresh"]):
            r = _cli("--server", srv.url, *cmd)
            assert r.exit_code == 1 and "has no HTTP equivalent" in r.output, (cmd, r.output)
            assert f"`asif {cmd[0]}" in r.output
        mixed = photos.parent / "mixed"
        mixed.mkdir()
        (mixed / "a.png").write_bytes((photos / "red.png").read_bytes())
        (mixed / "b.png").write_bytes(b"not an image")
        (mixed / "c.png").write_bytes((photos / "blue.png").read_bytes())
        r = _cli("--server", srv.url, "--server-key", ADMIN, "classify", str(mixed), "--labels", "colours", "--json",
                 "--on-error", "skip")
        assert r.exit_code == 0, r.output
        assert [d["image"] for d in json.loads(r.stdout)] == [str(mixed / "a.png"), str(mixed / "c.png")]
        assert f"warning: skipped upload {str(mixed / 'b.png')!r} is corrupt or not an image" in r.stderr
        r = _cli("--server", srv.url, "--server-key", ADMIN, "classify", str(mixed), "--labels", "colours")
        assert r.exit_code == 1 and str(mixed / "b.png") in r.output and "--on-error skip" in r.output
        r = _cli("--server", srv.url, "serve")
        assert r.exit_code == 2 and "leave out --server" in r.output
        env_run = CliRunner().invoke(main, ["tenants", "list", "--json"],
                                     env={"ASIF_SERVER": srv.url, "ASIF_SERVER_KEY": ADMIN})
        assert env_run.exit_code == 0 and json.loads(env_run.stdout) == a.tenants()
        assert loaded == []
    finally:
        srv.stop()
        a.close()


def test_misspelt_label_set_is_reported_before_any_model_loads(cli_world: Any) -> None:
    store, photos, loaded = cli_world
    for cmd in (["classify", str(photos), "--labels", "colurs"], ["search", "red", "--gallery", "picz"],
                ["explain", str(photos / "red.png"), "--labels", "colurs"]):
        r = _cli("--path", str(store), *cmd)
        assert r.exit_code == 1 and "does not exist" in r.output and "did you mean" in r.output, r.output
    assert loaded == []


def test_importing_the_cli_imports_no_model_library() -> None:
    """Nor the facade, the client or numpy: each command imports what it uses (the start-up of `asif --server`)."""
    code = ("import json, sys; import asif_qdrant.cli; LIGHT = ('httpx', 'numpy', 'pydantic', 'asif_qdrant.asif'); "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} + LIGHT if m in sys.modules)))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert json.loads(out.stdout) == []


def test_cli_classify_through_the_server_imports_no_model_library(served: Any) -> None:
    """A real process: `asif --server URL classify IMG` imports neither torch nor the server's libraries, nor the
    facade and pydantic (the start-up of a CLI call that leaves the work to a warm server)."""
    srv, a, root = served
    code = ("import json, sys\nfrom asif_qdrant.cli import main\n"
            "try:\n    main(sys.argv[1:], standalone_mode=False)\nfinally:\n"
            f"    print(json.dumps(sorted(m for m in {HEAVY + ('pydantic', 'asif_qdrant.asif')!r} "
            "if m in sys.modules)))")
    env = {**os.environ, "ASIF_SERVER_KEY": ADMIN,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code, "--server", srv.url, "classify", str(root / "red.png"),
                          "--labels", "colours", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == []
    preds = json.loads("\n".join(lines[:-1]))
    want = a.classify(images=[root / "red.png"], labels="colours")[0].as_dict()
    assert preds == [{"image": str(root / "red.png"), **jsonable(want)}]
