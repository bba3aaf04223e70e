"""The lab's MiniRocket beside aeon's own ``MiniRocketClassifier`` on every classification run.

Usage (repository root, after ``dvc repro`` or ``dvc pull`` so that ``data/features`` and ``results`` exist)::

    python -m benchmarks.bench_minirocket_reference [--runs R1,R2] [--seeds 0,1,2] [--fit key=value ...]

For each run and seed, aeon's classifier is fitted at its defaults (10,000 kernels, the classic
``RidgeClassifierCV`` head, seeded with the run seed) on the run's training rows, given the same
standardised series the lab's baseline sees (left-padded to aeon's minimum of 9 periods, as the lab pads;
no mask channels, no static or text columns: aeon's classifier takes a series only). It is scored on the
test rows with

* ``accuracy``: its ``predict`` (argmax of the ridge scores), beside the lab's accuracy at its own decision
  rule when the task is multi-class (argmax) and at probability 0.5 when it is binary (``test_at_0.5``:
  the argmax of the two probabilities; the pipeline's headline accuracy uses a threshold chosen on
  validation for F1, a different rule);
* ``roc_auc``: of the ridge decision scores (aeon's ``predict_proba`` is one-hot for a ridge head, which
  would understate it), beside the lab's test ROC-AUC.

The lab's side is read from the pipeline's outputs (``results/baselines/<dataset>/minirocket/<run>/seed<k>/
metrics.json``), so the comparison is about the numbers the leaderboard reports. ``--fit key=value ...``
instead fits the lab's model afresh with those settings merged over the run's ``baselines.minirocket``
section, through the same selection policy as the pipeline (for trying settings before they become defaults).

Writes ``benchmarks/results/minirocket_reference.json`` (per run and seed, and per run the seed means and
the lab-minus-aeon gaps) and prints the table. Timing figures are per fit on this machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks._measure import table

RESULTS = Path("benchmarks/results")


def _aeon_scores(train: Any, test: Any, seed: int) -> dict[str, Any]:
    from aeon.classification.convolution_based import MiniRocketClassifier
    from sklearn.metrics import roc_auc_score

    from hmspar import threads
    from hmspar.models.baselines.minirocket import pad_to_min_length

    x_train = np.ascontiguousarray(pad_to_min_length(np.asarray(train.X["series"], dtype=np.float32)))
    x_test = np.ascontiguousarray(pad_to_min_length(np.asarray(test.X["series"], dtype=np.float32)))
    n_jobs = threads.resolve("auto", "n_jobs")
    t0 = time.perf_counter()
    with threads.limited(n_jobs):
        clf = MiniRocketClassifier(random_state=seed, n_jobs=n_jobs).fit(x_train, train.y)
        fit_s = time.perf_counter() - t0
        pred = clf.predict(x_test)
        scores = clf.pipeline_.decision_function(x_test)
    classes = np.asarray(clf.classes_)
    if classes.size == 2:
        auc = float(roc_auc_score((test.y == classes[1]).astype(int), scores))
    else:
        # one-vs-rest macro average of the raw scores (sklearn's multi-class form wants probabilities)
        auc = float(np.mean([roc_auc_score((test.y == c).astype(int), scores[:, k]) for k, c in enumerate(classes)]))
    return {"accuracy": float(np.mean(pred == test.y)), "roc_auc": auc, "fit_s": round(fit_s, 2)}


def _lab_from_results(dataset: str, run: str, seed: int) -> dict[str, Any]:
    from hmspar.pipeline import RESULTS_ROOT

    path = RESULTS_ROOT / "baselines" / dataset / "minirocket" / run / f"seed{seed}" / "metrics.json"
    if not path.exists():
        raise SystemExit(f"{path}: missing; run `dvc repro baseline_minirocket@{dataset}-minirocket` first")
    m = json.loads(path.read_text())
    at_half = m.get("test_at_0.5")
    acc = (at_half or m["test"])["accuracy"]
    return {"accuracy": float(acc), "roc_auc": float(m["test"]["roc_auc"]), "source": str(path)}


def _lab_fitted(params: dict[str, Any], spec: Any, data: dict[str, Any], seed: int,
                overrides: dict[str, Any]) -> dict[str, Any]:
    from hmspar.metrics import binary_metrics, multiclass_metrics
    from hmspar.models.registry import MODELS
    from hmspar.pipeline import deep_merge
    from hmspar.pipeline.fit import baseline_run_section, selection_config
    from hmspar.training.selection import fit_with_selection

    section = deep_merge(baseline_run_section(params, "minirocket", spec), overrides)
    section.pop("model", None)
    cfg = MODELS.config("minirocket", section, "baselines.minirocket")
    cls = MODELS.cls("minirocket")
    t0 = time.perf_counter()
    chosen = fit_with_selection(lambda: cls(cfg, seed=seed), data["train"], data["val"],
                                selection_config(params), seed)
    fit_s = time.perf_counter() - t0
    proba = np.asarray(chosen.model.predict_proba(data["test"].X), dtype=np.float64)
    classes = np.asarray(chosen.model.classes_)
    y = data["test"].y
    if classes.size == 2:
        m = binary_metrics((y == classes[1]).astype(np.int64), proba[:, 1], 0.5)
    else:
        m = multiclass_metrics(np.searchsorted(classes, y), proba)
    return {"accuracy": float(m["accuracy"]), "roc_auc": float(m["roc_auc"]), "fit_s": round(fit_s, 2),
            "head": getattr(chosen.model, "head_name_", None)}


def main(argv: list[str] | None = None) -> None:
    from hmspar.data.loader import load_task
    from hmspar.params import load_params, seeds as param_seeds
    from hmspar.pipeline import FEATURES_ROOT, run_specs

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default="", help="comma-separated run names (default: every classification run)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default: params.yaml seeds)")
    ap.add_argument("--fit", nargs="*", default=None, metavar="KEY=VALUE",
                    help="fit the lab's model afresh with these baselines.minirocket settings")
    ap.add_argument("--aeon-max-rows", type=int, default=10000,
                    help="skip aeon on runs with more training rows (its ridge leave-one-out search on cdnow-churn's "
                         "16,450 rows ran over 11 minutes per fit without finishing); 0: no limit")
    ap.add_argument("--out", default=str(RESULTS / "minirocket_reference.json"))
    args = ap.parse_args(argv)

    params = load_params()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else param_seeds(params)
    specs = run_specs(params)
    wanted = [r for r in args.runs.split(",") if r] or list(specs)
    unknown = sorted(set(wanted) - set(specs))
    if unknown:
        raise SystemExit(f"--runs: unknown run(s) {', '.join(unknown)} (runs: {', '.join(specs)})")
    overrides = None
    if args.fit is not None:
        overrides = {}
        for item in args.fit:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"--fit: expected key=value, got {item!r}")
            overrides[key] = yaml.safe_load(value)

    rows, per_seed, skipped = [], [], []
    for run in wanted:
        spec = specs[run]
        data = load_task(FEATURES_ROOT / spec.dataset, spec.task, spec.group, modalities=("series",), lazy=False)
        if args.aeon_max_rows and len(data["train"]) > args.aeon_max_rows:
            print(f"{run}: aeon not run ({len(data['train'])} training rows > --aeon-max-rows {args.aeon_max_rows})")
            skipped.append({"run": run, "n_train": len(data["train"])})
            continue
        lab_runs, aeon_runs = [], []
        for seed in seeds:
            aeon = _aeon_scores(data["train"], data["test"], seed)
            lab = (_lab_from_results(spec.dataset, run, seed) if overrides is None
                   else _lab_fitted(params, spec, data, seed, overrides))
            lab_runs.append(lab)
            aeon_runs.append(aeon)
            per_seed.append({"run": run, "seed": seed, "lab": lab, "aeon": aeon})
            print(f"{run} seed {seed}: lab acc {lab['accuracy']:.3f} auc {lab['roc_auc']:.3f} | "
                  f"aeon acc {aeon['accuracy']:.3f} auc {aeon['roc_auc']:.3f} ({aeon['fit_s']} s)", flush=True)
        row = {"run": run, "classes": int(np.unique(data["train"].y).size), "n_train": len(data["train"]),
               "n_test": len(data["test"])}
        for key in ("accuracy", "roc_auc"):
            row[f"lab_{key}"] = round(float(np.mean([r[key] for r in lab_runs])), 4)
            row[f"aeon_{key}"] = round(float(np.mean([r[key] for r in aeon_runs])), 4)
            row[f"gap_{key}"] = round(row[f"lab_{key}"] - row[f"aeon_{key}"], 4)
        rows.append(row)
    out = {"seeds": seeds, "lab": "pipeline results" if overrides is None else {"fit": overrides},
           "runs": rows, "per_seed": per_seed, "aeon_max_rows": args.aeon_max_rows, "not_run": skipped,
           "summary": {"runs": len(rows),
                       "accuracy_within_0.005_or_better": sum(r["gap_accuracy"] >= -0.005 for r in rows),
                       "roc_auc_within_0.005_or_better": sum(r["gap_roc_auc"] >= -0.005 for r in rows)}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(table(rows, ["run", "classes", "n_train", "lab_accuracy", "aeon_accuracy", "gap_accuracy",
                       "lab_roc_auc", "aeon_roc_auc", "gap_roc_auc"]))
    print(out["summary"])


if __name__ == "__main__":
    main()
