"""Validated autotuning of a label set: choose k, p, templates and aggregation on a validation split only.

The labelled images are split per class (seeded, deterministic) into a validation and a test part. The choice
is made by :func:`tune_vectors`, which receives the validation vectors and labels and nothing else; only then are
the default settings and the chosen ones scored on the test part, which gives an honest estimate of the gain.
The choice is stored by redefining the label set with the same classes (its prompt vectors are reused, so no
text is re-encoded); a stored abstention threshold tau is cleared, because it was calibrated for other settings.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, InvalidInputError
from ..meta import validate_tenant
from ..relindex import IndexInfo
from .evaluate import SweepRow, labelled_vectors, read_labelled
from .sweeps import (
    Setting,
    check_sweeps,
    grid,
    prompt_sets,
    require_label_set,
    sweep_settings,
    template_set_name,
)

if TYPE_CHECKING:
    from ..asif import Asif

DEFAULT_GRID: dict[str, list[Any]] = {
    "k": [200, 400, 800, 1600, 3000],
    "p": [1.0, 2.0, 4.0, 8.0, 16.0],
    "templates": ["photo", "plain"],
    "aggregation": ["max", "mean"],
    "correction": ["none", "mean", "zscore"],
}


@dataclass
class LabelledVectors:
    """Image vectors and their true class names: one split of an evaluation set."""

    vectors: np.ndarray
    truth: list[str]

    def __len__(self) -> int:
        return len(self.truth)

    def take(self, idx: np.ndarray) -> LabelledVectors:
        return LabelledVectors(self.vectors[idx], [self.truth[i] for i in idx.tolist()])


def split_per_class(truth: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic per-class split: (validation indices, test indices), each sorted. Each class puts
    ``round(val_fraction * n)`` of its images in validation (at least 1, and at least 1 in test when n >= 2)."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction!r} is invalid: give a fraction strictly between 0 and 1")
    t = np.asarray(list(truth), dtype=object)
    rng = np.random.default_rng(seed)
    val: list[int] = []
    test: list[int] = []
    for c in sorted(set(t.tolist())):
        idx = rng.permutation(np.flatnonzero(t == c))
        n_val = min(max(1, round(val_fraction * idx.size)), max(1, idx.size - 1))
        val.extend(idx[:n_val].tolist())
        test.extend(idx[n_val:].tolist())
    return np.array(sorted(val), np.int64), np.array(sorted(test), np.int64)


def default_setting(asif: Asif) -> Setting:
    """The settings a label set gets when nothing is chosen: ASIF_K, ASIF_P, photo templates, max, the default
    correction."""
    return Setting(int(asif.settings.k), float(asif.settings.p), "photo", "max", asif.settings.correction)


def _rank_key(row: SweepRow, default: Setting) -> tuple[Any, ...]:
    """Best first: higher top-1, then higher top-5, then the default settings, then smaller k and p."""
    is_default = _setting(row) == default
    return (-row.top1, -row.top5, not is_default, row.k, row.p, row.templates, row.aggregation, row.correction)


def _setting(row: SweepRow) -> Setting:
    return Setting(row.k, row.p, row.templates, row.aggregation, row.correction)


@dataclass
class TuneResult:
    """The setting chosen on the validation split, and every setting's validation figures (best first)."""

    best: Setting
    rows: list[SweepRow]


def tune_vectors(
    asif: Asif,
    val: LabelledVectors,
    classes: Sequence[str],
    settings: Sequence[Setting],
    *,
    default: Setting,
    prompt_vectors: Mapping[str, np.ndarray] | None = None,
    info: IndexInfo | None = None,
    tenant: str | None = None,
) -> TuneResult:
    """Choose among ``settings`` on validation vectors and labels only (top-1, then top-5; ties go to ``default``)."""
    if len(val) == 0:
        raise InvalidInputError("the validation split is empty: give more images or a larger val_fraction")
    rows = sweep_settings(asif, val.vectors, val.truth, classes, settings, prompt_vectors=prompt_vectors, info=info,
                          tenant=tenant)
    rows.sort(key=lambda r: _rank_key(r, default))
    b = rows[0]
    return TuneResult(_setting(b), rows)


