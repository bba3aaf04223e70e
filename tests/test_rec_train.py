"""The shared training loop of sequential recommenders (hmspar/rec/train.py)."""

from __future__ import annotations

import numpy as np
import pytest

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.rec.base import Histories
from hmspar.rec.train import SeqTrainConfig, fit_sequential, torch_seed

torch = pytest.importorskip("torch")


class Drifting(torch.nn.Module):
    """Each step lowers the score of item 1 (the validation target): validation NDCG@10 is best after the
    first epoch and falls afterwards, so early stopping must hand back the epoch-1 weights."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n_items + 1))
        with torch.no_grad():
            self.w[1] = 1.0

    def loss(self, items, times):
        return self.w[1] * items.shape[0] / items.shape[0]

    def score(self, items, times, target_times):
        return self.w[None, :].expand(items.shape[0], -1)


def histories(n=8, targets=None):
    items = np.tile(np.array([[0, 2, 3, 4]]), (n, 1))
    return Histories(items, np.zeros(items.shape), None if targets is None else np.full(n, targets), None, None)


def test_early_stopping_restores_a_deep_copy_of_the_best_state():
    net = Drifting(20)
    cfg = SeqTrainConfig(epochs=10, batch_size=64, lr=0.5, patience=2, max_len=3, grad_clip=0.0)
    report = fit_sequential(net, histories(), histories(targets=1), cfg, seed=0)
    assert report["best_epoch"] == 1 and report["best_val_ndcg@10"] == pytest.approx(1.0)
    assert report["epochs_run"] == 3                                  # two epochs without improvement
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]
    assert 0.0 < float(net.w[1].detach()) < 1.0                                 # the epoch-1 weights, not the last ones
    assert net.training is False


def test_torch_seed_does_not_touch_the_global_generator():
    before = torch.random.get_rng_state()
    with torch_seed(3):
        a = torch.rand(3)
    with torch_seed(3):
        b = torch.rand(3)
    assert torch.equal(a, b) and torch.equal(before, torch.random.get_rng_state())


def test_train_config_errors_name_the_key():
    with pytest.raises(HmsparError, match="rec.recommenders.sasrec.train.epochs: must be positive"):
        build(SeqTrainConfig, {"epochs": 0}, "rec.recommenders.sasrec.train")
