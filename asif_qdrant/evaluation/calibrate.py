"""Abstention: choose the threshold tau of a label set on labelled images, store it, and report its cost.

Below tau the model answers "unknown" instead of its best label. Following the ASIF paper, an operating point
is reported as three fractions of ALL images that add up to 1: **accuracy** (answered and correct),
**unknown** (abstained: best score below tau, or no shared anchor at all) and **wrong** (answered, incorrect).
The risk-coverage curve shows every choice at once: coverage = answered / all, risk = wrong / answered.

tau is chosen either for a target precision (the smallest tau whose answers reach it: the most coverage that
keeps the precision) or for a target coverage (the largest tau that still answers that fraction). With
``split``, the images are cut 50/50 per class (seeded): tau is always chosen on the "calibration" half and the
figures are reported on the half named by ``split`` ("heldout" gives an honest estimate).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ConfigError, InvalidInputError
from ..extras import require
from ..meta import validate_tenant
from .evaluate import cached_image_vectors, read_folder_per_class

if TYPE_CHECKING:
    from ..asif import Asif
    from ..relindex import IndexInfo

Split = Literal["calibration", "heldout"]
SPLITS = ("calibration", "heldout")
CLASSIFY_CHUNK = 256


@dataclass
class RiskPoint:
    """One threshold of the risk-coverage curve: answer when the best score >= tau."""

    tau: float
    coverage: float  # answered / all images
    risk: float  # wrong / answered


@dataclass
class OperatingPoint:
    """The figures of one tau on a set of images (fractions of all of them; accuracy+unknown+wrong = 1)."""

    n: int
    accuracy: float
    unknown: float
    wrong: float
    coverage: float
    precision: float  # correct / answered (0 when nothing is answered)


@dataclass
class CalibrationReport:
    """The tau chosen (or evaluated), where it was stored, and its figures on the reported images."""

    labels: str
    tenant: str
    tau: float | None
    target: str  # "precision", "coverage", "tau" (a given tau) or "stored" (the label set's current tau)
    target_value: float | None
    split: str | None
    n: int  # images reported on
    n_calibration: int  # images tau was chosen on (0 when tau was given)
    accuracy: float
    unknown: float
    wrong: float
    coverage: float
    precision: float
    calibration: OperatingPoint | None = None  # the figures on the images tau was chosen on
    curve: list[RiskPoint] = field(default_factory=list)  # on the reported images
    stored: bool = False
    stored_in: str | None = None  # "<tenant>/<label set>" whose tau was set
    plot: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["curve"] = [asdict(c) for c in self.curve]
        return d

    def table(self) -> str:
        tau = "none (never abstain)" if self.tau is None else f"{self.tau:.6g}"
        what = {
            "precision": f"chosen for precision >= {self.target_value}",
            "coverage": f"chosen for coverage >= {self.target_value}",
            "tau": "given",
            "stored": "the label set's stored tau",
        }[self.target]
        on = f" on the {self.split} half" if self.split else ""
        lines = [f"label set {self.labels!r} (tenant {self.tenant}): tau = {tau} ({what})"]
        if self.calibration is not None and self.n_calibration:
            c = self.calibration
            lines.append(f"calibration images: {self.n_calibration}   precision {c.precision:.4f}   "
                         f"coverage {c.coverage:.4f}")
        lines.append(f"images{on}: {self.n}")
        lines.append(f"  accuracy {self.accuracy:.4f}   unknown {self.unknown:.4f}   wrong {self.wrong:.4f}")
        lines.append(f"  precision among answered {self.precision:.4f}   coverage {self.coverage:.4f}")
        if self.stored:
            lines.append(f"stored tau with {self.stored_in}: classify now answers unknown below it")
        if self.plot:
            lines.append(f"risk-coverage plot: {self.plot}")
        return "\n".join(lines)


# -- pure numpy --------------------------------------------------------------------------------
def _answered(scores: np.ndarray, answerable: np.ndarray, tau: float | None) -> np.ndarray:
    return answerable if tau is None else answerable & (scores >= tau)


def operating_point(
    scores: np.ndarray, correct: np.ndarray, answerable: np.ndarray, tau: float | None
) -> OperatingPoint:
    """Accuracy / unknown / wrong (fractions of all), coverage and precision when answering at ``tau``.

    ``answerable``: the image has a best label (it shares an anchor with some prompt); ``correct``: that label
    is its true class; ``scores``: its best score.
    """
    n = int(scores.size)
    if n == 0:
        return OperatingPoint(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    ans = _answered(scores, answerable, tau)
    n_ans = int(ans.sum())
    n_ok = int((ans & correct).sum())
    return OperatingPoint(
        n, n_ok / n, (n - n_ans) / n, (n_ans - n_ok) / n, n_ans / n, n_ok / n_ans if n_ans else 0.0
    )


def risk_coverage(scores: np.ndarray, correct: np.ndarray, answerable: np.ndarray) -> list[RiskPoint]:
    """Every distinct threshold (the answerable scores), highest first, with its coverage and risk."""
    n = int(scores.size)
    s = scores[answerable]
    ok = correct[answerable]
    if s.size == 0:
        return []
    order = np.argsort(-s, kind="stable")
    s, ok = s[order], ok[order]
    n_ans = np.arange(1, s.size + 1)
    n_ok = np.cumsum(ok)
    last = np.r_[s[1:] != s[:-1], True]  # the last of each run of equal scores: tau = that score answers all
    return [
        RiskPoint(float(s[i]), float(n_ans[i] / n), float(1 - n_ok[i] / n_ans[i]))
        for i in np.flatnonzero(last)
    ]


def choose_tau(
    scores: np.ndarray,
    correct: np.ndarray,
    answerable: np.ndarray,
    *,
    target_precision: float | None = None,
    target_coverage: float | None = None,
) -> float:
    """The smallest tau whose answers reach ``target_precision``, or the largest tau that answers at least
    ``target_coverage`` of all images. Raises ConfigError when the target cannot be reached on these images."""
    curve = risk_coverage(scores, correct, answerable)
    if not curve:
        raise InvalidInputError(
            "no calibration image shares an anchor with any prompt of the label set, so there is no score to "
            "threshold: add anchors that resemble these images, or raise k"
        )
    if target_precision is not None:
        ok = [c for c in curve if 1 - c.risk >= target_precision - 1e-12]
        if not ok:
            best = max(curve, key=lambda c: (1 - c.risk, c.coverage))
            raise ConfigError(
                f"target precision {target_precision:g} is not reachable on these {scores.size} images: the best "
                f"is {1 - best.risk:.4f} (coverage {best.coverage:.4f} at tau={best.tau:.6g}); lower the target "
                "precision, or add anchors"
            )
        return min(c.tau for c in ok)
    assert target_coverage is not None
    n = int(scores.size)
    need = math.ceil(round(target_coverage * n, 9))
    s = np.sort(scores[answerable])[::-1]
    if need > s.size:
        raise ConfigError(
            f"target coverage {target_coverage:g} is not reachable on these {n} images: only {s.size / n:.4f} of "
            "them share an anchor with a prompt (the rest are always unknown); lower the target coverage, "
            "or add anchors"
        )
    return float(s[max(need, 1) - 1])


def split_halves(truth: Sequence[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic 50/50 split per class: (calibration indices, held-out indices), each sorted.
    A class with an odd count puts the extra image in the calibration half."""
    t = np.asarray(list(truth), dtype=object)
    rng = np.random.default_rng(seed)
    cal: list[int] = []
    held: list[int] = []
    for c in sorted(set(t.tolist())):
        idx = rng.permutation(np.flatnonzero(t == c))
        half = (idx.size + 1) // 2
        cal.extend(idx[:half].tolist())
        held.extend(idx[half:].tolist())
    return np.array(sorted(cal), np.int64), np.array(sorted(held), np.int64)


