"""A self-contained HTML report of an explanation: the query image, the top labels with score bars, and the
anchor pairs that contribute most to each label.

One file, nothing fetched: images are embedded as base64 JPEG thumbnails, CSS is inline, there is no script.
Every text that comes from data (captions, labels, prompts, payload values, paths) goes through html.escape.
Stable hooks for tests and styling: ``#query-image``, ``#labels``, ``.label-row`` (``data-label``),
``.score-bar``, ``.anchor-card`` (one per anchor image: ``data-anchor-id`` of its largest pair, ``data-anchor-ids``),
``.anchor-pair`` (one per anchor pair, ``data-anchor-id``), ``.caption``, ``.contribution``, ``#unknown``, ``#legend``,
``#missing-pictures`` (when anchor pictures cannot be found: the fix).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..embedding import decode_file
from ..errors import AsifError, InvalidInputError
from ..explain import AnchorContribution, Explanation, LabelExplanation, explain

if TYPE_CHECKING:
    from ..asif import Asif

QUERY_THUMB = 320
ANCHOR_THUMB = 128

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #1d2430;
       background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 12px 0; }
h2 { font-size: 17px; margin: 18px 0 8px 0; }
.meta { color: #5b6472; font-size: 13px; margin-bottom: 16px; }
.top { display: flex; gap: 24px; align-items: flex-start; }
#query-image { width: 320px; max-height: 320px; object-fit: contain; border: 1px solid #c9ced6;
               border-radius: 6px; background: #f2f4f7; }
div#query-image { height: 240px; display: flex; align-items: center; justify-content: center; color: #5b6472; }
.verdict { font-size: 18px; font-weight: 600; margin-bottom: 10px; }
.verdict.unknown { color: #a33a0f; }
#unknown { border: 2px dashed #d9822b; background: #fff6ec; padding: 14px; border-radius: 6px; max-width: 640px; }
table.ranking { border-collapse: collapse; }
.label-row td { padding: 4px 8px; font-size: 14px; }
.bar-cell { width: 320px; }
.score-track { background: #e7eaef; border-radius: 4px; height: 16px; width: 300px; }
.score-bar { background: #2f6fde; height: 16px; border-radius: 4px; min-width: 2px; }
.label-row.predicted .score-bar { background: #1f9d55; }
.label-block { border-top: 1px solid #e1e4ea; margin-top: 16px; padding-top: 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.anchor-card { width: 150px; border: 1px solid #c9ced6; border-radius: 6px; padding: 8px; background: #fafbfc;
               font-size: 12px; }
.thumb { width: 128px; height: 128px; object-fit: cover; display: block; margin: 0 auto 6px auto;
         border-radius: 4px; background: #e7eaef; }
div.thumb { display: flex; align-items: center; justify-content: center; color: #7a8290; font-size: 11px;
            border: 1px dashed #aab1bc; box-sizing: border-box; }
.caption { margin: 4px 0; word-wrap: break-word; overflow-wrap: anywhere; }
.contribution { font-weight: 600; color: #2f6fde; }
.sims, .payload { color: #5b6472; }
.rest { color: #5b6472; font-size: 12px; margin-top: 6px; }
.legend { color: #3d4654; font-size: 13px; margin: -8px 0 14px 0; }
.warning { border-left: 4px solid #d9822b; background: #fff6ec; padding: 6px 10px; font-size: 13px; max-width: 900px; }
.anchor-card.wide { width: 230px; }
.anchor-pair { border-top: 1px solid #e1e4ea; padding-top: 4px; margin-top: 4px; }
.together { color: #1d2430; font-size: 12px; margin-top: 2px; }
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def thumbnail_data_uri(source: Any, size: int) -> str | None:
    """A base64 JPEG data URI of a thumbnail of ``source`` (a path or PIL image), or None if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(source, Image.Image):
            im = source.copy()
        else:
            path = Path(source)
            if not path.is_file():
                return None
            im = decode_file(path)  # size-checked from the header, decoded shrunk
    except (OSError, UnidentifiedImageError, ValueError, AsifError):
        return None
    im = im.convert("RGB")
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Confined(list[Path]):
    """Picture folders that confine: an ``image_ref`` is shown only when it resolves (links included) to a file
    inside one of them; never as given, never from the working folder (what ``asif serve`` passes)."""


