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


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """``params.yaml: runs.<run>`` — one dataset-task (optionally one group), with optional overrides.

    ``model`` and ``train`` hold per-run overrides merged over the top-level ``model``/``train``
    sections (e.g. a larger batch for the biggest dataset); they are tracked per run, so changing one
    run's override reruns that run only.
    """

    dataset: str
    task: str
    group: str | None = None
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


def _datasets(params: dict[str, Any]) -> dict[str, Any]:
    datasets = params.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise HmsparError("params.yaml: 'datasets' must be a non-empty mapping")
    return datasets


def dataset_section(params: dict[str, Any], name: str) -> dict[str, Any]:
    datasets = _datasets(params)
    if name not in datasets:
        raise HmsparError(f"unknown dataset {name!r} (datasets in params.yaml: {', '.join(datasets)})")
    return datasets[name]


def run_specs(params: dict[str, Any]) -> dict[str, RunSpec]:
    """All runs declared in params, validated against the declared datasets."""
    runs = params.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise HmsparError("params.yaml: 'runs' must be a non-empty mapping of run name -> {dataset, task}")
    datasets = _datasets(params)
    specs = {}
    for name, section in runs.items():
        spec = build(RunSpec, section, f"runs.{name}")
        if spec.dataset not in datasets:
            raise HmsparError(f"runs.{name}.dataset: unknown dataset {spec.dataset!r}")
        specs[name] = spec
    return specs


def seeds(params: dict[str, Any]) -> list[int]:
    value = params.get("seeds")
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise HmsparError(f"seeds: expected a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise HmsparError(f"seeds: duplicate seeds in {value!r}")
    return value


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


def train(run: str, params: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """``train@<run>``: HMSPAR on one run, one output folder per seed under ``results/hmspar/<run>/``."""
    from hmspar.training.run import run_model

    specs = run_specs(params)
    if run not in specs:
        raise HmsparError(f"unknown run {run!r} (runs in params.yaml: {', '.join(specs)})")
    spec = specs[run]
    section = deep_merge(params.get("model") or {}, spec.model)
    section["train"] = deep_merge(params.get("train") or {}, spec.train)
    return run_model(
        model_name="hmspar",
        model_section=section,
        where="model",
        features_dir=FEATURES_ROOT / spec.dataset,
        run_name=run,
        run_spec={"dataset": spec.dataset, "task": spec.task, "group": spec.group},
        seeds=seeds(params),
        out_dir=RESULTS_ROOT / "hmspar" / run,
        live_dir=LIVE_ROOT / run,
        progress=progress,
        selection=params.get("selection"),
    )


@dataclasses.dataclass(frozen=True)
class AblationConfig:
    """``params.yaml: ablation`` — HMSPAR retrained with subsets of its modalities.

    ``variants`` maps a label (e.g. ``series+text``) to the ``model.modalities`` list it uses; each
    variant is trained on each run of ``runs`` with every seed and reported as ``hmspar[<label>]``.
    """

    runs: list[str] = dataclasses.field(default_factory=list)
    variants: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, modalities in self.variants.items():
            if not modalities:
                raise ValueError(f"variants.{label}: list at least one modality")


def ablation(params: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """``ablation``: HMSPAR with each modality subset of ``ablation.variants`` on each of ``ablation.runs``.

    Outputs go to ``results/ablation/<variant>/<run>/seed<k>/``, which the evaluate stage reports as model
    ``hmspar[<variant>]`` next to the full model (the modality-ablation chart and table).
    """
    from hmspar.training.run import run_model

    cfg = build(AblationConfig, params.get("ablation"), "ablation")
    specs = run_specs(params)
    unknown = [r for r in cfg.runs if r not in specs]
    if unknown:
        raise HmsparError(f"ablation.runs: unknown run {unknown[0]!r} (runs in params.yaml: {', '.join(specs)})")
    records: list[dict[str, Any]] = []
    with atomic_dir(RESULTS_ROOT / "ablation") as tmp:
        for label, modalities in cfg.variants.items():
            for run in cfg.runs:
                spec = specs[run]
                section = deep_merge(params.get("model") or {}, spec.model)
                section["modalities"] = list(modalities)
                section["train"] = deep_merge(params.get("train") or {}, spec.train)
                records += run_model(
                    model_name="hmspar",
                    model_section=section,
                    where=f"ablation.variants.{label}",
                    features_dir=FEATURES_ROOT / spec.dataset,
                    run_name=run,
                    run_spec={"dataset": spec.dataset, "task": spec.task, "group": spec.group},
                    seeds=seeds(params),
                    out_dir=tmp / label / run,
                    live_dir=None,
                    progress=progress,
                    model_label=f"hmspar[{label}]",
                    selection=params.get("selection"),
                )
    return records


def baseline(dataset: str, model: str, params: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """``baseline@<dataset>-<model>``: one baseline on every run of one dataset, every seed.

    ``model`` names a ``baselines.<model>`` section; the section's optional ``model`` key picks the registry
    class, so one class can appear under several names with different settings (``lightgbm_text``).
    """
    from hmspar.training.run import run_model

    dataset_section(params, dataset)
    baselines = params.get("baselines") or {}
    if model not in baselines:
        raise HmsparError(f"baselines.{model}: no settings for model {model!r} in params.yaml")
    runs = {name: spec for name, spec in run_specs(params).items() if spec.dataset == dataset}
    if not runs:
        raise HmsparError(f"no run in params.yaml uses dataset {dataset!r}")
    section = dict(baselines[model] or {})
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
                run_spec={"dataset": spec.dataset, "task": spec.task, "group": spec.group},
                seeds=seeds(params),
                out_dir=tmp / run,
                live_dir=None,
                progress=progress,
                selection=params.get("selection"),
            )
    return records
