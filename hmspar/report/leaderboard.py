"""The evaluate stage's library: collect every run output under ``results/``, recompute test metrics, rank models.

Every ``metrics.json`` found under the results directory (``results/hmspar/<run>/seed<k>/``,
``results/baselines/<dataset>/<model>/<run>/seed<k>/``, ``results/ablation/<variant>/<run>/seed<k>/``, ...)
is one *seed result*; it must sit next to its ``predictions.csv`` (see ``DESIGN.md``, "Run outputs").
Seed results are grouped by ``(run, model)`` as written in ``metrics.json``. Test metrics are
recomputed here from ``predictions.csv`` with scikit-learn, at the threshold stored in ``metrics.json``
(chosen on validation by the training code), so the leaderboard never trusts numbers it cannot check.

:func:`hmspar.report.evaluate.evaluate` runs the whole stage on top of this module (the report package is
one-way: ``leaderboard`` (data, tables) <- ``bootstrap``, ``plots``, ``results_table`` <- ``evaluate``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.errors import HmsparError
from hmspar.io import read_json
from hmspar.report.page import ReportConfig

#: Test metrics of every leaderboard row, in display order.
METRICS = ("roc_auc", "auprc", "f1", "precision", "recall", "accuracy", "balanced_accuracy", "accuracy_at_0.5",
           "brier")

#: Name under which the HMSPAR model itself appears in ``metrics.json``.
HMSPAR = "hmspar"

_REQUIRED_METRICS_KEYS = ("model", "run", "dataset", "task", "seed")

THRESHOLD_RULE = (
    "binary tasks: predicted positive when prob >= threshold, the threshold stored in metrics.json "
    "(chosen by max F1 on the validation split, or on out-of-fold training predictions when the run was "
    "selected by k-fold: the row's threshold_source says which); accuracy_at_0.5 is the accuracy at "
    "threshold 0.5; multi-class tasks: argmax (accuracy_at_0.5 = accuracy), macro-averaged "
    "F1/precision/recall, balanced accuracy = mean recall over the classes, one-vs-rest macro ROC-AUC and "
    "AUPRC, Brier = mean over entities of the summed squared error over classes. A row flagged "
    "constant_prediction predicted a single class for every test entity in at least one seed"
)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """``params.yaml: evaluate`` — settings of the evaluate stage.

    Attributes
    ----------
    bootstrap_samples : int
        Paired bootstrap resamples of the test entities per run (significance of HMSPAR vs the best baseline).
    confidence : float
        Two-sided confidence level of the bootstrap percentile interval, in (0, 1).
    seed : int
        Seed of the bootstrap generator (combined with the run name, so each run has its own stream).
    headline_digits : int
        Decimals kept in ``metrics/headline.json`` (its means over runs).
    table_digits : int
        Decimals shown in the results table (``metrics/results_table.md``).
    curve_points : int
        Maximum number of points per model in the ROC and PR plot data.
    report : ReportConfig
        ``evaluate.report``: the report page ``report/index.html`` (:mod:`hmspar.report.page`, the ``report`` stage).
    """

    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    headline_digits: int = 4
    table_digits: int = 3
    curve_points: int = 200
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        checks = (
            ("bootstrap_samples", self.bootstrap_samples >= 1, "must be at least 1"),
            ("confidence", 0.0 < self.confidence < 1.0, "must lie strictly between 0 and 1"),
            ("headline_digits", 0 <= self.headline_digits <= 12, "must be between 0 and 12"),
            ("table_digits", 0 <= self.table_digits <= 12, "must be between 0 and 12"),
            ("curve_points", self.curve_points >= 2, "must be at least 2"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise HmsparError(f"evaluate.{name}: {rule}, got {getattr(self, name)!r}")


@dataclasses.dataclass
class SeedResult:
    """One model on one run with one seed: its ``metrics.json`` fields and its test predictions.

    Test rows are sorted by ``id`` so that every model of a run lists the same entities in the same order.
    ``prob`` is (n,) for binary tasks (probability of class 1) and (n, K) for multi-class tasks.
    """

    folder: Path
    model: str
    run: str
    dataset: str
    task: str
    group: str | None
    seed: int
    inputs: list[str]
    threshold: float | None
    ids: np.ndarray
    y: np.ndarray
    prob: np.ndarray
    threshold_source: str | None = None
    selection: str | None = None

    @property
    def multiclass(self) -> bool:
        return self.prob.ndim == 2


def is_hmspar(model: str) -> bool:
    """True for HMSPAR itself (``hmspar``) and its modality-ablation variants (``hmspar[series+text]``)."""
    return model == HMSPAR or (model.startswith(HMSPAR + "[") and model.endswith("]"))


# --------------------------------------------------------------------------------------------------
# Reading run outputs.


def _read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(ids, y, prob)`` of the test rows of ``predictions.csv``, sorted by id."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={"id": str, "split": str})
    except (OSError, ValueError) as exc:
        raise HmsparError(f"{path}: cannot be read as CSV: {exc}") from None
    missing = [c for c in ("id", "split", "y_true") if c not in frame.columns]
    if missing:
        raise HmsparError(f"{path}: missing column {missing[0]!r} (expected id, split, y_true, prob or prob_<k>)")
    bad_split = sorted(set(frame["split"].astype(str)) - {"oof", "val", "test"})
    if bad_split:
        raise HmsparError(f"{path}: unknown split value {bad_split[0]!r} (expected oof, val or test)")
    test = frame[frame["split"] == "test"]
    if test.empty:
        raise HmsparError(f"{path}: no test rows")
    if test["id"].duplicated().any():
        raise HmsparError(f"{path}: duplicate test id {test.loc[test['id'].duplicated(), 'id'].iloc[0]!r}")
    class_cols = sorted((c for c in frame.columns if c.startswith("prob_") and c[5:].isdigit()),
                        key=lambda c: int(c[5:]))
    if "prob" in frame.columns:
        prob_cols = ["prob"]
    elif class_cols:
        if [int(c[5:]) for c in class_cols] != list(range(len(class_cols))) or len(class_cols) < 2:
            raise HmsparError(f"{path}: class probability columns must be prob_0 .. prob_<K-1>, got {class_cols}")
        prob_cols = class_cols
    else:
        raise HmsparError(f"{path}: missing column 'prob' (or prob_<k> per class)")
    test = test.sort_values("id", kind="mergesort")
    try:
        y = test["y_true"].to_numpy(dtype=np.float64)
        prob = test[prob_cols].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise HmsparError(f"{path}: non-numeric y_true or probability: {exc}") from None
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)) or y.min() < 0:
        raise HmsparError(f"{path}: y_true must hold non-negative integer class labels")
    if not np.all(np.isfinite(prob)) or prob.min() < 0.0 or prob.max() > 1.0:
        raise HmsparError(f"{path}: probabilities must be finite and within [0, 1]")
    y = y.astype(np.int64)
    if len(prob_cols) == 1:
        prob = prob[:, 0]
        if y.max() > 1:
            raise HmsparError(f"{path}: y_true has labels above 1 but only one 'prob' column")
    elif y.max() >= prob.shape[1]:
        raise HmsparError(f"{path}: y_true label {int(y.max())} has no prob_{int(y.max())} column")
    return test["id"].to_numpy(dtype=str), y, prob


def _load_seed_result(metrics_path: Path) -> SeedResult:
    folder = metrics_path.parent
    try:
        meta = read_json(metrics_path)
    except (OSError, ValueError) as exc:
        raise HmsparError(f"{metrics_path}: cannot be read as JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise HmsparError(f"{metrics_path}: expected a JSON object")
    for key in _REQUIRED_METRICS_KEYS:
        if key not in meta:
            raise HmsparError(f"{metrics_path}: missing field {key!r}")
    seed = meta["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise HmsparError(f"{metrics_path}: field 'seed' must be an integer, got {seed!r}")
    threshold = meta.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold)):
        raise HmsparError(f"{metrics_path}: field 'threshold' must be a number or null, got {threshold!r}")
    inputs = meta.get("inputs") or []
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise HmsparError(f"{metrics_path}: field 'inputs' must be a list of modality names")
    pred_path = folder / "predictions.csv"
    if not pred_path.exists():
        raise HmsparError(f"{pred_path}: missing (it must sit next to {metrics_path.name})")
    ids, y, prob = _read_predictions(pred_path)
    if prob.ndim == 1 and threshold is None:
        raise HmsparError(f"{metrics_path}: binary task but field 'threshold' is null")
    return SeedResult(folder=folder, model=str(meta["model"]), run=str(meta["run"]), dataset=str(meta["dataset"]),
                      task=str(meta["task"]), group=None if meta.get("group") is None else str(meta["group"]),
                      seed=seed, inputs=list(inputs), threshold=None if threshold is None else float(threshold),
                      ids=ids, y=y, prob=prob, threshold_source=meta.get("threshold_source"),
                      selection=(meta.get("selection") or {}).get("regime"))


def discover_results(results_dir: str | os.PathLike, folders: Sequence[str] | None = None) -> list[SeedResult]:
    """Load every ``metrics.json`` (and its ``predictions.csv``) found at any depth under ``results_dir``.

    ``folders``, when given, limits the search to those subfolders of ``results_dir`` (a missing one is
    skipped): the evaluate stage reads ``hmspar``, ``ablation`` and ``baselines`` only, not the recommendation
    track's results.

    Returns
    -------
    list of SeedResult
        Sorted by run, model and seed.

    Raises
    ------
    HmsparError
        When the directory is missing or holds no result, a file is malformed, a ``(run, model, seed)``
        appears twice, or two models of one run were tested on different entities or labels.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise HmsparError(f"{results_dir}: results directory not found (run the train and baseline stages first)")
    roots = [results_dir] if folders is None else [results_dir / f for f in folders]
    paths = sorted(p for root in roots if root.is_dir() for p in root.rglob("metrics.json")
                   # skip hidden (e.g. half-written temp) folders
                   if not any(part.startswith(".") for part in p.relative_to(results_dir).parts))
    if not paths:
        where = results_dir if folders is None else ", ".join(str(r) for r in roots)
        raise HmsparError(f"{where}: no metrics.json found (run the train and baseline stages first)")
    results = [_load_seed_result(p) for p in paths]
    seen: dict[tuple[str, str, int], Path] = {}
    for r in results:
        key = (r.run, r.model, r.seed)
        if key in seen:
            raise HmsparError(f"{r.folder / 'metrics.json'}: run {r.run!r} model {r.model!r} seed {r.seed} "
                              f"also found in {seen[key] / 'metrics.json'}")
        seen[key] = r.folder
    by_run: dict[str, SeedResult] = {}
    for r in sorted(results, key=lambda r: (r.run, r.model != HMSPAR, r.model, r.seed)):
        ref = by_run.setdefault(r.run, r)
        where = f"{r.folder / 'predictions.csv'}"
        if (r.dataset, r.task, r.group) != (ref.dataset, ref.task, ref.group):
            raise HmsparError(f"{r.folder / 'metrics.json'}: run {r.run!r} is dataset/task/group "
                              f"{(r.dataset, r.task, r.group)} here but {(ref.dataset, ref.task, ref.group)} in "
                              f"{ref.folder / 'metrics.json'}")
        if r.ids.shape != ref.ids.shape or not np.array_equal(r.ids, ref.ids):
            raise HmsparError(f"{where}: test entities differ from {ref.folder / 'predictions.csv'} "
                              f"(every model of run {r.run!r} must be tested on the same split)")
        if not np.array_equal(r.y, ref.y):
            raise HmsparError(f"{where}: test labels differ from {ref.folder / 'predictions.csv'}")
    return sorted(results, key=lambda r: (r.run, r.model, r.seed))


