"""The one training loop of the torch recommenders (hmspar/rec/train.py), on hand-made nets and tiny data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hmspar.config import build  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.rec.base import Histories, ItemFeatures, Sequences  # noqa: E402
from hmspar.rec.peers.mostpop import MostPop  # noqa: E402
from hmspar.rec.train import NextItemNet, RecTrainConfig, TorchSeqRecommender, training_windows  # noqa: E402
from hmspar.training.optim import param_groups  # noqa: E402

N_ITEMS = 20


@dataclasses.dataclass(frozen=True)
class Cfg:
    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    train: RecTrainConfig = RecTrainConfig()


class Drifting(torch.nn.Module):
    """Every step lowers the score of item 1 (the validation target) by about ``lr``: validation NDCG@10
    is 1 until item 1 drops below the others, so the first evaluation is the best one."""

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
        self.seen: list[tuple[np.ndarray, ...]] = []
        self.scored: list[tuple[np.ndarray, ...]] = []

    def loss(self, items, times, next_items, next_times, generator):
        self.seen.append(tuple(t.numpy().copy() for t in (items, next_items, times, next_times)))
        return -torch.log_softmax(self.b, 0)[next_items[next_items > 0]].mean()

    def score(self, items, times, target_times):
        self.scored.append(tuple(t.numpy().copy() for t in (items, times, target_times)))
        return self.b[None, :].expand(items.shape[0], -1)


class Scripted(torch.nn.Module):
    """A spy whose validation quality follows a script of the step count: the buffer ``steps`` (part of the
    state dict, so a restored state shows which step it was saved at) counts ``loss`` calls, ``loss``
    returns the count before the step, and item 1 (the validation target) ranks ``|steps - 9|`` plus the
    parity of the user's last item (so per-user NDCG@10 varies)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("steps", torch.zeros(()))

    def loss(self, items, times, next_items, next_times, generator):
        before = float(self.steps)
        self.steps += 1
        return self.p.sum() * 0.0 + before

    def score(self, items, times, target_times):
        above = abs(int(self.steps) - 9) + items[:, -1] % 2                   # (B,) items ranked above item 1
        s = torch.zeros(items.shape[0], N_ITEMS + 1)
        s[torch.arange(N_ITEMS + 1)[None, :] < (2 + above)[:, None]] = 2.0   # items 0..above+1 on top...
        s[:, 1] = 1.0                                                        # ...but item 1 just below them
        return s


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


class ScriptedRec(Rec):
    net = Scripted


def catalogue(n_items: int = N_ITEMS) -> ItemFeatures:
    z = np.zeros(n_items + 1)
    return ItemFeatures(np.zeros((n_items + 1, 3, 4, 4), np.uint8), np.zeros((n_items + 1, 2), np.float32),
                        z.astype(np.float32), z.astype(np.int64), z)


def log(n: int = 40, length: int = 12, seed: int = 0, targets: int | None = None) -> Histories:
    """Left-padded histories of 1..length items (items 2..N_ITEMS); targets all ``targets`` when given."""
    rng = np.random.default_rng(seed)
    items = np.zeros((n, length), np.int64)
    for r in range(n):
        k = 1 + r % length
        items[r, -k:] = rng.integers(2, N_ITEMS + 1, size=k)
    times = np.cumsum(items > 0, axis=1).astype(np.float64) + 0.25 * np.arange(n)[:, None]
    tg = None if targets is None else np.full(n, targets, np.int64)
    return Histories(items, times, tg, None if tg is None else times[:, -1] + 1 + 0.01 * np.arange(n),
                     np.arange(n))


def train_cfg(**kw) -> Cfg:
    base = dict(max_steps=10, min_steps=0, eval_every=1, batch_size=1000, lr=0.3, weight_decay=0.0, grad_clip=0.0,
                patience=2, max_len=5, device="cpu", num_threads=1)
    return Cfg(train=RecTrainConfig(**{**base, **kw}))


