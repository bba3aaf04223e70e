"""Model stages: ``train@<run>`` (HMSPAR), ``ablation@<run>`` (HMSPAR on modality subsets) and
``baseline_<family>@<dataset>-<model>``, all through :func:`hmspar.runner.run_model`."""

from __future__ import annotations

import dataclasses
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir
from hmspar.models.registry import MODELS
from hmspar.pipeline import (FEATURES_ROOT, LIVE_ROOT, RESULTS_ROOT, TIMINGS_ROOT, HmsparRun, RunSpec,
                             baseline_section, deep_merge, hmspar_run, run_specs, seeds)
from hmspar.training.selection import SelectionConfig


def _run_spec_dict(spec: RunSpec) -> dict[str, Any]:
    return {"dataset": spec.dataset, "task": spec.task, "group": spec.group}


def selection_config(params: dict[str, Any]) -> SelectionConfig:
    """``params.yaml: selection``, typed: built once per stage and passed to every fit of it."""
    return build(SelectionConfig, params.get("selection"), "selection")


def hmspar_section(params: dict[str, Any], entry: HmsparRun) -> dict[str, Any]:
    """HMSPAR's model section for one run: ``model`` and ``train`` with the run's own overrides merged in."""
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
        model_section=MODELS.config("hmspar", hmspar_section(params, entry), "model"),  # typed, once
        where="model",
        features_dir=FEATURES_ROOT / spec.dataset,
        run_name=run,
        run_spec=_run_spec_dict(spec),
        seeds=seeds(params),
        out_dir=RESULTS_ROOT / "hmspar" / run,
        live_dir=LIVE_ROOT / run,
        progress=progress,
        timings_path=TIMINGS_ROOT / "hmspar" / f"{run}.json",
        selection=selection_config(params),
    )


@dataclasses.dataclass(frozen=True)
class AblationConfig:
    """``params.yaml: ablation`` — HMSPAR retrained with subsets of its modalities, or other settings.

    ``variants`` maps a label to either the ``model.modalities`` list it uses (``series+text: [series, text]``)
    or a mapping of ``model`` settings merged over the run's (``lstm_encoder: {series: {encoder: lstm}}``: the
    same fusion with another series encoder). ``runs`` maps each ablated run to its dataset (``ablation@<run>``,
    one DVC stage per run, trains every variant with every seed; results are reported as ``hmspar[<label>]``).
    """

    runs: dict[str, str] = dataclasses.field(default_factory=dict)
    variants: dict[str, list[str] | dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, variant in self.variants.items():
            if not variant:
                raise ValueError(f"variants.{label}: list at least one modality, or give model settings")

    def overrides(self, label: str) -> dict[str, Any]:
        """The ``model`` settings variant ``label`` merges over the run's section."""
        variant = self.variants[label]
        return {"modalities": list(variant)} if isinstance(variant, list) else dict(variant)


def ablation(run: str, params: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """``ablation@<run>``: HMSPAR with each variant of ``ablation.variants`` (a modality subset or other model
    settings) on run ``run``.

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
    selection = selection_config(params)
    records: list[dict[str, Any]] = []
    with atomic_dir(RESULTS_ROOT / "ablation" / run) as tmp:
        for label in cfg.variants:
            where = f"ablation.variants.{label}"
            section = MODELS.config("hmspar", deep_merge(hmspar_section(params, entry), cfg.overrides(label)), where)
            records += run_model(
                model_name="hmspar",
                model_section=section,
                where=where,
                features_dir=FEATURES_ROOT / spec.dataset,
                run_name=run,
                run_spec=_run_spec_dict(spec),
                seeds=seeds(params),
                out_dir=tmp / label,
                live_dir=None,
                progress=progress,
                model_label=f"hmspar[{label}]",
                timings_path=TIMINGS_ROOT / "ablation" / run / f"{label}.json",
                selection=selection,
            )
    return records


def baseline_run_section(params: dict[str, Any], model: str, spec: RunSpec) -> dict[str, Any]:
    """``baselines.<model>`` for one run: the run's searched settings (``runs.<dataset>.<run>.baselines.<model>``,
    chosen by the equal-budget search, :mod:`hmspar.search`) merged over the shared keys."""
    shared = baseline_section(params, model)
    if "per_run" in shared:
        raise HmsparError(f"baselines.{model}.per_run: searched settings live with their run now, in "
                          f"runs.<dataset>.<run>.baselines.{model} (python -m hmspar.search --write puts them there)")
    return deep_merge(shared, spec.baselines.get(model) or {})


def baseline(dataset: str, model: str, params: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """``baseline_<family>@<dataset>-<model>``: one baseline on every run of one dataset, every seed.

    Reads ``baselines.<model>``, ``seeds`` and ``runs.<dataset>`` (never ``hmspar_runs``). A run with
    searched settings (``runs.<dataset>.<run>.baselines.<model>``) gets them merged over the shared ones.

    ``model`` names a ``baselines.<model>`` section; the section's optional ``model`` key picks the registry
    class, so one class can appear under several names with different settings (``lightgbm_text``).
    """
    from hmspar.runner import run_model

    runs = run_specs(params, dataset)
    selection = selection_config(params)
    out_root = RESULTS_ROOT / "baselines" / dataset / model
    records: list[dict[str, Any]] = []
    with atomic_dir(out_root) as tmp:
        for run, spec in runs.items():
            section = baseline_run_section(params, model, spec)
            registry_name = section.pop("model", model)  # a named variant, e.g. lightgbm_text: {model: lightgbm}
            records += run_model(
                model_name=registry_name,
                model_label=model,
                model_section=MODELS.config(registry_name, section, f"baselines.{model}"),  # typed, once
                where=f"baselines.{model}",
                features_dir=FEATURES_ROOT / dataset,
                run_name=run,
                run_spec=_run_spec_dict(spec),
                seeds=seeds(params),
                out_dir=tmp / run,
                live_dir=None,
                progress=progress,
                timings_path=TIMINGS_ROOT / "baselines" / dataset / model / f"{run}.json",
                selection=selection,
            )
    return records
