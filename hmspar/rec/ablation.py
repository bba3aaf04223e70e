"""Modality ablation of the multimodal recommenders: the library side of the
``rec_ablation@<dataset>-<model>`` stage.

For one model it fits one variant per entry of ``rec.ablation.variants`` (each drops one item modality) at
the seeds of ``rec.ablation.seeds``, through the very code path of the ``recommend`` stages
(:func:`hmspar.rec.runner.recommend`), so every variant folder has the format of ``results/rec/<dataset>/<model>/``.
The ``full`` folder holds the main run's ``seed_<s>`` folders for those seeds: the same config, seed, data and
code give the same bytes, so they are copied from ``results/rec/<dataset>/<model>/`` (the ``recommend_mm``
stage's output, a dependency of the ablation stage, so DVC runs it first and keeps it current) when that
run's ``meta.json`` records this config and protocol and every ablation seed (:func:`main_run_reuse`);
otherwise (the main run absent, other seeds or settings) the full model is fitted as the variants are.

How a variant drops modality ``m`` from a model (:func:`variant_section`):

* the model has a boolean switch for ``m`` (MTSTRec's ``use_style``/``use_text``/``use_price``, its
  module's ``SWITCHES``): the switch is turned off, as the original's command line does;
* otherwise ``m`` is removed from the model's ``inputs``;
* a model without ``m`` among its inputs (or whose switch is already off) skips the variant, and so does
  one whose config rejects the reduced inputs (e.g. no content modality left); the reason is recorded.

Outputs (``results/rec_ablation/<dataset>/<model>/``, byte-identical for the same params and inputs)::

    variants.json        variant -> {"drops", "status": "fitted" | "reused" | "skipped", "reason", "section"}
    <variant>/           meta.json and seed_<s>/ exactly as the recommend stage writes them
                         (``full`` first, then each fitted variant)

Wall-clock timings go to ``metrics/rec_ablation_timings/<dataset>-<model>.json`` (``cache: false``; a reused
full model records where it came from instead of its fit times).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import shutil
from pathlib import Path
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir, write_json
from hmspar.rec.ablation_config import FULL, AblationConfig
from hmspar.rec.data import protocol_record
from hmspar.rec.pictures import PICTURES_ROOT, resolve_lab
from hmspar.rec.registry import REGISTRY, build_recommender, recommender_class
from hmspar.rec.runner import (FEATURES_ROOT, RESULTS_ROOT as MAIN_ROOT, protocol_config, rec_section, recommend,
                               recommender_section)

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
    main = (params.get("rec") or {}).get("multimodal_models")
    if main is not None:  # the stage reads the main run's folder (a dependency in dvc.yaml)
        for m in cfg.models:
            if m not in main:
                raise HmsparError(f"rec.ablation.models: {m!r} is not in rec.multimodal_models ({', '.join(main)}); "
                                  "the ablation's full model is the main run's, so the main run must include it")
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


def main_run_reuse(main_dir: Path, model: str, section: dict[str, Any], seeds: list[int],
                   params: dict[str, Any], dataset: str) -> str | None:
    """Why the main run at ``main_dir`` cannot stand for the full model at ``seeds``, or None when it can: its
    ``meta.json`` records the config that ``section`` builds (after :func:`resolve_lab`, as
    :func:`~hmspar.rec.runner.recommend` builds it), the protocol of ``params`` and every seed, and each
    ``seed_<s>`` folder is there."""
    meta_path = Path(main_dir) / "meta.json"
    if not meta_path.is_file():
        return f"no main run at {main_dir}"
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise HmsparError(f"{meta_path}: not valid JSON ({exc}); rerun the recommend stage") from None
    cfg = build_recommender(model, resolve_lab(section, dataset, model, PICTURES_ROOT), seeds[0]).cfg
    if meta.get("config") != json.loads(json.dumps(dataclasses.asdict(cfg))):  # recommend's record of it
        return "the main run has other settings"
    if meta.get("protocol") != json.loads(json.dumps(protocol_record(protocol_config(params)))):
        return "the main run has another protocol"
    missing = [s for s in seeds if s not in meta.get("seeds", []) or not (Path(main_dir) / f"seed_{s}").is_dir()]
    if missing:
        return f"the main run lacks seeds {missing}"
    return None


def rec_ablation(dataset: str, model: str, params: dict[str, Any], features_root: Path = FEATURES_ROOT,
                 results_root: Path = RESULTS_ROOT, timings_root: Path = TIMINGS_ROOT,
                 main_root: Path | None = MAIN_ROOT) -> Path:
    """``model``'s full configuration and every ``rec.ablation.variants`` variant on ``dataset`` at
    ``rec.ablation.seeds``; returns the output folder (see the module docstring). The full model is copied
    from ``main_root/<dataset>/<model>`` when :func:`main_run_reuse` allows it (``main_root=None``: always
    fitted)."""
    cfg = ablation_config(params)
    if model not in REGISTRY:
        raise HmsparError(f"unknown recommender {model!r} (registered: {', '.join(REGISTRY)})")
    base = recommender_section(params, model, dataset)
    build_recommender(model, base, cfg.seeds[0])  # fail on a bad key before fitting anything
    main_dir = None if main_root is None else Path(main_root) / dataset / model
    why_not = "reuse off" if main_dir is None else main_run_reuse(main_dir, model, base, list(cfg.seeds), params,
                                                                   dataset)
    full = ({"drops": None, "status": "fitted", "reason": f"full model ({why_not})", "section": base} if why_not
            else {"drops": None, "status": "reused", "reason": f"full model, the main run's seeds from {main_dir}",
                  "section": base})
    plan: dict[str, dict[str, Any]] = {FULL: full}
    for name, modality in cfg.variants.items():
        section, how = variant_section(model, base, modality)
        plan[name] = {"drops": modality, "status": "skipped" if section is None else "fitted",
                      "reason": how, "section": section}
    protocol = rec_section(params, "protocol")
    out = Path(results_root) / dataset / model
    timings: dict[str, Any] = {}
    with atomic_dir(out) as tmp:
        work = tmp / ".work"
        if full["status"] == "reused":
            copy_main_run(main_dir, tmp / FULL, list(cfg.seeds))
            timings[FULL] = {"reused_from": str(main_dir)}
        for name, entry in plan.items():
            if entry["status"] != "fitted":
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


def copy_main_run(main_dir: Path, dest: Path, seeds: list[int]) -> None:
    """Copy the main run's ``seed_<s>`` folders for ``seeds`` to ``dest`` with its ``meta.json``, whose
    ``seeds`` become ``seeds`` (the bytes :func:`~hmspar.rec.runner.recommend` writes for those seeds)."""
    dest.mkdir()
    for s in seeds:
        shutil.copytree(Path(main_dir) / f"seed_{s}", dest / f"seed_{s}")
    meta = json.loads((Path(main_dir) / "meta.json").read_text())
    write_json(dest / "meta.json", {**meta, "seeds": list(seeds)})
