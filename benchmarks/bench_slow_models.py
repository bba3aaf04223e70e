"""Fit time and accuracy of the slow baselines (issue 16, item 4) on one dataset, one seed, before/after.

Usage (repository root, after ``dvc repro convert@<dataset>``)::

    python -m benchmarks.bench_slow_models <dataset> <model>[,<model>...] [tag] [key=value ...]

Every run of ``runs.<dataset>`` is fitted once (seed 0) with the model's ``params.yaml`` section and the
``selection`` policy, exactly as ``baseline@<dataset>-<model>`` does, plus optional overrides given as dotted
keys below the model's section (``train.batch_size=128``, ``n_kernels=2000``; values parsed as YAML). One row
per model and run: fit and predict seconds, CPU seconds of the process (every thread; less sensitive than
wall time to other jobs on the machine), the validation score the model was selected on (ROC-AUC, or
accuracy for multi-class; out-of-fold in the k-fold regime) and the test ROC-AUC / accuracy. Rows are
appended to ``benchmarks/results/slow_models.json`` under ``tag`` (default ``current``), so a "before" and
an "after" run sit side by side. ``HMSPAR_BENCH_RUNS=cdnow-churn`` restricts the runs. Thread counts follow the defaults (``auto``, :mod:`hmspar.threads`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._measure import table

RESULTS = Path("benchmarks/results/slow_models.json")


def _override(section: dict, key: str, value: str) -> None:
    import yaml

    parts = key.split(".")
    node = section
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = yaml.safe_load(value)


def main(argv: list[str]) -> None:
    import yaml

    from hmspar.runner import run_model

    if len(argv) < 2:
        raise SystemExit(__doc__)
    dataset, models = argv[0], argv[1].split(",")
    tag = argv[2] if len(argv) > 2 and "=" not in argv[2] else "current"
    overrides = [a.split("=", 1) for a in argv[2:] if "=" in a]
    params = yaml.safe_load(Path("params.yaml").read_text())
    feat = Path("data/features") / dataset
    if not (feat / "meta.json").exists():
        raise SystemExit(f"{feat} missing: run `dvc repro convert@{dataset}` first")
    rows = []
    for label in models:
        section = json.loads(json.dumps(params["baselines"][label]))
        registry_name = section.pop("model", label)
        for k, v in overrides:
            _override(section, k, v)
        for run, spec in params["runs"][dataset].items():
            if os.environ.get("HMSPAR_BENCH_RUNS") and run not in os.environ["HMSPAR_BENCH_RUNS"].split(","):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                t0, c0 = time.perf_counter(), time.process_time()
                (m,) = run_model(registry_name, section, f"baselines.{label}", feat, run, {"dataset": dataset, **spec},
                                 [0], Path(tmp) / "out", progress=False, model_label=label,
                                 selection=params.get("selection"))
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            val, test = m.get("val") or {}, m["test"]
            rows.append({"tag": tag, "model": label, "run": run, "overrides": " ".join(f"{k}={v}" for k, v in overrides),
                         "fit_s": m["fit_seconds"], "predict_s": m["predict_seconds"], "wall_s": round(wall, 2),
                         "cpu_s": round(cpu, 2),
                         "val_auc": val.get("roc_auc"), "val_acc": val.get("accuracy"),
                         "test_auc": test.get("roc_auc"), "test_acc": test.get("accuracy"),
                         "budget": m["selection"]["budget"], "best_step": m.get("best_step"),
                         "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                         "loadavg_1m": round(os.getloadavg()[0], 2), "host_cpus": os.cpu_count(),
                         "python": platform.python_version()})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(old + rows, indent=2) + "\n")
    print(table(rows, ["tag", "model", "run", "fit_s", "predict_s", "cpu_s", "val_auc", "val_acc", "test_auc", "test_acc",
                       "loadavg_1m"]))


if __name__ == "__main__":
    main(sys.argv[1:])
