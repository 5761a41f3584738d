"""`asif serve` under concurrent load, on loopback: throughput, latency, errors, isolation, freshness.

    .venv/bin/python benchmarks/bench_serve.py --clients 4 --seconds 40

A copy of the prebuilt Flickr8k store (40,445 shared anchors, tf_efficientnet_lite0 + all-MiniLM-L6-v2) is served
by `asif serve` in a subprocess. Queries use the vector endpoints with real lite0 vectors of CIFAR-10 test
images (so encoding does not dominate); one row uploads an image (encoding included) next to the same classify
in-process. Two tenants (keys) add and delete anchors of their own while every client classifies, searches and
explains. After the run: every response was checked for the other tenant's ids, captions and image_refs; each
tenant's answers equal those of a rebuild (refresh) of its label set; errors must be 0.

Tenant isolation under edits: one globex client classifies alone (read-only phase), then again while an acme
client adds and deletes anchors without pause (mixed phase): globex's p95 and its 503 rate in both (target: p95
<= 1.5x the read-only phase, 0 errors). Decoding bounds: the server's peak RSS (VmHWM) while it refuses
decompression bombs (13000 x 13000 PNG, 37 KB each: 413) and classifies a full batch of large photos (4000 x 3000
JPEGs, as many as ASIF_MAX_REQUEST_BYTES holds).

The store and the vectors come from a ``cache/`` folder (benchmarks/cache/ or one above the checkout):
flickr-store (ingest_flickr.py) and cifar10_lite0.npz; without the npz, 300 CIFAR-10 test images are encoded
once (cached) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import CACHE, DATA, cached, find_cached, table, write_results

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BODY_LIMIT = 128 * 2**20  # room for a full request of large photos (the pixel budget is what binds)
KEYS = {"admin": "bench-admin-key-0", "acme": "bench-acme-key-0", "globex": "bench-globex-key-0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def start_server(path: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "asif_qdrant.cli", "--path", str(path), "serve", "--port", str(port)]
    log = path.parent / "serve.log"  # a file, not a pipe: a full pipe would block the server's (access) log
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=f)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"asif serve exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("asif serve did not become healthy in 180 s")


def cifar_vectors(store: Path) -> tuple[np.ndarray, list[str]]:
    """10,000 CIFAR-10 vectors and their files: the cached npz, else 300 test images encoded once, tiled."""
    npz = find_cached("cifar10_lite0.npz")
    if npz is not None:
        data = np.load(npz, allow_pickle=True)
        return data["vectors"].astype(np.float32), [str(p) for p in data["paths"]]
    from asif_qdrant import Asif
    from asif_qdrant.evaluation.evaluate import cached_image_vectors, read_folder_per_class

    folder = read_folder_per_class(DATA / "cifar10-test", limit=300)
    with Asif.open(store, cache_dir=CACHE / "embeddings") as a:
        vecs = cached_image_vectors(a, folder.paths).astype(np.float32)
    reps = -(-10_000 // len(vecs))
    return np.tile(vecs, (reps, 1))[:10_000], [str(p) for p in folder.paths] * reps


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tenant_phases(base: str, hdr: dict[str, dict[str, str]], vecs: np.ndarray, text_dim: int,
                  seconds: float) -> dict[str, Any]:
    """globex reads alone, then while acme edits without pause: its p95 and 503s in both phases."""

    def reads(stop: float, out: list[float], status: list[int]) -> None:
        with httpx.Client(base_url=base, headers=hdr["globex"], timeout=120) as c:
            i = 0
            while time.time() < stop:
                i += 1
                t = time.perf_counter()
                r = c.post("/v1/classify", json={"labels": "cifar10", "vectors": [vecs[2000 + i % 3000].tolist()]})
                out.append((time.perf_counter() - t) * 1000)
                status.append(r.status_code)

    def edits(stop: float, done: list[int], status: list[int]) -> None:
        rng = np.random.default_rng(1)
        with httpx.Client(base_url=base, headers=hdr["acme"], timeout=120) as c:
            while time.time() < stop:
                r = c.post("/v1/anchors", json={"image_vectors": vecs[rng.integers(5000, 9000, 8)].tolist(),
                                                "text_vectors": rng.standard_normal((8, text_dim)).tolist()})
                status.append(r.status_code)
                if r.status_code == 200:
                    d = c.post("/v1/anchors/delete", json={"ids": r.json()["ids"]})  # net zero: counts stay checkable
                    status.append(d.status_code)
                    done.append(2)

    out: dict[str, Any] = {}
    for phase, editing in (("read_only", False), ("mixed", True)):
        lat: list[float] = []
        st: list[int] = []
        est: list[int] = []
        done: list[int] = []
        stop = time.time() + seconds
        th = [threading.Thread(target=reads, args=(stop, lat, st))]
        if editing:
            th.append(threading.Thread(target=edits, args=(stop, done, est)))
        for x in th:
            x.start()
        for x in th:
            x.join()
        out[phase] = {"reads": len(lat), "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95),
                      "read_503": st.count(503), "read_errors": sum(1 for c in st if c != 200),
                      "edit_requests": len(est), "edit_errors": sum(1 for c in est if c != 200)}
    out["p95_ratio"] = out["mixed"]["p95_ms"] / out["read_only"]["p95_ms"]
    return out


def bomb_phase(base: str, hdr: dict[str, str], pid: int, body_limit: int, pixel_limit: int) -> dict[str, Any]:
    """Peak RSS of the server before, while it refuses bombs, and while it classifies a full batch of large
    photos (decoded and shrunk one at a time)."""
    import io

    from PIL import Image

    def png_bomb() -> bytes:
        buf = io.BytesIO()
        Image.new("L", (13000, 13000)).save(buf, "PNG", optimize=True)
        return buf.getvalue()

    def photo(seed: int) -> bytes:
        g = np.random.default_rng(seed)
        small = (g.random((30, 40, 3)) * 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=80)
        return buf.getvalue()

    before = peak_rss_mb(pid)
    bomb = png_bomb()
    statuses = []
    with httpx.Client(base_url=base, headers=hdr, timeout=300) as c:
        for _ in range(5):
            r = c.post("/v1/classify/image", files=[("images", ("bomb.png", bomb, "image/png"))] * 3,
                       data={"labels": "cifar10"})
            statuses.append(r.status_code)
        after_bombs = peak_rss_mb(pid)
        one = photo(0)
        n = min(256, (body_limit - 65536) // (len(one) + 512), pixel_limit // (4000 * 3000))
        files = [("images", (f"p{i}.jpg", one, "image/jpeg")) for i in range(n)]
        t = time.perf_counter()
        r = c.post("/v1/classify/image", files=files, data={"labels": "cifar10"})
        batch_s = time.perf_counter() - t
    return {"rss_before_mb": before, "bomb_kb": len(bomb) / 1024, "bomb_statuses": statuses,
            "rss_after_bombs_mb": after_bombs, "photos": n, "photo_kb": len(one) / 1024, "batch_status": r.status_code,
            "batch_seconds": batch_s, "rss_after_batch_mb": peak_rss_mb(pid)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the mixed phase")
    ap.add_argument("--read-requests", type=int, default=60, help="requests per throughput measurement")
    ap.add_argument("--upload-repeats", type=int, default=10)
    ap.add_argument("--phase-seconds", type=float, default=20.0, help="length of each tenant-isolation phase")
    ap.add_argument("--work", type=Path, default=Path("/tmp/asif-bench-serve"))
    args = ap.parse_args()

    from asif_qdrant import Asif

    if args.work.exists():
        shutil.rmtree(args.work)
    store = args.work / "store"
    shutil.copytree(cached("flickr-store"), store)
    vecs, paths = cifar_vectors(store)
    rng = np.random.default_rng(0)
    image_path = paths[0]

    # -- in-process reference (encoding included), then the store is handed to the server ---------------
    a = Asif.open(store)
    a.define_labels("cifar10", CLASSES)
    a.add_gallery("cifar", vectors=vecs[:300], payloads=[{"path": p} for p in paths[:300]])
    n_shared = a.count()
    a.classify(images=[image_path], labels="cifar10")
    ts = []
    for _ in range(args.upload_repeats):
        t = time.perf_counter()
        a.classify(images=[image_path], labels="cifar10")
        ts.append((time.perf_counter() - t) * 1000)
    inproc_ms = statistics.median(ts)
    text_dim = a.fingerprint.text_dim
    a.close()

    port = free_port()
    keys = ",".join(f"{v}={'@admin' if k == 'admin' else k}" for k, v in KEYS.items())
    env = {**os.environ, "ASIF_API_KEYS": keys, "HF_HUB_OFFLINE": "1", "ASIF_MAX_REQUEST_BYTES": str(BODY_LIMIT)}
    proc = start_server(store, port, env)
    base = f"http://127.0.0.1:{port}"
    hdr = {t: {"Authorization": f"Bearer {k}"} for t, k in KEYS.items()}
    rows: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=base, headers=hdr["admin"], timeout=120) as c:
            img_bytes = Path(image_path).read_bytes()
            c.post("/v1/classify/image", files={"images": ("x.jpg", img_bytes, "image/jpeg")},
                   data={"labels": "cifar10"})
            ts = []
            for _ in range(args.upload_repeats):
                t = time.perf_counter()
                r = c.post("/v1/classify/image", files={"images": ("x.jpg", img_bytes, "image/jpeg")},
                           data={"labels": "cifar10"})
                ts.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
            http_ms = statistics.median(ts)
        upload = {"in_process_ms": inproc_ms, "http_upload_ms": http_ms, "ratio": http_ms / inproc_ms}

        # -- read-only throughput: one client vs N concurrent clients ----------------------------------
        def read_burst(n_clients: int) -> float:
            per = max(1, args.read_requests // n_clients)

            def run(i: int) -> None:
                with httpx.Client(base_url=base, headers=hdr["acme"], timeout=120) as cc:
                    for j in range(per):
                        q = vecs[1000 + (i * per + j) % 2000][None].tolist()
                        cc.post("/v1/classify", json={"labels": "cifar10", "vectors": q}).raise_for_status()

            t = time.perf_counter()
            th = [threading.Thread(target=run, args=(i,)) for i in range(n_clients)]
            for x in th:
                x.start()
            for x in th:
                x.join()
            return per * n_clients / (time.perf_counter() - t)

        read_burst(1)
        single = read_burst(1)
        multi = read_burst(args.clients)
        throughput = {"single_client_rps": single, "concurrent_rps": multi, "clients": args.clients,
                      "speedup": multi / single}

        # -- mixed phase ---------------------------------------------------------------------------------
        lat: dict[str, list[float]] = {}
        errors: list[str] = []
        leaks: list[str] = []
        owned: dict[str, dict[int, str]] = {"acme": {}, "globex": {}}  # id -> caption of what each tenant holds
        marks = {t: (f"{t}-caption", f"{t}/img") for t in owned}
        lock = threading.Lock()
        stop = time.time() + args.seconds

        def record(name: str, ms: float) -> None:
            with lock:
                lat.setdefault(name, []).append(ms)

        def check_leak(tenant: str, text: str, body: Any) -> None:
            other = "globex" if tenant == "acme" else "acme"
            if any(m in text for m in marks[other]):
                leaks.append(f"{tenant} saw a {other} caption/image_ref")
            ids = set()
            for e in body.get("explained", []) if isinstance(body, dict) else []:
                ids |= {c["id"] for c in e["contributions"]}
            with lock:
                theirs = set(owned[other])
            if ids & theirs:
                leaks.append(f"{tenant} saw {other} ids {sorted(ids & theirs)[:3]}")

        def client(i: int) -> None:
            tenant = "acme" if i % 2 == 0 else "globex"
            r_ = random.Random(i)
            k = 0
            with httpx.Client(base_url=base, headers=hdr[tenant], timeout=120) as cc:
                while time.time() < stop:
                    k += 1
                    op = r_.choices(["classify", "search", "explain", "add", "delete"], [5, 3, 2, 1, 1])[0]
                    q = vecs[1000 + r_.randrange(5000)]
                    t = time.perf_counter()
                    try:
                        if op == "classify":
                            r = cc.post("/v1/classify", json={"labels": "cifar10", "vectors": [q.tolist()]})
                        elif op == "search":
                            r = cc.post("/v1/search", json={"gallery": "cifar", "texts": ["a photo of a dog"],
                                                            "top": 10})
                        elif op == "explain":
                            r = cc.post("/v1/explain", json={"labels": "cifar10", "vector": q.tolist(), "top": 20})
                        elif op == "add":
                            n = 4
                            iv = vecs[6000 + r_.randrange(3000):][:n]
                            tv = rng.standard_normal((n, text_dim)).astype(np.float32)
                            caps = [f"{tenant}-caption {i}-{k}-{j}" for j in range(n)]
                            r = cc.post("/v1/anchors", json={
                                "image_vectors": iv.tolist(), "text_vectors": tv.tolist(), "captions": caps,
                                "image_refs": [f"{tenant}/img{i}-{k}-{j}.jpg" for j in range(n)]})
                            if r.status_code == 200:
                                with lock:
                                    owned[tenant].update(zip(r.json()["ids"], caps, strict=True))
                        else:
                            with lock:
                                mine = list(owned[tenant])[:2]
                            r = cc.post("/v1/anchors/delete", json={"ids": mine})
                            if r.status_code == 200:
                                with lock:
                                    for d in r.json()["deleted"]:
                                        owned[tenant].pop(d, None)
                        ms = (time.perf_counter() - t) * 1000
                        if r.status_code != 200:
                            errors.append(f"{op} {r.status_code} {r.text[:200]}")
                            continue
                        record(op, ms)
                        if op in ("classify", "search", "explain"):
                            check_leak(tenant, r.text, r.json())
                    except Exception as e:  # noqa: BLE001 - counted as an error
                        errors.append(f"{op} {type(e).__name__}: {e}")

        t0 = time.perf_counter()
        th = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for x in th:
            x.start()
        for x in th:
            x.join()
        wall = time.perf_counter() - t0
        total = sum(len(v) for v in lat.values())
        for name, xs in sorted(lat.items()):
            rows.append({"endpoint": name, "requests": len(xs), "p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95),
                         "p99_ms": pct(xs, 99)})
        mixed = {"requests": total, "seconds": wall, "rps": total / wall, "errors": len(errors),
                 "leaks": len(leaks), "error_samples": errors[:5], "leak_samples": leaks[:5]}
        isolation = tenant_phases(base, hdr, vecs, text_dim, args.phase_seconds)
        bounds = bomb_phase(base, hdr["admin"], proc.pid, BODY_LIMIT, 1_000_000_000)
        # the store as the server answers it now
        q = vecs[1000:1020].tolist()
        served = {t: httpx.post(f"{base}/v1/classify", headers=hdr[t], timeout=120,
                                json={"labels": "cifar10", "vectors": q}).json() for t in owned}
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    # -- after: each tenant's answers equal a rebuild of its label set from its current anchors ----------
    a = Asif.open(store)
    counts = {t: a.count(t) for t in owned}
    held = {t: len(v) for t, v in owned.items()}
    equal = {}
    for t in owned:
        if any(i.tenant == t for i in a.list_indexes(t)):  # its own copy of the shared label set
            a.refresh("cifar10", tenant=t)
        rebuilt = [p.as_dict() for p in a.classify(vectors=np.asarray(q), labels="cifar10", tenant=t)]
        equal[t] = json.loads(json.dumps(rebuilt)) == served[t]["predictions"] or all(
            r["label"] == s["label"] and abs(r["score"] - s["score"]) < 1e-5
            for r, s in zip(rebuilt, served[t]["predictions"], strict=True))
    a.close()
    shutil.rmtree(args.work, ignore_errors=True)

    print(table(rows, ["endpoint", "requests", "p50_ms", "p95_ms", "p99_ms"]))
    print(f"\nmixed: {mixed['requests']} requests in {mixed['seconds']:.1f} s = {mixed['rps']:.1f} req/s, "
          f"{args.clients} clients over 2 tenant keys, {n_shared} shared anchors; errors {mixed['errors']}, "
          f"cross-tenant leaks {mixed['leaks']}")
    print(f"final state equals a rebuild: {equal}; anchors held {held} == stored {counts}")
    print(f"read-only classify: 1 client {single:.1f} req/s, {args.clients} clients {multi:.1f} req/s "
          f"= {throughput['speedup']:.2f}x")
    print(f"classify with encoding: in-process {inproc_ms:.1f} ms, HTTP upload {http_ms:.1f} ms "
          f"= {upload['ratio']:.2f}x")
    ro, mx = isolation["read_only"], isolation["mixed"]
    print(f"globex reads, read-only: {ro['reads']} p95 {ro['p95_ms']:.1f} ms; while acme edits: {mx['reads']} p95 "
          f"{mx['p95_ms']:.1f} ms = {isolation['p95_ratio']:.2f}x (target <= 1.5x); 503s {ro['read_503']} / "
          f"{mx['read_503']}, read errors {mx['read_errors']}, acme edit requests {mx['edit_requests']} "
          f"(errors {mx['edit_errors']})")
    print(f"peak RSS: {bounds['rss_before_mb']:.0f} MB before; {bounds['rss_after_bombs_mb']:.0f} MB after 5 x 3 "
          f"bombs of {bounds['bomb_kb']:.0f} KB (statuses {sorted(set(bounds['bomb_statuses']))}); "
          f"{bounds['rss_after_batch_mb']:.0f} MB after {bounds['photos']} 4000x3000 photos in one request "
          f"({bounds['batch_status']}, {bounds['batch_seconds']:.1f} s)")
    out = write_results("bench_serve", rows, mixed=mixed, throughput=throughput, upload=upload,
                        isolation=isolation, decoding=bounds,
                        rebuild_equal=equal, anchors_held=held, anchors_stored=counts, shared_anchors=n_shared,
                        cpus=os.cpu_count())
    print(f"results: {out}")


if __name__ == "__main__":
    main()
