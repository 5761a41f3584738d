"""Zero-shot evaluation on labelled images (a folder per class), with cached image embeddings."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from .asif import Asif

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def clean_class_name(folder: str) -> str:
    return folder.replace("_", " ").strip()


@dataclass
class LabelledImages:
    paths: list[Path]
    labels: list[str]  # class names (cleaned)

    def __len__(self) -> int:
        return len(self.paths)


def read_folder_per_class(root: Path, limit: int | None = None, seed: int = 0) -> LabelledImages:
    """Images under ``root/<class>/``. With ``limit``, a class-balanced deterministic sample of that size."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"evaluation folder {root} does not exist: give a folder with one sub-folder per class")
    classes = sorted(d for d in root.iterdir() if d.is_dir())
    if not classes:
        raise InvalidInputError(f"{root} has no class sub-folders: lay images out as {root}/<class>/<image>.jpg")
    per_class = [
        sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for d in classes
    ]
    if limit is not None:
        rng = np.random.default_rng(seed)
        per = max(1, limit // len(classes))
        per_class = [sorted(files[i] for i in rng.permutation(len(files))[:per]) if len(files) > per else files
                     for files in per_class]
    paths: list[Path] = []
    labels: list[str] = []
    for d, files in zip(classes, per_class, strict=True):
        paths.extend(Path(f) for f in files)
        labels.extend([clean_class_name(d.name)] * len(files))
    if not paths:
        raise InvalidInputError(f"{root} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return LabelledImages(paths, labels)


def cached_image_vectors(asif: Asif, paths: Sequence[Path], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Image embeddings of ``paths`` with the store's encoder, cached on disk per (encoder, file list)."""
    enc_name = asif.fingerprint.image_encoder
    h = hashlib.sha256(enc_name.encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache = asif.settings.resolved_cache_dir / "eval" / f"{h.hexdigest()[:24]}.npy"
    if cache.exists():
        arr = np.load(cache)
        if arr.shape[0] == len(paths):
            return arr
    encoder = asif.encoder("image")
    out = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), desc="encoding images", unit="img")
    for start in range(0, len(paths), batch_size):
        out.append(encoder.encode([str(p) for p in paths[start : start + batch_size]]))
        if bar is not None:
            bar.update(min(batch_size, len(paths) - start))
    if bar is not None:
        bar.close()
    arr = np.concatenate(out).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(cache)
    return arr


@dataclass
class EvalReport:
    n: int
    top1: float
    top5: float
    unknown: float
    per_class: dict[str, float]
    confusions: list[tuple[str, str, int]]
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "top1": self.top1, "top5": self.top5, "unknown": self.unknown,
            "per_class": self.per_class,
            "confusions": [{"true": t, "predicted": p, "count": c} for t, p, c in self.confusions],
            "settings": self.settings,
        }

    def table(self) -> str:
        lines = [f"images: {self.n}   top-1: {self.top1:.4f}   top-5: {self.top5:.4f}   unknown: {self.unknown:.4f}"]
        lines.append("per-class top-1:")
        for c, a in self.per_class.items():
            lines.append(f"  {c:<20} {a:.3f}")
        lines.append("most common confusions (true -> predicted: count):")
        for true, pred, count in self.confusions:
            lines.append(f"  {true} -> {pred}: {count}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


def score_predictions(
    truth: Sequence[str], ranked: Sequence[Sequence[str | None]], classes: Sequence[str], n_confusions: int = 10
) -> EvalReport:
    """Accuracy figures from ranked predictions (first entry None = unknown)."""
    n = len(truth)
    top1 = sum(1 for t, r in zip(truth, ranked, strict=True) if r and r[0] == t)
    top5 = sum(1 for t, r in zip(truth, ranked, strict=True) if t in list(r)[:5])
    unknown = sum(1 for r in ranked if not r or r[0] is None)
    per: dict[str, list[int]] = {c: [0, 0] for c in classes}
    conf: Counter[tuple[str, str]] = Counter()
    for t, r in zip(truth, ranked, strict=True):
        per.setdefault(t, [0, 0])
        per[t][1] += 1
        pred = r[0] if r else None
        if pred == t:
            per[t][0] += 1
        else:
            conf[(t, str(pred) if pred is not None else "unknown")] += 1
    return EvalReport(
        n, top1 / n if n else 0.0, top5 / n if n else 0.0, unknown / n if n else 0.0,
        {c: (v[0] / v[1] if v[1] else 0.0) for c, v in per.items() if v[1]},
        [(t, p, c) for (t, p), c in conf.most_common(n_confusions)],
    )


def evaluate(
    asif: Asif,
    folder: Path,
    labels: str,
    *,
    tenant: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    aggregation: str | None = None,
) -> EvalReport:
    """Top-1/top-5 accuracy, per-class accuracy and confusions of a label set on a folder per class."""
    data = read_folder_per_class(folder, limit)
    info = asif.relindexes.require(labels, tenant or "_shared", "labels")
    missing = sorted(set(data.labels) - set(info.classes))
    if missing:
        raise InvalidInputError(
            f"classes {missing} of {folder} are not in label set {labels!r} ({info.classes}): "
            "define the label set with the folder names (underscores read as spaces)"
        )
    vecs = cached_image_vectors(asif, data.paths, progress=progress)
    ranked: list[list[str | None]] = []
    for start in range(0, len(data), 256):
        preds = asif.classify(vectors=vecs[start : start + 256], labels=labels, top=5, tenant=tenant,
                              aggregation=aggregation)
        ranked.extend([[s.label for s in p.top] if p.label is not None else [None] for p in preds])
    rep = score_predictions(data.labels, ranked, info.classes)
    rep.settings = {"labels": labels, "k": info.k, "p": info.p, "aggregation": aggregation or info.aggregation,
                    "templates": len(info.templates), "anchors": asif.count(tenant)}
    return rep


@dataclass
class SweepRow:
    k: int
    p: float
    templates: str
    aggregation: str
    top1: float
    top5: float

    def as_dict(self) -> dict[str, Any]:
        return vars(self)


def sweep_vectors(
    asif: Asif,
    vectors: np.ndarray,
    truth: Sequence[str],
    classes: Sequence[str],
    ks: Sequence[int],
    ps: Sequence[float],
    *,
    template_sets: Sequence[str] = ("photo",),
    aggregations: Sequence[str] = ("max",),
    tenant: str | None = None,
    prompt_cache: dict[str, np.ndarray] | None = None,
) -> list[SweepRow]:
    """Top-1/top-5 for every (k, p, templates, aggregation): the anchors' top-k is queried once, at the
    largest k, and cut for the smaller ones; prompts are encoded once per template set."""
    from .relindex import IndexInfo
    from .zeroshot import aggregate, resolve_templates

    t = tenant or "_shared"
    kmax = max(ks)
    ri = asif.relindexes
    img_top = ri.anchor_topk(np.asarray(vectors, np.float32), "image", t, kmax)
    rows: list[SweepRow] = []
    for tset in template_sets:
        tpl = resolve_templates(tset)
        prompts = [x.format(c) for c in classes for x in tpl]
        key = f"{tset}:{len(classes)}"
        if prompt_cache is not None and key in prompt_cache:
            pvec = prompt_cache[key]
        else:
            pvec = asif.encode_texts(prompts)
            if prompt_cache is not None:
                prompt_cache[key] = pvec
        payloads = [{"label": c, "prompt": x.format(c)} for c in classes for x in tpl]
        for k in sorted(ks):
            for p in ps:
                info = IndexInfo(f"_sweep_{tset}", t, "labels", k, float(p), len(prompts), {}, classes=list(classes),
                                 templates=tpl)
                info = ri.build(info, pvec, payloads)
                reps = img_top.cut(k).reps(float(p))
                hits = ri.query(info, reps, limit=info.n_items, with_payload=False)
                for agg in aggregations:
                    ranked: list[list[str | None]] = []
                    for hs in hits:
                        for h in hs:
                            h.payload = info.prompt_of(h.id)
                        pred = aggregate(hs, len(tpl), agg, 5)
                        ranked.append([s.label for s in pred.top] if pred.label is not None else [None])
                    rep = score_predictions(truth, ranked, classes)
                    rows.append(SweepRow(k, float(p), tset, agg, rep.top1, rep.top5))
                ri.delete(info)
    return rows
