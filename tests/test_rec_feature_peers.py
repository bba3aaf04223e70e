"""The shared (history, item) features and the two feature-based peers, ``recent`` and ``ranker``: exact feature
values on hand-built logs, no category / large catalogue / masking cases, the ranker's leakage rules, config
errors, and that both beat MostPop and the same-category heuristic where repeats and sessions carry signal."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, Sequences
from hmspar.rec.data import RecData, left_pad
from hmspar.rec.evaluate import ndcg, rank_batched
from hmspar.rec.peers import features as F
from hmspar.rec.peers.ranker import Ranker, RankerConfig, fit_logistic
from hmspar.rec.peers.recent import Recent, RecentConfig
from hmspar.rec.registry import build_recommender
from rec_tiny import tiny_items, tiny_log


#: the request time given to the two feature peers (their session features need it; off by default)
WITH_REQUEST = {"features": {"request_time": True}}


def seqs_of(rows: list[list[int]], times: list[list[float]] | None = None) -> Sequences:
    times = times or [list(map(float, range(len(r)))) for r in rows]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return Sequences(np.concatenate(rows).astype(np.int64), np.concatenate(times).astype(np.float64), offsets)


def padded(rows: list[list[int]], times: list[list[float]], length: int, target_times=None) -> Histories:
    s = seqs_of(rows, times)
    return Histories(left_pad(s.items, s.offsets[:-1], s.offsets[1:], length),
                     left_pad(s.times, s.offsets[:-1], s.offsets[1:], length, 0.0),
                     target_times=None if target_times is None else np.asarray(target_times, np.float64))


CAT = np.array([0, 1, 1, 2, 2, 3], dtype=np.int64)  # items 1..5 in three categories


def test_item_statistics_are_exact_on_a_hand_built_log():
    # user 0 buys 1 twice, user 1 buys 1 once and 2 twice, user 2 buys 3, 4, 3
    train = seqs_of([[1, 2, 1], [1, 2, 2], [3, 4, 3]], [[0, 1, 9], [2, 3, 10], [4, 5, 6]])
    cfg = F.FeatureConfig(rebuy_prior=2.0, recent_days=2.0, transition_smoothing=1.0)
    st = F.ItemStats.fit(train, 5, CAT, cfg)
    np.testing.assert_array_equal(st.counts, [0, 3, 3, 2, 1, 0])
    np.testing.assert_allclose(st.log_pop, np.log1p([0, 3, 3, 2, 1, 0]) / np.log1p(3), rtol=1e-6)
    # the last 2 days before the end (t = 10): interactions at t = 9 (item 1) and 10 (item 2)
    np.testing.assert_allclose(st.recent_pop, [0, 1, 1, 0, 0, 0])
    # buyers: item 1 {0, 1}, 2 {0, 1}, 3 {2}, 4 {2}; re-buyers: 1 {0}, 2 {1}, 3 {2}; overall 3 of 6
    g = 3 / 6
    np.testing.assert_allclose(st.rebuy, [0, (1 + 2 * g) / 4, (1 + 2 * g) / 4, (1 + 2 * g) / 3, (0 + 2 * g) / 3,
                                          (0 + 2 * g) / 2], rtol=1e-6)
    # transitions: 1->2 twice, 2->1, 2->2, 3->4, 4->3 (never across users)
    t = st.transition.toarray()
    assert t[1, 2] == pytest.approx(2 / 3) and t[2, 1] == pytest.approx(1 / 3) and t[2, 2] == pytest.approx(1 / 3)
    assert t[3, 4] == pytest.approx(1 / 2) and t[4, 3] == pytest.approx(1 / 2)
    assert t.sum() == pytest.approx(2 / 3 + 2 / 3 + 1 / 2 + 1 / 2)   # no 1->3 (user 0 -> user 1 boundary)


def test_features_of_a_batch_are_exact():
    train = seqs_of([[1, 2, 1], [1, 2, 2], [3, 4, 3]], [[0, 1, 9], [2, 3, 10], [4, 5, 6]])
    st = F.ItemStats.fit(train, 5, CAT, F.FeatureConfig(decay=0.5, last_k=2, session_days=1.0, request_time=True))
    # history 1 (t=0), 3 (t=5), 1 (t=6), 2 (t=6.5); request at t=7; and an empty history
    h = padded([[1, 3, 1, 2], [0]], [[0, 5, 6, 6.5], [0]], 6, target_times=[7.0, 1.0])
    h.items[1] = 0
    f = F.compute(h, st)
    assert set(f) == set(F.FEATURES)
    assert all(v.shape == (2, 6) and v.dtype == np.float32 for v in f.values())
    assert all((v[:, 0] == 0).all() for v in f.values())                    # padding column
    np.testing.assert_allclose(f["repeat"][0], [0, 0.5 ** 1 + 0.5 ** 3, 1, 0.5 ** 2, 0, 0])
    np.testing.assert_array_equal(f["seen"][0], [0, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(f["rebuy_seen"][0], st.rebuy * [0, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(f["rebuy_repeat"][0], st.rebuy * f["repeat"][0], rtol=1e-6)
    np.testing.assert_allclose(f["rebuy_repeat_new"][0], (1 - np.exp(-0.5)) * f["rebuy_repeat"][0], rtol=1e-6)
    np.testing.assert_array_equal(f["session_seen"][0], [0, 1, 1, 0, 0, 0])  # within 1 day of t = 7: 1, 2
    np.testing.assert_array_equal(f["same_cat_last"][0], [0, 1, 1, 0, 0, 0])  # last item 2: category 1
    np.testing.assert_allclose(f["same_cat_session"][0], np.exp(-0.5) * np.array([0, 1, 1, 0, 0, 0]), rtol=1e-6)
    np.testing.assert_allclose(f["cat_share"][0], [0, 1, 1, 0, 0, 0])          # last 2: items 1, 2 (category 1)
    np.testing.assert_allclose(f["transition"][0], st.transition.toarray()[2])
    np.testing.assert_array_equal(f["log_pop"][1], st.log_pop)
    for name in ("repeat", "seen", "session_seen", "same_cat_last", "cat_share", "transition"):
        assert not f[name][1].any(), name                                    # empty history: nothing


def test_by_default_the_features_never_read_the_request_time():
    """request_time off (the default): the request is taken at the last interaction's time, whatever the
    target time says; the time-dependent features then follow from the history alone."""
    train = seqs_of([[1, 2, 1], [1, 2, 2], [3, 4, 3]], [[0, 1, 9], [2, 3, 10], [4, 5, 6]])
    st = F.ItemStats.fit(train, 5, CAT, F.FeatureConfig(decay=0.5, last_k=2, session_days=1.0))
    early = padded([[1, 3, 1, 2]], [[0, 5, 6, 6.5]], 6, target_times=[7.0])
    late = padded([[1, 3, 1, 2]], [[0, 5, 6, 6.5]], 6, target_times=[400.0])
    f, g = F.compute(early, st), F.compute(late, st)
    for name in F.FEATURES:
        np.testing.assert_array_equal(f[name], g[name], err_msg=name)
    assert not f["rebuy_repeat_new"].any()                                  # gap 0: never a new session
    np.testing.assert_array_equal(f["same_cat_session"], f["same_cat_last"])
    np.testing.assert_array_equal(f["session_seen"][0], [0, 1, 1, 0, 0, 0])  # within 1 day of t = 6.5: 1, 2


def test_without_categories_the_category_features_are_zero():
    train = seqs_of([[1, 2, 1], [3, 4, 3]])
    h = padded([[1, 2]], [[0, 1]], 4)
    for category in (None, np.array([0, 1, 1, 1, 1, 1])):                  # one category = no category
        st = F.ItemStats.fit(train, 5, category, F.FeatureConfig())
        f = F.compute(h, st)
        for name in ("same_cat_last", "same_cat_session", "cat_share"):
            assert not f[name].any()
        assert f["seen"].any()


def test_a_large_catalogue_stays_sparse_and_chunked(monkeypatch):
    n = 300_000                                                              # a dense n x n would be 360 GB
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(1, n + 1, size=8)) for _ in range(50)]
    st = F.ItemStats.fit(seqs_of(rows), n, None, F.FeatureConfig())
    assert st.transition.nnz <= 50 * 7
    h = padded(rows[:5], [list(map(float, range(8)))] * 5, 10)
    w = {"transition": 2.0, "log_pop": 1.0, "rebuy_repeat": 3.0}
    whole = F.linear_scores(h, st, w)
    monkeypatch.setattr(F, "CHUNK_ELEMENTS", n + 1)                          # one row per chunk
    np.testing.assert_allclose(F.linear_scores(h, st, w), whole)
    f = F.compute(h, st, ("transition", "log_pop", "rebuy_repeat"))
    np.testing.assert_allclose(whole[:, 1:], (2 * f["transition"] + f["log_pop"] + 3 * f["rebuy_repeat"])[:, 1:],
                               rtol=1e-6)


def test_holdout_last_removes_the_held_out_interactions_from_the_statistics():
    data = tiny_log(n_users=30)
    examples, rest = F.holdout_last(data.train)
    whole = data.train.whole()
    np.testing.assert_array_equal(examples.targets, data.train.items[:, -1])
    np.testing.assert_array_equal(examples.items[:, 1:], data.train.items[:, :-1])
    assert (examples.items[:, 0] == 0).all()
    c_whole = np.bincount(whole.items, minlength=41)
    c_rest = np.bincount(rest.items, minlength=41)
    np.testing.assert_array_equal(c_whole - c_rest, np.bincount(examples.targets, minlength=41))
    np.testing.assert_array_equal(rest.lengths, whole.lengths - 1)


def test_fit_logistic_recovers_known_weights():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, 0.0]
    y = (rng.random(20000) < 1 / (1 + np.exp(-(x @ [1.0, -0.5, 2.0] - 0.3)))).astype(float)
    w, b, mean, scale, _ = fit_logistic(x, y, l2=0.0)
    np.testing.assert_allclose(w / scale, [1.0, -0.5, 2.0], atol=0.08)
    const = fit_logistic(np.hstack([x, np.ones((20000, 1))]), y, l2=1.0)[0]
    assert const[-1] == 0.0                                                  # a constant column gets no weight


def repeat_session_log(n_users: int = 300, n_items: int = 60, n_categories: int = 6, seed: int = 0,
                       exclude_seen: bool = False) -> RecData:
    """A log where repeats and sessions carry the signal: every user re-buys two favourite items (the
    'consumables') at the start of 60% of the sessions and otherwise buys, within a session of minutes, one to
    three distinct items of the session's category (by a mild popularity); sessions are days apart. Built like
    :func:`tiny_log`."""
    rng = np.random.default_rng(seed)
    items = tiny_items(n_items, n_categories, seed=seed)
    cat = items.category
    pop = rng.lognormal(0.0, 0.5, size=n_items + 1)
    pop[0] = 0.0
    seqs, times = [], []
    for _ in range(n_users):
        favourites = rng.choice(np.arange(1, n_items + 1), size=2, replace=False)
        seq, ts, t = [], [], 0.0
        length = int(rng.integers(8, 20))
        while len(seq) < length:
            t += rng.exponential(5.0)
            if rng.random() < 0.6:
                seq.append(int(rng.choice(favourites)))
                ts.append(t)
            c = int(rng.integers(1, n_categories + 1))
            members = np.flatnonzero(cat == c)
            p = pop[members] / pop[members].sum()
            for item in rng.choice(members, size=int(rng.integers(1, 4)), replace=False, p=p):
                t += rng.exponential(0.003)
                seq.append(int(item))
                ts.append(t)
        seqs.append(np.array(seq[:length]))                                  # cut anywhere, mid-session too
        times.append(np.array(ts[:length]))
    offsets = np.concatenate([[0], np.cumsum([s.size for s in seqs])]).astype(np.int64)
    flat, tflat = np.concatenate(seqs), np.concatenate(times)
    start, stop = offsets[:-1], offsets[1:]
    users = np.arange(n_users)
    L = 30
    tr_i, tr_t = left_pad(flat, start, stop - 2, L), left_pad(tflat, start, stop - 2, L, 0.0)
    te_i, te_t = left_pad(flat, start, stop - 1, L), left_pad(tflat, start, stop - 1, L, 0.0)
    train = Histories(tr_i, tr_t, users=users, sequences=Sequences.gather(flat, tflat, start, stop - 2))
    val = Histories(tr_i, tr_t, flat[stop - 2], tflat[stop - 2], users, exclude_seen=exclude_seen)
    test = Histories(te_i, te_t, flat[stop - 1], tflat[stop - 1], users, exclude_seen=exclude_seen)
    return RecData(items, train, val, test, exclude_seen, {"repeat_purchases": True})


def full_ndcg(model, data: RecData) -> np.ndarray:
    """Per-user test NDCG@10 of a fitted model (full ranking, the protocol's masking)."""
    return ndcg(rank_batched(model.score, data.test)["rank"], 10)


@pytest.mark.parametrize("make, ranker_section", [(repeat_session_log, WITH_REQUEST), (tiny_log, {}),
                                                   (lambda: tiny_log(exclude_seen=True), {})],
                         ids=["repeats-sessions", "tiny", "tiny-masked"])
def test_both_peers_clearly_beat_mostpop_and_same_category(make, ranker_section):
    """Recent, a fixed heuristic built around sessions, with the request time (without it, it is not claimed
    to beat the same-category heuristic); the ranker at its defaults, except on the log whose signal is the
    session timing itself (there, without the request time, it gains only 0.016 over the same-category
    heuristic)."""
    data = make()
    nd = {name: full_ndcg(build_recommender(name, {}, 0).fit(data.train, data.items, data.val), data)
          for name in ("mostpop", "samecat")}
    nd["ranker"] = full_ndcg(build_recommender("ranker", ranker_section, 0).fit(data.train, data.items, data.val),
                             data)
    nd["recent"] = full_ndcg(build_recommender("recent", WITH_REQUEST, 0).fit(data.train, data.items, data.val),
                             data)
    for name in ("recent", "ranker"):
        for ref in ("mostpop", "samecat"):
            d = nd[name] - nd[ref]
            assert d.mean() > 0.05 and d.mean() > 3 * d.std() / np.sqrt(d.size), (name, ref, d.mean())


def test_the_ranker_weights_repeats_where_they_pay_and_not_where_the_protocol_masks_them():
    data = repeat_session_log()
    with_request = RankerConfig(features=F.FeatureConfig(request_time=True))
    w = Ranker(with_request, seed=0).fit(data.train, data.items, data.val).report_["standardised_weights"]
    assert w["rebuy_repeat_new"] > 0.2 and w["session_seen"] < 0            # favourites again, not within a session
    assert w["same_cat_session"] > 0.3                                      # a session stays in its category
    w_off = Ranker(RankerConfig(), seed=0).fit(data.train, data.items, data.val).report_["standardised_weights"]
    assert w_off["rebuy_repeat_new"] == 0.0                                 # no request time: a constant 0
    masked = repeat_session_log(exclude_seen=True)
    rk = Ranker(RankerConfig(), seed=0).fit(masked.train, masked.items, masked.val)
    for name in ("repeat", "seen", "rebuy_seen", "rebuy_repeat", "rebuy_repeat_new", "session_seen"):
        assert rk.report_["standardised_weights"][name] == 0.0              # constant 0 on every example
    assert rk.report_["n_examples"] < len(masked.train)                     # repeat targets were dropped


def test_the_ranker_reads_no_validation_target_unless_fitted_on_validation():
    data = repeat_session_log(n_users=150)
    shuffled = dataclasses.replace(data.val, targets=np.random.default_rng(0).permutation(data.val.targets))
    a = Ranker(RankerConfig(), seed=0).fit(data.train, data.items, data.val)
    b = Ranker(RankerConfig(), seed=0).fit(data.train, data.items, shuffled)
    c = Ranker(RankerConfig(), seed=0).fit(data.train, data.items, None)
    assert a.weights_ == b.weights_ == c.weights_
    v1 = Ranker(RankerConfig(fit_on="validation"), seed=0).fit(data.train, data.items, data.val)
    v2 = Ranker(RankerConfig(fit_on="validation"), seed=0).fit(data.train, data.items, shuffled)
    assert v1.weights_ != v2.weights_ and v1.report_["n_examples"] == len(data.val)
    with pytest.raises(HmsparError, match="fit_on is 'validation' but fit received no validation targets"):
        Ranker(RankerConfig(fit_on="validation"), seed=0).fit(data.train, data.items, None)
    other = Ranker(RankerConfig(), seed=1).fit(data.train, data.items, data.val)
    assert other.weights_ != a.weights_                                     # the seed draws the negatives


def test_train_last_statistics_exclude_the_held_out_interactions(monkeypatch):
    data = repeat_session_log(n_users=100)
    seen: list[np.ndarray] = []
    fit = F.ItemStats.fit.__func__

    def spy(cls, seqs, n_items, category, cfg):
        seen.append(np.bincount(seqs.items, minlength=n_items + 1))
        return fit(cls, seqs, n_items, category, cfg)

    monkeypatch.setattr(F.ItemStats, "fit", classmethod(spy))
    Ranker(RankerConfig(), seed=0).fit(data.train, data.items, data.val)
    whole = np.bincount(data.train.sequences.items, minlength=data.n_items + 1)
    held_out = np.bincount(data.train.items[:, -1], minlength=data.n_items + 1)
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[0], whole)                           # for scoring
    np.testing.assert_array_equal(seen[1], whole - held_out)                # for the training examples


