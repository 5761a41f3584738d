"""`asif classify` of one image: the CLI against a warm `asif serve` (--server) vs the standalone embedded CLI.

    .venv/bin/python benchmarks/bench_cli.py --embedded-runs 3 --server-runs 10

A copy of the prebuilt Flickr8k store (40,445 shared anchors, tf_efficientnet_lite0 + all-MiniLM-L6-v2) gets the
CIFAR-10 label set. Each row times whole `asif` processes (python start-up, imports, the command, exit), as a user
at a shell sees them, classifying the same CIFAR-10 test image:

- ``embedded``: ``asif --path STORE classify IMG --labels cifar10 --json`` (opens the store, loads both models);
- ``server``: ``asif --server URL classify IMG --labels cifar10 --json`` against ``asif serve`` on the same store,
  started once and warmed by one request before the timing (its start-up is reported, not counted);
- ``import``: ``python -c "import asif_qdrant.cli"``, the floor of any CLI call.

Both modes must print the same label; the target is the server row well under a second, and its ratio to the
embedded row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from common import DATA, table, write_results

STORE = Path("/work/cache/flickr-store")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
KEY = "bench-cli-admin-key-0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, Any]:
    """Wall seconds of one `asif` process, and its JSON output."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "asif_qdrant.cli", *args], env=env, capture_output=True, text=True,
                         timeout=600)
    dt = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"asif {' '.join(args)} failed: {out.stderr[-2000:]}")
    return dt, json.loads(out.stdout) if out.stdout.strip().startswith(("[", "{")) else None


def start_server(store: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], float]:
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "asif_qdrant.cli", "--path", str(store), "serve", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"asif serve exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc, time.perf_counter() - t
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("asif serve did not become healthy in 300 s")


def row(mode: str, times: list[float], note: str) -> dict[str, Any]:
    return {"mode": mode, "runs": len(times), "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times), "note": note}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedded-runs", type=int, default=3)
    ap.add_argument("--server-runs", type=int, default=10)
    ap.add_argument("--image", type=Path, default=DATA / "cifar10-test" / "cat" / "0000.jpg")
    ap.add_argument("--work", type=Path, default=Path("/tmp/asif-bench-cli"))
    args = ap.parse_args()

    if args.work.exists():
        shutil.rmtree(args.work)
    store = args.work / "store"
    shutil.copytree(STORE, store)
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    env.pop("ASIF_SERVER", None)
    classes = ",".join(CLASSES)
    run_cli(["--path", str(store), "labels", "add", "cifar10", "--classes", classes], env)
    image = str(args.image)
    cmd = ["classify", image, "--labels", "cifar10", "--json"]

    def python_s(code: str) -> list[float]:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - t)
        return times

    imports = python_s("import asif_qdrant.cli")
    imports_remote = python_s("import asif_qdrant.cli, asif_qdrant.cli.remote")

    embedded, emb_out = [], None
    for _ in range(args.embedded_runs):
        dt, emb_out = run_cli(["--path", str(store), *cmd], env)
        embedded.append(dt)

    port = free_port()
    senv = {**env, "ASIF_API_KEYS": f"{KEY}=@admin"}
    proc, startup_s = start_server(store, port, senv)
    url = f"http://127.0.0.1:{port}"
    cenv = {**env, "ASIF_SERVER": url, "ASIF_SERVER_KEY": KEY}
    try:
        run_cli(cmd, cenv)  # the first request after start-up warms the server's caches
        served, srv_out = [], None
        for _ in range(args.server_runs):
            dt, srv_out = run_cli(cmd, cenv)
            served.append(dt)
        from asif_qdrant.client import AsifClient

        requests = []
        with AsifClient(url, KEY) as client:
            for _ in range(args.server_runs):
                t = time.perf_counter()
                client.classify("cifar10", images=[args.image])
                requests.append(time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait(30)

    assert emb_out is not None and srv_out is not None
    same_label = emb_out[0]["label"] == srv_out[0]["label"]
    score_diff = abs(emb_out[0]["score"] - srv_out[0]["score"])
    rows = [row("embedded", embedded, "opens the store, loads both encoders"),
            row("server", served, f"--server to a warm asif serve (its start-up: {startup_s:.1f} s, not counted)"),
            row("import", imports, "python -c 'import asif_qdrant.cli'"),
            row("import --server", imports_remote, "python -c 'import asif_qdrant.cli, asif_qdrant.cli.remote'"),
            row("request", requests, "AsifClient.classify(images=[IMG]) in this process: HTTP + server's work")]
    ratio = rows[0]["median_s"] / rows[1]["median_s"]
    print(table(rows, ["mode", "runs", "median_s", "min_s", "max_s", "note"]))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\nembedded / server: {ratio:.1f}x; label {emb_out[0]['label']!r} in both: {same_label}; "
          f"score difference {score_diff:.2e}; server start-up {startup_s:.1f} s")
    out = write_results("bench_cli", rows, ratio_embedded_over_server=ratio, image=image, same_label=same_label,
                        score_difference=score_diff, server_startup_s=startup_s, label=srv_out[0]["label"],
                        anchors="flickr8k 40,445 (lite0 + MiniLM)", load_average=os.getloadavg()[0])
    print(f"wrote {out}")
    if not same_label:
        raise SystemExit("the two modes disagree on the label")


if __name__ == "__main__":
    main()