# --------------------------------------------------------------------------------------------------
# Metrics.


def predicted_labels(result: SeedResult) -> np.ndarray:
    """Hard predictions: ``prob >= threshold`` for binary tasks, the argmax class otherwise."""
    if result.multiclass:
        return result.prob.argmax(axis=1)
    return (result.prob >= result.threshold).astype(np.int64)


def compute_metrics(y: np.ndarray, prob: np.ndarray, threshold: float | None) -> dict[str, float]:
    """Test metrics of one set of predictions, by :mod:`hmspar.metrics` (its edge-case rules).

    Parameters
    ----------
    y : np.ndarray
        (n,) integer labels.
    prob : np.ndarray
        (n,) probability of class 1 (binary) or (n, K) class probabilities.
    threshold : float or None
        Decision threshold for binary tasks (positive when ``prob >= threshold``); ignored for multi-class.

    Returns
    -------
    dict
        ``roc_auc, auprc, f1, precision, recall, accuracy, balanced_accuracy, accuracy_at_0.5, brier``
        (``nan`` for ROC-AUC and AUPRC unless every class occurs in ``y``; multi-class ``f1, precision,
        recall`` are the macro averages), and ``n_predicted_classes``.
    """
    from hmspar.metrics import LEADERBOARD_KEYS, binary_metrics, multiclass_metrics

    y = np.asarray(y)
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim == 1:
        m = binary_metrics(y, prob, threshold)
        out = {k: m[k] for k in METRICS if k in m}
        out["accuracy_at_0.5"] = binary_metrics(y, prob, 0.5)["accuracy"]
        pred = (prob >= threshold).astype(np.int64)
    else:
        m = multiclass_metrics(y, prob)
        out = {k: m[LEADERBOARD_KEYS.get(k, k)] for k in METRICS if LEADERBOARD_KEYS.get(k, k) in m}
        out["accuracy_at_0.5"] = out["accuracy"]
        pred = prob.argmax(axis=1)
    missing = set(METRICS) - set(out)
    if missing:
        raise HmsparError(f"compute_metrics: no value for {sorted(missing)}")
    out = {k: float(out[k]) for k in METRICS}
    out["n_predicted_classes"] = float(np.unique(pred).size)
    return out


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _mean_std(values: list[float]) -> dict[str, float | None]:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "std": None}
    std = float(arr.std(ddof=1)) if arr.size > 1 else None
    return {"mean": float(arr.mean()), "std": std}


