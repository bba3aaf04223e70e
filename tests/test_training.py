"""Tests of the model base classes, the shared Trainer and the losses (tiny synthetic problems, CPU)."""

from __future__ import annotations

import copy
import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from hmspar.config import build  # noqa: E402
from conftest import ROOT  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.models.base import Model  # noqa: E402
from hmspar.models.torch_base import TorchClassifier  # noqa: E402
from hmspar.training.losses import (BinaryBCELoss, BinaryFocalLoss, MulticlassFocalLoss,  # noqa: E402
                                    WeightedCrossEntropy, class_weights_from_labels, make_loss)
from hmspar.training.trainer import TrainConfig, Trainer, batch_slices  # noqa: E402


# ---------------------------------------------------------------------------- tiny model
class TinyNet(nn.Module):
    """MLP over ``static`` with dropout (so determinism covers layer randomness too)."""

    def __init__(self, n_features: int, n_outputs: int, aux: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, n_outputs))
        self.aux = aux
        self.aux_loss = None

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.net(batch["static"])  # (B, F) -> (B, n_outputs)
        if self.aux:
            self.aux_loss = logits.new_tensor(self.aux)
        return logits


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    inputs: list[str] = dataclasses.field(default_factory=lambda: ["static"])
    aux: float = 0.0
    train: TrainConfig = TrainConfig(epochs=8, batch_size=64, lr=1e-2, patience=8)


class TinyModel(TorchClassifier):
    Config = TinyConfig
    name = "tiny"

    def build_module(self, X, n_outputs):
        return TinyNet(X["static"].shape[1], n_outputs, self.cfg.aux)


def make_data(n=600, f=6, seed=0, n_classes=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    score = X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=n)
    if n_classes == 2:
        y = (score > 0.3).astype(np.int64)
    else:
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])).astype(np.int64)
    cut = int(0.7 * n)
    return {"static": X[:cut]}, y[:cut], {"static": X[cut:]}, y[cut:]


# ---------------------------------------------------------------------------- config and base
def test_train_config_validation():
    assert TrainConfig().epochs == 30
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(HmsparError, match=r"model\.train\.lr: "):
        build(TrainConfig, {"lr": -1.0}, "model.train")
    with pytest.raises(HmsparError, match=r"model\.train\.loss"):
        build(TrainConfig, {"loss": "mse"}, "model.train")
    with pytest.raises(HmsparError, match=r"model\.train\.bogus: unknown key"):
        build(TrainConfig, {"bogus": 1}, "model.train")


