"""The one training loop of the torch recommenders (hmspar/rec/train.py), on hand-made nets and tiny data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hmspar.config import build  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.rec.base import Histories, ItemFeatures  # noqa: E402
from hmspar.rec.train import NextItemNet, RecTrainConfig, TorchSeqRecommender  # noqa: E402

N_ITEMS = 20


@dataclasses.dataclass(frozen=True)
class Cfg:
    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    train: RecTrainConfig = RecTrainConfig()


class Drifting(torch.nn.Module):
    """Every step lowers the score of item 1 (the validation target) by about ``lr``: validation NDCG@10
    is 1 until item 1 drops below the others, so the first epoch is the best one."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(N_ITEMS + 1))
        with torch.no_grad():
            self.w[1] = 1.0

    def loss(self, items, times, next_items, next_times, generator):
        return self.w[1] + 0.0 * items.sum()

    def score(self, items, times, target_times):
        return self.w[None, :].expand(items.shape[0], -1)                  # (B, n_items + 1)


class Recorder(torch.nn.Module):
    """Records what the loop feeds it; its loss trains a bias."""

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(N_ITEMS + 1))
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def loss(self, items, times, next_items, next_times, generator):
        self.seen.append((items.numpy().copy(), next_items.numpy().copy()))
        return -torch.log_softmax(self.b, 0)[next_items[next_items > 0]].mean()

    def score(self, items, times, target_times):
        return self.b[None, :].expand(items.shape[0], -1)


class Rec(TorchSeqRecommender):
    Config = Cfg
    name = "test"
    net = Drifting

    def build_module(self, train, items):
        return type(self).net()


class RecordingRec(Rec):
    net = Recorder

    def _score(self, histories, device):
        self.scored_users = getattr(self, "scored_users", []) + [histories.users.copy()]
        return super()._score(histories, device)


def catalogue() -> ItemFeatures:
    z = np.zeros(N_ITEMS + 1)
    return ItemFeatures(np.zeros((N_ITEMS + 1, 3, 4, 4), np.uint8), np.zeros((N_ITEMS + 1, 2), np.float32),
                        z.astype(np.float32), z.astype(np.int64), z)


def log(n: int = 40, length: int = 12, seed: int = 0, targets: int | None = None) -> Histories:
    """Left-padded histories of 1..length items (items 2..N_ITEMS); targets all ``targets`` when given."""
    rng = np.random.default_rng(seed)
    items = np.zeros((n, length), np.int64)
    for r in range(n):
        k = 1 + r % length
        items[r, -k:] = rng.integers(2, N_ITEMS + 1, size=k)
    times = np.cumsum(items > 0, axis=1).astype(np.float64)
    tg = None if targets is None else np.full(n, targets, np.int64)
    return Histories(items, times, tg, None if tg is None else times[:, -1] + 1, np.arange(n))


def train_cfg(**kw) -> Cfg:
    base = dict(epochs=10, batch_size=1000, lr=0.3, weight_decay=0.0, grad_clip=0.0, patience=2, max_len=5,
                device="cpu", num_threads=1)
    return Cfg(train=RecTrainConfig(**{**base, **kw}))


def test_early_stopping_restores_a_deep_copy_of_the_best_state():
    model = Rec(train_cfg(), seed=0)
    w1 = []
    model.callback = lambda epoch, row: w1.append(float(model.module_.w[1].detach()))
    model.fit(log(), catalogue(), log(targets=1))
    assert model.report_["best_epoch"] == model.best_epoch_ == 1
    assert model.report_["best_val_ndcg@10"] == pytest.approx(1.0)
    assert model.report_["epochs_run"] == len(w1) == 3                 # two epochs without improvement
    assert [h["epoch"] for h in model.history_] == [1, 2, 3]
    assert w1[0] > w1[-1]                                              # training moved the weight on...
    assert float(model.module_.w[1].detach()) == pytest.approx(w1[0])           # ...but the epoch-1 weights came back
    assert model.module_.training is False


def test_without_validation_all_epochs_run_and_the_last_weights_stay():
    model = Rec(train_cfg(epochs=4), seed=0)
    w1 = []
    model.callback = lambda epoch, row: w1.append(float(model.module_.w[1].detach()))
    model.fit(log(), catalogue())
    assert model.report_["epochs_run"] == model.best_epoch_ == 4 and model.report_["best_val_ndcg@10"] is None
    assert float(model.module_.w[1].detach()) == pytest.approx(w1[-1]) and w1[-1] < w1[0]


def test_training_windows_are_the_last_max_len_plus_one_items_shifted_by_one():
    train = log()
    model = RecordingRec(train_cfg(epochs=1, batch_size=7, max_len=5), seed=0)
    model.fit(train, catalogue())
    windows = []
    for items, nxt in model.module_.seen:
        assert items.shape[1] <= 5                                      # max_len inputs
        np.testing.assert_array_equal(items[:, 1:], nxt[:, :-1])        # next_items = items shifted by one
        full = np.concatenate([items, nxt[:, -1:]], 1)
        windows += [tuple(r[r > 0]) for r in full]
    expected = [tuple(r[r > 0][-6:]) for r in train.items if (r > 0).sum() >= 2]  # one-item users dropped
    assert sorted(windows) == sorted(expected)


