"""The migration runner. The numbered steps live in the top-level ``migrations/`` folder.

Each step is a module ``NNNN_name.py`` with ``DESCRIPTION: str`` and ``apply(ctx: MigrationContext)``.
Every step is safe to run twice. A step is recorded in the meta collection after it succeeds.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .engines.base import Engine
from .errors import SchemaError
from .meta import Fingerprint, Meta
from .settings import AsifSettings


def _migrations_dir() -> Path:
    """Where the steps are: inside the installed package (a wheel ships them as asif_qdrant/migrations), else the
    source tree's top-level migrations/ folder (a checkout, an editable install)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "migrations", here.parent / "migrations"):
        if folder.is_dir() and any(_STEP_RE.fullmatch(f.name) for f in folder.iterdir()):
            return folder
    return here.parent / "migrations"


_STEP_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.py$")
MIGRATIONS_DIR = _migrations_dir()


@dataclass
class MigrationContext:
    """What a step may use: the engine, the settings, the meta records and the encoder fingerprint."""

    engine: Engine
    settings: AsifSettings
    meta: Meta
    fingerprint: Fingerprint | None


@dataclass(frozen=True)
class Step:
    version: int
    name: str
    description: str
    apply: Callable[[MigrationContext], None]
    plan: Callable[[MigrationContext], list[str]] | None = None  # what apply would change, changing nothing

    @property
    def key(self) -> str:
        return f"migration:{self.version:04d}"


@dataclass(frozen=True)
class StepState:
    version: int
    name: str
    description: str
    applied_at: float | None


def discover_steps(folder: Path = MIGRATIONS_DIR) -> list[Step]:
    if not folder.is_dir():
        raise SchemaError(
            f"the migrations folder {folder} is missing: reinstall asif-qdrant (pip install asif-qdrant), or run it "
            "from its source tree"
        )
    steps = []
    for f in sorted(folder.iterdir()):
        mt = _STEP_RE.fullmatch(f.name)
        if not mt or not f.is_file():
            continue
        spec = importlib.util.spec_from_file_location(f"asif_migrations.m{mt.group(1)}", f)
        if spec is None or spec.loader is None:
            raise SchemaError(f"cannot load migration {f}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        steps.append(Step(int(mt.group(1)), mt.group(2), str(mod.DESCRIPTION), mod.apply, getattr(mod, "plan", None)))
    versions = [s.version for s in steps]
    if versions != list(range(1, len(steps) + 1)):
        raise SchemaError(f"migration numbers in {folder} must run 1, 2, 3… without gaps; found {versions}")
    return steps


def applied_versions(meta: Meta) -> dict[int, float]:
    return {int(v["version"]): float(v["applied_at"]) for _, v in meta.items("migration")}


def check_schema(meta: Meta, steps: list[Step] | None = None) -> None:
    """Refuse a store whose schema is newer than this code."""
    steps = discover_steps() if steps is None else steps
    applied = applied_versions(meta)
    known = max((s.version for s in steps), default=0)
    newer = sorted(v for v in applied if v > known)
    if newer:
        raise SchemaError(
            f"the store's schema is at version {max(newer)}, newer than this code knows ({known}): "
            "upgrade asif-qdrant (pip install -U asif-qdrant) before opening this store"
        )


def status(ctx: MigrationContext) -> list[StepState]:
    """Applied and pending steps; changes nothing."""
    steps = discover_steps()
    applied = applied_versions(ctx.meta)
    return [StepState(s.version, s.name, s.description, applied.get(s.version)) for s in steps]


def dry_run(ctx: MigrationContext) -> list[tuple[str, list[str]]]:
    """What :func:`migrate` would do, step by step (each pending step with the changes it would make, in the
    collections' own names); changes nothing."""
    applied = applied_versions(ctx.meta)
    out: list[tuple[str, list[str]]] = []
    if not ctx.meta.exists():
        out.append(("meta", [f"create the collection {ctx.meta.collection!r} (migrations, fingerprint, revisions)"]))
    for step in discover_steps():
        if step.version not in applied:
            lines = step.plan(ctx) if step.plan is not None else [step.description]
            out.append((f"{step.version:04d}_{step.name}", lines))
    return out


def migrate(ctx: MigrationContext) -> list[Step]:
    """Apply the pending steps in order; return the ones applied."""
    steps = discover_steps()
    ctx.meta.ensure()
    check_schema(ctx.meta, steps)
    applied = applied_versions(ctx.meta)
    done = []
    for step in steps:
        if step.version in applied:
            continue
        try:
            step.apply(ctx)
        except SchemaError:
            raise
        except Exception as e:
            raise SchemaError(
                f"migration {step.version:04d}_{step.name} failed: {e}. Fix the cause and run `asif migrate` again; "
                "steps are safe to re-run"
            ) from e
        ctx.meta.put(step.key, {"version": step.version, "name": step.name, "applied_at": time.time()})
        done.append(step)
    return done


def reapply(ctx: MigrationContext) -> list[Step]:
    """Apply every step again, applied or not (each is safe to run twice): recreates what a step creates when it
    was lost (``asif doctor --repair``)."""
    steps = discover_steps()
    ctx.meta.ensure()
    check_schema(ctx.meta, steps)
    for step in steps:
        try:
            step.apply(ctx)
        except SchemaError:
            raise
        except Exception as e:
            raise SchemaError(f"migration {step.version:04d}_{step.name} failed when re-applied: {e}") from e
        ctx.meta.put(step.key, {"version": step.version, "name": step.name, "applied_at": time.time()})
    return steps
