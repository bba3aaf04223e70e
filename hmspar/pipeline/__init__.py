"""The library side of each DVC stage: read one params section, do the work, write declared outputs.

``stages/<name>.py`` are thin wrappers around these functions. Every output is written through an
atomic directory, so a failing stage leaves the previous output (or nothing) in place, never a half.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir

RAW_ROOT = Path("data/raw")
FEATURES_ROOT = Path("data/features")
RESULTS_ROOT = Path("results")
LIVE_ROOT = Path("dvclive")
TIMINGS_ROOT = Path("timings")  # fit/predict seconds: declared `cache: false` (host facts, not results)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """``params.yaml: runs.<dataset>.<run>`` — one dataset-task (optionally one group) that every model is
    evaluated on. ``dataset`` is not a params key here: it is the section the run is listed under."""

    task: str
    group: str | None = None
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


def seeds(params: dict[str, Any]) -> list[int]:
    value = params.get("seeds")
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise HmsparError(f"seeds: expected a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise HmsparError(f"seeds: duplicate seeds in {value!r}")
    return value


def baseline_section(params: dict[str, Any], model: str) -> dict[str, Any]:
    """A copy of ``baselines.<model>`` (its optional ``model`` key names the registry class)."""
    baselines = params.get("baselines") or {}
    if model not in baselines:
        raise HmsparError(f"baselines.{model}: no settings for model {model!r} in params.yaml")
    return dict(baselines[model] or {})


def baseline_registry_name(params: dict[str, Any], model: str) -> str:
    """The registry name behind ``baselines.<model>`` (``lightgbm_text`` -> ``lightgbm``)."""
    return baseline_section(params, model).get("model", model)


def dataset_module(params: dict[str, Any], name: str) -> str:
    """The simulator or importer module that dataset ``name`` loads by name (see ``stages/*.dynamic_imports``)."""
    from hmspar.data.generators import module_name

    section = dataset_section(params, name)
    return module_name(section.get("kind") or name if isinstance(section, dict) else name)


def generate(name: str, params: dict[str, Any], progress: bool = True) -> Path:
    """``generate@<name>``: simulate dataset ``name`` into ``data/raw/<name>/``."""
    from hmspar.data.generators import dataset_config, generator_module

    cfg = dataset_config(name, dataset_section(params, name))
    dataset = generator_module(cfg.kind).generate(cfg, progress=progress)
    dataset.name = name
    out = RAW_ROOT / name
    with atomic_dir(out) as tmp:
        dataset.save(tmp)
    return out


def convert(name: str, params: dict[str, Any], progress: bool = True) -> Path:
    """``convert@<name>``: raw dataset -> ``data/features/<name>/`` (images, text, static, splits)."""
    from hmspar.convert import TextConfig, convert_dataset
    from hmspar.data.generators import dataset_config

    cfg = dataset_config(name, dataset_section(params, name))
    text_cfg = build(TextConfig, params.get("text"), "text")
    out = FEATURES_ROOT / name
    with atomic_dir(out) as tmp:
        convert_dataset(RAW_ROOT / name, tmp, cfg, text_cfg, progress=progress)
    return out


def import_dataset(name: str, params: dict[str, Any], progress: bool = True) -> tuple[Path, Path]:
    """``import@<name>``: the user's file (``imports.<name>.path``) -> ``data/raw/<name>/`` -> features.

    One stage does both steps, so only ``imports.<name>`` and its file are dependencies: a simulated
    dataset never depends on ``data/external``.
    """
    if dataset_names(params).get(name) != "imports":
        raise HmsparError(f"imports.{name}: no such imported dataset in params.yaml")
    return generate(name, params, progress), convert(name, params, progress)


def _run_spec_dict(spec: RunSpec) -> dict[str, Any]:
    return {"dataset": spec.dataset, "task": spec.task, "group": spec.group}


def _hmspar_section(params: dict[str, Any], entry: HmsparRun) -> dict[str, Any]:
    section = deep_merge(params.get("model") or {}, entry.model)
    section["train"] = deep_merge(params.get("train") or {}, entry.train)
    return section


def train(run: str, params: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """``train@<run>``: HMSPAR on one run, one output folder per seed under ``results/hmspar/<run>/``.

    Reads ``model``, ``train``, ``seeds``, ``hmspar_runs.<run>`` and ``runs.<dataset>.<run>``.
    """
    from hmspar.runner import run_model

    spec, entry = hmspar_run(params, run)
    return run_model(
        model_name="hmspar",
        model_section=_hmspar_section(params, entry),
        where="model",
        features_dir=FEATURES_ROOT / spec.dataset,
        run_name=run,
        run_spec=_run_spec_dict(spec),
        seeds=seeds(params),
        out_dir=RESULTS_ROOT / "hmspar" / run,
        live_dir=LIVE_ROOT / run,
        progress=progress,
        timings_path=TIMINGS_ROOT / "hmspar" / f"{run}.json",
    )


@dataclasses.dataclass(frozen=True)
class AblationConfig:
    """``params.yaml: ablation`` — HMSPAR retrained with subsets of its modalities.

    ``variants`` maps a label (e.g. ``series+text``) to the ``model.modalities`` list it uses. ``runs`` maps
    each ablated run to its dataset (``ablation@<run>``, one DVC stage per run, trains every variant with
    every seed; results are reported as ``hmspar[<label>]``).
    """

    runs: dict[str, str] = dataclasses.field(default_factory=dict)
    variants: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, modalities in self.variants.items():
            if not modalities:
                raise ValueError(f"variants.{label}: list at least one modality")


def ablation(run: str, params: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """``ablation@<run>``: HMSPAR with each modality subset of ``ablation.variants`` on run ``run``.

    Outputs go to ``results/ablation/<run>/<variant>/seed<k>/``, which the evaluate stage reports as model
    ``hmspar[<variant>]`` next to the full model (the modality-ablation chart and table). Reads
    ``ablation.variants``, ``ablation.runs.<run>``, ``model``, ``train``, ``seeds``, ``hmspar_runs.<run>`` and
    ``runs.<dataset>.<run>``.
    """
    from hmspar.runner import run_model

    cfg = build(AblationConfig, params.get("ablation"), "ablation")
    if run not in cfg.runs:
        raise HmsparError(f"ablation.runs: run {run!r} is not ablated (ablation.runs: {', '.join(cfg.runs)})")
    spec, entry = hmspar_run(params, run)
    if cfg.runs[run] != spec.dataset:
        raise HmsparError(f"ablation.runs.{run}: {cfg.runs[run]!r}, but the run's dataset is {spec.dataset!r}")
    records: list[dict[str, Any]] = []
    with atomic_dir(RESULTS_ROOT / "ablation" / run) as tmp:
        for label, modalities in cfg.variants.items():
            section = _hmspar_section(params, entry)
            section["modalities"] = list(modalities)
            records += run_model(
                model_name="hmspar",
                model_section=section,
                where=f"ablation.variants.{label}",
                features_dir=FEATURES_ROOT / spec.dataset,
                run_name=run,
                run_spec=_run_spec_dict(spec),
                seeds=seeds(params),
                out_dir=tmp / label,
                live_dir=None,
                progress=progress,
                model_label=f"hmspar[{label}]",
                timings_path=TIMINGS_ROOT / "ablation" / run / f"{label}.json",
            )
    return records


def baseline(dataset: str, model: str, params: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """``baseline_<family>@<dataset>-<model>``: one baseline on every run of one dataset, every seed.

    Reads ``baselines.<model>``, ``seeds`` and ``runs.<dataset>`` (never ``hmspar_runs``).

    ``model`` names a ``baselines.<model>`` section; the section's optional ``model`` key picks the registry
    class, so one class can appear under several names with different settings (``lightgbm_text``).
    """
    from hmspar.runner import run_model

    runs = run_specs(params, dataset)
    section = baseline_section(params, model)
    registry_name = section.pop("model", model)  # a named variant, e.g. lightgbm_text: {model: lightgbm, ...}
    out_root = RESULTS_ROOT / "baselines" / dataset / model
    records: list[dict[str, Any]] = []
    with atomic_dir(out_root) as tmp:
        for run, spec in runs.items():
            records += run_model(
                model_name=registry_name,
                model_label=model,
                model_section=section,
                where=f"baselines.{model}",
                features_dir=FEATURES_ROOT / dataset,
                run_name=run,
                run_spec=_run_spec_dict(spec),
                seeds=seeds(params),
                out_dir=tmp / run,
                live_dir=None,
                progress=progress,
                timings_path=TIMINGS_ROOT / "baselines" / dataset / model / f"{run}.json",
            )
    return records


def evaluate(params: dict[str, Any]) -> dict[str, Path]:
    """``evaluate``: leaderboard, significance, headline metrics, plots and the results table.

    Reads ``params.yaml: evaluate`` only, every run output under ``results/``, the DVCLive curves and the
    example images under ``data/features``; see :func:`hmspar.report.evaluate.evaluate`.
    """
    from hmspar.report.evaluate import evaluate as run_evaluate
    from hmspar.report.leaderboard import EvaluateConfig

    cfg = build(EvaluateConfig, params.get("evaluate"), "evaluate")  # fail on a bad key before reading results
    return run_evaluate(RESULTS_ROOT, FEATURES_ROOT, cfg, Path("metrics"), Path("plots"), live_root=LIVE_ROOT)
