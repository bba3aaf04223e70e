"""Hand-computed checks of the tabular flattening and of the baselines' small helpers (class weights,
MiniRocket padding, the ModernNCA neighbour vote), plus config validation messages."""

from __future__ import annotations

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.models.registry import make_model
from hmspar.models.tabular import COLUMN_ORDER, feature_names, flatten_inputs


def tiny_X() -> dict[str, np.ndarray]:
    """Two entities, C = 2 channels, T = 3 periods, F = 2 static columns, D = 2 text dimensions."""
    series = np.arange(12, dtype=np.float32).reshape(2, 2, 3)  # entity 0: [[0,1,2],[3,4,5]]
    return {
        "series": series,
        "mask": (series % 2 == 0).astype(np.float32),
        "static": np.array([[10.0, 11.0], [12.0, 13.0]], dtype=np.float32),
        "text": np.array([[0.5, -0.5], [1.5, -1.5]], dtype=np.float32),
        "image": np.zeros((2, 4, 2, 2), dtype=np.float32),
    }


def test_flatten_order_is_fixed_and_documented():
    X = tiny_X()
    out = flatten_inputs(X, ["text", "static", "series"])  # order of inputs does not matter
    assert out.dtype == np.float32 and out.shape == (2, 6 + 6 + 2 + 2)
    np.testing.assert_array_equal(out[0], [0, 1, 2, 3, 4, 5,  1, 0, 1, 0, 1, 0,  10, 11,  0.5, -0.5])
    np.testing.assert_array_equal(out[1], [6, 7, 8, 9, 10, 11,  1, 0, 1, 0, 1, 0,  12, 13,  1.5, -1.5])
    assert COLUMN_ORDER == ("series", "mask", "image", "static", "text")


def test_flatten_without_mask_and_with_image():
    X = tiny_X()
    assert flatten_inputs(X, ["series"], include_mask=False).shape == (2, 6)
    assert flatten_inputs(X, ["static"]).shape == (2, 2)  # no series: no mask either
    assert flatten_inputs(X, ["image", "static"]).shape == (2, 16 + 2)


def test_text_adds_embedding_columns():
    X = tiny_X()
    base = flatten_inputs(X, ["series", "static"])
    more = flatten_inputs(X, ["series", "static", "text"])
    assert more.shape[1] == base.shape[1] + 2
    np.testing.assert_array_equal(more[:, : base.shape[1]], base)


def test_feature_names_match_columns():
    X = tiny_X()
    names = feature_names(X, ["series", "static", "text"], channels=["amount", "count"], static_columns=["a", "b"])
    assert len(names) == flatten_inputs(X, ["series", "static", "text"]).shape[1]
    assert names[:4] == ["series[amount,t0]", "series[amount,t1]", "series[amount,t2]", "series[count,t0]"]
    assert names[6] == "mask[amount,t0]"
    assert names[-4:] == ["static[a]", "static[b]", "text[0]", "text[1]"]


@pytest.mark.parametrize("inputs, X_update, message", [
    (["series", "sound"], {}, "unknown input modality 'sound'"),
    (["text"], {"text": None}, "input modality 'text' is missing"),
    ([], {}, "at least one modality"),
    (["series", "static"], {"static": np.zeros((3, 2), np.float32)}, "'static' has 3 rows, expected 2"),
])
def test_flatten_errors(inputs, X_update, message):
    X = tiny_X()
    for k, v in X_update.items():
        if v is None:
            del X[k]
        else:
            X[k] = v
    with pytest.raises(HmsparError, match=message):
        flatten_inputs(X, inputs)


def test_balanced_sample_weight_by_hand():
    from hmspar.models.baselines.trees import balanced_sample_weight

    # 3 of class 0, 1 of class 1: n / (K * count) = 4 / 6 and 4 / 2
    np.testing.assert_allclose(balanced_sample_weight(np.array([0, 0, 0, 1]), 2), [2 / 3, 2 / 3, 2 / 3, 2.0])


def test_tree_early_stopping_uses_validation_only_when_given():
    from test_model_contract import DATA

    (Xtr, ytr), (Xva, yva) = DATA["train"], DATA["val"]
    params = {"n_estimators": 200, "learning_rate": 0.3, "max_depth": 3, "early_stopping_rounds": 5, "n_jobs": 1}
    stopped = make_model("xgboost", params, 0).fit(Xtr, ytr, Xva, yva)
    full = make_model("xgboost", params, 0).fit(Xtr, ytr)
    assert stopped.n_estimators_ < 200 and full.n_estimators_ == 200


