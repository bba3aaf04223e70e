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
    # HMSPAR under the step-budget recipe of the tiny profile: within max_steps, at least min_steps
    # unless the budget ran out, and the fusion's gate weights per modality in every run's metrics
    for run_name, spec in params["hmspar_runs"].items():
        train = {**params["train"], **spec.get("train", {})}
        metrics = json.loads((tiny_project / "results/hmspar" / run_name / "seed0/metrics.json").read_text())
        assert 1 <= metrics["best_step"] <= train["max_steps"]
        for level in metrics["diagnostics"]["gate_weights"].values():
            assert "shared" in level and "series" in level
            assert sum(level.values()) == pytest.approx(1.0, abs=1e-3)


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
        assert stale and all(s.startswith(("train@", "ablation", "evaluate")) for s in stale), stale
    finally:
        restore_params(tiny_project)


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


def test_evaluate_outputs_match_an_independent_recomputation(tiny_project):
    import pandas as pd
    from sklearn.metrics import f1_score, roc_auc_score

    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    board = json.loads((tiny_project / "metrics/leaderboard.json").read_text())
    rows = board["rows"] if isinstance(board, dict) and "rows" in board else board
    pairs = {(r["run"], r["model"]) for r in rows}
    runs = [run for group in params["runs"].values() for run in group]
    baselines = [model for family in params["baseline_models"].values() for model in family]
    expected = {(run, model) for run in runs for model in ["hmspar", *baselines]}
    expected |= {(run, f"hmspar[{label}]") for run in params["ablation"]["runs"] for label in params["ablation"]["variants"]}
    assert expected <= pairs, expected - pairs
    assert all(r["inputs"] for r in rows)  # every row says what the model saw

    seed_dir = tiny_project / "results/hmspar/retail-churn/seed0"
    pred = pd.read_csv(seed_dir / "predictions.csv")
    test = pred[pred["split"] == "test"]
    threshold = json.loads((seed_dir / "metrics.json").read_text())["threshold"]
    row = next(r for r in rows if r["run"] == "retail-churn" and r["model"] == "hmspar")
    auc = roc_auc_score(test["y_true"], test["prob"])
    f1 = f1_score(test["y_true"], (test["prob"] >= threshold).astype(int))
    assert row["roc_auc"]["mean"] == pytest.approx(auc, abs=1e-9)
    assert row["f1"]["mean"] == pytest.approx(f1, abs=1e-9)

    significance = json.loads((tiny_project / "metrics/significance.json").read_text())
    runs = significance["runs"] if "runs" in significance else significance
    entry = runs["retail-churn"]
    assert entry["ci_low"] <= entry["auc_difference"] <= entry["ci_high"]

    headline = json.loads((tiny_project / "metrics/headline.json").read_text())
    assert set(headline) == {"n_runs", "ahead", "behind", "hmspar_auc", "auc_delta"}  # a few columns, not one per run
    assert headline["n_runs"] == len(runs) and headline["ahead"] + headline["behind"] <= len(runs)

    import matplotlib.image as mpimg

    for name in ("leaderboard_heatmap.png", "gaf_examples.png", "ablation.png"):
        path = tiny_project / "plots" / name
        assert path.stat().st_size > 1000
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert float(image[..., :3].std()) > 0.01  # not blank
    for folder in ("roc", "pr", "confusion", "curves"):
        assert list((tiny_project / "plots" / folder).iterdir()), folder


# ------------------------------------------------------------------------------------------------------
# Precision: each edit makes stale exactly these stages (`dvc status`: the stages whose own dependencies
# changed; downstream stages rerun only when those produce different outputs). The table "What reruns when
# you edit what" of docs/pipeline.md is this list.
TINY_STAGES = {
    "generate": {"generate@merchant", "generate@retail"},
    "convert": {"convert@merchant", "convert@retail"},
    "train": {"train@merchant-risk-Industry-2", "train@retail-churn", "train@retail-engagement"},
    "ablation": {"ablation@retail-churn"},
    "lightgbm": {"baseline_trees@merchant-lightgbm", "baseline_trees@retail-lightgbm"},
    "lstm": {"baseline_sequence@merchant-lstm", "baseline_sequence@retail-lstm"},
}
PARAM_EDITS = [
    ("datasets.retail.n_entities", 450, {"generate@retail", "convert@retail"}),
    ("hmspar_runs.retail-engagement.train", {"epochs": 3}, {"train@retail-engagement"}),
    ("baselines.lightgbm.n_estimators", 60, TINY_STAGES["lightgbm"]),
    # a search's result for one run: that dataset's baseline stages and that run's HMSPAR stage, nothing else
    ("runs.merchant.merchant-risk-Industry-2.baselines", {"lightgbm": {"num_leaves": 7}},
     {"baseline_trees@merchant-lightgbm", "baseline_sequence@merchant-lstm", "train@merchant-risk-Industry-2"}),
    ("ablation.variants.series", ["series", "static"], TINY_STAGES["ablation"]),
]
FILE_EDITS = [
    ("hmspar/models/layers/ple.py", TINY_STAGES["train"] | TINY_STAGES["ablation"]),
    ("hmspar/models/baselines/trees.py", TINY_STAGES["lightgbm"]),
    ("hmspar/data/splits.py", TINY_STAGES["convert"] | TINY_STAGES["train"] | TINY_STAGES["ablation"]
     | TINY_STAGES["lightgbm"] | TINY_STAGES["lstm"]),  # not evaluate: it reads data/gaf_examples, no split code
    ("hmspar/data/generators/retail.py", {"generate@retail", "convert@retail"}),
]


@pytest.mark.parametrize("dotted, value, expected", PARAM_EDITS, ids=[e[0] for e in PARAM_EDITS])
def test_a_params_edit_stales_exactly_its_stages(tiny_project, dotted, value, expected):
    try:
        edit_params(tiny_project, dotted, value)
        assert stale_stages(tiny_project) == expected
    finally:
        restore_params(tiny_project)


@pytest.mark.parametrize("path, expected", FILE_EDITS, ids=[e[0] for e in FILE_EDITS])
def test_a_code_edit_stales_exactly_its_stages(tiny_project, path, expected):
    target = tiny_project / path
    try:
        target.write_text(target.read_text() + "\n# an edit\n")
        assert stale_stages(tiny_project) == expected
    finally:
        run(["git", "checkout", "--", path], tiny_project)
    assert stale_stages(tiny_project) == set()
