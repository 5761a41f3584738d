"""The ``asif`` command: a thin layer over the library. User mistakes become one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from . import __version__
from .errors import AsifError
from .zeroshot import CORRECTIONS

if TYPE_CHECKING:  # the facade and the client are imported by the commands that use them: a fast start-up
    from .asif import Asif
    from .client import AsifClient
    from .relindex import Kind

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class AsifGroup(click.Group):
    """Turns library errors into clean one-line CLI errors (exit code 1, no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AsifError as e:
            raise click.ClickException(str(e)) from None


def quiet_libraries() -> None:
    """Silence the model libraries' own output (transformers' "Loading weights" bar, hub progress bars, their
    warnings): asif prints its own progress. ``asif -v`` keeps them."""
    import logging
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", module=r"(transformers|timm|torch|sentence_transformers|huggingface_hub)")
    for name in ("transformers", "sentence_transformers", "timm", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()


# commands that only read: on a collection attached with ASIF_ANCHORS_COLLECTION they apply no migration (they
# never write into the user's collection or create collections); `asif migrate` is the step that changes it
READ_ONLY = frozenset({"stats", "classify", "search", "explain", "eval", "curve", "labels list", "gallery list",
                       "tenants list", "tenants stats"})


def _open(ctx: click.Context, migrate: bool = True, create: bool = False) -> Asif:
    """The store of the command line. Only commands that write (ingest, add, teach, labels add, ...) pass
    ``create=True``: the others refuse an embedded store path that does not exist. With --server, a command that
    gets here has no HTTP equivalent: refused, before anything is read or loaded."""
    obj = ctx.find_root().obj
    if obj.get("server"):
        from .cli_remote import no_http_equivalent

        raise no_http_equivalent(ctx.command_path.split(" ", 1)[-1])
    if obj.get("asif") is None:
        from .asif import Asif, make_settings

        command = " ".join(ctx.command_path.split()[1:])
        if migrate and command in READ_ONLY and make_settings(**obj["opts"]).anchors_collection is not None:
            migrate = False
        asif = Asif.open(migrate=migrate, create=create, **obj["opts"])
        obj["asif"] = asif
        ctx.find_root().call_on_close(asif.close)
    return obj["asif"]


def _remote(ctx: click.Context) -> AsifClient | None:
    """The client of the running server given by --server (ASIF_SERVER), or None for the embedded store."""
    obj = ctx.find_root().obj
    if not obj.get("server"):
        return None
    if obj.get("client") is None:
        from .cli_remote import connect

        obj["client"] = connect(obj["server"], obj.get("server_key"))
        ctx.find_root().call_on_close(obj["client"].close)
    return cast("AsifClient", obj["client"])


def _emit(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
tenant_option = click.option("--tenant", default=None, help="Tenant (default: the shared anchors).")


@click.group(cls=AsifGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--path", type=click.Path(path_type=Path), default=None, help="Embedded store folder (ASIF_PATH).")
@click.option("--url", default=None, help="Qdrant server URL (ASIF_URL); overrides --path.")
@click.option("--api-key", default=None, help="Qdrant API key (ASIF_API_KEY).")
@click.option("--prefix", default=None, help="Collection name prefix (ASIF_PREFIX).")
@click.option("--server", envvar="ASIF_SERVER", default=None, metavar="URL",
              help="Use a running `asif serve` at URL (ASIF_SERVER) instead of opening the store: no model loads "
                   "here. Commands without an HTTP equivalent refuse it.")
@click.option("--server-key", envvar="ASIF_SERVER_KEY", default=None, metavar="KEY",
              help="API key for --server (ASIF_SERVER_KEY; prefer the variable: a command line is visible to others).")
@click.option("-v", "--verbose", is_flag=True, help="Show the libraries' progress bars and warnings (model loading).")
@click.version_option(version=__version__, prog_name="asif")
@click.pass_context
def main(ctx: click.Context, path: Path | None, url: str | None, api_key: str | None, prefix: str | None,
         server: str | None, server_key: str | None, verbose: bool) -> None:
    """asif: zero-shot image classification and retrieval from two frozen encoders and image-caption pairs.

    \b
    Example:
      asif ingest ../shared/data/flickr8k
      asif labels add cifar10 --classes airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck
      asif classify photo.jpg --labels cifar10
    """
    if not verbose:
        quiet_libraries()
    ctx.ensure_object(dict)
    ctx.obj["opts"] = {"path": path, "url": url, "api_key": api_key, "prefix": prefix}
    ctx.obj["asif"] = None
    ctx.obj["server"], ctx.obj["server_key"], ctx.obj["client"] = server, server_key, None


# -- schema ------------------------------------------------------------------------------------
@main.command()
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
        plan = _open(ctx, migrate=False).migration_plan()
        _emit(as_json, {"dry_run": True, "steps": [{"step": s, "would": lines} for s, lines in plan]},
              lambda: "\n".join(f"{s}: would " + "; ".join(lines) for s, lines in plan)
              or "nothing to do: every step is applied")
        return
    asif = _open(ctx, migrate=False, create=not list_only)
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
    _emit(as_json, {"store": asif.engine.description, "steps": rows},
          lambda: f"store: {asif.engine.description}\n" + "\n".join(
              f"{r['version']:04d}_{r['name']:<24} {r['state']:<8} {r['description']}" for r in rows))


@main.command()
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
    rep = _open(ctx, migrate=False).doctor(repair=repair)
    _emit(as_json, rep.as_dict(), rep.table)
    if not rep.healthy:
        ctx.exit(1)


# -- anchors -----------------------------------------------------------------------------------
@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--captions", "captions_file", type=click.Path(path_type=Path), default=None,
              help="Captions file (TSV/CSV/JSONL) when SOURCE is a folder with several.")
@tenant_option
@click.option("--image-encoder", default=None, help="Image encoder (must match the store's).")
@click.option("--text-encoder", default=None, help="Text encoder (must match the store's).")
@click.option("--on-error", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
              help="What to do with bad rows (missing/corrupt images, empty captions).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Images per batch.")
@click.option("--limit", type=int, default=None, help="Ingest only the first N caption rows.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--no-cache", is_flag=True, help="Do not use the embedding cache.")
@json_option
@click.pass_context
def ingest(ctx: click.Context, source: Path, captions_file: Path | None, tenant: str | None,
           image_encoder: str | None, text_encoder: str | None, on_error: str, batch_size: int,
           limit: int | None, no_progress: bool, no_cache: bool, as_json: bool) -> None:
    """Add image-caption anchor pairs: a folder of images with a captions file (TSV/CSV/JSONL with columns
    image, caption and optional tenant and payload columns), a captions file whose image column holds paths,
    or your own vectors (.npz with image_vectors, text_vectors, captions).

    Idempotent: running it again adds nothing; an interrupted run resumes.

    \b
    Example:
      asif ingest ../shared/data/flickr8k --tenant acme
      asif ingest pairs.npz
    """
    from . import ingest as _ingest

    obj = ctx.find_root().obj
    if image_encoder or text_encoder:
        obj["opts"].update({"image_encoder": image_encoder, "text_encoder": text_encoder})
    asif = _open(ctx, create=True)
    if source.suffix.lower() in (".npz", ".parquet"):
        report = _ingest.ingest_vectors(asif, source, tenant=tenant)
    else:
        report = _ingest.ingest(asif, source, tenant=tenant, on_error=cast(Any, on_error), batch_size=batch_size,
                                limit=limit,
                                progress=not (as_json or no_progress), captions_file=captions_file,
                                cache=not no_cache)
    _emit(as_json, report.as_dict(), report.summary)


@main.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@tenant_option
@json_option
@click.pass_context
def delete(ctx: click.Context, ids: tuple[int, ...], tenant: str | None, as_json: bool) -> None:
    """Delete anchors by id (only the tenant's own).

    \b
    Example:
      asif delete 123456 987654 --tenant acme
    """
    client = _remote(ctx)
    res = client.delete_anchors(list(ids), tenant=tenant) if client else _open(ctx).delete(list(ids), tenant=tenant)
    missing = [i for i in dict.fromkeys(ids) if i not in set(res.deleted)]
    who = f"tenant {tenant!r}" if tenant else "the shared anchors"
    _emit(as_json, {"deleted": res.deleted, "not_found": missing, "items_touched": res.items_touched},
          lambda: f"deleted {len(res.deleted)} anchor(s); " + _touched(res.items_touched)
          + (f"\nnot found among {who}: {', '.join(map(str, missing))} (see the ids in `asif explain` or --json "
             "output)" if missing else ""))


def _touched(touched: dict[str, int]) -> str:
    if not touched:
        return "no label set or gallery to update"
    return "relative-index items updated: " + ", ".join(f"{k} {v}" for k, v in touched.items())


@main.command()
@click.argument("pairs", nargs=-1, required=True)
@tenant_option
@json_option
@click.pass_context
def add(ctx: click.Context, pairs: tuple[str, ...], tenant: str | None, as_json: bool) -> None:
    """Add anchor pairs given as IMAGE CAPTION [IMAGE CAPTION ...]; the model changes at once.

    \b
    Example:
      asif add cat1.jpg "a cat sleeping on a sofa" cat2.jpg "a kitten" --tenant acme
    """
    if len(pairs) % 2:
        raise click.UsageError("give pairs: IMAGE CAPTION [IMAGE CAPTION ...] (an odd number of arguments was given)")
    client = _remote(ctx)
    if client is not None:  # the server encodes the uploaded images and the captions
        res = client.add_images([Path(p) for p in pairs[0::2]], list(pairs[1::2]), tenant=tenant)
    else:
        from .ingest import add_pairs

        res = add_pairs(_open(ctx, create=True), list(pairs[0::2]), list(pairs[1::2]), tenant=tenant)
    _emit(as_json, {"ids": res.ids, "added": res.added, "duplicates": res.duplicates,
                    "items_touched": res.items_touched},
          lambda: f"added {res.added} anchor(s) ({res.duplicates} already stored): ids {res.ids}; "
          + _touched(res.items_touched))


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--tenant", required=True, help="The tenant that learns the examples (its own anchor pairs).")
@click.option("--template", default="a photo of a {}.", show_default=True,
              help="The caption of each example; {} is the class (its folder name).")
@click.option("--per-class", type=click.IntRange(min=1), default=None, help="Teach only the first N images per class.")
@json_option
@click.pass_context
def teach(ctx: click.Context, folder: Path, tenant: str, template: str, per_class: int | None, as_json: bool) -> None:
    """Teach by example: each image of FOLDER/<class>/ becomes an anchor pair of the tenant, paired with the
    template filled with its class. The model changes at once, without training; a few examples per class
    lift zero-shot accuracy a lot (see the README). Teach every class of the label set.

    \b
    Example:
      asif teach examples/ --tenant acme
      asif teach examples/ --tenant acme --template "a photo of a {}, a type of pet." --per-class 5
    """
    asif = _open(ctx, create=True)
    rep = asif.teach(folder, tenant=tenant, template=template, per_class=per_class)
    _emit(as_json, rep.as_dict(), rep.summary)


@main.command()
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
    asif = _open(ctx)
    infos = asif.refresh(name, tenant=tenant)
    _emit(as_json, [{"name": i.name, "tenant": i.tenant, "items": i.n_items} for i in infos],
          lambda: "\n".join(f"rebuilt {i.kind} {i.name!r} (tenant {i.tenant}): {i.n_items} items" for i in infos)
          or "nothing to refresh")


@main.command()
@click.option("--labels", "labels_name", required=True, help="The label set to specialise the anchors for.")
@click.option("--keep", type=click.IntRange(min=1), required=True, help="How many anchors to keep.")
@click.option("--into", "into_tenant", default=None, help="Copy the kept anchors into this new tenant.")
@click.option("--into-prefix", default=None, help="Copy them into a new store under this collection prefix.")
@click.option("--criterion", type=click.Choice(["label_weight", "image_contribution"]), default="label_weight",
              show_default=True, help="How anchors are ranked (image_contribution needs --sample).")
@click.option("--sample", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder of unlabelled images (for --criterion image_contribution).")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Images sampled from --sample.")
@tenant_option
@json_option
@click.pass_context
def prune(ctx: click.Context, labels_name: str, keep: int, into_tenant: str | None, into_prefix: str | None,
          criterion: str, sample: Path | None, limit: int, tenant: str | None, as_json: bool) -> None:
    """Keep the anchors that matter most for a label set, as a new anchor set (the original is not touched).

    \b
    Example:
      asif prune --labels cifar10 --keep 2000 --into-prefix cifar_
      asif --prefix cifar_ classify photo.jpg --labels cifar10
    """
    from .evaluation.prune import prune as prune_anchors
    from .evaluation.prune import sample_image_vectors

    if (into_tenant is None) == (into_prefix is None):
        raise click.UsageError("give exactly one of --into TENANT and --into-prefix PREFIX")
    if criterion == "image_contribution" and sample is None:
        raise click.UsageError("--criterion image_contribution needs --sample DIR (a folder of images)")
    asif = _open(ctx)
    vecs = sample_image_vectors(asif, sample, limit) if sample is not None else None
    rep = prune_anchors(asif, labels_name, keep, into_tenant=into_tenant, into_prefix=into_prefix,
                        criterion=criterion, sample_vectors=vecs, tenant=tenant)
    data = {k: v for k, v in rep.as_dict().items() if k not in ("ids", "target_ids", "scores")}
    _emit(as_json, {**data, "ids": rep.target_ids}, rep.summary)


@main.command()
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
    from .search_options import SearchConfig

    asif = _open(ctx)
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
    _emit(as_json, {"search": asif.search_config.describe(), "optimized": built, "quantization": stored,
                    "hnsw": graph},
          lambda: f"search: {asif.search_config.describe()}; " + ("optimized" if built else "nothing to build")
          + note)


@main.group(cls=AsifGroup)
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
    client = _remote(ctx)
    names = client.tenants() if client else _open(ctx).tenants()
    _emit(as_json, names, lambda: "\n".join(names) or "no tenants")


@tenants.command("stats")
@json_option
@click.pass_context
def tenants_stats(ctx: click.Context, as_json: bool) -> None:
    """Anchors and revision per tenant.

    \b
    Example:
      asif tenants stats --json
    """
    client = _remote(ctx)
    data = client.stats() if client else _open(ctx).stats()
    _emit(as_json, data, lambda: "\n".join(
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
    client = _remote(ctx)
    res = client.delete_tenant(tenant) if client else _open(ctx).delete_tenant(tenant)
    _emit(as_json, res, lambda: f"deleted tenant {tenant!r}: {res['anchors']} anchors, {res['indexes']} indexes")


@main.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Anchor counts and revisions per tenant, and the encoder fingerprint.

    \b
    Example:
      asif stats --json
    """
    client = _remote(ctx)
    if client is not None:  # the HTTP API has no fingerprint endpoint: the server's /docs names its encoders
        store, fp, per_tenant = f"asif serve at {client.url}", None, client.stats()
    else:
        asif = _open(ctx)
        store, fp, per_tenant = asif.engine.description, asif.fingerprint, asif.stats()
    data = {"store": store, "fingerprint": fp.as_dict() if fp else None, "tenants": per_tenant,
            "anchors": sum(v["anchors"] for v in per_tenant.values())}
    _emit(as_json, data, lambda: "\n".join(
        [f"store: {store}"]
        + ([f"encoders: {fp.image_encoder} ({fp.image_dim}-d), {fp.text_encoder} ({fp.text_dim}-d)"] if fp else [])
        + [f"anchors: {sum(v['anchors'] for v in per_tenant.values())} pair(s) in {len(per_tenant)} tenant(s)"]
        + [f"  {t:<20} {v['anchors']:>9} anchors  revision {v['revision']}" for t, v in per_tenant.items()]))


@main.command()
@json_option
def encoders(as_json: bool) -> None:
    """List the known encoders, their dimensions and where their weights come from.

    \b
    Example:
      asif encoders
    """
    from .encoders import list_encoders

    rows = [
        {"name": i.name, "modality": i.modality, "dim": i.dim, "weights": i.weights, "install": i.install}
        for i in list_encoders()
    ]
    _emit(as_json, rows, lambda: "\n".join(
        f"{r['name']:<30} {r['modality']:<6} {r['dim']:>5}-d  {r['weights']}" for r in rows))


# -- label sets and galleries -------------------------------------------------------------------
@main.group(cls=AsifGroup)
def labels() -> None:
    """Label sets: prompts (class x template) stored as a relative index."""


@labels.command("add")
@click.argument("name")
@click.option("--classes", required=True, help="A file with one class per line, or a,b,c.")
@click.option("--templates", default="photo", show_default=True, help="photo | plain | FILE (one per line).")
@click.option("--k", type=int, default=None, help="Anchors kept per representation (default ASIF_K=800).")
@click.option("--p", type=float, default=None, help="Exponent (default ASIF_P=3).")
@click.option("--aggregation", type=click.Choice(["max", "mean"]), default="max", show_default=True)
@click.option("--correction", type=click.Choice(list(CORRECTIONS)), default=None,
              help="Score correction by a reference sample of the anchor images (default ASIF_CORRECTION=none: "
                   "the paper's scores; docs/results.md).")
@click.option("--replace", is_flag=True, help="Redefine the label set if the name exists (else refused).")
@tenant_option
@json_option
@click.pass_context
def labels_add(ctx: click.Context, name: str, classes: str, templates: str, k: int | None, p: float | None,
               aggregation: str, correction: str | None, replace: bool, tenant: str | None, as_json: bool) -> None:
    """Define a label set (an existing name is refused without --replace).

    \b
    Example:
      asif labels add cifar10 --classes airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck
      asif labels add pets --classes pets.txt --templates plain --replace
    """
    client = _remote(ctx)
    if client is not None:  # class and template files are read here; the server encodes the prompts
        from .zeroshot import resolve_classes, resolve_templates

        info = client.define_labels(name, resolve_classes(classes), resolve_templates(templates), tenant=tenant,
                                    k=k, p=p, aggregation=cast(Any, aggregation), replace=replace,
                                    correction=cast(Any, correction))
    else:
        info = _open(ctx, create=True).define_labels(name, classes, templates, tenant=tenant, k=k, p=p,
                                                     aggregation=aggregation, replace=replace,
                                                     correction=correction)
    _emit(as_json, info.as_dict(), lambda: f"label set {info.name!r}: {len(info.classes)} classes x "
          f"{len(info.templates)} templates = {info.n_items} prompts (k={info.k}, p={info.p:g}, "
          f"correction={info.correction})")
    _coverage_warnings(info.coverage or [], name)


def _coverage_warnings(classes: list[dict[str, Any]], name: str) -> None:
    """One warning line (stderr) per class of a new label set that the anchors do not support."""
    from .coverage import fix_for

    bad = [c for c in classes if c["verdict"] != "supported"]
    for c in bad[:10]:
        click.echo(f"warning: class {c['class']!r} is {c['verdict']} by the anchors (support {c['support']}): "
                   f"{fix_for(c['class'], c['verdict'])}", err=True)
    if len(bad) > 10:
        click.echo(f"warning: {len(bad) - 10} more classes are weak or unsupported: asif labels check {name}", err=True)


@labels.command("check")
@click.argument("name")
@tenant_option
@json_option
@click.pass_context
def labels_check(ctx: click.Context, name: str, tenant: str | None, as_json: bool) -> None:
    """How well the anchors support each class of a label set: support and verdict per class.

    \b
    Support: anchor pairs whose caption is close to the class's prompts (higher = better supported);
    verdict: supported / weak / unsupported, with the fix for the others.
    Example:
      asif labels check cifar10
      asif labels check pets --tenant acme --json
    """
    client = _remote(ctx)
    cov = client.coverage(name, tenant) if client is not None else _open(ctx).coverage(name, tenant)
    _emit(as_json, cov.as_dict(), cov.table)


@labels.command("list")
@tenant_option
@json_option
@click.pass_context
def labels_list(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """List label sets (galleries: asif gallery list).

    \b
    Example:
      asif labels list --json
    """
    client = _remote(ctx)
    infos = client.list_labels(tenant) if client else _open(ctx).list_labels(tenant)
    _emit(as_json, [i.as_dict() for i in infos], lambda: "\n".join(
        f"{i.name:<20} tenant={i.tenant:<10} classes={len(i.classes):<4} prompts={i.n_items:<6} k={i.k} p={i.p:g}"
        + (f" tau={i.tau:g}" if i.tau is not None else "") for i in infos) or "no label sets")


@labels.command("delete")
@click.argument("name")
@tenant_option
@json_option
@click.pass_context
def labels_delete(ctx: click.Context, name: str, tenant: str | None, as_json: bool) -> None:
    """Delete a label set (anchors are not touched).

    \b
    Example:
      asif labels delete pets
    """
    client = _remote(ctx)
    info = client.delete_labels(name, tenant) if client else _open(ctx).delete_labels(name, tenant)
    _emit(as_json, {"deleted": info.name, "tenant": info.tenant, "kind": info.kind},
          lambda: f"deleted label set {info.name!r} (tenant {info.tenant})")


def _progress_wanted(no_progress: bool, as_json: bool) -> bool:
    return not (no_progress or as_json) and sys.stderr.isatty()


def _image_files(specs: tuple[str, ...], on_error: str) -> list[Path]:
    from .readers import expand_images

    paths, bad = expand_images(specs)
    for spec, why in bad:
        if on_error == "fail":
            raise click.ClickException(f"{spec!r}: {why}; give image files, folders or globs such as 'photos/*.jpg'"
                                       " (or --on-error skip)")
        click.echo(f"warning: skipped {spec!r}: {why}", err=True)
    if not paths:
        raise click.ClickException("no images to read: give image files, folders or globs such as 'photos/*.jpg'")
    return paths


def _report_skipped(skipped: list[tuple[str, str]]) -> None:
    for _, why in skipped[:10]:
        click.echo(f"warning: skipped {why}", err=True)
    if len(skipped) > 10:
        click.echo(f"warning: ... and {len(skipped) - 10} more unreadable image(s)", err=True)


def check_out(out: Path | None) -> None:
    """Refuse an --out file name that is neither .csv nor .jsonl, or whose folder does not exist (before any
    image is read)."""
    if out is None:
        return
    if out.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise click.UsageError(f"--out {str(out)!r}: use a .csv or .jsonl file name")
    if not out.parent.exists():
        raise click.UsageError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")


def _write_table(out: Path, header: list[str], rows: list[dict[str, Any]],
                 csv_row: Callable[[dict[str, Any]], list[str]]) -> None:
    """``rows`` to ``out``: CSV with ``header`` (each row through ``csv_row``), or one JSON object per line."""
    import csv

    check_out(out)
    with open(out, "w", newline="", encoding="utf-8") as f:
        if out.suffix.lower() == ".csv":
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(csv_row(r) for r in rows)
        else:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    """One row per image to ``out``: CSV (path, label, score, top as label:score;...) or JSON lines, by suffix."""

    def csv_row(r: dict[str, Any]) -> list[str]:
        score = "" if r["score"] is None else f"{r['score']:.6f}"
        return [r["path"], r["label"] or "", score, ";".join(f"{t['label']}:{t['score']:.6f}" for t in r["top"])]

    _write_table(out, ["path", "label", "score", "top"], rows, csv_row)


def write_gallery_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    """One row per image given to ``gallery add``: path, item (the gallery item, as in a search hit's payload),
    status (added or skipped) and error (why it was skipped); CSV or JSON lines, by suffix."""
    _write_table(out, ["path", "item", "status", "error"], rows,
                 lambda r: [r["path"], "" if r["item"] is None else str(r["item"]), r["status"], r["error"] or ""])


def _check_scope(asif: Asif, index: str, tenant: str | None, kind: Kind = "labels") -> None:
    """Refuse a label set or gallery that does not exist (a misspelt name: before any model loads) or a model
    with no anchor in the tenant's scope; warn when the index's k exceeds the anchors in it."""
    from .meta import validate_tenant

    asif.index_info(index, validate_tenant(tenant), kind)
    scope = asif.count() + (asif.count(tenant) if tenant not in (None, "_shared") else 0)
    who = f"tenant {tenant!r}" if tenant else "the shared anchors"
    if scope == 0:
        raise click.ClickException(f"the store has no anchor pairs for {who}: every answer would be 'unknown'. "
                                   "Add pairs first (asif ingest FOLDER, asif add, asif teach)")
    info = next((i for i in asif.list_indexes(tenant) if i.name == index), None)
    if info is not None and info.k > scope:
        click.echo(f"warning: k={info.k} of {info.kind} {index!r} exceeds the {scope} anchor pair(s) in scope of "
                   f"{who}: every pair is used (add pairs, or redefine it with a smaller --k)", err=True)


on_error_option = click.option("--on-error", type=click.Choice(["skip", "fail"]), default="fail", show_default=True,
                               help="What to do with a missing or corrupt image: skip it (with a warning) or stop.")
no_progress_option = click.option("--no-progress", is_flag=True,
                                  help="No progress bar (it is off anyway when stderr is not a terminal).")


@main.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--top", type=int, default=5, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write one row per image (path, label, score, top-k) to this .csv or .jsonl file.")
@on_error_option
@no_progress_option
@tenant_option
@json_option
@click.pass_context
def classify(ctx: click.Context, images: tuple[str, ...], labels_name: str, top: int, out: Path | None,
             on_error: str, no_progress: bool, tenant: str | None, as_json: bool) -> None:
    """Zero-shot classify images with a label set. IMAGES: files, folders (searched recursively) and globs.

    \b
    Example:
      asif classify cat.jpg dog.jpg --labels cifar10 --top 3
      asif classify photos/ 'more/*.jpg' --labels cifar10 --on-error skip --out predictions.csv
    """
    check_out(out)
    client = _remote(ctx)
    if client is not None:  # uploads: the server decodes and encodes with its warm encoder
        from .cli_remote import classify_files

        kept, preds, skipped = classify_files(client, _image_files(images, on_error), labels_name, top, tenant,
                                              on_error)
    else:
        from .ingest import encode_image_files

        asif = _open(ctx)
        _check_scope(asif, labels_name, tenant)
        enc = encode_image_files(asif, _image_files(images, on_error), on_error=cast(Any, on_error),
                                 progress=_progress_wanted(no_progress, as_json), desc="classify")
        kept, skipped = enc.paths, enc.skipped
        preds = asif.classify(vectors=enc.vectors, labels=labels_name, top=top, tenant=tenant) if kept else []
    _report_skipped(skipped)
    data = [{"image": str(i), **p.as_dict()} for i, p in zip(kept, preds, strict=True)]
    if out is not None:
        write_rows(out, [{"path": d["image"], "label": d["label"], "score": d["top"][0]["score"] if d["top"] else None,
                          "top": [{"label": t["label"], "score": t["score"]} for t in d["top"]]} for d in data])

    def text() -> str:
        lines = []
        for d in data:
            tops = ", ".join(f"{t['label']} {t['score']:.4f}" for t in d["top"]) or "no shared anchor"
            lines.append(f"{d['image']}: {d['label'] or 'unknown'}   [{tops}]")
        if out is not None:
            lines.append(f"wrote {len(data)} row(s) to {out}")
        return "\n".join(lines)

    if out is not None and not as_json:
        click.echo(f"classified {len(data)} image(s) ({len(skipped)} skipped); wrote {out}")
    else:
        _emit(as_json, data, text)


@main.group(cls=AsifGroup)
def gallery() -> None:
    """Galleries: images stored as a relative index, for text-to-image search."""


@gallery.command("add")
@click.argument("name")
@click.argument("sources", nargs=-1, required=True)
@on_error_option
@no_progress_option
@click.option("--replace", is_flag=True, help="Rebuild the gallery if the name exists (else refused).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write one row per image (path, item, status added/skipped, error) to this .csv or .jsonl file.")
@tenant_option
@json_option
@click.pass_context
def gallery_add(ctx: click.Context, name: str, sources: tuple[str, ...], on_error: str, no_progress: bool,
                replace: bool, out: Path | None, tenant: str | None, as_json: bool) -> None:
    """Build a gallery from images: files, folders (searched recursively), globs, or a .txt file listing paths.
    An existing name is refused without --replace.

    \b
    Example:
      asif gallery add holiday ~/Pictures/holiday
      asif gallery add holiday 'trip/*.jpg' --on-error skip --out holiday.csv
    """
    if ctx.find_root().obj.get("server"):
        from .cli_remote import no_http_equivalent

        raise no_http_equivalent("gallery add", " for image files (the API builds a gallery from vectors: "
                                 "PUT /v1/galleries/NAME, AsifClient.define_gallery)")
    from .ingest import encode_image_files

    check_out(out)

    specs: list[str] = []
    for src in sources:
        p = Path(src)
        if p.is_file() and p.suffix.lower() == ".txt":
            specs += [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        else:
            specs.append(src)
    paths = _image_files(tuple(specs), on_error)
    asif = _open(ctx, create=True)
    if not replace:
        asif.check_name_free(name, tenant, "gallery")  # refuse before encoding anything
    enc = encode_image_files(asif, paths, on_error=cast(Any, on_error),
                             progress=_progress_wanted(no_progress, as_json), desc="gallery")
    _report_skipped(enc.skipped)
    if not enc.paths:
        raise click.ClickException("none of the images could be read: see the warnings above")
    info = asif.add_gallery(name, vectors=enc.vectors, payloads=[{"image_ref": str(p)} for p in enc.paths],
                            tenant=tenant, replace=replace)
    if out is not None:
        item = {str(p): i for i, p in enumerate(enc.paths)}
        why = dict(enc.skipped)
        write_gallery_rows(out, [{"path": str(p), "item": item.get(str(p)),
                                  "status": "added" if str(p) in item else "skipped", "error": why.get(str(p))}
                                 for p in paths])
    _emit(as_json, {**info.as_dict(), "skipped": [s for s, _ in enc.skipped], "out": str(out) if out else None},
          lambda: f"gallery {info.name!r}: {info.n_items} images (k={info.k}, p={info.p:g})"
          + (f"; {len(enc.skipped)} skipped" if enc.skipped else "") + (f"; wrote {out}" if out else ""))


@gallery.command("list")
@tenant_option
@json_option
@click.pass_context
def gallery_list(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """List galleries.

    \b
    Example:
      asif gallery list
    """
    client = _remote(ctx)
    infos = client.list_galleries(tenant) if client else _open(ctx).list_galleries(tenant)
    _emit(as_json, [i.as_dict() for i in infos], lambda: "\n".join(
        f"{i.name:<20} tenant={i.tenant:<10} images={i.n_items:<6} k={i.k} p={i.p:g}" for i in infos)
        or "no galleries")


@gallery.command("delete")
@click.argument("name")
@tenant_option
@json_option
@click.pass_context
def gallery_delete(ctx: click.Context, name: str, tenant: str | None, as_json: bool) -> None:
    """Delete a gallery (anchors are not touched).

    \b
    Example:
      asif gallery delete holiday
    """
    client = _remote(ctx)
    info = client.delete_gallery(name, tenant) if client else _open(ctx).delete_gallery(name, tenant)
    _emit(as_json, {"deleted": info.name, "tenant": info.tenant, "kind": info.kind},
          lambda: f"deleted gallery {info.name!r} (tenant {info.tenant})")


@main.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--gallery", "gallery_name", required=True, help="Gallery name.")
@click.option("--top", type=int, default=10, show_default=True)
@tenant_option
@json_option
@click.pass_context
def search(ctx: click.Context, text: tuple[str, ...], gallery_name: str, top: int, tenant: str | None,
           as_json: bool) -> None:
    """Search a gallery with text: the words are one query (quotes optional).

    \b
    Example:
      asif search a dog on a beach --gallery holiday --top 5
    """
    query = " ".join(text).strip()
    if not query:
        raise click.UsageError("the query is empty: give some words, e.g. asif search a dog on a beach --gallery G")
    client = _remote(ctx)
    if client is not None:
        res = client.search(gallery_name, texts=[query], top=top, tenant=tenant)
    else:
        asif = _open(ctx)
        _check_scope(asif, gallery_name, tenant, "gallery")
        res = asif.search(text=[query], gallery=gallery_name, top=top, tenant=tenant)
    data = [{"query": query, "hits": [h.as_dict() for h in hits]} for hits in res]
    _emit(as_json, data, lambda: "\n".join(
        f"{query!r}:\n" + ("\n".join(f"  {h.score:.4f}  {h.payload.get('image_ref', h.id)}" for h in hits)
                            or "  no result shares an anchor with the query")
        for hits in res))


classes_map_option = click.option(
    "--classes-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="JSON object or two-column CSV/TSV: folder name (or label value) -> class name.")
out_option = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                          help="Also write the results as JSON to this file.")


def _write_out(out: Path | None, data: Any) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, default=str))


@main.command("eval")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--limit", type=int, default=None, help="Evaluate a class-balanced sample of N images.")
@click.option("--sweep", "sweep_specs", multiple=True, metavar="KEY=V1,V2,...",
              help="Sweep k, p, templates or aggregation (repeatable); keys not swept keep the label set's values.")
@click.option("--templates", default=None, help="Template sets to sweep, e.g. photo,plain (= --sweep templates=...).")
@click.option("--aggregation", default=None, help="Aggregations to sweep: max,mean (= --sweep aggregation=...).")
@classes_map_option
@out_option
@tenant_option
@json_option
@click.pass_context
def eval_cmd(ctx: click.Context, source: Path, labels_name: str, limit: int | None, sweep_specs: tuple[str, ...],
             templates: str | None, aggregation: str | None, classes_map: Path | None, out: Path | None,
             tenant: str | None, as_json: bool) -> None:
    """Evaluate a label set on labelled images (a folder per class, or a CSV/TSV/JSONL with columns image and
    label): top-1/top-5, per-class accuracy, confusions. With --sweep, --templates or --aggregation: top-1 of every
    combination, each image encoded once and the anchors queried once at the largest k.

    \b
    Example:
      asif eval ../shared/data/cifar10-test --labels cifar10 --limit 1000
      asif eval ../shared/data/cifar10-test --labels cifar10 --sweep k=200,800,3000 --sweep p=1,4,8 \\
          --templates photo,plain --aggregation max,mean --out sweep.json
    """
    from .evaluation.evaluate import evaluate
    from .evaluation.sweeps import parse_sweep, run_sweep

    specs = list(sweep_specs)
    specs += [f"templates={templates}"] if templates else []
    specs += [f"aggregation={aggregation}"] if aggregation else []
    axes = parse_sweep(specs) if specs else None
    asif = _open(ctx)
    if axes is not None:
        rep: Any = run_sweep(asif, source, labels_name, axes, tenant=tenant, limit=limit, mapping=classes_map,
                             progress=not as_json)
    else:
        rep = evaluate(asif, source, labels_name, tenant=tenant, limit=limit, progress=not as_json,
                       mapping=classes_map)
    _write_out(out, rep.as_dict())
    _emit(as_json, rep.as_dict(), rep.table)


@main.command("curve")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--anchors", "sizes", default="500,1000,2000,5000,10000,all", show_default=True,
              help="Anchor counts: nested random subsets of the anchors; 'all' = every anchor.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Random subsets per count (seeds 0..N-1).")
@click.option("--limit", type=int, default=None, help="Use a class-balanced sample of N images.")
@click.option("--k", type=int, default=None, help="k (default: the label set's).")
@click.option("--p", type=float, default=None, help="p (default: the label set's).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the curve (mean, min-max band, random guess) to this PNG.")
@classes_map_option
@out_option
@tenant_option
@json_option
@click.pass_context
def curve_cmd(ctx: click.Context, source: Path, labels_name: str, sizes: str, seeds: int, limit: int | None,
              k: int | None, p: float | None, plot: Path | None, classes_map: Path | None, out: Path | None,
              tenant: str | None, as_json: bool) -> None:
    """Accuracy against the number of anchor pairs: nested random subsets (one permutation per seed), restricted
    with a filter on the anchor queries (the store is not copied); mean and spread over seeds, and random guess.

    \b
    Example:
      asif curve ../shared/data/cifar10-test --labels cifar10 --anchors 500,1000,2000,5000,10000,all \\
          --seeds 3 --limit 2000 --plot curve.png
    """
    from .evaluation.sweeps import anchor_curve, parse_sizes

    parsed = parse_sizes(sizes)
    asif = _open(ctx)
    rep = anchor_curve(asif, source, labels_name, parsed, seeds, limit=limit, mapping=classes_map, tenant=tenant,
                       k=k, p=p, plot=plot, progress=not as_json)
    _write_out(out, rep.as_dict())
    _emit(as_json, rep.as_dict(), rep.table)


@main.command("tune")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--val-fraction", type=float, default=0.5, show_default=True,
              help="Fraction of each class used to choose the settings; the rest only measures them.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the per-class split.")
@click.option("--sweep", "sweep_specs", multiple=True, metavar="KEY=V1,V2,...",
              help="Replace one axis of the grid (default k=200,400,800,1600,3000 p=1,2,4,8,16 "
                   "templates=photo,plain aggregation=max,mean).")
@click.option("--limit", type=int, default=None, help="Use a class-balanced sample of N images.")
@click.option("--dry-run", is_flag=True, help="Report, but do not store the choice.")
@classes_map_option
@out_option
@tenant_option
@json_option
@click.pass_context
def tune_cmd(ctx: click.Context, source: Path, labels_name: str, val_fraction: float, seed: int,
             sweep_specs: tuple[str, ...], limit: int | None, dry_run: bool, classes_map: Path | None,
             out: Path | None, tenant: str | None, as_json: bool) -> None:
    """Choose k, p, templates and aggregation of a label set on a validation split only, store the choice with the
    label set, and report default vs tuned accuracy on the test split (never seen while tuning).

    \b
    Example:
      asif tune ../shared/data/cifar10-test --labels cifar10 --val-fraction 0.5 --seed 0
      asif tune ../shared/data/cifar10-test --labels cifar10 --sweep k=400,800 --dry-run
    """
    from .evaluation.sweeps import parse_sweep
    from .evaluation.tune import tune

    axes = parse_sweep(sweep_specs)
    asif = _open(ctx)
    rep = tune(asif, source, labels_name, val_fraction=val_fraction, seed=seed, sweeps=axes, mapping=classes_map,
               limit=limit, tenant=tenant, save=not dry_run, progress=not as_json)
    _write_out(out, rep.as_dict())
    _emit(as_json, rep.as_dict(), lambda: rep.table() + ("\ndry run: the choice was not stored" if dry_run else ""))


@main.command("eval-retrieval")
@click.argument("captions_file", type=click.Path(path_type=Path))
@click.option("--holdout", type=int, required=True,
              help="Images held out: their pairs are excluded from the anchors and they (and their captions) are "
                   "the retrieval set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the held-out choice.")
@click.option("--k", type=int, default=None, help="Anchors kept per representation (default ASIF_K=800).")
@click.option("--p", type=float, default=None, help="Exponent (default ASIF_P=3).")
@out_option
@tenant_option
@json_option
@click.pass_context
def eval_retrieval_cmd(ctx: click.Context, captions_file: Path, holdout: int, seed: int, k: int | None,
                       p: float | None, out: Path | None, tenant: str | None, as_json: bool) -> None:
    """Image->caption and caption->image recall@1/5/10 on held-out images of a captions file, against the other
    anchors (the held-out images' anchor pairs, matched on image_ref, are excluded by a filter).

    \b
    Example:
      asif eval-retrieval ../shared/data/flickr8k/captions.tsv --holdout 1000 --seed 0
    """
    from .evaluation.retrieval import recall_table, retrieval_recall

    asif = _open(ctx)
    res = retrieval_recall(asif, captions_file, holdout, seed, k, p, tenant=tenant)
    _write_out(out, res)
    _emit(as_json, res, lambda: recall_table(res))


@main.command("explain")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--labels", "labels_name", default=None, help="Label set name.")
@click.option("--tag", "tag_field", default=None, help="Explain the stored tag of --point in this field instead.")
@click.option("--point", default=None, help="With --tag: the tagged point's id.")
@click.option("--collection", default=None, help="With --tag: the collection (when the field is tagged in several).")
@click.option("--label", default=None, help="Explain this label instead of the predicted one.")
@click.option("--top", type=int, default=10, show_default=True, help="Anchor pairs shown per label.")
@click.option("--n-labels", type=int, default=None,
              help="How many labels of the ranking to explain (default: 1; 3 with --html).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML report (thumbnails embedded) to this file.")
@click.option("--image-root", "image_roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder that relative anchor image paths are relative to (repeatable), e.g. the ingested one.")
@tenant_option
@json_option
@click.pass_context
def explain_cmd(ctx: click.Context, image: Path | None, labels_name: str | None, tag_field: str | None,
                point: str | None, collection: str | None, label: str | None, top: int,
                n_labels: int | None, html_path: Path | None, image_roots: tuple[Path, ...], tenant: str | None,
                as_json: bool) -> None:
    """Explain a classification: the score, the best prompt and the anchor pairs that contribute most.

    \b
    Example:
      asif explain dog.jpg --labels cifar10 --top 5
      asif explain dog.jpg --labels cifar10 --label cat --html report.html --image-root ../shared/data/flickr8k/images

    The report finds anchor pictures through the folders that `asif ingest` recorded, and --image-root.
    """
    if tag_field is not None:
        if point is None:
            raise click.UsageError("--tag needs --point ID (the tagged point)")
        ex = _open(ctx).explain_tag(tag_field, _point_id(point), tenant, collection=collection, top=top)
        _emit(as_json, ex.as_dict(), ex.text)
        return
    if image is None or labels_name is None:
        raise click.UsageError("explain needs IMAGE and --labels (or --tag FIELD --point ID)")
    n = n_labels if n_labels is not None else (3 if html_path else 1)
    client = _remote(ctx)
    if client is not None:  # the image is uploaded; the server renders the report with the pictures it holds
        args: dict[str, Any] = {"image": (str(image), image.read_bytes()), "label": label, "top": top,
                                "n_labels": n, "tenant": tenant}
        ex = client.explain(labels_name, **args)
        ex.image = str(image)
        if html_path is not None:
            html_path.write_text(client.explain_html(labels_name, **args), encoding="utf-8")
            if image_roots:
                click.echo("warning: --image-root is ignored with --server: the server finds anchor pictures "
                           "under its own roots", err=True)
    else:
        from .evaluation.report import missing_pictures_message, write_report

        asif = _open(ctx)
        ex = asif.explain(image=str(image), labels=labels_name, label=label, top=top, tenant=tenant, n_labels=n)
        if html_path is not None:
            write_report(ex, html_path, str(image), image_roots=image_roots)
            warn = missing_pictures_message(ex, image_roots)
            if warn:
                click.echo(f"warning: {warn}", err=True)
    data = {**ex.as_dict(), "html": str(html_path) if html_path else None}
    _emit(as_json, data, lambda: ex.text() + (f"\nreport: {html_path}" if html_path else ""))


@main.command("calibrate")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--labels", "labels_name", required=True, help="Label set name.")
@click.option("--target-precision", type=float, default=None,
              help="Choose the smallest tau whose answers reach this precision (0-1).")
@click.option("--target-coverage", type=float, default=None,
              help="Choose the largest tau that still answers this fraction of the images (0-1).")
@click.option("--tau", type=float, default=None, help="Evaluate this tau instead of choosing one (not stored).")
@click.option("--split", type=click.Choice(["heldout", "calibration", "all"]), default="heldout", show_default=True,
              help="Choose tau on a seeded 50/50 per-class calibration half and report on the held-out half (or on "
                   "the calibration half); 'all': choose and report on every image (optimistic).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the 50/50 split.")
@click.option("--limit", type=int, default=None, help="Use a class-balanced sample of N images.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the risk-coverage curve to this PNG.")
@click.option("--dry-run", is_flag=True, help="Choose and report tau, but do not store it.")
@tenant_option
@json_option
@click.pass_context
def calibrate_cmd(ctx: click.Context, folder: Path, labels_name: str, target_precision: float | None,
                  target_coverage: float | None, tau: float | None, split: str, seed: int,
                  limit: int | None, plot: Path | None, dry_run: bool, tenant: str | None, as_json: bool) -> None:
    """Choose the abstention threshold tau of a label set on a folder per class, and store it.

    Below tau, classify answers "unknown". Reports accuracy / unknown / wrong (fractions of all images).

    \b
    Example:
      asif calibrate ../shared/data/cifar10-test --labels cifar10 --target-precision 0.9 --plot risk.png
      asif calibrate ../shared/data/cifar10-test --labels cifar10 --target-coverage 0.7 --split heldout
    """
    from .evaluation.calibrate import calibrate

    if target_precision is None and target_coverage is None and tau is None:
        raise click.UsageError("give --target-precision P or --target-coverage C (or --tau T to evaluate a tau)")
    asif = _open(ctx)
    rep = calibrate(asif, folder, labels_name, target_precision=target_precision, target_coverage=target_coverage,
                    tau=tau, tenant=tenant, limit=limit, split=None if split == "all" else split,  # type: ignore[arg-type]
                    seed=seed, plot=plot, save=not dry_run, progress=not as_json)
    note = {"heldout": "tau chosen on a seeded 50/50 calibration half; the figures are on the held-out half "
                       "(--split all to use every image)",
            "calibration": "tau chosen and reported on the calibration half (optimistic; --split heldout is honest)",
            "all": "tau chosen and reported on the same images (optimistic; --split heldout is honest)"}[split]
    _emit(as_json, rep.as_dict(), lambda: rep.table() + f"\n{note}" + (
        "\ndry run: tau not stored" if dry_run and tau is None else ""))


@main.command()
@click.option("--data", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="Folder with flickr8k/ (anchors) and cifar10-test/ (labelled images).")
@click.option("--eval-limit", type=int, default=1000, show_default=True, help="Images in the evaluation slice.")
@click.option("--seed", type=int, default=None, help="Seed of step 3's random sample (default: a new one each run).")
@click.pass_context
def demo(ctx: click.Context, data: Path, eval_limit: int, seed: int | None) -> None:
    """The main job: Flickr8k anchors -> CIFAR-10 zero-shot, on the embedded store.

    \b
    Example:
      asif demo --data ../shared/data --eval-limit 500
    """
    from .evaluation.demo import run_demo

    run_demo(_open(ctx, create=True), data, eval_limit, sample_seed=seed)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the HTTP JSON API (docs at /docs): one process owns the store and the warm encoders.

    \b
    API keys map to tenants: ASIF_API_KEYS="k-acme-123456=acme,k-admin-123456=@admin" (or ASIF_API_KEYS_FILE).
    Example:
      ASIF_API_KEYS=... asif serve --host 0.0.0.0 --port 8000
    """
    if ctx.find_root().get_parameter_source("server") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("asif serve starts a server: leave out --server")
    import socket

    from .asif import Asif, make_settings
    from .extras import missing_extra

    try:
        from .serve import serve as run
    except ImportError as e:
        raise missing_extra(e, "serve", "asif serve") from e

    try:
        socket.getaddrinfo(host, port)
    except (OSError, UnicodeError) as e:
        raise click.BadParameter(f"{host!r} is not an address of this machine ({e}): use 127.0.0.1 or 0.0.0.0",
                                 param_hint="--host") from None
    settings = make_settings(None, **ctx.find_root().obj["opts"])
    # the store and the encoders open here, before the server starts: a locked store or a missing model is one
    # error line, not a traceback from the server's start-up
    asif = Asif.open(settings=settings)
    try:
        asif.encoder("image")
        asif.encoder("text")
        run(host, port, settings, asif=asif)
    finally:
        asif.close()


# -- tags on the user's collections ---------------------------------------------------------------
def _point_id(raw: str) -> int | str:
    """A point id from the command line: an unsigned integer, or a UUID string."""
    return int(raw) if raw.isdigit() else raw


def _tag_text(t: Any) -> str:
    state = "  INTERRUPTED: run `asif tag ... --sync` to finish it" if t.pending else ""
    return (f"{t.collection}:{t.field}  labels {t.labels!r}  tenant {t.tenant}  {t.points} points  rev {t.rev}"
            f"{state}")


@main.command("tag")
@click.argument("collection")
@click.option("--field", required=True, help="The payload field that holds the tags (one top-level field).")
@click.option("--vector", default=None, help="The collection's dense image vector to tag by (named vector).")
@click.option("--labels", "labels_name", default=None, help="The label set.")
@click.option("--filter", "filter_json", default=None,
              help='A Qdrant filter selecting the points, as JSON: \'{"must": [{"key": "owner", "match": {"value": '
                   '"acme"}}]}\'.')
@click.option("--top", type=int, default=3, show_default=True, help="Labels kept in each tag's 'top'.")
@click.option("--replace", is_flag=True, help="Overwrite the field where it holds other data (else refused).")
@click.option("--sync", is_flag=True, help="Pick up points added or deleted since (and finish an interrupted run).")
@click.option("--ids", default=None, help="With --sync: re-tag these points (ids, comma-separated): vectors "
              "overwritten in place cannot be detected.")
@tenant_option
@json_option
@click.pass_context
def tag_cmd(ctx: click.Context, collection: str, field: str, vector: str | None, labels_name: str | None,
            filter_json: str | None, top: int, replace: bool, sync: bool, ids: str | None, tenant: str | None,
            as_json: bool) -> None:
    """Tag every point of COLLECTION with a label set, in one payload field, kept exact after every edit.

    \b
    Example:
      asif tag photos --vector image --labels cifar10 --field category
      asif tag photos --field category --sync
    """
    asif = _open(ctx)
    if sync:
        res = asif.sync_tags(field, tenant, collection=collection,
                             ids=[_point_id(i) for i in ids.split(",")] if ids else None)
        _emit(as_json, res, lambda: f"synced {collection}:{field}: {res['added']} added, {res['deleted']} deleted, "
              f"{res['rewritten']} tags rewritten, {res['points']} points")
        return
    if vector is None or labels_name is None:
        raise click.UsageError("tag needs --vector and --labels (or --sync for an existing tagging)")
    info = asif.tag(collection, vector=vector, labels=labels_name, field=field, tenant=tenant, filter=filter_json,
                    top=top, replace=replace)
    _emit(as_json, info.as_dict(), lambda: "tagged " + _tag_text(info))


@main.group(cls=AsifGroup)
def tags() -> None:
    """The taggings of the user's collections (asif tag COLLECTION ... creates one)."""


@tags.command("list")
@tenant_option
@json_option
@click.pass_context
def tags_list(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """The tenant's taggings.

    \b
    Example:
      asif tags list --tenant acme
    """
    infos = _open(ctx).list_tags(tenant)
    _emit(as_json, [i.as_dict() for i in infos],
          lambda: "\n".join(_tag_text(i) for i in infos) or "no tagging (asif tag COLLECTION ... creates one)")


@tags.command("delete")
@click.argument("field")
@click.option("--collection", default=None, help="The collection (when the field is tagged in several).")
@tenant_option
@json_option
@click.pass_context
def tags_delete(ctx: click.Context, field: str, collection: str | None, tenant: str | None, as_json: bool) -> None:
    """Remove a tagging: FIELD leaves every point it tagged (the points' other data stays).

    \b
    Example:
      asif tags delete category --collection photos
    """
    info = _open(ctx).delete_tags(field, tenant, collection=collection)
    _emit(as_json, info.as_dict(), lambda: f"deleted the tags {info.collection}:{info.field} ({info.points} points)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
