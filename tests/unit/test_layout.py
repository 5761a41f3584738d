"""The package's import graph, read with ast: imports point one way (no cycle, function-level imports included),
no module imports another module's underscore name, and the runtime core never imports the evaluation tools."""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from pathlib import Path

import asif_qdrant

PACKAGE = Path(asif_qdrant.__file__).parent
CORE_EXEMPT = ("asif_qdrant.evaluation", "asif_qdrant.cli", "asif_qdrant.serve")  # tools, and the entry points above


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Every run-time import of one module (module level and inside functions; ``if TYPE_CHECKING:`` is skipped)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: list[tuple[str, str | None, int]] = []  # (imported module, imported name or None, line)

    def _base(self, level: int, module: str | None) -> str:
        parts = self.module.split(".")
        if level:
            parts = parts if self.is_package else parts[:-1]
            parts = parts[: len(parts) - (level - 1)]
        else:
            parts = []
        return ".".join(parts + ([module] if module else []))

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, None, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._base(node.level, node.module)
        for alias in node.names:
            self.found.append((base, alias.name, node.lineno))


@functools.cache
def _tree(path: Path) -> ast.Module:
    """Each module parsed once for all the checks of this file."""
    return ast.parse(path.read_text(), str(path))


@functools.cache
def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges between the package's modules; a submodule import also depends on its parent packages (Python runs
    their ``__init__`` first). Returns the edges and the underscore-name imports found."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for mod, path in modules.items():
        visitor = _Imports(mod, path.name == "__init__.py")
        visitor.visit(_tree(path))
        for target, name, line in visitor.found:
            if not target.startswith("asif_qdrant"):
                continue
            full = f"{target}.{name}" if name and f"{target}.{name}" in modules else target
            if full not in modules:
                private.append(f"{mod}:{line} imports {full}, which is not a module of the package")
                continue
            if name and full == target and name.startswith("_") and not name.startswith("__"):
                private.append(f"{mod}:{line} imports {target}.{name}")
            if full.rsplit(".", 1)[-1].startswith("_") and not full.endswith("__init__"):
                private.append(f"{mod}:{line} imports the private module {full}")
            parts = full.split(".")
            for i in range(2, len(parts) + 1):  # asif_qdrant itself is the root everybody may sit under
                dep = ".".join(parts[:i])
                if dep != mod and not mod.startswith(dep + "."):
                    edges[mod].add(dep)
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_the_package() -> None:
    edges, _ = _graph()
    assert {"asif_qdrant.asif", "asif_qdrant.relrep", "asif_qdrant.evaluation.evaluate"} <= set(edges)
    assert "asif_qdrant.relindex" in edges["asif_qdrant.asif"]  # a module-level import (of a package)
    assert "asif_qdrant.relindex.records" in edges["asif_qdrant.relindex.build"]  # a relative import in a package
    assert "asif_qdrant.evaluation.sweeps" in edges["asif_qdrant.evaluation.prune"]  # a function-level import


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_no_module_imports_another_modules_underscore_name() -> None:
    _, private = _graph()
    assert private == []


def test_the_core_never_imports_the_evaluation_tools() -> None:
    edges, _ = _graph()
    bad = [
        f"{mod} -> {dep}"
        for mod, deps in edges.items()
        if not mod.startswith(CORE_EXEMPT)
        for dep in deps
        if dep.startswith("asif_qdrant.evaluation")
    ]
    assert bad == []


def _foreign_private_attributes(path: Path, label: str) -> list[str]:
    """``x._name`` where ``x`` is neither ``self``/``cls`` nor a class of the same module: a back door."""
    tree = _tree(path)
    own = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)} | {"self", "cls"}
    return [
        f"{label}:{n.lineno} {ast.unparse(n)}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")
        and not (isinstance(n.value, ast.Name) and n.value.id in own)
    ]


def test_no_module_reaches_into_another_objects_underscore_members() -> None:
    bad = [hit for p in sorted(PACKAGE.rglob("*.py")) for hit in _foreign_private_attributes(p, _module_name(p))]
    assert bad == []


