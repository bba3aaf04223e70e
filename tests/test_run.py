"""End-to-end tests of ``run_model`` on a tiny features directory written in the loader's format."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from hmspar.data.splits import stratified_split
from hmspar.errors import HmsparError
from hmspar.models import registry
from hmspar.models.base import Model
from hmspar.report.leaderboard import compute_metrics
from hmspar.runner import run_model as _run_model


def run_model(*args, **kwargs):
    """These tests exercise the validation regime on a small fixture; the k-fold regime of small runs has
    its own tests in tests/test_selection.py."""
    kwargs.setdefault("selection", {"small_train_rows": 0})
    return _run_model(*args, **kwargs)
from hmspar.training.trainer import TrainConfig

METRIC_FIELDS = {"model", "run", "dataset", "task", "group", "seed", "inputs", "threshold", "test",
                 "test_at_0.5", "val", "n_train", "n_val", "n_test"}
TIMING_FIELDS = {"fit_seconds", "predict_seconds"}
BINARY_FIELDS = {"roc_auc", "auprc", "f1", "precision", "recall", "accuracy", "balanced_accuracy", "brier"}


# ---------------------------------------------------------------------------- tiny models
@dataclasses.dataclass(frozen=True)
class PriorConfig:
    inputs: list[str] = dataclasses.field(default_factory=lambda: ["static"])
    fail: bool = False


class LogisticModel(Model):
    """A numpy logistic regression on ``static`` (no torch); records the rows it was fitted on."""

    Config = PriorConfig
    name = "logistic"

    def fit(self, X, y, X_val=None, y_val=None):
        if self.cfg.fail:
            raise RuntimeError("deliberate failure in fit")
        X = self.select_inputs(X)["static"]
        codes = self._fit_classes(y)
        self.fit_rows_ = X.shape[0]
        rng = np.random.default_rng(self.seed)
        w = rng.normal(scale=0.01, size=X.shape[1])
        for _ in range(200):
            p = 1 / (1 + np.exp(-(X @ w)))
            w -= 0.5 * X.T @ (p - codes) / X.shape[0]
        self.w_ = w
        return self

    def predict_proba(self, X):
        self._check_fitted()
        p = 1 / (1 + np.exp(-(self.select_inputs(X)["static"] @ self.w_)))
        return np.stack([1 - p, p], axis=1)


@pytest.fixture()
def features_dir(tmp_path):
    """240 entities, 2 channels x 12 periods, 4 ISA-GAF images of 4x4, text dim 8, static dim 4."""
    rng = np.random.default_rng(0)
    n, c, t, s = 240, 2, 12, 4
    d = tmp_path / "features" / "toy"
    d.mkdir(parents=True)
    static = np.concatenate([rng.normal(size=(n, 2)), np.eye(2)[rng.integers(0, 2, n)]], axis=1).astype(np.float32)
    series = np.abs(rng.normal(size=(n, c, t))).astype(np.float32) * (rng.random((n, c, t)) < 0.5)
    y = (static[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.int8)
    y3 = np.digitize(static[:, 1], [-0.4, 0.4]).astype(np.int8)
    np.save(d / "ids.npy", np.array([f"e{i:04d}" for i in range(n)]))
    np.save(d / "series.npy", series)
    np.save(d / "mask.npy", (series > 0).astype(np.float32))
    np.save(d / "image.npy", rng.uniform(-1, 1, size=(n, 2 * c, s, s)).astype(np.float32))
    np.save(d / "text.npy", rng.normal(size=(n, 8)).astype(np.float32))
    np.save(d / "static.npy", static)
    np.save(d / "groups.npy", np.array(["A", "B"])[rng.integers(0, 2, n)])
    np.savez(d / "labels.npz", churn=y, tier=y3)
    np.savez(d / "splits.npz", churn=stratified_split(y, 0.2, 0.2, 1), tier=stratified_split(y3, 0.2, 0.2, 1))
    (d / "meta.json").write_text(json.dumps({
        "channels": ["orders", "spend"], "tasks": ["churn", "tier"], "groups": ["A", "B"],
        "static_columns": ["x0", "x1", "cat=a", "cat=b"], "static_numeric": [True, True, False, False]}))
    return d


@pytest.fixture()
def registered(monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "logistic", f"{__name__}:LogisticModel")
    return registry.REGISTRY


RUN = {"dataset": "toy", "task": "churn"}


def test_run_model_writes_outputs(features_dir, registered, tmp_path):
    out = tmp_path / "results" / "run1"
    timings_path = tmp_path / "timings" / "run1.json"
    results = run_model("logistic", {}, "baselines.logistic", features_dir, "run1", RUN, [0, 1], out,
                        progress=False, timings_path=timings_path)
    assert len(results) == 2
    timings = json.loads(timings_path.read_text())
    assert set(timings) == {"seed0", "seed1"} and all(set(t) == TIMING_FIELDS for t in timings.values())
    for seed, res in zip([0, 1], results):
        sdir = out / f"seed{seed}"
        assert sorted(p.name for p in sdir.iterdir()) == ["metrics.json", "model.pkl", "predictions.csv"]
        metrics = json.loads((sdir / "metrics.json").read_text())
        assert not TIMING_FIELDS & set(metrics)  # host facts stay out of cached outputs
        assert {**metrics, **timings[f"seed{seed}"]} == res
        assert METRIC_FIELDS <= set(metrics)
        assert set(metrics["test"]) == set(metrics["test_at_0.5"]) == set(metrics["val"]) == BINARY_FIELDS
        assert metrics["seed"] == seed and metrics["inputs"] == ["static"] and metrics["group"] is None
        assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 240
        assert metrics["test"]["roc_auc"] > 0.8
        pred = pd.read_csv(sdir / "predictions.csv")
        assert list(pred.columns) == ["id", "split", "y_true", "prob"]
        assert (pred["split"] == "val").sum() == metrics["n_val"]
        assert (pred["split"] == "test").sum() == metrics["n_test"]
        test_rows = pred[pred["split"] == "test"]   # the leaderboard recomputes the runner's numbers
        lb = compute_metrics(test_rows["y_true"].to_numpy(), test_rows["prob"].to_numpy(), metrics["threshold"])
        for key, value in metrics["test"].items():
            assert lb[key] == pytest.approx(value, abs=1e-6), key
        model = LogisticModel.load(sdir / "model.pkl")
        assert model.fit_rows_ == metrics["n_train"]  # fitted on the training split only
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temp dirs left


def test_run_model_group_and_multiclass(features_dir, registered, tmp_path, monkeypatch):
    out = tmp_path / "grp"
    res = run_model("logistic", None, "baselines.logistic", features_dir, "grp",
                    {"dataset": "toy", "task": "churn", "group": "A"}, [0], out, progress=False)
    assert res[0]["group"] == "A" and res[0]["n_train"] + res[0]["n_val"] + res[0]["n_test"] < 240

    pytest.importorskip("torch")
    monkeypatch.setitem(registry.REGISTRY, "tiny", f"{__name__}:TinyTorch")
    res = run_model("tiny", {"train": {"epochs": 2}}, "baselines.tiny", features_dir, "mc",
                    {"dataset": "toy", "task": "tier"}, [0], tmp_path / "mc", progress=False)
    assert res[0]["threshold"] is None and {"roc_auc", "f1_macro", "accuracy"} <= set(res[0]["test"])
    pred = pd.read_csv(tmp_path / "mc" / "seed0" / "predictions.csv")
    assert [c for c in pred.columns if c.startswith("prob")] == ["prob_0", "prob_1", "prob_2"]
    np.testing.assert_allclose(pred[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0, atol=1e-6)


def test_run_model_failure_leaves_no_output(features_dir, registered, tmp_path):
    out = tmp_path / "results" / "bad"
    with pytest.raises(RuntimeError, match="deliberate"):
        run_model("logistic", {"fail": True}, "baselines.logistic", features_dir, "bad", RUN, [0], out,
                  progress=False)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []
    # an existing output stays untouched when a rerun fails
    run_model("logistic", {}, "baselines.logistic", features_dir, "bad", RUN, [0], out, progress=False)
    before = (out / "seed0" / "metrics.json").read_text()
    with pytest.raises(RuntimeError):
        run_model("logistic", {"fail": True}, "baselines.logistic", features_dir, "bad", RUN, [0, 1], out,
                  progress=False)
    assert (out / "seed0" / "metrics.json").read_text() == before and not (out / "seed1").exists()


def test_run_model_rejects_bad_run_spec(features_dir, registered, tmp_path):
    with pytest.raises(HmsparError, match=r"runs\.r\.industry: unknown key"):
        run_model("logistic", {}, "baselines.logistic", features_dir, "r",
                  {"dataset": "toy", "task": "churn", "industry": "A"}, [0], tmp_path / "o", progress=False)
    with pytest.raises(HmsparError, match=r"baselines\.logistic\.bogus: unknown key"):
        run_model("logistic", {"bogus": 1}, "baselines.logistic", features_dir, "r", RUN, [0],
                  tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- torch model + DVCLive
try:
    import torch
    from torch import nn

    from hmspar.models.torch_base import TorchClassifier
except ImportError:  # pragma: no cover
    torch = None

if torch is not None:
    class TinyNet(nn.Module):
        def __init__(self, n_static: int, n_series: int, n_outputs: int) -> None:
            super().__init__()
            self.static = nn.Linear(n_static, 8)
            self.series = nn.Linear(n_series, 8)
            self.head = nn.Linear(16, n_outputs)

        def forward(self, batch):
            s = self.static(batch["static"])                                    # (B, F) -> (B, 8)
            q = self.series((batch["series"] * batch["mask"]).mean(dim=2))      # (B, C, T) -> (B, 8)
            return self.head(torch.relu(torch.cat([s, q], dim=1)))              # (B, 16) -> (B, n_outputs)

    @dataclasses.dataclass(frozen=True)
    class TinyTorchConfig:
        inputs: list[str] = dataclasses.field(default_factory=lambda: ["static", "series"])
        train: TrainConfig = TrainConfig(epochs=3, batch_size=32, lr=1e-2)

    class TinyTorch(TorchClassifier):
        Config = TinyTorchConfig
        name = "tiny"

        def build_module(self, X, n_outputs):
            assert set(X) == {"static", "series", "mask"}  # only the used modalities
            return TinyNet(X["static"].shape[1], X["series"].shape[1], n_outputs)


def test_run_model_torch_with_dvclive(features_dir, registered, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setitem(registry.REGISTRY, "tiny", f"{__name__}:TinyTorch")
    monkeypatch.chdir(tmp_path)  # DVCLive inspects the repository of the working directory; stay outside it
    out, live = tmp_path / "out", tmp_path / "dvclive" / "run"
    res = run_model("tiny", {}, "baselines.tiny", features_dir, "run", RUN, [0, 1], out, live_dir=live,
                    progress=False)
    assert res[0]["inputs"] == ["static", "series"] and 1 <= res[0]["best_epoch"] <= 3
    for seed in (0, 1):
        curve = live / f"seed{seed}" / "plots" / "metrics"
        for name in ("train_loss", "val_loss", "val_roc_auc"):
            rows = pd.read_csv(curve / f"{name}.tsv", sep="\t")
            assert list(rows["step"]) == [0, 1, 2]
        assert not (live / f"seed{seed}" / "dvc.yaml").exists()
    again = run_model("tiny", {}, "baselines.tiny", features_dir, "run", RUN, [0], tmp_path / "out2",
                      progress=False)
    assert again[0]["test"] == res[0]["test"]  # same seed, same result
    p1 = pd.read_csv(out / "seed0" / "predictions.csv")
    p2 = pd.read_csv(tmp_path / "out2" / "seed0" / "predictions.csv")
    assert p1.equals(p2)
