"""Text<->image retrieval metrics on held-out pairs: recall@1/5/10 in both directions.

N images of a captions file are held out; the anchors are every pair of the store except those of the held-out
images (excluded with a ``must_not HasId`` filter on the dense queries, so the store is not copied). Each held-out
image and each of its captions gets its relative representation against the remaining anchors, and:

- image -> caption: the held-out captions are ranked for each held-out image; a hit at R when one of the image's
  own captions is among the first R;
- caption -> image: the held-out images are ranked for each caption; a hit at R when its image is among the first R.

Scores are sparse dot products of relative reps (as in search); ties are broken by position, and an item with
score 0 (no shared anchor) never counts as found.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..anchors import as_matrix
from ..engines.base import Filter, HasId, MatchAny
from ..errors import ConfigError, InvalidInputError
from ..meta import validate_tenant
from ..relindex import tenant_scope
from ..relrep import l2_normalize
from ..validate import check_k_p
from ..zeroshot import reference_shift_scale
from .sweeps import anchor_ids, anchor_topk_within, check_image_vectors, sparse_scores

if TYPE_CHECKING:
    from ..asif import Asif

RANKS = (1, 5, 10)


def _ranks_of_targets(
    scores: np.ndarray, targets: Sequence[Sequence[int]], found: np.ndarray | None = None
) -> np.ndarray:
    """Per row: the best (0-based) rank among its target columns, ordering columns by (-score, column); a target
    with score <= 0 (or, given ``found``, where it is False) is never found (rank = number of columns)."""
    n_rows, n_cols = scores.shape
    out = np.full(n_rows, n_cols, np.int64)
    for i in range(n_rows):
        row = scores[i]
        best = n_cols
        for c in targets[i]:
            s = row[c]
            if (s <= 0) if found is None else not found[i, c]:
                continue
            rank = int((row > s).sum() + (row[:c] == s).sum())
            best = min(best, rank)
        out[i] = best
    return out


def _recalls(ranks: np.ndarray, n_cols: int, ks: Sequence[int]) -> dict[str, float]:
    """Recall@k (a not-found target, rank n_cols, is never a hit), the median 1-based rank (not found = last)
    and the fraction never found."""
    n = max(1, ranks.size)
    found = ranks < n_cols
    out = {f"R@{k}": float((found & (ranks < k)).sum()) / n for k in ks}
    out["median_rank"] = float(np.median(np.minimum(ranks + 1, n_cols))) if ranks.size else 0.0
    out["not_found"] = float((~found).sum()) / n
    return out


def retrieval_recall_vectors(
    asif: Asif,
    image_vectors: np.ndarray,
    caption_vectors: np.ndarray,
    caption_image: Sequence[int],
    *,
    k: int | None = None,
    p: float | None = None,
    tenant: str | None = None,
    exclude_ids: Sequence[int] | np.ndarray | None = None,
    ranks: Sequence[int] = RANKS,
    correction: str = "none",
) -> dict[str, Any]:
    """Recall@R both ways for held-out images and their captions (``caption_image[j]``: the image of caption j),
    against the tenant's anchors minus ``exclude_ids``. ``correction`` ('mean', 'zscore'): each ranked item's score
    is corrected by its scores over the reference sample (correction.py) of the query's modality: anchor images for
    image -> caption, anchor captions for caption -> image."""
    t = validate_tenant(tenant)
    kk, pp = check_k_p(k, p, asif.settings.k, asif.settings.p, asif.settings.max_k)
    imgs = check_image_vectors(asif, image_vectors)
    fp = asif.fingerprint
    caps = l2_normalize(as_matrix(caption_vectors, fp.text_dim, "caption vectors", fp.text_encoder),
                        "caption vectors")
    owner = np.asarray(caption_image, np.int64)
    if owner.shape != (caps.shape[0],) or (owner.size and (owner.min() < 0 or owner.max() >= imgs.shape[0])):
        raise InvalidInputError(
            f"caption_image must give, for each of the {caps.shape[0]} captions, the index of its image "
            f"(0..{imgs.shape[0] - 1})"
        )
    exclude = np.unique(np.asarray(exclude_ids if exclude_ids is not None else [], np.int64))
    img_reps = anchor_topk_within(asif, imgs, "image", t, kk, exclude=exclude).reps(pp)
    cap_reps = anchor_topk_within(asif, caps, "text", t, kk, exclude=exclude).reps(pp)
    s = sparse_scores(cap_reps, img_reps)  # (captions, images)
    s_c2i, s_i2c = s, np.ascontiguousarray(s.T)
    if correction != "none":
        ref_img, ref_txt = _reference_reps(asif, t, kk, pp, exclude)
        sh, sc = reference_shift_scale(sparse_scores(ref_txt, img_reps), correction)
        s_c2i = np.where(s > 0, (s - sh) / sc, -np.inf)  # an item sharing no anchor is never found
        sh, sc = reference_shift_scale(sparse_scores(ref_img, cap_reps), correction)
        s_i2c = np.where(s_i2c > 0, (s_i2c - sh) / sc, -np.inf)
    c2i = _ranks_of_targets(s_c2i, [[int(o)] for o in owner], found=s > 0)
    own: list[list[int]] = [[] for _ in range(imgs.shape[0])]
    for j, o in enumerate(owner.tolist()):
        own[o].append(j)
    i2c = _ranks_of_targets(s_i2c, own, found=np.ascontiguousarray(s.T) > 0)
    scope = tenant_scope(t)
    if exclude.size:
        scope = Filter(must=scope.must, must_not=(HasId(tuple(int(i) for i in exclude)),))
    used = int(asif.engine.count(asif.anchors.collection, scope))
    return {
        "n_images": int(imgs.shape[0]),
        "n_captions": int(caps.shape[0]),
        "k": kk,
        "p": pp,
        "anchors_excluded": int(exclude.size),
        "anchors_used": used,
        "image_to_caption": _recalls(i2c, caps.shape[0], ranks),
        "caption_to_image": _recalls(c2i, imgs.shape[0], ranks),
    }


def _reference_reps(
    asif: Asif, tenant: str, k: int, p: float, exclude: np.ndarray
) -> tuple[list[Any], list[Any]]:
    """The reference sample's image and caption reps (correction.py's sample of the anchors left in the model)."""
    from ..correction import reference_ids

    ids = np.setdiff1d(anchor_ids(asif, tenant), exclude)
    chosen = reference_ids(ids.tolist())
    recs = {r.id: r for r in asif.engine.retrieve(asif.anchors.collection, chosen, with_vectors=("image", "text"))}
    out = []
    for modality in ("image", "text"):
        vecs = np.stack([np.asarray(recs[i].vectors[modality], np.float32) for i in chosen])
        out.append(anchor_topk_within(asif, vecs, modality, tenant, k, exclude=exclude).reps(p))
    return out[0], out[1]


def _cached_encode(asif: Asif, modality: str, items: Sequence[Any], keys: Sequence[bytes]) -> np.ndarray:
    """Embeddings through the store's embedding cache (the one ingest fills): only misses are encoded."""
    with asif.embedder(cache=True) as emb:  # texts are keyed by their sha256, as ``keys`` are
        vecs = emb.images(items, keys=keys).vectors if modality == "image" else emb.texts(items)
    return np.asarray(vecs, np.float32)


