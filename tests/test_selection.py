"""A user's own small labelled series, end to end: signed import without clipping, declared modalities,
k-fold selection for a split without validation rows, tree models that do not collapse to a constant,
and the leaderboard's constant-prediction flag."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hmspar.convert import TextConfig, convert_dataset
from hmspar.data.generators import dataset_config
from hmspar.data.importers import series as series_importer
from hmspar.data.loader import SplitData
from hmspar.models.registry import make_model
from hmspar.report.leaderboard import SeedResult, build_leaderboard
from hmspar.runner import run_model
from hmspar.training.selection import SelectionConfig, fit_with_selection, regime, stratified_folds


def signed_table(n: int = 60, length: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary z-normalised series: class 1 has a bump in the middle, class 0 a dip; about half the values
    are negative. Returns values (n, length) and labels (n,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    u = np.linspace(0, 1, length)[None, :]
    x = np.where(y[:, None] == 1, 1.0, -1.0) * np.exp(-0.5 * ((u - 0.5) / 0.1) ** 2)
    x = x + rng.normal(0, 0.3, (n, length))
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return x, y


@pytest.fixture()
def imported(tmp_path):
    """A 60-series signed TSV (one missing cell) with a split file of train and test rows only, imported
    and converted; returns (features dir, raw values)."""
    x, y = signed_table()
    x[3, 5] = np.nan
    lines = ["\t".join([f"s{i}", ("down", "up")[y[i]]] + ["" if np.isnan(v) else f"{v:.6f}" for v in x[i]])
             for i in range(len(y))]
    (tmp_path / "own.tsv").write_text("\n".join(lines) + "\n")
    split = ["id,split"] + [f"s{i},{'test' if i % 3 == 0 else 'train'}" for i in range(len(y))]
    (tmp_path / "split.csv").write_text("\n".join(split) + "\n")
    cfg = dataset_config("own", {"kind": "series", "path": str(tmp_path / "own.tsv"),
                                 "split_path": str(tmp_path / "split.csv"), "image_size": 10})
    raw = series_importer.generate(cfg)
    raw.save(tmp_path / "raw")
    feats = tmp_path / "features"
    convert_dataset(tmp_path / "raw", feats, cfg, TextConfig(), progress=False)
    return feats, np.round(x, 6)


def test_signed_import_is_stored_without_clipping(imported):
    feats, x = imported
    meta = json.loads((feats / "meta.json").read_text())
    assert meta["values"] == "signed" and meta["modalities"] == ["series", "image"]
    assert meta["image_channels"] == ["value:trend", "value:trend_gadf"]
    assert meta["split_sizes"]["label"]["val"] == 0
    series, mask = np.load(feats / "series.npy")[:, 0], np.load(feats / "mask.npy")[:, 0]
    np.testing.assert_allclose(series, np.nan_to_num(x), atol=1e-6)  # negatives kept, no log1p
    assert (series < 0).mean() > 0.3
    assert mask[3, 5] == 0 and mask.sum() == mask.size - 1  # mask = observed, not "positive"
    assert np.load(feats / "text.npy").shape == (60, 0)  # no text: no encoder was loaded
    image = np.load(feats / "image.npy")
    assert image.shape == (60, 2, 10, 10) and np.abs(image[:, 1]).max() > 0.5  # GADF carries signal


def test_split_without_validation_rows_uses_kfold(imported, tmp_path):
    feats, _ = imported
    section = {"n_estimators": 200, "learning_rate": 0.1, "n_jobs": 1}
    res = run_model("lightgbm", section, "baselines.lightgbm", feats, "own-label",
                    {"dataset": "own", "task": "label"}, [0], tmp_path / "out", progress=False,
                    selection={"small_train_rows": 0, "folds": 4, "refit": "refit"})
    m = res[0]
    assert m["n_val"] == 0 and m["inputs"] == ["series"]  # static is not a modality of this dataset
    sel = m["selection"]
    assert sel["regime"] == "kfold" and sel["folds"] == 4 and sel["threshold_source"] == "out-of-fold"
    assert len(sel["fold_budgets"]) == 4 and sel["budget"] == int(round(np.median(sel["fold_budgets"])))
    assert m["threshold_source"] == "out-of-fold" and 0 < m["threshold"] < 1
    pred = pd.read_csv(tmp_path / "out" / "seed0" / "predictions.csv")
    assert set(pred["split"]) == {"oof", "test"} and (pred["split"] == "oof").sum() == m["n_train"]
    assert m["test"]["accuracy"] > 0.8 and m["test_at_0.5"]["accuracy"] > 0.8


def test_torch_refit_trains_the_median_fold_steps(imported, tmp_path):
    pytest.importorskip("torch")
    feats, _ = imported
    section = {"hidden": 8, "head_hidden": 8, "train": {"epochs": 6, "batch_size": 256, "lr": 0.01, "patience": 6,
                                                        "num_threads": 1}}
    res = run_model("cnn1d", section, "baselines.cnn1d", feats, "own-label", {"dataset": "own", "task": "label"},
                    [0], tmp_path / "out", progress=False,
                    selection={"folds": 3, "min_steps_per_epoch": 4, "refit": "refit"})
    sel = res[0]["selection"]
    assert sel["regime"] == "kfold" and len(sel["fold_budgets"]) == 3
    # torch budgets are optimiser steps (each fold's best step); the refit trains exactly their median
    assert res[0]["best_step"] == sel["budget"] == int(round(np.median(sel["fold_budgets"])))


def test_ensemble_averages_the_fold_models_and_saves_them(imported, tmp_path):
    feats, _ = imported
    section = {"n_estimators": 200, "learning_rate": 0.1, "n_jobs": 1}
    res = run_model("lightgbm", section, "baselines.lightgbm", feats, "own-label",
                    {"dataset": "own", "task": "label"}, [0], tmp_path / "out", progress=False,
                    selection={"folds": 4, "refit": "ensemble"})
    sel = res[0]["selection"]
    assert sel["regime"] == "kfold" and sel["refit"] == "ensemble" and sel["budget"] is None
    assert len(sel["fold_budgets"]) == 4
    import pickle

    from hmspar.data.loader import load_task

    with open(tmp_path / "out" / "seed0" / "model.pkl", "rb") as fh:
        ensemble = pickle.load(fh)
    assert len(ensemble.members) == 4
    assert [m.n_estimators_ for m in ensemble.members] == sel["fold_budgets"]  # each kept at its own budget
    test = load_task(feats, "label", modalities=("series",), lazy=False)["test"]
    mean = np.mean([m.predict_proba(test.X) for m in ensemble.members], axis=0)
    np.testing.assert_allclose(ensemble.predict_proba(test.X), mean)
    pred = pd.read_csv(tmp_path / "out" / "seed0" / "predictions.csv").query("split == 'test'")
    np.testing.assert_allclose(pred["prob"].to_numpy(), mean[:, 1], rtol=1e-6)
    assert res[0]["test"]["accuracy"] > 0.8
    # the refit path records itself too
    again = run_model("lightgbm", section, "baselines.lightgbm", feats, "own-label",
                      {"dataset": "own", "task": "label"}, [0], tmp_path / "out2", progress=False,
                      selection={"folds": 4, "refit": "refit"})
    assert again[0]["selection"]["refit"] == "refit" and again[0]["selection"]["budget"] is not None


def test_ensemble_run_logs_the_last_fold_model(imported, tmp_path):
    pytest.importorskip("torch")
    feats, _ = imported
    section = {"hidden": 8, "head_hidden": 8, "train": {"max_steps": 60, "min_steps": 20, "patience_steps": 20,
                                                        "batch_size": 256, "lr": 0.01, "num_threads": 1}}
    res = run_model("cnn1d", section, "baselines.cnn1d", feats, "own-label", {"dataset": "own", "task": "label"},
                    [0], tmp_path / "out", live_dir=tmp_path / "live", progress=False, selection={"folds": 3})
    assert res[0]["selection"]["refit"] == "ensemble"
    assert (tmp_path / "live" / "seed0").is_dir()  # the DVC output train@ declares exists without a refit


def test_step_budget_shrinks_with_the_rows_in_the_kfold_regime():
    from hmspar.training.selection import adapt_to_rows

    train = {"max_steps": 2000, "min_steps": 200, "batch_size": 128, "num_threads": 1}
    model = make_model("cnn1d", {"train": train}, seed=0)
    cfg = SelectionConfig(max_steps_per_row=4)
    assert adapt_to_rows(model, 50, cfg).cfg.train.max_steps == 200       # never below min_steps
    assert adapt_to_rows(model, 198, cfg).cfg.train.max_steps == 792
    assert adapt_to_rows(model, 5000, cfg).cfg.train.max_steps == 2000    # never above max_steps
    assert adapt_to_rows(model, 198, SelectionConfig(max_steps_per_row=0)).cfg.train.max_steps == 2000  # 0: off
    assert adapt_to_rows(model, 198, cfg).cfg.train.batch_size == 25      # ceil(198 / 8) steps per epoch
    with pytest.raises(ValueError, match="max_steps_per_row"):
        SelectionConfig(max_steps_per_row=-1)
    with pytest.raises(ValueError, match="refit"):
        SelectionConfig(refit="average")


def test_regime_and_folds():
    cfg = SelectionConfig(small_train_rows=100, folds=5)
    assert regime(cfg, 99, 30) == "kfold" and regime(cfg, 100, 30) == "validation" and regime(cfg, 5000, 0) == "kfold"
    y = np.array([0] * 7 + [1] * 3 + [2] * 12)
    folds = stratified_folds(y, 5, seed=1)
    assert len(folds) == 3  # the rarest class has three rows
    held = np.sort(np.concatenate([ho for _, ho in folds]))
    np.testing.assert_array_equal(held, np.arange(y.size))
    for tr, ho in folds:
        assert not set(tr) & set(ho) and set(np.unique(y[tr])) == {0, 1, 2} and set(np.unique(y[ho])) == {0, 1, 2}
    again = stratified_folds(y, 5, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    with pytest.raises(Exception, match="class 1 has 1 training row"):
        stratified_folds(np.array([0, 0, 0, 1]), 3, seed=0)
    with pytest.raises(ValueError, match="folds"):
        SelectionConfig(folds=1)


def test_lightgbm_is_not_constant_on_40_rows():
    x, y = signed_table(n=52, seed=3)
    X = {"series": x[:, None, :].astype(np.float32), "mask": np.ones((52, 1, 20), np.float32),
         "static": np.zeros((52, 0), np.float32)}
    data = SplitData(X, y, np.array([f"s{i}" for i in range(52)]))
    train, val, test = data.subset(np.arange(40)), data.subset(np.arange(40, 46)), data.subset(np.arange(46, 52))
    model = make_model("lightgbm", {"n_jobs": 1}, seed=0)  # default leaf size (20) and early stopping
    model.fit(train.X, train.y, val.X, val.y)
    p = model.predict_proba(train.X)[:, 1]
    assert p.std() > 0.1 and model.n_estimators_ > 1
    chosen = fit_with_selection(lambda: make_model("lightgbm", {"n_jobs": 1}, seed=0), train, val,
                                SelectionConfig(), seed=0)
    assert chosen.regime == "kfold" and chosen.threshold_source == "out-of-fold"
    p_test = chosen.model.predict_proba(test.X)[:, 1]
    assert np.unique(p_test >= chosen.threshold).size == 2


def test_leaderboard_flags_a_constant_prediction(tmp_path):
    y = np.array([0, 1, 2, 0, 1, 2])
    def result(model, prob):
        return SeedResult(folder=tmp_path, model=model, run="r", dataset="d", task="t", group=None, seed=0,
                          inputs=["series"], threshold=None, ids=np.array([f"e{i}" for i in range(6)]), y=y,
                          prob=prob, selection="kfold")
    constant = np.tile([0.5, 0.3, 0.2], (6, 1))
    good = np.eye(3)[y] * 0.8 + 0.2 / 3
    board = build_leaderboard([result("flat", constant), result("good", good)])
    rows = {r["model"]: r for r in board["rows"]}
    assert rows["flat"]["constant_prediction"] and not rows["good"]["constant_prediction"]
    assert rows["flat"]["balanced_accuracy"]["mean"] == pytest.approx(1 / 3)
    assert rows["good"]["balanced_accuracy"]["mean"] == 1.0 and rows["good"]["selection"] == "kfold"