def test_base_importable_without_torch():
    code = ("import sys, hmspar.models.base, hmspar.training.trainer, hmspar.metrics, "
            "hmspar.runner; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)  # hmspar from this checkout


def test_select_inputs_names_missing_modality():
    m = TinyModel(TinyConfig(inputs=["static", "series"]))
    with pytest.raises(HmsparError, match="'series' is missing"):
        m.select_inputs({"static": np.zeros((2, 3))})
    with pytest.raises(HmsparError, match="'mask' is missing"):
        m.select_inputs({"static": np.zeros((2, 3)), "series": np.zeros((2, 1, 4))})
    X = {"static": np.zeros((2, 3)), "series": np.zeros((2, 1, 4)), "mask": np.zeros((2, 1, 4)),
         "text": np.zeros((2, 5))}
    assert set(m.select_inputs(X)) == {"static", "series", "mask"}
    with pytest.raises(HmsparError, match="unknown input modality 'audio'"):
        TinyModel(TinyConfig(inputs=["audio"]))
    assert issubclass(TinyModel, Model) and TinyModel.test_params() == {}


def test_predict_before_fit_raises():
    with pytest.raises(HmsparError, match="before fit"):
        TinyModel(TinyConfig()).predict_proba({"static": np.zeros((2, 6), np.float32)})


# ---------------------------------------------------------------------------- trainer
def test_batch_slices_avoid_single_row_batches():
    assert batch_slices(257, 256) == [(0, 128), (128, 257)] or batch_slices(257, 256) == [(0, 129), (129, 257)]
    assert batch_slices(10, 4) and all(b - a >= 3 for a, b in batch_slices(10, 4))
    assert batch_slices(0, 4) == []


def test_trainer_learns_and_restores_global_rng():
    X, y, Xv, yv = make_data()
    module = TinyNet(6, 1)
    state = torch.get_rng_state()
    seen = []
    cfg = TrainConfig(epochs=6, batch_size=64, lr=1e-2, patience=10)
    result = Trainer(cfg, seed=0, callback=lambda e, m: seen.append((e, m))).fit(module, X, y, Xv, yv)
    assert torch.equal(state, torch.get_rng_state())  # no global RNG leak
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert max(h["val_roc_auc"] for h in result.history) > 0.75
    assert [e for e, _ in seen] == list(range(1, len(result.history) + 1))
    assert set(seen[0][1]) == {"train_loss", "val_loss", "val_roc_auc", "lr"}
    assert result.history[-1]["lr"] < cfg.lr  # cosine schedule decays


def test_best_weights_are_the_best_epoch_snapshot():
    # Pure-noise labels: validation AUC wanders, so early stopping keeps an earlier epoch.
    rng = np.random.default_rng(3)
    X = {"static": rng.normal(size=(200, 6)).astype(np.float32)}
    Xv = {"static": rng.normal(size=(100, 6)).astype(np.float32)}
    y, yv = rng.integers(0, 2, 200), rng.integers(0, 2, 100)
    module = TinyNet(6, 1)
    snapshots = {}
    cfg = TrainConfig(epochs=30, batch_size=32, lr=3e-2, patience=3)
    result = Trainer(cfg, seed=1, callback=lambda e, m: snapshots.__setitem__(
        e, copy.deepcopy(module.state_dict()))).fit(module, X, y, Xv, yv)
    aucs = [h["val_roc_auc"] for h in result.history]
    assert result.best_epoch == int(np.argmax(aucs)) + 1
    assert result.best_epoch < len(result.history)  # stopped after `patience` worse epochs
    assert len(result.history) == result.best_epoch + cfg.patience
    final = result.module.state_dict()
    best = snapshots[result.best_epoch]
    last = snapshots[len(result.history)]
    assert all(torch.equal(final[k], best[k]) for k in best)
    assert not all(torch.equal(final[k], last[k]) for k in last)


def test_aux_loss_is_added():
    X, y, Xv, yv = make_data(n=200)
    train = TrainConfig(epochs=1, batch_size=64)
    plain = TinyModel(TinyConfig(train=train), seed=0).fit(X, y, Xv, yv)  # same seed: same initial weights
    aux = TinyModel(TinyConfig(train=train, aux=5.0), seed=0).fit(X, y, Xv, yv)
    assert aux.history_[0]["train_loss"] == pytest.approx(plain.history_[0]["train_loss"] + 5.0, abs=1e-4)
    assert aux.history_[0]["val_loss"] == pytest.approx(plain.history_[0]["val_loss"], abs=1e-6)


def test_trainer_rejects_wrong_logit_shape():
    X, y, Xv, yv = make_data(n=100)
    with pytest.raises(HmsparError, match="logits of shape"):
        Trainer(TrainConfig(epochs=1), seed=0).fit(TinyNet(6, 2), X, y, Xv, yv)


# ---------------------------------------------------------------------------- TorchClassifier
def test_torch_classifier_determinism_and_contract():
    X, y, Xv, yv = make_data()
    p1 = TinyModel(TinyConfig(), seed=0).fit(X, y, Xv, yv).predict_proba(Xv)
    p2 = TinyModel(TinyConfig(), seed=0).fit(X, y, Xv, yv).predict_proba(Xv)
    p3 = TinyModel(TinyConfig(), seed=1).fit(X, y, Xv, yv).predict_proba(Xv)
    assert p1.shape == (len(yv), 2)
    assert np.allclose(p1.sum(axis=1), 1.0) and p1.min() >= 0 and p1.max() <= 1
    assert np.array_equal(p1, p2)
    assert not np.allclose(p1, p3)


def test_torch_classifier_multiclass_without_validation(tmp_path):
    X, y, Xv, yv = make_data(n_classes=3)
    y, yv = y + 10, yv + 10  # arbitrary class labels
    m = TinyModel(TinyConfig(), seed=0).fit(X, y)  # holds out a stratified 10 %
    P = m.predict_proba(Xv)
    assert m.classes_.tolist() == [10, 11, 12]
    assert P.shape == (len(yv), 3) and np.allclose(P.sum(axis=1), 1.0)
    assert (m.classes_[P.argmax(axis=1)] == yv).mean() > 0.6
    m.save(tmp_path / "m.pkl")
    assert np.array_equal(TinyModel.load(tmp_path / "m.pkl").predict_proba(Xv), P)


def test_save_load_round_trip_and_memmap_inputs(tmp_path):
    X, y, Xv, yv = make_data()
    np.save(tmp_path / "static.npy", X["static"])
    Xm = {"static": np.load(tmp_path / "static.npy", mmap_mode="r")}
    m = TinyModel(TinyConfig(), seed=2)
    m.callback = lambda e, metrics: None  # not pickled
    m.fit(Xm, y, Xv, yv)
    m.save(tmp_path / "model.pkl")
    loaded = TinyModel.load(tmp_path / "model.pkl")
    assert loaded.callback is None and loaded.best_epoch_ == m.best_epoch_
    assert np.array_equal(loaded.predict_proba(Xv), m.predict_proba(Xv))
    assert np.array_equal(TinyModel(TinyConfig(), seed=2).fit(X, y, Xv, yv).predict_proba(Xv),
                          m.predict_proba(Xv))
    with pytest.raises(HmsparError, match="no saved model"):
        TinyModel.load(tmp_path / "missing.pkl")


# ---------------------------------------------------------------------------- losses
def test_class_weights_from_labels():
    np.testing.assert_allclose(class_weights_from_labels(np.array([0, 0, 0, 1])), [2 / 3, 2.0])
    np.testing.assert_allclose(class_weights_from_labels(np.array([0, 1, 2, 2])), [4 / 3, 4 / 3, 2 / 3])
    with pytest.raises(HmsparError, match="class 1 has no training example"):
        class_weights_from_labels(np.array([0, 0, 2]), 3)


def test_losses_known_values():
    zero = torch.zeros(1, 1)
    one = torch.ones(1, dtype=torch.long)
    assert float(BinaryBCELoss(3.0)(zero, one)) == pytest.approx(3 * math.log(2), rel=1e-6)
    assert float(BinaryBCELoss()(zero, one - 1)) == pytest.approx(math.log(2), rel=1e-6)
    # -alpha (1 - 0.5)^2 log 0.5 for a positive, -(1 - alpha) ... for a negative
    assert float(BinaryFocalLoss(0.25, 2.0)(zero, one)) == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-6)
    assert float(BinaryFocalLoss(0.25, 2.0)(zero, one - 1)) == pytest.approx(0.75 * 0.25 * math.log(2), rel=1e-6)
    logit = torch.tensor([[2.0]])  # p = sigmoid(2) = 0.8808
    p = 1 / (1 + math.exp(-2))
    assert float(BinaryFocalLoss(None, 1.0)(logit, one)) == pytest.approx(-(1 - p) * math.log(p), rel=1e-5)
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    target = torch.tensor([0, 2])
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert float(MulticlassFocalLoss(None, 0.0)(logits, target)) == pytest.approx(float(ce), rel=1e-6)
    w = np.array([2.0, 1.0, 0.5])
    lp = torch.log_softmax(logits, 1)
    expected_ce = -(2.0 * lp[0, 0] + 0.5 * lp[1, 2]) / 2.5
    assert float(WeightedCrossEntropy(w)(logits, target)) == pytest.approx(float(expected_ce), rel=1e-6)


