"""Training budgets of the slow baselines (issue 16, item 4): CatBoost's small-data rule, the step budget of
the deep sequence baselines, and T-Loss's batched negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmspar.models.registry import make_model


def _toy(n_per_class: int, n_classes: int, length: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    u = np.linspace(0, 1, length)[None, :]
    x = np.sin(2 * np.pi * (y[:, None] + 1) * u) + rng.normal(0, 0.3, (y.size, length))
    series = x[:, None, :].astype(np.float32)
    X = {"series": series, "mask": np.ones_like(series), "static": np.zeros((y.size, 0), np.float32)}
    return X, y


def test_catboost_budget_rule_on_small_and_large_data():
    cfg = make_model("catboost", {"n_estimators": 1000, "learning_rate": 0.05, "depth": 6}, 0).cfg
    assert cfg.budget_for(160) == (200, pytest.approx(0.25), 4)  # rounds x rate kept: 1000 x 0.05 = 200 x 0.25
    assert cfg.budget_for(cfg.small_rows) == (1000, 0.05, 6)    # ordinary data: as configured
    fast = make_model("catboost", {"n_estimators": 1000, "learning_rate": 0.3}, 0).cfg
    assert fast.budget_for(100)[1] == 0.5                        # the raised rate is capped
    few = make_model("catboost", {"n_estimators": 100, "learning_rate": 0.1, "depth": 3}, 0).cfg
    assert few.budget_for(100) == (100, 0.1, 3)                  # already within the small budget
    off = make_model("catboost", {"small_rows": 0}, 0).cfg
    assert off.budget_for(10) == (off.n_estimators, off.learning_rate, off.depth)


@pytest.mark.parametrize("key,value", [("small_rows", -1), ("small_n_estimators", 0), ("small_depth", 1.5)])
def test_catboost_budget_settings_are_checked(key, value):
    from hmspar.errors import HmsparError

    with pytest.raises(HmsparError, match=rf"baselines\.catboost[.:] ?{key}"):
        make_model("catboost", {key: value}, 0, "baselines.catboost")


def test_catboost_small_data_grows_the_small_budget():
    X, y = _toy(20, 3)
    model = make_model("catboost", {"n_estimators": 1000, "learning_rate": 0.05, "depth": 6,
                                    "early_stopping_rounds": 0, "n_jobs": 1}, 0)
    model.fit(X, y)
    params = model.estimator_.get_all_params()
    assert model.estimator_.tree_count_ == 200
    assert params["depth"] == 4 and params["learning_rate"] == pytest.approx(0.25)
    assert (model.predict_proba(X).argmax(axis=1) == y).mean() > 0.9


@pytest.mark.parametrize("name", ["lstm", "cnn1d"])
def test_sequence_baselines_train_within_the_step_budget(name):
    X, y = _toy(24, 3)
    va = np.arange(y.size) % 4 == 0
    Xt = {k: v[~va] for k, v in X.items()}
    Xv = {k: v[va] for k, v in X.items()}
    train = {"max_steps": 30, "min_steps": 0, "patience_steps": 10_000, "select": "val_loss", "batch_size": 16,
             "num_threads": 1}
    model = make_model(name, {"hidden": 8, "head_hidden": 8, "train": train}, 0).fit(Xt, y[~va], Xv, y[va])
    assert model.history_[-1]["step"] == 30   # 54 rows at batch 16: 4 steps an epoch, stopped mid-epoch at 30
    assert 0 < model.best_step_ <= 30


def test_tloss_batched_negatives_equal_separate_encoding():
    from hmspar.models.baselines.tloss import CausalCNNEncoder, _windows, triplet_loss

    torch.manual_seed(0)
    enc = CausalCNNEncoder(2, 8, 2, 8, 8)
    train = torch.randn(30, 2, 20)
    batch = train[:6]
    got = triplet_loss(enc, batch, train, 3, torch.Generator().manual_seed(4))
    # the same draws, encoded one group at a time as written in the paper
    g = torch.Generator().manual_seed(4)
    b, _, t = batch.shape
    len_pn = int(torch.randint(1, t + 1, (1,), generator=g))
    len_a = int(torch.randint(len_pn, t + 1, (1,), generator=g))
    begin_a = torch.randint(0, t - len_a + 1, (b,), generator=g)
    begin_p = begin_a + torch.randint(0, len_a - len_pn + 1, (b,), generator=g)
    rows = torch.randint(0, train.shape[0], (3 * b,), generator=g)
    begin_n = torch.randint(0, t - len_pn + 1, (3 * b,), generator=g)
    z_a = enc(_windows(batch, begin_a, len_a))
    z_p = enc(_windows(batch, begin_p, len_pn))
    z_n = enc(_windows(train[rows], begin_n, len_pn)).view(3, b, -1)
    want = -(torch.nn.functional.logsigmoid((z_a * z_p).sum(-1)).mean()
             + torch.nn.functional.logsigmoid(-(z_a[None] * z_n).sum(-1)).mean())
    assert torch.allclose(got, want, atol=1e-6)
