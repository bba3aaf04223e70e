"""Fair time for the multimodal recommenders (issue 22): no model reads the time of the interaction it
predicts unless ``train.request_time`` is on, and then only through the loop-wide ``RequestGap``; ATHWE
routes its experts by the gap to the previous interaction; every embedding starts at std 0.02."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from hmspar.rec.base import Histories  # noqa: E402
from hmspar.rec.models import athwe, common, mtstrec, pixelrec  # noqa: E402
from hmspar.rec.train import RequestGap  # noqa: E402
from rec_tiny import tiny_config, tiny_log  # noqa: E402

CLASSES = {"athwe": athwe.ATHWE, "mtstrec": mtstrec.MTSTRec, "pixelrec": pixelrec.PixelRecTwoTower}
SMALL = {
    "athwe": {"d": 16, "expert_hidden": 16, "dropout": 0.0},
    "mtstrec": {"d": 16, "dropout": 0.0},
    "pixelrec": {"d": 16, "cnn_channels": [4], "n_negatives": 8, "dropout": 0.0,
                 "inputs": ["image", "text", "price", "category", "id"]},
}


@pytest.fixture(scope="module")
def data():
    return tiny_log(n_users=40, n_items=30, seed=1)


def with_request_time(cfg):
    """``cfg`` with ``train.request_time`` on (a subclass of the train config adds the field where the
    loop does not have it yet)."""
    train = cfg.train
    if "request_time" in {f.name for f in dataclasses.fields(train)}:
        return dataclasses.replace(cfg, train=dataclasses.replace(train, request_time=True))

    @dataclasses.dataclass(frozen=True)
    class WithRequestTime(type(train)):
        request_time: bool = True

    return dataclasses.replace(cfg, train=WithRequestTime(**dataclasses.asdict(train)))


def build(name, data, request_time=False, **over):
    """A recommender of ``name`` and its network (eval mode, seeded initialisation)."""
    cls = CLASSES[name]
    cfg = tiny_config(cls, {**SMALL[name], **over})
    if request_time:
        cfg = with_request_time(cfg)
    model = cls(cfg, seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = model.build_module(data.train, data.items).eval()
    model.module_, model.n_items = net, data.items.n_items  # score without fitting
    return model, net


def batch(data, n=6, L=8):
    """(n, L) items and times from the training histories, and times of each position's next interaction."""
    it = torch.from_numpy(np.asarray(data.train.items[:n, -L - 1:], dtype=np.int64))
    tm = torch.from_numpy(np.asarray(data.train.times[:n, -L - 1:], dtype=np.float32))
    return it[:, :-1], tm[:, :-1], it[:, 1:], tm[:, 1:]


def loss_of(net, items, times, next_items, next_times):
    return net.loss(items, times, next_items, next_times, torch.Generator().manual_seed(5))


# ---------------------------------------------------------------- request_time off: no predicted time read
@pytest.mark.parametrize("name", list(CLASSES))
def test_scores_and_loss_ignore_the_predicted_time_when_request_time_is_off(name, data):
    model, net = build(name, data)
    assert net.request_gap is None
    items, times, next_items, next_times = batch(data)
    with torch.no_grad():
        s = net.score(items, times, times[:, -1] + 0.01)
        for tt in (times[:, -1] + 400.0, torch.full_like(times[:, -1], float("nan"))):
            torch.testing.assert_close(net.score(items, times, tt), s, rtol=0, atol=0)
        base = loss_of(net, items, times, next_items, next_times)
        for nt in (next_times + 90.0, torch.full_like(next_times, float("nan"))):
            torch.testing.assert_close(loss_of(net, items, times, next_items, nt), base, rtol=0, atol=0)
    # the recommender's scoring path too (PixelRec has its own)
    val = data.val
    far = Histories(val.items, val.times, val.targets, np.asarray(val.target_times) + 500.0, val.users)
    np.testing.assert_array_equal(model.score(far), model.score(val))


def test_athwe_state_at_t_ignores_later_times(data):
    """No look-ahead through time: moving the interactions after t (so their gap buckets change) leaves
    ATHWE's states up to t unchanged and changes the state at t + 1."""
    _, net = build("athwe", data)
    items = torch.tensor([[3, 7, 11, 15, 19, 23], [0, 0, 4, 8, 12, 16]])
    times = torch.tensor([[0.0, 0.5, 1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.5, 2.0, 2.5]])
    t = 3
    later = times.clone()
    later[:, t + 1:] += torch.tensor([45.0, 100.0])                        # gaps of 40+ days after t
    with torch.no_grad():
        table = net.embedder.catalogue()
        h, per_mod = net.encode(items, times, table)
        h2, per_mod2 = net.encode(items, later, table)
    torch.testing.assert_close(h2[:, :t + 1], h[:, :t + 1], rtol=0, atol=0)
    torch.testing.assert_close(per_mod2, per_mod, rtol=0, atol=0)          # encoders read no time
    assert not torch.allclose(h2[:, t + 1], h[:, t + 1])


