"""Modality ablation of the multimodal recommenders: the library side of the
``rec_ablation@<dataset>-<model>`` stage.

For one model it refits the full configuration and one variant per entry of ``rec.ablation.variants``
(each drops one item modality) at the seeds of ``rec.ablation.seeds``, through the very code path of the
``recommend`` stages (:func:`hmspar.rec.runner.recommend`), so every variant folder has the format of
``results/rec/<dataset>/<model>/`` and the ``full`` folder holds the same bytes as the main run's
``seed_<s>`` folders for those seeds (same config, same seed, same data, same code).

How a variant drops modality ``m`` from a model (:func:`variant_section`):

* the model has a boolean switch for ``m`` (MTSTRec's ``use_style``/``use_text``/``use_price``, its
  module's ``SWITCHES``): the switch is turned off, as the original's command line does;
* otherwise ``m`` is removed from the model's ``inputs``;
* a model without ``m`` among its inputs (or whose switch is already off) skips the variant, and so does
  one whose config rejects the reduced inputs (e.g. no content modality left); the reason is recorded.

Outputs (``results/rec_ablation/<dataset>/<model>/``, byte-identical for the same params and inputs)::

    variants.json        variant -> {"drops", "status": "fitted" | "skipped", "reason", "section"}
    <variant>/           meta.json and seed_<s>/ exactly as the recommend stage writes them
                         (``full`` first, then each fitted variant)

Wall-clock timings go to ``metrics/rec_ablation_timings/<dataset>-<model>.json`` (``cache: false``).
"""

from __future__ import annotations

import copy
import importlib
import json
import shutil
from pathlib import Path
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir, write_json
from hmspar.rec.ablation_config import FULL, AblationConfig
from hmspar.rec.registry import REGISTRY, build_recommender, recommender_class
from hmspar.rec.runner import FEATURES_ROOT, rec_section, recommend, recommender_section

RESULTS_ROOT = Path("results/rec_ablation")
TIMINGS_ROOT = Path("metrics/rec_ablation_timings")


def ablation_config(params: dict[str, Any]) -> AblationConfig:
    """``rec.ablation`` as an :class:`AblationConfig` (errors name the key)."""
    cfg = build(AblationConfig, rec_section(params, "ablation"), "rec.ablation")
    for m in cfg.models:
        if m not in REGISTRY:
            raise HmsparError(f"rec.ablation.models: unknown recommender {m!r} (registered: {', '.join(REGISTRY)})")
        if not REGISTRY[m].startswith("hmspar.rec.models."):
            raise HmsparError(f"rec.ablation.models: {m!r} is not a multimodal model of hmspar/rec/models/ "
                              "(the rec_ablation stage depends on those files only)")
    return cfg


def switches(model: str) -> dict[str, str]:
    """The model's boolean modality switches (config field -> item modality): its module's ``SWITCHES``."""
    cls = recommender_class(model)
    return dict(getattr(importlib.import_module(cls.__module__), "SWITCHES", {}))


def variant_section(model: str, section: dict[str, Any] | None, modality: str) -> tuple[dict[str, Any] | None, str]:
    """The ``rec.recommenders.<model>`` section with ``modality`` dropped (see the module docstring).

    Returns
    -------
    section : dict or None
        The variant's settings, or None when the model skips the variant.
    how : str
        How the modality was dropped (``"use_text=false"``, ``"inputs without text"``) or why the
        variant is skipped.
    """
    cls = recommender_class(model)
    section = copy.deepcopy(section or {})
    cfg = build(cls.Config, section, f"rec.recommenders.{model}")
    inputs = list(getattr(cfg, "inputs", ["id"]))
    if modality not in inputs:
        return None, f"no {modality} input"
    switch = next((sw for sw, m in switches(model).items() if m == modality), None)
    if switch is not None:
        if not getattr(cfg, switch):
            return None, f"{switch} already false"
        section[switch] = False
        how = f"{switch}=false"
    else:
        section["inputs"] = [m for m in inputs if m != modality]
        how = f"inputs without {modality}"
    try:
        build(cls.Config, section, f"rec.recommenders.{model}")
    except HmsparError as exc:
        return None, f"config rejects it: {exc}"
    return section, how


def rec_ablation(dataset: str, model: str, params: dict[str, Any], features_root: Path = FEATURES_ROOT,
                 results_root: Path = RESULTS_ROOT, timings_root: Path = TIMINGS_ROOT) -> Path:
    """Fit ``model``'s full configuration and every ``rec.ablation.variants`` variant on ``dataset`` at
    ``rec.ablation.seeds``; returns the output folder (see the module docstring)."""
    cfg = ablation_config(params)
    if model not in REGISTRY:
        raise HmsparError(f"unknown recommender {model!r} (registered: {', '.join(REGISTRY)})")
    base = recommender_section(params, model, dataset)
    build_recommender(model, base, cfg.seeds[0])  # fail on a bad key before fitting anything
    plan: dict[str, dict[str, Any]] = {FULL: {"drops": None, "status": "fitted", "reason": "full model",
                                              "section": base}}
    for name, modality in cfg.variants.items():
        section, how = variant_section(model, base, modality)
        plan[name] = {"drops": modality, "status": "skipped" if section is None else "fitted",
                      "reason": how, "section": section}
    protocol = rec_section(params, "protocol")
    out = Path(results_root) / dataset / model
    timings: dict[str, Any] = {}
    with atomic_dir(out) as tmp:
        work = tmp / ".work"
        for name, entry in plan.items():
            if entry["section"] is None:
                continue
            sub = {"seeds": list(cfg.seeds), "rec": {"protocol": protocol, "recommenders": {model: entry["section"]}}}
            run_dir = recommend(dataset, model, sub, features_root=features_root, results_root=work / name,
                                timings_root=work / f"{name}-timings")
            shutil.move(str(run_dir), str(tmp / name))
            timings[name] = json.loads((work / f"{name}-timings" / f"{dataset}-{model}.json").read_text())
        shutil.rmtree(work)
        with open(tmp / "variants.json", "w") as fh:
            json.dump(plan, fh, indent=2, sort_keys=True)
            fh.write("\n")
    write_json(Path(timings_root) / f"{dataset}-{model}.json", timings)
    return out
