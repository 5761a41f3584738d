"""The distribution: the core works without the heavy extras, and what the Dockerfile copies builds into a wheel.

- with torch, timm, sentence-transformers, matplotlib and FastAPI hidden (a meta-path finder that refuses them), the
  core imports, classifies precomputed vectors with the exact scores relrep computes, and every optional part names
  the extra that brings it;
- the Dockerfile's COPY set (parsed, not hard-coded) builds into a wheel that installs and runs from outside the
  source tree; its torch pins are the encoders extra's, taken from PyTorch's CPU index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asif_qdrant import relrep

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = ("torch", "torchvision", "timm", "sentence_transformers", "transformers", "matplotlib", "fastapi",
          "starlette", "uvicorn", "multipart")  # not httpx: qdrant-client (core) needs it

# Runs in a fresh interpreter: argv = [store folder, JSON {image, text, prompts, query}]. Prints one JSON line.
_CORE_ONLY = r"""
import importlib.abc, json, sys

HIDDEN = set(sys.argv[3].split(","))


class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Hide())
import click
import numpy as np
import asif_qdrant
from asif_qdrant import Asif, MissingExtraError
from asif_qdrant.cli import main
from asif_qdrant.encoders import create_encoder

d = {k: np.asarray(v, np.float32) for k, v in json.loads(sys.argv[2]).items()}
out = {"file": asif_qdrant.__file__}
with Asif.open(sys.argv[1], image_encoder="precomputed:img:8", text_encoder="precomputed:txt:6") as a:
    out["ids"] = a.add_vectors(d["image"], d["text"]).ids
    a.define_labels("L", ["cat", "dog"], templates="plain", prompt_vectors=d["prompts"], k=4, p=8)
    pred = a.classify(vectors=d["query"], labels="L", top=2)[0]
    out["label"], out["scores"] = pred.label, {s.label: s.score for s in pred.top}
for enc in ("timm:tf_efficientnet_lite0", "st:all-MiniLM-L6-v2"):
    try:
        create_encoder(enc)
    except MissingExtraError as e:
        out[enc] = str(e)
try:
    from asif_qdrant.evaluation.sweeps import plot_curve
    plot_curve(None, "x.png")
except MissingExtraError as e:
    out["plot"] = str(e)
try:
    main(["--path", sys.argv[1], "serve"], standalone_mode=False)
except click.ClickException as e:  # what `asif serve` prints after "Error: "
    out["serve"] = e.format_message()
out["loaded"] = sorted(m for m in HIDDEN if m in sys.modules)
print(json.dumps(out))
"""


def _data() -> dict[str, np.ndarray]:
    r = np.random.default_rng(11)
    img = r.standard_normal((6, 8))
    txt = r.standard_normal((6, 6))
    return {"image": img, "text": txt, "prompts": txt[:2] + 0.3 * r.standard_normal((2, 6)),
            "query": img[:1] + 0.3 * r.standard_normal((1, 8))}


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32).astype(np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _rep(sims: np.ndarray, ids: np.ndarray, k: int = 4, p: float = 8.0) -> relrep.SparseRep:
    """The reference: the k most similar anchors (no ties in this data), clamped, ^p, L2-normalised."""
    order = np.argsort(-sims)[:k]
    return relrep.relative_rep(ids[order], sims[order], p)


def _run_core_only(pythonpath: Path, cwd: Path) -> dict[str, Any]:
    data = _data()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run(
        [sys.executable, "-c", _CORE_ONLY, str(cwd / "store"), json.dumps({k: v.tolist() for k, v in data.items()}),
         ",".join(HIDDEN)], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _check_core_only(out: dict[str, Any]) -> None:
    d = _data()
    ids = np.asarray(out["ids"], np.int64)
    img, txt, prompts, q = (_unit(d[k]) for k in ("image", "text", "prompts", "query"))
    q_rep = _rep(q[0] @ img.T, ids)
    want = {c: relrep.sparse_dot(q_rep, _rep(txt @ prompts[i], ids)) for i, c in enumerate(("cat", "dog"))}
    assert want["cat"] > 0.3 > want["dog"]  # the query sits near image 0, the 'cat' prompt near caption 0
    assert out["label"] == "cat"
    assert out["scores"] == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert out["loaded"] == []  # nothing heavy was imported (nor could be)
    for enc in ("timm:tf_efficientnet_lite0", "st:all-MiniLM-L6-v2"):
        assert "pip install 'asif-qdrant[encoders]'" in out[enc], out
    assert "pip install 'asif-qdrant[eval]'" in out["plot"]
    assert out["serve"] == ("asif serve needs the package 'fastapi', which is not installed: pip install "
                            "'asif-qdrant[serve]' (or pip install 'asif-qdrant[all]')")


def test_the_core_runs_with_the_heavy_packages_hidden(tmp_path: Path) -> None:
    out = _run_core_only(ROOT, tmp_path)
    assert out["file"].startswith(str(ROOT))
    _check_core_only(out)


def _dockerfile_copies() -> list[tuple[list[str], str]]:
    """The Dockerfile's COPY lines as (sources, destination), relative to the build context and WORKDIR."""
    out = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            parts = line.split()[1:]
            assert not any(p.startswith("--") for p in parts), f"COPY option not understood by this test: {line}"
            out.append((parts[:-1], parts[-1]))
    return out


