"""The quick-look profile (``python -m hmspar.quicklook``): smaller, one seed, the same lab, valid params."""

from __future__ import annotations

import copy

import yaml

from conftest import ROOT
from hmspar import quicklook
from hmspar.models.registry import make_model
from hmspar.pipeline import check_runs, run_specs
from hmspar.pipeline.fit import baseline_run_section
from hmspar.rec.datasets import dataset_config as rec_dataset_config
from hmspar.rec.registry import build_recommender
from hmspar.rec.runner import recommender_section

DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_quick_profile_is_smaller_and_keeps_the_lab():
    before = copy.deepcopy(DEFAULT)
    quick = quicklook.quick_params(DEFAULT)
    assert DEFAULT == before, "quick_params modified its input"
    assert quick["seeds"] == [min(DEFAULT["seeds"])]
    # the same lab on fewer runs: every model list, one dataset of each kind with its first runs unchanged
    assert quick["baseline_models"] == DEFAULT["baseline_models"]
    assert list(quick["datasets"]) == [d for d in DEFAULT["datasets"] if d in quicklook.QUICK_DATASETS]
    assert len(quick["datasets"]) == len(quicklook.QUICK_DATASETS)
    for dataset, runs in quick["runs"].items():
        default = DEFAULT["runs"][dataset]
        expected = copy.deepcopy(dict(list(default.items())[: quicklook.QUICK_RUNS_PER_DATASET]))
        for run in expected.values():  # a run's searched settings, under the quick budgets
            searched = run.get("baselines") or {}
            if "n_kernels" in searched.get("minirocket", {}):
                searched["minirocket"]["n_kernels"] = min(searched["minirocket"]["n_kernels"], quicklook.QUICK_KERNELS)
            if "steps" in searched.get("tloss", {}):
                searched["tloss"]["steps"] = min(searched["tloss"]["steps"], quicklook.QUICK_TLOSS_STEPS)
        assert runs == expected, dataset
    kept = {run for runs in quick["runs"].values() for run in runs}
    assert set(quick["hmspar_runs"]) == kept
    assert len(quick["ablation"]["runs"]) == 1 and set(quick["ablation"]["runs"]) <= kept
    assert list(quick["rec"]["datasets"]) == list(quicklook.QUICK_REC_DATASETS)
    for key in ("models", "sequential_models", "multimodal_models"):
        assert quick["rec"][key] == DEFAULT["rec"][key]
    assert set(quick["rec"]["global_time"]["datasets"]) <= set(quicklook.QUICK_REC_DATASETS)
    # the multimodal recommenders run on the fashion shop only, which the quick look leaves out (as its docs say)
    assert quick["rec"]["multimodal_datasets"] == [d for d in DEFAULT["rec"]["multimodal_datasets"]
                                                   if d in quicklook.QUICK_REC_DATASETS] == []
    # smaller: the large simulated sets are cut, small ones kept
    for name, cfg in DEFAULT["datasets"].items():
        if name not in quick["datasets"]:
            continue
        n, q = cfg.get("n_entities"), quick["datasets"][name].get("n_entities")
        if n is not None:
            assert q <= n and (q < n) == (n > quicklook.QUICK_MIN_FROM), name
    assert quick["selection"]["small_train_rows"] == 0
    assert quick["train"]["max_steps"] <= quicklook.QUICK_STEPS["max_steps"] < DEFAULT["train"]["max_steps"]
    for name, section in quick["baselines"].items():
        train = section.get("train") or {}
        if "max_steps" in (DEFAULT["baselines"][name].get("train") or {}):
            assert train["max_steps"] <= quicklook.QUICK_STEPS["max_steps"], name
    for name in quick["rec"]["recommenders"]:
        for dataset in quick["rec"]["datasets"]:
            section = recommender_section(quick, name, dataset)
            if "train" in section:
                assert section["train"]["max_steps"] <= quicklook.QUICK_REC_STEPS["max_steps"], (name, dataset)
    for name, cfg in quick["rec"]["datasets"].items():
        if cfg["kind"] == "shop":
            assert cfg["n_users"] < DEFAULT["rec"]["datasets"][name]["n_users"], name


def test_a_params_file_without_the_listed_datasets_keeps_all_of_its_own():
    own = {"seeds": [3, 1], "datasets": {"mine": {"kind": "series", "n_entities": 50}},
           "runs": {"mine": {"mine-a": {"task": "a"}, "mine-b": {"task": "b"}, "mine-c": {"task": "c"}}},
           "hmspar_runs": {"mine-a": {"dataset": "mine"}, "mine-c": {"dataset": "mine"}},
           "ablation": {"runs": {"mine-c": "mine", "other-x": "other"}},
           "rec": {"datasets": {"log": {"kind": "interactions"}}, "global_time": {"datasets": ["log"]}}}
    quick = quicklook.quick_params(own)
    assert quick["seeds"] == [1] and list(quick["datasets"]) == ["mine"]
    assert list(quick["runs"]["mine"]) == ["mine-a", "mine-b"][: quicklook.QUICK_RUNS_PER_DATASET]
    assert set(quick["hmspar_runs"]) <= set(quick["runs"]["mine"])
    assert set(quick["ablation"]["runs"]) <= set(quick["runs"]["mine"])
    assert list(quick["rec"]["datasets"]) == ["log"] and quick["rec"]["global_time"]["datasets"] == ["log"]


def test_quick_profile_is_valid_params():
    """Every config the stages build from the quick profile builds (no unknown key, no bad value)."""
    quick = quicklook.quick_params(DEFAULT)
    check_runs(quick)
    specs = run_specs(quick)
    for models in quick["baseline_models"].values():
        for model in models:
            for spec in specs.values():
                section = baseline_run_section(quick, model, spec)
                registry_name = section.pop("model", model)
                make_model(registry_name, section, 0, where=f"baselines.{model}")
    for name in quick["rec"]["datasets"]:
        rec_dataset_config(name, quick)
    rec = quick["rec"]
    for name in [*rec["models"], *rec["sequential_models"], *rec["multimodal_models"]]:
        for dataset in rec["datasets"]:
            build_recommender(name, recommender_section(quick, name, dataset), 0)


def test_build_copies_the_source_without_outputs(tmp_path):
    dest = quicklook.build(ROOT, tmp_path / "ql")
    assert yaml.safe_load((dest / "params.yaml").read_text()) == quicklook.quick_params(DEFAULT)
    assert (dest / "dvc.yaml").is_file() and (dest / "hmspar" / "quicklook.py").is_file()
    assert not (dest / "dvc.lock").exists()
    assert not any((dest / "metrics").glob("*.json")) and not (dest / "report" / "index.html").exists()
    assert (dest / "data" / "external" / "rec" / "example_interactions.csv").is_file()
    assert (dest / ".git").is_dir()
