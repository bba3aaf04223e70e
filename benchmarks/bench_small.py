"""Small labelled series: import + convert of a 200-series file, and the ``shapes`` dataset through HMSPAR and
every default baseline.

Usage (repository root)::

    python -m benchmarks.bench_small import          # 200 signed series, TSV -> raw -> features
    python -m benchmarks.bench_small models [seeds] [--profile P] [section.key=value ...]

``import`` writes a seeded 200-series TSV (4 classes, length 128, z-normalised, a predefined train/test split
without validation rows) under ``benchmarks/out/small/``, then times the ``series`` importer plus the convert
step in a fresh child process. Target: 15 s.

``models`` generates and converts ``shapes`` with the settings of ``params.yaml`` and runs HMSPAR and every
model of ``baseline_models`` with their ``params.yaml`` sections and the ``selection`` policy, per seed,
printing test accuracy, balanced accuracy, macro F1 and the number of classes predicted, and the total
wall time. Target: the whole dataset through all default models within 3 minutes on 2 cores (one seed).
``--profile`` swaps the dataset for a simulated shape like the real small sets the lab is checked on
(:data:`PROFILES`): ``two_50x150`` (2 classes, about 50 training series of length 150) and
``six_200x427`` (6 classes, about 200 training series of length 427); both have 2% validation rows (the
simulator needs some), so the k-fold regime selects, as on a split file without validation rows; the target there is
HMSPAR within 60 s per seed on 2 idle cores, and learning (accuracy well above 1/6) on the second.
``section.key=value`` arguments override ``params.yaml`` for the run (``selection.refit=ensemble``,
``train.max_steps=500``). Results go to ``benchmarks/out/small_<mode>.json``. ``HMSPAR_BENCH_MODELS=hmspar,minirocket`` restricts the run to some models (run-outputs of earlier
models are kept under ``benchmarks/out/small/runs/``). ``HMSPAR_BENCH_N_JOBS=1`` overrides every baseline's
``n_jobs`` (on a machine shared with other jobs, LightGBM with two threads ran 6x slower than with one).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks._measure import OUT, measure, save, table

WORK = OUT / "small"


def make_file(n: int = 200, length: int = 128, seed: int = 11) -> tuple[Path, Path]:
    """A seeded signed series table (TSV) and a train/test split file; returns their paths."""
    import numpy as np

    from hmspar.data.generators import dataset_config, shapes

    WORK.mkdir(parents=True, exist_ok=True)
    cfg = dataset_config("shapes", {**shapes.DEFAULT_PARAMS, "n_entities": n, "length": length, "n_classes": 4,
                                    "seed": seed})
    ds = shapes.generate(cfg, progress=False)
    x, y = ds.series[:, 0], ds.labels["shape"]
    lines = ["\t".join([f"s{i}", shapes.SHAPES[y[i]]] + ["" if np.isnan(v) else f"{v:.5f}" for v in x[i]])
             for i in range(n)]
    table_path, split_path = WORK / "own_200.tsv", WORK / "own_200_split.csv"
    table_path.write_text("\n".join(lines) + "\n")
    split_path.write_text("id,split\n" + "\n".join(f"s{i},{'test' if i % 4 == 0 else 'train'}" for i in range(n)) + "\n")
    return table_path, split_path


def child_import(table_path: str, split_path: str) -> None:
    """Import and convert (what ``generate@`` and ``convert@`` do), printing the stage times."""
    from hmspar.convert import TextConfig, convert_dataset
    from hmspar.data.generators import dataset_config, generator_module

    cfg = dataset_config("own", {"kind": "series", "path": table_path, "split_path": split_path, "image_size": 32})
    start = time.perf_counter()
    raw = generator_module(cfg.kind).generate(cfg)
    raw_dir, feat_dir = WORK / "raw", WORK / "features"
    for d in (raw_dir, feat_dir):
        shutil.rmtree(d, ignore_errors=True)
    raw.save(raw_dir)
    imported = time.perf_counter() - start
    meta = convert_dataset(raw_dir, feat_dir, cfg, TextConfig(), progress=False)
    print(f"values={meta['values']} modalities={meta['modalities']} import_s={imported:.2f} "
          f"total_s={time.perf_counter() - start:.2f}", file=sys.stderr)


def bench_import() -> None:
    table_path, split_path = make_file()
    res = measure([sys.executable, "-m", "benchmarks.bench_small", "child-import", str(table_path), str(split_path)])
    rows = [{"what": "import+convert 200 series x 128 steps", "seconds": res["seconds"], "peak_mib": res["peak_mib"],
             "target_s": 15.0}]
    save("small_import", rows)
    print(table(rows, ["what", "seconds", "peak_mib", "target_s"]))


#: Dataset shapes for ``models --profile``: overrides of ``datasets.shapes`` (the ``shapes`` simulator).
PROFILES = {
    "shapes": {},
    "two_50x150": {"n_entities": 104, "length": 150, "n_classes": 2, "val_fraction": 0.02, "test_fraction": 0.5},
    "six_200x427": {"n_entities": 408, "length": 427, "n_classes": 6, "val_fraction": 0.02, "test_fraction": 0.5},
}


def _override(params: dict, items: list[str]) -> dict:
    """``params`` with ``section.key=value`` items (values parsed as YAML) set in place."""
    import yaml

    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"expected section.key=value, got {item!r}")
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return params


def bench_models(seeds: list[int], profile: str = "shapes", overrides: list[str] | None = None) -> None:
    import numpy as np
    import yaml

    from hmspar.convert import TextConfig, convert_dataset
    from hmspar.data.generators import dataset_config, generator_module
    from hmspar.pipeline import deep_merge
    from hmspar.runner import run_model

    if profile not in PROFILES:
        raise SystemExit(f"--profile: unknown {profile!r} (profiles: {', '.join(PROFILES)})")
    params = _override(yaml.safe_load(Path("params.yaml").read_text()), overrides or [])
    cfg = dataset_config("shapes", {**params["datasets"]["shapes"], **PROFILES[profile]})
    raw_dir, feat_dir = WORK / f"{profile}_raw", WORK / f"{profile}_features"
    for d in (raw_dir, feat_dir):
        shutil.rmtree(d, ignore_errors=True)
    t_all = time.perf_counter()
    generator_module("shapes").generate(cfg, progress=False).save(raw_dir)
    convert_dataset(raw_dir, feat_dir, cfg, TextConfig(), progress=False)
    models = [("hmspar", "hmspar", {**deep_merge(params["model"], {}), "train": params["train"]}, "model")]
    for name in [m for family in params["baseline_models"].values() for m in family]:
        section = dict(params["baselines"][name])
        if os.environ.get("HMSPAR_BENCH_N_JOBS") and "n_jobs" in section:
            section["n_jobs"] = int(os.environ["HMSPAR_BENCH_N_JOBS"])
        models.append((name, section.pop("model", name), section, f"baselines.{name}"))
    only = os.environ.get("HMSPAR_BENCH_MODELS")
    if only:
        models = [m for m in models if m[0] in only.split(",")]
    rows = []
    for label, registry_name, section, where in models:
        start = time.perf_counter()
        res = run_model(registry_name, section, where, feat_dir, "shapes-shape", {"dataset": "shapes", "task": "shape"},
                        seeds, WORK / "runs" / profile / label, progress=False, model_label=label,
                        selection=params.get("selection"))
        seconds = time.perf_counter() - start
        for m in res:
            out = WORK / "runs" / profile / label / f"seed{m['seed']}" / "predictions.csv"
            import pandas as pd

            pred = pd.read_csv(out).query("split == 'test'")
            if "prob" in pred.columns:  # binary: the positive class's probability
                probs = np.stack([1 - pred["prob"].to_numpy(), pred["prob"].to_numpy()], axis=1)
            else:
                probs = pred[[c for c in pred.columns if c.startswith("prob_")]].to_numpy()
            n_pred = int(np.unique(probs.argmax(axis=1)).size)
            rows.append({"model": label, "seed": m["seed"], "accuracy": m["test"]["accuracy"],
                         "balanced_accuracy": m["test"]["balanced_accuracy"], "f1_macro": m["test"].get("f1_macro", m["test"].get("f1")),
                         "roc_auc": m["test"]["roc_auc"] if m["test"]["roc_auc"] is not None else float("nan"),
                         "oof_accuracy": (m.get("val") or {}).get("accuracy", float("nan")),
                         "classes_predicted": n_pred, "budget": m["selection"]["budget"],
                         "seconds": round(seconds / len(seeds), 1)})
        print(f"{label}: {seconds:.1f}s", file=sys.stderr, flush=True)
    total = time.perf_counter() - t_all
    save(f"small_models_{profile}", rows)
    print(table(rows, ["model", "seed", "accuracy", "oof_accuracy", "balanced_accuracy", "f1_macro", "roc_auc",
                       "classes_predicted", "budget", "seconds"]))
    summary = {}
    for r in rows:
        summary.setdefault(r["model"], []).append(r["accuracy"])
    print(json.dumps({k: round(float(np.mean(v)), 4) for k, v in summary.items()}))
    print(f"total wall time (generate, convert, {len(models)} models x {len(seeds)} seed(s)): {total:.1f}s")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "import"
    if mode == "child-import":
        child_import(sys.argv[2], sys.argv[3])
    elif mode == "import":
        bench_import()
    elif mode == "models":
        rest = sys.argv[2:]
        seed_arg = rest.pop(0) if rest and not rest[0].startswith("-") and "=" not in rest[0] else "0"
        prof = "shapes"
        if "--profile" in rest:
            i = rest.index("--profile")
            prof = rest[i + 1]
            del rest[i:i + 2]
        bench_models([int(s) for s in seed_arg.split(",")], prof, rest)
    else:
        raise SystemExit(f"unknown mode {mode!r} (import, models)")