@dataclass
class TuneReport:
    labels: str
    tenant: str
    val_fraction: float
    seed: int
    n_val: int
    n_test: int
    default: Setting
    tuned: Setting
    val_default: SweepRow
    val_tuned: SweepRow
    test_default: SweepRow
    test_tuned: SweepRow
    val_rows: list[SweepRow] = field(default_factory=list)
    previous: Setting | None = None
    stored: bool = False
    stored_in: str | None = None
    tau_cleared: float | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "val_rows"}
        d["val_rows"] = [r.as_dict() for r in self.val_rows]
        d["gain_test_top1"] = self.test_tuned.top1 - self.test_default.top1
        return d

    def table(self) -> str:
        def st(s: Setting) -> str:
            return f"k={s.k} p={s.p:g} templates={s.templates} aggregation={s.aggregation} correction={s.correction}"

        lines = [f"label set {self.labels!r} (tenant {self.tenant}): {len(self.val_rows)} settings tried on "
                 f"{self.n_val} validation images (val_fraction {self.val_fraction:g}, seed {self.seed}); "
                 f"test images: {self.n_test} (never seen while tuning); {self.seconds:.0f} s"]
        lines.append(f"{'':<9} {'setting':<52} {'val top-1':>9} {'test top-1':>10} {'test top-5':>10}")
        for name, s, v, t in (("default", self.default, self.val_default, self.test_default),
                              ("tuned", self.tuned, self.val_tuned, self.test_tuned)):
            lines.append(f"{name:<9} {st(s):<52} {v.top1:>9.4f} {t.top1:>10.4f} {t.top5:>10.4f}")
        lines.append(f"gain on the test split: {self.test_tuned.top1 - self.test_default.top1:+.4f} top-1")
        lines.append("best validation settings:")
        for r in self.val_rows[:5]:
            lines.append(f"  k={r.k:<5} p={r.p:<4g} {r.templates:<8} {r.aggregation:<5} {r.correction:<6} "
                         f"top-1 {r.top1:.4f}  top-5 {r.top5:.4f}")
        if self.stored:
            lines.append(f"stored with {self.stored_in}: {st(self.tuned)}"
                         + (f" (its tau {self.tau_cleared:.4g} was cleared: calibrate again)"
                            if self.tau_cleared is not None else ""))
        else:
            lines.append("not stored (dry run)")
        return "\n".join(lines)


def tune_split(
    asif: Asif,
    val: LabelledVectors,
    test: LabelledVectors,
    classes: Sequence[str],
    settings: Sequence[Setting],
    *,
    default: Setting,
    prompt_vectors: Mapping[str, np.ndarray] | None = None,
    info: IndexInfo | None = None,
    tenant: str | None = None,
) -> tuple[TuneResult, list[SweepRow]]:
    """Tune on ``val`` (the test split is not passed to the tuner), then score default and chosen on ``test``.
    Returns the tuning result and the test rows [default, tuned]."""
    grid_settings = list(dict.fromkeys([*settings, default]))
    choice = tune_vectors(asif, val, classes, grid_settings, default=default, prompt_vectors=prompt_vectors,
                          info=info, tenant=tenant)
    # the choice is fixed: only now is the test split read
    test_settings = [default, choice.best]
    if len(test) == 0:
        raise InvalidInputError("the test split is empty: give more images or a smaller val_fraction")
    rows = sweep_settings(asif, test.vectors, test.truth, classes, test_settings, prompt_vectors=prompt_vectors,
                          info=info, tenant=tenant)
    return choice, rows


def tune(
    asif: Asif,
    source: str | Path,
    labels: str,
    *,
    val_fraction: float = 0.5,
    seed: int = 0,
    sweeps: Mapping[str, Sequence[Any]] | None = None,
    mapping: Mapping[str, str] | str | Path | None = None,
    limit: int | None = None,
    tenant: str | None = None,
    save: bool = True,
    progress: bool = True,
) -> TuneReport:
    """Choose k, p, templates and aggregation of label set ``labels`` on a validation split of labelled images,
    store the choice with the label set (unless ``save=False``) and report default vs tuned on the test split.

    ``sweeps``: the grid (keys k, p, templates, aggregation), each key defaulting to DEFAULT_GRID's values.
    """
    t0 = time.perf_counter()
    t = validate_tenant(tenant)
    axes = {**DEFAULT_GRID, **check_sweeps(sweeps or {})}
    data = read_labelled(source, mapping, limit)
    info = require_label_set(asif, labels, t, data.labels, source)
    default = default_setting(asif)
    settings = grid(axes)
    vecs = labelled_vectors(asif, data, progress=progress)
    val_idx, test_idx = split_per_class(data.labels, val_fraction, seed)
    everything = LabelledVectors(vecs, list(data.labels))
    names = dict.fromkeys([*(s.templates for s in settings), default.templates])
    prompts = prompt_sets(asif, info.classes, names, None, info)
    pv = {n: v for n, (_, v) in prompts.items()}
    choice, test_rows = tune_split(asif, everything.take(val_idx), everything.take(test_idx), info.classes,
                                   settings, default=default, prompt_vectors=pv, info=info, tenant=t)
    by_setting = {_setting(r): r for r in choice.rows}
    report = TuneReport(
        labels, t, val_fraction, seed, int(val_idx.size), int(test_idx.size), default, choice.best,
        by_setting[default], by_setting[choice.best], test_rows[0], test_rows[1], choice.rows,
        previous=Setting(info.k, info.p, template_set_name(info.templates), info.aggregation, info.correction),
    )
    if save:
        best = choice.best
        tpl = prompts[best.templates][0]
        new = asif.define_labels(labels, info.classes, templates=tpl, prompt_vectors=pv[best.templates], tenant=t,
                                 k=best.k, p=best.p, aggregation=best.aggregation, correction=best.correction,
                                 replace=True)
        asif.annotate_index(new.name, new.tenant, "labels", extra={"tuned": {
            "setting": best.as_dict(), "val_top1": report.val_tuned.top1, "test_top1": report.test_tuned.top1,
            "default_test_top1": report.test_default.top1, "val_fraction": val_fraction, "seed": seed,
            "n_val": report.n_val, "n_test": report.n_test, "source": str(source), "at": time.time()}})
        report.stored, report.stored_in = True, f"{new.tenant}/{new.name}"
        report.tau_cleared = info.tau if info.tenant == t else None
    report.seconds = time.perf_counter() - t0
    return report
