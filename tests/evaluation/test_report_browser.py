"""The HTML explanation report: self-contained, escaped, and rendered by a real browser (headless Chromium).

The browser tests need the Debian package ``chromium``; when it is missing they try ``apt-get install -y
chromium`` once per session, and skip with the reason when that fails (no root, no network).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM
from PIL import Image

from asif_qdrant import Asif
from asif_qdrant.evaluation.report import explain_report, render_html, write_report
from asif_qdrant.explain import explain

EVIL = "<script>alert(1)</script>"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
]


# -- fixtures ----------------------------------------------------------------------------------
def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    found = _find_chromium()
    if found:
        return found
    reason = ""
    try:
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        reason = f"apt-get exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as e:
        reason = f"{type(e).__name__}: {e}"
    found = _find_chromium()
    if found:
        return found
    msg = f"headless Chromium is not available and `apt-get install -y chromium` failed ({reason})"
    print(msg)
    pytest.skip(msg)


def _square(path: Path, rgb: tuple[int, int, int], size: int = 64) -> Path:
    arr = np.zeros((size, size, 3), np.uint8)
    arr[:, :] = rgb
    arr[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = (255, 255, 255)  # a white inner square
    Image.fromarray(arr).save(path)
    return path


@dataclass
class Scene:
    store: Asif
    tmp: Path
    query: np.ndarray
    query_png: Path
    evil_id: int
    other_ids: list[int] = field(default_factory=list)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    rng = np.random.default_rng(7)
    s = Asif.open(url=":memory:", image_encoder=f"precomputed:img:{IMG_DIM}", text_encoder=f"precomputed:txt:{TXT_DIM}")
    imgs = tmp_path / "anchors"
    imgs.mkdir()
    q = rng.standard_normal(IMG_DIM)
    prompts = rng.standard_normal((3, TXT_DIM))
    # anchors near the query whose captions are near prompt 0 ("cat"): they carry the "cat" score
    near_i = q[None] + 0.2 * rng.standard_normal((6, IMG_DIM))
    near_t = prompts[0] + 0.2 * rng.standard_normal((6, TXT_DIM))
    caps = [EVIL] + [f"a cat on a mat {i}" for i in range(1, 6)]
    colours = [(200, 30, 30), (30, 160, 60), (30, 60, 200), (200, 160, 30), (130, 30, 160), (30, 160, 160)]
    refs = [str(_square(imgs / f"a{i}.png", colours[i])) for i in range(5)] + ["missing/nowhere.png"]
    ids = s.add_vectors(near_i, near_t, captions=caps, image_refs=refs, payloads=[{"n": i} for i in range(6)]).ids
    s.add_vectors(rng.standard_normal((20, IMG_DIM)), rng.standard_normal((20, TXT_DIM)),
                  captions=[f"random pair {i}" for i in range(20)])
    s.define_labels("pets", ["cat", "dog", "bird"], templates="plain", prompt_vectors=prompts, k=12, p=2)
    query_png = _square(tmp_path / "query.png", (220, 20, 20), 200)
    yield Scene(s, tmp_path, q, query_png, ids[0], ids[1:])
    s.close()


def _unknown_store() -> tuple[Asif, np.ndarray]:
    s = Asif.open(url=":memory:", image_encoder=f"precomputed:img:{IMG_DIM}", text_encoder=f"precomputed:txt:{TXT_DIM}")
    img = np.zeros((3, IMG_DIM)); img[:, 0] = 1; img[:, 1] = [0.1, 0.2, 0.3]  # noqa: E702
    txt = np.zeros((3, TXT_DIM)); txt[:, 0] = 1; txt[:, 1] = [0.3, 0.2, 0.1]  # noqa: E702
    s.add_vectors(img, txt, captions=["x", "y", "z"])
    s.define_labels("L", ["a", "b"], templates="plain", prompt_vectors=np.eye(TXT_DIM)[:2], k=2)
    q = np.zeros(IMG_DIM); q[0] = -1  # noqa: E702
    return s, q


class DomSummary(HTMLParser):
    """Elements by id and class, script elements, and the text of each .caption element."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, tuple[str, dict[str, str]]] = {}
        self.classes: dict[str, int] = {}
        self.scripts = 0
        self.captions: list[str] = []
        self._in_caption = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script":
            self.scripts += 1
        if "id" in a:
            self.ids[a["id"]] = (tag, a)
        for c in a.get("class", "").split():
            self.classes[c] = self.classes.get(c, 0) + 1
        for key in ("src", "href"):
            if key in a and not a[key].startswith("data:"):
                self.external.append(a[key])
        if "caption" in a.get("class", "").split():
            self._in_caption = 1
            self.captions.append("")
        elif self._in_caption:
            self._in_caption += 1

    def handle_endtag(self, tag: str) -> None:
        if self._in_caption:
            self._in_caption -= 1

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.captions[-1] += data


def parse(html_text: str) -> DomSummary:
    d = DomSummary()
    d.feed(html_text)
    return d


def run_chromium(chromium: str, page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp)


