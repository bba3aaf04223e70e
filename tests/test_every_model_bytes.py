"""Same params, same bytes, for every model of the default lists of both tracks.

This is the lab's byte-reproducibility test (the default suite does not rerun stages to compare bytes). It
builds a profile from the tiny one with **every** model the default ``params.yaml`` lists (its
``baseline_models`` lists, HMSPAR, and ``rec.models``, ``rec.sequential_models``,
``rec.multimodal_models``), each at a test-sized setting (the registry's
``test_params()`` for the classification baselines, a few optimiser steps for the torch recommenders),
reproduces it with ``dvc repro`` in two clones, and compares the md5 of every cached DVC output. The
second clone runs with another ``PYTHONHASHSEED``, so a result that depends on set or dict-of-str order
shows as well. The global-time protocol (``rec.global_time``) is left out: it runs the same models on
another split, which adds ten stages and no model code.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY_PARAMS, cached_outputs, make_project, run

pytestmark = [pytest.mark.slow, pytest.mark.extended]  # about 2 minutes: run by `python -m pytest -m extended`

#: The torch recommenders' loop, shrunk to a few steps; their architecture settings and their thread count
#: stay the defaults' (2 threads: a backward pass whose accumulation order follows the thread schedule,
#: as PixelRec's advanced indexing had, differs only with more than one thread).
REC_TRAIN = {"max_steps": 6, "min_steps": 0, "eval_every": 3, "patience": 1, "batch_size": 64, "max_len": 12,
             "device": "cpu", "val_max_users": 200}


def every_model_profile() -> dict:
    """The tiny profile (one dataset, one run) with every default model of both tracks, at test sizes."""
    from hmspar.models.registry import model_class
    from hmspar.pipeline import baseline_registry_name
    from hmspar.rec.runner import recommender_section

    tiny = yaml.safe_load(TINY_PARAMS.read_text())
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    p = copy.deepcopy(tiny)
    p["datasets"] = {"retail": tiny["datasets"]["retail"]}
    p["runs"] = {"retail": {"retail-churn": {"task": "churn"}}}
    p["hmspar_runs"] = {"retail-churn": {"dataset": "retail"}}
    p["ablation"] = {"runs": {}, "variants": tiny["ablation"]["variants"]}
    p["baseline_models"] = default["baseline_models"]
    p["baselines"] = {}
    for name in (m for models in default["baseline_models"].values() for m in models):
        section = dict(default["baselines"][name])
        section.update(model_class(baseline_registry_name(default, name)).test_params())
        p["baselines"][name] = section

    rec, drec = p["rec"], default["rec"]
    rec["datasets"] = {"shop": tiny["rec"]["datasets"]["shop"]}
    for key in ("models", "sequential_models", "multimodal_models"):
        rec[key] = list(drec[key])
    rec["multimodal_datasets"] = ["shop"]
    rec["global_time"] = {"datasets": [], "sequential_models": []}
    rec["ablation"] = {"models": [], "variants": drec["ablation"]["variants"], "seeds": [0]}
    rec["recommenders"] = {}
    for name in [*rec["models"], *rec["sequential_models"], *rec["multimodal_models"]]:
        section = recommender_section(default, name, "shop")   # the profile keeps the shop only
        if "train" in section:
            section["train"].update(REC_TRAIN)
        rec["recommenders"][name] = section
    return p


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "params_every_model.yaml"
    path.write_text(yaml.safe_dump(every_model_profile(), sort_keys=False))
    return path


def test_profile_holds_every_default_model():
    """The profile really lists every default model (so the comparison below covers them all)."""
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    p = every_model_profile()
    assert p["baseline_models"] == default["baseline_models"]
    for key in ("models", "sequential_models", "multimodal_models"):
        assert p["rec"][key] == default["rec"][key]
    assert p["rec"]["multimodal_datasets"] and p["hmspar_runs"]


def test_two_clones_of_every_default_model_give_identical_bytes(profile_path, tmp_path):
    projects = [make_project(tmp_path / f"clone{i}", params=profile_path) for i in range(2)]
    # The two clones reproduce side by side (each stage uses one thread), each under its own hash seed.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda job: run(["dvc", "repro", "--quiet"], job[0], env={"PYTHONHASHSEED": job[1]}),
                      zip(projects, ("0", "12345"))))
    first, second = (cached_outputs(project) for project in projects)
    stages = {stage for stage, _ in first}
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    models = [m for ms in default["baseline_models"].values() for m in ms]
    rec_models = [*default["rec"]["models"], *default["rec"]["sequential_models"],
                  *default["rec"]["multimodal_models"]]
    for model in models:
        assert any(s.startswith("baseline_") and s.endswith(f"-{model}") for s in stages), model
    for model in rec_models:
        assert any(s.startswith("recommend") and s.endswith(f"-{model}") for s in stages), model
    assert any(s.startswith("train@") for s in stages)
    assert set(first) == set(second)
    differ = sorted(k for k in first if first[k] != second[k])
    assert not differ, f"cached outputs that differ between the clones: {differ}"
