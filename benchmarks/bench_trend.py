"""The ``trend`` dataset end to end: generate and convert time, then HMSPAR test ROC-AUC per modality set.

Usage (from the repository root)::

    python -m benchmarks.bench_trend [--features DIR] [--tasks hot_boho ...] [--seeds 0 1] [--epochs 20]

Without ``--features`` the dataset is generated from ``params.yaml: datasets.trend`` (or the generator's
``DEFAULT_PARAMS`` when that entry is missing) and converted with the real sentence encoder into a
temporary directory (``data/`` is not touched); ``--features`` reuses a converted directory (e.g.
``data/features/trend``). Each modality row trains HMSPAR (small settings, :data:`MODEL`) on every task's
temporal split and reports the test ROC-AUC:

========================  ====================================  ================================
row                       ``model.modalities``                  series channels
========================  ====================================  ================================
text                      ``[text]``                            --
image                     ``[image]``                           --
text+image                ``[text, image]``                     --
numbers                   ``[series]``                          posts, likes, shares
text+image+numbers        ``[series, text, image]``             posts, likes, shares
all                       ``[series, image, text, static]``     every channel (+ mentions, colours)
========================  ====================================  ================================

The "numbers" rows keep only the engagement channels of the series (what ``series_channels:
[activity]`` gives in a dataset entry); they are sliced from the full features here, so one conversion
serves every row. Timings are wall seconds on this machine; torch uses one thread.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._measure import save, table

ACTIVITY = ["posts", "likes", "shares"]
ROWS = {
    "text": (["text"], None),
    "image": (["image"], None),
    "text+image": (["text", "image"], None),
    "numbers": (["series"], ACTIVITY),
    "text+image+numbers": (["series", "text", "image"], ACTIVITY),
    "all": (["series", "image", "text", "static"], "all"),
}
#: HMSPAR settings of the benchmark (``model`` section with ``train`` nested), small enough for a CPU.
MODEL = {
    "d_model": 32,
    "series": {"hidden": 16, "n_layers": 2, "order": 3},
    "image": {"width": 8, "small_input": True},
    "text": {"hidden": 64},
    "static": {"hidden": 16},
    "fusion": {"n_levels": 1, "n_shared": 1, "n_specific": 1},
    "head": {"hidden": 32},
    "train": {"epochs": 20, "batch_size": 64, "lr": 0.002, "patience": 5, "num_threads": 1},
}


def _dataset_section() -> dict:
    from hmspar.data.generators import trend

    try:
        from hmspar.params import load_params

        section = (load_params().get("datasets") or {}).get("trend")
    except Exception:  # no params.yaml here: the generator's defaults
        section = None
    return dict(section) if section else dict(trend.DEFAULT_PARAMS)


def build_features(root: Path) -> tuple[Path, dict]:
    """Generate and convert ``trend`` into ``root``; returns the features directory and the timings."""
    from hmspar.convert import TextConfig, convert_dataset
    from hmspar.data.generators import dataset_config, trend

    cfg = dataset_config("trend", _dataset_section())
    t0 = time.perf_counter()
    raw = trend.generate(cfg, progress=False)
    raw.save(root / "raw")
    t1 = time.perf_counter()
    convert_dataset(root / "raw", root / "features", cfg, TextConfig(), progress=False)
    t2 = time.perf_counter()
    return root / "features", {"generate_s": t1 - t0, "convert_s": t2 - t1, "n_windows": raw.n}


def _select(part, channels: list[int] | None):
    X = {k: np.asarray(v, dtype=np.float32) for k, v in part.X.items()}
    if channels is not None and "series" in X:
        X["series"], X["mask"] = X["series"][:, channels], X["mask"][:, channels]
    return X


def fit_row(features: Path, task: str, modalities: list[str], channels, seed: int, epochs: int) -> dict:
    """Train HMSPAR on one task with the given modalities; test ROC-AUC and fit seconds."""
    from sklearn.metrics import roc_auc_score

    from hmspar.data.loader import load_task, read_meta
    from hmspar.models.registry import make_model

    names = read_meta(features)["channels"]
    index = None if channels in (None, "all") else [names.index(c) for c in channels]
    section = copy.deepcopy(MODEL)
    section["modalities"] = modalities
    section["train"]["epochs"] = epochs
    model = make_model("hmspar", section, seed, where="model")
    parts = load_task(features, task, modalities=tuple(modalities))
    X = {name: _select(p, index) for name, p in parts.items()}
    t0 = time.perf_counter()
    model.fit(X["train"], parts["train"].y, X["val"], parts["val"].y)
    fit_s = time.perf_counter() - t0
    proba = model.predict_proba(X["test"])[:, 1]
    return {"test_auc": float(roc_auc_score(parts["test"].y, proba)), "fit_s": fit_s}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_trend")
    parser.add_argument("--features", type=Path, default=None, help="a converted trend directory to reuse")
    parser.add_argument("--tasks", nargs="*", default=None, help="tasks (default: every hot_<style>)")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=MODEL["train"]["epochs"])
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from hmspar.data.loader import read_meta

    with tempfile.TemporaryDirectory(prefix="bench_trend_") as tmp:
        timings: dict = {}
        features = args.features
        if features is None:
            features, timings = build_features(Path(tmp))
            print(f"generate {timings['generate_s']:.1f} s, convert {timings['convert_s']:.1f} s "
                  f"({timings['n_windows']} windows)", flush=True)
        tasks = args.tasks or read_meta(features)["tasks"]
        rows = []
        for row in args.rows:
            modalities, channels = ROWS[row]
            record = {"row": row, "modalities": ",".join(modalities)}
            fit_total = 0.0
            for task in tasks:
                aucs = []
                for seed in args.seeds:
                    result = fit_row(features, task, modalities, channels, seed, args.epochs)
                    aucs.append(result["test_auc"])
                    fit_total += result["fit_s"]
                record[task] = float(np.mean(aucs))
            record["mean_auc"] = float(np.mean([record[t] for t in tasks]))
            record["fit_s"] = fit_total
            rows.append(record)
            print(record, flush=True)
    save("trend", [{**timings, **r} for r in rows])
    shown = [{k: (f"{v:.3f}" if isinstance(v, float) and k != "fit_s" else v) for k, v in r.items()} for r in rows]
    print(table(shown, ["row", "modalities", *tasks, "mean_auc", "fit_s"]))


if __name__ == "__main__":
    main(sys.argv[1:])