# -- without a browser -------------------------------------------------------------------------
def test_html_escapes_captions_and_is_self_contained(scene: Scene) -> None:
    ex = explain(scene.store, vector=scene.query, labels="pets", top=6, n_labels=3)
    assert ex.predicted == "cat" and scene.evil_id in {c.id for c in ex.contributions}
    page = render_html(ex, scene.query_png)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    dom = parse(page)
    assert dom.scripts == 0 and dom.external == []
    assert EVIL in dom.captions  # shown as text, once unescaped by the parser
    assert dom.classes["label-row"] == len(ex.ranking) == 3
    assert dom.classes["anchor-card"] == sum(len(e.contributions) for e in ex.explained)
    assert dom.ids["query-image"][0] == "img" and dom.ids["query-image"][1]["src"].startswith("data:image/jpeg;base64,")
    # the anchor whose image file is missing gets a placeholder box, the others an embedded thumbnail
    assert dom.classes.get("placeholder", 0) >= 1
    assert page.count('class="thumb" src="data:image/jpeg;base64,') >= 4
    assert "http://" not in page and "https://" not in page and "<link" not in page


def test_html_unknown_case_says_so(tmp_path: Path) -> None:
    s, q = _unknown_store()
    with s:
        ex = explain(s, vector=q, labels="L")
        assert ex.unknown and ex.label is None
        page = render_html(ex)
    dom = parse(page)
    assert "unknown" in dom.ids and dom.classes.get("label-row", 0) == 0 and dom.classes.get("anchor-card", 0) == 0
    assert "No shared anchor" in page
    assert dom.ids["query-image"][0] == "div"  # a vector query: placeholder instead of an image


def test_report_path_errors(scene: Scene) -> None:
    from asif_qdrant import InvalidInputError

    ex = explain(scene.store, vector=scene.query, labels="pets")
    with pytest.raises(InvalidInputError, match="does not exist"):
        write_report(ex, scene.tmp / "no" / "such" / "r.html")
    with pytest.raises(InvalidInputError, match="is a folder"):
        write_report(ex, scene.tmp)


# -- in a browser ------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_in_chromium(chromium: str, scene: Scene) -> None:
    out = scene.tmp / "report.html"
    ex = explain_report(scene.store, out, vector=scene.query, labels="pets", top=6, n_labels=3)
    write_report(ex, out, scene.query_png)  # same explanation, now with the query image to show
    dom_run = run_chromium(chromium, out, scene.tmp, "--dump-dom")
    assert dom_run.returncode == 0, dom_run.stderr[-2000:]
    dom = parse(dom_run.stdout)
    assert dom.scripts == 0, "a caption injected a <script> element"
    assert EVIL in dom.captions
    assert dom.classes["label-row"] == 3
    assert dom.classes["anchor-card"] == sum(len(e.contributions) for e in ex.explained)
    assert dom.ids["query-image"][0] == "img"
    labels_in_dom = re.findall(r'<tr class="label-row[^"]*" data-label="([^"]+)"', dom_run.stdout)
    assert labels_in_dom == [r.label for r in ex.ranking]

    png = scene.tmp / "shot.png"
    shot = run_chromium(chromium, out, scene.tmp, f"--screenshot={png}", "--window-size=1200,1600")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    arr = np.asarray(Image.open(png).convert("RGB"), np.float64)
    assert arr.shape[:2] == (1600, 1200)
    assert arr.std() > 10, "the screenshot is blank"
    # the query thumbnail is a red square with a white centre, top-left under the title: it was painted
    red = (arr[..., 0] > 180) & (arr[..., 1] < 60) & (arr[..., 2] < 60)
    assert red[:600, :500].sum() > 5000, "the embedded query image was not rendered"
    # the score bars (blue/green) were painted
    bars = ((arr[..., 2] > 180) & (arr[..., 0] < 80)) | ((arr[..., 1] > 130) & (arr[..., 0] < 60) & (arr[..., 2] < 110))
    assert bars.sum() > 300, "no score bar visible"
    if os.environ.get("ASIF_KEEP_SCREENSHOT"):
        shutil.copy(png, os.environ["ASIF_KEEP_SCREENSHOT"])


@pytest.mark.browser
@pytest.mark.slow
def test_unknown_report_renders_in_chromium(chromium: str, tmp_path: Path) -> None:
    s, q = _unknown_store()
    with s:
        out = tmp_path / "unknown.html"
        explain_report(s, out, vector=q, labels="L")
    run = run_chromium(chromium, out, tmp_path, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    dom = parse(run.stdout)
    assert "unknown" in dom.ids and "label-row" not in dom.classes and dom.scripts == 0
    png = tmp_path / "unknown.png"
    shot = run_chromium(chromium, out, tmp_path, f"--screenshot={png}", "--window-size=1200,800")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    arr = np.asarray(Image.open(png).convert("RGB"), np.float64)
    assert arr.std() > 5
    # the dashed orange "no shared anchor" box has a light orange background
    orange = (arr[..., 0] > 240) & (arr[..., 1] > 235) & (arr[..., 1] < 250) & (arr[..., 2] > 225) & (arr[..., 2] < 240)
    assert orange.sum() > 2000, "the unknown message box was not rendered"
