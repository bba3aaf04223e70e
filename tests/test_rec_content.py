"""Candidates scored with their content, the item-age input, standardised text and leak-free arrival dates
(issue 24): the multimodal models' ``output`` rules, :class:`train.ItemAge`, :func:`train.item_arrivals`,
and the importer's missing arrival dates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hmspar.config import build  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.rec.base import Histories, ItemFeatures  # noqa: E402
from hmspar.rec.evaluate import rank_batched  # noqa: E402
from hmspar.rec import train as rectrain  # noqa: E402
from hmspar.rec.models import athwe, common, mtstrec, pixelrec  # noqa: E402
from hmspar.rec.peers.gru4rec import GRU4Rec  # noqa: E402
from hmspar.rec.peers.sasrec import SASRec  # noqa: E402
from hmspar.rec.toy import leave_one_out, toy_log  # noqa: E402

SMALL_TRAIN = {"max_steps": 6, "min_steps": 0, "eval_every": 3, "batch_size": 64, "eval_batch_size": 128,
               "max_len": 20, "device": "cpu", "patience": 2, "num_threads": 1}


@pytest.fixture(scope="module")
def log():
    seqs, times, items = toy_log(n_users=120, n_items=60, mean_len=8, seed=5, cold_fraction=0.2)
    train, val, test = leave_one_out(seqs, times)
    return train, val, test, items


def _fit(cls, log, **section):
    train, val, _, items = log
    cfg = build(cls.Config, {"d": 16, "train": SMALL_TRAIN, **section}, "rec.recommenders.x")
    return cls(cfg, seed=0).fit(train, items, val)


def _with_text(model, item: int, text: np.ndarray):
    """Context: the fitted model's text buffer with ``item``'s row replaced (restored on exit)."""
    buf = model.module_.embedder.text

    class _Ctx:
        def __enter__(self):
            self.old = buf[item].clone()
            buf[item] = torch.from_numpy(text)

        def __exit__(self, *exc):
            buf[item] = self.old
    return _Ctx()


# ---------------------------------------------------------------- scoring rules
def test_scorer_rules_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    mods, d, n = ("id", "image", "text"), 4, 7
    table = {m: torch.randn(n, d, generator=g) for m in mods}
    h = torch.randn(3, d, generator=g)
    torch.testing.assert_close(common.CandidateScorer("id", mods, d)(h, table), h @ table["id"].T)
    total = table["id"] + table["image"] + table["text"]
    torch.testing.assert_close(common.CandidateScorer("sum", mods, d)(h, table), h @ total.T)
    heads = common.CandidateScorer("heads", mods, d)            # identity heads at the start: = sum
    torch.testing.assert_close(heads(h, table), h @ total.T)
    with torch.no_grad():
        heads.heads[1].mul_(2.0)                                # the picture head counts twice
    torch.testing.assert_close(heads(h, table), h @ (total + table["image"]).T)
    weighted = common.CandidateScorer("weighted", mods, d)
    torch.testing.assert_close(weighted(h, table), h @ (total / 3).T)
    w = weighted.modality_weights()
    assert w.shape == (3,) and float(w.detach().sum()) == pytest.approx(1.0)


def test_scorer_rejects_unknown_rules_and_id_without_ids():
    with pytest.raises(HmsparError, match="output must be one of"):
        common.CandidateScorer("dot", ("id",), 4)
    with pytest.raises(HmsparError, match="needs id"):
        common.CandidateScorer("id", ("text",), 4)
    with pytest.raises(HmsparError, match="output"):
        build(athwe.Config, {"output": "dot"}, "rec.recommenders.athwe")


@pytest.mark.parametrize("cls, output", [(mtstrec.MTSTRec, "heads"), (athwe.ATHWE, "weighted")])
def test_a_cold_candidate_is_scored_by_its_content(cls, output, log):
    """With content scoring, changing an item's text changes its own score (and no other item's); with
    ``output: id`` content never reaches a candidate's score (it still shapes the user state)."""
    train, _, test, items = log
    cold = np.flatnonzero(~common.train_items(train, items.n_items))[1:]
    assert cold.size >= 2
    new_text = np.asarray(items.text[cold[1]], dtype=np.float32) * -3.0
    for out, changes in ((output, True), ("id", False)):
        model = _fit(cls, log, output=out)
        hist = Histories(test.items, test.times, users=test.users)
        with torch.no_grad():
            before = model.score(hist)
            with _with_text(model, int(cold[0]), common.standardise_rows(
                    np.vstack([items.text[:cold[0]], new_text[None], items.text[cold[0] + 1:]]),
                    np.flatnonzero(common.train_items(train, items.n_items)))[cold[0]]):
                after = model.score(hist)
        others = np.setdiff1d(np.arange(1, items.n_items + 1), test.items.ravel())  # never in a history
        others = others[others != cold[0]]
        np.testing.assert_allclose(after[:, others], before[:, others], rtol=1e-5, atol=1e-6)
        moved = np.abs(after[:, cold[0]] - before[:, cold[0]]).max()
        assert (moved > 1e-5) == changes, (out, moved)


