"""Zero-shot evaluation on labelled images (a folder per class, or a CSV/TSV/JSONL of image and label), with
cached image embeddings.

Sweeps over k, p, templates and aggregation, the anchor-count curve and validated autotuning live in
``sweeps.py`` and ``tune.py``; text<->image retrieval metrics in ``retrieval.py``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embedding import progress_bar
from ..errors import InvalidInputError, NotFoundError
from ..meta import validate_tenant
from ..readers import (
    IMAGE_SUFFIXES,
    ROW_FORMATS,
    class_folders,
    file_format,
    image_bases,
    resolve_image,
    rows_from_file,
)

if TYPE_CHECKING:
    from ..asif import Asif

LABELLED_FORMATS = {**ROW_FORMATS, ".txt": "tsv"}
IMAGE_COLUMNS = ("image", "path", "file")
LABEL_COLUMNS = ("label", "class")
_MAP_HEADER_WORDS = {"folder", "folder_name", "label", "class", "source", "from", "name", "key", "raw"}


def clean_class_name(folder: str) -> str:
    return folder.replace("_", " ").strip()


@dataclass
class LabelledImages:
    """Image paths and their class names (cleaned, mapped). ``classes``: every class of the source, in order.

    When the images are a sample of a larger source, ``universe`` holds the source's full path list and
    ``positions`` where each sampled image sits in it (so that embeddings cached for the full list are reused).
    """

    paths: list[Path]
    labels: list[str]  # class names (cleaned)
    classes: list[str] = field(default_factory=list)
    universe: list[Path] | None = None
    positions: list[int] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __post_init__(self) -> None:
        if not self.classes:
            self.classes = list(dict.fromkeys(self.labels))


def read_class_map(path: str | Path) -> dict[str, str]:
    """A mapping raw class name (folder name or label value) -> class name, from a JSON object or a two-column
    CSV/TSV file (an optional header row such as ``folder,class`` is skipped)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFoundError(f"class map {str(p)!r} does not exist: give a JSON object or a two-column CSV/TSV file")
    text = p.read_text(encoding="utf-8-sig")
    out: dict[str, str] = {}
    if p.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"class map {str(p)!r} is not valid JSON ({e.msg}, line {e.lineno})") from e
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            raise InvalidInputError(
                f"class map {str(p)!r} must be a JSON object of strings, e.g. {{\"automobile\": \"car\"}}"
            )
        out = {str(k): v for k, v in obj.items()}
    else:
        delim = "\t" if p.suffix.lower() in (".tsv", ".txt") or "\t" in text.splitlines()[0] else ","
        rows = [r for r in csv.reader(text.splitlines(), delimiter=delim) if any(x.strip() for x in r)]
        for i, r in enumerate(rows, start=1):
            if len(r) != 2:
                raise InvalidInputError(
                    f"class map {str(p)!r} line {i} has {len(r)} fields: write two, the raw name and the class name"
                )
            if i == 1 and r[0].strip().lower() in _MAP_HEADER_WORDS:
                continue
            out[r[0].strip()] = r[1]
    bad = [k for k, v in out.items() if not k or not v.strip()]
    if bad or not out:
        raise InvalidInputError(f"class map {str(p)!r} is empty or maps {bad[0] if bad else ''!r} to an empty name")
    return {k: v.strip() for k, v in out.items()}


def _resolve_map(mapping: Mapping[str, str] | str | Path | None) -> dict[str, str] | None:
    if mapping is None:
        return None
    if isinstance(mapping, (str, Path)):
        return read_class_map(mapping)
    return {str(k): str(v).strip() for k, v in mapping.items()}


def _class_namer(raw: Sequence[str], mapping: Mapping[str, str] | None, where: str) -> dict[str, str]:
    """raw name -> final class name. A mapping key that names no raw class (nor its cleaned form) is an error."""
    names = {r: clean_class_name(r) for r in raw}
    if mapping is None:
        return names
    by_clean = {v: k for k, v in names.items()}
    for key, value in mapping.items():
        r = key if key in names else by_clean.get(clean_class_name(key))
        if r is None:
            raise InvalidInputError(
                f"class map names {key!r}, which is not a class of {where} ({', '.join(sorted(names)) or 'none'}): "
                "fix the map's first column (folder names, or label values)"
            )
        names[r] = value
    return names


