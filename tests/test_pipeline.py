"""End-to-end: the project copied into a temporary git repository runs under DVC on the tiny profile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import run

pytestmark = pytest.mark.slow


def stale_stages(project: Path) -> set[str]:
    out = run(["dvc", "status", "--json"], project).stdout
    return set(json.loads(out))


def edit_params(project: Path, dotted: str, value) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    node = params
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def restore_params(project: Path) -> None:
    run(["git", "checkout", "--", "params.yaml"], project)


def test_repro_leaves_nothing_stale_and_writes_every_dataset(tiny_project):
    assert stale_stages(tiny_project) == set()
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    for name in params["datasets"]:
        meta = json.loads((tiny_project / "data/features" / name / "meta.json").read_text())
        n = meta["n_entities"]
        image = np.load(tiny_project / "data/features" / name / "image.npy", mmap_mode="r")
        assert image.shape == (n, 2 * len(meta["channels"]), meta["image_size"], meta["image_size"])
        assert image.dtype == np.float32
        text = np.load(tiny_project / "data/features" / name / "text.npy", mmap_mode="r")
        assert text.shape == (n, 384)
        splits = np.load(tiny_project / "data/features" / name / "splits.npz")
        assert set(splits.files) == set(meta["tasks"])


def test_changing_one_dataset_param_stales_only_that_dataset(tiny_project):
    try:
        edit_params(tiny_project, "datasets.retail.n_entities", 450)
        stale = stale_stages(tiny_project)
        assert {"generate@retail", "convert@retail"} <= stale
        assert not any("merchant" in s for s in stale), stale
    finally:
        restore_params(tiny_project)
    assert stale_stages(tiny_project) == set()


def test_changing_train_lr_reruns_training_only(tiny_project):
    try:
        edit_params(tiny_project, "train.lr", 0.005)
        stale = stale_stages(tiny_project)
        assert stale and all(s.startswith(("train@", "evaluate")) for s in stale), stale
    finally:
        restore_params(tiny_project)


def test_forced_rerun_reproduces_identical_bytes(tiny_project):
    run(["dvc", "repro", "--quiet", "--force", "--single-item", "generate@retail", "convert@retail"], tiny_project)
    assert stale_stages(tiny_project) == set()


def test_stage_with_bad_input_fails_cleanly(tiny_project):
    proc = run(["python", "-m", "stages.generate", "nosuchdataset"], tiny_project, check=False)
    assert proc.returncode == 2
    assert "unknown dataset 'nosuchdataset'" in proc.stderr
    assert not (tiny_project / "data/raw/nosuchdataset").exists()
    try:
        edit_params(tiny_project, "datasets.retail.n_entities", -5)
        proc = run(["python", "-m", "stages.generate", "retail"], tiny_project, check=False)
        assert proc.returncode == 2
        assert "datasets.retail.n_entities" in proc.stderr
        assert not list((tiny_project / "data/raw").glob(".retail.tmp-*"))
    finally:
        restore_params(tiny_project)