def _confined(ref: str, roots: Confined) -> Path | None:
    if "\x00" in ref or len(ref) > 1024:
        return None
    for root in roots:
        try:
            q = (root / ref).resolve()
            if q.is_relative_to(root) and q.is_file():
                return q
        except (OSError, RuntimeError, ValueError):
            continue
    return None


def resolve_image_ref(ref: str | None, roots: Sequence[Path] = ()) -> Path | None:
    """The file an anchor's ``image_ref`` names: as given (absolute or relative to the working folder),
    or relative to one of ``roots`` (e.g. the folder the anchors were ingested from). With :class:`Confined`
    roots, only a file inside one of them."""
    if not ref:
        return None
    if isinstance(roots, Confined):
        return _confined(ref, roots)
    p = Path(ref)
    if p.is_file():
        return p
    if not p.is_absolute():
        for root in roots:
            q = Path(root) / p
            if q.is_file():
                return q
    return None


def _thumb(uri: str | None, alt: str, css: str, id_attr: str = "") -> str:
    if uri is None:
        return f'<div class="{css} placeholder"{id_attr} role="img" aria-label="{_e(alt)}">no image</div>'
    return f'<img class="{css}"{id_attr} src="{uri}" alt="{_e(alt)}">'


def _pair(c: AnchorContribution) -> str:
    sims = f"text sim {c.prompt_similarity:.3f} · " if c.prompt_similarity is not None else ""
    payload = json.dumps(c.payload, ensure_ascii=False, default=str) if c.payload else ""
    return (
        f'<div class="anchor-pair" data-anchor-id="{c.id}">'
        f'<div class="caption">{_e(c.caption) or "<i>(no caption)</i>"}</div>'
        f'<div class="contribution">+{c.contribution:.4f}</div>'
        f'<div class="sims">{_e(sims)}anchor #{c.id}</div>'
        + (f'<div class="payload">{_e(payload)}</div>' if payload else "")
        + "</div>"
    )


def group_by_image(contributions: Sequence[AnchorContribution]) -> list[list[AnchorContribution]]:
    """Contributions grouped by anchor image (same ``image_ref``), groups in order of their largest one: the
    captions of one photo are shown on one card instead of repeating the photo."""
    groups: dict[str, list[AnchorContribution]] = {}
    for c in contributions:
        groups.setdefault(c.image_ref or f"#{c.id}", []).append(c)
    return list(groups.values())


def _card(group: Sequence[AnchorContribution], roots: Sequence[Path]) -> str:
    first = group[0]
    path = resolve_image_ref(first.image_ref, roots)
    uri = thumbnail_data_uri(path, ANCHOR_THUMB) if path is not None else None
    ids = ",".join(str(c.id) for c in group)
    together = (f'<div class="together">{len(group)} captions of this image: '
                f"+{sum(c.contribution for c in group):.4f}</div>") if len(group) > 1 else ""
    wide = " wide" if len(group) > 1 else ""
    return (
        f'<div class="anchor-card{wide}" data-anchor-id="{first.id}" data-anchor-ids="{ids}">'
        + _thumb(uri, first.caption or f"anchor {first.id}", "thumb")
        + f'<div class="sims">image sim {first.image_similarity:.3f}</div>'
        + together + "".join(_pair(c) for c in group) + "</div>"
    )


