"""Every example of the README and of docs/ works (on a small slice of the shared data).

Runnable: ```python blocks and the `asif ...` lines of ```bash blocks. A fence whose info string says `no-run`
(```python no-run, ```bash no-run: server-only snippets, say) is shown and not run; ```sh and ```text blocks
(set-up, docker, curl) are never run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA

from asif_qdrant.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE_RE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", flags=re.S | re.M)

needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "flickr8k").is_dir() or not (SHARED_DATA / "cifar10-test").is_dir(),
    reason=f"shared data not found at {SHARED_DATA}",
)


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _runnable(text: str, lang: str) -> list[str]:
    """The blocks of ``lang`` in a page, without those marked ``no-run``."""
    return [body for tag, info, body in FENCE_RE.findall(text) if tag == lang and "no-run" not in info.split()]


def _asif_lines(text: str) -> list[str]:
    lines = []
    for block in _runnable(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():  # a continued line is one command
            if line.strip().startswith("asif "):
                lines.append(line.strip())
    return lines


def _doc_python_blocks() -> list[tuple[str, int, str]]:
    blocks = [("README.md", i, b) for i, b in enumerate(_runnable(README, "python")) if i > 0]  # 0: the tour's
    for page in DOC_PAGES:
        blocks += [(f"docs/{page.name}", i, b) for i, b in enumerate(_runnable(page.read_text(), "python"))]
    return blocks


def test_readme_has_exactly_two_setup_commands() -> None:
    setup = README.split("## Set-up: two commands", 1)[1].split("##", 1)[0]
    commands = [ln.split("#")[0].strip() for ln in _blocks("sh")[0].splitlines() if ln.strip()]
    assert commands == ["make demo", "make test"]
    assert "make demo" in setup and "make test" in setup


@needs_data
@pytest.mark.data
@pytest.mark.slow
def test_python_example_runs(tmp_path: Path) -> None:
    code = _blocks("python")[0].replace('Path("../shared/data")', f"Path({str(SHARED_DATA)!r})")
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = proc.stdout.splitlines()[0].split()
    assert first[0] in {"dog", "child", "None"}
    assert (tmp_path / "asif-data" / "collections").is_dir()


@needs_data
@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize(("page", "index", "code"),
                         [pytest.param(p, i, c, id=f"{p}:{i}") for p, i, c in _doc_python_blocks()])
def test_docs_python_examples_run(tmp_path: Path, page: str, index: int, code: str) -> None:
    script = tmp_path / "example.py"
    script.write_text(code.replace('Path("../shared/data")', f"Path({str(SHARED_DATA)!r})"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, f"{page}, python block {index}:\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{page}, python block {index} printed nothing"


def test_docs_examples_are_found() -> None:
    # the collector sees the examples of docs/ (a regex slip would silently run nothing)
    pages = {page for page, _, _ in _doc_python_blocks()}
    assert {"docs/usage.md", "docs/tenancy-and-updates.md"} <= pages
    assert "asif labels delete pets" in _asif_lines((ROOT / "docs" / "usage.md").read_text())
    assert _asif_lines(README) == [ln.strip() for ln in _blocks("bash")[0].splitlines() if ln.startswith("asif ")]
    assert _runnable("```python no-run\nx\n```\n```python\ny\n```\n", "python") == ["y\n"]


@needs_data
@pytest.mark.data
@pytest.mark.slow
@pytest.mark.timeout(1200)  # 16 README commands of real work (a 1,000-image gallery among them) + docs/ lines (seconds)
def test_cli_examples_run(tmp_path: Path) -> None:
    # the README's lines first, then each docs page's, in one store (a page may use what the README made)
    lines = [ln.strip() for ln in _blocks("bash")[0].splitlines() if ln.strip().startswith("asif ")]
    assert len(lines) >= 10
    lines += [ln for page in DOC_PAGES for ln in _asif_lines(page.read_text())]
    # in this process, through click's runner (one interpreter and one torch import for all of them): each line's
    # $DATA/$TMP expanded and split as a shell would (quotes kept, so the CLI expands the quoted glob itself)
    env = {"HF_HUB_OFFLINE": "1", "ASIF_PATH": str(tmp_path / "store")}
    values = {"DATA": str(SHARED_DATA), "TMP": str(tmp_path)}
    outputs: dict[str, str] = {}
    every: list[str] = []
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for line in lines:
            args = shlex.split(re.sub(r"\$(DATA|TMP)", lambda m: values[m.group(1)], line))[1:]
            res = runner.invoke(main, args, env=env, catch_exceptions=False)
            assert res.exit_code == 0, f"{line}\n{res.output[-3000:]}"
            outputs.setdefault(" ".join(line.split()[1:3]), res.stdout)  # the README's line, where a page repeats it
            every.append(res.stdout)
    finally:
        os.chdir(cwd)
    assert "10 classes x 8 templates = 80 prompts" in outputs["labels add"]
    assert "cifar10" in outputs["labels list"]
    assert "0001_anchor_collection" in outputs["migrate --list"] and "applied" in outputs["migrate --list"]
    assert (tmp_path / "report.html").read_text().count('class="label-row"') >= 1
    assert "acme" in outputs["tenants stats"]
    assert "added 1 anchor(s)" in outputs["add $DATA/cifar10-test/cat/0001.jpg"]
    gallery = (tmp_path / "gallery.csv").read_text().splitlines()
    assert gallery[0] == "path,item,status,error" and len(gallery) == 1 + 1000  # every ship image, added
    assert all(row.split(",")[2] == "added" for row in gallery[1:])
    assert "taught tenant 'acme' 10 new pair(s)" in outputs["teach $DATA/cifar10-test"]
    # docs/usage.md's lines: redefine, delete, check
    assert "label set 'pets': 3 classes x 8 templates = 24 prompts" in "".join(every)
    assert "deleted label set 'pets'" in "".join(every) and "deleted gallery 'holiday'" in "".join(every)
    assert "the store is healthy" in "".join(every)


def test_tagging_story_runs_and_prints_what_the_readme_says(tmp_path: Path) -> None:
    """The README's tagging story (tag, filter on the tag, delete an anchor, the tag changes, explain it) runs (no
    data needed) and prints the output the README shows."""
    page = README[README.index("## Tag the collections you already have"):]
    code = re.findall(r"```python\n(.*?)```", page, flags=re.S)[0]
    shown = re.findall(r"It prints \(.*?\):\n\n```text\n(.*?)```", page, flags=re.S)[0]
    script = tmp_path / "tagging_example.py"
    script.write_text(code)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def masked(text: str) -> str:  # anchor ids are drawn per store
        return re.sub(r"#\d+", "#ID", text)

    assert masked(proc.stdout) == masked(shown)
