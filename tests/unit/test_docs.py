"""The generated parts of the docs are what docs/gen.py produces now: a stale table, a setting without a description,
a module missing from the layout page or a docs page the README does not link fails here."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from asif_qdrant.settings import AsifSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _load_gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asif_docs_gen", DOCS / "gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_gen()


def test_generated_regions_are_current() -> None:
    assert gen.stale() == [], "generated docs are stale: run `make docs` (python docs/gen.py) and commit the result"


def test_every_generator_fills_a_region_and_every_region_is_known() -> None:
    used = {name for page in gen.PAGES for name in gen.regions(page.read_text())}
    assert used == set(gen.GENERATORS), "each generator fills a region of README.md or docs/, each region has one"


def test_every_setting_has_a_description_and_a_row() -> None:
    page = (DOCS / "settings.md").read_text()
    for name, field in AsifSettings.model_fields.items():
        assert field.description, f"AsifSettings.{name} has no description"
        row = next(ln for ln in page.splitlines() if ln.startswith(f"| `ASIF_{name.upper()}` |"))
        assert field.description.split(";")[0].replace("|", "\\|") in row


def test_a_setting_without_description_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    field = AsifSettings.model_fields["k"]
    monkeypatch.setattr(field, "description", None)
    with pytest.raises(SystemExit, match="AsifSettings.k has no description"):
        gen.settings_table()


def test_a_hand_edited_table_is_stale_and_render_restores_it() -> None:
    text = (DOCS / "results.md").read_text()
    region = re.search(r"<!-- generated: tune -->\n(.*?)<!-- end generated -->", text, re.S)
    assert region is not None and "| 49.8 |" not in region.group(1) and "**49.8**" in region.group(1)
    edited = text.replace("**49.8**", "**51.0**")
    assert gen.render(edited) == text
    # hand-written text around a region is kept as it is, the region body is replaced whole
    assert gen.render("intro\n<!-- generated: tune -->\nold\n<!-- end generated -->\noutro") == (
        f"intro\n<!-- generated: tune -->\n{gen.tune()}\n<!-- end generated -->\noutro"
    )


def test_unknown_region_names_the_known_ones() -> None:
    with pytest.raises(SystemExit, match="unknown generated region 'nope'.*settings"):
        gen.render("<!-- generated: nope -->\n<!-- end generated -->")


def test_tables_take_their_numbers_from_the_results_json(monkeypatch: pytest.MonkeyPatch) -> None:
    real = gen.result

    def fake(name: str) -> dict[str, Any]:
        d = dict(real(name))
        if name == "eval_accuracy":
            d["rows"] = [{**r, "all_top1": 0.5123, "all_top5": 0.9} if r["setting"] == "new default" else r
                         for r in d["rows"]]
        return d

    assert "**top-1 50.4 %, top-5 91.0 %**" in gen.cifar_headline()  # eval_accuracy.json as committed
    assert "k = 800, p = 8: 45.8 %" in gen.cifar_headline()
    monkeypatch.setattr(gen, "result", fake)
    assert "**top-1 51.2 %, top-5 90.0 %**" in gen.cifar_headline()


def test_layout_page_lists_every_module() -> None:
    page = (DOCS / "layout.md").read_text()
    for f in sorted((ROOT / "asif_qdrant").rglob("*.py")):
        rel = f.relative_to(ROOT)
        name = f"{rel.parent}/" if f.name == "__init__.py" else str(rel)
        assert f"- `{name}`: " in page, f"{name} is missing from docs/layout.md: run `make docs`"


def test_readme_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve() -> None:
    for page in gen.PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: link to {target!r}, which does not exist"
            if anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(), flags=re.M)
                assert anchor in {_slug(h) for h in headings}, f"{page.name}: no heading for #{anchor} in {dest.name}"
