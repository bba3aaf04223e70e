"""End-to-end: the two example files (a transaction log and a multi-class series table) go through generate,
convert, train, baseline and evaluate under DVC with no dataset-specific code downstream."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, make_project, run

pytestmark = pytest.mark.slow

BYOD_PARAMS = ROOT / "tests" / "params_tiny_byod.yaml"
EXAMPLES = ("data/external/example_shop.csv", "data/external/example_series.tsv")
RUNS = {"example_shop-churn": ("example_shop", 2), "example_series-label": ("example_series", 3)}


@pytest.fixture(scope="module")
def byod_project(tmp_path_factory) -> Path:
    """The project with the example files and the bring-your-own-data params, reproduced once."""
    dest = make_project(tmp_path_factory.mktemp("byod"))
    for rel in EXAMPLES:  # make_project leaves data/ out (it holds DVC outputs)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    shutil.copy2(BYOD_PARAMS, dest / "params.yaml")
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "bring your own data"], dest)
    run(["dvc", "repro", "--quiet"], dest)
    return dest


def test_imported_datasets_flow_through_every_stage(byod_project):
    for run_name, (dataset, n_classes) in RUNS.items():
        meta = json.loads((byod_project / "data/features" / dataset / "meta.json").read_text())
        task = run_name.split("-", 1)[1]
        assert meta["n_classes"][task] == n_classes
        for metrics_path in (byod_project / f"results/hmspar/{run_name}/seed0/metrics.json",
                             byod_project / f"results/baselines/{dataset}/lightgbm/{run_name}/seed0/metrics.json"):
            metrics = json.loads(metrics_path.read_text())
            assert metrics["dataset"] == dataset and metrics["task"] == task
            assert 0.0 <= metrics["test"]["roc_auc"] <= 1.0
            if dataset == "example_series":  # the dataset declares series + image only
                assert set(metrics["inputs"]) <= {"series", "image"} and meta["modalities"] == ["series", "image"]
        predictions = pd.read_csv(byod_project / f"results/hmspar/{run_name}/seed0/predictions.csv")
        if n_classes > 2:
            probs = predictions[[f"prob_{k}" for k in range(n_classes)]].to_numpy()
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    leaderboard = json.loads((byod_project / "metrics/leaderboard.json").read_text())
    assert set(RUNS) <= set(json.dumps(leaderboard).split('"'))
    raw = json.loads((byod_project / "data/raw/example_shop/meta.json").read_text())
    assert raw["windows"]["input_end"] < raw["windows"]["label_start"]
    assert json.loads(run(["dvc", "status", "--json"], byod_project).stdout) == {}


def test_bad_input_fails_the_stage_and_keeps_the_previous_output(byod_project):
    params_path = byod_project / "params.yaml"
    before = (byod_project / "data/raw/example_shop/series.npy").read_bytes()
    params = yaml.safe_load(params_path.read_text())
    params["imports"]["example_shop"]["columns"]["amount"] = "amount"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = run(["python", "-m", "stages.import_data", "example_shop"], byod_project, check=False)
    finally:
        run(["git", "checkout", "--", "params.yaml"], byod_project)
    assert proc.returncode == 2
    assert ("data/external/example_shop.csv: column 'amount' (imports.example_shop.columns.amount) not found"
            in proc.stderr)
    assert (byod_project / "data/raw/example_shop/series.npy").read_bytes() == before
    assert not list((byod_project / "data/raw").glob(".example_shop.tmp-*"))


def test_an_imported_dataset_depends_on_its_own_file_and_params_only(byod_project):
    """Editing an imported dataset's params or its file stales its import stage alone (no simulator)."""
    def stale() -> set[str]:
        return set(json.loads(run(["dvc", "status", "--json"], byod_project).stdout))

    params_path = byod_project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["imports"]["example_shop"]["horizon"] = 2
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        assert stale() == {"import@example_shop"}
    finally:
        run(["git", "checkout", "--", "params.yaml"], byod_project)
    data = byod_project / "data/external/example_series.tsv"
    original = data.read_bytes()
    try:
        data.write_bytes(original + original.splitlines(keepends=True)[-1])
        assert stale() == {"import@example_series"}
    finally:
        data.write_bytes(original)
    assert stale() == set()
