"""A quick look at the lab: the stage families and models of the default pipeline but the multimodal
recommenders, at one seed, on four of its datasets at reduced sizes.

``python -m hmspar.quicklook`` copies the project (the files a fresh clone has, without DVC outputs) into
``quicklook/`` (git-ignored), writes there a ``params.yaml`` derived from this one by :func:`quick_params`,
and runs ``dvc repro`` in it: one dataset of each kind (customers, products, fashion posts, small labelled
series) with HMSPAR, every baseline and the modality ablation, the shop of the recommendation track with
the peers and the sequential recommenders, evaluate and the report page, in minutes rather than an hour. The
multimodal recommenders run on the fashion shop only (``rec.multimodal_datasets``), which the quick look
leaves out: it does not show the multimodal track. The numbers are a
smoke view of the pipeline, not results: one seed, fewer and smaller sets, shorter step budgets. The main
project is not touched.

Usage::

    python -m hmspar.quicklook            # build quicklook/ and run it; prints where the report is
    python -m hmspar.quicklook --params   # only print the derived params.yaml
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from hmspar.errors import HmsparError
from hmspar.project import copy_source

#: The classification datasets the quick look keeps, one of each kind (customers with text and static
#: attributes, weekly products, fashion posts with pictures, small signed multi-class series), and at most
#: ``QUICK_RUNS_PER_DATASET`` runs of each; the recommendation datasets it keeps. Every model and every stage
#: family still runs: a stage costs seconds of start-up whatever its size, so the number of stages, not their
#: size, is what makes a quick look slow. Where none of the listed datasets exists (a params file of one's
#: own), every dataset is kept.
QUICK_DATASETS = ("retail", "sales_weekly", "trend", "shapes")
QUICK_RUNS_PER_DATASET = 1
QUICK_REC_DATASETS = ("shop",)
#: Simulated sets with more entities than this are cut to ``max(QUICK_MIN_ENTITIES, n // QUICK_SHRINK)``.
QUICK_SHRINK = 8
QUICK_MIN_ENTITIES = 1500
QUICK_MIN_FROM = 2000
#: Step budgets of every optimiser-step recipe (HMSPAR, the torch baselines, the torch recommenders).
QUICK_STEPS = {"max_steps": 300, "min_steps": 60}
QUICK_REC_STEPS = {"max_steps": 300, "min_steps": 50, "eval_every": 50, "patience": 2, "val_max_users": 2000}
QUICK_SHOP = {"n_users": 2000, "n_items": 800}
QUICK_DENSE = {"n_users": 200, "max_events": 300}
QUICK_KERNELS = 2000          # MiniRocket
QUICK_TLOSS_STEPS = 100       # T-Loss encoder steps
QUICK_BOOTSTRAP = 200         # resamples of both tracks' bootstraps


def _cap(section: dict[str, Any], key: str, cap: int) -> None:
    """``section[key] = min(section[key], cap)``, or ``cap`` where the key is absent."""
    section[key] = min(section.get(key, cap), cap)


def _shrink_train(section: dict[str, Any], steps: dict[str, int]) -> None:
    """Cap a ``train`` section's step budget in place: ``max_steps`` and ``min_steps`` at most
    ``steps``' values, and ``patience_steps`` (when set) at most ``min_steps``."""
    for key, cap in steps.items():
        section[key] = min(section[key], cap) if isinstance(section.get(key), int) and section[key] > 0 else cap
    if isinstance(section.get("patience_steps"), int):
        section["patience_steps"] = min(section["patience_steps"], steps["min_steps"])