def _label_block(ex: LabelExplanation, roots: Sequence[Path]) -> str:
    cards = [_card(g, roots) for g in group_by_image(ex.contributions)]
    if not cards:
        body = '<p class="rest">This label shares no anchor with the image: score 0.</p>'
    else:
        body = '<div class="cards">' + "".join(cards) + "</div>"
        if ex.rest > 0:
            n_other = ex.shared_anchors - len(ex.contributions)
            body += f'<p class="rest">+{ex.rest:.4f} from the other {n_other} shared anchor(s)</p>'
    prompt = f" via “{_e(ex.prompt)}”" if ex.prompt else ""
    return (
        f'<section class="label-block" data-label="{_e(ex.label)}">'
        f"<h2>{_e(ex.label)}: score {ex.score:.4f}{prompt} "
        f"<span class=\"meta\">({ex.shared_anchors} shared anchor(s))</span></h2>{body}</section>"
    )


LEGEND = ("<b>image sim</b>: cosine of this image to the anchor's image · <b>text sim</b>: cosine of the label's "
          "best prompt to the anchor's caption · <b>+contribution</b>: what the anchor pair adds to the label's "
          "score; a label's contributions add up to its score.")


def picture_roots(expl: Explanation, image_roots: Sequence[str | Path] = ()) -> list[Path]:
    """Where anchor pictures are looked up: the folders given, then those that ingest recorded (with
    :class:`Confined` folders: those alone)."""
    if isinstance(image_roots, Confined):
        return image_roots
    return list(dict.fromkeys([Path(r) for r in image_roots] + [Path(r) for r in expl.image_roots]))


def missing_pictures(expl: Explanation, image_roots: Sequence[str | Path] = ()) -> list[str]:
    """The ``image_ref``s of the explained anchors whose picture cannot be found (anchors without one excluded)."""
    roots = picture_roots(expl, image_roots)
    refs = dict.fromkeys(c.image_ref for ex in expl.explained for c in ex.contributions if c.image_ref)
    return [r for r in refs if resolve_image_ref(r, roots) is None]


def missing_pictures_message(expl: Explanation, image_roots: Sequence[str | Path] = ()) -> str | None:
    """A one-line warning naming the fix when anchor pictures cannot be found, else None."""
    missing = missing_pictures(expl, image_roots)
    if not missing:
        return None
    total = len({c.image_ref for ex in expl.explained for c in ex.contributions if c.image_ref})
    if isinstance(image_roots, Confined):  # a server: never name its folders
        return (f"{len(missing)} of {total} anchor pictures were not found (e.g. {missing[0]!r}) under the server's "
                "image folders (ASIF_SERVE_ROOT and the folders recorded at ingest)")
    looked = ", ".join(str(r) for r in picture_roots(expl, image_roots)) or "the working folder only"
    return (f"{len(missing)} of {total} anchor pictures were not found (e.g. {missing[0]!r}; looked in {looked}): "
            "pass --image-root FOLDER (image_roots=[...]) with the folder the images were ingested from, e.g. "
            "flickr8k/images, or ingest the anchors again to record it")