def test_make_loss_uses_training_labels():
    y = np.array([0, 0, 0, 1])
    bce = make_loss("bce", y, 2)
    assert float(bce.pos_weight) == pytest.approx(3.0)
    assert make_loss("bce", y, 2, class_weight=False).pos_weight is None
    assert make_loss("focal", y, 2, gamma=1.5).alpha == pytest.approx(0.75)
    assert isinstance(make_loss("bce", np.array([0, 1, 2]), 3), WeightedCrossEntropy)
    assert isinstance(make_loss("focal", np.array([0, 1, 2]), 3), MulticlassFocalLoss)
    with pytest.raises(HmsparError, match="train.loss"):
        make_loss("hinge", y, 2)


# ---------------------------------------------------------------------------- step budget and selection
def test_fixed_step_fit_takes_exactly_that_many_steps():
    X, y, _, _ = make_data(n=915)  # 640 training rows: 10 steps per epoch at batch 64
    cfg = TrainConfig(epochs=1, batch_size=64, lr=1e-2)
    result = Trainer(cfg, seed=0).fit(TinyNet(6, 1), X, y, steps=23)
    assert result.steps == result.best_step == 23
    assert [h["step"] for h in result.history] == [10, 20, 23]  # epochs > cfg.epochs: steps decide
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine schedule spans the steps
    with pytest.raises(HmsparError, match="positive number of steps"):
        Trainer(cfg, seed=0).fit(TinyNet(6, 1), X, y)
    model = TinyModel(TinyConfig(train=cfg), seed=0).fit_steps(X, y, 7)
    assert model.best_step_ == 7 and model.predict_proba(X).shape == (640, 2)
    again = TinyModel(TinyConfig(train=cfg), seed=0).fit_steps(X, y, 7)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