def test_the_checker_sees_a_back_door(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("class A:\n    _x = 1\n\ndef f(asif, a):\n    return asif._index(a), A._x, a.public\n")
    assert _foreign_private_attributes(f, "m") == ["m:5 asif._index"]


def test_index_records_are_written_by_their_owners_only() -> None:
    """Tools change label sets through the facade (``annotate_index``), never by writing meta records themselves."""
    writers = set()
    for p in PACKAGE.rglob("*.py"):
        for n in ast.walk(_tree(p)):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "put"
                    and isinstance(n.func.value, ast.Attribute) and n.func.value.attr == "meta"):
                writers.add(_module_name(p))
    # prototypes.py owns its own records ("prototypes:{tenant}": the revision its class means were made at)
    assert writers <= RELINDEX_WRITERS | {"asif_qdrant.anchors", "asif_qdrant.migrate", "asif_qdrant.prototypes"}
    assert "asif_qdrant.relindex.build" in writers and "asif_qdrant.relindex.freshness" in writers


# -- the relindex package: one class (RelIndexes) made of parts, each module built on the one before ---------------
RELINDEX_PARTS = ("records", "query", "build", "freshness", "copies")  # bottom to top
RELINDEX_WRITERS = {f"asif_qdrant.relindex.{m}" for m in ("records", "build", "freshness", "copies")}  # query: reads


def test_relindex_parts_import_one_way() -> None:
    """records <- query <- build <- freshness <- copies <- the package (which composes RelIndexes): a part imports
    only the parts below it, and no module outside the package imports a part (they import ``asif_qdrant.relindex``)."""
    edges, _ = _graph()
    parts = [f"asif_qdrant.relindex.{m}" for m in RELINDEX_PARTS]
    for i, mod in enumerate(parts):
        assert mod in edges, f"{mod} is missing: update RELINDEX_PARTS"
        above = set(parts[i + 1 :]) | {"asif_qdrant.relindex"}
        assert edges[mod] & above == set(), f"{mod} imports a part above it: {sorted(edges[mod] & above)}"
    outside = {m: sorted(d & set(parts)) for m, d in edges.items() if not m.startswith("asif_qdrant.relindex")}
    assert {m: d for m, d in outside.items() if d} == {}


# RelIndexes' parts are one object: a part may use an underscore member (a method, or the state that records.py's
# __init__ declares) defined in another part only when it is listed here, with the part that defines it.
RELINDEX_SHARED_PRIVATE: dict[str, set[str]] = {
    "records": set(),
    "query": set(),
    "build": {"_thr"},  # records: the per-index threshold cache a build fills
    "freshness": {"_thr", "_cache_lock", "_count_checked", "_write_items"},  # records' state; build's writer
    "copies": {"_thr", "_thresholds", "_candidates", "_merge_items"},  # a copy merges own anchors as an edit does
}