def test_text_is_standardised_on_training_items(log):
    train, _, _, items = log
    fit_rows = np.flatnonzero(common.train_items(train, items.n_items))
    items = dataclasses.replace(items, text=np.asarray(items.text, dtype=np.float32) * 0.04 + 0.5)
    out = common.standardised_text(items, fit_rows)
    np.testing.assert_allclose(out[fit_rows].mean(0), 0.0, atol=2e-4)
    np.testing.assert_allclose(out[fit_rows].std(0), 1.0, atol=1e-4)
    assert not out[0].any()                                      # padding stays zero
    emb = common.ItemEmbedder(items, ("text",), 8, fit_rows)
    np.testing.assert_allclose(emb.text.numpy(), out)


# ---------------------------------------------------------------- item age
def test_arrivals_use_catalogue_dates_else_first_training_interaction():
    items_seq = np.array([[0, 1, 2], [2, 3, 1]])
    times = np.array([[0.0, 5.0, 6.0], [1.0, 2.0, 9.0]])
    train = Histories(items_seq, times, users=np.arange(2))
    first = np.array([np.inf, 0.5, np.nan, np.nan, np.nan])       # item 1 dated; 2, 3 not; 4 never seen
    it = ItemFeatures(np.zeros((5, 3, 4, 4), np.uint8), np.zeros((5, 2), np.float32), np.zeros(5, np.float32),
                      np.array([0, 1, 1, 1, 1]), first)
    arr = rectrain.item_arrivals(train, it)
    assert arr[1] == 0.5                                         # the catalogue date, not the first purchase
    assert arr[2] == 1.0 and arr[3] == 2.0                        # first training interaction
    assert np.isinf(arr[4]) and np.isinf(arr[0])                 # neither: unknown


def test_item_age_buckets_start_at_zero_and_read_no_event_time():
    arrival = np.array([np.inf, 0.0, 10.0, 95.0, np.inf])
    age = rectrain.ItemAge(arrival)
    ref = torch.tensor([10.0, 200.0])
    assert torch.count_nonzero(age(ref)) == 0                    # zero weights: a model starts as without it
    with torch.no_grad():
        age.weight.copy_(torch.arange(len(rectrain.ITEM_AGE_EDGES) + 1, dtype=torch.float32))
    with torch.no_grad():
        s = age(ref)                                             # (2, 5)
        some = age(ref, torch.tensor([2, 3]))
        paired = age(ref, torch.tensor([[1], [4]]))
    edges = np.array(rectrain.ITEM_AGE_EDGES)
    for r, t in enumerate(ref.tolist()):
        for i, a in enumerate(arrival):
            bucket = 0 if not np.isfinite(a) else int(np.searchsorted(edges, t - a, side="right"))
            assert s[r, i].item() == bucket, (t, a)
    np.testing.assert_array_equal(some.numpy(), s[:, [2, 3]].numpy())
    np.testing.assert_array_equal(paired.numpy()[:, 0], [s[0, 1].item(), s[1, 4].item()])


#: every torch recommender with an ``item_age`` switch, with its small sizes
AGED = [(mtstrec.MTSTRec, {"d": 16}), (athwe.ATHWE, {"d": 16}),
        (pixelrec.PixelRecTwoTower, {"d": 16, "cnn_channels": [4, 8], "n_negatives": 16}),
        (SASRec, {"d_model": 16}), (GRU4Rec, {"d_model": 16, "hidden": 16})]


