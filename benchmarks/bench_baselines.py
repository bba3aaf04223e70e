"""Fit and predict time of every baseline on every run, from the baseline stage's outputs.

``python -m benchmarks.bench_baselines`` reads ``results/baselines/*/*/*/seed*/metrics.json`` and prints
one row per model and dataset (summed over the dataset's runs) plus the total of one seed.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks._measure import save, table


def main(root: Path = Path("results/baselines")) -> None:
    acc: dict[tuple[str, str, int], dict[str, float]] = defaultdict(lambda: {"fit_s": 0.0, "predict_s": 0.0, "runs": 0})
    aucs: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for path in sorted(root.glob("*/*/*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        key = (m["model"], m["dataset"], m["seed"])
        acc[key]["fit_s"] += m["fit_seconds"]
        acc[key]["predict_s"] += m["predict_seconds"]
        acc[key]["runs"] += 1
        aucs[key].append(m["test"]["roc_auc"])
    if not acc:
        sys.exit("no results under results/baselines: run `dvc repro baseline` first")
    rows = [{"model": k[0], "dataset": k[1], "seed": k[2], "runs": int(v["runs"]), "fit_s": v["fit_s"],
             "predict_s": v["predict_s"], "mean_test_auc": sum(aucs[k]) / len(aucs[k])} for k, v in sorted(acc.items())]
    save("baselines", rows)
    print(table(rows, ["model", "dataset", "seed", "runs", "fit_s", "predict_s", "mean_test_auc"]))
    per_model: dict[str, float] = defaultdict(float)
    for r in rows:
        per_model[r["model"]] += r["fit_s"] + r["predict_s"]
    print(table([{"model": m, "total_s": s} for m, s in sorted(per_model.items(), key=lambda kv: -kv[1])],
                ["model", "total_s"]))
    print(f"all baselines, one seed: {sum(per_model.values()) / len({r['seed'] for r in rows}):.0f} s")


if __name__ == "__main__":
    main()
