"""Time-MoE, MPTSNet, UniTS, VQShape and T-Loss: forward shapes over series sizes, auxiliary losses,
period detection, VQ codebook use, and the unsupervised T-Loss encoder (loss goes down, features separate)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hmspar.errors import HmsparError  # noqa: E402
from hmspar.models.registry import make_model, model_class  # noqa: E402

NETS = ("time_moe", "mptsnet", "units", "vqshape")
AUX = ("time_moe", "vqshape")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors run fastest on one thread (and the test machine's cores are shared)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _X(n: int, c: int, t: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = (rng.random((n, c, t)) < 0.5).astype(np.float32)
    return {"series": (rng.normal(size=(n, c, t)) * mask).astype(np.float32), "mask": mask}


def _module(name: str, X: dict[str, np.ndarray], n_outputs: int, seed: int = 0):
    model = make_model(name, model_class(name).test_params(), seed)
    return model.make_module(X, n_outputs)


@pytest.mark.parametrize("name", NETS)
def test_forward_shapes_and_aux_loss(name):
    for c in (1, 2):
        for t in (4, 13, 35, 52):
            X = _X(6, c, t)
            for n_outputs in (1, 3):
                module = _module(name, X, n_outputs).train()
                batch = {k: torch.from_numpy(v) for k, v in X.items()}
                logits = module(batch)
                assert logits.shape == (6, n_outputs), (name, c, t)
                assert torch.isfinite(logits).all()
                aux = getattr(module, "aux_loss", None)
                if name in AUX:
                    assert aux is not None and aux.ndim == 0
                    value = float(aux.detach())
                    assert np.isfinite(value) and value >= 0.0, (name, c, t, value)
            (logits.sum() + (aux if aux is not None else 0.0)).backward()  # gradients flow


def test_time_moe_routes_each_token_to_top_k_experts():
    from hmspar.models.baselines.time_moe import SparseMoE

    torch.manual_seed(0)
    moe = SparseMoE(d_model=8, d_expert=8, n_experts=4, top_k=2)
    x = torch.randn(3, 5, 8)
    out, balance = moe(x)
    assert out.shape == x.shape
    # E * sum f_i P_i >= 0 and equals 1 for uniform routing probabilities.
    assert float(balance.detach()) >= 0.0
    with torch.no_grad():
        moe.router.weight.zero_()
    _, uniform = moe(x)
    assert float(uniform.detach()) == pytest.approx(1.0, abs=1e-6)
    # One token reaches exactly top_k routed experts: the others get no gradient (sparse dispatch).
    moe.zero_grad(set_to_none=True)
    moe(x[:1, :1])[0].sum().backward()
    reached = [e.gate.weight.grad is not None for e in moe.experts]
    assert sum(reached) == 2
    assert moe.shared.gate.weight.grad is not None


def test_mptsnet_finds_the_period_of_a_sine():
    from hmspar.models.baselines.mptsnet import fft_periods

    t = np.arange(48)
    x = np.sin(2 * np.pi * t / 6)[None, None, :] + 0.3 * np.sin(2 * np.pi * t / 16)[None, None, :]
    periods, amps = fft_periods(np.repeat(x, 4, axis=0), n_periods=2)
    assert periods == [6, 16]
    assert amps[0] > amps[1]
    assert fft_periods(np.zeros((2, 1, 1)), 3)[0] == [1]  # a single step: one whole-series segment


def test_mptsnet_fixed_periods_longer_than_series_are_dropped():
    model = make_model("mptsnet", {**model_class("mptsnet").test_params(), "periods": [2, 5, 100]}, 0)
    module = model.make_module(_X(4, 2, 13), 1)
    assert module.periods == [2, 5]
    with pytest.raises(HmsparError, match=r"baselines\.mptsnet\.periods: "):
        make_model("mptsnet", {"periods": [0]}, 0)


def test_vqshape_resample_hand_values():
    from hmspar.models.baselines.vqshape import resample

    x = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    out = resample(x, torch.tensor([[0.0, 0.5]]), torch.tensor([[1.0, 0.5]]), 4)
    np.testing.assert_allclose(out[0, 0].numpy(), [0.0, 1.0, 2.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(out[0, 1].numpy(), [1.5, 2.0, 2.5, 3.0], atol=1e-6)


def test_vqshape_uses_several_codes_and_trains_its_codebook():
    X = _X(64, 2, 18, seed=1)
    module = _module("vqshape", X, 1).train()
    batch = {k: torch.from_numpy(v) for k, v in X.items()}
    codes = module.encode(batch)["codes"]
    assert codes.shape == (64 * 2, module.n_shapes)
    assert torch.unique(codes).numel() > 1
    logits = module(batch)
    (logits.sum() + module.aux_loss).backward()
    assert module.codebook.grad is not None and module.codebook.grad.abs().sum() > 0


def test_vqshape_code_histogram_after_fit():
    rng = np.random.default_rng(0)
    X = _X(80, 2, 12)
    y = (X["series"][:, 0].sum(axis=1) + 0.1 * rng.normal(size=80) > 0).astype(int)
    params = {**model_class("vqshape").test_params(), "train": {"epochs": 1, "num_threads": 1}}
    model = make_model("vqshape", params, 0).fit(X, y)
    hist = model.code_histogram(X)
    assert hist.shape == (80, 2, params["codebook_size"])
    assert (hist.sum(axis=2) == params["n_shapes"]).all()


@pytest.mark.parametrize("name", ("time_moe", "mptsnet", "units", "vqshape", "tloss"))
def test_series_only_inputs(name):
    with pytest.raises(HmsparError, match=rf"baselines\.{name}\.inputs:"):
        make_model(name, {"inputs": ["series", "static"]}, 0)


# ------------------------------------------------------------------------------------------ T-Loss
def _two_classes(n: int, seed: int):
    """Class 0: slow sine; class 1: fast sine; random phase and noise. Two channels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.arange(24)
    freq = np.where(y == 1, 1.3, 0.25)[:, None, None]
    x = np.sin(freq * t + rng.uniform(0, 2 * np.pi, size=(n, 1, 1))) + 0.3 * rng.normal(size=(n, 2, 24))
    return {"series": x.astype(np.float32), "mask": (x > 0).astype(np.float32)}, y


