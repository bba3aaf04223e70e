"""The library side of the ``recommend@<dataset>-<model>`` stage: fit one recommender per seed on the
protocol's training histories (validation for early stopping only), then rank the validation and test
targets against the whole catalogue and against the shared sampled negatives.

Outputs (``results/rec/<dataset>/<model>/``, byte-identical for the same params and inputs)::

    meta.json                 model, dataset, seeds, config, protocol, masking rule, user and item counts
                              (under global_time also ``split``: the cut-offs and the train/val/test users)
    seed_<s>/val_rank.npy      int32 (V,) full-ranking 0-based rank of each validation target
    seed_<s>/val_sampled_rank.npy, seed_<s>/test_sampled_rank.npy
                              int16 (V,), (U,): rank among the target and ``n_negatives`` sampled items
    seed_<s>/test_rank.npy     int32 (U,)
    seed_<s>/test_topk.npy     int32 (U, save_k) recommended items (masked per the protocol)
    seed_<s>/test_topk_scores.npy  float32 (U, save_k)
    seed_<s>/fit.json          what ``fit`` reported (best step, validation curve), no timings

Wall-clock timings go to ``metrics/rec_timings/<dataset>-<model>.json`` (a ``cache: false`` output).
Users are in the loader's order, the same for every model, so evaluation pairs them row by row. Under
leave_one_out the V validation users are the U test users; under global_time they differ.

A *secondary run* overrides ``rec.protocol.split`` (``recommend(..., split="global_time")``, the stage's
``--split global_time``) and, unless told otherwise, writes to its own roots (:func:`split_roots`):
``results/rec_global/<dataset>/<model>/`` and ``metrics/rec_timings_global/``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir, write_json
from hmspar.params import seeds as params_seeds
from hmspar.pipeline import deep_merge
from hmspar.rec.data import ProtocolConfig, load, protocol_record
from hmspar.rec.evaluate import rank_batched, sample_negatives
from hmspar.rec.pictures import PICTURES_ROOT, resolve_lab
from hmspar.rec.registry import REGISTRY, build_recommender

FEATURES_ROOT = Path("data/rec/features")
RESULTS_ROOT = Path("results/rec")
TIMINGS_ROOT = Path("metrics/rec_timings")
#: Folder suffix of each split's secondary run (results/rec_<suffix>, metrics/rec_timings_<suffix>).
SPLIT_SUFFIX = {"leave_one_out": "loo", "global_time": "global"}
#: Key of a recommender's section holding settings for one dataset: ``by_dataset.<dataset>`` is merged over
#: the section on that dataset only (see :func:`recommender_section`).
BY_DATASET = "by_dataset"


def rec_section(params: dict[str, Any], key: str) -> Any:
    """``params['rec'][key]`` with an error naming the missing key."""
    rec = params.get("rec")
    if not isinstance(rec, dict) or key not in rec:
        raise HmsparError(f"params.yaml: missing key 'rec.{key}'")
    return rec[key]


def _sections(params: dict[str, Any], model: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``rec.recommenders.<model>`` split into its shared settings (a copy, without ``by_dataset``) and its
    checked ``by_dataset`` entries (see :func:`recommender_section`)."""
    sections = rec_section(params, "recommenders") or {}
    if not isinstance(sections, dict):
        raise HmsparError(f"rec.recommenders: expected a mapping of model -> settings, got {sections!r}")
    where = f"rec.recommenders.{model}"
    section = sections.get(model)
    if section is None:
        return {}, {}
    if not isinstance(section, dict):
        raise HmsparError(f"{where}: expected a mapping of settings, got {section!r}")
    section = copy.deepcopy(section)
    overrides = section.pop(BY_DATASET, None)
    if overrides is None:
        return section, {}
    if not isinstance(overrides, dict):
        raise HmsparError(f"{where}.{BY_DATASET}: expected a mapping of rec dataset -> settings, got {overrides!r}")
    known = (params.get("rec") or {}).get("datasets") or {}
    for name, entry in overrides.items():
        if name not in known:
            raise HmsparError(f"{where}.{BY_DATASET}.{name}: not a rec dataset "
                              f"(rec.datasets: {', '.join(map(str, known)) or 'none'})")
        if not isinstance(entry, dict):
            raise HmsparError(f"{where}.{BY_DATASET}.{name}: expected a mapping of settings, got {entry!r}")
        if BY_DATASET in entry:
            raise HmsparError(f"{where}.{BY_DATASET}.{name}.{BY_DATASET}: settings for a dataset cannot nest "
                              f"another {BY_DATASET}")
    return section, overrides


def recommender_section(params: dict[str, Any], model: str, dataset: str | None) -> dict[str, Any]:
    """The settings recommender ``model`` runs with on ``dataset``.

    That is ``rec.recommenders.<model>`` with its ``by_dataset`` entry removed and ``by_dataset.<dataset>``,
    when present, merged over it key by key (a nested mapping such as ``train`` is merged, not replaced);
    ``dataset=None`` gives the settings shared by every dataset (a benchmark on a toy log).
    A model without a section runs at its defaults (``{}``). ``by_dataset`` holds settings chosen on one
    dataset's validation split (a log much sparser or denser than the others); its keys must be names of
    ``rec.datasets``, and an entry may not nest another ``by_dataset``.

    Raises
    ------
    HmsparError
        a section or an entry that is not a mapping, or a ``by_dataset`` key that is no rec dataset (naming
        the key).
    """
    section, overrides = _sections(params, model)
    return deep_merge(section, (overrides.get(dataset) or {}) if dataset is not None else {})


