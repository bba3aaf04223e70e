"""Typed configs and params validation: unknown keys, wrong types and bad sizes fail with the key's name."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from hmspar.config import build
from hmspar.errors import HmsparError
from conftest import ROOT
from hmspar.params import load_params
from hmspar.pipeline import check_runs, deep_merge, hmspar_run, run_specs, seeds


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int = 4
    names: list[str] = dataclasses.field(default_factory=lambda: ["a"])


@dataclasses.dataclass(frozen=True)
class Outer:
    lr: float
    inner: Inner = dataclasses.field(default_factory=Inner)
    path: str | None = None


def test_build_accepts_valid_section_and_ints_for_floats():
    cfg = build(Outer, {"lr": 1, "inner": {"width": 8}}, "train")
    assert cfg == Outer(lr=1.0, inner=Inner(width=8, names=["a"]))
    assert isinstance(cfg.lr, float)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"lr": 0.1, "lrr": 2}, "train.lrr: unknown key"),
        ({"lr": "fast"}, "train.lr: expected a number, got 'fast'"),
        ({"lr": True}, "train.lr: expected a number"),
        ({}, "train.lr: required key is missing"),
        ({"lr": 0.1, "inner": {"width": 2.5}}, "train.inner.width: expected an integer, got 2.5"),
        ({"lr": 0.1, "inner": {"names": "a"}}, "train.inner.names: expected a list"),
        ({"lr": 0.1, "inner": {"depth": 3}}, "train.inner.depth: unknown key"),
        ({"lr": 0.1, "path": 3}, "train.path: expected"),
        ("oops", "train: expected a mapping"),
    ],
)
def test_build_rejects_bad_sections_naming_the_key(section, message):
    with pytest.raises(HmsparError, match=message.replace(".", r"\.").replace("(", r"\(")):
        build(Outer, section, "train")


def test_dataset_config_errors_name_the_params_key():
    from hmspar.data.generators import dataset_config

    good = {"seed": 1, "n_entities": 100, "length": 13, "image_size": 8}
    assert dataset_config("retail", good).kind == "retail"
    with pytest.raises(HmsparError, match=r"datasets\.retail\.n_entities"):
        dataset_config("retail", {**good, "n_entities": 0})
    with pytest.raises(HmsparError, match=r"datasets\.retail\.n_entitys: unknown key"):
        dataset_config("retail", {**good, "n_entitys": 5})
    with pytest.raises(HmsparError, match=r"unknown dataset kind 'shop'"):
        dataset_config("shop", good)


def test_load_params_rejects_unknown_top_level_key_and_empty_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"datasets": {}, "datsets": {}}))
    with pytest.raises(HmsparError, match="unknown top-level key 'datsets'"):
        load_params(path)
    path.write_text("")
    with pytest.raises(HmsparError, match="empty"):
        load_params(path)
    with pytest.raises(HmsparError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    specs = run_specs(params)
    assert specs and all(s.dataset in params["datasets"] for s in specs.values())
    check_runs(params)
    assert seeds(params)
    from hmspar.data.generators import dataset_config

    for name, section in params["datasets"].items():
        assert section["kind"]  # dvc.yaml names the simulator's file from it
        dataset_config(name, section)


@pytest.mark.parametrize("profile", ["params_tiny.yaml", "params_tiny_byod.yaml"])
def test_test_profiles_are_consistent(profile):
    check_runs(load_params(ROOT / "tests" / profile))


def test_run_specs_and_seeds_validation():
    params = {"datasets": {"retail": {}}, "runs": {"shop": {"r": {"task": "churn"}}}}
    with pytest.raises(HmsparError, match=r"runs\.shop: unknown dataset 'shop'"):
        run_specs(params)
    params["runs"] = {"retail": {"r": {"dataset": "retail", "task": "churn"}}}
    with pytest.raises(HmsparError, match=r"runs\.retail\.r\.dataset: not a key here"):
        run_specs(params)
    with pytest.raises(HmsparError, match=r"run 'r' is also listed under runs\.retail"):
        run_specs({"datasets": {"retail": {}, "shop": {}},
                   "runs": {"retail": {"r": {"task": "churn"}}, "shop": {"r": {"task": "churn"}}}})
    with pytest.raises(HmsparError, match="seeds"):
        seeds({"seeds": [0, 0]})
    with pytest.raises(HmsparError, match="seeds"):
        seeds({"seeds": "0"})


def test_deep_merge_overrides_nested_values_without_mutating():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    merged = deep_merge(base, {"a": {"b": 5}})
    assert merged == {"a": {"b": 5, "c": 2}, "d": 3}
    assert base["a"]["b"] == 1


def test_hmspar_runs_must_agree_with_runs():
    params = {"datasets": {"retail": {}, "shop": {}},
              "runs": {"retail": {"r": {"task": "churn"}}, "shop": {"s": {"task": "churn"}}},
              "hmspar_runs": {"r": {"dataset": "shop"}}}
    with pytest.raises(HmsparError, match=r"hmspar_runs\.r\.dataset: 'shop', but the run is listed under runs\.retail"):
        hmspar_run(params, "r")
    params["hmspar_runs"] = {"r": {"dataset": "retail", "train": {"epochs": 2}}}
    spec, entry = hmspar_run(params, "r")
    assert (spec.dataset, spec.task, entry.train) == ("retail", "churn", {"epochs": 2})
    with pytest.raises(HmsparError, match=r"runs\.shop\.s: no HMSPAR entry; add 'hmspar_runs\.s: \{dataset: shop\}'"):
        check_runs(params)
    params["hmspar_runs"]["x"] = {"dataset": "retail"}
    with pytest.raises(HmsparError, match=r"hmspar_runs\.x: run 'x' is not listed under runs\.retail"):
        check_runs(params)