def _keep_subset(p: dict[str, Any]) -> None:
    """Keep, in place, the datasets of ``QUICK_DATASETS`` (all where none of them exists) with their first
    ``QUICK_RUNS_PER_DATASET`` runs, HMSPAR and ablation runs of those runs only (the ablation: its first
    remaining run), and the recommendation datasets of ``QUICK_REC_DATASETS`` (likewise; a recommender's
    ``by_dataset`` entries of the datasets left out go with them)."""
    datasets = p.get("datasets") or {}
    keep = [name for name in datasets if name in QUICK_DATASETS] or list(datasets)
    p["datasets"] = {name: datasets[name] for name in keep}
    runs = p.get("runs") or {}
    p["runs"] = {d: dict(list(r.items())[:QUICK_RUNS_PER_DATASET]) for d, r in runs.items()
                 if d in keep or d in (p.get("imports") or {})}
    kept_runs = {run for r in p["runs"].values() for run in r}
    p["hmspar_runs"] = {run: v for run, v in (p.get("hmspar_runs") or {}).items() if run in kept_runs}
    ablation = p.get("ablation") or {}
    remaining = [run for run in (ablation.get("runs") or {}) if run in kept_runs]
    if "runs" in ablation:
        ablation["runs"] = {remaining[0]: ablation["runs"][remaining[0]]} if remaining else {}
    rec = p.get("rec") or {}
    rec_sets = rec.get("datasets") or {}
    if rec_sets:
        rec_keep = [name for name in rec_sets if name in QUICK_REC_DATASETS] or list(rec_sets)
        rec["datasets"] = {name: rec_sets[name] for name in rec_keep}
        if "multimodal_datasets" in rec:
            rec["multimodal_datasets"] = [d for d in rec["multimodal_datasets"] if d in rec_keep]
        if isinstance(rec.get("global_time"), dict) and "datasets" in rec["global_time"]:
            rec["global_time"]["datasets"] = [d for d in rec["global_time"]["datasets"] if d in rec_keep]
        for section in (rec.get("recommenders") or {}).values():  # settings of a dropped dataset go too
            if isinstance(section, dict) and isinstance(section.get("by_dataset"), dict):
                section["by_dataset"] = {d: v for d, v in section["by_dataset"].items() if d in rec_keep}
                if not section["by_dataset"]:
                    del section["by_dataset"]


#: Quick caps by baseline model: (params key, cap).
QUICK_BASELINE_CAPS = {"minirocket": ("n_kernels", QUICK_KERNELS), "tloss": ("steps", QUICK_TLOSS_STEPS)}


def _shrink_baseline(section: dict[str, Any], kind: str, override: bool = False) -> None:
    """The quick budgets of a baseline's params section in place (``kind``: its registry model): the step
    budget of its ``train`` section, and MiniRocket's kernels or T-Loss's encoder steps. A shared
    ``baselines.<model>`` section gets the cap where it leaves the key to the model's default; a run's
    searched ``override`` only has the keys it sets capped, so it still overrides nothing else."""
    if isinstance(section.get("train"), dict) and "max_steps" in section["train"]:
        _shrink_train(section["train"], QUICK_STEPS)
    if kind in QUICK_BASELINE_CAPS:
        key, cap = QUICK_BASELINE_CAPS[kind]
        if not override or key in section:
            _cap(section, key, cap)