def _core_requirements(pyproject: dict[str, Any]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in pyproject["project"]["dependencies"]}


def test_the_core_dependencies_leave_out_the_extras() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    core = _core_requirements(meta)
    extras = meta["project"]["optional-dependencies"]
    heavy = {"torch", "torchvision", "timm", "sentence-transformers", "matplotlib", "fastapi", "uvicorn",
             "python-multipart", "httpx"}
    assert core & heavy == set()
    assert {"numpy", "qdrant-client", "qdrant-edge-py", "pydantic"} <= core
    assert {"torch", "timm", "sentence-transformers"} <= _core_requirements({"project": {"dependencies":
                                                                                    extras["encoders"]}})
    assert extras["all"] == ["asif-qdrant[encoders,serve,eval]"]
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q -e '.[all,test]'" in makefile


def test_the_dockerfile_takes_cpu_torch_at_the_pinned_versions() -> None:
    text = (ROOT / "Dockerfile").read_text()
    encoders = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["encoders"]
    pins = {r.split("==")[0]: r for r in encoders if r.startswith(("torch==", "torchvision=="))}
    cpu = re.search(r"pip install --index-url https://download\.pytorch\.org/whl/cpu ([^\\&\n]+)", text)
    assert cpu is not None, "torch must come from PyTorch's CPU index"
    assert sorted(cpu.group(1).split()) == sorted(pins.values())
    assert "pip install -e" not in text and "pip install '.[encoders,serve]'" in text
    copied = {s for srcs, _ in _dockerfile_copies() for s in srcs}
    assert {"pyproject.toml", "setup.py", "asif_qdrant", "migrations"} <= copied


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_what_the_dockerfile_copies_builds_a_wheel_that_runs_outside_the_tree(tmp_path: Path) -> None:
    ctx = tmp_path / "app"
    ctx.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")  # .dockerignore's **/__pycache__
    for sources, dest in _dockerfile_copies():
        for src in sources:
            target = ctx / dest / Path(src).name if dest.endswith("/") else ctx / dest
            if (ROOT / src).is_dir():
                shutil.copytree(ROOT / src, target, ignore=ignore)
            else:
                shutil.copy(ROOT / src, target)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), str(ctx)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("asif_qdrant-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "asif_qdrant/validate.py" in names and "asif_qdrant/migrations/0001_anchor_collection.py" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [ln for ln in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if ln.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert core and not [r for r in core if re.search(r"torch|timm|sentence|matplotlib|fastapi|uvicorn", r)]
    assert any("torch==" in r and "extra == \"encoders\"" in r for r in requires)
    site = tmp_path / "site"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                           str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = _run_core_only(site, work)
    assert out["file"].startswith(str(site))
    _check_core_only(out)
