"""Store administration: schema migrations, the doctor, refreshing and optimizing the indexes, stats, the known
encoders and the tenants."""

from __future__ import annotations

import click

from .context import AsifGroup, open_store, remote_client, tenant_option
from .output import emit, json_option


@click.command()
@click.option("--list", "list_only", is_flag=True, help="Show applied and pending steps; change nothing.")
@click.option("--dry-run", is_flag=True, help="Say what each pending step would change; change nothing.")
@json_option
@click.pass_context
def migrate(ctx: click.Context, list_only: bool, dry_run: bool, as_json: bool) -> None:
    """Apply pending schema migrations (or list them, or say what they would change). On a collection attached
    with ASIF_ANCHORS_COLLECTION this is the only command that changes its points.

    \b
    Example:
      asif migrate --list
      asif migrate --dry-run
      asif migrate
    """
    if dry_run:
        plan = open_store(ctx, migrate=False).migration_plan()
        emit(as_json, {"dry_run": True, "steps": [{"step": s, "would": lines} for s, lines in plan]},
             lambda: "\n".join(f"{s}: would " + "; ".join(lines) for s, lines in plan)
             or "nothing to do: every step is applied")
        return
    asif = open_store(ctx, migrate=False, create=not list_only)
    if not list_only:
        applied = asif.migrate()
        if not as_json:
            click.echo(f"applied {len(applied)} step(s){': ' + ', '.join(applied) if applied else ''}")
    states = asif.migration_status()
    rows = [
        {"version": s.version, "name": s.name, "state": "applied" if s.applied_at else "pending",
         "description": s.description}
        for s in states
    ]
    emit(as_json, {"store": asif.engine.description, "steps": rows},
         lambda: f"store: {asif.engine.description}\n" + "\n".join(
             f"{r['version']:04d}_{r['name']:<24} {r['state']:<8} {r['description']}" for r in rows))


@click.command()
@click.option("--repair", is_flag=True, help="Repair what can be rebuilt from what remains.")
@json_option
@click.pass_context
def doctor(ctx: click.Context, repair: bool, as_json: bool) -> None:
    """Report what is wrong with the store and, with --repair, rebuild what can be rebuilt: schema steps and
    relative indexes (from their definitions). Lost anchors are reported, never invented. Exit 1 while anything
    is wrong.

    \b
    Example:
      asif doctor
      asif doctor --repair
    """
    rep = open_store(ctx, migrate=False).doctor(repair=repair)
    emit(as_json, rep.as_dict(), rep.table)
    if not rep.healthy:
        ctx.exit(1)


@click.command()
@click.option("--labels", "name", default=None, help="A label set or gallery; default: all of the tenant's.")
@tenant_option
@json_option
@click.pass_context
def refresh(ctx: click.Context, name: str | None, tenant: str | None, as_json: bool) -> None:
    """Rebuild label sets and galleries from the current anchors (after edits made outside the plugin).

    \b
    Example:
      asif refresh --labels cifar10
    """
    asif = open_store(ctx)
    infos = asif.refresh(name, tenant=tenant)
    emit(as_json, [{"name": i.name, "tenant": i.tenant, "items": i.n_items} for i in infos],
         lambda: "\n".join(f"rebuilt {i.kind} {i.name!r} (tenant {i.tenant}): {i.n_items} items" for i in infos)
         or "nothing to refresh")


@click.command()
@json_option
@click.pass_context
def optimize(ctx: click.Context, as_json: bool) -> None:
    """Build the anchors' HNSW graph and quantized vectors (ASIF_HNSW, ASIF_QUANTIZATION). Qdrant Edge has no
    background optimizer: run this after a bulk ingest. On an embedded store it also rewrites the anchors into one
    segment per core when a bulk load left more (or, in a store from an earlier version, a single one): fewer,
    equal segments, each searched by its own core, make classify faster (needs free disk for one more copy).

    \b
    Example:
      ASIF_QUANTIZATION=int8 asif optimize
    """
    from ..search_options import SearchConfig

    asif = open_store(ctx)
    asked = SearchConfig.from_settings(asif.settings)
    spec = asif.engine.collection_spec(asif.anchors.collection)
    built = asif.optimize()
    stored = "none" if spec.quantization is None else spec.quantization.kind
    graph = spec.hnsw is not None and spec.hnsw.m > 0
    note = ""
    if asif.search_config != asked:
        note = (f"\nthe anchors collection was created with quantization={stored}, hnsw={graph}: search options "
                "take effect in a store created with them, e.g. ASIF_QUANTIZATION=int8 asif prune --labels NAME "
                "--keep N --into-prefix q8_")
    emit(as_json, {"search": asif.search_config.describe(), "optimized": built, "quantization": stored,
                   "hnsw": graph},
         lambda: f"search: {asif.search_config.describe()}; " + ("optimized" if built else "nothing to build")
         + note)