def test_athwe_routes_by_the_bucket_of_the_previous_gap(data):
    _, net = build("athwe", data)
    edges = net.edges                                                      # (0.04, 1, 7, 30) by default
    gaps_ = [0.01, 0.5, 3.0, 10.0, 100.0]                                  # one gap in each bucket 1..5
    items = torch.tensor([[0, 0, 2, 5, 9, 13, 17, 21]])
    times = torch.tensor([[0.0, 0.0, *np.cumsum([1.0, *gaps_]).tolist()]])
    expect = [0, 0, 0, 1, 2, 3, 4, 5]                                      # padding, first item: unknown
    assert common.gap_bucket(torch.tensor(gaps_), edges).tolist() == expect[3:]
    seen = []
    hook = net.moe.register_forward_pre_hook(lambda mod, args: seen.append(args[1].clone()))
    try:
        with torch.no_grad():
            net.score(items, times, torch.tensor([times[0, -1] + 0.001]))
            next_items = torch.cat([items[:, 1:], torch.tensor([[25]])], 1)
            for next_times in (torch.cat([times[:, 1:], times[:, -1:] + 50.0], 1),
                               torch.full_like(times, float("nan"))):
                loss_of(net, items, times, next_items, next_times)
    finally:
        hook.remove()
    assert len(seen) == 3
    for bucket in seen:
        assert bucket.tolist() == [expect]


# ---------------------------------------------------------------- request_time on: RequestGap only
@pytest.mark.parametrize("name", list(CLASSES))
def test_request_time_adds_the_request_gap(name, data):
    model, net = build(name, data, request_time=True)
    assert isinstance(net.request_gap, RequestGap)
    items, times, next_items, next_times = batch(data)
    with torch.no_grad():
        soon = net.score(items, times, times[:, -1] + 0.01)
        late = net.score(items, times, times[:, -1] + 90.0)
        unknown = net.score(items, times, torch.full_like(times[:, -1], float("nan")))
        rg, net.request_gap = net.request_gap, None
        try:
            without = net.score(items, times, times[:, -1] + 0.01)
        finally:
            net.request_gap = rg
    assert not torch.allclose(soon, late)
    torch.testing.assert_close(unknown, without, rtol=0, atol=0)            # NaN gap = state unchanged
    net.train()
    loss = loss_of(net, items, times, next_items, next_times)
    loss.backward()
    grad = net.request_gap.emb.weight.grad
    assert grad is not None and float(grad[1:].abs().sum()) > 0
    assert float(grad[0].abs().sum()) == 0                                 # the unknown bucket stays zero
    net.eval()
    with torch.no_grad():
        # tiny at initialisation (item embeddings have std 0.02), but a real difference
        assert float(loss_of(net, items, times, next_items, next_times)) != float(
            loss_of(net, items, times, next_items, next_times + 60.0))
    # the recommender's scoring path passes the request's time through
    val = data.val
    far = Histories(val.items, val.times, val.targets, np.asarray(val.target_times) + 500.0, val.users)
    assert not np.allclose(model.score(far)[:, 1:], model.score(val)[:, 1:])


# ---------------------------------------------------------------- initialisation
WITH_CATEGORY = {"athwe": {"inputs": ["id", "text", "image", "category"]},
                 "mtstrec": {"inputs": ["id", "image", "text", "price", "category"]}}


@pytest.mark.parametrize("name,over", [("athwe", WITH_CATEGORY["athwe"]), ("mtstrec", WITH_CATEGORY["mtstrec"]),
                                       ("pixelrec", {}), ("pixelrec", {"fusion": "attention"})])
def test_every_embedding_starts_truncated_normal_std_002(name, over, data):
    """Every embedding (IDs, categories, positions, gap buckets, modality types, the request gap) starts
    from a truncated N(0, 0.02): inside +-2 std, padding row zero, std about 0.02 * 0.88."""
    _, net = build(name, data, request_time=True, **over)
    modules = dict(net.named_modules())
    tables = {n: m.weight.detach() for n, m in modules.items() if isinstance(m, nn.Embedding)}
    if name == "mtstrec":
        tables["token0"] = net.token0.detach()[None]
    expected = {"athwe": {"embedder.id_emb", "embedder.cat_emb", "pos", "mod_type", "moe.bucket_emb",
                          "moe.bucket_route", "request_gap.emb"},
                "mtstrec": {"embedder.id_emb", "embedder.cat_emb", "pos", "stream_type", "gap_emb", "token0",
                            "request_gap.emb"},
                "pixelrec": {"tower.cat_emb", "tower.id_emb", "pos", "request_gap.emb"}}[name]
    if over.get("fusion") == "attention":
        expected = expected | {"tower.mod_type"}
    assert set(tables) == expected
    values = []
    for key, w in tables.items():
        emb = modules.get(key)
        rows = w
        if isinstance(emb, nn.Embedding) and emb.padding_idx is not None:
            assert float(w[emb.padding_idx].abs().max()) == 0, key         # padding row zero
            rows = torch.cat([w[:emb.padding_idx], w[emb.padding_idx + 1:]])
        assert float(rows.abs().max()) <= 0.04 + 1e-7, key                 # within +-2 std
        if rows.numel() >= 200:
            # truncated N(0, 0.02) on +-2 std has std 0.02 * 0.880 = 0.0176
            assert 0.015 < float(rows.std()) < 0.02, (key, float(rows.std()))
        values.append(rows.reshape(-1))
    pooled = torch.cat(values)
    assert 0.016 < float(pooled.std()) < 0.019 and abs(float(pooled.mean())) < 0.002