def dataset_settings(params: dict[str, Any], model: str, dataset: str | None) -> dict[str, Any]:
    """``rec.recommenders.<model>.by_dataset.<dataset>`` (a copy; ``{}`` when the dataset has no entry or is
    None), checked as :func:`recommender_section` checks it."""
    _, overrides = _sections(params, model)
    return copy.deepcopy(overrides.get(dataset) or {}) if dataset is not None else {}


def _to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return obj


def split_roots(split: str | None) -> tuple[Path, Path]:
    """``(results root, timings root)`` of a run: the primary roots without a split override, else the
    split's own (``results/rec_global``, ``metrics/rec_timings_global`` for global_time)."""
    if split is None:
        return RESULTS_ROOT, TIMINGS_ROOT
    if split not in SPLIT_SUFFIX:
        raise HmsparError(f"rec.protocol.split: unknown split {split!r} (known: {', '.join(SPLIT_SUFFIX)})")
    return Path(f"results/rec_{SPLIT_SUFFIX[split]}"), Path(f"metrics/rec_timings_{SPLIT_SUFFIX[split]}")


def protocol_config(params: dict[str, Any], split: str | None = None) -> ProtocolConfig:
    """``rec.protocol`` as a :class:`ProtocolConfig`, its ``split`` replaced by ``split`` when given."""
    section = rec_section(params, "protocol")
    if split is not None:
        if section is not None and not isinstance(section, dict):
            raise HmsparError(f"rec.protocol: expected a mapping of settings, got {section!r}")
        section = {**(section or {}), "split": split}
    return build(ProtocolConfig, section, "rec.protocol")


def recommend(dataset: str, model: str, params: dict[str, Any], features_root: Path = FEATURES_ROOT,
              results_root: Path | None = None, timings_root: Path | None = None, split: str | None = None,
              pictures_root: Path = PICTURES_ROOT) -> Path:
    """Run ``model`` on ``dataset`` for every seed; returns the output folder (see the module docstring).

    ``split`` overrides ``rec.protocol.split`` (a secondary run); ``results_root`` and ``timings_root``
    default to :func:`split_roots` of it. ``vision: lab`` and ``image_weights: lab`` in the model's section
    name the files of the lab's picture encoder under ``pictures_root/<dataset>``
    (:func:`hmspar.rec.pictures.resolve_lab`).
    """
    if model not in REGISTRY:
        raise HmsparError(f"unknown recommender {model!r} (registered: {', '.join(REGISTRY)})")
    protocol = protocol_config(params, split)
    default_results, default_timings = split_roots(split)
    results_root = default_results if results_root is None else results_root
    timings_root = default_timings if timings_root is None else timings_root
    section = resolve_lab(recommender_section(params, model, dataset), dataset, model, pictures_root)
    seeds = params_seeds(params)
    try:
        build_recommender(model, section, seeds[0])  # fail on a bad key before loading data
    except HmsparError as exc:
        if dataset_settings(params, model, dataset):  # the key may come from the dataset's entry: say where to look
            raise HmsparError(f"{exc} (on {dataset}: rec.recommenders.{model} with its "
                              f"{BY_DATASET}.{dataset} merged over it)") from None
        raise
    features = Path(features_root) / dataset
    if not features.is_dir():
        raise HmsparError(f"{features}: not found (unknown rec dataset {dataset!r}, or run rec_convert@{dataset} first)")
    data = load(features, protocol)
    n_items = data.n_items
    neg_val = sample_negatives(data.val, n_items, protocol.n_negatives, protocol.negative_seed, stream=0)
    neg_test = sample_negatives(data.test, n_items, protocol.n_negatives, protocol.negative_seed, stream=1)
    out = Path(results_root) / dataset / model
    timings: dict[str, Any] = {}
    with atomic_dir(out) as tmp:
        for seed in seeds:
            rec = build_recommender(model, section, seed)
            t0 = time.perf_counter()
            rec.fit(data.train, data.items, data.val)
            t1 = time.perf_counter()
            val = rank_batched(rec.score, data.val, negatives=neg_val)
            test = rank_batched(rec.score, data.test, k=protocol.save_k, negatives=neg_test)
            t2 = time.perf_counter()
            d = tmp / f"seed_{seed}"
            d.mkdir()
            np.save(d / "val_rank.npy", val["rank"].astype(np.int32))
            np.save(d / "val_sampled_rank.npy", val["sampled_rank"].astype(np.int16))
            np.save(d / "test_rank.npy", test["rank"].astype(np.int32))
            np.save(d / "test_sampled_rank.npy", test["sampled_rank"].astype(np.int16))
            np.save(d / "test_topk.npy", test["topk"].astype(np.int32))
            np.save(d / "test_topk_scores.npy", test["topk_scores"].astype(np.float32))
            with open(d / "fit.json", "w") as fh:
                json.dump(getattr(rec, "report_", {}) or {}, fh, indent=2, sort_keys=True)
                fh.write("\n")
            timings[str(seed)] = {"fit_s": round(t1 - t0, 3), "rank_val_test_s": round(t2 - t1, 3)}
        meta = {"dataset": dataset, "model": model, "seeds": seeds, "config": _to_jsonable(rec.cfg),
                "protocol": protocol_record(protocol), "exclude_seen": data.exclude_seen,
                "n_users": len(data.test), "n_items": n_items, "inputs": list(rec.uses)}
        if protocol.split != "leave_one_out":
            meta["split"] = data.split
        with open(tmp / "meta.json", "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.write("\n")
    write_json(Path(timings_root) / f"{dataset}-{model}.json", timings)
    return out