@click.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Anchor counts and revisions per tenant, and the encoder fingerprint.

    \b
    Example:
      asif stats --json
    """
    client = remote_client(ctx)
    if client is not None:  # the HTTP API has no fingerprint endpoint: the server's /docs names its encoders
        store, fp, per_tenant = f"asif serve at {client.url}", None, client.stats()
    else:
        asif = open_store(ctx)
        store, fp, per_tenant = asif.engine.description, asif.fingerprint, asif.stats()
    data = {"store": store, "fingerprint": fp.as_dict() if fp else None, "tenants": per_tenant,
            "anchors": sum(v["anchors"] for v in per_tenant.values())}
    emit(as_json, data, lambda: "\n".join(
        [f"store: {store}"]
        + ([f"encoders: {fp.image_encoder} ({fp.image_dim}-d), {fp.text_encoder} ({fp.text_dim}-d)"] if fp else [])
        + [f"anchors: {sum(v['anchors'] for v in per_tenant.values())} pair(s) in {len(per_tenant)} tenant(s)"]
        + [f"  {t:<20} {v['anchors']:>9} anchors  revision {v['revision']}" for t, v in per_tenant.items()]))


@click.command()
@json_option
def encoders(as_json: bool) -> None:
    """List the known encoders, their dimensions and where their weights come from.

    \b
    Example:
      asif encoders
    """
    from ..encoders import list_encoders

    rows = [
        {"name": i.name, "modality": i.modality, "dim": i.dim, "weights": i.weights, "install": i.install}
        for i in list_encoders()
    ]
    emit(as_json, rows, lambda: "\n".join(
        f"{r['name']:<30} {r['modality']:<6} {r['dim']:>5}-d  {r['weights']}" for r in rows))


@click.group(cls=AsifGroup)
def tenants() -> None:
    """Tenants: each one's model is the shared anchors plus its own."""


@tenants.command("list")
@json_option
@click.pass_context
def tenants_list(ctx: click.Context, as_json: bool) -> None:
    """List tenants.

    \b
    Example:
      asif tenants list
    """
    client = remote_client(ctx)
    names = client.tenants() if client else open_store(ctx).tenants()
    emit(as_json, names, lambda: "\n".join(names) or "no tenants")


@tenants.command("stats")
@json_option
@click.pass_context
def tenants_stats(ctx: click.Context, as_json: bool) -> None:
    """Anchors and revision per tenant.

    \b
    Example:
      asif tenants stats --json
    """
    client = remote_client(ctx)
    data = client.stats() if client else open_store(ctx).stats()
    emit(as_json, data, lambda: "\n".join(
        f"{t:<20} {v['anchors']:>9} anchors  revision {v['revision']}" for t, v in data.items()) or "no tenants")


@tenants.command("delete")
@click.argument("tenant")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def tenants_delete(ctx: click.Context, tenant: str, yes: bool, as_json: bool) -> None:
    """Delete a tenant: its anchors, label sets, galleries and meta.

    \b
    Example:
      asif tenants delete acme --yes
    """
    if not yes and not click.confirm(f"delete tenant {tenant!r} and everything it owns?", default=False):
        raise click.Abort()
    client = remote_client(ctx)
    res = client.delete_tenant(tenant) if client else open_store(ctx).delete_tenant(tenant)
    emit(as_json, res, lambda: f"deleted tenant {tenant!r}: {res['anchors']} anchors, {res['indexes']} indexes")


COMMANDS = [migrate, doctor, refresh, optimize, stats, encoders, tenants]