def _self_private(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(underscore members a module defines: methods and ``self._x = ...``; those it uses on ``self``)."""
    defined: set[str] = set()
    used: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.FunctionDef):
            defined.add(n.name)
        elif (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
              and n.attr.startswith("_") and not n.attr.startswith("__")):
            used.add(n.attr)
            if isinstance(n.ctx, ast.Store):
                defined.add(n.attr)
    return defined, used


def test_relindex_parts_share_only_the_listed_private_members() -> None:
    found = {}
    for m in RELINDEX_PARTS:
        defined, used = _self_private(_tree(PACKAGE / "relindex" / f"{m}.py"))
        found[m] = used - defined
    assert found == RELINDEX_SHARED_PRIVATE


def test_step_one_lives_in_topk() -> None:
    """The dense anchor top-k (step 1 of every query) is defined in topk.py only; search_options.py keeps the
    opt-in settings objects, and the relindex package reaches step 1 through topk."""
    defined = {
        _module_name(p): {n.name for n in _tree(p).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        for p in PACKAGE.rglob("*.py")
    }
    step1 = {"TopK", "dense_topk", "anchor_topk", "tenant_scope", "topk_overlap"}
    assert step1 <= defined["asif_qdrant.topk"]
    assert {m: sorted(d & step1) for m, d in defined.items() if d & step1 and m != "asif_qdrant.topk"} == {}
    assert defined["asif_qdrant.search_options"] == {"SearchConfig", "builds_index"}
    edges, _ = _graph()
    assert "asif_qdrant.topk" in edges["asif_qdrant.relindex.query"]


# -- who may write what -------------------------------------------------------------------------------------------
# A write is a call of one of these methods on an object of that kind. The object's kind is read from the code: an
# attribute of that name (``self.engine``, ``asif.meta``), a local name bound to one (``ri = asif.relindexes``,
# ``engine, meta = asif.engine, asif.meta``), or a parameter annotated with the class (``engine: Engine``).
WRITES: dict[str, frozenset[str]] = {
    "engine": frozenset({"upsert", "delete", "set_payload", "set_payloads", "delete_payload", "create_collection",
                         "delete_collection", "ensure_keyword_index"}),
    "meta": frozenset({"put", "delete", "set_fingerprint", "bump_revision", "set_image_roots",
                       "delete_image_roots"}),
    "relindexes": frozenset({"define", "build", "apply_added", "apply_deleted", "rebuild", "materialise", "annotate",
                             "delete", "delete_tenant", "ensure_collections", "allocate_slot"}),
    "anchors": frozenset({"add", "delete", "delete_with_vectors", "copy_from", "record_image_roots", "restore",
                          "delete_tenant"}),
}
KIND_OF_CLASS = {"Engine": "engine", "Meta": "meta", "RelIndexes": "relindexes", "AnchorStore": "anchors"}
# The owners: the points of the anchors and relindex collections, the meta records and the revisions are written by
# the module that owns the concept (the engines carry the writes out). The facade validates, locks and delegates:
# edits of the anchors (and what follows them) to edits.py, the operations on one relative index to its handle
# (handles.py); it writes nothing itself but the anchor copies and image-root records it hands to the anchor store.
# prototypes.py owns the prototypes collection and its "prototypes:{tenant}" records (issue 24).
# The relindex package writes through its parts (records, build, freshness, copies; RELINDEX_WRITERS); its query
# part only reads.
OWNERS: dict[str, set[str]] = {
    # tagging.py owns the tags it writes into the users' collections, and its taggings (relative indexes)
    "engine": {"asif_qdrant.anchors", "asif_qdrant.meta", "asif_qdrant.migrate", "asif_qdrant.prototypes",
               "asif_qdrant.tagging"} | RELINDEX_WRITERS,
    "meta": {"asif_qdrant.anchors", "asif_qdrant.meta", "asif_qdrant.migrate", "asif_qdrant.prototypes"}
    | RELINDEX_WRITERS,
    "relindexes": {"asif_qdrant.handles", "asif_qdrant.edits", "asif_qdrant.tagging"} | RELINDEX_WRITERS,
    "anchors": {"asif_qdrant.anchors", "asif_qdrant.edits", "asif_qdrant.asif"},
}
# Known exceptions, each to be moved to its owner: none left (issue 21 moved replace's rollback and delete_tenant's
# records into anchors.py / edits.py, and doctor's repairs onto the handles).
ALLOWED_EXCEPTIONS: dict[str, set[str]] = {k: set() for k in WRITES}
# The handles and the anchor edits run under the facade's lock: only the facade uses them (and doctor.py, whose
# repairs the facade runs under its exclusive lock with its handles).
LOCKED_OWNERS = ("asif_qdrant.handles", "asif_qdrant.edits")
LOCKED_USERS = {"asif_qdrant.asif", "asif_qdrant.doctor"}


def _owner_kind(node: ast.expr, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Attribute) and node.attr in WRITES:
        return node.attr
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    return None


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound to an engine, meta, relindexes or anchors object anywhere in the module."""
    out: dict[str, str] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign):
            pairs: list[tuple[ast.expr, ast.expr]] = []
            for target in n.targets:
                if isinstance(target, ast.Tuple) and isinstance(n.value, ast.Tuple):
                    pairs += list(zip(target.elts, n.value.elts, strict=False))
                else:
                    pairs.append((target, n.value))
            for t, v in pairs:
                if isinstance(t, ast.Name) and isinstance(v, ast.Attribute) and v.attr in WRITES:
                    out[t.id] = v.attr
        elif isinstance(n, ast.arg) and n.annotation is not None:
            ann = ast.unparse(n.annotation).strip("'\"").split(".")[-1]
            if ann in KIND_OF_CLASS:
                out[n.arg] = KIND_OF_CLASS[ann]
    return out