def test_config_errors_name_the_key():
    with pytest.raises(HmsparError, match=r"rec.recommenders.ranker.fit_on: must be train_last or validation"):
        build(RankerConfig, {"fit_on": "test"}, "rec.recommenders.ranker")
    with pytest.raises(HmsparError, match=r"rec.recommenders.ranker.use_features: must be distinct names"):
        build(RankerConfig, {"use_features": ["repeat", "nope"]}, "rec.recommenders.ranker")
    with pytest.raises(HmsparError, match=r"rec.recommenders.recent.features.decay: must lie in \(0, 1\]"):
        build(RecentConfig, {"features": {"decay": 1.5}}, "rec.recommenders.recent")
    with pytest.raises(HmsparError, match=r"rec.recommenders.recent.w_pops: unknown key"):
        build(RecentConfig, {"w_pops": 1.0}, "rec.recommenders.recent")
    with pytest.raises(HmsparError, match=r"rec.recommenders.ranker.mask_seen: must be auto, true or false"):
        build(RankerConfig, {"mask_seen": "yes"}, "rec.recommenders.ranker")


def test_recent_uses_no_category_it_was_not_given():
    data = repeat_session_log(n_users=60)
    with_cat = Recent(RecentConfig(), seed=0).fit(data.train, data.items, data.val)
    without = Recent(RecentConfig(inputs=["id"]), seed=0).fit(data.train, data.items, data.val)
    assert with_cat.stats_.category is not None and without.stats_.category is None
    h = data.test.subset(np.arange(10))
    assert not np.array_equal(with_cat.score(h), without.score(h))