def quick_params(params: dict[str, Any]) -> dict[str, Any]:
    """The quick-look profile of ``params`` (a parsed params.yaml); ``params`` is not modified.

    One seed; the classification datasets of ``QUICK_DATASETS`` with at most ``QUICK_RUNS_PER_DATASET`` runs
    each, and the recommendation datasets of ``QUICK_REC_DATASETS`` (see :func:`_keep_subset`); simulated
    classification sets above ``QUICK_MIN_FROM`` entities cut by ``QUICK_SHRINK``;
    no k-fold model selection on small runs (``selection.small_train_rows: 0``); HMSPAR and the torch
    baselines at 300 optimiser steps; MiniRocket at 2,000 kernels, T-Loss at 100
    encoder steps; the modality ablation on one run; 200 bootstrap resamples; the shop at 2,000 users and
    800 items, the dense shop at 200 users; the torch recommenders at 300 steps. Model lists, tasks, splits
    and every other setting stay as they are.
    """
    p = copy.deepcopy(params)
    p["seeds"] = [sorted(p.get("seeds") or [0])[0]]
    _keep_subset(p)
    for cfg in p.get("datasets", {}).values():
        n = cfg.get("n_entities")
        if isinstance(n, int) and n > QUICK_MIN_FROM:
            cfg["n_entities"] = max(QUICK_MIN_ENTITIES, n // QUICK_SHRINK)
    # no k-fold refits on the small runs: every run fits once on its stored split
    p.setdefault("selection", {})["small_train_rows"] = 0
    _shrink_train(p.setdefault("train", {}), QUICK_STEPS)
    for run in p.get("hmspar_runs", {}).values():
        if isinstance(run.get("train"), dict):
            _shrink_train(run["train"], QUICK_STEPS)
    baselines = p.get("baselines", {})
    for name, section in baselines.items():
        _shrink_baseline(section, section.get("model", name))
    for runs in (p.get("runs") or {}).values():  # searched settings: runs.<dataset>.<run>.baselines.<model>
        for run in runs.values():
            for name, override in (run.get("baselines") or {}).items():
                _shrink_baseline(override, (baselines.get(name) or {}).get("model", name), override=True)
    if "evaluate" in p:
        _cap(p["evaluate"], "bootstrap_samples", QUICK_BOOTSTRAP)
    rec = p.get("rec", {})
    for cfg in rec.get("datasets", {}).values():
        if cfg.get("kind") == "shop":
            for key, cap in (QUICK_DENSE if cfg.get("max_events") else QUICK_SHOP).items():
                _cap(cfg, key, cap)
    for section in rec.get("recommenders", {}).values():
        for settings in [section, *(section.get("by_dataset") or {}).values()]:  # a dataset's own train too
            if isinstance(settings.get("train"), dict):
                for key, cap in QUICK_REC_STEPS.items():
                    _cap(settings["train"], key, cap)
    if rec.get("evaluate"):
        _cap(rec["evaluate"], "bootstrap_samples", QUICK_BOOTSTRAP)
    return p


def build(root: Path, dest: Path) -> Path:
    """Copy the project's source (no DVC outputs) into ``dest`` with the quick params, as a git repository."""
    params_path = root / "params.yaml"
    if not params_path.is_file():
        raise HmsparError(f"{params_path}: not found (run from the project root)")
    params = yaml.safe_load(params_path.read_text())
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    copy_source(root, dest, ("data/", "results/", "dvclive/", "metrics/", "plots/", "plots_rec/",
                             "plots_rec_ablation/", "report/", "timings/", "quicklook/"))
    (dest / "params.yaml").write_text(
        "# Quick-look profile written by `python -m hmspar.quicklook` from the project's params.yaml\n"
        "# (hmspar/quicklook.py: quick_params). Not results: one seed, reduced sizes and step budgets.\n"
        + yaml.safe_dump(quick_params(params), sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=quicklook", "-c", "user.email=quicklook@localhost", "commit", "-q",
                 "-m", "quick look"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hmspar.quicklook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default="quicklook", help="where the copy goes (default: quicklook/)")
    parser.add_argument("--params", action="store_true", help="print the derived params.yaml and stop")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if args.params:
        print(yaml.safe_dump(quick_params(yaml.safe_load((root / "params.yaml").read_text())), sort_keys=False))
        return 0
    try:
        dest = build(root, (root / args.dest).resolve())
    except HmsparError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"quicklook: project copied to {dest}; running dvc repro there", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(["dvc", "repro"], cwd=dest)
    minutes = (time.perf_counter() - t0) / 60
    if proc.returncode != 0:
        print(f"quicklook: dvc repro failed after {minutes:.1f} min (exit {proc.returncode})", file=sys.stderr)
        return proc.returncode
    print(f"quicklook: done in {minutes:.1f} min. Open {dest / 'report' / 'index.html'}; "
          f"tables in {dest / 'metrics'}, figures in {dest / 'plots'} and {dest / 'plots_rec'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
