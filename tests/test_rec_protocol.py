"""The rec protocol: leave-one-out and global-time splits, seen-item masking, ranks, metrics (hand-computed),
the sampled protocol, beyond-accuracy metrics and the paired bootstrap."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.rec import evaluate as ev
from hmspar.rec.base import Histories
from hmspar.rec.data import ProtocolConfig, global_cutoffs, load, protocol_record, resolve_exclude_seen


def write_features(d, seqs, times=None, n_items=6, repeat=False):
    np.save(d / "image.npy", np.zeros((n_items + 1, 3, 8, 8), np.uint8))
    np.save(d / "text.npy", np.zeros((n_items + 1, 4), np.float32))
    np.save(d / "price.npy", np.zeros(n_items + 1, np.float32))
    np.save(d / "category.npy", np.arange(n_items + 1, dtype=np.int64))
    np.save(d / "first_time.npy", np.zeros(n_items + 1))
    flat = np.concatenate([np.asarray(s, np.int64) for s in seqs])
    np.save(d / "seq_items.npy", flat)
    np.save(d / "seq_times.npy", np.arange(flat.size, dtype=np.float64) if times is None else np.asarray(times))
    np.save(d / "seq_offsets.npy", np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64))
    (d / "meta.json").write_text(json.dumps({"repeat_purchases": repeat, "n_items": n_items}))


def test_leave_one_out_split_by_time_and_min_interactions(tmp_path):
    write_features(tmp_path, [[1, 2, 3, 4, 5], [2, 3], [6, 5, 4, 3, 2, 1]])
    data = load(tmp_path, ProtocolConfig(min_interactions=5, max_history=4))
    assert data.test.users.tolist() == [0, 2]                      # the 2-item user is dropped
    assert data.val.targets.tolist() == [4, 2] and data.test.targets.tolist() == [5, 1]
    assert data.train.items.tolist() == [[0, 1, 2, 3], [6, 5, 4, 3]]   # left-padded, last max_history
    assert data.test.items.tolist() == [[1, 2, 3, 4], [5, 4, 3, 2]]    # train + the validation item
    assert data.test.target_times.tolist() == [4.0, 12.0]
    assert data.val.exclude_seen and data.test.exclude_seen           # no repeats: auto excludes
    with pytest.raises(HmsparError, match="no user has rec.protocol.min_interactions = 7"):
        load(tmp_path, ProtocolConfig(min_interactions=7))


def test_leave_one_out_is_unchanged_by_the_split_settings(tmp_path):
    """The split's settings neither change the leave-one-out rows nor enter its meta.json record."""
    write_features(tmp_path, [[1, 2, 3, 4, 5], [2, 3], [6, 5, 4, 3, 2, 1]])
    base = load(tmp_path, ProtocolConfig(min_interactions=5, max_history=4))
    other = load(tmp_path, ProtocolConfig(min_interactions=5, max_history=4, val_fraction=0.3, test_fraction=0.2))
    for a, b in ((base.train, other.train), (base.val, other.val), (base.test, other.test)):
        for field in ("items", "times", "targets", "target_times", "users"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert base.split == {"split": "leave_one_out"}
    assert base.test_train_lengths().tolist() == [3, 4]             # aligned rows: the training lengths
    assert base.train.whole().lengths.tolist() == [3, 4]             # whole histories, max_history crops the matrix
    assert set(protocol_record(ProtocolConfig())) == {"min_interactions", "exclude_seen", "max_history", "top_k",
                                                       "save_k", "n_negatives", "negative_seed"}
    assert protocol_record(ProtocolConfig(split="global_time"))["test_fraction"] == 0.1


# A hand-made log of 20 events at times 0..19 (six users, user index = position). With val_fraction 0.3 and
# test_fraction 0.2 the cut-offs are the 0.5 and 0.8 "higher" quantiles: sorted[ceil(19 * 0.5)] = 10 and
# sorted[ceil(19 * 0.8)] = 16, so training = times 0-9, validation window = 10-15, test window = 16-19.
GLOBAL_LOG = [  # (items, times) per user
    ([1, 2, 3, 4], [0, 1, 10, 16]),              # A: 2 training events, val target 3, test target 4
    ([5, 6, 1, 2, 3, 4], [2, 3, 4, 11, 12, 17]),  # B: val target 2 (the first of two window events), test 4
    ([3, 3, 2], [5, 6, 7]),                       # C: training only
    ([4, 5, 6], [8, 13, 19]),                     # D: one training event: too short for validation, tests
    ([1], [9]),                                   # E: a single event, still a training history
    ([2, 3, 6], [14, 15, 18]),                    # G: new in the validation window, tested without training
]


def global_log(tmp_path):
    seqs = [s for s, _ in GLOBAL_LOG]
    times = np.concatenate([np.asarray(t, np.float64) for _, t in GLOBAL_LOG])
    write_features(tmp_path, seqs, times=times)
    return ProtocolConfig(split="global_time", val_fraction=0.3, test_fraction=0.2, min_interactions=3, max_history=4)


def test_global_time_split_by_hand(tmp_path):
    cfg = global_log(tmp_path)
    assert global_cutoffs(np.arange(20.0), 0.3, 0.2) == (10.0, 16.0)
    data = load(tmp_path, cfg)
    assert data.split == {"split": "global_time", "val_cutoff": 10.0, "test_cutoff": 16.0,
                          "n_train_users": 5, "n_val_users": 2, "n_test_users": 4}
    whole = data.train.whole()
    assert data.train.users.tolist() == [0, 1, 2, 3, 4]
    assert [r.tolist() for r in np.split(whole.items, whole.offsets[1:-1])] == [[1, 2], [5, 6, 1], [3, 3, 2], [4], [1]]
    assert data.train.items.tolist() == [[0, 0, 1, 2], [0, 5, 6, 1], [0, 3, 3, 2], [0, 0, 0, 4], [0, 0, 0, 1]]
    assert data.train.targets is None
    # validation: users with training history whose first validation-window event is the target
    assert data.val.users.tolist() == [0, 1]
    assert data.val.targets.tolist() == [3, 2] and data.val.target_times.tolist() == [10.0, 11.0]
    assert data.val.items.tolist() == [[0, 0, 1, 2], [0, 5, 6, 1]]
    # test: the first test-window event, history = everything before t_test (validation window included)
    assert data.test.users.tolist() == [0, 1, 3, 5]
    assert data.test.targets.tolist() == [4, 4, 6, 6] and data.test.target_times.tolist() == [16.0, 17.0, 19.0, 18.0]
    assert data.test.items.tolist() == [[0, 1, 2, 3], [6, 1, 2, 3], [0, 0, 4, 5], [0, 0, 2, 3]]
    assert data.test.times[1].tolist() == [3.0, 4.0, 11.0, 12.0]     # B's two validation-window events
    assert data.val.exclude_seen and data.test.exclude_seen
    assert data.test_train_lengths().tolist() == [2, 3, 1, 0]        # matched by user, not by row
    assert data.train_counts().tolist() == [0, 3, 2, 2, 1, 1, 1]     # from the training events only


def test_global_time_fits_nothing_at_or_after_the_validation_cutoff(tmp_path):
    cfg = global_log(tmp_path)
    data = load(tmp_path, cfg)
    t_val = data.split["val_cutoff"]
    assert data.train.whole().times.max() < t_val
    assert data.train.times[data.train.items > 0].max() < t_val
    assert data.val.times[data.val.items > 0].max() < t_val <= data.val.target_times.min()
    assert data.val.target_times.max() < data.split["test_cutoff"] <= data.test.target_times.min()
    in_val_window = data.test.times[data.test.items > 0] >= t_val
    assert in_val_window.sum() == 6                                 # test histories hold all 6 validation events


def test_global_time_min_interactions_counts_up_to_the_target(tmp_path):
    cfg = global_log(tmp_path)
    data = load(tmp_path, dataclasses.replace(cfg, min_interactions=4))
    assert data.train.users.tolist() == [0, 1, 2, 3, 4]             # training keeps every user
    assert data.val.users.tolist() == [1]                           # A has 2 events before its target
    assert data.test.users.tolist() == [0, 1]                       # D and G have 2 before theirs
    with pytest.raises(HmsparError, match="no validation user under rec.protocol.split = global_time"):
        load(tmp_path, dataclasses.replace(cfg, min_interactions=5))


def test_ties_at_a_cutoff_fall_in_the_later_window():
    times = np.array([0.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 5.0])
    assert global_cutoffs(times, 0.1, 0.1) == (4.0, 5.0)             # sorted[ceil(9 * 0.8)], sorted[ceil(9 * 0.9)]
    t_val, t_test = global_cutoffs(times, 0.5, 0.1)
    assert (t_val, t_test) == (3.0, 5.0)                             # sorted[ceil(9 * 0.4)] = sorted[4] = 3.0
    assert ((times >= t_val) & (times < t_test)).sum() == 6          # sorted[3], tied with it, joins the window


@pytest.mark.parametrize("section, key", [
    ({"split": "random"}, r"rec\.protocol\.split: must be one of leave_one_out, global_time, got 'random'"),
    ({"split": "global_time", "val_fraction": 0.0}, r"rec\.protocol\.val_fraction: must lie in \(0, 1\)"),
    ({"test_fraction": 1.5}, r"rec\.protocol\.test_fraction: must lie in \(0, 1\)"),
    ({"val_fraction": 0.6, "test_fraction": 0.4}, r"rec\.protocol\.val_fraction: must leave a training share"),
])
def test_bad_split_settings_name_the_key(section, key):
    with pytest.raises(HmsparError, match=key):
        build(ProtocolConfig, section, "rec.protocol")


def test_exclude_seen_auto_follows_repeat_purchases():
    auto = ProtocolConfig()
    assert resolve_exclude_seen(auto, {"repeat_purchases": True}) is False
    assert resolve_exclude_seen(auto, {"repeat_purchases": False}) is True
    assert resolve_exclude_seen(ProtocolConfig(exclude_seen=True), {"repeat_purchases": True}) is True
    with pytest.raises(HmsparError, match="rec.protocol.exclude_seen"):
        build(ProtocolConfig, {"exclude_seen": "sometimes"}, "rec.protocol")
    with pytest.raises(HmsparError, match="rec.protocol.top_kk: unknown key"):
        build(ProtocolConfig, {"top_kk": [10]}, "rec.protocol")


def hist(items, targets, exclude):
    items = np.asarray(items)
    return Histories(items, np.zeros(items.shape), np.asarray(targets), None, None, exclude_seen=exclude)


def test_masking_and_pessimistic_ranks_by_hand():
    scores = np.array([[9.0, 0.5, 0.9, 0.7, 0.7, 0.1],
                       [9.0, 0.5, 0.9, 0.7, 0.7, 0.1]], dtype=np.float32)
    h = hist([[0, 2], [0, 3]], [3, 3], exclude=True)
    masked = ev.mask_scores(scores, h)
    assert masked[0, 0] == -np.inf and masked[0, 2] == -np.inf and masked[1, 3] == -np.inf
    ranks = ev.target_ranks(masked, h.targets)
    # row 0: item 2 masked, item 4 ties the target at 0.7 -> counted ahead (pessimistic): rank 1
    # row 1: the target itself was seen and masked -> a miss (rank n_items = 5)
    assert ranks.tolist() == [1, 5]
    kept = ev.target_ranks(ev.mask_scores(scores, hist([[0, 2], [0, 3]], [3, 3], exclude=False)), np.array([3, 3]))
    assert kept.tolist() == [2, 2]                                   # item 2 (0.9) and item 4 (tie) ahead
    constant = ev.target_ranks(ev.mask_scores(np.ones((1, 6)), hist([[0, 1]], [4], False)), np.array([4]))
    assert constant.tolist() == [4]                                   # all tied: last, not first


def test_metrics_by_hand():
    ranks = np.array([0, 1, 9, 10, 3])
    assert ev.hit(ranks, 10).tolist() == [1, 1, 1, 0, 1]
    np.testing.assert_allclose(ev.ndcg(ranks, 10), [1.0, 1 / math.log2(3), 1 / math.log2(11), 0.0, 1 / math.log2(5)])
    np.testing.assert_allclose(ev.mrr(ranks, 10), [1.0, 0.5, 0.1, 0.0, 0.25])
    acc = ev.accuracy(ranks, [10, 20])
    assert acc["hr@20"] == 1.0 and acc["hr@10"] == 0.8 and set(acc) == {"hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr@10"}


def test_top_k_orders_by_score_then_lower_index():
    masked = np.array([[-np.inf, 0.2, 0.5, 0.5, 0.9, 0.5, 0.1]], dtype=np.float32)
    items, scores = ev.top_k(masked, 3)
    assert items.tolist() == [[4, 2, 3]] and scores.tolist() == [[pytest.approx(0.9), 0.5, 0.5]]


def test_sampled_negatives_are_unseen_distinct_shared_and_seeded():
    rng = np.random.default_rng(0)
    items = rng.integers(1, 31, size=(50, 8))
    h = hist(items, rng.integers(1, 31, size=50), False)
    neg = ev.sample_negatives(h, 30, 15, seed=3)
    assert neg.shape == (50, 15)
    for i in range(50):
        assert len(set(neg[i])) == 15
        assert not set(neg[i]) & (set(items[i]) | {h.targets[i]})
    np.testing.assert_array_equal(neg, ev.sample_negatives(h, 30, 15, seed=3))
    assert not np.array_equal(neg, ev.sample_negatives(h, 30, 15, seed=4))
    assert not np.array_equal(neg, ev.sample_negatives(h, 30, 15, seed=3, stream=1))
    with pytest.raises(HmsparError, match="too few unseen items"):
        ev.sample_negatives(h, 30, 29, seed=0)


def test_sampled_rank_inflates_relative_to_full_ranking():
    scores = np.array([[0.0, 5, 4, 3, 2, 1, 0.5]], dtype=np.float32)
    t = np.array([5])
    assert ev.target_ranks(ev.mask_scores(scores, hist([[0]], t, False)), t).tolist() == [4]
    assert ev.sampled_ranks(scores, t, np.array([[4, 6]])).tolist() == [1]    # only item 4 scores higher


def test_beyond_accuracy_by_hand():
    assert ev.gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert ev.gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    emb = np.array([[0, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    assert ev.intra_list_diversity(np.array([[1, 2]]), emb) == pytest.approx(0.0)
    assert ev.intra_list_diversity(np.array([[1, 3]]), emb) == pytest.approx(1.0)
    counts = np.array([0, 6, 2, 0])
    out = ev.beyond_accuracy(np.array([[1, 2], [1, 2]]), counts, emb, None)
    assert out["coverage"] == pytest.approx(2 / 3)
    # smoothed popularity (count + 1) / (8 + 3): items 1, 2 -> 7/11, 3/11
    assert out["novelty"] == pytest.approx((-math.log2(7 / 11) - math.log2(3 / 11)) / 2)


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    b = rng.random((2, 400))
    same = ev.paired_bootstrap(b, b, 300, 0.95, np.random.default_rng(1), resample_seeds=False)
    assert same["difference"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    # resampling seeds too, each model draws its own: the interval still covers zero
    same = ev.paired_bootstrap(b, b, 300, 0.95, np.random.default_rng(1))
    assert same["difference"] == 0 and same["ci_low"] <= 0 <= same["ci_high"]
    better = ev.paired_bootstrap(b + 0.05 + 0.01 * rng.standard_normal((2, 400)), b, 300, 0.95, np.random.default_rng(1))
    assert better["ci_low"] > 0 and better["p_value_one_sided"] < 0.01
    with pytest.raises(HmsparError, match="different users"):
        ev.paired_bootstrap(b, b[:, :10], 10, 0.95, rng)
