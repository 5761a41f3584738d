"""`asif serve` under concurrent load, on loopback: throughput, latency, errors, isolation, freshness.

    .venv/bin/python benchmarks/bench_serve.py --clients 4 --seconds 40

A copy of the prebuilt Flickr8k store (40,445 shared anchors, tf_efficientnet_lite0 + all-MiniLM-L6-v2) is served
by `asif serve` in a subprocess. Queries use the vector endpoints with real lite0 vectors of CIFAR-10 test
images (so encoding does not dominate); one row uploads an image (encoding included) next to the same classify
in-process. Two tenants (keys) add and delete anchors of their own while every client classifies, searches and
explains. After the run: every response was checked for the other tenant's ids, captions and image_refs; each
tenant's answers equal those of a rebuild (refresh) of its label set; errors must be 0.
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
from common import table, write_results

STORE = Path("/work/cache/flickr-store")
CIFAR = Path("/work/cache/cifar10_lite0.npz")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
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
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"asif serve exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("asif serve did not become healthy in 180 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the mixed phase")
    ap.add_argument("--read-requests", type=int, default=60, help="requests per throughput measurement")
    ap.add_argument("--upload-repeats", type=int, default=10)
    ap.add_argument("--work", type=Path, default=Path("/tmp/asif-bench-serve"))
    args = ap.parse_args()

    from asif_qdrant import Asif

    if args.work.exists():
        shutil.rmtree(args.work)
    store = args.work / "store"
    shutil.copytree(STORE, store)
    data = np.load(CIFAR, allow_pickle=True)
    vecs, paths = data["vectors"].astype(np.float32), [str(p) for p in data["paths"]]
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
    env = {**os.environ, "ASIF_API_KEYS": keys, "HF_HUB_OFFLINE": "1"}
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
    out = write_results("bench_serve", rows, mixed=mixed, throughput=throughput, upload=upload,
                        rebuild_equal=equal, anchors_held=held, anchors_stored=counts, shared_anchors=n_shared,
                        cpus=os.cpu_count())
    print(f"results: {out}")


if __name__ == "__main__":
    main()
