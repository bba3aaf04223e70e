"""The equal-budget search (hmspar/search.py) on a tiny features directory: every model gets the same
number of trials, scored on validation (or out-of-fold) rows only; the test split is never read; the same
seed proposes the same trials; the printed settings are what the pipeline then fits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hmspar.data import loader
from hmspar.data.splits import stratified_split
from hmspar.errors import HmsparError
from hmspar.models.registry import make_model
from hmspar.pipeline import run_specs
from hmspar.pipeline.fit import baseline_run_section

pytest.importorskip("optuna")
pytest.importorskip("torch")

from hmspar import search as hsearch  # noqa: E402


def write_features(d, n: int = 200, seed: int = 0) -> np.ndarray:
    """A loader-format features folder (2 channels x 12 periods, 4x4 images, text 8, static 3); returns
    the indices of its test rows."""
    rng = np.random.default_rng(seed)
    c, t, s = 2, 12, 4
    d.mkdir(parents=True)
    static = np.concatenate([rng.normal(size=(n, 1)), np.eye(2)[rng.integers(0, 2, n)]], axis=1).astype(np.float32)
    series = np.abs(rng.normal(size=(n, c, t))).astype(np.float32) * (rng.random((n, c, t)) < 0.5)
    y = (static[:, 0] + series[:, 0].mean(axis=1) + 0.5 * rng.normal(size=n) > 0.4).astype(np.int8)
    split = stratified_split(y, 0.25, 0.25, 1)
    np.save(d / "ids.npy", np.array([f"e{i:04d}" for i in range(n)]))
    np.save(d / "series.npy", series)
    np.save(d / "mask.npy", (series > 0).astype(np.float32))
    np.save(d / "image.npy", rng.uniform(-1, 1, size=(n, 2 * c, s, s)).astype(np.float32))
    np.save(d / "text.npy", rng.normal(size=(n, 8)).astype(np.float32))
    np.save(d / "static.npy", static)
    np.savez(d / "labels.npz", churn=y)
    np.savez(d / "splits.npz", churn=split)
    (d / "meta.json").write_text(json.dumps({
        "channels": ["orders", "spend"], "tasks": ["churn"], "groups": [],
        "static_columns": ["x0", "cat=a", "cat=b"], "static_numeric": [True, False, False],
        "modalities": ["series", "image", "text", "static"]}))
    return np.flatnonzero(split == 2)


def tiny_params(small_train_rows: int = 0) -> dict:
    tiny = yaml.safe_load((Path(__file__).parent / "params_tiny.yaml").read_text())
    return {
        "datasets": {"toy": {"kind": "retail"}},
        "runs": {"toy": {"toy-churn": {"task": "churn"}}},
        "hmspar_runs": {"toy-churn": {"dataset": "toy", "train": {"max_steps": 4, "min_steps": 2}}},
        "seeds": [0],
        "selection": {"small_train_rows": small_train_rows, "folds": 2, "min_steps_per_epoch": 2},
        "model": tiny["model"],
        "train": tiny["train"],
        "baselines": {"lightgbm": {"inputs": ["series", "static"], "n_estimators": 20, "early_stopping_rounds": 5,
                                   "n_jobs": 1}},
        "search": {"trials": 2, "seed": 3, "objective": "roc_auc", "runs": ["toy-churn"],
                   "models": ["hmspar", "lightgbm"],
                   "spaces": {"hmspar": {"train.lr": {"low": 0.0005, "high": 0.005, "log": True},
                                         "d_model": {"choices": [8, 16]}},
                              "lightgbm": {"num_leaves": {"low": 3, "high": 15},
                                           "learning_rate": {"low": 0.05, "high": 0.3, "log": True}}}},
    }


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A working directory with ``data/features/toy``; every row read from a feature file is recorded."""
    root = tmp_path / "proj"
    test_rows = write_features(root / "data" / "features" / "toy")
    monkeypatch.chdir(root)
    read: list[np.ndarray] = []
    original = loader.MappedRows._read

    def recording_read(self, rows):
        read.append(np.asarray(rows, dtype=np.int64).copy())
        return original(self, rows)

    monkeypatch.setattr(loader.MappedRows, "_read", recording_read)
    return root, test_rows, read


def test_equal_trials_validation_only_and_same_seed_same_trials(project, tmp_path):
    import optuna

    root, test_rows, read = project
    params = tiny_params()
    results = hsearch.search(params, storage_dir=root / "search", report_dir=root / "report", progress=False)
    assert [(r["model"], r["trials"], r["failed"]) for r in results] == [("hmspar", 2, 0), ("lightgbm", 2, 0)]
    assert all(r["regime"] == "validation" and 0.0 <= r["best_value"] <= 1.0 for r in results)
    # rows were read (features, standardisers) but never one of the test split
    rows = np.concatenate(read)
    assert rows.size > 0 and not np.isin(rows, test_rows).any()
    # one SQLite study per model, each with its two trials; the report lists them with their cost
    for model in ("hmspar", "lightgbm"):
        study = optuna.load_study(study_name=model, storage=f"sqlite:///{root / 'search' / 'toy-churn.db'}")
        assert len(study.trials) == 2
    report = json.loads((root / "report" / "search_toy-churn.json").read_text())
    assert report["trials_per_model"] == 2 and set(report["models"]) == {"hmspar", "lightgbm"}
    assert all(m["seconds_per_trial"] > 0 for m in report["models"].values())
    # same seed, same command: the same proposals (and, fitted with the same seed, the same scores)
    again = hsearch.search(params, storage_dir=root / "search", report_dir=None, progress=False)
    for a, b in zip(results, again):
        assert [t["params"] for t in a["trial_log"]] == [t["params"] for t in b["trial_log"]]
        assert [t["value"] for t in a["trial_log"]] == pytest.approx([t["value"] for t in b["trial_log"]])
    # another search seed proposes other settings
    other = dict(params, search=dict(params["search"], seed=4))
    moved = hsearch.search(other, models=["lightgbm"], storage_dir=root / "s2", report_dir=None, progress=False)
    assert [t["params"] for t in moved[0]["trial_log"]] != [t["params"] for t in results[1]["trial_log"]]