def test_max_steps_min_steps_and_patience_in_steps():
    X, y, Xv, yv = make_data(n=915)  # 10 steps per epoch
    capped = Trainer(TrainConfig(epochs=50, max_steps=25, batch_size=64, patience=100), seed=0).fit(
        TinyNet(6, 1), X, y, Xv, yv)
    assert capped.steps == 25 and [h["step"] for h in capped.history] == [10, 20, 25]
    # patience of one step: stop at the first evaluation without improvement, but never before min_steps
    cfg = TrainConfig(max_steps=400, min_steps=120, patience_steps=1, batch_size=64, lr=0.2, select="val_loss")
    result = Trainer(cfg, seed=0).fit(TinyNet(6, 1), X, y, Xv, yv)
    steps = [h["step"] for h in result.history]
    assert steps[-1] >= 120 and steps[-1] < 400
    losses = [h["val_loss"] for h in result.history]
    assert losses[-1] > min(losses)  # stopped on a non-improvement
    early = Trainer(dataclasses.replace(cfg, min_steps=0), seed=0).fit(TinyNet(6, 1), X, y, Xv, yv)
    assert early.steps < result.steps


@pytest.mark.parametrize("select", ["val_loss", "val_auc", "smoothed_auc"])
def test_selection_keeps_the_best_epoch_by_the_chosen_score(select):
    X, y, Xv, yv = make_data(n=300, seed=1)
    Xv["static"] = Xv["static"] + np.random.default_rng(5).normal(0, 1.5, Xv["static"].shape).astype(np.float32)
    cfg = TrainConfig(epochs=12, batch_size=32, lr=0.05, patience=100, select=select, smooth_window=3)
    result = Trainer(cfg, seed=0).fit(TinyNet(6, 1), X, y, Xv, yv)
    loss = np.array([h["val_loss"] for h in result.history])
    auc = np.array([h["val_roc_auc"] for h in result.history])
    if select == "val_loss":
        score = -loss
    elif select == "val_auc":
        score = auc
    else:
        score = np.array([auc[max(0, i - 2):i + 1].mean() for i in range(auc.size)])
    tied = np.flatnonzero(score == score.max())
    # the first maximum; ROC-AUC is a rank statistic, so exact ties happen, and the trainer breaks them by the
    # validation loss (the tied epoch with the lowest loss, the first of those)
    expected = tied[0] if select == "val_loss" else tied[int(np.argmin(loss[tied]))]
    assert result.best_epoch == int(expected) + 1
    assert result.best_score == pytest.approx(score.max())
    assert result.best_step == result.history[result.best_epoch - 1]["step"]


