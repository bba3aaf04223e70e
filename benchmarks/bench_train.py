"""HMSPAR training speed per run, from the train stage's outputs, and a speed/accuracy comparison.

``python -m benchmarks.bench_train`` summarises ``results/hmspar/*/seed*/metrics.json`` and the DVCLive
curves (epochs run): seconds per epoch, training samples per second, best validation AUC and the total
train time of one seed. ``python -m benchmarks.bench_train --compare retail-churn`` retrains the given runs
with the default model and with a slower configuration (the standard-width ResNet-18 image encoder) and
prints both validation AUCs and times, to check that the fast default loses nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks._measure import fit_hmspar, save, table
from hmspar.params import load_params

SLOWER = {"image": {"width": 64, "blocks": 2}}


def summarise(results: Path = Path("results/hmspar"), live: Path = Path("dvclive")) -> list[dict]:
    rows = []
    for metrics_path in sorted(results.glob("*/seed*/metrics.json")):
        m = json.loads(metrics_path.read_text())
        tsv = live / m["run"] / f"seed{m['seed']}" / "plots/metrics/train_loss.tsv"
        epochs = max(1, len(tsv.read_text().splitlines()) - 1) if tsv.exists() else None
        rows.append({"run": m["run"], "seed": m["seed"], "n_train": m["n_train"], "epochs": epochs,
                     "fit_s": m["fit_seconds"],
                     "s_per_epoch": m["fit_seconds"] / epochs if epochs else float("nan"),
                     "samples_per_s": m["n_train"] * epochs / m["fit_seconds"] if epochs else float("nan"),
                     "val_auc": m["val"]["roc_auc"], "test_auc": m["test"]["roc_auc"]})
    return rows


def compare(runs: list[str]) -> list[dict]:
    params = load_params()
    rows = []
    for run in runs:
        for label, overrides in (("default", {}), ("slower: ResNet-18 at width 64", SLOWER)):
            rec, seconds = fit_hmspar(params, run, overrides, params["seeds"][0])
            rows.append({"run": run, "config": label, "fit_s": seconds,
                         "val_auc": rec["val"]["roc_auc"], "test_auc": rec["test"]["roc_auc"]})
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs="*", default=None, help="runs to retrain with a slower configuration")
    args = parser.parse_args(argv)
    if args.compare:
        rows = compare(args.compare)
        save("train_compare", rows)
        print(table(rows, ["run", "config", "fit_s", "val_auc", "test_auc"]))
        return
    rows = summarise()
    if not rows:
        sys.exit("no results under results/hmspar: run `dvc repro train` first")
    save("train", rows)
    print(table(rows, ["run", "seed", "n_train", "epochs", "fit_s", "s_per_epoch", "samples_per_s", "val_auc", "test_auc"]))
    by_seed: dict[int, float] = {}
    for r in rows:
        by_seed[r["seed"]] = by_seed.get(r["seed"], 0.0) + r["fit_s"]
    for seed, total in sorted(by_seed.items()):
        print(f"seed {seed}: all train stages fit in {total:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