def transitions(seqs: Sequences) -> list[tuple[int, int]]:
    """Every (item, next item) pair of every history."""
    return [(int(seqs.items[i]), int(seqs.items[i + 1])) for u in range(len(seqs))
            for i in range(seqs.offsets[u], seqs.offsets[u + 1] - 1)]


def window_targets(items: np.ndarray, targets: np.ndarray) -> list[tuple[int, int]]:
    """(input item, target) pairs of a batch as the module sees it (targets 0 = none)."""
    keep = (targets > 0) & (items > 0)
    return list(zip(items[keep].tolist(), targets[keep].tolist()))


# ---------------------------------------------------------------- training windows
def ragged(seed: int = 0, n: int = 60, longest: int = 40) -> Sequences:
    """Histories of 1..longest items with distinct item ids (each transition identifiable)."""
    lengths = np.random.default_rng(seed).integers(1, longest + 1, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.arange(1, offsets[-1] + 1, dtype=np.int64)
    return Sequences(items, items * 0.5, offsets)


@pytest.mark.parametrize("stride", [0, 5, 2, 1])
def test_windows_cover_every_transition_exactly_once(stride):
    seqs = ragged()
    w = training_windows(seqs, max_len=5, windows="all", stride=stride)
    assert w.items.dtype == np.int32 and w.times.dtype == np.float32 and w.items.shape[1] == 6
    got = []
    for r in range(len(w)):
        row = w.items[r]
        real = row[row > 0]
        assert (row[:6 - real.size] == 0).all() and (np.diff(real) == 1).all()      # left-padded, contiguous
        np.testing.assert_array_equal(w.times[r][row > 0], real * 0.5)             # times travel with items
        got += [(int(row[c - 1]), int(row[c])) for c in range(w.first[r], 6)]
    assert sorted(got) == sorted(transitions(seqs))                                 # each exactly once
    n_windows = sum(1 + -(-max(int(n) - 6, 0) // (stride or 5)) for n in seqs.lengths if n >= 2)
    assert len(w) == n_windows


def test_windows_give_each_target_the_longest_context_the_stride_allows():
    seqs = ragged(seed=1)
    for stride, floor in ((5, 1), (2, 4), (1, 5)):
        w = training_windows(seqs, max_len=5, stride=stride)
        for r in range(len(w)):
            row, first_item = w.items[r], seqs.items[seqs.offsets[w.user[r]]]
            for c in range(w.first[r], 6):
                n_before = int(row[c - 1] - first_item) + 1            # interactions up to the input item
                context = int((row[:c] > 0).sum())                     # of which the window shows
                assert context == n_before or context >= floor, (stride, row, c)


def test_windows_last_reproduces_the_old_one_window_per_user():
    train = log()
    w = training_windows(train.whole(), max_len=5, windows="last")
    L = 6
    old = train.items[:, -L:]
    old = old[(old > 0).sum(1) >= 2]                                    # the former _examples, one-item users dropped
    np.testing.assert_array_equal(w.items, old)
    np.testing.assert_array_equal(w.first, L - (old > 0).sum(1) + 1)    # every real next item is a target


def test_the_loop_trains_on_every_transition_of_the_whole_histories_once_per_pass():
    short = log(n=30, length=12)
    whole = Sequences.from_padded(short.items, short.times)
    # the loader's case: `items` keeps the last few interactions, `sequences` the whole history
    cropped = Histories(short.items[:, -4:], short.times[:, -4:], users=short.users, sequences=whole)
    n_windows = len(training_windows(whole, 5))
    per_pass = -(-n_windows // 7)
    model = RecordingRec(train_cfg(max_steps=2 * per_pass, eval_every=per_pass, batch_size=7), seed=0)
    model.fit(cropped, catalogue())
    seen = model.module_.seen
    assert len(seen) == 2 * per_pass
    for batches in (seen[:per_pass], seen[per_pass:]):
        pairs = []
        for items, nxt, _, _ in batches:
            assert items.shape[1] <= 5                                  # max_len inputs
            pairs += window_targets(items, nxt)
        assert sorted(pairs) == sorted(transitions(whole))              # every transition once per pass
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(seen[:per_pass], seen[per_pass:]))  # reshuffled
    assert [h["pass"] for h in model.history_] == [1.0, 2.0]
    last = RecordingRec(train_cfg(max_steps=1, windows="last"), seed=0).fit(cropped, catalogue())
    (items, nxt, _, _), = last.module_.seen
    assert sorted(window_targets(items, nxt)) == sorted(
        p for r in short.items[:, -6:] for p in zip(r[r > 0][:-1].tolist(), r[r > 0][1:].tolist()))


def test_random_batches_are_a_seeded_permutation():
    model = Rec(train_cfg(batch_size=4), seed=0)                       # batching: random, the default
    lengths = np.random.default_rng(1).integers(2, 7, size=30)
    a = model._batches(lengths, torch.Generator().manual_seed(5))
    b = model._batches(lengths, torch.Generator().manual_seed(5))
    c = model._batches(lengths, torch.Generator().manual_seed(6))
    assert [x.tolist() for x in a] == [x.tolist() for x in b] != [x.tolist() for x in c]
    assert [len(x) for x in a] == [4] * 7 + [2]
    assert sorted(np.concatenate(a).tolist()) == list(range(30))        # every row once per pass
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
    assert sorted(np.concatenate(a).tolist()) == list(range(30))        # every row once per pass
    spans = sorted((lengths[r].min(), lengths[r].max()) for r in a)
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))  # batches cut from the sorted rows


# ---------------------------------------------------------------- step budget and early stopping
def test_early_stopping_restores_a_deep_copy_of_the_best_state():
    model = Rec(train_cfg(), seed=0)
    w1 = []
    model.callback = lambda step, row: w1.append(float(model.module_.w[1].detach()))
    model.fit(log(), catalogue(), log(targets=1))
    assert model.report_["best_step"] == model.best_step_ == 1
    assert model.report_["best_val_ndcg@10"] == pytest.approx(1.0)
    assert model.report_["steps_run"] == len(w1) == 3                  # two evaluations without improvement
    assert [h["step"] for h in model.history_] == [1, 2, 3]
    assert w1[0] > w1[-1]                                              # training moved the weight on...
    assert float(model.module_.w[1].detach()) == pytest.approx(w1[0])  # ...but the step-1 weights came back
    assert model.module_.training is False


@pytest.mark.parametrize("over, steps, best", [
    ({}, [3, 6, 9, 12, 15], 9),                                        # patience 2 after the best at 9
    ({"min_steps": 16, "max_steps": 30}, [3, 6, 9, 12, 15, 18], 9),    # patience spent at 15, min_steps at 18
    ({"min_steps": 100, "max_steps": 20}, [3, 6, 9, 12, 15, 18, 20], 9),  # min_steps capped: the last step
    ({"max_steps": 10, "patience": 50}, [3, 6, 9, 10], 9),             # an evaluation at the last step too
    ({"max_steps": 8, "patience": 50}, [3, 6, 8], 8),
])
def test_eval_every_patience_min_steps_and_max_steps(over, steps, best):
    val = log(targets=1)
    model = ScriptedRec(train_cfg(**{"max_steps": 40, "eval_every": 3, "patience": 2, **over}), seed=0)
    calls = []
    model.callback = lambda step, row: calls.append((step, dict(row)))
    model.fit(log(), catalogue(), val)
    assert [h["step"] for h in model.history_] == [s for s, _ in calls] == steps
    assert [row for _, row in calls] == model.history_
    assert model.report_["steps_run"] == steps[-1] and model.report_["best_step"] == model.best_step_ == best
    assert int(model.module_.steps) == best                            # the best evaluation's state came back
    # loss = mean since the previous evaluation (Scripted's loss at step s is s - 1)
    for prev, h in zip([0] + steps, model.history_):
        assert h["loss"] == pytest.approx(np.mean(np.arange(prev, h["step"])))
    # validation NDCG and its standard error at the best evaluation, recomputed from the script
    above = lambda s: abs(s - 9) + val.items[:, -1] % 2                # noqa: E731
    per_user = np.where(above(best) < 10, 1 / np.log2(above(best) + 2.0), 0.0)
    assert model.report_["best_val_ndcg@10"] == pytest.approx(per_user.mean())
    assert model.report_["val_ndcg_se"] == pytest.approx(per_user.std(ddof=1) / np.sqrt(per_user.size))
    assert model.report_["val_users"] == len(val)
    for h in model.history_:
        a = above(h["step"])
        assert h["val_ndcg@10"] == pytest.approx(np.where(a < 10, 1 / np.log2(a + 2.0), 0.0).mean())


def test_without_validation_max_steps_run_and_the_last_weights_stay():
    train = log()
    n_windows = len(training_windows(train.whole(), 5))
    model = ScriptedRec(train_cfg(max_steps=7, eval_every=3, batch_size=8, min_steps=100), seed=0)
    model.fit(train, catalogue())
    assert [h["step"] for h in model.history_] == [3, 6, 7]
    assert all("val_ndcg@10" not in h for h in model.history_)
    per_pass = -(-n_windows // 8)
    assert [h["pass"] for h in model.history_] == pytest.approx([s / per_pass for s in (3, 6, 7)])
    assert model.report_["steps_run"] == model.best_step_ == 7 == int(model.module_.steps)
    assert model.report_["best_val_ndcg@10"] is None and model.report_["val_users"] is None


def test_same_seed_same_weights_and_the_global_generator_is_untouched():
    before = torch.random.get_rng_state()
    fits = [RecordingRec(train_cfg(max_steps=6, eval_every=3, batch_size=8), seed=s)
            .fit(log(), catalogue(), log(targets=3)) for s in (0, 0, 1)]
    assert torch.equal(before, torch.random.get_rng_state())
    assert torch.equal(fits[0].module_.b, fits[1].module_.b)
    order = [[tuple(map(tuple, s[0])) for s in f.module_.seen] for f in fits]
    assert order[0] == order[1] and order[0] != order[2]               # batch order from the run seed


def test_validation_scores_a_fixed_seeded_subset_of_val_max_users():
    val = log(n=50, targets=3)

    def scored(seed: int, cap: int) -> list[np.ndarray]:
        m = RecordingRec(train_cfg(max_steps=3, patience=5, val_max_users=cap, eval_batch_size=1000), seed=seed)
        return m.fit(log(), catalogue(), val).scored_users

    a, b, c = scored(0, 12), scored(0, 12), scored(1, 12)
    assert len(a) == 3 and all(np.array_equal(u, a[0]) for u in a)    # the same users at every evaluation
    assert a[0].size == 12 and np.unique(a[0]).size == 12 and set(a[0]) <= set(range(50))
    assert np.array_equal(a[0], b[0]) and not np.array_equal(np.sort(a[0]), np.sort(c[0]))
    assert sorted(scored(0, 0)[0].tolist()) == list(range(50))          # 0 = every validation user


# ---------------------------------------------------------------- request time
@pytest.mark.parametrize("request_time", [False, True])
def test_modules_see_the_predicted_interactions_time_only_with_request_time(request_time):
    train, val = log(), log(targets=3)
    model = RecordingRec(train_cfg(max_steps=4, eval_every=2, batch_size=16, request_time=request_time), seed=0)
    model.fit(train, catalogue(), val)
    rec = model.module_
    assert len(rec.seen) == 4 and len(rec.scored) == 2
    for items, nxt, times, next_times in rec.seen:
        assert next_times.shape == items.shape and np.isfinite(times).all()
        if not request_time:
            assert np.isnan(next_times).all()
        else:                                                           # the time of each next interaction
            np.testing.assert_array_equal(next_times[:, :-1], times[:, 1:])
            assert np.isfinite(next_times).all() and (next_times[nxt > 0] > times[nxt > 0]).all()
    target_times = np.concatenate([tt for _, _, tt in rec.scored])
    if not request_time:
        assert np.isnan(target_times).all()
    else:
        np.testing.assert_array_equal(np.sort(target_times),
                                      np.sort(np.concatenate([val.target_times] * 2).astype(np.float32)))
    model.module_.scored.clear()
    model.score(val)
    (_, _, tt), = model.module_.scored
    assert np.isnan(tt).all() != request_time


def _sasrec(request_time: bool = False, max_len: int = 6, **kw):
    from hmspar.rec.peers.sasrec import SASRec, SASRecNet
    cfg = build(SASRec.Config, {"d_model": 16, "n_heads": 2, "n_layers": 2, "dropout": 0.0, **kw,
                                "train": {"max_len": max_len, "request_time": request_time}}, "sasrec")
    with torch.random.fork_rng(devices=[]):                            # a fixed init; global state untouched
        torch.manual_seed(0)
        return SASRecNet(N_ITEMS, cfg).eval()


def _gru4rec(request_time: bool = False, **kw):
    from hmspar.rec.peers.gru4rec import GRU4Rec, GRU4RecNet
    cfg = build(GRU4Rec.Config, {"d_model": 16, "hidden": 16, "dropout": 0.0, **kw,
                                 "train": {"request_time": request_time}}, "gru4rec")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return GRU4RecNet(N_ITEMS, cfg).eval()


@pytest.mark.parametrize("make", [_sasrec, _gru4rec])
def test_next_item_nets_add_the_request_gap_only_with_request_time(make):
    items = torch.tensor([[0, 3, 4, 5], [6, 7, 8, 9]])
    times = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 4.0, 8.0]])
    off, on = make(False), make(True)
    assert off.gap is None and on.gap is not None
    with torch.no_grad():
        on.gap.emb.weight[1:].normal_()                                 # as after training
        soon, late, nan = (times[:, -1] + 0.1, times[:, -1] + 40.0, torch.full((2,), float("nan")))
        plain = on.encode(items)[:, -1] @ on.item.weight.T
        torch.testing.assert_close(on.score(items, times, nan), plain)  # unknown gap: unchanged state
        assert not torch.allclose(on.score(items, times, soon), on.score(items, times, late))
        torch.testing.assert_close(off.score(items, times, soon), off.score(items, times, late))
        nxt = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]])
        nt_soon, nt_late = times + 0.1, times + 40.0
        assert float(on.loss(items, times, nxt, nt_soon, None)) != float(on.loss(items, times, nxt, nt_late, None))
        assert float(off.loss(items, times, nxt, nt_soon, None)) == float(off.loss(items, times, nxt, nt_late, None))