def test_weight_decay_skips_biases_and_norms():
    from hmspar.training.optim import param_groups

    net = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Conv1d(3, 2, 3))
    decay, no_decay = param_groups(net, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[2].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(net[0].bias), id(net[1].weight), id(net[1].bias),
                                                   id(net[2].bias)}
    # a norm's scale does not shrink under a zero gradient, a weight matrix does
    opt = torch.optim.AdamW(param_groups(net, 0.5), lr=0.1)
    before_w, before_ln = net[0].weight.detach().clone(), net[1].weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(net[1].weight, before_ln)
    torch.testing.assert_close(net[0].weight, before_w * (1 - 0.1 * 0.5))


def test_aux_logits_are_trained_with_the_task_loss():
    class AuxNet(TinyNet):
        aux_logits_weight = 2.0

        def forward(self, batch):
            logits = super().forward(batch)
            self.aux_logits = [logits * 0.0, logits * 0.0] if self.training else None  # loss log(2) each
            return logits

    X, y, Xv, yv = make_data(n=200)
    cfg = TrainConfig(epochs=1, batch_size=64, class_weight=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        plain_net = TinyNet(6, 1)
        torch.manual_seed(0)
        aux_net = AuxNet(6, 1)
    plain = Trainer(cfg, seed=0).fit(plain_net, X, y, Xv, yv)
    aux = Trainer(cfg, seed=0).fit(aux_net, X, y, Xv, yv)
    # same initial weights; zero aux logits add log(2) each (mean log 2, times the weight 2) and no
    # gradient, so every step's loss shifts by exactly 2 log 2 and the training path is unchanged
    assert aux.history[0]["train_loss"] == pytest.approx(plain.history[0]["train_loss"] + 2.0 * np.log(2.0),
                                                         abs=1e-4)


def test_train_config_step_fields_validate():
    with pytest.raises(ValueError, match="min_steps: must not exceed max_steps"):
        TrainConfig(max_steps=10, min_steps=20)
    with pytest.raises(ValueError, match="patience_steps: must be a non-negative integer"):
        TrainConfig(patience_steps=-1)
    with pytest.raises(ValueError, match="select: expected"):
        TrainConfig(select="val_f1")


def test_adamw_multi_tensor_update_equals_the_one_tensor_update_bit_for_bit():
    """The shared optimiser (``optim.adamw``: foreach) gives the same weights as torch's one-tensor AdamW on the
    CPU, with both parameter groups (decayed and not), gradient clipping and a learning-rate change."""
    from hmspar.training.optim import adamw, param_groups

    def train(make_opt):
        g = torch.Generator().manual_seed(0)
        net = nn.Sequential(nn.Linear(7, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 3))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        opt = make_opt(net)
        for step in range(40):
            x, y = torch.randn(32, 7, generator=g), torch.randint(0, 3, (32,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            opt.step()
            if step == 20:
                for group in opt.param_groups:
                    group["lr"] *= 0.3
        return opt, net.state_dict()

    opt, multi = train(lambda net: adamw(net, 0.01, 0.05))
    assert opt.defaults["foreach"] is True and [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    _, single = train(lambda net: torch.optim.AdamW(param_groups(net, 0.05), lr=0.01, foreach=False))
    assert all(torch.equal(multi[k], single[k]) for k in single)