def group_results(results: Iterable[SeedResult]) -> dict[tuple[str, str], list[SeedResult]]:
    """``{(run, model): [seed results sorted by seed]}``."""
    groups: dict[tuple[str, str], list[SeedResult]] = {}
    for r in results:
        groups.setdefault((r.run, r.model), []).append(r)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in sorted(groups.items())}


def build_leaderboard(results: list[SeedResult]) -> dict[str, Any]:
    """Aggregate seed results into one row per ``(run, model)``: mean and std over seeds of every metric.

    Returns
    -------
    dict
        ``{"metrics": [...], "threshold_rule": str, "rows": [row, ...]}`` where each row holds ``run,
        dataset, task, group, model, inputs, n_seeds, seeds, n_test``, ``<metric>: {"mean", "std"}`` (sample
        std, ``ddof=1``; ``null`` with a single seed) and ``per_seed: {"<seed>": {metric: value}}``. Rows are
        sorted by run, then by mean test ROC-AUC (best first), then model name.
    """
    rows = []
    for (run, model), seeds in group_results(results).items():
        per_seed = {r.seed: compute_metrics(r.y, r.prob, r.threshold) for r in seeds}
        inputs: list[str] = []
        for r in seeds:
            inputs += [i for i in r.inputs if i not in inputs]
        first = seeds[0]
        row: dict[str, Any] = {
            "run": run, "dataset": first.dataset, "task": first.task, "group": first.group, "model": model,
            "inputs": inputs, "n_seeds": len(seeds), "seeds": [r.seed for r in seeds], "n_test": int(first.y.size),
        }
        for m in METRICS:
            row[m] = _mean_std([per_seed[s][m] for s in per_seed])
        sources = sorted({str(r.threshold_source) for r in seeds if r.threshold is not None})
        row["threshold_source"] = None if not sources else (sources[0] if len(sources) == 1 else "mixed")
        regimes = sorted({r.selection for r in seeds if r.selection})
        row["selection"] = None if not regimes else (regimes[0] if len(regimes) == 1 else "mixed")
        row["constant_prediction"] = bool(any(v["n_predicted_classes"] < 2 for v in per_seed.values()))
        row["per_seed"] = {str(s): {m: _clean(v) for m, v in vals.items() if m in METRICS}
                           for s, vals in per_seed.items()}
        rows.append(row)
    rows.sort(key=lambda r: (r["run"], -(r["roc_auc"]["mean"] if r["roc_auc"]["mean"] is not None else -math.inf),
                             r["model"]))
    return {"metrics": list(METRICS), "threshold_rule": THRESHOLD_RULE, "rows": rows}


