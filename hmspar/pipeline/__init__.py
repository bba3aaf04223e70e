"""The library side of each DVC stage: read one params section, do the work, write declared outputs.

``stages/<name>.py`` are thin wrappers around one function each, in one module per kind of stage, so a
stage imports (and depends on) only its own code: :mod:`~hmspar.pipeline.data` (generate, convert, import),
:mod:`~hmspar.pipeline.fit` (train, ablation, baseline), :mod:`~hmspar.pipeline.report` (evaluate). This
module holds what they share: reading and cross-checking the ``datasets``/``imports``/``runs``/
``hmspar_runs``/``seeds`` sections (no heavy imports). Every output is written through an atomic
directory, so a failing stage leaves the previous output (or nothing) in place, never a half.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.params import seeds  # noqa: F401  (re-exported: the stages read it from here)

RAW_ROOT = Path("data/raw")
FEATURES_ROOT = Path("data/features")
GAF_EXAMPLES_ROOT = Path("data/gaf_examples")  # <dataset>.npz: the GAF figure's entities, picked by convert
RESULTS_ROOT = Path("results")
#: The subfolders of ``results/`` the evaluate stage reads (HMSPAR, its modality ablation, the baselines); its
#: DVC dependencies in pipeline.yaml name exactly these, so it neither reads nor waits for the rec track.
CLASSIFICATION_RESULTS = ("hmspar", "ablation", "baselines")
LIVE_ROOT = Path("dvclive")
TIMINGS_ROOT = Path("timings")  # fit/predict seconds: declared `cache: false` (host facts, not results)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """``params.yaml: runs.<dataset>.<run>`` — one dataset-task (optionally one group) that every model is
    evaluated on. ``dataset`` is not a params key here: it is the section the run is listed under.

    ``baselines.<model>`` holds settings chosen for this run by the equal-budget search
    (:mod:`hmspar.search`), merged over ``baselines.<model>`` for this run only; it lives with the run so
    that a search on one run reruns the stages of that run's dataset only.
    """

    task: str
    group: str | None = None
    baselines: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    dataset: str = dataclasses.field(default="", init=True)


@dataclasses.dataclass(frozen=True)
class HmsparRun:
    """``params.yaml: hmspar_runs.<run>`` — a run HMSPAR trains (``train@<run>``), with optional overrides.

    ``dataset`` repeats the section of ``runs`` the run is listed under (DVC needs it to name the run's
    features); ``model`` and ``train`` hold per-run overrides merged over the top-level ``model``/``train``
    sections. Only HMSPAR stages (``train``, ``ablation``) read this section, so changing one run's override
    reruns that run's HMSPAR stages and no baseline.
    """

    dataset: str
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (override wins)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _mapping(params: dict[str, Any], key: str, required: bool = True) -> dict[str, Any]:
    value = params.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or (required and not value):
        raise HmsparError(f"params.yaml: '{key}' must be a non-empty mapping, got {value!r}")
    return value


def dataset_names(params: dict[str, Any]) -> dict[str, str]:
    """Every declared dataset -> the params section holding it (``datasets`` or ``imports``)."""
    simulated = _mapping(params, "datasets", required=False)
    imported = _mapping(params, "imports", required=False)
    if not simulated and not imported:
        raise HmsparError("params.yaml: declare at least one dataset under 'datasets' (simulated) or 'imports'")
    both = sorted(set(simulated) & set(imported))
    if both:
        raise HmsparError(f"params.yaml: dataset {both[0]!r} is declared under both 'datasets' and 'imports'")
    return {**{name: "datasets" for name in simulated}, **{name: "imports" for name in imported}}


def dataset_section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """``datasets.<name>`` (a simulator) or ``imports.<name>`` (the user's file), with a clear error."""
    names = dataset_names(params)
    if name not in names:
        raise HmsparError(f"unknown dataset {name!r} (datasets in params.yaml: {', '.join(names)})")
    return params[names[name]][name]


def run_specs(params: dict[str, Any], dataset: str | None = None) -> dict[str, RunSpec]:
    """The runs of ``params.yaml: runs`` (``runs.<dataset>.<run>``), of every dataset or of one.

    Each run name appears once across all datasets and names a declared dataset.
    """
    grouped = _mapping(params, "runs")
    datasets = dataset_names(params)
    known = params.get("baselines") or {}
    specs: dict[str, RunSpec] = {}
    for ds, runs in grouped.items():
        if ds not in datasets:
            raise HmsparError(f"runs.{ds}: unknown dataset {ds!r} (datasets in params.yaml: {', '.join(datasets)})")
        if not isinstance(runs, dict) or not runs:
            raise HmsparError(f"runs.{ds}: expected a mapping of run name -> {{task, group}}, got {runs!r}")
        for name, section in runs.items():
            if name in specs:
                raise HmsparError(f"runs.{ds}.{name}: run {name!r} is also listed under runs.{specs[name].dataset}")
            if isinstance(section, dict) and "dataset" in section:
                raise HmsparError(f"runs.{ds}.{name}.dataset: not a key here (the run's dataset is the section "
                                  f"it is listed under, {ds!r})")
            spec = build(RunSpec, section, f"runs.{ds}.{name}")
            for model in spec.baselines:
                if model not in known:
                    raise HmsparError(f"runs.{ds}.{name}.baselines.{model}: unknown baseline (baselines in "
                                      f"params.yaml: {', '.join(known) or 'none'})")
            specs[name] = dataclasses.replace(spec, dataset=ds)
    if dataset is not None:
        if dataset not in datasets:
            raise HmsparError(f"unknown dataset {dataset!r} (datasets in params.yaml: {', '.join(datasets)})")
        specs = {name: spec for name, spec in specs.items() if spec.dataset == dataset}
        if not specs:
            raise HmsparError(f"runs.{dataset}: no run in params.yaml uses dataset {dataset!r}")
    return specs


def hmspar_run(params: dict[str, Any], run: str) -> tuple[RunSpec, HmsparRun]:
    """Run ``run``'s spec and its HMSPAR entry (``hmspar_runs.<run>``), checked against each other."""
    entries = _mapping(params, "hmspar_runs")
    specs = run_specs(params)
    if run not in entries:
        raise HmsparError(f"unknown run {run!r} (hmspar_runs in params.yaml: {', '.join(entries)})")
    entry = build(HmsparRun, entries[run], f"hmspar_runs.{run}")
    if run not in specs:
        raise HmsparError(f"hmspar_runs.{run}: run {run!r} is not listed under runs.{entry.dataset} "
                          f"(every HMSPAR run is one of the runs every model is evaluated on)")
    if specs[run].dataset != entry.dataset:
        raise HmsparError(f"hmspar_runs.{run}.dataset: {entry.dataset!r}, but the run is listed under "
                          f"runs.{specs[run].dataset}")
    return specs[run], entry


def check_runs(params: dict[str, Any]) -> None:
    """Every ``hmspar_runs`` entry agrees with ``runs`` (same dataset), and every run of ``runs`` is trained
    by HMSPAR, so the leaderboard compares every model on every run."""
    entries = _mapping(params, "hmspar_runs")
    for run in entries:
        hmspar_run(params, run)
    missing = [run for run in run_specs(params) if run not in entries]
    if missing:
        spec = run_specs(params)[missing[0]]
        raise HmsparError(f"runs.{spec.dataset}.{missing[0]}: no HMSPAR entry; add "
                          f"'hmspar_runs.{missing[0]}: {{dataset: {spec.dataset}}}'")




def baseline_section(params: dict[str, Any], model: str) -> dict[str, Any]:
    """A copy of ``baselines.<model>`` (its optional ``model`` key names the registry class)."""
    baselines = params.get("baselines") or {}
    if model not in baselines:
        raise HmsparError(f"baselines.{model}: no settings for model {model!r} in params.yaml")
    return dict(baselines[model] or {})


def baseline_registry_name(params: dict[str, Any], model: str) -> str:
    """The registry name behind ``baselines.<model>`` (``lightgbm_text`` -> ``lightgbm``)."""
    return baseline_section(params, model).get("model", model)