def plot_risk_coverage(
    curves: dict[str, list[RiskPoint]], path: str | Path, chosen: OperatingPoint | None = None, title: str = ""
) -> Path:
    """Write the risk-coverage curve(s) as a PNG; mark the chosen operating point."""
    require("matplotlib", "eval", "plotting (or leave out the plot)").use("Agg")
    import matplotlib.pyplot as plt
    out = Path(path)
    if not out.parent.exists():
        raise InvalidInputError(f"folder {str(out.parent)!r} does not exist: create it, or write the plot elsewhere")
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for name, pts in curves.items():
        if pts:
            ax.step([0.0] + [p.coverage for p in pts], [pts[0].risk] + [p.risk for p in pts], where="post",
                    label=f"{name} ({len(pts)} thresholds)")
    if chosen is not None and chosen.coverage > 0:
        ax.scatter([chosen.coverage], [1 - chosen.precision], color="crimson", zorder=3,
                   label=f"tau: coverage {chosen.coverage:.2f}, risk {1 - chosen.precision:.2f}")
    ax.set_xlabel("coverage (answered / all images)")
    ax.set_ylabel("risk (wrong / answered)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or "risk-coverage")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


# -- with a store ------------------------------------------------------------------------------
def _check_targets(target_precision: float | None, target_coverage: float | None, tau: float | None) -> None:
    given = [n for n, v in (("target_precision", target_precision), ("target_coverage", target_coverage),
                            ("tau", tau)) if v is not None]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} were both given: pass one of target_precision, target_coverage "
                          "or tau")
    for name, v in (("target_precision", target_precision), ("target_coverage", target_coverage)):
        if v is not None and not (isinstance(v, (int, float)) and 0 < v <= 1):
            raise ConfigError(f"{name}={v!r} is invalid: give a fraction in (0, 1], for example 0.9")
    if tau is not None and not (isinstance(tau, (int, float)) and math.isfinite(tau)):
        raise ConfigError(f"tau={tau!r} is invalid: give a finite number (label scores lie in [0, 1])")