def test_tloss_encoder_shapes_and_causality():
    from hmspar.models.baselines.tloss import CausalCNNEncoder

    torch.manual_seed(0)
    enc = CausalCNNEncoder(3, channels=4, depth=2, reduced_size=5, out_channels=6)
    for length in (1, 4, 13, 52):
        assert enc(torch.randn(7, 3, length)).shape == (7, 6)
    x = torch.randn(1, 3, 10)
    y = x.clone()
    y[..., -1] += 5.0  # changing the last step leaves the causal features of earlier steps unchanged
    np.testing.assert_allclose(enc.blocks(x)[..., :-1].detach().numpy(), enc.blocks(y)[..., :-1].detach().numpy())


def test_tloss_unsupervised_fit_is_deterministic_and_separates_classes():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    X, y = _two_classes(160, seed=0)
    Xt, yt = _two_classes(120, seed=1)
    params = {"channels": 8, "depth": 2, "reduced_size": 16, "out_channels": 16, "steps": 60, "batch_size": 16,
              "n_negatives": 3, "lr": 3e-3, "num_threads": 1}
    model = make_model("tloss", params, 5).fit(X, y)
    h = model.loss_history_
    assert len(h) == 60
    assert np.mean(h[-15:]) < np.mean(h[:15])  # the triplet loss goes down
    feats, feats_t = model.transform(X), model.transform(Xt)
    # Representations learned without labels separate the classes.
    clf = LogisticRegression(max_iter=1000).fit(feats, y)
    assert roc_auc_score(yt, clf.predict_proba(feats_t)[:, 1]) > 0.7
    assert roc_auc_score(yt, model.predict_proba(Xt)[:, 1]) > 0.7
    again = make_model("tloss", params, 5).fit(X, y)
    np.testing.assert_array_equal(again.transform(Xt), feats_t)
    assert again.loss_history_ == h


def test_tloss_svm_classifier():
    X, y = _two_classes(60, seed=2)
    params = {**model_class("tloss").test_params(), "classifier": "svm", "max_svm_rows": 40}
    model = make_model("tloss", params, 0).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (60, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    svm = model.classifier_[-1].calibrated_classifiers_[0].estimator
    assert svm.support_.size <= 40