def test_tree_config_errors_name_the_key():
    with pytest.raises(HmsparError, match=r"baselines\.lightgbm\.num_leaves: expected an integer"):
        make_model("lightgbm", {"num_leaves": "many"}, 0)
    with pytest.raises(HmsparError, match=r"baselines\.random_forest\.max_features: "):
        make_model("random_forest", {"max_features": "all"}, 0)
    with pytest.raises(HmsparError, match=r"baselines\.catboost\.inputs: unknown modality 'audio'"):
        make_model("catboost", {"inputs": ["audio"]}, 0)


def test_sequence_config_requires_series():
    with pytest.raises(HmsparError, match=r"baselines\.lstm\.inputs: must contain 'series'"):
        make_model("lstm", {"inputs": ["static"]}, 0)
    with pytest.raises(HmsparError, match=r"baselines\.cnn1d\.inputs: 'image' is not accepted"):
        make_model("cnn1d", {"inputs": ["series", "image"]}, 0)
    with pytest.raises(HmsparError, match=r"baselines\.transformer\.train\.lr: expected a number"):
        make_model("transformer", {"train": {"lr": "fast"}}, 0)
    with pytest.raises(HmsparError, match=r"baselines\.modern_nca\.inputs: must name at least one"):
        make_model("modern_nca", {"inputs": []}, 0)


def test_minirocket_left_pads_short_series_by_edge_repetition():
    from hmspar.models.baselines.minirocket import pad_to_min_length

    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    np.testing.assert_array_equal(pad_to_min_length(x), [[[1, 1, 1, 1, 1, 1, 2, 3, 4]]])
    long = np.zeros((1, 1, 12))
    assert pad_to_min_length(long) is long