@dataclass
class HeldOut:
    """Held-out images of a captions file: their vectors, their captions' vectors (``owner[j]``: the image of caption
    j), the captions, and the ids of their anchor pairs (to exclude from the model)."""

    refs: list[str]
    image_vectors: np.ndarray
    caption_vectors: np.ndarray
    captions: list[str]
    owner: list[int]
    exclude: list[int]


def held_out_pairs(asif: Asif, captions_file: str | Path, holdout: int, seed: int = 0, tenant: str | None = None
                   ) -> HeldOut:
    """``holdout`` images of a captions file (seeded choice) and their captions, embedded through the store's
    embedding cache, with the ids of their anchor pairs (matched on the anchors' ``image_ref``)."""
    from ..anchors import file_digest, text_digest
    from ..ingest import read_source

    t = validate_tenant(tenant)
    rows = [r for r in read_source(captions_file) if r.error is None and r.caption and r.image is not None]
    by_ref: dict[str, list[Any]] = {}
    for r in rows:
        by_ref.setdefault(r.image_ref, []).append(r)
    refs = list(by_ref)
    if len(refs) < 2:
        raise ConfigError(
            f"{captions_file} has {len(refs)} readable image(s) with captions: held-out retrieval needs at least 2 "
            "(some to hold out, the rest as anchors)"
        )
    if isinstance(holdout, bool) or not isinstance(holdout, int) or not 1 <= holdout < len(refs):
        raise ConfigError(
            f"holdout={holdout!r} is invalid: give a number of images between 1 and {len(refs) - 1} "
            f"({captions_file} has {len(refs)} images)"
        )
    chosen = sorted(np.random.default_rng(seed).choice(len(refs), holdout, replace=False).tolist())
    held = [refs[i] for i in chosen]
    missing = [r for r in held if not by_ref[r][0].image.is_file()]
    if missing:
        raise InvalidInputError(f"held-out image {missing[0]!r} does not exist: check the captions file's paths")
    caps: list[str] = []
    owner: list[int] = []
    for i, ref in enumerate(held):
        for r in by_ref[ref]:
            caps.append(r.caption)
            owner.append(i)
    scope = tenant_scope(t).and_(MatchAny("image_ref", tuple(held)))
    exclude = [r.id for r in asif.engine.scroll(asif.anchors.collection, filter=scope, with_payload=False)]
    paths = [by_ref[ref][0].image for ref in held]
    img = _cached_encode(asif, "image", [str(p) for p in paths], [file_digest(p) for p in paths])
    txt = _cached_encode(asif, "text", caps, [text_digest(c) for c in caps])
    return HeldOut(held, img, txt, caps, owner, exclude)