# ---------------------------------------------------------------- the ID-only nets
@pytest.mark.parametrize("make", [_sasrec, _gru4rec])
def test_next_item_nets_are_causal(make):
    net = make()
    items = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8], [2, 3, 4, 5, 6, 7, 8, 9], [0, 11, 12, 13, 14, 15, 16, 17]])
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        base = net.encode(items)
        base_logits = base @ net.item.weight.T                                     # (B, L, n_items + 1)
        for t in (2, 5, 7):
            changed = items.clone()
            changed[:, t] = 20
            h = net.encode(changed)
            torch.testing.assert_close(h[:, :t], base[:, :t], rtol=0, atol=1e-6)   # earlier states unchanged
            assert not torch.allclose(h[:, t], base[:, t])                          # the perturbed one moves
            # every later item redrawn at once: the per-position next-item logits before t stay the same
            later = items.clone()
            later[:, t:] = torch.randint(1, N_ITEMS + 1, (items.shape[0], items.shape[1] - t), generator=gen)
            logits = net.encode(later) @ net.item.weight.T
            torch.testing.assert_close(logits[:, :t], base_logits[:, :t], rtol=0, atol=1e-5)


@pytest.mark.parametrize("make", [_sasrec, _gru4rec])
def test_embeddings_start_at_a_truncated_normal_with_std_0_02(make):
    net = make(d_model=64) if make is _sasrec else make(d_model=64, hidden=16)
    tables = [net.item.weight] + ([net.pos.weight] if make is _sasrec else [])
    for w in tables:
        w = w.detach()
        assert float(w.abs().max()) <= 0.04 + 1e-7
        assert 0.012 < float(w[1:].std()) < 0.02
    assert float(net.item.weight[0].detach().abs().max()) == 0.0                # padding row