@pytest.mark.parametrize("cls, sizes", AGED, ids=[c.name for c, _ in AGED])
def test_item_age_switch_trains_its_weights_and_off_builds_nothing(cls, sizes, log):
    train, _, test, items = log
    spread = np.linspace(0.0, 40.0, items.n_items + 1)             # arrivals spread over the log's days
    dated = dataclasses.replace(items, first_time=spread)
    on = cls(build(cls.Config, {**sizes, "train": SMALL_TRAIN, "item_age": True}, "x"), seed=0)
    on.fit(train, dated, None)
    weights = [p for n, p in on.module_.named_parameters() if n.endswith("age.weight")]
    assert len(weights) == 1 and torch.count_nonzero(weights[0]) > 0   # the age weights received gradients
    assert np.isfinite(on.score(test)[:, 1:]).all()
    off = cls(build(cls.Config, {**sizes, "train": SMALL_TRAIN}, "x"), seed=0).fit(train, dated, None)
    assert not any(n.endswith("age.weight") for n, _ in off.module_.named_parameters())


def _fresh_arrivals_log(n_users: int = 80, n_items: int = 600, seed: int = 0):
    """Users who buy what has just arrived: item i arrives on day i; each user's k-th interaction falls on a
    day t and buys one of the three items that arrived on days t - 2 .. t. Only an item's age tells which."""
    rng = np.random.default_rng(seed)
    seqs, times = [], []
    for _ in range(n_users):
        start = rng.uniform(5.0, n_items - 12.0)
        t = start + np.cumsum(rng.uniform(0.2, 1.0, 7))
        seqs.append(np.floor(t).astype(np.int64) - rng.integers(0, 3, 7) + 1)
        times.append(t)
    first = np.arange(n_items + 1, dtype=np.float64) - 1.0             # item i on day i - 1
    first[0] = np.inf
    items = ItemFeatures(np.zeros((n_items + 1, 3, 4, 4), np.uint8), np.zeros((n_items + 1, 2), np.float32),
                         np.zeros(n_items + 1, np.float32), np.ones(n_items + 1, np.int64), first)
    return (*leave_one_out(seqs, times), items)


@pytest.mark.parametrize("cls, sizes", AGED[3:], ids=[c.name for c, _ in AGED[3:]])
def test_item_age_lets_an_id_peer_rank_fresh_arrivals(cls, sizes):
    train, val, test, items = _fresh_arrivals_log()
    step = {**SMALL_TRAIN, "max_steps": 100, "eval_every": 100, "lr": 0.03}
    ranks, models = {}, {}
    for on in (False, True):
        model = cls(build(cls.Config, {**sizes, "train": step, "item_age": on}, "x"), seed=0).fit(train, items, None)
        ranks[on], models[on] = rank_batched(model.score, test)["rank"], model
    # the age weights learn that what sells is fresh: the buckets [-7, 0) and [0, 3) days above every other
    w = models[True].module_.age.weight.detach().numpy()
    fresh = [int(np.searchsorted(rectrain.ITEM_AGE_EDGES, a, side="right")) for a in (-1.0, 1.0)]
    assert min(w[fresh]) > max(np.delete(w, fresh)) + 1.0, w
    # and the target, which the IDs alone must learn item by item, moves up the ranking
    assert np.median(ranks[True]) * 1.5 < np.median(ranks[False]), (np.median(ranks[True]), np.median(ranks[False]))


def test_imported_logs_carry_no_arrival_dates(tmp_path):
    import pandas as pd

    from hmspar.rec import importer
    log = tmp_path / "log.csv"
    rows = [(u, f"i{(u + k) % 6}", f"2024-01-{1 + k + u:02d}") for u in range(6) for k in range(5)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(log, index=False)
    out = tmp_path / "raw"
    out.mkdir()
    cfg = build(importer.Config, {"path": str(log)}, "rec.datasets.mine")
    importer.generate(cfg, out)
    first = pd.read_parquet(out / "items.parquet")["first_time"].to_numpy()
    assert np.isnan(first).all()