def _writers(paths: list[Path], name_of: Callable[[Path], str] = _module_name) -> dict[str, dict[str, list[str]]]:
    """kind -> module -> the write calls it makes (``line: code``)."""
    found: dict[str, dict[str, list[str]]] = {k: {} for k in WRITES}
    for p in paths:
        tree = _tree(p)
        aliases = _aliases(tree)
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                kind = _owner_kind(n.func.value, aliases)
                if kind is not None and n.func.attr in WRITES[kind]:
                    found[kind].setdefault(name_of(p), []).append(f"{n.lineno}: {ast.unparse(n.func)}")
    return found


def test_points_meta_records_and_revisions_are_written_by_their_owners_only() -> None:
    """Who may write: the points of the anchors and relindex collections (engine writes), the meta records and
    revisions, the relative indexes and the anchors. Tools (evaluation/, ingest, teaching, explain, doctor, the CLI
    and the server) go through the facade's public methods."""
    found = _writers(sorted(PACKAGE.rglob("*.py")))
    for kind, by_module in found.items():
        allowed = OWNERS[kind] | ALLOWED_EXCEPTIONS[kind]
        bad = {m: calls for m, calls in by_module.items()
               if m not in allowed and not (kind == "engine" and m.startswith("asif_qdrant.engines"))}
        assert bad == {}, f"{kind} written outside its owners: {bad}"
    assert "asif_qdrant.relindex.build" in found["engine"] and "asif_qdrant.anchors" in found["meta"]  # it sees them
    assert {"asif_qdrant.handles", "asif_qdrant.edits"} <= set(found["relindexes"])
    stale = {k: sorted(m for m in ms if m not in found[k]) for k, ms in ALLOWED_EXCEPTIONS.items()}
    assert stale == {k: [] for k in WRITES}, f"an exception is no longer needed: remove it from the list {stale}"


def test_the_writer_check_sees_a_tool_writing_around_the_owners(tmp_path: Path) -> None:
    f = tmp_path / "tool.py"
    f.write_text(
        "def prune(asif, engine: 'Engine', target):\n"
        "    engine.upsert('c', batch)\n"
        "    target.meta.bump_revision('t')\n"
        "    ri = asif.relindexes\n"
        "    ri.rebuild(info)\n"
        "    e, m = asif.engine, asif.meta\n"
        "    m.put('k', {})\n"
        "    asif.relindexes.require('x', 't', 'labels')\n"  # a read: fine
        "    asif.classify(vectors=v, labels='L')\n"
    )
    found = _writers([f], name_of=lambda p: "tool")
    assert found == {"engine": {"tool": ["2: engine.upsert"]},
                     "meta": {"tool": ["3: target.meta.bump_revision", "7: m.put"]},
                     "relindexes": {"tool": ["5: ri.rebuild"]}, "anchors": {}}


def test_the_facade_and_the_tools_write_no_point_record_or_revision_themselves() -> None:
    """The facade delegates every write (issue 21): no engine or meta write in asif.py, doctor.py or a tool; the
    handles and the anchor edits write through the stores (relindexes, anchors), never the engine or meta."""
    found = _writers(sorted(PACKAGE.rglob("*.py")))
    direct = {m for k in ("engine", "meta") for m in found[k]}
    assert direct.isdisjoint({"asif_qdrant.asif", "asif_qdrant.doctor", *LOCKED_OWNERS})
    assert "asif_qdrant.asif" not in found["relindexes"]
    assert not [m for k in WRITES for m in found[k] if m.startswith(CORE_EXEMPT)]


def test_only_the_facade_uses_the_handles_and_the_anchor_edits() -> None:
    edges, _ = _graph()
    users = {mod for mod, deps in edges.items() for dep in deps if dep in LOCKED_OWNERS}
    assert "asif_qdrant.asif" in users
    assert users <= LOCKED_USERS, f"only the facade (under its lock) uses handles/edits: {users - LOCKED_USERS}"


MAX_FUNCTION_LINES = 80