def test_kfold_runs_are_scored_out_of_fold_without_test_rows(project):
    root, test_rows, read = project
    params = tiny_params(small_train_rows=10_000)  # every run is "small": k-fold inside the training rows
    res = hsearch.search(params, models=["lightgbm"], trials=2, storage_dir=root / "search", report_dir=None,
                         progress=False)
    assert res[0]["trials"] == 2 and res[0]["regime"] == "kfold"
    assert not np.isin(np.concatenate(read), test_rows).any()


def test_snippet_is_what_the_pipeline_fits(tmp_path):
    params = tiny_params()
    results = [{"run": "toy-churn", "model": "hmspar", "best_params": {"train.lr": 0.002, "d_model": 8}},
               {"run": "toy-churn", "model": "lightgbm", "best_params": {"num_leaves": 5}}]
    frag = hsearch.snippet(params, results)
    assert frag["hmspar_runs"]["toy-churn"] == {"dataset": "toy", "train": {"max_steps": 4, "min_steps": 2, "lr": 0.002},
                                               "model": {"d_model": 8}}
    assert frag["runs"] == {"toy": {"toy-churn": {"baselines": {"lightgbm": {"num_leaves": 5}}}}}
    assert "baselines" not in frag  # the shared settings (every run of every dataset) are left alone
    # --write merges the fragment into a params file; the baseline stage's merge then builds the model
    path = tmp_path / "params.yaml"
    path.write_text("# a comment\n" + yaml.safe_dump(params, sort_keys=False))
    hsearch.apply_snippet(path, frag)
    written = yaml.safe_load(path.read_text())
    assert path.read_text().startswith("# a comment")
    assert written["hmspar_runs"]["toy-churn"]["train"]["lr"] == 0.002
    # only the merged keys change: a null stays `null`, a long flow-style line is not re-wrapped
    flow = "flow: {" + ", ".join(f"key_{i}: {i}" for i in range(40)) + "}\n"
    path.write_text("# a comment\nempty: null\n" + flow + yaml.safe_dump(params, sort_keys=False))
    before = path.read_text().splitlines()
    hsearch.apply_snippet(path, frag)
    after = path.read_text().splitlines()
    assert after[:3] == before[:3]
    specs = run_specs(written)
    assert written["runs"]["toy"]["toy-churn"]["task"] == "churn"  # merged into the run's entry, not replacing it
    section = baseline_run_section(written, "lightgbm", specs["toy-churn"])
    assert make_model("lightgbm", section, 0).cfg.num_leaves == 5
    unsearched = dataclasses.replace(specs["toy-churn"], baselines={})  # a run without searched settings
    assert make_model("lightgbm", baseline_run_section(written, "lightgbm", unsearched), 0).cfg.num_leaves == 31


def test_bad_search_section_names_the_key():
    params = tiny_params()
    params["search"]["spaces"]["lightgbm"]["num_leaves"] = {"low": 10, "high": 3}
    with pytest.raises(HmsparError, match="spaces.lightgbm.num_leaves"):
        hsearch.search(params, progress=False, report_dir=None)
    params = tiny_params()
    params["search"]["objective"] = "accuracy"
    with pytest.raises(HmsparError, match="objective"):
        hsearch.search(params, progress=False, report_dir=None)
    params = tiny_params()
    params["search"]["spaces"]["hmspar"]["modalities"] = {"choices": [["series"], ["series"]]}
    with pytest.raises(HmsparError, match=r"spaces.hmspar.modalities.choices: \['series'\] is listed twice"):
        hsearch.search(params, progress=False, report_dir=None)


def test_a_modality_subset_is_a_choice_of_the_search(project, monkeypatch):
    """A list choice (a modality subset) is drawn by its label, fitted as that list, and reported and written
    back as the list."""
    root, _, _ = project
    params = tiny_params()
    subsets = [["series"], ["series", "static"], ["series", "image", "text", "static"]]
    params["search"]["spaces"]["hmspar"] = {"modalities": {"choices": subsets}}
    fitted: list[list[str]] = []
    original = hsearch.validation_fit

    def recording_fit(name, section, *args, **kwargs):
        fitted.append(list(section["modalities"]))
        return original(name, section, *args, **kwargs)

    monkeypatch.setattr(hsearch, "validation_fit", recording_fit)
    res = hsearch.search(params, models=["hmspar"], trials=4, storage_dir=root / "search", report_dir=None,
                         progress=False)[0]
    assert fitted and all(f in subsets for f in fitted)
    assert [t["params"]["modalities"] for t in res["trial_log"]] == fitted
    assert res["best_params"]["modalities"] in subsets and res["space"] == params["search"]["spaces"]["hmspar"]
    frag = hsearch.snippet(params, [res])
    assert frag["hmspar_runs"]["toy-churn"]["model"]["modalities"] == res["best_params"]["modalities"]
    labels = hsearch.choice_labels([["series", "static"], 3, None, {"a": 1}])
    assert list(labels) == ["series+static", 3, None, '{"a": 1}']