def test_random_batches_are_a_seeded_permutation():
    model = Rec(train_cfg(batch_size=4), seed=0)                       # batching: random, the default
    lengths = np.random.default_rng(1).integers(2, 7, size=30)
    a = model._batches(lengths, torch.Generator().manual_seed(5))
    b = model._batches(lengths, torch.Generator().manual_seed(5))
    c = model._batches(lengths, torch.Generator().manual_seed(6))
    assert [x.tolist() for x in a] == [x.tolist() for x in b] != [x.tolist() for x in c]
    assert [len(x) for x in a] == [4] * 7 + [2]
    assert sorted(np.concatenate(a).tolist()) == list(range(30))        # every row once per epoch
    spans = sorted((lengths[r].min(), lengths[r].max()) for r in a)
    assert any(hi > lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))  # lengths mixed, not sorted


def test_batches_group_similar_lengths_and_their_order_is_seeded():
    model = Rec(train_cfg(batch_size=4, batching="length"), seed=0)
    lengths = np.random.default_rng(1).integers(2, 7, size=30)
    a = model._batches(lengths, torch.Generator().manual_seed(5))
    b = model._batches(lengths, torch.Generator().manual_seed(5))
    c = model._batches(lengths, torch.Generator().manual_seed(6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert sorted(np.concatenate(a).tolist()) == list(range(30))        # every row once per epoch
    spans = sorted((lengths[r].min(), lengths[r].max()) for r in a)
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))  # batches cut from the sorted rows


def test_same_seed_same_weights_and_the_global_generator_is_untouched():
    before = torch.random.get_rng_state()
    fits = [RecordingRec(train_cfg(epochs=2, batch_size=8), seed=s).fit(log(), catalogue(), log(targets=3))
            for s in (0, 0, 1)]
    assert torch.equal(before, torch.random.get_rng_state())
    assert torch.equal(fits[0].module_.b, fits[1].module_.b)
    order = [[tuple(map(tuple, i)) for i, _ in f.module_.seen] for f in fits]
    assert order[0] == order[1] and order[0] != order[2]               # batch order from the run seed


def test_validation_scores_a_fixed_seeded_subset_of_val_max_users():
    val = log(n=50, targets=3)

    def scored(seed: int, cap: int) -> list[np.ndarray]:
        m = RecordingRec(train_cfg(epochs=3, patience=5, val_max_users=cap, eval_batch_size=1000), seed=seed)
        return m.fit(log(), catalogue(), val).scored_users

    a, b, c = scored(0, 12), scored(0, 12), scored(1, 12)
    assert len(a) == 3 and all(np.array_equal(u, a[0]) for u in a)    # the same users every epoch
    assert a[0].size == 12 and np.unique(a[0]).size == 12 and set(a[0]) <= set(range(50))
    assert np.array_equal(a[0], b[0]) and not np.array_equal(np.sort(a[0]), np.sort(c[0]))
    assert sorted(scored(0, 0)[0].tolist()) == list(range(50))          # 0 = every validation user


def test_next_item_net_loss_skips_positions_without_history_or_target():
    class Lookup(NextItemNet):
        def encode(self, items):
            return self.item(items) + 1.0                               # (B, L, d), nonzero on padding too

    torch.manual_seed(0)
    net = Lookup(N_ITEMS, 4)
    items = torch.tensor([[0, 0, 3, 4], [5, 6, 7, 8]])
    nxt = torch.tensor([[0, 3, 4, 9], [6, 7, 8, 0]])                    # row 0 column 1: padded input
    logits = (net.item(items) + 1.0).detach() @ net.item.weight.detach().T
    keep = (items > 0) & (nxt > 0)
    lg = logits[keep]
    lg[:, 0] = -1e9
    expected = torch.nn.functional.cross_entropy(lg, nxt[keep])
    with torch.no_grad():
        assert float(net.loss(items, None, nxt, None, None)) == pytest.approx(float(expected), rel=1e-6)
    assert net.score(items, None, None).shape == (2, N_ITEMS + 1)


def test_asking_for_cuda_without_one_fails_before_training(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HmsparError, match=r"train\.device: 'cuda' requested but no CUDA device"):
        Rec(train_cfg(device="cuda")).fit(log(), catalogue())


def test_train_config_errors_name_the_key():
    with pytest.raises(HmsparError, match="rec.recommenders.sasrec.train.epochs: must be positive"):
        build(RecTrainConfig, {"epochs": 0}, "rec.recommenders.sasrec.train")
    with pytest.raises(HmsparError, match="rec.recommenders.gru4rec.train.val_max_users"):
        build(RecTrainConfig, {"val_max_users": -1}, "rec.recommenders.gru4rec.train")
    with pytest.raises(HmsparError, match="rec.recommenders.gru4rec.train.device"):
        build(RecTrainConfig, {"device": "gpu"}, "rec.recommenders.gru4rec.train")
    with pytest.raises(HmsparError, match="rec.recommenders.athwe.train.batching"):
        build(RecTrainConfig, {"batching": "sorted"}, "rec.recommenders.athwe.train")