def test_minirocket_fits_series_shorter_than_kernel():
    from test_model_contract import make_synthetic

    data = make_synthetic(n_train=60, n_val=20, n_test=20, T=4)
    (Xtr, ytr), (Xva, yva), (Xte, _) = data["train"], data["val"], data["test"]
    for head in ("logistic", "ridge"):
        model = make_model("minirocket", {"n_kernels": 84, "n_jobs": 1, "head": head}, 0).fit(Xtr, ytr, Xva, yva)
        proba = model.predict_proba(Xte)
        assert proba.shape == (20, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _small_task(n_train=80, seed=0):
    from test_model_contract import make_synthetic

    data = make_synthetic(n_train=n_train, n_val=40, n_test=60, T=12, seed=seed)
    return data["train"], data["val"], data["test"]


def test_minirocket_auto_head_keeps_the_lower_validation_log_loss():
    from sklearn.metrics import log_loss

    from hmspar.models.baselines.minirocket import HEADS

    (Xtr, ytr), (Xva, yva), _ = _small_task()
    model = make_model("minirocket", {"n_kernels": 168, "n_jobs": 1}, 0).fit(Xtr, ytr, Xva, yva)
    assert set(model.val_log_loss_) == {"logistic", "ridge"}
    assert model.head_name_ == min(model.val_log_loss_, key=model.val_log_loss_.get)
    assert model.budget_ == HEADS.index(model.head_name_)  # what the k-fold selection hands to the refit
    # the recorded loss is the kept head's loss on validation, recomputed from its probabilities
    assert log_loss(yva, model.predict_proba(Xva)) == pytest.approx(model.val_log_loss_[model.head_name_])

    # without validation data: the choice handed over (fixed_budget), else ridge up to ridge_max_rows rows
    for fixed, expected in ((0, "logistic"), (1, "ridge")):
        refit = make_model("minirocket", {"n_kernels": 168, "n_jobs": 1}, 0)
        refit.fixed_budget = fixed
        assert refit.fit(Xtr, ytr).head_name_ == expected and refit.budget_ is None
    plain = make_model("minirocket", {"n_kernels": 168, "n_jobs": 1}, 0).fit(Xtr, ytr)
    assert plain.head_name_ == "ridge"
    big = make_model("minirocket", {"n_kernels": 168, "n_jobs": 1, "ridge_max_rows": 50}, 0).fit(Xtr, ytr, Xva, yva)
    assert big.head_name_ == "logistic" and set(big.val_log_loss_) == set()  # nothing to choose


def test_minirocket_ridge_head_reads_no_validation_row_and_keeps_the_ridge_ranking():
    from sklearn.metrics import roc_auc_score

    from hmspar.models.baselines.minirocket import _as_matrix

    (Xtr, ytr), (Xva, yva), (Xte, yte) = _small_task()
    cfg = {"n_kernels": 168, "n_jobs": 1, "head": "ridge"}
    a = make_model("minirocket", cfg, 0).fit(Xtr, ytr, Xva, yva)
    b = make_model("minirocket", cfg, 0).fit(Xtr, ytr, Xva, 1 - yva)  # flipped validation labels
    np.testing.assert_array_equal(a.predict_proba(Xte), b.predict_proba(Xte))
    scores = _as_matrix(a.head_.decision_function(a.scaler_.transform(a._features(Xte))))[:, 0]
    p1 = a.predict_proba(Xte)[:, 1]
    assert roc_auc_score(yte, p1) == pytest.approx(roc_auc_score(yte, scores))
    assert roc_auc_score(yte, p1) > 0.7  # the task is learnable

    # labels unrelated to the series: the sigmoid may find no out-of-fold signal, but never flips the ranking
    noise = np.random.default_rng(3).permutation(ytr)
    c = make_model("minirocket", cfg, 0).fit(Xtr, noise)
    assert c.platt_.coef_[0, 0] > 0


def test_minirocket_head_choice_goes_through_the_kfold_vote():
    from hmspar.data.loader import SplitData
    from hmspar.training.selection import SelectionConfig, fit_with_selection

    (Xtr, ytr), _, _ = _small_task(n_train=100)
    train = SplitData(Xtr, ytr, np.arange(ytr.size))
    empty = SplitData({k: v[:0] for k, v in Xtr.items()}, ytr[:0], np.arange(0))
    make = lambda: make_model("minirocket", {"n_kernels": 84, "n_jobs": 1}, 0)  # noqa: E731
    chosen = fit_with_selection(make, train, empty, SelectionConfig(folds=3, refit="refit"), 0)
    assert chosen.regime == "kfold" and len(chosen.fold_budgets) == 3
    assert set(chosen.fold_budgets) <= {0, 1}
    assert chosen.model.head_name_ == ("logistic", "ridge")[chosen.budget]  # the folds' majority
    ensemble = fit_with_selection(make, train, empty, SelectionConfig(folds=3), 0).model  # refit: ensemble
    assert [m.head_name_ for m in ensemble.members] == [("logistic", "ridge")[b] for b in chosen.fold_budgets]


def test_minirocket_config_errors_name_the_key():
    with pytest.raises(HmsparError, match=r"baselines\.minirocket\.head: expected one of \['auto', 'logistic', 'ridge'\], got 'lasso'"):
        make_model("minirocket", {"head": "lasso"}, 0)
    with pytest.raises(HmsparError, match=r"baselines\.minirocket\.calibration_folds: must be an integer of at least 2"):
        make_model("minirocket", {"calibration_folds": 1}, 0)


def test_modern_nca_vote_by_hand():
    torch = pytest.importorskip("torch")
    from hmspar.models.baselines.modern_nca import ModernNCAConfig, ModernNCANet

    net = ModernNCANet(np.zeros(1, dtype=bool), 2, ModernNCAConfig(n_blocks=0, distance="sqeuclidean"))
    q = torch.tensor([[0.0, 0.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    codes = torch.tensor([0, 1, 1])
    # squared distances 1, 4, 9 -> weights e^-1 (class 0), e^-4 + e^-9 (class 1)
    w = np.exp([-1.0, -4.0, -9.0])
    expected = np.array([w[0], w[1] + w[2]]) / w.sum()
    np.testing.assert_allclose(net.log_proba(q, c, codes).exp().numpy()[0], expected, rtol=1e-5)
    net_e = ModernNCANet(np.zeros(1, dtype=bool), 2, ModernNCAConfig(n_blocks=0, temperature=2.0))
    w = np.exp(-np.array([1.0, 2.0, 3.0]) / 2.0)  # Euclidean distances over temperature 2
    np.testing.assert_allclose(net_e.log_proba(q, c, codes).exp().numpy()[0],
                               [w[0] / w.sum(), (w[1] + w[2]) / w.sum()], rtol=1e-5)
    # a class without candidates gets probability 0 and finite gradients
    qq = q.clone().requires_grad_(True)
    lp = net.log_proba(qq, c[:1], codes[:1])
    assert lp.exp()[0, 1].item() == 0.0
    lp[0, 0].backward()
    assert torch.isfinite(qq.grad).all()


def test_modern_nca_leaves_global_rng_alone_and_handles_no_validation():
    torch = pytest.importorskip("torch")
    from test_model_contract import DATA

    from hmspar.models.baselines.modern_nca import ModernNCAModel

    (Xtr, ytr), (Xte, _) = DATA["train"], DATA["test"]
    before = torch.random.get_rng_state().clone()
    params = ModernNCAModel.test_params()
    params["train"] = {**params["train"], "epochs": 3}
    model = make_model("modern_nca", params, 1).fit(Xtr, ytr)  # holds out 10% for early stopping
    assert torch.equal(torch.random.get_rng_state(), before)
    assert model.candidates_.shape[0] == pytest.approx(0.9 * Xtr["series"].shape[0], abs=2)
    assert model.predict_proba(Xte).shape == (Xte["series"].shape[0], 2)
