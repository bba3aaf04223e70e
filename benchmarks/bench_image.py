"""HMSPAR's image encoder at other sizes: validation and test ROC-AUC and fit time, per run and seed.

``python -m benchmarks.bench_image [--runs R ...] [--configs NAME ...] [--seeds 0 1 2]`` trains HMSPAR on
each run (its ``hmspar_runs`` override applied, as the train stage does) once per image configuration of
:data:`CONFIGS`, every seed, in this process, alternating the configurations run by run so that a slow
stretch of the machine does not fall on one of them. It needs the runs' features (``dvc repro convert@<dataset>``).
Rows: run, config, seed, fit seconds, validation and test ROC-AUC; then per run and configuration the means
over seeds. Written to ``benchmarks/results/image_encoder.json`` with the load average before and after and
the commit. A configuration becomes a default only when validation says it loses nothing (DESIGN.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from benchmarks._measure import fit_hmspar, record_run

#: Image settings compared (``model.image`` keys merged over the run's own).
CONFIGS: dict[str, dict] = {
    "resnet18_w16": {"width": 16, "blocks": 2},
    "resnet10_w16": {"width": 16, "blocks": 1},
    "resnet10_w8": {"width": 8, "blocks": 1},
}
#: Runs whose HMSPAR reads the image: the largest GAF pictures (sales_weekly, 26 px), a mid-size set (retail,
#: 13 px) and a merchant industry (16 px).
RUNS = ["sales_weekly-seasonality", "retail-churn", "merchant-risk-Industry-1"]
OUT = Path("benchmarks/results/image_encoder.json")


def _fit(run: str, image: dict, seeds: list[int]) -> list[dict]:
    from hmspar import pipeline
    from hmspar.params import load_params
    from hmspar.pipeline.fit import hmspar_section

    params = load_params()
    if "image" not in hmspar_section(params, pipeline.hmspar_run(params, run)[1])["modalities"]:
        raise SystemExit(f"{run}: HMSPAR does not read the image on this run (model.modalities)")
    rows = []
    for seed in seeds:
        rec, wall = fit_hmspar(params, run, {"image": image}, seed)
        rows.append({"seed": seed, "fit_s": rec["fit_seconds"], "wall_s": wall,
                     "val_auc": rec["val"]["roc_auc"], "test_auc": rec["test"]["roc_auc"]})
    return rows


def run_all(runs: list[str], configs: list[str], seeds: list[int]) -> list[dict]:
    """Every run x configuration x seed (configurations rotated from run to run), then the per-run means."""
    rows = []
    for i, run in enumerate(runs):
        order = configs[i % len(configs):] + configs[:i % len(configs)]
        for name in order:
            for r in _fit(run, CONFIGS[name], seeds):
                rows.append({"run": run, "config": name, **r})
                print(rows[-1], flush=True)
    means = []
    for run in runs:
        for name in configs:
            sel = [r for r in rows if r["run"] == run and r["config"] == name]
            means.append({"run": run, "config": name, "seed": "mean",
                          **{k: statistics.fmean(r[k] for r in sel) for k in ("fit_s", "wall_s", "val_auc", "test_auc")}})
    return rows + means


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=RUNS)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    record_run(args.out, {"configs": {k: CONFIGS[k] for k in args.configs}, "seeds": args.seeds},
               lambda: run_all(args.runs, args.configs, args.seeds),
               ["run", "config", "seed", "fit_s", "val_auc", "test_auc"])


if __name__ == "__main__":
    main(sys.argv[1:])