def render_html(
    expl: Explanation,
    image: Any = None,
    *,
    image_roots: Sequence[str | Path] = (),
    title: str | None = None,
) -> str:
    """The report as one HTML string. ``image``: the query image (path or PIL) to show; defaults to
    ``expl.image``. ``image_roots``: folders to resolve relative anchor ``image_ref`` paths against."""
    roots = picture_roots(expl, image_roots)
    warn = missing_pictures_message(expl, image_roots)
    src = image if image is not None else expl.image
    q_uri = thumbnail_data_uri(src, QUERY_THUMB) if src is not None else None
    name = expl.image or ("the query vector" if src is None else "the query image")
    title = title or f"asif explain: {name}"

    if expl.unknown:
        verdict = '<div class="verdict unknown">unknown</div>'
    elif expl.abstained:
        verdict = (f'<div class="verdict unknown">unknown: best score {expl.ranking[0].score:.4f} '
                   f"is below tau={expl.tau:g}</div>")
    else:
        verdict = f'<div class="verdict">predicted: {_e(expl.predicted)} ({expl.ranking[0].score:.4f})</div>'

    if expl.unknown and not any(ex.shared_anchors for ex in expl.explained):
        near = (f"among its {expl.query_anchors} nearest anchors" if expl.query_anchors
                else "it has no positive similarity to any anchor")
        main = (
            '<div id="unknown"><b>No shared anchor.</b> No prompt of label set '
            f"“{_e(expl.labels)}” shares an anchor pair with this image ({near}), so every label scores 0 and "
            "the model answers <b>unknown</b>. Add anchor pairs that resemble this image, or raise k.</div>"
        )
        ranking = ""
        blocks = "".join(_label_block(ex, roots) for ex in expl.explained)
    else:
        best = max((r.score for r in expl.ranking), default=0.0) or 1.0
        rows = []
        for r in expl.ranking:
            width = max(0.0, min(100.0, 100.0 * r.score / best))
            cls = "label-row predicted" if r.label == expl.predicted else "label-row"
            rows.append(
                f'<tr class="{cls}" data-label="{_e(r.label)}"><td class="label-name">{_e(r.label)}</td>'
                f'<td class="bar-cell"><div class="score-track"><div class="score-bar" style="width:{width:.1f}%">'
                f'</div></div></td><td class="score">{r.score:.4f}</td>'
                f'<td class="prompt meta">{_e(r.prompt)}</td></tr>'
            )
        ranking = f'<h2>Top labels</h2><table class="ranking" id="labels">{"".join(rows)}</table>'
        main = ""
        blocks = "".join(_label_block(ex, roots) for ex in expl.explained)

    meta = (f"label set “{_e(expl.labels)}” · tenant {_e(expl.tenant)} · k={expl.k} · p={expl.p:g} · "
            f"aggregation {_e(expl.aggregation)}" + (f" · tau={expl.tau:g}" if expl.tau is not None else ""))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><div class=\"meta\">{meta}</div>"
        f'<p class="legend" id="legend">{LEGEND}</p>'
        + (f'<p class="warning" id="missing-pictures">{_e(warn)}</p>' if warn else "")
        + (f'<p class="warning" id="dominant">{_e(expl.dominant.message())}</p>' if expl.dominant else "")
        + '<div class="top"><div>'
        + _thumb(q_uri, name, "query", ' id="query-image"')
        + f"</div><div>{verdict}{main}{ranking}</div></div>"
        f'<div id="explanations">{blocks}</div>'
        "</body></html>\n"
    )


def write_report(
    expl: Explanation,
    path: str | Path,
    image: Any = None,
    *,
    image_roots: Sequence[str | Path] = (),
    title: str | None = None,
) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8); return the path."""
    out = Path(path)
    if out.is_dir():
        raise InvalidInputError(f"report path {str(out)!r} is a folder: give a file name such as report.html")
    if not out.parent.exists():
        raise InvalidInputError(f"folder {str(out.parent)!r} does not exist: create it, or write the report elsewhere")
    out.write_text(render_html(expl, image, image_roots=image_roots, title=title), encoding="utf-8")
    return out


def explain_report(
    asif: Asif,
    path: str | Path,
    image: Any = None,
    vector: Any = None,
    labels: str = "",
    label: str | None = None,
    top: int = 6,
    tenant: str | None = None,
    *,
    n_labels: int = 3,
    image_roots: Sequence[str | Path] = (),
) -> Explanation:
    """Explain one input (see :func:`asif_qdrant.explain.explain`) and write the HTML report to ``path``."""
    expl = explain(asif, image=image, vector=vector, labels=labels, label=label, top=top, tenant=tenant,
                   n_labels=n_labels)
    write_report(expl, path, image, image_roots=image_roots)
    return expl


__all__ = ["explain_report", "group_by_image", "missing_pictures", "missing_pictures_message", "picture_roots",
           "Confined", "render_html", "resolve_image_ref", "thumbnail_data_uri", "write_report"]