def _sample(per_class: list[list[int]], limit: int | None, seed: int) -> list[list[int]]:
    """A class-balanced deterministic sample (positions), ``limit // n_classes`` per class."""
    if limit is None:
        return per_class
    if limit < 1:
        raise InvalidInputError(f"limit={limit} is invalid: give a number of images >= 1, or no limit")
    rng = np.random.default_rng(seed)
    per = max(1, limit // len(per_class))
    return [sorted(rng.permutation(files)[:per].tolist()) if len(files) > per else files for files in per_class]


def read_folder_per_class(
    root: Path, limit: int | None = None, seed: int = 0, mapping: Mapping[str, str] | str | Path | None = None
) -> LabelledImages:
    """Images under ``root/<class>/``. With ``limit``, a class-balanced deterministic sample of that size."""
    root = Path(root)
    classes = class_folders(root)
    if not classes:
        raise InvalidInputError(f"{root} has no class sub-folders: lay images out as {root}/<class>/<image>.jpg")
    names = _class_namer([c for c, _ in classes], _resolve_map(mapping), str(root))
    universe = [p for _, fs in classes for p in fs]
    raw_labels = [c for c, fs in classes for _ in fs]
    if not universe:
        raise InvalidInputError(f"{root} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class sub-folders")
    return _labelled(universe, raw_labels, [c for c, _ in classes], names, limit, seed)


def _labelled(
    universe: list[Path], raw_labels: list[str], raw_classes: list[str], names: Mapping[str, str],
    limit: int | None, seed: int,
) -> LabelledImages:
    per_class: dict[str, list[int]] = {c: [] for c in raw_classes}
    for i, r in enumerate(raw_labels):
        per_class[r].append(i)
    classes = list(dict.fromkeys(names[c] for c in raw_classes if per_class[c]))
    if limit is None:
        return LabelledImages(list(universe), [names[r] for r in raw_labels], classes)
    pos = sorted(i for idx in _sample(list(per_class.values()), limit, seed) for i in idx)
    return LabelledImages([universe[i] for i in pos], [names[raw_labels[i]] for i in pos], classes,
                          universe=list(universe), positions=pos)


def read_labelled_file(
    path: Path, limit: int | None = None, seed: int = 0, mapping: Mapping[str, str] | str | Path | None = None
) -> LabelledImages:
    """Images and labels from a CSV/TSV/JSONL file with a header (columns ``image`` and ``label``). Image paths are
    absolute or relative to the file's folder (or its ``images/`` sub-folder)."""
    fmt = file_format(path, "labelled file", "columns 'image' and 'label'", LABELLED_FORMATS)
    records: list[tuple[int, dict[str, Any]]] = []
    for line, rec in rows_from_file(path, fmt, "labelled file", lower_keys=True):
        if isinstance(rec, str):  # a row that cannot be read: an evaluation set must be right as a whole
            raise InvalidInputError(f"{path} line {line}: {rec}: fix the row (quote fields holding the delimiter)")
        records.append((line, rec))
    if not records:
        raise InvalidInputError(f"labelled file {str(path)!r} has no rows: it needs columns 'image' and 'label'")
    cols = set().union(*(r.keys() for _, r in records))
    icol = next((c for c in IMAGE_COLUMNS if c in cols), None)
    lcol = next((c for c in LABEL_COLUMNS if c in cols), None)
    if icol is None or lcol is None:
        raise InvalidInputError(
            f"labelled file {str(path)!r} has columns {sorted(cols)}: it needs an image column "
            f"({' or '.join(IMAGE_COLUMNS)}) and a label column ({' or '.join(LABEL_COLUMNS)})"
        )
    bases = image_bases(path.parent)
    universe: list[Path] = []
    raw_labels: list[str] = []
    for line, rec in records:
        ref, lab = str(rec.get(icol) or "").strip(), str(rec.get(lcol) or "").strip()
        if not ref or not lab:
            raise InvalidInputError(f"{path} line {line}: the {icol if not ref else lcol} is empty; fill it in")
        found = resolve_image(ref, bases)
        if not found.is_file():
            raise InvalidInputError(
                f"{path} line {line}: image {ref!r} does not exist (looked in {', '.join(str(b) for b in bases)}): "
                "fix the path or remove the row"
            )
        universe.append(found)
        raw_labels.append(lab)
    raw_classes = sorted(set(raw_labels))
    names = _class_namer(raw_classes, _resolve_map(mapping), str(path))
    return _labelled(universe, raw_labels, raw_classes, names, limit, seed)


def read_labelled(
    source: str | Path, mapping: Mapping[str, str] | str | Path | None = None, limit: int | None = None,
    seed: int = 0,
) -> LabelledImages:
    """Labelled images from a folder per class or a CSV/TSV/JSONL file of (image, label).

    Class names are the folder names (or label values) with ``_`` read as a space; ``mapping`` (a dict, or a JSON /
    two-column CSV/TSV file) renames raw names to class names. With ``limit``, a class-balanced seeded sample.
    """
    p = Path(source).expanduser()
    if p.is_dir():
        return read_folder_per_class(p, limit, seed, mapping)
    if p.is_file():
        return read_labelled_file(p, limit, seed, mapping)
    raise NotFoundError(
        f"evaluation source {str(p)!r} does not exist: give a folder with one sub-folder per class, or a "
        "CSV/TSV/JSONL file with columns image and label"
    )


def _eval_cache_file(asif: Asif, paths: Sequence[Path]) -> Path:
    h = hashlib.sha256(asif.fingerprint.image_encoder.encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return asif.settings.resolved_cache_dir / "eval" / f"{h.hexdigest()[:24]}.npy"


def cached_image_vectors(asif: Asif, paths: Sequence[Path], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Image embeddings of ``paths`` with the store's encoder, cached on disk per (encoder, file list)."""
    cache = _eval_cache_file(asif, paths)
    if cache.exists():
        arr = np.load(cache)
        if arr.shape[0] == len(paths):
            return arr
    with progress_bar(len(paths), "encoding images", progress) as bar:
        arr = asif.embedder().images(paths, batch=batch_size, progress=bar).vectors.astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(cache)
    return arr


def labelled_vectors(asif: Asif, data: LabelledImages, progress: bool = True) -> np.ndarray:
    """Embeddings of ``data``'s images: sliced from the full source's cached embeddings when they exist (a sample
    then costs no encoding), else encoded (and cached) for this list."""
    if data.universe is not None and data.positions is not None:
        cache = _eval_cache_file(asif, data.universe)
        if cache.exists():
            arr = np.load(cache)
            if arr.shape[0] == len(data.universe):
                return arr[np.asarray(data.positions, np.int64)]
    return cached_image_vectors(asif, data.paths, progress=progress)


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
        for t, p, n in self.confusions:
            lines.append(f"  {t} -> {p}: {n}")
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
    mapping: Mapping[str, str] | str | Path | None = None,
) -> EvalReport:
    """Top-1/top-5 accuracy, per-class accuracy and confusions of a label set on labelled images (a folder per
    class, or a CSV/TSV/JSONL of image and label; ``mapping`` renames raw class names)."""
    data = read_labelled(folder, mapping, limit)
    info = asif.index_info(labels, validate_tenant(tenant or None), "labels")  # up to date with the anchors
    missing = sorted(set(data.labels) - set(info.classes))
    if missing:
        raise InvalidInputError(
            f"classes {missing} of {folder} are not in label set {labels!r} ({info.classes}): "
            "define the label set with the folder names (underscores read as spaces), or map them with a class map"
        )
    vecs = labelled_vectors(asif, data, progress=progress)
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
    unknown: float = 0.0
    n: int = 0
    correction: str = "none"

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))