def _check_classes(info: IndexInfo, truth: Sequence[str], labels: str) -> None:
    missing = sorted(set(truth) - set(info.classes))
    if missing:
        raise InvalidInputError(
            f"true classes {missing[:5]} are not in label set {labels!r} ({', '.join(info.classes[:10])}): "
            "define the label set with these class names (folder names: underscores read as spaces)"
        )


def best_scores(
    asif: Asif, vectors: Any, labels: str, tenant: str
) -> tuple[np.ndarray, list[str | None]]:
    """Each image's best label and score with abstention disabled (label None: no shared anchor)."""
    arr = np.asarray(vectors)
    scores: list[float] = []
    preds: list[str | None] = []
    for start in range(0, arr.shape[0], CLASSIFY_CHUNK):
        for p in asif.classify(vectors=arr[start : start + CLASSIFY_CHUNK], labels=labels, top=1, tenant=tenant,
                               tau=float("-inf")):
            scores.append(float(p.score) if p.label is not None else 0.0)
            preds.append(p.label)
    return np.asarray(scores, np.float64), preds


def store_tau(asif: Asif, labels: str, tenant: str, tau: float, record: dict[str, Any]) -> IndexInfo:
    """Set the tau of the label set that answers for ``tenant``. A label set defined for all tenants gets a
    tenant copy first, so that one tenant's calibration never changes another tenant's answers."""
    return asif.annotate_index(labels, tenant, "labels", extra={"calibration": record}, tau=float(tau))


def _check_inputs(info: Any, vectors: Any, truth: Sequence[str], labels: str, split: Split | None) -> None:
    """The split's name, one true class of the label set per vector row, at least one image."""
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split={split!r} is invalid: use 'calibration' or 'heldout' (or leave it out)")
    _check_classes(info, truth, labels)
    n_vec = int(np.asarray(vectors).shape[0]) if np.ndim(vectors) == 2 else -1
    if n_vec != len(truth):
        raise InvalidInputError(
            f"got {n_vec if n_vec >= 0 else np.shape(vectors)} image vectors for {len(truth)} true labels: "
            "pass a (n, dim) array and one true class per row"
        )
    if not truth:
        raise InvalidInputError("no labelled images: give at least one image per class")