def test_weight_decay_skips_biases_and_norm_weights(monkeypatch):
    net = _sasrec()
    groups = param_groups(net, 0.1)
    decay, no_decay = ({id(p) for p in g["params"]} for g in groups)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    for name, p in net.named_parameters():
        assert (id(p) in no_decay) == (name.endswith("bias") or "norm" in name), name
    assert id(net.item.weight) in decay and id(net.pos.weight) in decay
    # the loop builds its optimiser from these groups
    made = []
    real = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW", lambda params, **kw: made.append(params) or real(params, **kw))
    RecordingRec(train_cfg(max_steps=1, weight_decay=0.3), seed=0).fit(log(), catalogue())
    assert [g["weight_decay"] for g in made[0]] == [0.0]                # Recorder: a bias only


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


# ---------------------------------------------------------------- learning
def cycle_log(order: np.ndarray, n_users: int, length: int, seed: int) -> tuple[Histories, Histories]:
    """Users walking the cycle ``order`` from random starts: training histories of ``length`` items and,
    as validation, the same histories with the next item of the cycle as target."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, order.size, n_users)
    items = order[(starts[:, None] + np.arange(length)[None, :]) % order.size].astype(np.int64)
    times = np.arange(length, dtype=np.float64)[None, :].repeat(n_users, 0)
    nxt = order[(starts + length) % order.size].astype(np.int64)
    users = np.arange(n_users)
    return Histories(items, times, users=users), Histories(items, times, nxt, times[:, -1] + 1.0, users)


def fit_sasrec(train, val, n_items, windows="all", model="sasrec", **train_over):
    from hmspar.rec.peers.gru4rec import GRU4Rec
    from hmspar.rec.peers.sasrec import SASRec
    cls, section = {"sasrec": (SASRec, {"d_model": 32, "n_heads": 2, "n_layers": 1, "dropout": 0.1}),
                    "gru4rec": (GRU4Rec, {"d_model": 32, "hidden": 32, "dropout": 0.1})}[model]
    section["train"] = {"max_steps": 300, "min_steps": 0, "eval_every": 50, "patience": 3, "batch_size": 64,
                        "lr": 0.005, "max_len": 5, "device": "cpu", "num_threads": 1, "windows": windows, **train_over}
    return cls(build(cls.Config, section, f"rec.recommenders.{model}"), seed=0).fit(train, catalogue(n_items), val)


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_the_id_nets_learn_a_deterministic_next_item(model):
    from hmspar.rec.evaluate import rank_batched
    order = np.random.default_rng(0).permutation(30) + 1
    train, val = cycle_log(order, n_users=150, length=8, seed=1)
    _, test = cycle_log(order, n_users=200, length=6, seed=2)
    fitted = fit_sasrec(train, val, 30, model=model)
    hr1 = float((rank_batched(fitted.score, test)["rank"] == 0).mean())
    assert hr1 > 0.9, (hr1, fitted.history_)
    # popularity cannot know where a user is on the cycle: about 1 / 30 of held-out users get their item first
    pop = MostPop(MostPop.Config()).fit(train, catalogue(30))
    hr1_pop = float((rank_batched(pop.score, test)["rank"] == 0).mean())
    assert hr1_pop < 0.1 and hr1 > hr1_pop + 0.8, (hr1, hr1_pop)


def test_training_on_whole_histories_beats_the_last_window():
    """A few users with long histories walk a cycle of 80 items; with max_len 3 their last windows hold at
    most 8 x 3 of the 80 transitions, whole histories all of them, each about 12 times a pass."""
    from hmspar.rec.train import validation_ndcg
    order = np.random.default_rng(3).permutation(80) + 1
    train, _ = cycle_log(order, n_users=8, length=120, seed=4)
    _, val = cycle_log(order, n_users=200, length=4, seed=5)           # other users, anywhere on the cycle
    _, test = cycle_log(order, n_users=300, length=4, seed=6)
    fits = {w: fit_sasrec(train, val, 80, windows=w, max_len=3) for w in ("all", "last", "prefixes")}
    ndcg = {w: validation_ndcg(m.score, test, 512) for w, m in fits.items()}
    assert ndcg["all"] > 0.8 and ndcg["all"] > ndcg["last"] + 0.4, ndcg
    # RecBole's prefix examples cover every transition too (one target per example)
    assert ndcg["prefixes"] > 0.8 and ndcg["prefixes"] > ndcg["last"] + 0.4, ndcg


# ---------------------------------------------------------------- scoring, devices, config
@pytest.mark.parametrize("model_name", ["sasrec", "gru4rec"])
def test_scoring_reads_only_the_last_max_len_items(model_name):
    order = np.random.default_rng(0).permutation(N_ITEMS) + 1
    train, val = cycle_log(order, n_users=40, length=12, seed=1)
    model = fit_sasrec(train, val, N_ITEMS, model=model_name, max_steps=5, max_len=5)
    base = model.score(val)
    # a 12-item history is scored exactly as its last 5 items alone, and not as its first 5
    np.testing.assert_array_equal(model.score(Histories(val.items[:, -5:].copy(), val.times[:, -5:].copy())), base)
    first = model.score(Histories(val.items[:, :5].copy(), val.times[:, :5].copy()))
    assert not np.allclose(first[:, 1:], base[:, 1:])
    old = Histories(val.items.copy(), val.times.copy())
    old.items[:, :7] = np.random.default_rng(2).integers(1, N_ITEMS + 1, size=(len(val), 7))  # older than max_len
    old.times[:, :7] = -5.0
    np.testing.assert_array_equal(model.score(old), base)
    recent = Histories(val.items.copy(), val.times.copy())
    recent.items[:, -5] = recent.items[:, -5] % N_ITEMS + 1                                   # within max_len
    assert not np.allclose(model.score(recent)[:, 1:], base[:, 1:])


def test_asking_for_cuda_without_one_fails_before_training(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HmsparError, match=r"train\.device: 'cuda' requested but no CUDA device"):
        Rec(train_cfg(device="cuda")).fit(log(), catalogue())


def test_train_config_errors_name_the_key():
    with pytest.raises(HmsparError, match=r"rec.recommenders.sasrec.train.epochs: unknown key"):
        build(RecTrainConfig, {"epochs": 8}, "rec.recommenders.sasrec.train")
    for key, value in (("max_steps", 0), ("eval_every", 0), ("min_steps", -1), ("patience", 0),
                       ("window_stride", 51), ("window_stride", -1), ("val_max_users", -1),
                       ("weight_decay", -0.1)):
        with pytest.raises(HmsparError, match=rf"rec.recommenders.gru4rec.train.{key}"):
            build(RecTrainConfig, {key: value}, "rec.recommenders.gru4rec.train")
    for key, value in (("device", "gpu"), ("windows", "every"), ("batching", "sorted"), ("request_time", "yes")):
        with pytest.raises(HmsparError, match=rf"rec.recommenders.athwe.train.{key}"):
            build(RecTrainConfig, {key: value}, "rec.recommenders.athwe.train")
    assert build(RecTrainConfig, {"max_len": 8, "window_stride": 8}, "t").window_stride == 8