def retrieval_recall(
    asif: Asif,
    captions_file: str | Path,
    holdout: int,
    seed: int = 0,
    k: int | None = None,
    p: float | None = None,
    *,
    tenant: str | None = None,
) -> dict[str, Any]:
    """Image->caption and caption->image recall@1/5/10 on ``holdout`` images of a captions file (seeded choice),
    whose pairs are excluded from the anchors (matched on the anchors' ``image_ref``), against the rest."""
    t0 = time.perf_counter()
    t = validate_tenant(tenant)
    h = held_out_pairs(asif, captions_file, holdout, seed, t)
    out = retrieval_recall_vectors(asif, h.image_vectors, h.caption_vectors, h.owner, k=k, p=p, tenant=t,
                                   exclude_ids=h.exclude)
    out.update({"source": str(captions_file), "holdout": holdout, "seed": seed,
                "seconds": time.perf_counter() - t0})
    return out


def recall_table(res: dict[str, Any]) -> str:
    """A short text table of a retrieval_recall result."""
    ks = [c for c in res["image_to_caption"] if c.startswith("R@")]
    lines = [f"{res['n_images']} held-out images, {res['n_captions']} captions; anchors used {res['anchors_used']} "
             f"({res['anchors_excluded']} of the held-out images excluded); k={res['k']} p={res['p']:g}"]
    lines.append(f"{'direction':<18}" + "".join(f"{c:>8}" for c in ks) + f"{'median rank':>13}{'not found':>11}")
    for name in ("image_to_caption", "caption_to_image"):
        r = res[name]
        lines.append(f"{name.replace('_to_', ' -> '):<18}" + "".join(f"{r[c]:>8.4f}" for c in ks)
                     + f"{r['median_rank']:>13g}{r['not_found']:>11.4f}")
    return "\n".join(lines)