def test_on_a_small_simulated_shop_both_peers_beat_the_shallow_signals_and_ease(tmp_path):
    """The shop (hmspar/rec/shop.py) at a seed no default was chosen on: repeats of consumables and session
    intent are what the two peers model, and what MostPop, SameCategory and EASE miss."""
    from hmspar.rec import shop
    from hmspar.rec.convert import TextConfig, convert
    from hmspar.rec.data import ProtocolConfig, load
    from test_rec_data import stub_embed

    raw, feats = tmp_path / "raw", tmp_path / "features"
    raw.mkdir()
    feats.mkdir()
    shop.generate(shop.Config(seed=7, n_users=1500, n_items=400, image_size=8), raw)
    convert(raw, feats, TextConfig(), embed=stub_embed)
    data = load(feats, ProtocolConfig())
    assert not data.exclude_seen                                             # repeats: seen items stay rankable
    nd = {name: full_ndcg(build_recommender(name, {}, 0).fit(data.train, data.items, data.val), data)
          for name in ("mostpop", "samecat", "ease", "ranker")}
    nd["recent"] = full_ndcg(build_recommender("recent", WITH_REQUEST, 0).fit(data.train, data.items, data.val),
                             data)
    for name in ("recent", "ranker"):
        for ref in ("mostpop", "samecat", "ease"):
            d = nd[name] - nd[ref]
            assert d.mean() > 0.03 and d.mean() > 3 * d.std() / np.sqrt(d.size), (name, ref, d.mean())