def leaderboard_frame(leaderboard: Mapping[str, Any]):
    """Flat ``pandas.DataFrame`` view of a leaderboard (one column per metric mean and std)."""
    import pandas as pd

    records = []
    for row in leaderboard["rows"]:
        rec = {k: row[k] for k in ("run", "dataset", "task", "group", "model")}
        rec["inputs"] = "+".join(row["inputs"])
        rec["n_seeds"] = row["n_seeds"]
        rec["n_test"] = row["n_test"]
        rec["constant_prediction"] = row.get("constant_prediction", False)
        rec["threshold_source"] = row.get("threshold_source")
        for m in leaderboard["metrics"]:
            rec[f"{m}_mean"] = row[m]["mean"]
            rec[f"{m}_std"] = row[m]["std"]
        records.append(rec)
    return pd.DataFrame.from_records(records)


def best_baseline(leaderboard: Mapping[str, Any], run: str) -> dict[str, Any] | None:
    """The leaderboard row of the non-HMSPAR model with the highest mean test ROC-AUC on ``run`` (ties: name)."""
    rows = [r for r in leaderboard["rows"] if r["run"] == run and not is_hmspar(r["model"])
            and r["roc_auc"]["mean"] is not None]
    if not rows:
        return None
    return min(rows, key=lambda r: (-r["roc_auc"]["mean"], r["model"]))