def _halves(truth: Sequence[str], split: Split | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices tau is chosen on, indices reported on): all images without a split, else the seeded halves."""
    everything = np.arange(len(truth))
    if split is None:
        return everything, everything
    cal_idx, held_idx = split_halves(truth, seed)
    rep_idx = cal_idx if split == "calibration" else held_idx
    if rep_idx.size == 0:
        raise InvalidInputError(f"the {split} half is empty ({len(truth)} images): give at least two images per class")
    return cal_idx, rep_idx


def calibrate_vectors(
    asif: Asif,
    vectors: Any,
    truth: Sequence[str],
    labels: str,
    *,
    target_precision: float | None = None,
    target_coverage: float | None = None,
    tau: float | None = None,
    tenant: str | None = None,
    split: Split | None = None,
    seed: int = 0,
    plot: str | Path | None = None,
    save: bool = True,
) -> CalibrationReport:
    """Choose tau for ``labels`` on image ``vectors`` with true classes ``truth``, store it (``save``), report.

    Exactly one of ``target_precision`` / ``target_coverage`` chooses tau; or ``tau`` evaluates a given one
    (nothing stored); with none of them, the label set's stored tau is evaluated. ``split``: choose on the
    "calibration" half (50/50 per class, seeded) and report on the "calibration" or the "heldout" half.
    """
    _check_targets(target_precision, target_coverage, tau)
    tenant = validate_tenant(tenant)
    truth = [str(t) for t in truth]
    info = asif.index_info(labels, tenant, "labels")
    _check_inputs(info, vectors, truth, labels, split)
    scores, preds = best_scores(asif, vectors, labels, tenant)
    answerable = np.array([p is not None for p in preds])
    correct = np.array([p == t for p, t in zip(preds, truth, strict=True)])
    cal_idx, rep_idx = _halves(truth, split, seed)

    def sub(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return scores[idx], correct[idx], answerable[idx]

    stored = False
    stored_in = None
    n_cal = 0
    target_value: float | None
    if target_precision is not None or target_coverage is not None:
        target = "precision" if target_precision is not None else "coverage"
        target_value = float(target_precision if target_precision is not None else target_coverage)  # type: ignore[arg-type]
        chosen: float | None = choose_tau(*sub(cal_idx), target_precision=target_precision,
                                          target_coverage=target_coverage)
        n_cal = int(cal_idx.size)
    elif tau is not None:
        target, target_value, chosen = "tau", float(tau), float(tau)
    else:
        target, target_value, chosen = "stored", None, info.tau
    cal_point = operating_point(*sub(cal_idx), chosen) if n_cal else None
    point = operating_point(*sub(rep_idx), chosen)

    if save and target in ("precision", "coverage"):
        assert chosen is not None and cal_point is not None
        record = {"target": target, "value": target_value, "split": split, "seed": seed, "n": n_cal,
                  "precision": cal_point.precision, "coverage": cal_point.coverage, "at": time.time()}
        saved = store_tau(asif, labels, tenant, chosen, record)
        stored, stored_in = True, f"{saved.tenant}/{saved.name}"

    curve = risk_coverage(*sub(rep_idx))
    plot_path = None
    if plot is not None:
        curves = {"calibration half" if split else "all images": risk_coverage(*sub(cal_idx))}
        if split == "heldout":
            curves["held-out half"] = curve
        plot_path = str(plot_risk_coverage(curves, plot, point, f"risk-coverage: {labels} ({tenant})"))
    return CalibrationReport(
        labels=labels, tenant=tenant, tau=chosen, target=target, target_value=target_value, split=split,
        n=point.n, n_calibration=n_cal, accuracy=point.accuracy, unknown=point.unknown, wrong=point.wrong,
        coverage=point.coverage, precision=point.precision, calibration=cal_point, curve=curve, stored=stored,
        stored_in=stored_in, plot=plot_path,
    )


def calibrate(
    asif: Asif,
    folder: str | Path,
    labels: str,
    *,
    target_precision: float | None = None,
    target_coverage: float | None = None,
    tau: float | None = None,
    tenant: str | None = None,
    limit: int | None = None,
    split: Split | None = None,
    seed: int = 0,
    plot: str | Path | None = None,
    save: bool = True,
    progress: bool = True,
) -> CalibrationReport:
    """:func:`calibrate_vectors` on a labelled folder (one sub-folder per class; image embeddings cached)."""
    data = read_folder_per_class(Path(folder), limit)
    _check_classes(asif.index_info(labels, validate_tenant(tenant), "labels"), data.labels, labels)
    vecs = cached_image_vectors(asif, data.paths, progress=progress)
    return asif.exclusive(  # chosen and stored whole, like an edit (readers see the old tau or the new one)
        calibrate_vectors, asif, vecs, data.labels, labels, target_precision=target_precision,
        target_coverage=target_coverage, tau=tau, tenant=tenant, split=split, seed=seed, plot=plot, save=save,
    )


__all__ = [
    "CalibrationReport",
    "RiskPoint",
    "OperatingPoint",
    "calibrate",
    "calibrate_vectors",
    "choose_tau",
    "operating_point",
    "plot_risk_coverage",
    "risk_coverage",
    "split_halves",
]