def _long_functions(path: Path, label: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions (methods and nested ones too) longer than ``limit`` lines, decorators and docstring included."""
    return [f"{label}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for n in ast.walk(_tree(path)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.end_lineno is not None and n.end_lineno - n.lineno + 1 > limit]


def test_no_function_is_longer_than_80_lines() -> None:
    bad = [hit for p in sorted(PACKAGE.rglob("*.py")) for hit in _long_functions(p, _module_name(p))]
    assert bad == [], "split these: " + "; ".join(bad)


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def short():\n    return 1\n\n\ndef long():\n" + "    x = 1\n" * 80 + "    return x\n")
    assert _long_functions(f, "m") == ["m:5 long (82 lines)"]


# -- one path from inputs to vectors ------------------------------------------------------------------------------
# Images are decoded and inputs encoded through asif_qdrant.embedding only (decoding with limits, batches, the
# embedding cache, on_error, cancellation, outside the store's lock); the encoders below it load what it hands them.
ENCODING_OWNERS = ("asif_qdrant.embedding", "asif_qdrant.encoders", "asif_qdrant.embcache")


def _encoding_outside_embedding(path: Path, label: str) -> list[str]:
    """An encoder's ``.encode(items)`` (not ``str.encode()`` or ``str.encode("ascii")``), PIL's ``Image.open``, the
    embedding cache or the encoders' ``load_image`` imported: decoding or encoding by hand."""
    hits = []
    for n in ast.walk(_tree(path)):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            f = n.func
            text = (not n.args or (isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str))) and all(
                k.arg in ("encoding", "errors") for k in n.keywords)
            if (f.attr == "encode" and not text) or (
                    f.attr == "open" and isinstance(f.value, ast.Name) and f.value.id == "Image"):
                hits.append(f"{label}:{n.lineno} {ast.unparse(n.func)}")
        elif isinstance(n, ast.ImportFrom):
            names = {a.name for a in n.names}
            if (n.module or "").endswith("embcache") or "EmbeddingCache" in names or "load_image" in names:
                hits.append(f"{label}:{n.lineno} imports {', '.join(sorted(names))} from {n.module}")
    return hits


def test_inputs_become_vectors_through_embedding_only() -> None:
    bad = [hit for p in sorted(PACKAGE.rglob("*.py")) if not _module_name(p).startswith(ENCODING_OWNERS)
           for hit in _encoding_outside_embedding(p, _module_name(p))]
    assert bad == []


def test_the_encoding_check_sees_a_tool_encoding_by_hand(tmp_path: Path) -> None:
    f = tmp_path / "tool.py"
    f.write_text(
        "from ..embcache import EmbeddingCache\n"
        "def vectors(asif, paths):\n"
        "    im = Image.open(paths[0])\n"
        "    key = 'x'.encode() + 'y'.encode('ascii') + 'z'.encode(encoding='utf-8')\n"  # strings: fine
        "    return asif.encoder('image').encode([str(p) for p in paths])\n"
    )
    assert _encoding_outside_embedding(f, "tool") == [
        "tool:1 imports EmbeddingCache from embcache", "tool:3 Image.open", "tool:5 asif.encoder('image').encode"]

CLI_LIGHT = ("asif_qdrant.asif", "asif_qdrant.client", "asif_qdrant.cli.remote", "asif_qdrant.serve",
             "asif_qdrant.evaluation", "asif_qdrant.ingest", "asif_qdrant.encoders", "numpy", "pydantic", "httpx")


def _heavy_module_level_imports(path: Path, module: str) -> list[str]:
    """The module-level imports of ``path`` (``if TYPE_CHECKING:`` skipped) of a module in ``CLI_LIGHT``."""
    visitor = _Imports(module, path.name == "__init__.py")
    for node in _tree(path).body:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.If | ast.Try):
            visitor.visit(node)
    found = [(f"{target}.{name}" if name else target, line) for target, name, line in visitor.found]
    return [f"{module}:{line} imports {full}" for full, line in found
            if any(full == h or full.startswith(h + ".") for h in CLI_LIGHT)]


def test_the_cli_imports_the_facade_the_client_and_its_server_half_only_inside_commands() -> None:
    """`asif --help` and `asif --server URL ...` start fast: no module of asif_qdrant/cli/ imports the facade, the
    HTTP client or the --server half (cli/remote.py) at module level; each command imports what it uses."""
    bad = [hit for p in sorted((PACKAGE / "cli").glob("*.py")) if p.name != "remote.py"
           for hit in _heavy_module_level_imports(p, _module_name(p))]
    assert bad == []


def test_the_cli_check_sees_a_module_level_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\nfrom ..asif import Asif\nif TYPE_CHECKING:\n"
                 "    from ..client import AsifClient\n\ndef f():\n    from .remote import connect\n")
    assert _heavy_module_level_imports(f, "asif_qdrant.cli.m") == ["asif_qdrant.cli.m:2 imports asif_qdrant.asif.Asif"]