def find_row(leaderboard: Mapping[str, Any], run: str, model: str) -> dict[str, Any] | None:
    for r in leaderboard["rows"]:
        if r["run"] == run and r["model"] == model:
            return r
    return None


def runs_of(leaderboard: Mapping[str, Any]) -> list[str]:
    return sorted({r["run"] for r in leaderboard["rows"]})


def build_headline(leaderboard: Mapping[str, Any], significance: Mapping[str, Any], digits: int) -> dict[str, Any]:
    """The classification track's headline (``metrics/headline.json``, what ``dvc metrics show`` prints): five
    numbers, so that the table stays a few columns wide; the per-run detail is in ``leaderboard.json`` and
    ``significance.json``.

    Returns
    -------
    dict
        ``n_runs`` (runs in the leaderboard); ``ahead`` and ``behind`` (runs where the paired-bootstrap interval
        of HMSPAR minus the best baseline, from ``significance``, lies above / below zero; the others show no
        difference); ``hmspar_auc`` (HMSPAR's mean test ROC-AUC, averaged over the runs it has) and
        ``auc_delta`` (HMSPAR's minus the best baseline's mean test ROC-AUC, averaged over the runs that have
        both; None when none has). Means are rounded to ``digits`` decimals.
    """

    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), digits) if values else None

    runs = runs_of(leaderboard)
    hmspar_auc, delta = [], []
    for run in runs:
        hm = find_row(leaderboard, run, HMSPAR)
        base = best_baseline(leaderboard, run)
        if hm is None or hm["roc_auc"]["mean"] is None:
            continue
        hmspar_auc.append(float(hm["roc_auc"]["mean"]))
        if base is not None:
            delta.append(float(hm["roc_auc"]["mean"]) - float(base["roc_auc"]["mean"]))
    tested = [e for e in (significance.get("runs") or {}).values() if "skipped" not in e]

    def count(side) -> int:
        return sum(1 for e in tested if e.get("ci_low") is not None and e.get("ci_high") is not None
                   and math.isfinite(e["ci_low"]) and math.isfinite(e["ci_high"]) and side(e))

    return {
        "n_runs": len(runs),
        "ahead": count(lambda e: e["ci_low"] > 0.0),
        "behind": count(lambda e: e["ci_high"] < 0.0),
        "hmspar_auc": mean(hmspar_auc),
        "auc_delta": mean(delta),
    }


def params_digest(params: Mapping[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of ``params`` as canonical JSON (sorted keys)."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
